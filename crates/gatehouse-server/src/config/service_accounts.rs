//! The `serviceAccounts` section: the annotation prefix, which namespaces are indexed, which
//! are global or protected, and how stale the index may be.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Reader, Source};

/// ServiceAccount mapping.
#[derive(Debug, Clone)]
pub struct ServiceAccountsConfig {
    /// Annotation prefix (default `gatehouse.dev`).
    pub annotation_prefix: String,
    /// Namespaces whose ServiceAccounts may be mapped, named one by one (`serviceAccounts.namespaces`).
    pub namespaces: Vec<String>,
    /// Every namespace may be mapped, except the protected ones not named
    /// (`serviceAccounts.allNamespaces`, default false).
    pub all_namespaces: bool,
    /// Namespaces whose mapped ServiceAccounts apply in every namespace.
    pub global_namespaces: Vec<String>,
    /// gatehouse's own namespace(s): `serviceAccounts.gatehouseNamespace`, `POD_NAMESPACE` and
    /// the in-cluster ServiceAccount namespace file. Protected like `kube-system`.
    pub gatehouse_namespaces: Vec<String>,
    /// How long the ServiceAccount watch may fail before mappings are no longer trusted
    /// (`serviceAccounts.maxStaleness`, default 5m).
    pub max_staleness: Duration,
}

/// Where a pod finds its own namespace when the downward API does not set `POD_NAMESPACE`.
pub const IN_CLUSTER_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl ServiceAccountsConfig {
    /// True when no namespace is mappable (neither `namespaces`, `globalNamespaces` nor
    /// `allNamespaces` is set): gatehouse then maps nobody and watches nothing.
    pub fn maps_nothing(&self) -> bool {
        !self.all_namespaces && self.namespaces.is_empty() && self.global_namespaces.is_empty()
    }

    /// The namespaces to watch; `None` means all namespaces.
    pub fn watched_namespaces(&self) -> Option<Vec<String>> {
        if self.all_namespaces {
            return None;
        }
        let set: BTreeSet<String> = self
            .namespaces
            .iter()
            .chain(&self.global_namespaces)
            .cloned()
            .collect();
        Some(set.into_iter().collect())
    }

    /// Which namespaces' ServiceAccounts may be mapped: those named in `namespaces` or
    /// `globalNamespaces`, and with `allNamespaces` every other one except the protected
    /// namespaces (`kube-system`, `kube-public`, `kube-node-lease`, gatehouse's own).
    pub fn scope(&self) -> gatehouse_core::mapping::NamespaceScope {
        gatehouse_core::mapping::NamespaceScope::new(
            self.all_namespaces,
            self.namespaces
                .iter()
                .chain(&self.global_namespaces)
                .cloned(),
            self.gatehouse_namespaces.iter().cloned(),
        )
    }
}

/// gatehouse's own namespace, from every place that may name it: the setting, the
/// `POD_NAMESPACE` environment variable (the Helm chart sets it with the downward API) and the
/// in-cluster ServiceAccount namespace file. All of them are protected, so a disagreement
/// between them can only protect more.
fn gatehouse_namespaces(
    configured: Option<String>,
    env: &dyn Source,
    file: &std::path::Path,
) -> Vec<String> {
    let from_file = std::fs::read_to_string(file).ok();
    let set: BTreeSet<String> = [configured, env.get("POD_NAMESPACE"), from_file]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    set.into_iter().collect()
}

pub(super) fn read_service_accounts(r: &mut Reader<'_>) -> ServiceAccountsConfig {
    let annotation_prefix = r
        .string("serviceAccounts.annotationPrefix", None)
        .unwrap_or_else(|| "gatehouse.dev".to_owned());
    if annotation_prefix.is_empty() || annotation_prefix.contains('/') {
        r.problem(
            "serviceAccounts.annotationPrefix",
            "must be a non-empty annotation prefix without `/`, for example `gatehouse.dev`",
        );
    }
    let namespaces = r
        .list("serviceAccounts.namespaces", None)
        .unwrap_or_default();
    let all_namespaces = r
        .bool("serviceAccounts.allNamespaces", None)
        .unwrap_or(false);
    let global_namespaces = r
        .list(
            "serviceAccounts.globalNamespaces",
            Some("GLOBAL_SERVICE_ACCOUNT_NAMESPACES"),
        )
        .unwrap_or_default();
    let configured_own = r.string("serviceAccounts.gatehouseNamespace", None);
    let max_staleness = r
        .duration("serviceAccounts.maxStaleness", None)
        .unwrap_or(Duration::from_secs(300));
    if max_staleness < Duration::from_secs(1) {
        r.problem(
            "serviceAccounts.maxStaleness",
            "must be at least 1s (the default, 5m, suits most clusters)",
        );
    }
    ServiceAccountsConfig {
        annotation_prefix,
        namespaces,
        all_namespaces,
        global_namespaces,
        gatehouse_namespaces: gatehouse_namespaces(
            configured_own,
            r.env,
            std::path::Path::new(IN_CLUSTER_NAMESPACE_FILE),
        ),
        max_staleness,
    }
}
