//! HTTP to the gatehouse server and the IdP: public config, discovery, the token endpoint,
//! ID token verification (core's `jwt::verify` against the IdP's JWKS).
//!
//! # Security
//! - TLS is rustls with the system roots plus the CA given at login (kept in the cache entry
//!   so `gatehouse token` can refresh without flags).
//! - Redirects are not followed: a token endpoint must answer itself.
//! - Error bodies from the IdP are reduced to `error` / `error_description`; bodies that could
//!   hold tokens are never printed.

use std::time::Duration;

use gatehouse_core::jwt::{self, Policy, Verified};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
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
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                CliError::Ca {
                    path: ca_path.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(CliError::Ca {
                    path: ca_path.to_owned(),
                    reason: "no PEM certificate in it".to_owned(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| CliError::Ca {
            path: ca_path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self { http })
    }

    /// The underlying client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
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

    /// GETs JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, CliError> {
        let mut req = self.http.get(url).header("accept", "application/json");
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Self::unreachable(what, url, e))?;
        Self::json(what, url, resp).await
    }

    async fn json<T: serde::de::DeserializeOwned>(
        what: &'static str,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<T, CliError> {
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Self::unreachable(what, url, e))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<OAuthError>(&bytes)
                .ok()
                .filter(|e| e.code().is_some())
                .map(|e| e.message())
                .or_else(|| {
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                })
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
            return Err(CliError::Refused {
                what,
                url: url.to_owned(),
                status: status.as_u16(),
                message,
                hint: String::new(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::BadAnswer {
            what,
            url: url.to_owned(),
            reason: format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        })
    }

    /// POSTs a form and reads JSON. Errors keep the OAuth `error` code.
    pub async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<T, CliError> {
        let resp = self
            .http
            .post(url)
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| Self::unreachable(what, url, e))?;
        Self::json(what, url, resp).await
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
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(IDP, &url, None).await?;
        if d.issuer != issuer {
            return Err(CliError::BadAnswer {
                what: IDP,
                url,
                reason: format!(
                    "its issuer {:?} differs from the configured issuer {issuer:?}",
                    d.issuer
                ),
            });
        }
        Ok(d)
    }

    /// Verifies an ID token against the IdP's key set. `nonce`, when given, must equal the
    /// token's `nonce` claim (compared in constant time).
    pub async fn verify_id_token(
        &self,
        d: &Discovery,
        client_id: &str,
        id_token: &str,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<Verified, CliError> {
        let keys: JwkSet = self.get_json(IDP, &d.jwks_uri, None).await?;
        let mut algorithms: Vec<Algorithm> = d
            .id_token_signing_alg_values_supported
            .iter()
            .filter_map(|a| a.parse::<Algorithm>().ok())
            .filter(|a| jwt::is_asymmetric(*a))
            .collect();
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        let policy = Policy::new(
            d.issuer.clone(),
            vec![client_id.to_owned()],
            vec![client_id.to_owned()],
            algorithms,
            jwt::MAX_SKEW_SECS,
        );
        let verified =
            jwt::verify(id_token, &keys, &policy, now).map_err(|source| CliError::Verify {
                issuer: d.issuer.clone(),
                source,
            })?;
        if let Some(expected) = nonce {
            let found = verified
                .claims
                .get("nonce")
                .and_then(|n| n.as_str())
                .unwrap_or("");
            if !secrets_equal(found, expected) {
                return Err(CliError::Login {
                    reason: "the ID token's nonce does not match this sign-in".to_owned(),
                    hint: "sign in again; if it keeps failing, something replays old tokens"
                        .to_owned(),
                });
            }
        }
        Ok(verified)
    }
}

pub use gatehouse_core::authorize::secrets_equal;

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
    use base64::Engine as _;
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
            let exp = access
                .split('.')
                .nth(1)
                .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64))
                .ok_or_else(|| bad("the access token is not a JWT with an exp claim; tokenType access_token needs JWT access tokens (for example a resource indicator)"))?;
            Ok((access, exp))
        }
    }
}
