//! Doctor's view of gatehouse's own checks (`/readyz?verbose`): one step each, and for a
//! failure the Kubernetes rights to grant.

use std::borrow::Cow;

use super::report::{Report, chain};

/// gatehouse's named checks as `/readyz?verbose` lists them: name and failure reason.
#[derive(Debug, Default)]
pub(super) struct ServerChecks {
    checks: Vec<(String, Option<String>)>,
}

impl ServerChecks {
    /// The checks that say the ServiceAccount index cannot be trusted, as `name: reason`.
    pub(super) fn watch_failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(name, _)| {
                matches!(
                    name.as_str(),
                    "serviceaccount-watch-synced"
                        | "serviceaccount-watch-fresh"
                        | "rbac/list-watch-serviceaccounts"
                )
            })
            .filter_map(|(name, failure)| failure.as_ref().map(|f| format!("{name}: {f}")))
            .collect()
    }

    pub(super) fn watch_unhealthy(&self) -> bool {
        !self.watch_failures().is_empty()
    }
}

/// Reads `/readyz?verbose` lines (`[+]name ok`, `[-]name failed: reason`); `None` when there is
/// none (a gatehouse from before named checks answers as plain `/readyz` does).
fn parse_verbose(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let checks: Vec<(String, Option<String>)> = text
        .lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("[+]") {
                let name = rest.strip_suffix(" ok").unwrap_or(rest);
                Some((name.trim().to_owned(), None))
            } else if let Some(rest) = line.strip_prefix("[-]") {
                let (name, reason) = rest.split_once(" failed: ").unwrap_or((rest, "failed"));
                Some((name.trim().to_owned(), Some(reason.trim().to_owned())))
            } else {
                None
            }
        })
        .collect();
    (!checks.is_empty()).then_some(checks)
}

/// How to grant a right to gatehouse's own identity, cluster-wide or in each mapped namespace.
fn grant(cluster_wide: bool, verbs: &str, resource: &str, role: &str) -> String {
    if cluster_wide {
        format!(
            "install the Helm chart with rbac.create: true (its ClusterRole and ClusterRoleBinding grant it), or grant it yourself: kubectl create clusterrole {role} --verb={verbs} --resource={resource} && kubectl create clusterrolebinding {role} --clusterrole={role} --serviceaccount=NAMESPACE:NAME (gatehouse's ServiceAccount; for a kubeconfig identity, --user=NAME)"
        )
    } else {
        format!(
            "install the Helm chart with rbac.create: true (with rbac.serviceAccountScope: namespaces it makes a Role and RoleBinding in each namespace of serviceAccounts.namespaces and globalNamespaces), or grant it yourself in each of them: kubectl create role {role} -n NS --verb={verbs} --resource={resource} && kubectl create rolebinding {role} -n NS --role={role} --serviceaccount=NAMESPACE:NAME; gatehouse's log names the namespaces where it is missing"
        )
    }
}

