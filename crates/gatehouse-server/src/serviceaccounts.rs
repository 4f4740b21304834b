//! The claim-to-ServiceAccount index, kept current by watching ServiceAccounts.
//!
//! Only metadata is watched (annotations are all gatehouse needs): in every namespace with
//! `serviceAccounts.allNamespaces`, otherwise in `serviceAccounts.namespaces` plus the global
//! ones, one stream each (none at all when no namespace is mappable). Each stream lists
//! atomically: objects gathered between `Init` and `InitDone` replace that stream's part of the
//! index in one step, so a reconnect never leaves a half-built index. Requests read the index
//! under a short read lock and never touch the network.
//!
//! # Security
//! - **Which namespaces count** is decided here, from the configuration, never from the
//!   annotations: a ServiceAccount outside the [`NamespaceScope`] gets no rules, whatever it is
//!   annotated with (logged, so an attempt on `kube-system` is visible). See `mapping.rs`.
//! - **A failing watch must not keep stale mappings in force.** Once listed, the index is only
//!   as current as its watch: a ServiceAccount deleted, or an annotation removed, while the
//!   watch cannot reach the kube-apiserver (lost RBAC, network, an apiserver that stops
//!   answering) would still map users. Every error restarts the stream with a fresh list (so
//!   recovery is proven by a complete `InitDone`, never assumed from a quiet stream), and a
//!   stream that has kept failing for `serviceAccounts.maxStaleness` makes the index *stale*:
//!   `/readyz` says so ([`ServiceAccountIndex::stale_reason`]) and requests that would act as a
//!   mapped ServiceAccount are refused with a 503 that says why
//!   ([`ServiceAccountIndex::lookup_fresh`]). Requests that map to nothing still fall through
//!   with the user's own token (the kube-apiserver judges those; the stale index grants them
//!   nothing). The watch call's own timeout is at most half of `maxStaleness` (and at most
//!   290 s), so RBAC taken away from an open watch, or a connection that went silent, shows as
//!   an error well within it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use gatehouse_core::mapping::{
    MappingIndex, NamespaceScope, Rules, ServiceAccountRef, Who, all_rules_from_annotations,
};

type Entry = (ServiceAccountRef, Rules);
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher;

use crate::config::ServiceAccountsConfig;

/// Longest wait between two attempts of a failing watch stream.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The health of one watch stream.
#[derive(Debug, Clone, Default)]
struct StreamHealth {
    /// `(all)` or the namespace, for messages.
    label: String,
    /// Listed at least once.
    synced: bool,
    /// Failing without a complete list since then.
    failing_since: Option<Instant>,
    /// The latest error, for messages (no secrets: kube errors name the request and status).
    last_error: String,
}

/// A ServiceAccount for [`ServiceAccountIndex::list_for_tests`]: namespace, name, annotations.
#[doc(hidden)]
pub type ListedForTests<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// The shared index and its sync state.
#[derive(Debug)]
pub struct ServiceAccountIndex {
    prefix: String,
    scope: NamespaceScope,
    max_staleness: Duration,
    index: RwLock<MappingIndex>,
    health: Mutex<Vec<StreamHealth>>,
}

impl ServiceAccountIndex {
    /// An empty index for the given configuration.
    pub fn new(config: &ServiceAccountsConfig) -> Arc<Self> {
        let labels: Vec<String> = match config.watched_namespaces() {
            None => vec!["(all)".to_owned()],
            Some(namespaces) => namespaces,
        };
        Arc::new(Self {
            prefix: config.annotation_prefix.clone(),
            scope: config.scope(),
            max_staleness: config.max_staleness,
            index: RwLock::new(MappingIndex::new()),
            health: Mutex::new(
                labels
                    .into_iter()
                    .map(|label| StreamHealth {
                        label,
                        ..StreamHealth::default()
                    })
                    .collect(),
            ),
        })
    }

