//! Named health checks, in the kube-apiserver's format: `GET /readyz?verbose` lists every check
//! as `[+]name ok` or `[-]name failed: reason`, `GET /readyz/<name>` answers one. Plain
//! `/readyz` is unchanged (`ok`, or 503 with a `not ready: ...` line per reason).
//!
//! Two kinds of check:
//! - **readiness** (`oidc-keys`, `serviceaccount-watch-synced`, `serviceaccount-watch-fresh`):
//!   exactly what plain `/readyz` decides on; any of them failing makes `/readyz` 503.
//! - **rights** (`rbac/...`): whether gatehouse's own identity may do what its configuration
//!   needs, asked of the kube-apiserver with SelfSubjectAccessReviews ([`RightsCheck`]). They are
//!   reported, not counted for readiness: a gatehouse missing, say, the right to impersonate the
//!   admin's groups still serves everyone else, and taking every replica out of its Service for
//!   that would turn a partial outage into a full one. `gatehouse doctor` fails on them and says
//!   what to grant.
//!
//! # Security
//! These endpoints are unauthenticated (as the kube-apiserver's own `/readyz?verbose` is by
//! default). They say which check failed and a fixed reason, never a namespace, user, group or
//! error text: the details (which namespace, the kube-apiserver's message) go to gatehouse's log.
//! An unauthenticated caller cannot make gatehouse send reviews at will: the rights are checked
//! at most once per [`RIGHTS_TTL_OK`] (or [`RIGHTS_TTL_FAILED`] while one fails), one check at
//! a time, and callers meanwhile get the previous answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::config::Config;
use crate::upstream::EXTRA_PREFIX;

/// How long a rights answer with every right allowed is reused.
pub const RIGHTS_TTL_OK: Duration = Duration::from_secs(60);
/// How long a rights answer with a right denied or unchecked is reused (short, so a fix shows
/// soon).
pub const RIGHTS_TTL_FAILED: Duration = Duration::from_secs(10);
/// How long one review may take.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// Reviews in flight at once.
const REVIEWS_AT_ONCE: usize = 8;
/// How long one round of rights checks may take in all: reviews not started by then count as
/// unchecked, so a hung kube-apiserver and many mapped namespaces cannot keep the first
/// `/readyz?verbose` waiting for minutes (at most this plus one [`REVIEW_TIMEOUT`]).
const CHECK_BUDGET: Duration = Duration::from_secs(15);

/// The fixed reason of a right that could not be checked.
pub const UNCHECKED: &str =
    "could not be checked: the kube-apiserver did not answer gatehouse's SelfSubjectAccessReview";

/// One named check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check's name (`oidc-keys`, `rbac/impersonate-serviceaccounts`, ...).
    pub name: &'static str,
    /// Whether readiness depends on it.
    pub readiness: bool,
    /// `None` when it passes, else a fixed reason (no names, no error text).
    pub failure: Option<&'static str>,
}

/// Renders checks as `/readyz?verbose` does: a line per check, then the verdict. Returns
/// whether gatehouse is ready (every readiness check passes) and the text.
pub fn render_verbose(checks: &[CheckResult]) -> (bool, String) {
    let mut out = String::new();
    for c in checks {
        match c.failure {
            None => out.push_str(&format!("[+]{} ok\n", c.name)),
            Some(reason) => out.push_str(&format!("[-]{} failed: {reason}\n", c.name)),
        }
    }
    let ready = checks.iter().all(|c| !c.readiness || c.failure.is_none());
    let advisory_failed = checks.iter().any(|c| !c.readiness && c.failure.is_some());
    out.push_str(match (ready, advisory_failed) {
        (false, _) => "readyz check failed\n",
        (true, false) => "readyz check passed\n",
        (true, true) => {
            "readyz check passed (rbac/* or authentication-* checks failed: they are reported, not counted for readiness)\n"
        }
    });
    (ready, out)
}

/// Something gatehouse's configuration needs its own identity to be allowed to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Right {
    /// The check's name.
    pub name: &'static str,
    /// The fixed reason when it is denied.
    pub denied: &'static str,
    /// Every access that must be allowed.
    pub attributes: Vec<ResourceAttributes>,
}

