//! The OAuth 2.0 token endpoint and its neighbours: the authorization-code grant with PKCE
//! (RFC 6749 §4.1, RFC 7636), the refresh grant (§6), the device authorization grant with its
//! polling (RFC 8628), and token revocation (RFC 7009).
//!
//! Answers are the shared [`gatehouse_core::wire::oauth`] types; failures are one
//! [`HttpError`] (transport, an HTTP status with the OAuth error body read, or an answer that
//! cannot be read), so each caller decides what it tells its user.
//!
//! # Security
//! - Tokens, codes and the device code come back as [`SecretString`]s, and the secret inputs
//!   (code, PKCE verifier, refresh token) are [`gatehouse_core::protocol`] types; their
//!   `Debug` is redacted, and nothing here logs a request or an answer.
//! - A confidential client sends its secret with HTTP Basic ([`ClientAuth::Basic`]); a public
//!   client (the CLI) sends only its `client_id` and proves the code with the PKCE verifier.
//! - Device polling follows RFC 8628 §3.5: wait the interval before each poll, add 5 seconds
//!   for good on every `slow_down`, stop on any other error and before the code's lifetime
//!   ends ([`poll_device`]).

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use gatehouse_core::protocol::{AuthorizationCode, PkceVerifier, RefreshToken};
use gatehouse_core::wire::oauth::TokenResponse;

pub use crate::http::ClientAuth;
use crate::http::{self, HttpError};

/// The device grant's `grant_type`.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A token endpoint client: the HTTP client and how it authenticates.
#[derive(Debug, Clone, Copy)]
pub struct TokenClient<'a> {
    http: &'a reqwest::Client,
    auth: ClientAuth<'a>,
}

/// The device authorization endpoint's answer (RFC 8628 §3.2). `Debug` is redacted.
#[derive(Deserialize)]
pub struct DeviceAuthorization {
    /// `device_code`: polled with; a secret.
    #[serde(deserialize_with = "secret")]
    pub device_code: SecretString,
    /// `user_code`: shown to the user.
    pub user_code: String,
    /// `verification_uri`.
    pub verification_uri: String,
    /// `verification_uri_complete`.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// `expires_in`, seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// `interval`, seconds.
    #[serde(default)]
    pub interval: Option<u64>,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceAuthorization(<redacted>)")
    }
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

/// One answer of the token endpoint to a device-code poll.
#[derive(Debug)]
pub enum DevicePoll<T> {
    /// The tokens.
    Done(T),
    /// An error answer: `error` is the OAuth code (`authorization_pending`, `slow_down`,
    /// `access_denied`...), empty when the body has none.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
}

/// Why [`poll_device`] stopped without tokens.
#[derive(Debug)]
pub enum PollEnd<E> {
    /// The next poll would come after the code's lifetime.
    Expired,
    /// The endpoint answered an error other than `authorization_pending` / `slow_down`.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code (empty when the body has none).
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
    /// A poll failed.
    Failed(E),
}

impl<'a> TokenClient<'a> {
    /// A client of `http` authenticating as `auth`.
    pub fn new(http: &'a reqwest::Client, auth: ClientAuth<'a>) -> Self {
        Self { http, auth }
    }

    /// The client ID.
    pub fn client_id(&self) -> &str {
        self.auth.client_id()
    }

    /// Exchanges an authorization code, with the PKCE verifier (RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        token_endpoint: &str,
        code: &AuthorizationCode,
        redirect_uri: &str,
        verifier: &PkceVerifier,
    ) -> Result<TokenResponse, HttpError> {
        http::post_form(
            self.http,
            token_endpoint,
            self.auth,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier.expose_secret()),
            ],
        )
        .await
    }

    /// The refresh grant.
    pub async fn refresh(
        &self,
        token_endpoint: &str,
        refresh_token: &RefreshToken,
    ) -> Result<TokenResponse, HttpError> {
        http::post_form(
            self.http,
            token_endpoint,
            self.auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ],
        )
        .await
    }

    /// Starts the device grant (RFC 8628 §3.1) with `form` (scope, PKCE challenge, parameters).
    pub async fn device_authorization(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<DeviceAuthorization, HttpError> {
        http::post_form(self.http, endpoint, self.auth, form).await
    }

    /// Polls for the device grant's tokens once (RFC 8628 §3.4); an error answer is a
    /// [`DevicePoll::Refused`], for [`poll_device`] to read.
    pub async fn poll_device_once(
        &self,
        token_endpoint: &str,
        device: &DeviceAuthorization,
        verifier: &PkceVerifier,
    ) -> Result<DevicePoll<TokenResponse>, HttpError> {
        use secrecy::ExposeSecret as _;
        let answer = http::post_form(
            self.http,
            token_endpoint,
            self.auth,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", device.device_code.expose_secret()),
                ("code_verifier", verifier.expose_secret()),
            ],
        )
        .await;
        match answer {
            Ok(tokens) => Ok(DevicePoll::Done(tokens)),
            Err(HttpError::Status { status, body, .. }) => {
                let oauth = body.oauth.unwrap_or_default();
                Ok(DevicePoll::Refused {
                    status: status.as_u16(),
                    error: oauth.error.unwrap_or_default(),
                    description: oauth.error_description,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Revokes a refresh token (RFC 7009). Any 2xx is success.
    pub async fn revoke_refresh_token(
        &self,
        endpoint: &str,
        refresh_token: &RefreshToken,
    ) -> Result<(), HttpError> {
        http::post_form_raw(
            self.http,
            endpoint,
            self.auth,
            &[
                ("token", refresh_token.expose_secret()),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await
        .map(drop)
    }
}

/// Polls as RFC 8628 §3.5 asks: wait `interval` before each poll, keep waiting on
/// `authorization_pending`, add 5 seconds to the interval for good on every `slow_down`, stop
/// on any other error or when the next poll would come after `lifetime`.
pub async fn poll_device<T, E, F, Fut>(
    mut interval: Duration,
    lifetime: Duration,
    mut poll: F,
) -> Result<T, PollEnd<E>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<DevicePoll<T>, E>>,
{
    let deadline = tokio::time::Instant::now() + lifetime;
    loop {
        if tokio::time::Instant::now() + interval > deadline {
            return Err(PollEnd::Expired);
        }
        tokio::time::sleep(interval).await;
        match poll().await.map_err(PollEnd::Failed)? {
            DevicePoll::Done(tokens) => return Ok(tokens),
            DevicePoll::Refused {
                status,
                error,
                description,
            } => match error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += Duration::from_secs(5),
                _ => {
                    return Err(PollEnd::Refused {
                        status,
                        error,
                        description,
                    });
                }
            },
        }
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
