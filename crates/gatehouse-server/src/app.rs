//! The application's shared state and its start-up.
//!
//! [`App::start`] builds the parts from the configuration and the network and starts the
//! background tasks; [`App::from_parts`] assembles an `App` from parts already built, which is
//! how in-process tests (`tests/router.rs`) make one with a local kube-apiserver and issuer.
//! The routes are [`crate::routes::router`]'s: this module imports no handler module. The
//! session cookie is [`crate::browser_session::SessionCookies`] ([`App::session_cookies`]).

use std::sync::Arc;

use gatehouse_core::admin::AdminTokens;
use secrecy::ExposeSecret as _;

use crate::access::AccessResolver;
use crate::authn::Authenticator;
use crate::clock::Clock;
use crate::config::Config;
use crate::health::CheckResult;
use crate::metrics::Metrics;
use crate::oidc::{FetchError, OidcVerifier};
use crate::serviceaccounts::ServiceAccountIndex;
use crate::upstream::{PoolLimits, Upstream, UpstreamError, load_kube_config};

/// Everything a request handler needs.
#[derive(Debug)]
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// Token authentication.
    pub authn: Authenticator,
    /// The OIDC issuer, when configured.
    pub oidc: Option<Arc<OidcVerifier>>,
    /// The claim-to-ServiceAccount index.
    pub index: Arc<ServiceAccountIndex>,
    /// ServiceAccount choice.
    pub access: AccessResolver,
    /// The kube-apiserver.
    pub upstream: Upstream,
    /// Metrics.
    pub metrics: Metrics,
    /// The wall clock every handler reads the time from.
    pub clock: Clock,
    /// Admin sign-in throttling: per-address backoff, an overall limit, and at most two bcrypt
    /// checks at a time with a bounded queue, so password guessing cannot starve the proxy.
    pub login_guard: crate::login_guard::LoginGuard,
    /// Single-flight session refreshes (one token request per refresh token at a time).
    pub refreshes: crate::browser_session::RefreshFlights,
    /// Seals session and flow cookies, when browser sign-in or admin UI sessions are configured.
    pub cookies: Option<crate::session::CookieCodec>,
    /// gatehouse's own Kubernetes rights (`/readyz?verbose`'s `rbac/*` checks).
    pub rights: Arc<crate::health::RightsCheck>,
}

