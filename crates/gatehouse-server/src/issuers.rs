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
//! - A changed file is compiled only once two reads [`SETTLE`] apart agree, so a file rewritten
//!   in place is never applied half-written (a shorter file can still be valid).
//! - A reloaded file that fails to read or validate is refused whole: the running set is
//!   kept, the failure logged and counted (`gatehouse_authentication_config_reloads_total`)
//!   and shown by `/readyz?verbose` (`authentication-config`). A valid one replaces the set
//!   only after its issuers' keys have loaded (or [`RELOAD_READY_WAIT`] has passed), so a
//!   reload does not refuse tokens while keys are fetched; an issuer whose URL, discovery
//!   URL, CA and audiences are unchanged keeps its loaded keys. Every principal made with the old
//!   set is dropped: each carries the set's generation ([`IssuerSet::generation`]), and the
//!   authentication cache serves a principal only from the current one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_authconfig::{Authenticator, Environment, Options};
use gatehouse_core::jwt::{self, Policy, Verified};
use gatehouse_oidc::keys::{self, RemoteKeys, RemoteSettings, TokenRefused};

use crate::config::{
    AuthenticationConfig, AuthenticationSource, Compiled, IssuerSettings, JWKS_REFRESH_BOUNDS,
    compile_text, settings_for, sha256,
};

/// How long a changed file must read the same before it is compiled.
pub const SETTLE: Duration = Duration::from_secs(1);

/// How long a reload waits for the new issuers' keys before swapping anyway.
pub const RELOAD_READY_WAIT: Duration = Duration::from_secs(30);

/// One `jwt` entry, running.
pub struct KubeIssuer {
    /// The compiled entry.
    pub authenticator: Authenticator,
    /// gatehouse's settings for it.
    pub settings: IssuerSettings,
    keys: Arc<RemoteKeys>,
    /// What the keys were loaded for: a reload keeps them when this is unchanged.
    source: KeySource,
}

/// What an issuer's key set depends on: `issuer.url`, `discoveryURL`,
/// `certificateAuthority` and `audiences` (the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeySource {
    url: String,
    discovery_url: Option<String>,
    certificate_authority: String,
    audiences: Vec<String>,
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
        keys::verify(&*self.keys, token, now).await
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
    /// The URLs in the file's order.
    order: Vec<String>,
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

/// A key set for `source`, with the kube-apiserver's claim rules; nothing fetched yet.
fn remote_keys(source: &KeySource) -> Result<RemoteKeys, IssuerError> {
    let ca = Some(source.certificate_authority.as_bytes()).filter(|c| !c.is_empty());
    let http = gatehouse_oidc::http::client_trusting_only(ca, &crate::oidc::HTTP).map_err(|e| {
        IssuerError {
            issuer: source.url.clone(),
            reason: e.to_string(),
        }
    })?;
    let remote = RemoteSettings {
        issuer: source.url.clone(),
        discovery_url: source.discovery_url.clone(),
        min_refetch_interval: Duration::from_secs(10),
        refresh_interval: Duration::from_secs(300),
        refresh_bounds: JWKS_REFRESH_BOUNDS,
    };
    let (issuer, audiences) = (source.url.clone(), source.audiences.clone());
    Ok(RemoteKeys::new(remote, http, move |_| {
        Policy::kubernetes(
            issuer.clone(),
            audiences.clone(),
            jwt::KUBERNETES_ALGORITHMS.to_vec(),
        )
    }))
}

