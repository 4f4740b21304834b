//! Rendering gatehouse's pages: an askama template into a response (a template that cannot
//! render is a 500 Status, never a half page), and [`PageError`], every failure the web UI
//! ([`crate::ui`]) and the sign-in flow ([`crate::browser`]) answer, with the one mapping from
//! a failure to its error page (status, title, what happened, and where to start again).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use gatehouse_core::authorize::AuthorizeError;
use gatehouse_core::identity::IdentityError;

use crate::oidc::OidcError;
use crate::status::ApiError;
use crate::token_endpoint::TokenError;

/// The page `t`, rendered, with `status`.
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::Internal(format!("cannot render the page: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    signed_in: bool,
    page: &'a str,
    title: &'a str,
    message: &'a str,
    retry: Option<&'a str>,
}

/// Why a sign-in parameter (`/auth/login?name=value`) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterProblem {
    /// A protocol parameter that gatehouse sets itself.
    Reserved,
    /// Not among `oidc.userParameters`; the allowed names, listed (or `none`).
    NotAllowed(String),
    /// Longer than [`gatehouse_core::authorize::MAX_PARAMETER_LEN`].
    TooLong,
    /// Does not match its pattern (shown).
    Mismatch(String),
    /// Given twice (or also set by the server).
    Repeated,
}

/// A failure answered with an HTML error page (or, for [`PageError::Internal`], a 500
/// `Status`, as every internal error is). Fields named `retry` are the link offered to start
/// again.
#[derive(Debug)]
pub enum PageError {
    /// `/auth/login` without browser sign-in configured (404).
    SignInOff,
    /// `/auth/callback` without browser sign-in configured (404).
    CallbackOff,
    /// The page to return to is not a path on gatehouse (400).
    UnsafeReturn,
    /// A sign-in parameter refused (400).
    Parameter {
        /// The parameter's name.
        name: String,
        /// Why.
        problem: ParameterProblem,
    },
    /// The IdP's metadata is not loaded yet (503): why.
    IdpNotLoaded(String),
    /// The authorization URL could not be built (502).
    CannotStart(AuthorizeError),
    /// No sealed flow cookie for this callback (400).
    FlowNotFound,
    /// The flow is older than its 10 minutes (400).
    FlowExpired {
        /// Start again.
        retry: String,
    },
    /// `state` does not match the flow's (400).
    StateMismatch {
        /// Start again.
        retry: String,
    },
    /// The IdP answered an error to the callback (400).
    IdpRefused {
        /// OAuth `error`.
        error: String,
        /// `error_description`, or empty.
        description: String,
        /// Start again.
        retry: String,
    },
    /// The callback has no `code` (400).
    NoCode {
        /// Start again.
        retry: String,
    },
    /// The code exchange failed: 400 when the IdP refused the code as the client's fault
    /// ([`TokenError::client_fault`]), else 502.
    Exchange {
        /// Why.
        reason: TokenError,
        /// Start again.
        retry: String,
    },
    /// The token response has no ID token (502).
    NoIdToken {
        /// Start again.
        retry: String,
    },
    /// The ID token does not verify (502).
    IdTokenRefused {
        /// Why.
        reason: OidcError,
        /// Start again.
        retry: String,
    },
    /// `nonce` does not match the flow's (400).
    NonceMismatch {
        /// Start again.
        retry: String,
    },
    /// The verified token's claims make no user (403).
    NoUser {
        /// Why.
        reason: IdentityError,
        /// Start again.
        retry: String,
    },
    /// `/auth/logout` from another origin (403).
    CrossSiteSignOut,
    /// `/ui/admin-login` without a session key (404).
    NoBrowserSessions,
    /// `/ui/admin-login` from another origin (403).
    CrossSiteSignIn,
    /// gatehouse cannot tell which client this is (400): why.
    UnknownClient(String),
    /// `/ui/ca.pem` without `publicCaFile` (404).
    NoCa,
    /// A bug or an unexpected failure (500 `Status`). The message never holds a secret.
    Internal(String),
}

