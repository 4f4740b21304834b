//! The configured OIDC issuer: discovery, its key set, and token verification.
//!
//! # Security
//! - Discovery and JWKS are fetched only from the configured issuer, over TLS verified against
//!   the system roots plus the issuer's own CA bundle (`oidc.caFile`). The discovery document's
//!   `issuer` must equal the configured issuer exactly (OpenID Connect Discovery §4.3).
//! - The key set is held in memory. A token whose `kid` is unknown triggers at most one refetch
//!   per `oidc.jwksMinRefreshInterval`, so a flood of tokens with made-up key IDs cannot turn
//!   gatehouse into an amplifier against the IdP.
//! - The allowed algorithms are the configured list, or else the asymmetric subset of the
//!   issuer's `id_token_signing_alg_values_supported` (RS256 when it names none).
//! - When the issuer cannot be reached at start, gatehouse still starts; `/readyz` says why and
//!   discovery is retried with exponential backoff. Until then OIDC tokens are refused with 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use gatehouse_core::jwt::{self, Policy, Verified, VerifyError};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::Mutex;

use crate::config::OidcConfig;

pub use gatehouse_core::discovery::Discovery;

/// Why the issuer's metadata could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// An HTTP or TLS failure.
    #[error("cannot fetch {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The discovery document names another issuer.
    #[error(
        "discovery document names issuer {found:?}, but gatehouse is configured with {expected:?}; set oidc.issuerUrl to exactly the issuer's value"
    )]
    IssuerMismatch {
        /// Configured.
        expected: String,
        /// Found.
        found: String,
    },
    /// The CA bundle could not be read.
    #[error("cannot use oidc.caFile {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Why a token from the configured issuer was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The issuer's metadata is not loaded yet.
    #[error("the OIDC issuer's keys are not loaded yet: {0}")]
    NotReady(String),
    /// The token failed verification.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
}

struct Loaded {
    discovery: Discovery,
    jwks: JwkSet,
    policy: Policy,
}

/// The issuer, with its keys held in memory.
pub struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    loaded: ArcSwapOption<Loaded>,
    status: ArcSwap<String>,
    last_refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.config.issuer_url)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// Builds the verifier; nothing is fetched until [`OidcVerifier::run`].
    pub fn new(config: OidcConfig) -> Result<Self, FetchError> {
        let http = http_client(config.ca_file.as_deref())?;
        Ok(Self {
            config,
            http,
            loaded: ArcSwapOption::empty(),
            status: ArcSwap::from_pointee("discovery has not completed yet".to_owned()),
            last_refresh: Mutex::new(None),
        })
    }

    /// The configured issuer.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The HTTP client for this issuer (its CA bundle included).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The discovery document, once loaded.
    pub fn discovery(&self) -> Option<Discovery> {
        self.loaded.load().as_ref().map(|l| l.discovery.clone())
    }

    /// `None` when ready, else why not.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.loaded.load().is_some() {
            None
        } else {
            Some(format!(
                "OIDC issuer {}: {}",
                self.config.issuer_url,
                self.status.load()
            ))
        }
    }

    /// Loads discovery and keys, retrying with exponential backoff until it succeeds.
    pub async fn run(self: Arc<Self>) {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.load().await {
                Ok(()) => {
                    tracing::info!(issuer = %self.config.issuer_url, "OIDC issuer loaded");
                    return;
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.config.issuer_url, error = %e, retry_in = ?delay, "OIDC issuer not reachable");
                    self.status.store(Arc::new(e.to_string()));
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    async fn load(&self) -> Result<(), FetchError> {
        let issuer = &self.config.issuer_url;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        if &discovery.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                expected: issuer.clone(),
                found: discovery.issuer,
            });
        }
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let algorithms = self.config.algorithms.clone().unwrap_or_else(|| {
            let mut algs: Vec<Algorithm> = discovery
                .id_token_signing_alg_values_supported
                .iter()
                .filter_map(|a| a.parse::<Algorithm>().ok())
                .filter(|a| jwt::is_asymmetric(*a))
                .collect();
            if algs.is_empty() {
                algs.push(Algorithm::RS256);
            }
            algs
        });
        let mut audiences = self.config.client_ids();
        audiences.extend(self.config.audiences.iter().cloned());
        let policy = Policy::new(
            issuer.clone(),
            audiences,
            self.config.client_ids(),
            algorithms,
            self.config.clock_skew.as_secs(),
        );
        self.loaded.store(Some(Arc::new(Loaded {
            discovery,
            jwks,
            policy,
        })));
        *self.last_refresh.lock().await = Some(Instant::now());
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let err = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?
            .json::<T>()
            .await
            .map_err(err)
    }

    /// Verifies a token from this issuer at time `now` (unix seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, OidcError> {
        let Some(loaded) = self.loaded.load_full() else {
            return Err(OidcError::NotReady(self.status.load().to_string()));
        };
        match jwt::verify(token, &loaded.jwks, &loaded.policy, now) {
            Err(VerifyError::UnknownKey { kid }) => {
                if self.refresh_keys().await {
                    let Some(loaded) = self.loaded.load_full() else {
                        return Err(OidcError::Invalid(VerifyError::UnknownKey { kid }));
                    };
                    Ok(jwt::verify(token, &loaded.jwks, &loaded.policy, now)?)
                } else {
                    Err(OidcError::Invalid(VerifyError::UnknownKey { kid }))
                }
            }
            other => Ok(other?),
        }
    }

    /// Refetches the key set unless that was done within the minimum interval. Returns whether
    /// new keys were loaded. Concurrent callers wait for one fetch.
    async fn refresh_keys(&self) -> bool {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.config.jwks_min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        let Some(current) = self.loaded.load_full() else {
            return false;
        };
        match self.get_json::<JwkSet>(&current.discovery.jwks_uri).await {
            Ok(jwks) => {
                tracing::info!(keys = jwks.keys.len(), "refetched the issuer's key set");
                self.loaded.store(Some(Arc::new(Loaded {
                    discovery: current.discovery.clone(),
                    jwks,
                    policy: current.policy.clone(),
                })));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refetch the issuer's key set");
                false
            }
        }
    }
}

/// An HTTP client trusting the system roots and, when given, a PEM CA bundle.
pub fn http_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let ca_err = |reason: String| FetchError::Ca {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificate in the file".to_owned()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|source| FetchError::Http {
        url: String::new(),
        source,
    })
}