    fn with_health<R>(&self, f: impl FnOnce(&mut Vec<StreamHealth>) -> R) -> R {
        match self.health.lock() {
            Ok(mut h) => f(&mut h),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// True once every watch stream has listed its ServiceAccounts.
    pub fn is_synced(&self) -> bool {
        self.with_health(|h| h.iter().all(|s| s.synced))
    }

    /// Records a complete list of stream `stream`: its part of the index is current again.
    fn record_listed(&self, stream: usize) {
        self.with_health(|h| {
            if let Some(s) = h.get_mut(stream) {
                if s.failing_since.take().is_some() {
                    tracing::info!(namespace = %s.label, "ServiceAccount watch recovered");
                }
                s.synced = true;
            }
        });
    }

    /// Records a failure of stream `stream` at `now`.
    fn record_failure(&self, stream: usize, now: Instant, error: String) {
        self.with_health(|h| {
            if let Some(s) = h.get_mut(stream) {
                s.failing_since.get_or_insert(now);
                s.last_error = error;
            }
        });
    }

    /// Why the index can no longer be trusted at `now`, or `None`: a stream that was listed
    /// has been failing for `maxStaleness` or longer. (Before the first list, readiness already
    /// says the ServiceAccounts have not been listed.)
    pub fn stale_reason(&self, now: Instant) -> Option<String> {
        let max = self.max_staleness;
        let stale: Vec<String> = self.with_health(|h| {
            h.iter()
                .filter(|s| s.synced)
                .filter_map(|s| {
                    let since = s.failing_since?;
                    let failing = now.saturating_duration_since(since);
                    (failing >= max).then(|| {
                        format!(
                            "the ServiceAccount watch ({}) has been failing for {} (more than serviceAccounts.maxStaleness, {}), so mappings may be out of date; last error: {}",
                            s.label,
                            humantime::format_duration(Duration::from_secs(failing.as_secs())),
                            humantime::format_duration(max),
                            s.last_error
                        )
                    })
                })
                .collect()
        });
        (!stale.is_empty()).then(|| stale.join("; "))
    }

    /// The ServiceAccounts that `who` maps to.
    pub fn lookup(&self, who: Who<'_>) -> BTreeSet<ServiceAccountRef> {
        match self.index.read() {
            Ok(idx) => idx.lookup_who(who),
            Err(poisoned) => poisoned.into_inner().lookup_who(who),
        }
    }

    /// Like [`Self::lookup`] for a request about to act on the answer: refused (the message
    /// says why, for a 503) while the index is stale and the user maps to a ServiceAccount, or
    /// maps to none and `refuse_unmapped` (fall-through off, where "maps to nothing" would be
    /// a verdict from stale data too).
    pub fn lookup_fresh(
        &self,
        who: Who<'_>,
        refuse_unmapped: bool,
    ) -> Result<BTreeSet<ServiceAccountRef>, String> {
        self.lookup_fresh_at(who, refuse_unmapped, Instant::now())
    }

    fn lookup_fresh_at(
        &self,
        who: Who<'_>,
        refuse_unmapped: bool,
        now: Instant,
    ) -> Result<BTreeSet<ServiceAccountRef>, String> {
        let mapped = self.lookup(who);
        // Before the first list "maps to nothing" is no verdict either: a user who would map
        // must not be refused, nor impersonated as themselves, for want of the list.
        if mapped.is_empty() && refuse_unmapped && !self.is_synced() {
            return Err("gatehouse has not listed the ServiceAccounts yet, so it cannot tell whether you map to one; try again shortly (if this lasts, ask your platform team to check gatehouse's RBAC: list and watch serviceaccounts)".to_owned());
        }
        if (!mapped.is_empty() || refuse_unmapped)
            && let Some(reason) = self.stale_reason(now)
        {
            return Err(format!(
                "gatehouse cannot use its ServiceAccount mappings right now: {reason}. Requests that would act as a mapped ServiceAccount are refused until the watch recovers; try again later, or ask your platform team to check gatehouse's log and its RBAC (list and watch serviceaccounts)"
            ));
        }
        Ok(mapped)
    }

    /// For in-process tests, which have no kube-apiserver to watch: takes `accounts`
    /// (namespace, name, annotations) as every stream's complete list. The annotations are
    /// read, and the namespace scope applied, exactly as for watched ServiceAccounts.
    #[doc(hidden)]
    pub fn list_for_tests(&self, accounts: &[ListedForTests<'_>]) {
        for (namespace, name, annotations) in accounts {
            let mut sa = PartialObjectMeta::<ServiceAccount>::default();
            sa.metadata.namespace = Some((*namespace).to_owned());
            sa.metadata.name = Some((*name).to_owned());
            sa.metadata.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            if let Some((sa_ref, rules)) = self.rules_of(&sa) {
                self.with_index(|i| i.upsert_rules(sa_ref, rules));
            }
        }
        let streams = self.with_health(|h| h.len());
        for stream in 0..streams {
            self.record_listed(stream);
        }
    }

    /// For in-process tests: every stream has been failing since `since` with `error`.
    #[doc(hidden)]
    pub fn fail_for_tests(&self, since: Instant, error: &str) {
        let streams = self.with_health(|h| h.len());
        for stream in 0..streams {
            self.record_failure(stream, since, error.to_owned());
        }
    }

    fn with_index<R>(&self, f: impl FnOnce(&mut MappingIndex) -> R) -> R {
        match self.index.write() {
            Ok(mut idx) => f(&mut idx),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn rules_of(&self, sa: &PartialObjectMeta<ServiceAccount>) -> Option<Entry> {
        let namespace = sa.metadata.namespace.clone()?;
        let name = sa.metadata.name.clone()?;
        let sa_ref = ServiceAccountRef::new(namespace, name);
        let empty = Default::default();
        let annotations = sa.metadata.annotations.as_ref().unwrap_or(&empty);
        let (rules, errors) = all_rules_from_annotations(&self.prefix, annotations);
        for e in errors {
            tracing::warn!(serviceaccount = %sa_ref, error = %e, "ignoring an unreadable mapping annotation");
        }
        if !rules.is_empty() && !self.scope.allows(&sa_ref.namespace) {
            tracing::warn!(
                serviceaccount = %sa_ref,
                "ignoring the mapping annotations of a ServiceAccount in a namespace that is not mappable (kube-system, kube-public, kube-node-lease and gatehouse's own namespace are mappable only when listed by name in serviceAccounts.namespaces)"
            );
            return Some((sa_ref, Rules::default()));
        }
        Some((sa_ref, rules))
    }

    /// Watches ServiceAccounts and keeps the index current. Runs until the process stops.
    pub async fn run(self: Arc<Self>, client: kube::Client, config: ServiceAccountsConfig) {
        let scopes: Vec<Option<String>> = match config.watched_namespaces() {
            None => vec![None],
            Some(namespaces) => namespaces.into_iter().map(Some).collect(),
        };
        if scopes.is_empty() {
            tracing::warn!(
                "no namespace is mappable, so no OIDC user maps to a ServiceAccount (they fall through, or are refused with fall-through off); set serviceAccounts.namespaces, or serviceAccounts.allNamespaces: true"
            );
        }
        let timeout = watch_timeout(config.max_staleness);
        let tasks = scopes.into_iter().enumerate().map(|(i, scope)| {
            let this = Arc::clone(&self);
            let client = client.clone();
            async move { this.watch_scope(i, client, scope, timeout).await }
        });
        futures::future::join_all(tasks).await;
    }

    async fn watch_scope(
        &self,
        stream_id: usize,
        client: kube::Client,
        scope: Option<String>,
        timeout_secs: u32,
    ) {
        let api: Api<PartialObjectMeta<ServiceAccount>> = match &scope {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let label = scope.as_deref().unwrap_or("(all)").to_owned();
        let config = watcher::Config::default().timeout(timeout_secs);
        let mut backoff = Duration::from_secs(1);
        loop {
            // A fresh watcher per attempt: it starts with a complete list, so the index part
            // is replaced and recovery is proven, never assumed.
            let mut stream = watcher(api.clone(), config.clone()).boxed();
            let mut buffer: Option<Vec<Entry>> = None;
            let error = loop {
                let Some(event) = stream.next().await else {
                    break "the watch stream ended".to_owned();
                };
                match event {
                    Ok(watcher::Event::Init) => buffer = Some(Vec::new()),
                    Ok(watcher::Event::InitApply(sa)) => {
                        if let (Some(buf), Some(entry)) = (buffer.as_mut(), self.rules_of(&sa)) {
                            buf.push(entry);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        let fresh = buffer.take().unwrap_or_default();
                        let count = self.with_index(|idx| {
                            let stale: Vec<ServiceAccountRef> = idx
                                .service_accounts()
                                .filter(|sa| scope.as_ref().is_none_or(|ns| &sa.namespace == ns))
                                .cloned()
                                .collect();
                            for sa in &stale {
                                idx.remove(sa);
                            }
                            for (sa, rules) in fresh {
                                idx.upsert_rules(sa, rules);
                            }
                            idx.len()
                        });
                        tracing::info!(namespace = %label, mapped = count, "ServiceAccounts listed");
                        self.record_listed(stream_id);
                        backoff = Duration::from_secs(1);
                    }
                    Ok(watcher::Event::Apply(sa)) => {
                        if let Some((sa_ref, rules)) = self.rules_of(&sa) {
                            self.with_index(|idx| idx.upsert_rules(sa_ref, rules));
                        }
                    }
                    Ok(watcher::Event::Delete(sa)) => {
                        if let Some((sa_ref, _)) = self.rules_of(&sa) {
                            self.with_index(|idx| idx.remove(&sa_ref));
                        }
                    }
                    Err(e) => break e.to_string(),
                }
            };
            drop(stream);
            tracing::warn!(error = %error, namespace = %label, retry_in = ?backoff, "ServiceAccount watch failed; listing again after a pause");
            self.record_failure(stream_id, Instant::now(), error);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The watch call's timeout: at most half of `maxStaleness`, at least 1 s, at most the usual
/// 290 s. A watch that lost its rights, or whose connection went silent, is noticed when the
/// call ends (plus kube's 5 s idle margin), well within `maxStaleness`.
fn watch_timeout(max_staleness: Duration) -> u32 {
    u32::try_from((max_staleness / 2).as_secs().clamp(1, 290)).unwrap_or(290)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use serde_json::json;

    fn config(yaml: &str) -> ServiceAccountsConfig {
        crate::config::parse(yaml, &std::collections::HashMap::new())
            .unwrap()
            .service_accounts
    }

    fn claims(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn sa(ns: &str, name: &str, annotations: &[(&str, &str)]) -> PartialObjectMeta<ServiceAccount> {
        let mut m = PartialObjectMeta::<ServiceAccount>::default();
        m.metadata.namespace = Some(ns.to_owned());
        m.metadata.name = Some(name.to_owned());
        m.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        m
    }

    /// An index whose one stream listed `team-a/dev` (groups: devs).
    fn listed(max_staleness: &str) -> Arc<ServiceAccountIndex> {
        let idx = ServiceAccountIndex::new(&config(&format!(
            "serviceAccounts: {{ namespaces: [team-a], maxStaleness: {max_staleness} }}"
        )));
        let entry = idx
            .rules_of(&sa(
                "team-a",
                "dev",
                &[("gatehouse.dev/claim.groups", "devs")],
            ))
            .unwrap();
        idx.with_index(|i| i.upsert_rules(entry.0, entry.1));
        idx.record_listed(0);
        idx
    }

    #[test]
    fn before_the_first_list_maps_to_nothing_is_no_verdict_when_it_would_act() {
        let idx = ServiceAccountIndex::new(&config("serviceAccounts: { namespaces: [team-a] }\n"));
        let nobody = claims(json!({"groups": ["qa"]}));
        // Falls through (the user's own token): harmless, so allowed.
        assert!(
            idx.lookup_fresh(Who::claims(&nobody), false)
                .unwrap()
                .is_empty()
        );
        // Would be refused or impersonated as themselves: 503 until the list is in.
        let e = idx.lookup_fresh(Who::claims(&nobody), true).unwrap_err();
        assert!(e.contains("has not listed the ServiceAccounts yet"), "{e}");
        idx.record_listed(0);
        assert!(
            idx.lookup_fresh(Who::claims(&nobody), true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn failing_watch_makes_mappings_stale_after_max_staleness() {
        let idx = listed("60s");
        let t0 = Instant::now();
        let devs = claims(json!({"groups": ["devs"]}));
        assert!(idx.stale_reason(t0).is_none());
        assert_eq!(
            idx.lookup_fresh_at(Who::claims(&devs), false, t0)
                .unwrap()
                .len(),
            1
        );

        idx.record_failure(0, t0, "serviceaccounts is forbidden".to_owned());
        // Retries keep failing; the clock runs from the first failure.
        idx.record_failure(
            0,
            t0 + Duration::from_secs(30),
            "still forbidden".to_owned(),
        );
        let before = t0 + Duration::from_secs(59);
        assert!(idx.stale_reason(before).is_none());
        assert!(
            idx.lookup_fresh_at(Who::claims(&devs), false, before)
                .is_ok()
        );

        let after = t0 + Duration::from_secs(61);
        let reason = idx.stale_reason(after).expect("stale after maxStaleness");
        assert!(
            reason.contains("team-a") && reason.contains("still forbidden"),
            "{reason}"
        );
        let refused = idx
            .lookup_fresh_at(Who::claims(&devs), false, after)
            .unwrap_err();
        assert!(
            refused.contains("serviceAccounts.maxStaleness"),
            "{refused}"
        );
        // A user the stale index maps to nothing still falls through; with fall-through off the
        // verdict "maps to nothing" would come from stale data, so that is refused too.
        let nobody = claims(json!({"groups": ["qa"]}));
        assert!(
            idx.lookup_fresh_at(Who::claims(&nobody), false, after)
                .unwrap()
                .is_empty()
        );
        assert!(
            idx.lookup_fresh_at(Who::claims(&nobody), true, after)
                .is_err()
        );

        // A complete list again: fresh, and the clock starts over on the next failure.
        idx.record_listed(0);
        assert!(idx.stale_reason(after).is_none());
        assert!(
            idx.lookup_fresh_at(Who::claims(&devs), false, after)
                .is_ok()
        );
        idx.record_failure(0, after, "again".to_owned());
        assert!(idx.stale_reason(after + Duration::from_secs(59)).is_none());
    }

    #[test]
    fn never_listed_stream_is_not_ready_rather_than_stale() {
        let idx = ServiceAccountIndex::new(&config(
            "serviceAccounts: { allNamespaces: true, maxStaleness: 1s }",
        ));
        let t0 = Instant::now();
        idx.record_failure(0, t0, "connection refused".to_owned());
        assert!(!idx.is_synced());
        assert!(idx.stale_reason(t0 + Duration::from_secs(10)).is_none());
    }

    #[test]
    fn serviceaccounts_outside_the_scope_get_no_rules() {
        let idx = ServiceAccountIndex::new(&config(
            "serviceAccounts: { allNamespaces: true, gatehouseNamespace: gatehouse }",
        ));
        let ann = [("gatehouse.dev/claim.groups", "devs")];
        for ns in ["kube-system", "kube-public", "kube-node-lease", "gatehouse"] {
            let (_, rules) = idx.rules_of(&sa(ns, "x", &ann)).unwrap();
            assert!(rules.is_empty(), "{ns} must not be mappable");
        }
        assert_eq!(idx.rules_of(&sa("team-a", "x", &ann)).unwrap().1.len(), 1);
        let named = ServiceAccountIndex::new(&config(
            "serviceAccounts: { allNamespaces: true, namespaces: [kube-system] }",
        ));
        assert_eq!(
            named
                .rules_of(&sa("kube-system", "x", &ann))
                .unwrap()
                .1
                .len(),
            1
        );
    }

    #[test]
    fn watch_timeout_is_within_max_staleness() {
        assert_eq!(watch_timeout(Duration::from_secs(300)), 150);
        assert_eq!(watch_timeout(Duration::from_secs(3600)), 290);
        assert_eq!(watch_timeout(Duration::from_secs(1)), 1);
    }
}
