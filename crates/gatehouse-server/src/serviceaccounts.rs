//! The claim-to-ServiceAccount index, kept current by watching ServiceAccounts.
//!
//! Only metadata is watched (annotations are all gatehouse needs), in every namespace or, when
//! `serviceAccounts.namespaces` is set, in those namespaces plus the global ones. Each watch
//! stream relists atomically: objects gathered between `Init` and `InitDone` replace that
//! stream's part of the index in one step, so a reconnect never leaves a half-built index.
//! Requests read the index under a short read lock and never touch the network.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use gatehouse_core::mapping::{ClaimRule, MappingIndex, ServiceAccountRef, rules_from_annotations};

type Entry = (ServiceAccountRef, Vec<ClaimRule>);
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Map, Value};

use crate::config::ServiceAccountsConfig;

/// The shared index and its sync state.
#[derive(Debug)]
pub struct ServiceAccountIndex {
    prefix: String,
    index: RwLock<MappingIndex>,
    streams: usize,
    synced_streams: AtomicUsize,
}

impl ServiceAccountIndex {
    /// An empty index for the given configuration.
    pub fn new(config: &ServiceAccountsConfig) -> Arc<Self> {
        let streams = config.watched_namespaces().map_or(1, |n| n.len());
        Arc::new(Self {
            prefix: config.annotation_prefix.clone(),
            index: RwLock::new(MappingIndex::new()),
            streams,
            synced_streams: AtomicUsize::new(0),
        })
    }

    /// True once every watch stream has listed its ServiceAccounts.
    pub fn is_synced(&self) -> bool {
        self.synced_streams.load(Ordering::Acquire) >= self.streams
    }

    /// The ServiceAccounts that `claims` map to.
    pub fn lookup(&self, claims: &Map<String, Value>) -> BTreeSet<ServiceAccountRef> {
        match self.index.read() {
            Ok(idx) => idx.lookup(claims),
            Err(poisoned) => poisoned.into_inner().lookup(claims),
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
        let (rules, errors) = rules_from_annotations(&self.prefix, annotations);
        for e in errors {
            tracing::warn!(serviceaccount = %sa_ref, error = %e, "ignoring an unreadable mapping annotation");
        }
        Some((sa_ref, rules))
    }

    /// Watches ServiceAccounts and keeps the index current. Runs until the process stops.
    pub async fn run(self: Arc<Self>, client: kube::Client, config: ServiceAccountsConfig) {
        let scopes: Vec<Option<String>> = match config.watched_namespaces() {
            None => vec![None],
            Some(namespaces) => namespaces.into_iter().map(Some).collect(),
        };
        let tasks = scopes.into_iter().map(|scope| {
            let this = Arc::clone(&self);
            let client = client.clone();
            async move { this.watch_scope(client, scope).await }
        });
        futures::future::join_all(tasks).await;
    }

    async fn watch_scope(&self, client: kube::Client, scope: Option<String>) {
        let api: Api<PartialObjectMeta<ServiceAccount>> = match &scope {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut buffer: Option<Vec<Entry>> = None;
        let mut synced = false;
        while let Some(event) = stream.next().await {
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
                            idx.upsert(sa, rules);
                        }
                        idx.len()
                    });
                    tracing::info!(
                        namespace = scope.as_deref().unwrap_or("(all)"),
                        mapped = count,
                        "ServiceAccounts listed"
                    );
                    if !synced {
                        synced = true;
                        self.synced_streams.fetch_add(1, Ordering::AcqRel);
                    }
                }
                Ok(watcher::Event::Apply(sa)) => {
                    if let Some((sa_ref, rules)) = self.rules_of(&sa) {
                        self.with_index(|idx| idx.upsert(sa_ref, rules));
                    }
                }
                Ok(watcher::Event::Delete(sa)) => {
                    if let Some((sa_ref, _)) = self.rules_of(&sa) {
                        self.with_index(|idx| idx.remove(&sa_ref));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, namespace = scope.as_deref().unwrap_or("(all)"), "ServiceAccount watch failed; retrying");
                }
            }
        }
    }
}