/// The doctor step of one named server check: its name, and the fix when it fails with
/// `reason`.
fn server_check_step(name: &str, reason: &str) -> (Cow<'static, str>, String) {
    let cluster_wide = reason.contains("cluster-wide");
    let unchecked = reason.starts_with("could not be checked");
    let (step, fix): (&'static str, String) = match name {
        "oidc-keys" => (
            "gatehouse has the IdP's keys",
            "gatehouse cannot load the identity provider's discovery document and signing keys: check oidc.issuerUrl, oidc.caFile and that gatehouse reaches the IdP; gatehouse's log names the error".to_owned(),
        ),
        "serviceaccount-watch-synced" => (
            "gatehouse listed ServiceAccounts",
            "gatehouse has not listed ServiceAccounts, so it maps nobody: grant its identity list and watch on serviceaccounts (see the rights steps) and check that it reaches the kube-apiserver; gatehouse's log names the error".to_owned(),
        ),
        "serviceaccount-watch-fresh" => (
            "gatehouse's ServiceAccount watch is current",
            "the ServiceAccount watch has kept failing for longer than serviceAccounts.maxStaleness, so mapped requests get 503 until it recovers: check gatehouse's RBAC on serviceaccounts and its connection to the kube-apiserver; gatehouse's log names the error".to_owned(),
        ),
        "rbac/list-watch-serviceaccounts" => (
            "gatehouse may list and watch serviceaccounts",
            format!(
                "gatehouse's ServiceAccount cannot list and watch serviceaccounts {}, so it reads no mapping from them: {}",
                if cluster_wide { "cluster-wide" } else { "in every mapped namespace" },
                grant(cluster_wide, "get,list,watch", "serviceaccounts", "gatehouse-read-serviceaccounts")
            ),
        ),
        "rbac/impersonate-serviceaccounts" => (
            "gatehouse may impersonate serviceaccounts",
            format!(
                "gatehouse's ServiceAccount cannot impersonate serviceaccounts {}, so Kubernetes refuses every request of a mapped user: {}",
                if cluster_wide { "cluster-wide" } else { "in every mapped namespace" },
                grant(cluster_wide, "impersonate", "serviceaccounts", "gatehouse-impersonate-serviceaccounts")
            ),
        ),
        "rbac/create-subjectaccessreviews" => (
            "gatehouse may create subjectaccessreviews",
            format!(
                "gatehouse's ServiceAccount cannot create subjectaccessreviews, so it cannot choose among several mapped ServiceAccounts: {}",
                grant(true, "create", "subjectaccessreviews.authorization.k8s.io", "gatehouse-review")
            ),
        ),
        "rbac/impersonate-userextras" => (
            "gatehouse may impersonate user extras",
            "gatehouse's ServiceAccount cannot impersonate the user extras that name the real user, so Kubernetes refuses every impersonated request (mapped users and the admin): install the Helm chart with rbac.create: true, or grant a ClusterRole with apiGroups [authentication.k8s.io], resources [userextras/gatehouse.dev/subject, userextras/gatehouse.dev/username, userextras/gatehouse.dev/issuer], verbs [impersonate] (charts/gatehouse/templates/rbac.yaml)".to_owned(),
        ),
        "rbac/impersonate-admin" => (
            "gatehouse may impersonate the admin",
            "gatehouse's ServiceAccount cannot impersonate the user or groups of admin.impersonate, so Kubernetes refuses the admin's requests: install the Helm chart with rbac.create: true and admin.enabled: true (it grants impersonate on exactly those names), or grant a ClusterRole with resources [users] and [groups], verbs [impersonate] and those resourceNames".to_owned(),
        ),
        "rbac/impersonate-users" => (
            "gatehouse may impersonate the mapped users",
            "gatehouse's ServiceAccount cannot impersonate the users, groups, uids and user extras that the claim mappings of issuers with whenUnmapped: impersonate make, so Kubernetes refuses their requests: install the Helm chart with rbac.create: true and those issuers in authentication.issuers (it grants users, groups (authentication.impersonate.groups when set), uids and the extra keys), or grant a ClusterRole with resources [users] and [groups] in the core group and [uids] and userextras/<key> for each extra key in authentication.k8s.io, verbs [impersonate]; docs/authentication.md says what the grant means".to_owned(),
        ),
        "authentication-config" => (
            "gatehouse runs the current AuthenticationConfiguration",
            "the changed AuthenticationConfiguration file was refused and the previous one keeps running: gatehouse's log lists every problem (the same checks as the kube-apiserver's); fix the file".to_owned(),
        ),
        "authentication-issuer-keys" => (
            "gatehouse has every issuer's keys",
            "gatehouse has not loaded the discovery document and keys of an issuer of the AuthenticationConfiguration (the step \"issuers\" names it): check its issuer.url, discoveryURL and certificateAuthority and that gatehouse reaches it".to_owned(),
        ),
        _ => (
            "",
            "see gatehouse's log for this check".to_owned(),
        ),
    };
    let step: Cow<'static, str> = if step.is_empty() {
        Cow::Owned(format!("gatehouse check {name}"))
    } else {
        Cow::Borrowed(step)
    };
    let fix = if unchecked {
        "gatehouse could not ask the kube-apiserver whether it has this right (SelfSubjectAccessReview): check that gatehouse reaches the kube-apiserver with its own credentials; gatehouse's log names the error".to_owned()
    } else {
        fix
    };
    (step, fix)
}

