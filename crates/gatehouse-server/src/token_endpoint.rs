//! The sign-in flow's calls to the IdP: the token endpoint (the authorization-code exchange and
//! the refresh grant, `token_request`), the session refresh built on it (`refresh_shared`,
//! single-flight through [`crate::browser_session::RefreshFlights`]), and the revocation
//! endpoint (`revoke_refresh_token`). Used by the sign-in flow ([`crate::browser`]) and the
//! session layer ([`crate::auth_layer`]).
//!
//! # Security
//! - An authorization code the IdP refuses as the client's fault (`invalid_grant`: forged,
//!   reused or expired; `invalid_request`) is told apart from an IdP that cannot be reached,
//!   answers something that is not a token response, or refuses gatehouse's own client
//!   configuration ([`TokenError::client_fault`]): the sign-in flow answers the first with 400
//!   and the others with 502, so an attacker's forged codes never look like an IdP outage.
//! - The refreshed ID token must name the same `sub` and `iss` as the session's, or the
//!   session ends: a refresh can never turn one user's session into another's.
//! - Revocation errors never hold the token.

use gatehouse_core::protocol::{AuthorizationCode, PkceVerifier, RefreshToken};
use gatehouse_core::wire::oauth::{OAuthError, TokenResponse};
use gatehouse_oidc::http::{ErrorBody, HttpError};
use gatehouse_oidc::token::{ClientAuth, TokenClient};
use secrecy::ExposeSecret as _;

use crate::app::App;
use crate::browser_session::Session;
use crate::config::BrowserConfig;

/// Why the token endpoint gave no tokens.
#[derive(Debug)]
pub enum TokenError {
    /// The IdP answered an OAuth error (RFC 6749 §5.2).
    Refused {
        status: reqwest::StatusCode,
        error: String,
        description: String,
    },
    /// The IdP could not be reached, or answered something that is not a token response.
    Unavailable(String),
}

