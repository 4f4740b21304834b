//! Unit tests of the named health checks (split from `mod.rs` to keep it short).

use super::*;

/// A kube-apiserver that accepts connections and never answers: every review times out.
/// With 40 reviews (eight at a time, 5 s each) a round would take 25 s; the budget ends it
/// after the first eight, and the rest count as unchecked without being sent.
#[tokio::test]
async fn a_hung_kube_apiserver_cannot_stretch_a_round_past_its_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let kube = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(kube).unwrap();
    let namespaces: Vec<String> = (0..20).map(|i| format!("ns-{i}")).collect();
    let c = config(&format!(
        "{OIDC}serviceAccounts: {{ namespaces: [{}] }}\n",
        namespaces.join(", ")
    ));
    let mut check = RightsCheck::new(client, &c);
    check.budget = Duration::from_millis(200);
    let started = Instant::now();
    let results = check.check_all(None).await;
    let took = started.elapsed();
    assert!(
        took < REVIEW_TIMEOUT * 2,
        "one review timeout after the budget at most, took {took:?}"
    );
    assert!(
        results.iter().all(|r| r.failure == Some(UNCHECKED)),
        "{results:?}"
    );
    held.abort();
}

fn config(yaml: &str) -> Config {
    crate::config::parse(yaml, &std::collections::HashMap::new()).unwrap()
}

const OIDC: &str = "oidc: { issuerUrl: 'https://idp.example', clientId: gatehouse }\n";

fn names(rights: &[Right]) -> Vec<&'static str> {
    rights.iter().map(|r| r.name).collect()
}

#[test]
fn the_rights_follow_what_the_configuration_does() {
    // Mapping in two namespaces: list+watch and impersonate in each, reviews, extras.
    let c = config(&format!(
        "{OIDC}serviceAccounts: {{ namespaces: [team-b, team-a] }}\n"
    ));
    let rights = required_rights(&c);
    assert_eq!(
        names(&rights),
        [
            "rbac/list-watch-serviceaccounts",
            "rbac/impersonate-serviceaccounts",
            "rbac/create-subjectaccessreviews",
            "rbac/impersonate-userextras",
        ]
    );
    let read: Vec<(String, String)> = rights[0]
        .attributes
        .iter()
        .map(|a| (a.namespace.clone().unwrap(), a.verb.clone().unwrap()))
        .collect();
    assert_eq!(
        read,
        [
            ("team-a".into(), "list".into()),
            ("team-a".into(), "watch".into()),
            ("team-b".into(), "list".into()),
            ("team-b".into(), "watch".into()),
        ]
    );
    assert!(rights[0].denied.contains("every mapped namespace"));
    let extras: Vec<&str> = rights[3]
        .attributes
        .iter()
        .map(|a| a.subresource.as_deref().unwrap())
        .collect();
    assert_eq!(
        extras,
        [
            "gatehouse.dev/subject",
            "gatehouse.dev/username",
            "gatehouse.dev/issuer"
        ]
    );
    assert!(
        rights[3]
            .attributes
            .iter()
            .all(|a| a.group.as_deref() == Some("authentication.k8s.io")
                && a.resource.as_deref() == Some("userextras"))
    );

    // Every namespace: cluster-wide accesses and reasons.
    let c = config(&format!(
        "{OIDC}serviceAccounts: {{ allNamespaces: true }}\n"
    ));
    let rights = required_rights(&c);
    assert!(rights[0].attributes.iter().all(|a| a.namespace.is_none()));
    assert!(
        rights[1].denied.contains("cluster-wide"),
        "{}",
        rights[1].denied
    );

    // Admin only: its user and groups, the extras; nothing about ServiceAccounts.
    let c = config(
        "admin: { enabled: true, passwordHash: '$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a', tokenSigningKey: '0123456789abcdef0123456789abcdef', impersonate: { user: 'ops', groups: [a, b] } }\n",
    );
    let rights = required_rights(&c);
    assert_eq!(
        names(&rights),
        ["rbac/impersonate-userextras", "rbac/impersonate-admin"]
    );
    let admin: Vec<(&str, &str)> = rights[1]
        .attributes
        .iter()
        .map(|a| (a.resource.as_deref().unwrap(), a.name.as_deref().unwrap()))
        .collect();
    assert_eq!(admin, [("users", "ops"), ("groups", "a"), ("groups", "b")]);

    // OIDC without a mappable namespace maps nobody: gatehouse needs nothing of its own.
    assert!(required_rights(&config(OIDC)).is_empty());

    // An issuer in impersonate mode: users, groups, uids, and exactly the extra keys its
    // mappings make (and the credential id), besides gatehouse's own extras.
    let file = "authentication:\n  config:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: AuthenticationConfiguration\n    jwt:\n      - issuer: {url: 'https://ci.example', audiences: [k]}\n        claimMappings:\n          username: {claim: sub, prefix: 'ci:'}\n          extra: [{key: example.com/ref, valueExpression: claims.ref}]\n      - issuer: {url: 'https://idp.example', audiences: [k]}\n        claimMappings:\n          username: {claim: sub, prefix: 'idp:'}\n          extra: [{key: example.com/other, valueExpression: claims.x}]\n";
    let c = config(&format!(
        "{file}  issuers: [{{url: 'https://ci.example', whenUnmapped: impersonate}}]\n"
    ));
    let rights = required_rights(&c);
    assert_eq!(
        names(&rights),
        ["rbac/impersonate-users", "rbac/impersonate-userextras"]
    );
    let wanted: Vec<(&str, Option<&str>)> = rights[0]
        .attributes
        .iter()
        .map(|a| (a.resource.as_deref().unwrap(), a.subresource.as_deref()))
        .collect();
    assert_eq!(
        wanted,
        [
            ("users", None),
            ("groups", None),
            ("uids", None),
            (
                "userextras",
                Some("authentication.kubernetes.io/credential-id")
            ),
            ("userextras", Some("example.com/ref")),
        ]
    );
    // Without the mode, nothing of the kind.
    assert!(required_rights(&config(file)).is_empty());
    // With the allowed groups listed, each is checked by name (as the chart grants them).
    let c = config(&format!(
        "{file}  issuers: [{{url: 'https://ci.example', whenUnmapped: impersonate}}]\n  impersonate: {{groups: ['ci:acme', 'ci:labs']}}\n"
    ));
    let rights = required_rights(&c);
    let groups: Vec<Option<&str>> = rights[0]
        .attributes
        .iter()
        .filter(|a| a.resource.as_deref() == Some("groups"))
        .map(|a| a.name.as_deref())
        .collect();
    assert_eq!(groups, [Some("ci:acme"), Some("ci:labs")]);
}

