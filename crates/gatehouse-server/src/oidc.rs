//! The configured OIDC issuer as the server uses it: the policy its tokens must satisfy, on
//! top of the shared OIDC client's key set ([`gatehouse_oidc::keys::RemoteKeys`]).
//!
//! # Security
//! - Discovery, the key set, the rate-limited refetch on an unknown `kid` and the periodic
//!   refresh after `Cache-Control` are the shared client's, with their reasoning beside them
//!   ([`gatehouse_oidc::keys`]); here they get the configured bounds (`oidc.caFile`,
//!   `oidc.jwksMinRefreshInterval` of at least 1s, `oidc.jwksRefreshInterval` within
//!   [`JWKS_REFRESH_BOUNDS`]).
//! - Keys are used only for signatures and only with the algorithm they fit, and a token's
//!   `typ` must be a JWT, or a JWT access token with `oidc.tokenType: access_token`
//!   ([`gatehouse_core::jwt`]).
//! - The allowed algorithms are the configured list, or else the asymmetric subset of the
//!   issuer's `id_token_signing_alg_values_supported` (RS256 when it names none).
//! - When the issuer cannot be reached at start, gatehouse still starts; `/readyz` says why and
//!   discovery is retried with exponential backoff. Until then OIDC tokens are refused with 503.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::jwt::{Policy, Verified};
use gatehouse_oidc::http::{CaError, Settings};
use gatehouse_oidc::keys::{self, RemoteKeys, RemoteSettings};

use crate::config::{JWKS_REFRESH_BOUNDS, OidcConfig};

pub use gatehouse_core::discovery::Discovery;
/// Why the issuer's metadata could not be loaded by a refresh.
pub use gatehouse_oidc::discovery::DiscoveryError;
/// Why a token from the configured issuer was refused.
pub use gatehouse_oidc::keys::TokenRefused as OidcError;

/// The server's HTTP settings for its issuers (`oidc` and the `AuthenticationConfiguration`'s).
pub(crate) const HTTP: Settings = Settings {
    timeout: Duration::from_secs(10),
    connect_timeout: Duration::from_secs(5),
    user_agent: None,
};

/// Why the verifier cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The CA bundle could not be read.
    #[error("cannot use oidc.caFile {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the OIDC issuer: {0}")]
    Client(String),
}

/// The issuer, with its keys held in memory.
pub struct OidcVerifier {
    config: OidcConfig,
    keys: RemoteKeys,
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
        let settings = RemoteSettings {
            discovery_url: None,
            issuer: config.issuer_url.clone(),
            min_refetch_interval: config.jwks_min_refresh_interval,
            refresh_interval: config.jwks_refresh_interval,
            refresh_bounds: JWKS_REFRESH_BOUNDS,
        };
        let policy_config = config.clone();
        let keys = RemoteKeys::new(settings, http, move |d| policy(&policy_config, d));
        Ok(Self { config, keys })
    }

    /// The configured issuer.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The HTTP client for this issuer (its CA bundle included).
    pub fn http(&self) -> &reqwest::Client {
        self.keys.http()
    }

    /// The discovery document, once loaded.
    pub fn discovery(&self) -> Option<Discovery> {
        self.keys.discovery()
    }

    /// `None` when ready, else why not.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.keys.not_ready_reason()
    }

    /// Loads discovery and keys, retrying with exponential backoff until it succeeds, then
    /// re-reads them periodically ([`gatehouse_oidc::keys`]). Never returns.
    pub async fn run(self: Arc<Self>) {
        self.keys.run().await;
    }

    /// [`OidcVerifier::run`] with the waits made by `sleep`: tests pass a clock they step.
    pub async fn run_with<S, F>(self: Arc<Self>, sleep: S)
    where
        S: FnMut(Duration) -> F,
        F: Future<Output = ()>,
    {
        self.keys.run_with(sleep).await;
    }

    /// Reads discovery and the key set once and replaces what was loaded (keys the IdP no
    /// longer publishes are gone). On failure nothing changes. Returns when to refresh next.
    pub async fn refresh(&self) -> Result<Duration, DiscoveryError> {
        self.keys.refresh().await
    }

    /// Verifies a token from this issuer at time `now` (unix seconds); an unknown key gets one
    /// rate-limited refetch.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, OidcError> {
        keys::verify(&self.keys, token, now).await
    }
}

/// The policy for the configured issuer: its client IDs and audiences, the configured
/// algorithms or else those of discovery, the configured skew, access tokens when configured.
fn policy(config: &OidcConfig, d: &Discovery) -> Policy {
    let algorithms = config
        .algorithms
        .clone()
        .unwrap_or_else(|| gatehouse_oidc::discovery::signing_algorithms(d));
    let mut audiences = config.client_ids();
    audiences.extend(config.audiences.iter().cloned());
    Policy::new(
        config.issuer_url.clone(),
        audiences,
        config.client_ids(),
        algorithms,
        config.clock_skew.as_secs(),
    )
    .accepting_access_tokens(config.accepts_access_tokens())
}

/// An HTTP client trusting the system roots and, when given, a PEM CA bundle.
pub fn http_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, FetchError> {
    gatehouse_oidc::http::client_with_ca_file(ca_file, &HTTP).map_err(|e| {
        let path = ca_file.map(|p| p.display().to_string()).unwrap_or_default();
        match e {
            CaError::NoCertificate => FetchError::Ca {
                path,
                reason: "no PEM certificate in the file".to_owned(),
            },
            CaError::Read(e) => FetchError::Ca {
                path,
                reason: e.to_string(),
            },
            CaError::Pem(e) => FetchError::Ca {
                path,
                reason: e.to_string(),
            },
            CaError::Build(e) => FetchError::Client(e.to_string()),
        }
    })
}