impl PageError {
    /// The status, title, message and start-again link of the page.
    fn page(&self) -> (StatusCode, &'static str, String, Option<&str>) {
        use StatusCode as S;
        const LOGIN: Option<&str> = Some("/auth/login");
        match self {
            PageError::SignInOff => (
                S::NOT_FOUND,
                "Browser sign-in is not configured",
                "This gatehouse has no oidc.clientSecret and session.key, so it cannot sign you in with a browser. Use `gatehouse login` in a terminal, or ask your platform team.".to_owned(),
                None,
            ),
            PageError::CallbackOff => (
                S::NOT_FOUND,
                "Browser sign-in is not configured",
                "This gatehouse cannot complete a browser sign-in.".to_owned(),
                None,
            ),
            PageError::UnsafeReturn => (
                S::BAD_REQUEST,
                "Unsafe return address",
                "The page to return to after sign-in must be a path on this gatehouse (starting with a single /). Sign-in was not started.".to_owned(),
                Some("/"),
            ),
            PageError::Parameter { name, problem } => {
                let (title, message) = match problem {
                    ParameterProblem::Reserved => (
                        "Reserved parameter",
                        format!(
                            "{name:?} is a protocol parameter that gatehouse sets itself; it cannot be passed to sign-in."
                        ),
                    ),
                    ParameterProblem::NotAllowed(allowed) => (
                        "Parameter not allowed",
                        format!(
                            "{name:?} is not a parameter you may set at sign-in on this gatehouse. Allowed: {allowed}."
                        ),
                    ),
                    ParameterProblem::TooLong => (
                        "Parameter too long",
                        format!(
                            "The value of {name:?} is longer than {} bytes.",
                            gatehouse_core::authorize::MAX_PARAMETER_LEN
                        ),
                    ),
                    ParameterProblem::Repeated => (
                        "Parameter repeated",
                        format!(
                            "{name:?} is given more than once (or is one the server sets itself); pass it once."
                        ),
                    ),
                    ParameterProblem::Mismatch(pattern) => (
                        "Parameter value refused",
                        format!(
                            "The value given for {name:?} does not match the pattern the server allows ({pattern})."
                        ),
                    ),
                };
                (S::BAD_REQUEST, title, message, LOGIN)
            }
            PageError::IdpNotLoaded(reason) => (
                S::SERVICE_UNAVAILABLE,
                "Identity provider not reachable",
                format!(
                    "gatehouse has not loaded the identity provider's metadata yet ({reason}). Try again in a moment."
                ),
                LOGIN,
            ),
            PageError::CannotStart(e) => {
                (S::BAD_GATEWAY, "Cannot start sign-in", e.to_string(), Some("/"))
            }
            PageError::FlowNotFound => (
                S::BAD_REQUEST,
                "Sign-in flow not found",
                "This sign-in response does not belong to a sign-in started in this browser, or it was already used, or cookies are blocked. Nothing was signed in.".to_owned(),
                LOGIN,
            ),
            PageError::FlowExpired { retry } => (
                S::BAD_REQUEST,
                "Sign-in took too long",
                "The sign-in flow expired after 10 minutes. Nothing was signed in.".to_owned(),
                Some(retry),
            ),
            PageError::StateMismatch { retry } => (
                S::BAD_REQUEST,
                "Sign-in state does not match",
                "The response does not match the sign-in this browser started (state mismatch). Nothing was signed in.".to_owned(),
                Some(retry),
            ),
            PageError::IdpRefused {
                error,
                description,
                retry,
            } => (
                S::BAD_REQUEST,
                "The identity provider did not sign you in",
                format!(
                    "It answered {error:?}{}{description}.",
                    if description.is_empty() { "" } else { ": " },
                ),
                Some(retry),
            ),
            PageError::NoCode { retry } => (
                S::BAD_REQUEST,
                "No authorization code",
                "The identity provider's response has no code.".to_owned(),
                Some(retry),
            ),
            PageError::Exchange { reason, retry } if reason.client_fault() => (
                S::BAD_REQUEST,
                "The sign-in could not be completed",
                format!(
                    "The identity provider refused this sign-in's authorization code ({reason}). A code can be used only once and for a short time, so it may have been used already or have expired. Nothing was signed in; start again."
                ),
                Some(retry),
            ),
            PageError::Exchange { reason, retry } => (
                S::BAD_GATEWAY,
                "The code could not be exchanged",
                format!("{reason}. Try again in a moment."),
                Some(retry),
            ),
            PageError::NoIdToken { retry } => (
                S::BAD_GATEWAY,
                "No ID token",
                "The identity provider's token response has no ID token (is the `openid` scope allowed for this client?).".to_owned(),
                Some(retry),
            ),
            PageError::IdTokenRefused { reason, retry } => (
                S::BAD_GATEWAY,
                "The ID token was refused",
                reason.to_string(),
                Some(retry),
            ),
            PageError::NonceMismatch { retry } => (
                S::BAD_REQUEST,
                "Sign-in nonce does not match",
                "The ID token was not issued for this sign-in (nonce mismatch). Nothing was signed in.".to_owned(),
                Some(retry),
            ),
            PageError::NoUser { reason, retry } => {
                (S::FORBIDDEN, "Sign-in refused", reason.to_string(), Some(retry))
            }
            PageError::CrossSiteSignOut => (
                S::FORBIDDEN,
                "Cross-site sign-out refused",
                "Sign out from gatehouse's own page.".to_owned(),
                Some("/ui/whoami"),
            ),
            PageError::NoBrowserSessions => (
                S::NOT_FOUND,
                "No browser sessions",
                "This gatehouse has no session key; sign in with `gatehouse login --admin`.".to_owned(),
                None,
            ),
            PageError::CrossSiteSignIn => (
                S::FORBIDDEN,
                "Cross-site sign-in refused",
                "Sign in from gatehouse's own page.".to_owned(),
                Some("/"),
            ),
            PageError::UnknownClient(reason) => (
                S::BAD_REQUEST,
                "Sign-in refused",
                format!(
                    "{reason}: gatehouse cannot tell which client this is, so it does not check the password. Ask your platform team to check the proxy in front of gatehouse."
                ),
                Some("/"),
            ),
            PageError::NoCa => (
                S::NOT_FOUND,
                "No CA certificate offered",
                "This gatehouse has no publicCaFile: its certificate is signed by a CA your system already trusts, or ask your platform team for the CA.".to_owned(),
                None,
            ),
            PageError::Internal(m) => (S::INTERNAL_SERVER_ERROR, "Internal error", m.clone(), None),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> StatusCode {
        self.page().0
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::Internal(m) = self {
            return ApiError::Internal(m).into_response();
        }
        let (status, title, message, retry) = self.page();
        render(
            status,
            &ErrorPage {
                signed_in: false,
                page: "",
                title,
                message: &message,
                retry,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    async fn body(e: PageError) -> (StatusCode, String) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_code_the_idp_refuses_as_the_clients_fault_is_400_and_an_unreachable_idp_502() {
        let refused = PageError::Exchange {
            reason: TokenError::Refused {
                status: reqwest::StatusCode::BAD_REQUEST,
                error: "invalid_grant".to_owned(),
                description: String::new(),
            },
            retry: "/auth/login?return_to=%2F".to_owned(),
        };
        let (status, html) = body(refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            html.contains("The sign-in could not be completed"),
            "{html}"
        );
        assert!(html.contains("/auth/login?return_to=%2F"), "{html}");
        let down = PageError::Exchange {
            reason: TokenError::Unavailable("down".to_owned()),
            retry: "/auth/login".to_owned(),
        };
        let (status, html) = body(down).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(html.contains("The code could not be exchanged"), "{html}");
    }

    #[tokio::test]
    async fn internal_errors_stay_a_status_and_pages_are_html() {
        let (status, text) = body(PageError::Internal("boom".to_owned())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["kind"], "Status");
        let (status, html) = body(PageError::UnsafeReturn).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("Unsafe return address"), "{html}");
    }
}