#[test]
fn an_answer_with_a_failure_is_reused_for_less_time() {
    let at = Instant::now();
    let ok = [CheckResult {
        name: "rbac/a",
        readiness: false,
        failure: None,
    }];
    let failed = [CheckResult {
        failure: Some("x"),
        ..ok[0].clone()
    }];
    let later = |d: u64| at + Duration::from_secs(d);
    assert!(fresh(at, &ok, later(59)) && !fresh(at, &ok, later(60)));
    assert!(fresh(at, &failed, later(9)) && !fresh(at, &failed, later(10)));
}

#[test]
fn a_right_is_denied_unchecked_or_allowed() {
    let right = Right {
        name: "rbac/x",
        denied: "gatehouse may not x",
        attributes: Vec::new(),
    };
    use Answer::{Allowed, Denied, Unchecked};
    assert_eq!(outcome(&right, &[Allowed, Allowed]), None);
    assert_eq!(outcome(&right, &[Allowed, Unchecked]), Some(UNCHECKED));
    assert_eq!(
        outcome(&right, &[Unchecked, Denied]),
        Some("gatehouse may not x")
    );
}

#[test]
fn verbose_lists_every_check_and_only_readiness_decides() {
    let ok = |name, readiness| CheckResult {
        name,
        readiness,
        failure: None,
    };
    let failed = |name, readiness, reason| CheckResult {
        name,
        readiness,
        failure: Some(reason),
    };
    let (ready, text) = render_verbose(&[ok("oidc-keys", true), ok("rbac/a", false)]);
    assert!(ready);
    assert_eq!(text, "[+]oidc-keys ok\n[+]rbac/a ok\nreadyz check passed\n");
    let (ready, text) = render_verbose(&[
        ok("oidc-keys", true),
        failed("rbac/a", false, "gatehouse may not a"),
    ]);
    assert!(ready, "a right does not decide readiness");
    assert!(
        text.contains("[-]rbac/a failed: gatehouse may not a\n"),
        "{text}"
    );
    assert!(text.ends_with("not counted for readiness)\n"), "{text}");
    let (ready, text) = render_verbose(&[
        failed("serviceaccount-watch-synced", true, "not listed"),
        ok("rbac/a", false),
    ]);
    assert!(!ready);
    assert!(text.ends_with("readyz check failed\n"), "{text}");
    assert_eq!(
        render_verbose(&[]),
        (true, "readyz check passed\n".to_owned())
    );
}

/// The unauthenticated endpoint names no namespace, user or group: every reason is one of
/// the fixed strings, whatever the configuration holds.
#[test]
fn reasons_never_carry_configured_names() {
    let c = config(&format!(
        "{OIDC}serviceAccounts: {{ namespaces: [secret-team] }}\nadmin: {{ enabled: true, passwordHash: '$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a', tokenSigningKey: '0123456789abcdef0123456789abcdef', impersonate: {{ user: 'secret-user', groups: [secret-group] }} }}\n"
    ));
    for r in required_rights(&c) {
        assert!(!r.denied.contains("secret"), "{}", r.denied);
        assert!(!r.name.contains("secret"), "{}", r.name);
    }
    assert!(!UNCHECKED.contains("secret"));
}