fn access(
    group: &str,
    resource: &str,
    subresource: Option<String>,
    verb: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ResourceAttributes {
    ResourceAttributes {
        group: Some(group.to_owned()),
        resource: Some(resource.to_owned()),
        subresource,
        verb: Some(verb.to_owned()),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        ..Default::default()
    }
}

/// The rights gatehouse's configuration needs, from the API calls it makes:
/// - the ServiceAccount watch (`serviceaccounts.rs`): `list` and `watch` serviceaccounts in
///   every watched namespace, or cluster-wide with `serviceAccounts.allNamespaces`;
/// - mapped requests (`proxy.rs`): `impersonate` serviceaccounts in the same scope, and the
///   user extras `gatehouse.dev/{subject,username,issuer}`;
/// - choosing among several ServiceAccounts (`access.rs`): `create` subjectaccessreviews;
/// - the admin (`proxy.rs`): `impersonate` its user and each of its groups, and the extras.
///
/// - users of issuers with `whenUnmapped: impersonate` (`proxy.rs`): `impersonate` users,
///   groups and uids, and the user extras their claim mappings make.
///
/// OIDC users are mapped only with `oidc` (or `authentication`) and a mappable namespace; the fall-through requests and
/// `/v1/whoami`'s review use the user's own token and need nothing of gatehouse.
pub fn required_rights(config: &Config) -> Vec<Right> {
    let mut rights = Vec::new();
    let sa = &config.service_accounts;
    let mapping = (config.oidc.is_some() || config.authentication.is_some()) && !sa.maps_nothing();
    let impersonating = impersonated_extras(config);
    if mapping {
        let scopes: Vec<Option<String>> = match sa.watched_namespaces() {
            None => vec![None],
            Some(namespaces) => namespaces.into_iter().map(Some).collect(),
        };
        let cluster_wide = sa.all_namespaces;
        let in_scope = |verbs: &[&str]| -> Vec<ResourceAttributes> {
            scopes
                .iter()
                .flat_map(|ns| {
                    verbs
                        .iter()
                        .map(|v| access("", "serviceaccounts", None, v, ns.as_deref(), None))
                })
                .collect()
        };
        rights.push(Right {
            name: "rbac/list-watch-serviceaccounts",
            denied: if cluster_wide {
                "gatehouse may not list and watch serviceaccounts cluster-wide"
            } else {
                "gatehouse may not list and watch serviceaccounts in every mapped namespace"
            },
            attributes: in_scope(&["list", "watch"]),
        });
        rights.push(Right {
            name: "rbac/impersonate-serviceaccounts",
            denied: if cluster_wide {
                "gatehouse may not impersonate serviceaccounts cluster-wide"
            } else {
                "gatehouse may not impersonate serviceaccounts in every mapped namespace"
            },
            attributes: in_scope(&["impersonate"]),
        });
        rights.push(Right {
            name: "rbac/create-subjectaccessreviews",
            denied: "gatehouse may not create subjectaccessreviews",
            attributes: vec![access(
                "authorization.k8s.io",
                "subjectaccessreviews",
                None,
                "create",
                None,
                None,
            )],
        });
    }
    if let Some(extra_keys) = &impersonating {
        let mut attributes = vec![access("", "users", None, "impersonate", None, None)];
        // Named groups when the list is set (as the chart's grant names them), else any group.
        let allowed = config
            .authentication
            .as_ref()
            .map(|a| a.impersonate_groups.clone())
            .unwrap_or_default();
        if allowed.is_empty() {
            attributes.push(access("", "groups", None, "impersonate", None, None));
        } else {
            attributes.extend(
                allowed
                    .iter()
                    .map(|g| access("", "groups", None, "impersonate", None, Some(g))),
            );
        }
        attributes.push(access(
            "authentication.k8s.io",
            "uids",
            None,
            "impersonate",
            None,
            None,
        ));
        attributes.extend(extra_keys.iter().map(|key| {
            access(
                "authentication.k8s.io",
                "userextras",
                Some(key.clone()),
                "impersonate",
                None,
                None,
            )
        }));
        rights.push(Right {
            name: "rbac/impersonate-users",
            denied: "gatehouse may not impersonate the users, groups, uids and user extras that the claim mappings of issuers with whenUnmapped: impersonate make",
            attributes,
        });
    }
    if mapping || config.admin.is_some() || impersonating.is_some() {
        rights.push(Right {
            name: "rbac/impersonate-userextras",
            denied: "gatehouse may not impersonate the user extras gatehouse.dev/subject, gatehouse.dev/username and gatehouse.dev/issuer",
            attributes: ["subject", "username", "issuer"]
                .iter()
                .map(|key| {
                    access(
                        "authentication.k8s.io",
                        "userextras",
                        Some(format!("{EXTRA_PREFIX}/{key}")),
                        "impersonate",
                        None,
                        None,
                    )
                })
                .collect(),
        });
    }
    if let Some(admin) = &config.admin {
        let mut attributes = vec![access(
            "",
            "users",
            None,
            "impersonate",
            None,
            Some(&admin.impersonate_user),
        )];
        attributes.extend(
            admin
                .impersonate_groups
                .iter()
                .map(|g| access("", "groups", None, "impersonate", None, Some(g))),
        );
        rights.push(Right {
            name: "rbac/impersonate-admin",
            denied: "gatehouse may not impersonate the admin's user or groups (admin.impersonate)",
            attributes,
        });
    }
    rights
}

/// The `extra` keys (and `authentication.kubernetes.io/credential-id`) of the issuers with
/// `whenUnmapped: impersonate`, or `None` when no issuer uses the mode.
fn impersonated_extras(config: &Config) -> Option<Vec<String>> {
    let a = config.authentication.as_ref()?;
    let mut keys = std::collections::BTreeSet::new();
    let mut any = false;
    for j in &a.initial.authenticators {
        if a.settings(&j.issuer).when_unmapped
            == gatehouse_core::identity::WhenUnmapped::Impersonate
        {
            any = true;
            keys.insert(gatehouse_authconfig::authenticator::CREDENTIAL_ID_KEY.to_owned());
            keys.extend(j.mapping.extra.iter().map(|e| e.key.clone()));
        }
    }
    any.then(|| keys.into_iter().collect())
}

/// What one review said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Allowed,
    Denied,
    Unchecked,
}

