//! The configured OIDC issuer: discovery, its key set, and token verification.
//!
//! # Security
//! - Discovery and JWKS are fetched only from the configured issuer, over TLS verified against
//!   the system roots plus the issuer's own CA bundle (`oidc.caFile`). The discovery document's
//!   `issuer` must equal the configured issuer exactly (OpenID Connect Discovery §4.3).
//! - The key set is held in memory. A token whose `kid` is unknown triggers at most one refetch
//!   per `oidc.jwksMinRefreshInterval` (at least 1s, checked at start-up), so a flood of tokens
//!   with made-up key IDs cannot turn gatehouse into an amplifier against the IdP.
//! - Discovery and the key set are also re-read periodically ([`OidcVerifier::run`]): after the
//!   JWKS response's `Cache-Control: max-age`, or `oidc.jwksRefreshInterval` (default 5m) when
//!   it names none, always kept within [`JWKS_REFRESH_BOUNDS`] (1m..1h; `no-cache`/`no-store`
//!   count as the floor). Each refresh **replaces** the key set, so a key the IdP removed stops
//!   being trusted within the interval, and re-checks the discovery document's `issuer`. A
//!   refresh that fails (IdP down, bad answer, another issuer) keeps the state loaded before,
//!   and is retried sooner (from 10s, doubling up to the interval).
//! - Keys are used only for signatures and only with the algorithm they fit, and a token's
//!   `typ` must be a JWT, or a JWT access token with `oidc.tokenType: access_token`
//!   ([`gatehouse_core::jwt`]).
//! - The allowed algorithms are the configured list, or else the asymmetric subset of the
//!   issuer's `id_token_signing_alg_values_supported` (RS256 when it names none).
//! - When the issuer cannot be reached at start, gatehouse still starts; `/readyz` says why and
//!   discovery is retried with exponential backoff. Until then OIDC tokens are refused with 503.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use gatehouse_core::jwt::{self, Policy, Verified, VerifyError};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::Mutex;

use crate::config::{JWKS_REFRESH_BOUNDS, OidcConfig};