/// One step per named check of `/readyz?verbose`.
pub(super) async fn check_server_checks(
    r: &mut Report,
    http: &reqwest::Client,
    server: &str,
) -> ServerChecks {
    let url = format!("{server}/readyz?verbose");
    let text = match http.get(&url).send().await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(e) => {
            r.fail(
                "gatehouse's own checks",
                format!("cannot read {url}: {}", chain(&e)),
                "check the server URL",
            );
            return ServerChecks::default();
        }
    };
    let Some(checks) = parse_verbose(&text) else {
        r.skip(
            "gatehouse's own checks",
            format!("{url} lists no named checks (a gatehouse from before they were added): its own rights are not checked"),
        );
        return ServerChecks::default();
    };
    for (name, failure) in &checks {
        let (step, fix) = server_check_step(name, failure.as_deref().unwrap_or_default());
        match failure {
            None => r.pass(step, format!("{name} ok")),
            Some(reason) => r.fail(step, format!("{name}: {reason}"), fix),
        }
    }
    ServerChecks { checks }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn verbose_lines_are_read_and_plain_answers_are_not_checks() {
        let text = "[+]oidc-keys ok\n[-]rbac/impersonate-serviceaccounts failed: gatehouse may not impersonate serviceaccounts cluster-wide\nreadyz check passed\n";
        assert_eq!(
            parse_verbose(text).unwrap(),
            [
                ("oidc-keys".to_owned(), None),
                (
                    "rbac/impersonate-serviceaccounts".to_owned(),
                    Some("gatehouse may not impersonate serviceaccounts cluster-wide".to_owned())
                ),
            ]
        );
        // A gatehouse without named checks answers `?verbose` as plain /readyz.
        assert!(parse_verbose("ok\n").is_none());
        assert!(parse_verbose("not ready: OIDC issuer x: y\n").is_none());
    }

    #[test]
    fn each_right_gets_its_step_and_what_to_grant() {
        let (step, fix) = server_check_step(
            "rbac/list-watch-serviceaccounts",
            "gatehouse may not list and watch serviceaccounts cluster-wide",
        );
        assert_eq!(step, "gatehouse may list and watch serviceaccounts");
        assert!(
            fix.contains("cannot list and watch serviceaccounts cluster-wide")
                && fix.contains("ClusterRole")
                && fix.contains("--verb=get,list,watch --resource=serviceaccounts"),
            "{fix}"
        );
        let (_, fix) = server_check_step(
            "rbac/impersonate-serviceaccounts",
            "gatehouse may not impersonate serviceaccounts in every mapped namespace",
        );
        assert!(
            fix.contains("in every mapped namespace")
                && fix.contains("kubectl create role")
                && fix.contains("--verb=impersonate"),
            "{fix}"
        );
        let (_, fix) = server_check_step(
            "rbac/impersonate-admin",
            gatehouse_server::health::UNCHECKED,
        );
        assert!(fix.contains("could not ask the kube-apiserver"), "{fix}");
        let (step, _) = server_check_step("something-new", "x");
        assert_eq!(step, "gatehouse check something-new");
        // Every known check has a step of its own.
        let mut names = BTreeSet::new();
        for name in [
            "oidc-keys",
            "serviceaccount-watch-synced",
            "serviceaccount-watch-fresh",
            "rbac/list-watch-serviceaccounts",
            "rbac/impersonate-serviceaccounts",
            "rbac/create-subjectaccessreviews",
            "rbac/impersonate-userextras",
            "rbac/impersonate-admin",
        ] {
            let (step, _) = server_check_step(name, "r");
            assert!(!step.starts_with("gatehouse check "), "{name}");
            names.insert(step);
        }
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn an_unhealthy_watch_is_told_from_other_failures() {
        let checks = ServerChecks {
            checks: vec![
                ("oidc-keys".into(), None),
                ("rbac/create-subjectaccessreviews".into(), Some("x".into())),
            ],
        };
        assert!(!checks.watch_unhealthy());
        let checks = ServerChecks {
            checks: vec![(
                "rbac/list-watch-serviceaccounts".into(),
                Some("gatehouse may not list".into()),
            )],
        };
        assert!(checks.watch_unhealthy());
        assert_eq!(
            checks.watch_failures(),
            ["rbac/list-watch-serviceaccounts: gatehouse may not list"]
        );
    }
}
