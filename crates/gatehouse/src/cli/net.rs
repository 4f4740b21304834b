//! HTTP to the gatehouse server and the IdP, through the shared OIDC client
//! ([`gatehouse_oidc`]): public config, discovery, the token endpoint client, ID token
//! verification; and the CLI's wording of their failures ([`Net::error`]).
//!
//! # Security
//! - TLS is rustls with the system roots plus the CA given at login (kept in the cache entry
//!   so `gatehouse token` can refresh without flags); [`gatehouse_oidc::http`] builds it.
//! - Redirects are not followed: a token endpoint must answer itself.
//! - Error bodies from the IdP are reduced to `error` / `error_description`; bodies that could
//!   hold tokens are never printed ([`gatehouse_oidc::http::HttpError`]).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::jwt::Verified;
use gatehouse_core::protocol::Nonce;
use gatehouse_oidc::discovery::DiscoveryError;
use gatehouse_oidc::http::HttpError;
use gatehouse_oidc::id_token::{self, IdTokenError};
use gatehouse_oidc::keys::{self, KeySet, StaticKeys};
use gatehouse_oidc::token::{ClientAuth, TokenClient};
use secrecy::ExposeSecret as _;

use crate::cli::error::CliError;

/// The server's `GET /v1/config` and its parts: the shared wire types.
pub use gatehouse_core::wire::{PublicConfig, PublicOidc};

pub use gatehouse_core::discovery::Discovery;

/// The token endpoint's answers: the shared wire types.
pub use gatehouse_core::wire::oauth::{OAuthError, TokenResponse};

/// An HTTP client for one server/IdP pair.
#[derive(Debug, Clone)]
pub struct Net {
    http: reqwest::Client,
}

/// Who is being talked to, for error messages.
pub const SERVER: &str = "the gatehouse server";
/// Who is being talked to, for error messages.
pub const IDP: &str = "the identity provider";

