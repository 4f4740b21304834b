//! The issuer's key set: [`KeySource`] gives the keys a token is checked against, and
//! [`verify`] checks a token with them (refetching once on an unknown key ID). Two sources:
//! [`RemoteKeys`], held in memory and kept fresh (the server), and [`StaticKeys`], read once
//! (the CLI, which verifies one ID token per sign-in, and tests).
//!
//! The trait gives the whole set rather than one key by `kid`: [`gatehouse_core::jwt::verify`]
//! selects the key itself (by use, type, curve and algorithm, and a token without `kid` when
//! exactly one key is a candidate), and that choice stays in the pure core.
//!
//! # Security
//! - Discovery and the key set are fetched only from the configured issuer, over the
//!   [`crate::http`] client (system roots plus the issuer's CA bundle). The discovery
//!   document's `issuer` must equal the configured issuer exactly ([`crate::discovery`]).
//! - The key set is held in memory. A token whose `kid` is unknown triggers at most one refetch
//!   per [`RemoteSettings::min_refetch_interval`] (the server checks at start-up that it is at
//!   least 1s), so a flood of tokens with made-up key IDs cannot turn gatehouse into an
//!   amplifier against the IdP.
//! - Discovery and the key set are also re-read periodically ([`RemoteKeys::run`]): after the
//!   JWKS response's `Cache-Control: max-age`, or [`RemoteSettings::refresh_interval`] when it
//!   names none, always kept within [`RemoteSettings::refresh_bounds`] (`no-cache`/`no-store`
//!   count as the floor). Each refresh **replaces** the key set, so a key the IdP removed stops
//!   being trusted within the interval, and re-checks the discovery document's `issuer`. A
//!   refresh that fails (IdP down, bad answer, another issuer) keeps the state loaded before,
//!   and is retried sooner (from 10s, doubling up to the interval).
//! - Keys are used only for signatures and only with the algorithm they fit, and a token's
//!   `typ` must be a JWT (or a JWT access token where the policy accepts them):
//!   [`gatehouse_core::jwt`].
//! - Until the first load succeeds, every token is refused as [`TokenRefused::NotReady`] (the
//!   server answers 503), and [`RemoteKeys::not_ready_reason`] says why.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use gatehouse_core::discovery::Discovery;
use gatehouse_core::jwt::{self, Policy, Verified, VerifyError};
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::Mutex;

use crate::discovery::{self, DiscoveryError};
use crate::http;

/// The first retry after a failed periodic refresh; it doubles up to the refresh interval.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// What one load of the issuer gave: its discovery document, its key set, and the policy
/// tokens are checked with (which may depend on the document's algorithms).
#[derive(Debug)]
pub struct KeySet {
    /// The discovery document.
    pub discovery: Discovery,
    /// The keys.
    pub jwks: JwkSet,
    /// What a token must satisfy.
    pub policy: Policy,
}

/// A future that [`KeySource::refetch`] returns (boxed, so the trait can be a `dyn`).
pub type Refetch<'a> = Pin<Box<dyn Future<Output = Option<Arc<KeySet>>> + Send + 'a>>;

/// Where tokens' keys come from.
pub trait KeySource: Send + Sync {
    /// The keys loaded now, or why there are none yet.
    fn current(&self) -> Result<Arc<KeySet>, String>;

    /// Called for a token whose key is not in `seen`: a newer key set when one could be had
    /// (within the source's rate limit), else `None`.
    fn refetch<'a>(&'a self, seen: &'a Arc<KeySet>) -> Refetch<'a>;
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefused {
    /// The issuer's metadata is not loaded yet.
    #[error("the OIDC issuer's keys are not loaded yet: {0}")]
    NotReady(String),
    /// The token failed verification.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
}

/// Verifies `token` at `now` (unix seconds) against `keys` and their policy; a token signed
/// with an unknown key gets one [`KeySource::refetch`] and a second check.
pub async fn verify<K: KeySource + ?Sized>(
    keys: &K,
    token: &str,
    now: i64,
) -> Result<Verified, TokenRefused> {
    let loaded = keys.current().map_err(TokenRefused::NotReady)?;
    match jwt::verify(token, &loaded.jwks, &loaded.policy, now) {
        Err(VerifyError::UnknownKey { kid }) => match keys.refetch(&loaded).await {
            Some(newer) => Ok(jwt::verify(token, &newer.jwks, &newer.policy, now)?),
            None => Err(TokenRefused::Invalid(VerifyError::UnknownKey { kid })),
        },
        other => Ok(other?),
    }
}

/// A key set read once; an unknown key is never refetched.
#[derive(Debug, Clone)]
pub struct StaticKeys(pub Arc<KeySet>);

impl KeySource for StaticKeys {
    fn current(&self) -> Result<Arc<KeySet>, String> {
        Ok(Arc::clone(&self.0))
    }

    fn refetch<'a>(&'a self, _seen: &'a Arc<KeySet>) -> Refetch<'a> {
        Box::pin(async { None })
    }
}

/// Fetches the key set at `discovery.jwks_uri` once.
pub async fn fetch(
    http: &reqwest::Client,
    discovery: &Discovery,
) -> Result<JwkSet, http::HttpError> {
    http::get_json(http, &discovery.jwks_uri, None).await
}

/// How a [`RemoteKeys`] loads and refreshes.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// The issuer, exactly as its discovery document must name it.
    pub issuer: String,
    /// Where discovery is read, when not at the issuer's `/.well-known/openid-configuration`
    /// (an AuthenticationConfiguration's `discoveryURL`); the document must still name
    /// `issuer`.
    pub discovery_url: Option<String>,
    /// The least time between two refetches for unknown key IDs.
    pub min_refetch_interval: Duration,
    /// The periodic refresh when the JWKS response has no `Cache-Control: max-age`.
    pub refresh_interval: Duration,
    /// The least and the most time between two periodic refreshes.
    pub refresh_bounds: (Duration, Duration),
}

