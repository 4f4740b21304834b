//! Every failure a client of the API surface (the Kubernetes proxy, `/v1/*`, health) can see,
//! and the one place that turns it into a response. The web UI's pages answer with HTML
//! instead ([`crate::page::PageError`]).
//!
//! Errors are Kubernetes `Status` objects (`kind: Status`), so kubectl prints their message as
//! it prints the kube-apiserver's own. A new error kind must pick its status code here; there is
//! no catch-all that could silently become a 500. Where the cause is known, the variant carries
//! it typed (a refusal of the authentication layer, the proxy's denial, a failed review), and
//! its status code is chosen by that cause.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::access::ReviewFailed;
use crate::authn::Refusal;
use crate::login_guard::SignInError;
use crate::plan::{Denial, PlanError};
use crate::upstream::PoolFull;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Refused by the authentication layer ([`crate::auth_layer`]): an identity header (403),
    /// a `Connection` naming a protected header (400), the credential's form or the token
    /// (401), or an issuer whose keys are not loaded yet (503).
    #[error(transparent)]
    Refused(Arc<Refusal>),
    /// Authenticated, and the proxy's plan denies the request (403).
    #[error(transparent)]
    Denied(Denial),
    /// The proxy could not make a plan: a stale index (503), an identity value that cannot be
    /// a header (400), or a bug (500).
    #[error(transparent)]
    Plan(PlanError),
    /// A SubjectAccessReview failed, so gatehouse cannot tell which ServiceAccount may act
    /// (503).
    #[error(
        "gatehouse could not check which of your ServiceAccounts may do this request ({0}); try again shortly"
    )]
    Review(#[source] ReviewFailed),
    /// An admin sign-in refused: the account off (404), the address not allowed (403),
    /// throttled (429, with `Retry-After`), a wrong password (401), or the token not issued
    /// (500).
    #[error(transparent)]
    SignIn(SignInError),
    /// A bearer token that cannot be written into a header (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A state-changing request authenticated by the session cookie from another origin (403).
    #[error(
        "cross-site request refused: requests authenticated by the gatehouse session cookie must come from gatehouse's own pages"
    )]
    CrossSite,
    /// The request is malformed or uses something gatehouse refuses (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is served at this path (404).
    #[error("{0}")]
    NotFound(String),
    /// A method this path does not take (405): the proxy's `CONNECT`, and methods gatehouse's
    /// own routes do not serve. `allow` is the `Allow` header (RFC 9110 §15.5.6) when gatehouse
    /// knows it; on its own routes axum sets it from the route's methods.
    #[error("{message}")]
    MethodNotAllowed {
        /// What to do instead.
        message: String,
        /// The methods the path takes.
        allow: Option<&'static str>,
    },
    /// The kube-apiserver cannot be reached (503).
    #[error(
        "gatehouse cannot reach the kube-apiserver at {base}: {}; check that it is running and that gatehouse's kubernetes settings point at it",
        error_chain(.source)
    )]
    UpstreamUnavailable {
        /// The kube-apiserver's base URL.
        base: String,
        /// Why.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// Every privileged HTTP/2 connection to the kube-apiserver is full at
    /// `kubernetes.maxConnections` (429, with `Retry-After`): refused rather than queued.
    #[error(transparent)]
    UpstreamBusy(PoolFull),
    /// A bug or an unexpected failure (500). The message never holds a secret.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn code_and_reason(&self) -> (StatusCode, &'static str) {
        const UNAUTHORIZED: (StatusCode, &str) = (StatusCode::UNAUTHORIZED, "Unauthorized");
        const FORBIDDEN: (StatusCode, &str) = (StatusCode::FORBIDDEN, "Forbidden");
        const BAD_REQUEST: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "BadRequest");
        const UNAVAILABLE: (StatusCode, &str) =
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
        const INTERNAL: (StatusCode, &str) = (StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
        match self {
            ApiError::Refused(r) => match &**r {
                Refusal::IdentityHeader(_) => FORBIDDEN,
                Refusal::ConnectionNamesProtected(_) => BAD_REQUEST,
                Refusal::KubernetesCredential(_)
                | Refusal::Credential(_)
                | Refusal::SessionCookieOnApi
                | Refusal::TokenInQuery => UNAUTHORIZED,
                Refusal::Token(e) if e.not_ready() => UNAVAILABLE,
                Refusal::Token(_) => UNAUTHORIZED,
            },
            ApiError::Denied(_) => FORBIDDEN,
            ApiError::Plan(PlanError::Stale(_)) | ApiError::Review(_) => UNAVAILABLE,
            ApiError::Plan(PlanError::HeaderValue(_)) => BAD_REQUEST,
            ApiError::Plan(PlanError::AdminOff | PlanError::NoMapping) => INTERNAL,
            ApiError::Unauthorized(_) => UNAUTHORIZED,
            ApiError::CrossSite => FORBIDDEN,
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
            }
            ApiError::SignIn(e) => match e {
                SignInError::Disabled => (StatusCode::NOT_FOUND, "NotFound"),
                SignInError::AddressNotAllowed => FORBIDDEN,
                SignInError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
                SignInError::WrongPassword => UNAUTHORIZED,
                SignInError::Issue(_) => INTERNAL,
            },
            ApiError::UpstreamUnavailable { .. } => UNAVAILABLE,
            ApiError::UpstreamBusy(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
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
            ApiError::SignIn(SignInError::Throttled(t)) => Some(t.retry_after_secs()),
            // As the kube-apiserver does while it starts or shuts down: client-go retries a 5xx
            // that carries Retry-After (up to 10 times), so kubectl rides out a restart of the
            // kube-apiserver or a connection it closed (GOAWAY) instead of failing at once.
            ApiError::UpstreamUnavailable { .. } => Some(1),
            // As the kube-apiserver's own 429 (max-in-flight, API Priority and Fairness):
            // client-go retries a 429 that carries Retry-After, so a request that came while
            // the pool was full goes through once a stream ends, or fails with this message.
            ApiError::UpstreamBusy(_) => Some(1),
            _ => None,
        }
    }
}