impl Net {
    /// A client trusting the system roots and `ca_pem` when given.
    pub fn new(ca_pem: Option<&str>, ca_path: &str) -> Result<Self, CliError> {
        crate::cli::install_crypto_provider();
        let settings = gatehouse_oidc::http::Settings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: Some(concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION"))),
        };
        let http =
            gatehouse_oidc::http::client(ca_pem.map(str::as_bytes), &settings).map_err(|e| {
                CliError::Ca {
                    path: ca_path.to_owned(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Self { http })
    }

    /// The underlying client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The token endpoint client for the public client `client_id`.
    pub fn token_client<'a>(&'a self, client_id: &'a str) -> TokenClient<'a> {
        TokenClient::new(&self.http, ClientAuth::Public(client_id))
    }

    fn unreachable(what: &'static str, url: &str, e: reqwest::Error) -> CliError {
        let mut chain = String::new();
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            chain.push_str(&c.to_string());
            cause = c.source();
        }
        let hint = if chain.contains("certificate") || chain.contains("UnknownIssuer") {
            format!(
                "{what}'s TLS certificate is not trusted here: pass the CA that signed it with --certificate-authority FILE"
            )
        } else if e.is_timeout() {
            format!("{what} did not answer in time: check the network and the URL")
        } else if what == SERVER {
            "check the server URL, and that gatehouse runs there".to_owned()
        } else {
            "check that the identity provider is reachable from this machine".to_owned()
        };
        CliError::Unreachable {
            what,
            url: url.to_owned(),
            source: e.without_url(),
            hint,
        }
    }

    /// A failed request to `what`, for people: unreachable (with a hint), refused (the OAuth
    /// error, a `message`, or the status's reason), or an answer that cannot be read.
    pub fn error(what: &'static str, e: HttpError) -> CliError {
        match e {
            HttpError::Transport { url, source } => Self::unreachable(what, &url, source),
            HttpError::Status { url, status, body } => CliError::Refused {
                what,
                url,
                status: status.as_u16(),
                message: body
                    .text()
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
                hint: String::new(),
            },
            HttpError::Decode { url, source } => CliError::BadAnswer {
                what,
                url,
                reason: gatehouse_oidc::http::decode_reason(&source),
            },
        }
    }

    /// GETs JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, CliError> {
        gatehouse_oidc::http::get_json(&self.http, url, bearer)
            .await
            .map_err(|e| Self::error(what, e))
    }

    /// The server's public config.
    pub async fn server_config(&self, server: &str) -> Result<PublicConfig, CliError> {
        let url = format!("{server}/v1/config");
        self.get_json(SERVER, &url, None)
            .await
            .map_err(|e| e.refusal_hint("is this a gatehouse server? Check the URL"))
    }

    /// The IdP's discovery document; its `issuer` must equal `issuer`.
    pub async fn discovery(&self, issuer: &str) -> Result<Discovery, CliError> {
        gatehouse_oidc::discovery::fetch(&self.http, issuer)
            .await
            .map_err(|e| match e {
                DiscoveryError::Http(e) => Self::error(IDP, e),
                DiscoveryError::IssuerMismatch {
                    url,
                    expected,
                    found,
                } => CliError::BadAnswer {
                    what: IDP,
                    url,
                    reason: format!(
                        "its issuer {found:?} differs from the configured issuer {expected:?}"
                    ),
                },
            })
    }

    /// Verifies an ID token against the IdP's key set. `nonce`, when given, must equal the
    /// token's `nonce` claim (compared in constant time).
    pub async fn verify_id_token(
        &self,
        d: &Discovery,
        client_id: &str,
        id_token: &str,
        nonce: Option<&Nonce>,
        now: i64,
    ) -> Result<Verified, CliError> {
        let jwks = keys::fetch(&self.http, d)
            .await
            .map_err(|e| Self::error(IDP, e))?;
        let keys = StaticKeys(Arc::new(KeySet {
            discovery: d.clone(),
            jwks,
            policy: id_token::policy(d, client_id),
        }));
        id_token::verify(&keys, id_token, nonce, now)
            .await
            .map_err(|e| match e {
                IdTokenError::Invalid(source) => CliError::Verify {
                    issuer: d.issuer.clone(),
                    source,
                },
                IdTokenError::NonceMismatch => CliError::Login {
                    reason: "the ID token's nonce does not match this sign-in".to_owned(),
                    hint: "sign in again; if it keeps failing, something replays old tokens"
                        .to_owned(),
                },
                // A key set read once is always loaded.
                IdTokenError::NotReady(reason) => CliError::BadAnswer {
                    what: IDP,
                    url: d.jwks_uri.clone(),
                    reason,
                },
            })
    }
}

pub use gatehouse_server::clock::unix_now;

/// The token handed to kubectl and its expiry: the verified ID token, or, with
/// [`TokenType::AccessToken`](crate::cli::cache::TokenType::AccessToken), the access token, which must be a JWT. The access token's claims
/// are read here only for its expiry; gatehouse and the kube-apiserver verify it.
pub fn pick_token(
    token_type: crate::cli::cache::TokenType,
    tokens: &TokenResponse,
    id_token: &str,
    id_verified: &Verified,
    token_endpoint: &str,
) -> Result<(String, i64), CliError> {
    match token_type {
        crate::cli::cache::TokenType::IdToken => Ok((id_token.to_owned(), id_verified.expires_at)),
        crate::cli::cache::TokenType::AccessToken => {
            let bad = |reason: &str| CliError::BadAnswer {
                what: IDP,
                url: token_endpoint.to_owned(),
                reason: reason.to_owned(),
            };
            let access = tokens
                .access_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .ok_or_else(|| bad("no access_token in the token response"))?;
            let exp = gatehouse_core::token::unverified_claims(&access)
                .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64))
                .ok_or_else(|| bad("the access token is not a JWT with an exp claim; tokenType access_token needs JWT access tokens (for example a resource indicator)"))?;
            Ok((access, exp))
        }
    }
}