impl IssuerSet {
    /// The set for `compiled`; an issuer whose [`KeySource`] is unchanged from `previous`
    /// keeps its loaded keys (a reload never makes a working issuer wait for its IdP again).
    fn build(
        compiled: Compiled,
        settings: &[IssuerSettings],
        generation: u64,
        previous: Option<&IssuerSet>,
    ) -> Result<Self, IssuerError> {
        let digest = compiled.digest;
        let mut by_url = HashMap::new();
        let order: Vec<String> = compiled
            .authenticators
            .iter()
            .map(|a| a.issuer.clone())
            .collect();
        for (authenticator, jwt) in compiled
            .authenticators
            .into_iter()
            .zip(&compiled.config.jwt)
        {
            let source = KeySource {
                url: authenticator.issuer.clone(),
                discovery_url: jwt.issuer.discovery_url.clone().filter(|d| !d.is_empty()),
                certificate_authority: jwt.issuer.certificate_authority.clone(),
                audiences: authenticator.audiences.clone(),
            };
            let kept = previous
                .and_then(|p| p.by_url.get(&authenticator.issuer))
                .filter(|old| old.source == source)
                .map(|old| Arc::clone(&old.keys));
            let keys = match kept {
                Some(keys) => keys,
                None => Arc::new(remote_keys(&source)?),
            };
            let url = authenticator.issuer.clone();
            let issuer = KubeIssuer {
                settings: settings_for(settings, &url),
                authenticator,
                keys,
                source,
            };
            by_url.insert(url, Arc::new(issuer));
        }
        Ok(Self {
            by_url,
            order,
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

    /// Every issuer's URL, in the file's order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Every issuer, in the file's order.
    pub fn issuers(&self) -> impl Iterator<Item = &Arc<KubeIssuer>> {
        self.order.iter().filter_map(|u| self.by_url.get(u))
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
    ready_wait: Duration,
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
        let set = IssuerSet::build(config.initial.clone(), &config.issuers, 1, None)?;
        Ok(Self {
            current: ArcSwap::from_pointee(set),
            status: ArcSwap::from_pointee(ReloadStatus::Current),
            source: config.source.clone(),
            settings: config.issuers.clone(),
            options: config.options.clone(),
            reload_interval: config.reload_interval,
            generations: AtomicU64::new(1),
            ready_wait: RELOAD_READY_WAIT,
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
        let digest = sha256(text.as_bytes());
        if digest == self.current.load().digest {
            if *self.status.load_full() != ReloadStatus::Current {
                // The file is back to the running version.
                self.status.store(Arc::new(ReloadStatus::Current));
            }
            return Reloaded::Unchanged;
        }
        // Changed: applied only once it reads the same twice, SETTLE apart, so a file being
        // rewritten in place (truncated, then written) is never compiled half-written.
        tokio::time::sleep(SETTLE).await;
        match std::fs::read(path) {
            Ok(again) if sha256(&again) == digest => {}
            _ => return Reloaded::Unchanged,
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
        let set = match IssuerSet::build(
            compiled,
            &self.settings,
            generation,
            Some(&self.current.load()),
        ) {
            Ok(s) => s,
            Err(e) => return self.refuse(vec![e.to_string()]),
        };
        set.start();
        let deadline = tokio::time::Instant::now() + self.ready_wait;
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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n  - issuer: {url: 'https://127.0.0.1:1/a', audiences: [k]}\n    claimMappings:\n      username: {claim: sub, prefix: 'a:'}\n";

    fn issuers(dir: &std::path::Path, text: &str) -> Issuers {
        let file = dir.join("authn.yaml");
        std::fs::write(&file, text).unwrap();
        let yaml = format!("authentication:\n  configFile: {}\n", file.display());
        let config = crate::config::parse(&yaml, &std::collections::HashMap::new()).unwrap();
        let mut i = Issuers::new(config.authentication.as_ref().unwrap()).unwrap();
        i.ready_wait = Duration::from_millis(50);
        i
    }

    fn urls(i: &Issuers) -> Vec<String> {
        let mut u: Vec<String> = i.current().urls().map(str::to_owned).collect();
        u.sort();
        u
    }

    #[tokio::test]
    async fn reloads_apply_a_valid_change_keep_the_running_set_on_a_broken_one_and_see_no_change_twice()
     {
        let dir = std::env::temp_dir().join(format!("gatehouse-issuers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let i = issuers(&dir, FILE);
        let file = dir.join("authn.yaml");
        assert_eq!(i.reload().await, Reloaded::Unchanged);
        assert_eq!(i.current().generation, 1);

        let two = format!(
            "{FILE}  - issuer: {{url: 'https://127.0.0.1:1/b', audiences: [k]}}\n    claimMappings:\n      username: {{claim: sub, prefix: 'b:'}}\n"
        );
        std::fs::write(&file, &two).unwrap();
        let keys_of_a = Arc::clone(&i.current().get("https://127.0.0.1:1/a").unwrap().keys);
        assert_eq!(i.reload().await, Reloaded::Applied);
        assert_eq!(urls(&i), ["https://127.0.0.1:1/a", "https://127.0.0.1:1/b"]);
        // The unchanged issuer kept its key set; a changed one gets a new one.
        assert!(Arc::ptr_eq(
            &keys_of_a,
            &i.current().get("https://127.0.0.1:1/a").unwrap().keys
        ));
        assert_eq!(i.current().generation, 2);
        assert_eq!(*i.status(), ReloadStatus::Current);
        assert_eq!(i.reload().await, Reloaded::Unchanged);

        std::fs::write(&file, two.replace("audiences: [k]", "audiences: []")).unwrap();
        assert_eq!(i.reload().await, Reloaded::Refused);
        assert_eq!(i.current().generation, 2, "the running set was replaced");
        assert_eq!(urls(&i).len(), 2);
        let ReloadStatus::Refused(problems) = &*i.status() else {
            panic!("not refused");
        };
        assert!(
            problems.iter().any(|p| p.contains("issuer.audiences")),
            "{problems:?}"
        );

        // Back to the running content: current again, nothing rebuilt.
        std::fs::write(&file, &two).unwrap();
        assert_eq!(i.reload().await, Reloaded::Unchanged);
        assert_eq!(*i.status(), ReloadStatus::Current);
        assert_eq!(i.current().generation, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_file_still_being_written_is_not_applied_until_it_reads_the_same_twice() {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-issuers-settle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let i = std::sync::Arc::new(issuers(&dir, FILE));
        let file = dir.join("authn.yaml");
        let next = FILE.replace("prefix: 'a:'", "prefix: 'x:'");
        std::fs::write(&file, &next).unwrap();
        let reload = {
            let i = std::sync::Arc::clone(&i);
            tokio::spawn(async move { i.reload().await })
        };
        // Rewritten within the settle time: this read is not applied.
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::write(&file, next.replace("'x:'", "'y:'")).unwrap();
        assert_eq!(reload.await.unwrap(), Reloaded::Unchanged);
        assert_eq!(i.current().generation, 1);
        // Left alone, it is.
        assert_eq!(i.reload().await, Reloaded::Applied);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_start_up_digest_is_the_compiled_text_s() {
        let config = crate::config::compile_text(FILE, &Options::default()).unwrap();
        assert_eq!(config.digest, sha256(FILE.as_bytes()));
    }
}