/// The outcome of a right from its reviews' answers: denied when any access is denied, else
/// unchecked when any could not be asked, else allowed.
fn outcome(right: &Right, answers: &[Answer]) -> Option<&'static str> {
    if answers.contains(&Answer::Denied) {
        Some(right.denied)
    } else if answers.contains(&Answer::Unchecked) {
        Some(UNCHECKED)
    } else {
        None
    }
}

/// Describes an access for the log (operator-side only: it names namespaces and users).
fn describe(a: &ResourceAttributes) -> String {
    let resource = match (&a.group, &a.subresource) {
        (Some(g), Some(s)) if !g.is_empty() => {
            format!("{}/{s}.{g}", a.resource.as_deref().unwrap_or(""))
        }
        (Some(g), None) if !g.is_empty() => format!("{}.{g}", a.resource.as_deref().unwrap_or("")),
        _ => a.resource.clone().unwrap_or_default(),
    };
    let name = a
        .name
        .as_deref()
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default();
    let scope = match a.namespace.as_deref() {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide".to_owned(),
    };
    format!(
        "{} {resource}{name} {scope}",
        a.verb.as_deref().unwrap_or("")
    )
}

/// gatehouse's own rights, checked with SelfSubjectAccessReviews (as gatehouse's own identity,
/// the one its watch and impersonated requests use) and kept for a while.
pub struct RightsCheck {
    client: kube::Client,
    rights: Vec<Right>,
    /// The latest answer and when it was made.
    latest: std::sync::Mutex<Option<(Instant, Arc<Vec<CheckResult>>)>>,
    /// Held by the task that checks the rights: one check at a time.
    checking: Arc<tokio::sync::Mutex<()>>,
    /// How long one round may take ([`CHECK_BUDGET`]; shorter in tests).
    budget: Duration,
}

impl std::fmt::Debug for RightsCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RightsCheck")
            .field("rights", &self.rights.len())
            .finish_non_exhaustive()
    }
}

/// Whether an answer made at `at` may still be used at `now`.
fn fresh(at: Instant, results: &[CheckResult], now: Instant) -> bool {
    let ttl = if results.iter().all(|r| r.failure.is_none()) {
        RIGHTS_TTL_OK
    } else {
        RIGHTS_TTL_FAILED
    };
    now.saturating_duration_since(at) < ttl
}

impl RightsCheck {
    /// The rights `config` needs, to be checked with `client`.
    pub fn new(client: kube::Client, config: &Config) -> Self {
        Self {
            client,
            rights: required_rights(config),
            latest: std::sync::Mutex::new(None),
            checking: Arc::new(tokio::sync::Mutex::new(())),
            budget: CHECK_BUDGET,
        }
    }