impl TokenError {
    /// True when the request itself was bad: a forged, reused or expired code (or refresh
    /// token), which is the client's doing, not an IdP failure nor gatehouse's configuration
    /// (`invalid_client`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`).
    pub fn client_fault(&self) -> bool {
        matches!(self, TokenError::Refused { error, .. } if error == "invalid_grant" || error == "invalid_request")
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Refused {
                status,
                error,
                description,
            } => write!(f, "the IdP refused ({status}): {error} {description}"),
            TokenError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// A grant the browser flow asks the token endpoint for.
pub(crate) enum Grant<'a> {
    /// The authorization code, with its redirect URI and PKCE verifier.
    Code {
        code: &'a AuthorizationCode,
        redirect_uri: &'a str,
        verifier: &'a PkceVerifier,
    },
    /// The session's refresh token.
    Refresh(&'a RefreshToken),
}

pub(crate) async fn token_request(
    app: &App,
    grant: Grant<'_>,
) -> Result<TokenResponse, TokenError> {
    let (Some(oidc), Some(b)) = (&app.oidc, &app.config.browser) else {
        return Err(TokenError::Unavailable(
            "browser sign-in is not configured".to_owned(),
        ));
    };
    let discovery = oidc.discovery().ok_or_else(|| {
        TokenError::Unavailable("the IdP's metadata is not loaded yet".to_owned())
    })?;
    let client = TokenClient::new(oidc.http(), client_auth(oidc, b));
    let endpoint = &discovery.token_endpoint;
    let answer = match grant {
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            client
                .exchange_code(endpoint, code, redirect_uri, verifier)
                .await
        }
        Grant::Refresh(rt) => client.refresh(endpoint, rt).await,
    };
    answer.map_err(|e| match e {
        HttpError::Transport { source, .. } => {
            TokenError::Unavailable(format!("cannot reach the IdP's token endpoint: {source}"))
        }
        // An OAuth error is a 400 (401 for client authentication) with a JSON `error`;
        // anything else (a 5xx, an HTML page from a proxy) is an unavailable IdP.
        HttpError::Status {
            status,
            body:
                ErrorBody {
                    oauth:
                        Some(OAuthError {
                            error: Some(error),
                            error_description,
                        }),
                    ..
                },
            ..
        } if status.is_client_error() => TokenError::Refused {
            status,
            error,
            description: error_description.unwrap_or_default(),
        },
        HttpError::Status { status, .. } => {
            TokenError::Unavailable(format!("the IdP's token endpoint failed ({status})"))
        }
        HttpError::Decode { source, .. } => TokenError::Unavailable(format!(
            "the IdP's token response is not valid: {}",
            gatehouse_oidc::http::decode_reason(&source)
        )),
    })
}

/// gatehouse as a confidential client of the IdP: its client ID and secret, HTTP Basic.
fn client_auth<'a>(oidc: &'a crate::oidc::OidcVerifier, b: &'a BrowserConfig) -> ClientAuth<'a> {
    ClientAuth::Basic {
        client_id: &oidc.config().client_id,
        secret: &b.client_secret,
    }
}

/// The `sub` and `iss` of a token already verified and sealed in a session. The session cookie
/// is authenticated encryption, so its token is the one gatehouse verified at sign-in.
fn session_identity(token: &str) -> Option<(String, String)> {
    let v = gatehouse_core::token::unverified_claims(token)?;
    Some((
        v.get("sub")?.as_str()?.to_owned(),
        v.get("iss")?.as_str()?.to_owned(),
    ))
}

/// Refreshes `session`, once per refresh token however many requests ask at the same time.
pub(crate) async fn refresh_shared(app: &App, session: &Session) -> Result<Session, String> {
    let Some(rt) = session.refresh_token.as_deref() else {
        return Err("the session expired and has no refresh token".to_owned());
    };
    app.refreshes.run(rt, || refresh(app, session)).await
}

async fn refresh(app: &App, session: &Session) -> Result<Session, String> {
    let Some(rt) = session.refresh_token.as_deref() else {
        return Err("the session expired and has no refresh token".to_owned());
    };
    let tokens = token_request(app, Grant::Refresh(&RefreshToken::new(rt)))
        .await
        .map_err(|e| e.to_string())?;
    let id_token = tokens
        .id_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .ok_or("the refresh response has no ID token")?;
    let oidc = app.oidc.as_ref().ok_or("no issuer")?;
    let verified = oidc
        .verify(&id_token, app.clock.unix_now())
        .await
        .map_err(|e| e.to_string())?;
    check_same_user(session, &verified.subject, &verified.issuer)?;
    Ok(Session {
        token: id_token,
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .or_else(|| session.refresh_token.clone()),
        kind: "oidc".to_owned(),
        created: session.created,
        expires: verified.expires_at,
    })
}

/// A refreshed ID token must be for the session's user: same `sub`, same `iss`.
fn check_same_user(session: &Session, subject: &str, issuer: &str) -> Result<(), String> {
    match session_identity(&session.token) {
        Some((sub, iss)) if sub == subject && iss == issuer => Ok(()),
        Some(_) => Err(
            "the refreshed ID token names another user (sub or iss changed); the session was ended"
                .to_owned(),
        ),
        None => Err("the session's ID token cannot be read; the session was ended".to_owned()),
    }
}

/// Revokes a refresh token at the IdP (RFC 7009). The error never holds the token.
pub(crate) async fn revoke_refresh_token(
    app: &App,
    endpoint: &str,
    refresh_token: &RefreshToken,
) -> Result<(), String> {
    let (Some(oidc), Some(b)) = (&app.oidc, &app.config.browser) else {
        return Err("browser sign-in is not configured".to_owned());
    };
    TokenClient::new(oidc.http(), client_auth(oidc, b))
        .revoke_refresh_token(endpoint, refresh_token)
        .await
        .map_err(|e| match e {
            HttpError::Transport { source, .. } => format!(
                "cannot reach the IdP's revocation endpoint: {}",
                source.without_url()
            ),
            HttpError::Status { status, .. } => {
                format!("the IdP's revocation endpoint answered {status}")
            }
            // A 2xx is success whatever its body, which is not read: not reached.
            HttpError::Decode { .. } => {
                "the IdP's revocation endpoint sent an answer that cannot be read".to_owned()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser_session::tests::session;

    /// An unsigned JWT-shaped token with these claims (the session check reads only claims).
    fn jwt(claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            enc(br#"{"alg":"RS256"}"#),
            enc(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn a_refreshed_id_token_must_name_the_sessions_subject_and_issuer() {
        let s = session(
            &jwt(&serde_json::json!({"sub": "alice", "iss": "https://idp"})),
            "rt",
        );
        assert!(check_same_user(&s, "alice", "https://idp").is_ok());
        let err = check_same_user(&s, "mallory", "https://idp").unwrap_err();
        assert!(err.contains("another user"), "{err}");
        assert!(check_same_user(&s, "alice", "https://other-idp").is_err());
        assert!(check_same_user(&session("opaque", "rt"), "alice", "https://idp").is_err());
    }

    #[test]
    fn invalid_grant_is_the_clients_fault_and_an_unreachable_idp_is_not() {
        let refused = |error: &str| TokenError::Refused {
            status: reqwest::StatusCode::BAD_REQUEST,
            error: error.to_owned(),
            description: String::new(),
        };
        assert!(refused("invalid_grant").client_fault());
        assert!(refused("invalid_request").client_fault());
        // gatehouse's own configuration, not the browser's doing.
        assert!(!refused("invalid_client").client_fault());
        assert!(!refused("unauthorized_client").client_fault());
        assert!(!TokenError::Unavailable("down".to_owned()).client_fault());
    }
}