/// The first retry after a failed periodic refresh; it doubles up to the refresh interval.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

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

    /// Loads discovery and keys, retrying with exponential backoff until it succeeds, then
    /// re-reads them periodically (see the module's Security section). Never returns.
    pub async fn run(self: Arc<Self>) {
        self.run_with(tokio::time::sleep).await;
    }

    /// [`OidcVerifier::run`] with the waits made by `sleep`: tests pass a clock they step.
    pub async fn run_with<S, F>(self: Arc<Self>, mut sleep: S)
    where
        S: FnMut(Duration) -> F,
        F: Future<Output = ()>,
    {
        let mut delay = Duration::from_millis(500);
        let mut next = loop {
            match self.refresh().await {
                Ok(next) => {
                    tracing::info!(issuer = %self.config.issuer_url, next_refresh_in = ?next, "OIDC issuer loaded");
                    break next;
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.config.issuer_url, error = %e, retry_in = ?delay, "OIDC issuer not reachable");
                    self.status.store(Arc::new(e.to_string()));
                }
            }
            sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        };
        let mut retry = REFRESH_RETRY;
        loop {
            sleep(next).await;
            match self.refresh().await {
                Ok(d) => {
                    tracing::debug!(issuer = %self.config.issuer_url, next_refresh_in = ?d, "refreshed the OIDC issuer's discovery and key set");
                    next = d;
                    retry = REFRESH_RETRY;
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.config.issuer_url, error = %e, retry_in = ?retry, "could not refresh the OIDC issuer's discovery and key set; keeping the ones loaded before");
                    next = retry;
                    retry = (retry * 2).min(self.config.jwks_refresh_interval.max(REFRESH_RETRY));
                }
            }
        }
    }

    /// Reads discovery and the key set once and replaces what was loaded (keys the IdP no
    /// longer publishes are gone). On failure nothing changes. Returns when to refresh next.
    pub async fn refresh(&self) -> Result<Duration, FetchError> {
        let mut last = self.last_refresh.lock().await;
        let next = self.load().await?;
        *last = Some(Instant::now());
        Ok(next)
    }

    async fn load(&self) -> Result<Duration, FetchError> {
        let issuer = &self.config.issuer_url;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (discovery, _) = self.get_json::<Discovery>(&url).await?;
        if &discovery.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                expected: issuer.clone(),
                found: discovery.issuer,
            });
        }
        let (jwks, cache_control) = self.get_json::<JwkSet>(&discovery.jwks_uri).await?;
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
        )
        .accepting_access_tokens(self.config.accepts_access_tokens());
        self.loaded.store(Some(Arc::new(Loaded {
            discovery,
            jwks,
            policy,
        })));
        Ok(refresh_delay(
            cache_control.as_deref(),
            self.config.jwks_refresh_interval,
        ))
    }

    /// GETs a JSON document; also returns the response's `Cache-Control`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<(T, Option<String>), FetchError> {
        let err = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?;
        let cache_control = resp
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let body = resp.json::<T>().await.map_err(err)?;
        Ok((body, (!cache_control.is_empty()).then_some(cache_control)))
    }

    /// Verifies a token from this issuer at time `now` (unix seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, OidcError> {
        let Some(loaded) = self.loaded.load_full() else {
            return Err(OidcError::NotReady(self.status.load().to_string()));
        };
        match jwt::verify(token, &loaded.jwks, &loaded.policy, now) {
            Err(VerifyError::UnknownKey { kid }) => {
                if self.refresh_keys(&loaded).await {
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

    /// Re-reads discovery and the key set for a token with an unknown `kid`, unless that was
    /// done within the minimum interval. Returns whether keys newer than `seen` are loaded
    /// (by this call, or by another refresh that finished while this one waited for it).
    async fn refresh_keys(&self, seen: &Arc<Loaded>) -> bool {
        let mut last = self.last_refresh.lock().await;
        if let Some(current) = self.loaded.load_full()
            && !Arc::ptr_eq(&current, seen)
        {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.config.jwks_min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        match self.load().await {
            Ok(_) => {
                tracing::info!("refetched the issuer's key set for an unknown key ID");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refetch the issuer's key set");
                false
            }
        }
    }
}

/// When to refresh the key set next: the `max-age` of its response's `Cache-Control`, or
/// `default` when it names none, kept within [`JWKS_REFRESH_BOUNDS`]. `no-cache` and
/// `no-store` mean the floor.
pub fn refresh_delay(cache_control: Option<&str>, default: Duration) -> Duration {
    let (floor, ceiling) = JWKS_REFRESH_BOUNDS;
    let mut max_age = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-cache" || directive == "no-store" {
            return floor;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            match v.trim_matches('"').parse::<u64>() {
                Ok(secs) => max_age = Some(Duration::from_secs(secs)),
                // A max-age too large for u64 is far beyond the ceiling.
                Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    max_age = Some(ceiling);
                }
                Err(_) => {}
            }
        }
    }
    max_age.unwrap_or(default).clamp(floor, ceiling)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_delay_honours_max_age_within_bounds() {
        let d = Duration::from_secs(300);
        assert_eq!(refresh_delay(None, d), d);
        assert_eq!(refresh_delay(Some("public"), d), d);
        assert_eq!(
            refresh_delay(Some("public, max-age=900, must-revalidate"), d),
            Duration::from_secs(900)
        );
        assert_eq!(
            refresh_delay(Some("Max-Age=120"), d),
            Duration::from_secs(120)
        );
        // Bounded: at least a minute, at most an hour.
        assert_eq!(refresh_delay(Some("max-age=0"), d), Duration::from_secs(60));
        assert_eq!(refresh_delay(Some("max-age=5"), d), Duration::from_secs(60));
        assert_eq!(
            refresh_delay(Some("max-age=86400"), d),
            Duration::from_secs(3600)
        );
        assert_eq!(
            refresh_delay(Some("max-age=99999999999999999999999"), d),
            Duration::from_secs(3600)
        );
        assert_eq!(refresh_delay(Some("no-store"), d), Duration::from_secs(60));
        assert_eq!(
            refresh_delay(Some("max-age=600, no-cache"), d),
            Duration::from_secs(60)
        );
        // Garbage is ignored.
        assert_eq!(refresh_delay(Some("max-age=soon"), d), d);
    }
}