/// An error and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
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
        if let ApiError::MethodNotAllowed {
            allow: Some(allow), ..
        } = &self
        {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
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
        let resp = ApiError::CrossSite.into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["code"], 403);
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("cross-site request refused"),
            "{v}"
        );
        let resp = ApiError::Unauthorized("x".into()).into_response();
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn too_many_requests_carries_retry_after_in_header_and_status() {
        let throttled = crate::login_guard::Throttled::Peer(std::time::Duration::from_secs(7));
        let resp = ApiError::SignIn(SignInError::Throttled(throttled)).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["details"]["retryAfterSeconds"], 7);
    }

    #[test]
    fn typed_causes_choose_their_status() {
        use crate::authn::AuthnError;
        use crate::credentials::{ConnectionNamesProtected, CredentialError, IdentityHeader};
        let refused = |r: Refusal| ApiError::Refused(Arc::new(r)).status().as_u16();
        let identity = IdentityHeader {
            name: "impersonate-user".to_owned(),
        };
        assert_eq!(refused(identity.into()), 403);
        let connection = ConnectionNamesProtected {
            token: "authorization".to_owned(),
        };
        assert_eq!(refused(connection.into()), 400);
        assert_eq!(
            refused(Refusal::KubernetesCredential(CredentialError::Both)),
            401
        );
        assert_eq!(refused(Refusal::SessionCookieOnApi), 401);
        assert_eq!(refused(AuthnError::NoCredentials.into()), 401);
        let not_ready = AuthnError::IssuerNotReady {
            issuer: "https://idp".to_owned(),
            reason: "no keys".to_owned(),
        };
        assert_eq!(refused(not_ready.into()), 503);
        let denial = Denial::Unmapped {
            username: "bob".to_owned(),
            withheld: None,
        };
        assert_eq!(ApiError::Denied(denial).status(), 403);
        assert_eq!(
            ApiError::Plan(PlanError::Stale("stale".to_owned())).status(),
            503
        );
        assert_eq!(ApiError::Plan(PlanError::HeaderValue("x")).status(), 400);
        assert_eq!(ApiError::Plan(PlanError::AdminOff).status(), 500);
        let sign_in = |e| ApiError::SignIn(e).status().as_u16();
        assert_eq!(sign_in(SignInError::Disabled), 404);
        assert_eq!(sign_in(SignInError::AddressNotAllowed), 403);
        assert_eq!(sign_in(SignInError::WrongPassword), 401);
        let busy = ApiError::SignIn(SignInError::Throttled(crate::login_guard::Throttled::Busy));
        assert_eq!((busy.status().as_u16(), busy.retry_after()), (429, Some(1)));
    }

    #[tokio::test]
    async fn a_full_upstream_pool_is_429_with_retry_after_and_says_what_to_do() {
        let full = PoolFull {
            connections: 100,
            streams_per_connection: 100,
        };
        let resp = ApiError::UpstreamBusy(full).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["code"], 429);
        assert_eq!(v["details"]["retryAfterSeconds"], 1);
        let m = v["message"].as_str().unwrap();
        for part in [
            "100 HTTP/2 connections to the kube-apiserver",
            "kubernetes.maxConnections",
            "100 concurrent requests (kubernetes.maxStreamsPerConnection)",
            "rather than queue this request",
            "close watches",
            "ask the platform team to raise kubernetes.maxConnections",
        ] {
            assert!(m.contains(part), "{part:?} not in {m}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_kube_apiserver_is_503_naming_it_and_the_cause_chain() {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<axum::body::Body>();
        // Nothing listens on port 1.
        let req = http::Request::get("http://127.0.0.1:1/version")
            .body(axum::body::Body::empty())
            .unwrap();
        let source = client.request(req).await.unwrap_err();
        let e = ApiError::UpstreamUnavailable {
            base: "http://127.0.0.1:1/".to_owned(),
            source,
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let m = e.to_string();
        assert!(
            m.starts_with("gatehouse cannot reach the kube-apiserver at http://127.0.0.1:1/: "),
            "{m}"
        );
        // The chain goes down to the connection error, not just the client's summary.
        assert!(m.matches(": ").count() >= 2, "{m}");
        assert!(
            m.ends_with(
                "check that it is running and that gatehouse's kubernetes settings point at it"
            ),
            "{m}"
        );
    }
}