/// The policy for a discovery document (for example with its signing algorithms).
pub type PolicyFor = dyn Fn(&Discovery) -> Policy + Send + Sync;

/// The issuer's discovery document and key set, held in memory and kept fresh (see the
/// module's Security section).
pub struct RemoteKeys {
    settings: RemoteSettings,
    http: reqwest::Client,
    policy: Box<PolicyFor>,
    loaded: ArcSwapOption<KeySet>,
    status: ArcSwap<String>,
    last_refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// Nothing is fetched until [`RemoteKeys::run`] or [`RemoteKeys::refresh`]. `policy` makes
    /// the token policy from each discovery document loaded.
    pub fn new(
        settings: RemoteSettings,
        http: reqwest::Client,
        policy: impl Fn(&Discovery) -> Policy + Send + Sync + 'static,
    ) -> Self {
        Self {
            settings,
            http,
            policy: Box::new(policy),
            loaded: ArcSwapOption::empty(),
            status: ArcSwap::from_pointee("discovery has not completed yet".to_owned()),
            last_refresh: Mutex::new(None),
        }
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
                self.settings.issuer,
                self.status.load()
            ))
        }
    }

    /// Loads discovery and keys, retrying with exponential backoff until it succeeds, then
    /// re-reads them periodically (see the module's Security section). Never returns.
    pub async fn run(&self) {
        self.run_with(tokio::time::sleep).await;
    }

    /// [`RemoteKeys::run`] with the waits made by `sleep`: tests pass a clock they step.
    pub async fn run_with<S, F>(&self, mut sleep: S)
    where
        S: FnMut(Duration) -> F,
        F: Future<Output = ()>,
    {
        let issuer = &self.settings.issuer;
        let mut delay = Duration::from_millis(500);
        let mut next = loop {
            match self.refresh().await {
                Ok(next) => {
                    tracing::info!(issuer = %issuer, next_refresh_in = ?next, "OIDC issuer loaded");
                    break next;
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer, error = %e, retry_in = ?delay, "OIDC issuer not reachable");
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
                    tracing::debug!(issuer = %issuer, next_refresh_in = ?d, "refreshed the OIDC issuer's discovery and key set");
                    next = d;
                    retry = REFRESH_RETRY;
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer, error = %e, retry_in = ?retry, "could not refresh the OIDC issuer's discovery and key set; keeping the ones loaded before");
                    next = retry;
                    retry = (retry * 2).min(self.settings.refresh_interval.max(REFRESH_RETRY));
                }
            }
        }
    }

    /// Reads discovery and the key set once and replaces what was loaded (keys the IdP no
    /// longer publishes are gone). On failure nothing changes. Returns when to refresh next.
    pub async fn refresh(&self) -> Result<Duration, DiscoveryError> {
        let mut last = self.last_refresh.lock().await;
        let next = self.load().await?;
        *last = Some(Instant::now());
        Ok(next)
    }

    async fn load(&self) -> Result<Duration, DiscoveryError> {
        let discovery = match &self.settings.discovery_url {
            None => discovery::fetch(&self.http, &self.settings.issuer).await?,
            Some(url) => discovery::fetch_from(&self.http, url, &self.settings.issuer).await?,
        };
        let (jwks, cache_control) =
            http::get_json_cached::<JwkSet>(&self.http, &discovery.jwks_uri).await?;
        let policy = (self.policy)(&discovery);
        self.loaded.store(Some(Arc::new(KeySet {
            discovery,
            jwks,
            policy,
        })));
        Ok(refresh_delay(
            cache_control.as_deref(),
            self.settings.refresh_interval,
            self.settings.refresh_bounds,
        ))
    }

    /// Re-reads discovery and the key set for a token with an unknown `kid`, unless that was
    /// done within the minimum interval. Returns the keys newer than `seen` when there are any
    /// (loaded by this call, or by another refresh that finished while this one waited for it).
    async fn refetch_keys(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        let mut last = self.last_refresh.lock().await;
        if let Some(current) = self.loaded.load_full()
            && !Arc::ptr_eq(&current, seen)
        {
            return Some(current);
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.min_refetch_interval) {
            return None;
        }
        *last = Some(Instant::now());
        match self.load().await {
            Ok(_) => {
                tracing::info!("refetched the issuer's key set for an unknown key ID");
                self.loaded.load_full()
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refetch the issuer's key set");
                None
            }
        }
    }
}

impl KeySource for RemoteKeys {
    fn current(&self) -> Result<Arc<KeySet>, String> {
        self.loaded
            .load_full()
            .ok_or_else(|| self.status.load().to_string())
    }

    fn refetch<'a>(&'a self, seen: &'a Arc<KeySet>) -> Refetch<'a> {
        Box::pin(self.refetch_keys(seen))
    }
}

/// When to refresh the key set next: the `max-age` of its response's `Cache-Control`, or
/// `default` when it names none, kept within `bounds` (floor, ceiling). `no-cache` and
/// `no-store` mean the floor.
pub fn refresh_delay(
    cache_control: Option<&str>,
    default: Duration,
    bounds: (Duration, Duration),
) -> Duration {
    let (floor, ceiling) = bounds;
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

#[cfg(test)]
#[path = "keys_tests.rs"]
pub(crate) mod tests;
