//! The issuers of the `AuthenticationConfiguration` (`authentication`), as the server runs
//! them: one [`KubeIssuer`] per `jwt` entry, each with its own key set, refetch limits and CA;
//! the set swapped whole when the file changes ([`Issuers::reload`]).
//!
//! # Security
//! - Each issuer verifies with the kube-apiserver's rules ([`Policy::kubernetes`]): its
//!   `issuer.url` exactly, its `audiences` (any of them), the algorithms the kube-apiserver
//!   accepts whatever discovery advertises, `exp` without leeway. Its claims are then mapped
//!   by the compiled configuration ([`gatehouse_authconfig::Authenticator::user`]), so
//!   gatehouse makes the user the kube-apiserver would make, or refuses the token.
//! - `issuer.certificateAuthority`, when set, is the only CA trusted for that issuer (as in
//!   the kube-apiserver); otherwise the system roots.
//! - A reloaded file that fails to read or validate is refused whole: the running set is
//!   kept, the failure logged and counted (`gatehouse_authentication_config_reloads_total`)
//!   and shown by `/readyz?verbose` (`authentication-config`). A valid one replaces the set
//!   only after its issuers' keys have loaded (or [`RELOAD_READY_WAIT`] has passed), so a
//!   reload does not refuse tokens while keys are fetched. Every principal made with the old
//!   set is dropped: each carries the set's generation ([`IssuerSet::generation`]), and the
//!   authentication cache serves a principal only from the current one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_authconfig::{Authenticator, Environment, Options};
use gatehouse_core::jwt::{self, Policy, Verified};
use gatehouse_oidc::http::Settings;
use gatehouse_oidc::keys::{self, RemoteKeys, RemoteSettings, TokenRefused};

use crate::config::{
    AuthenticationConfig, AuthenticationSource, Compiled, IssuerSettings, JWKS_REFRESH_BOUNDS,
    compile_text, settings_for,
};

/// How long a reload waits for the new issuers' keys before swapping anyway.
pub const RELOAD_READY_WAIT: Duration = Duration::from_secs(30);

/// HTTP settings for the issuers.
const HTTP: Settings = Settings {
    timeout: Duration::from_secs(10),
    connect_timeout: Duration::from_secs(5),
    user_agent: None,
};

/// One `jwt` entry, running.
pub struct KubeIssuer {
    /// The compiled entry.
    pub authenticator: Authenticator,
    /// gatehouse's settings for it.
    pub settings: IssuerSettings,
    keys: RemoteKeys,
}

impl std::fmt::Debug for KubeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeIssuer")
            .field("issuer", &self.authenticator.issuer)
            .finish_non_exhaustive()
    }
}

impl KubeIssuer {
    /// Verifies a token of this issuer at `now`.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, TokenRefused> {
        keys::verify(&self.keys, token, now).await
    }

    /// `None` when its keys are loaded, else why not.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.keys.not_ready_reason()
    }
}

/// Why an issuer cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("jwt issuer {issuer}: issuer.certificateAuthority: {reason}")]
pub struct IssuerError {
    issuer: String,
    reason: String,
}

/// One generation of issuers, made from one version of the file.
pub struct IssuerSet {
    /// By `issuer.url`.
    by_url: HashMap<String, Arc<KubeIssuer>>,
    /// The CEL environment the file was compiled in.
    pub env: Arc<Environment>,
    /// Which version of the file this is (1 at start, one more per applied reload).
    pub generation: u64,
    /// The file's SHA-256, to tell an unchanged file on re-read.
    digest: [u8; 32],
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for IssuerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerSet")
            .field("issuers", &self.by_url.keys().collect::<Vec<_>>())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Drop for IssuerSet {
    fn drop(&mut self) {
        let tasks = match self.tasks.get_mut() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        for t in tasks.iter() {
            t.abort();
        }
    }
}

impl IssuerSet {
    fn build(
        compiled: Compiled,
        settings: &[IssuerSettings],
        generation: u64,
        digest: [u8; 32],
    ) -> Result<Self, IssuerError> {
        let mut by_url = HashMap::new();
        for (authenticator, jwt) in compiled
            .authenticators
            .into_iter()
            .zip(&compiled.config.jwt)
        {
            let ca = Some(jwt.issuer.certificate_authority.as_bytes()).filter(|c| !c.is_empty());
            let http =
                gatehouse_oidc::http::client_trusting_only(ca, &HTTP).map_err(|e| IssuerError {
                    issuer: authenticator.issuer.clone(),
                    reason: e.to_string(),
                })?;
            let remote = RemoteSettings {
                issuer: authenticator.issuer.clone(),
                discovery_url: jwt.issuer.discovery_url.clone().filter(|d| !d.is_empty()),
                min_refetch_interval: Duration::from_secs(10),
                refresh_interval: Duration::from_secs(300),
                refresh_bounds: JWKS_REFRESH_BOUNDS,
            };
            let (issuer, audiences) = (
                authenticator.issuer.clone(),
                authenticator.audiences.clone(),
            );
            let keys = RemoteKeys::new(remote, http, move |_| {
                Policy::kubernetes(
                    issuer.clone(),
                    audiences.clone(),
                    jwt::KUBERNETES_ALGORITHMS.to_vec(),
                )
            });
            let url = authenticator.issuer.clone();
            let issuer = KubeIssuer {
                settings: settings_for(settings, &url),
                authenticator,
                keys,
            };
            by_url.insert(url, Arc::new(issuer));
        }
        Ok(Self {
            by_url,
            env: compiled.env,
            generation,
            digest,
            tasks: std::sync::Mutex::default(),
        })
    }

    /// The issuer whose `issuer.url` is exactly `url`.
    pub fn get(&self, url: &str) -> Option<&Arc<KubeIssuer>> {
        self.by_url.get(url)
    }