/// gatehouse could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Kubernetes connection.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The OIDC issuer settings are unusable.
    #[error(transparent)]
    Oidc(#[from] FetchError),
    /// The admin settings are unusable.
    #[error("admin account: {0}")]
    Admin(#[from] gatehouse_core::admin::AdminTokenError),
    /// An issuer of the `AuthenticationConfiguration` is unusable.
    #[error(transparent)]
    Issuer(#[from] crate::issuers::IssuerError),
    /// Cookie encryption could not be set up.
    #[error("session cookies: {0}")]
    Session(String),
    /// The Kubernetes client could not be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
}

/// What an [`App`] is made of, already built: [`App::start`] makes them from the configuration
/// and the network; an in-process test makes them from fakes (a local kube-apiserver, a local
/// issuer, an index filled by hand) and calls [`App::from_parts`] itself.
pub struct AppParts {
    /// The validated configuration.
    pub config: Config,
    /// The OIDC issuer, when configured (its keys loaded or not: [`App::start`] loads them in
    /// the background).
    pub oidc: Option<Arc<OidcVerifier>>,
    /// The claim-to-ServiceAccount index (filled by its watch, or by a test).
    pub index: Arc<ServiceAccountIndex>,
    /// The kube-apiserver's connection pools.
    pub upstream: Upstream,
    /// gatehouse's own Kubernetes client: SubjectAccessReviews when several ServiceAccounts
    /// qualify, and the rights check. Building one makes no connection.
    pub client: kube::Client,
    /// Metrics.
    pub metrics: Metrics,
    /// The wall clock ([`Clock::System`]; a test may fix it).
    pub clock: Clock,
}

impl std::fmt::Debug for AppParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppParts")
            .field("oidc", &self.oidc)
            .field("upstream", &self.upstream)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the application from the configuration and the network, and starts its
    /// background tasks (OIDC discovery with retries, the ServiceAccount watch). Returns once
    /// everything is wired; readiness follows later.
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let kube_config = load_kube_config(&config.kubernetes).await?;
        let upstream = Upstream::new(&kube_config, PoolLimits::from(&config.kubernetes))?;
        let client = kube::Client::try_from(kube_config)?;
        let oidc = match &config.oidc {
            Some(o) => Some(Arc::new(OidcVerifier::new(o.clone())?)),
            None => None,
        };
        let index = ServiceAccountIndex::new(&config.service_accounts);
        let app = Self::from_parts(AppParts {
            config,
            oidc,
            index,
            upstream,
            client: client.clone(),
            metrics: Metrics::default(),
            clock: Clock::System,
        })?;
        if let Some(o) = &app.oidc {
            tokio::spawn(Arc::clone(o).run());
        }
        if let Some(issuers) = app.authn.issuers() {
            let reloads = app.metrics.authentication_config_reloads.clone();
            let current = app.metrics.authentication_config_current.clone();
            current.set(1);
            issuers.start(move |r| {
                reloads
                    .get_or_create(&crate::metrics::ReloadLabels { result: r.label() })
                    .inc();
                current.set(i64::from(r != crate::issuers::Reloaded::Refused));
            });
        }
        if app.maps_users() {
            tokio::spawn(Arc::clone(&app.index).run(client, app.config.service_accounts.clone()));
            // With OIDC gatehouse talks to the kube-apiserver from the start (the watch): its
            // rights are checked then too, so a missing one is in the log at once. Otherwise
            // they are checked when `/readyz?verbose` asks.
            let rights = Arc::clone(&app.rights);
            tokio::spawn(async move {
                rights.results().await;
            });
        }
        Ok(app)
    }

    /// Assembles the application from built parts: the admin token issuer, the authenticator,
    /// the ServiceAccount chooser, the rights check and the cookie codec are made from the
    /// configuration here. No network, no background task: [`App::start`] starts those.
    pub fn from_parts(parts: AppParts) -> Result<Arc<Self>, StartError> {
        let AppParts {
            config,
            oidc,
            index,
            upstream,
            client,
            mut metrics,
            clock,
        } = parts;
        metrics.register_pool(upstream.pool_metrics());
        let admin = match &config.admin {
            Some(a) => {
                let mut tokens = AdminTokens::new(
                    a.token_signing_key.expose_secret().to_vec(),
                    a.token_issuer.clone(),
                    a.token_audience.clone(),
                    i64::try_from(a.token_ttl.as_secs()).unwrap_or(i64::MAX),
                )?
                .with_not_before(a.tokens_not_before);
                if let Some(previous) = &a.previous_token_signing_key {
                    tokens = tokens.with_previous_key(previous.expose_secret().to_vec())?;
                }
                Some(tokens)
            }
            None => None,
        };
        let issuers = match &config.authentication {
            Some(a) => Some(Arc::new(crate::issuers::Issuers::new(a)?)),
            None => None,
        };
        let authn = Authenticator::new(
            admin,
            oidc.clone(),
            config.fall_through,
            config.limits.token_cache_entries,
        )
        .with_issuers(issuers);
        let access = AccessResolver::new(
            client.clone(),
            config.service_accounts.global_namespaces.clone(),
            config.limits.review_cache_ttl,
        );
        let rights = Arc::new(crate::health::RightsCheck::new(client, &config));
        let cookies = match &config.browser {
            Some(b) => Some(
                crate::session::CookieCodec::new(b.session_key.expose_secret())
                    .map_err(|e| StartError::Session(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Arc::new(Self {
            cookies,
            config,
            authn,
            oidc,
            index,
            access,
            upstream,
            metrics,
            clock,
            login_guard: crate::login_guard::LoginGuard::new(),
            refreshes: crate::browser_session::RefreshFlights::default(),
            rights,
        }))
    }

    /// The session cookie, when browser sign-in (or admin UI sessions) is configured.
    pub fn session_cookies(&self) -> Option<crate::browser_session::SessionCookies<'_>> {
        Some(crate::browser_session::SessionCookies::new(
            self.config.browser.as_ref()?,
            self.cookies.as_ref()?,
        ))
    }

    /// Whether users of an OIDC issuer (`oidc` or `authentication`) are signed in, so the
    /// ServiceAccount index is watched and counts for readiness.
    pub fn maps_users(&self) -> bool {
        self.oidc.is_some() || self.authn.issuers().is_some()
    }

    /// The readiness checks by name, with fixed reasons (`/readyz?verbose`): the same
    /// conditions as [`Self::not_ready_reasons`], and the `authentication-*` checks, which are
    /// reported, not counted: one unreachable issuer of several, or a refused reload (the
    /// running configuration is kept), must not take every replica out of service.
    pub fn readiness_checks(&self) -> Vec<CheckResult> {
        let mut checks = Vec::new();
        let check = |name, failure| CheckResult {
            name,
            readiness: true,
            failure,
        };
        if let Some(o) = &self.oidc {
            checks.push(check(
                "oidc-keys",
                o.not_ready_reason()
                    .map(|_| "the identity provider's discovery document and signing keys are not loaded"),
            ));
        }
        if let Some(issuers) = self.authn.issuers() {
            checks.push(CheckResult {
                name: "authentication-config",
                readiness: false,
                failure: matches!(*issuers.status(), crate::issuers::ReloadStatus::Refused(_))
                    .then_some("the changed AuthenticationConfiguration was refused; the previous one keeps running (gatehouse's log says why)"),
            });
            checks.push(CheckResult {
                name: "authentication-issuer-keys",
                readiness: false,
                failure: (!issuers.current().not_ready_reasons().is_empty())
                    .then_some("the discovery document and signing keys of an issuer of the AuthenticationConfiguration are not loaded (gatehouse's log and `gatehouse doctor` say which)"),
            });
        }
        if self.maps_users() {
            checks.push(check(
                "serviceaccount-watch-synced",
                (!self.index.is_synced()).then_some("ServiceAccounts have not been listed yet"),
            ));
            checks.push(check(
                "serviceaccount-watch-fresh",
                self.index
                    .stale_reason(std::time::Instant::now())
                    .map(|_| "the ServiceAccount watch has been failing for longer than serviceAccounts.maxStaleness"),
            ));
        }
        checks
    }

    /// Why gatehouse is not ready, or an empty list.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(o) = &self.oidc {
            reasons.extend(o.not_ready_reason());
        }
        if self.maps_users() {
            if !self.index.is_synced() {
                reasons.push("ServiceAccounts have not been listed yet (check gatehouse's RBAC: list and watch serviceaccounts)".to_owned());
            }
            reasons.extend(self.index.stale_reason(std::time::Instant::now()).map(|r| {
                format!("{r} (mapped requests are refused with 503 until the watch recovers; check gatehouse's RBAC: list and watch serviceaccounts)")
            }));
        }
        reasons
    }
}
