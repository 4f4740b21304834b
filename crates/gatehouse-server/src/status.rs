//! Every failure a client can see, and the one place that turns it into a response.
//!
//! Errors are Kubernetes `Status` objects (`kind: Status`), so kubectl prints their message as
//! it prints the kube-apiserver's own. A new error kind must pick its status code here; there is
//! no catch-all that could silently become a 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials gatehouse refuses (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed or uses something gatehouse refuses (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is served at this path (404).
    #[error("{0}")]
    NotFound(String),
    /// The request head is too large (431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Too many attempts; try again after `retry_after` seconds (429, with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// What happened and when to try again.
        message: String,
        /// Seconds until the client may try again.
        retry_after: u64,
    },
    /// The kube-apiserver cannot be reached (503).
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// gatehouse is not ready yet (503).
    #[error("{0}")]
    NotReady(String),
    /// A bug or an unexpected failure (500). The message never holds a secret.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "RequestHeaderFieldsTooLarge",
            ),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::UpstreamUnavailable(_) | ApiError::NotReady(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> StatusCode {
        self.code_and_reason().0
    }

    /// Seconds for `Retry-After`, when the client should wait before trying again.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, reason) = self.code_and_reason();
        let retry_after = self.retry_after();
        let mut body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        if let Some(secs) = retry_after {
            // As the kube-apiserver does: kubectl and client-go read it.
            body["details"] = serde_json::json!({ "retryAfterSeconds": secs });
        }
        let mut resp = (code, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if code == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gatehouse\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn errors_are_kubernetes_status_objects() {
        let resp = ApiError::Forbidden("no".into()).into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["code"], 403);
        assert_eq!(v["message"], "no");
        let resp = ApiError::Unauthorized("x".into()).into_response();
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn too_many_requests_carries_retry_after_in_header_and_status() {
        let resp = ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after: 7,
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["details"]["retryAfterSeconds"], 7);
    }
}