    fn latest(&self) -> Option<(Instant, Arc<Vec<CheckResult>>)> {
        match self.latest.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The latest results: reused while fresh, else checked again. The check runs in a task of
    /// its own that holds the one-check-at-a-time lock, so a caller that goes away (a client
    /// that disconnects, a probe that times out) cancels nothing and cannot make gatehouse start
    /// checks at will: at most one check runs, and a new one only once the answer is stale.
    /// While it runs, callers get the previous answer; before the first one, they wait for it.
    pub async fn results(self: &Arc<Self>) -> Arc<Vec<CheckResult>> {
        let previous = self.latest();
        if let Some((at, results)) = &previous
            && fresh(*at, results, Instant::now())
        {
            return Arc::clone(results);
        }
        if let Ok(guard) = Arc::clone(&self.checking).try_lock_owned() {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let _checking = guard;
                this.refresh().await;
            });
        }
        if let Some((_, results)) = previous {
            return results;
        }
        // The first answer: the running check holds the lock until it has stored it.
        drop(self.checking.lock().await);
        self.latest()
            .map_or_else(|| Arc::new(Vec::new()), |(_, results)| results)
    }

    /// Checks every right and stores the answer (called with the lock held).
    async fn refresh(&self) {
        let previous = self.latest();
        // Another check may have finished since the caller looked.
        if let Some((at, results)) = &previous
            && fresh(*at, results, Instant::now())
        {
            return;
        }
        let results = Arc::new(
            self.check_all(previous.as_ref().map(|(_, r)| r.as_slice()))
                .await,
        );
        let stored = (Instant::now(), results);
        match self.latest.lock() {
            Ok(mut l) => *l = Some(stored),
            Err(poisoned) => *poisoned.into_inner() = Some(stored),
        }
    }

    async fn check_all(&self, previous: Option<&[CheckResult]>) -> Vec<CheckResult> {
        let mut results = Vec::with_capacity(self.rights.len());
        let deadline = Instant::now() + self.budget;
        for right in &self.rights {
            let client = self.client.clone();
            let answers: Vec<(Answer, Option<String>)> =
                futures::stream::iter(right.attributes.clone())
                    .map(move |a| {
                        let client = client.clone();
                        async move {
                            if Instant::now() >= deadline {
                                (Answer::Unchecked, None)
                            } else {
                                review(client, a).await
                            }
                        }
                    })
                    .buffered(REVIEWS_AT_ONCE)
                    .collect()
                    .await;
            let only: Vec<Answer> = answers.iter().map(|(a, _)| *a).collect();
            let failure = outcome(right, &only);
            let before = previous
                .and_then(|p| p.iter().find(|r| r.name == right.name))
                .map(|r| r.failure);
            // Logged when it changes, with what exactly is missing.
            if before != Some(failure) {
                let missing: Vec<String> = right
                    .attributes
                    .iter()
                    .zip(&answers)
                    .filter(|(_, (a, _))| *a != Answer::Allowed)
                    .map(|(attr, (a, why))| {
                        format!(
                            "{}{}",
                            describe(attr),
                            match (a, why) {
                                (Answer::Unchecked, Some(w)) => format!(" (not checked: {w})"),
                                _ => String::new(),
                            }
                        )
                    })
                    .collect();
                match failure {
                    None => tracing::info!(check = right.name, "gatehouse has the rights it needs"),
                    Some(reason) => tracing::warn!(
                        check = right.name,
                        missing = %missing.join("; "),
                        "{reason}: grant them to gatehouse's own identity (the Helm chart's ClusterRole and Roles, charts/gatehouse/templates/rbac.yaml)"
                    ),
                }
            }
            results.push(CheckResult {
                name: right.name,
                readiness: false,
                failure,
            });
        }
        results
    }
}

/// Asks the kube-apiserver whether gatehouse's identity may do `attributes`; the error text is
/// for the log only.
async fn review(client: kube::Client, attributes: ResourceAttributes) -> (Answer, Option<String>) {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client);
    match tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review)).await {
        Ok(Ok(answer)) => {
            if answer.status.is_some_and(|s| s.allowed) {
                (Answer::Allowed, None)
            } else {
                (Answer::Denied, None)
            }
        }
        Ok(Err(e)) => (Answer::Unchecked, Some(e.to_string())),
        Err(_) => (
            Answer::Unchecked,
            Some(format!("no answer within {REVIEW_TIMEOUT:?}")),
        ),
    }
}

#[cfg(test)]
mod tests;