    /// Every issuer's URL.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.by_url.keys().map(String::as_str)
    }

    /// Every issuer, in no particular order.
    pub fn issuers(&self) -> impl Iterator<Item = &Arc<KubeIssuer>> {
        self.by_url.values()
    }

    /// Starts every issuer's key loading and refresh (stopped when the set is dropped).
    fn start(&self) {
        let mut tasks = match self.tasks.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !tasks.is_empty() {
            return;
        }
        for issuer in self.by_url.values() {
            let issuer = Arc::clone(issuer);
            let task = tokio::spawn(async move { issuer.keys.run().await });
            tasks.push(task.abort_handle());
        }
    }

    /// Why issuers are not ready: one line per issuer whose keys are not loaded.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_url
            .values()
            .filter_map(|i| i.not_ready_reason())
            .collect();
        out.sort();
        out
    }
}

/// What the last reload did (for `/readyz?verbose` and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadStatus {
    /// The running set is the file's current content.
    Current,
    /// The file's current content was refused; the running set is an older one. The problems.
    Refused(Vec<String>),
}

/// The issuers of the `AuthenticationConfiguration`, swapped whole on reload.
pub struct Issuers {
    current: ArcSwap<IssuerSet>,
    status: ArcSwap<ReloadStatus>,
    source: AuthenticationSource,
    settings: Vec<IssuerSettings>,
    options: Options,
    reload_interval: Duration,
    generations: AtomicU64,
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuers")
            .field("current", &self.current.load())
            .finish_non_exhaustive()
    }
}

/// The outcome of one reload, for the metric's `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The file is unchanged.
    Unchanged,
    /// A new version was applied.
    Applied,
    /// A new version was refused; the running one is kept.
    Refused,
}

impl Reloaded {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Applied => "applied",
            Self::Refused => "refused",
        }
    }
}

impl Issuers {
    /// Builds the issuers from the file as loaded at start; nothing is fetched until
    /// [`Issuers::start`].
    pub fn new(config: &AuthenticationConfig) -> Result<Self, IssuerError> {
        let text_digest = match &config.source {
            AuthenticationSource::File(p) => std::fs::read(p).map(|t| sha(&t)).unwrap_or_default(),
            AuthenticationSource::Inline => [0; 32],
        };
        let set = IssuerSet::build(config.initial.clone(), &config.issuers, 1, text_digest)?;
        Ok(Self {
            current: ArcSwap::from_pointee(set),
            status: ArcSwap::from_pointee(ReloadStatus::Current),
            source: config.source.clone(),
            settings: config.issuers.clone(),
            options: config.options.clone(),
            reload_interval: config.reload_interval,
            generations: AtomicU64::new(1),
        })
    }

    /// The running set.
    pub fn current(&self) -> Arc<IssuerSet> {
        self.current.load_full()
    }

    /// What the last reload did.
    pub fn status(&self) -> Arc<ReloadStatus> {
        self.status.load_full()
    }

    /// Starts key loading for the start-up set, and the file's re-reading when it comes from
    /// a file; `on_reload` is told each reload's outcome.
    pub fn start(self: &Arc<Self>, on_reload: impl Fn(Reloaded) + Send + Sync + 'static) {
        self.current.load().start();
        if let AuthenticationSource::File(_) = self.source {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(this.reload_interval).await;
                    on_reload(this.reload().await);
                }
            });
        }
    }

    /// Re-reads the file: unchanged, applied (after the new issuers' keys loaded or
    /// [`RELOAD_READY_WAIT`]), or refused with the running set kept.
    pub async fn reload(&self) -> Reloaded {
        let AuthenticationSource::File(path) = &self.source else {
            return Reloaded::Unchanged;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                return self.refuse(vec![format!("cannot read {}: {e}", path.display())]);
            }
        };
        let digest = sha(text.as_bytes());
        if digest == self.current.load().digest {
            if *self.status.load_full() != ReloadStatus::Current {
                // The file is back to the running version.
                self.status.store(Arc::new(ReloadStatus::Current));
            }
            return Reloaded::Unchanged;
        }
        let compiled = match compile_text(&text, &self.options) {
            Ok(c) => c,
            Err(problems) => return self.refuse(problems),
        };
        for s in &self.settings {
            if !compiled.authenticators.iter().any(|a| a.issuer == s.url) {
                tracing::warn!(
                    issuer = %s.url,
                    "authentication.issuers names an issuer the reloaded AuthenticationConfiguration no longer has; its settings are unused"
                );
            }
        }
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let set = match IssuerSet::build(compiled, &self.settings, generation, digest) {
            Ok(s) => s,
            Err(e) => return self.refuse(vec![e.to_string()]),
        };
        set.start();
        let deadline = tokio::time::Instant::now() + RELOAD_READY_WAIT;
        while !set.not_ready_reasons().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(
            file = %path.display(),
            generation,
            issuers = set.by_url.len(),
            "applied the changed AuthenticationConfiguration"
        );
        self.current.store(Arc::new(set));
        self.status.store(Arc::new(ReloadStatus::Current));
        Reloaded::Applied
    }

    fn refuse(&self, problems: Vec<String>) -> Reloaded {
        let file = match &self.source {
            AuthenticationSource::File(p) => p.display().to_string(),
            AuthenticationSource::Inline => String::new(),
        };
        if *self.status.load_full() != ReloadStatus::Refused(problems.clone()) {
            tracing::warn!(
                file,
                problems = %problems.join("; "),
                "refused the changed AuthenticationConfiguration; the running one is kept"
            );
        }
        self.status.store(Arc::new(ReloadStatus::Refused(problems)));
        Reloaded::Refused
    }
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}
