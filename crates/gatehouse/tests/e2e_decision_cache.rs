//! A mapped user's repeated requests cost the real kube-apiserver no review: with a cached
//! decision, 1,000 requests through gatehouse reach the cluster as exactly 1,000 requests and no
//! SubjectAccessReview (issue 13's goal; the in-process `review_cache` test counts the same at a
//! fake kube-apiserver, this one reads the real one's audit log).
//!
//! Its own test binary on purpose: test binaries run one after another, so no other test's
//! reviews can land in the audit log while this one counts (the audit log at level Metadata
//! does not say whose review a SubjectAccessReview was).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support as support;

use std::time::Duration;

use support::config::ServerConfig;
use support::testbed::AuditLog;
use support::{Gatehouse, Testbed, kubectl_admin};

const REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn admin(tb: &Testbed, args: &[&str]) {
    let o = kubectl_admin(tb, args);
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn a_thousand_requests_with_a_cached_decision_send_the_cluster_no_review() {
    let tb = Testbed::load();
    let prefix = format!("e2e-dc-{}.gatehouse.dev", std::process::id());
    let mut cfg = ServerConfig::new(&tb)
        .dex()
        .fall_through(false)
        .annotation_prefix(&prefix);
    if let Ok(kubeconfig) = std::env::var("GATEHOUSE_E2E_KUBECONFIG") {
        cfg = cfg.kubeconfig(&kubeconfig);
    }
    let gh = Gatehouse::start(&cfg.build(), "https", true);

    // Two ServiceAccounts map carol, so her first request is decided by review: the one that
    // may list ConfigMaps in team-b wins.
    let annotation = format!("{prefix}/claim.email=carol@example.com");
    let accounts = ["e2e-dc-a-nothing", "e2e-dc-b-reader"];
    for sa in accounts {
        admin(&tb, &["create", "serviceaccount", sa, "-n", "team-b"]);
        admin(
            &tb,
            &[
                "annotate",
                "serviceaccount",
                sa,
                "-n",
                "team-b",
                &annotation,
            ],
        );
    }
    admin(
        &tb,
        &[
            "create",
            "rolebinding",
            "e2e-dc-b-reader",
            "-n",
            "team-b",
            "--role=configmap-reader",
            "--serviceaccount=team-b:e2e-dc-b-reader",
        ],
    );
    let url = format!("{}/api/v1/namespaces/team-b/configmaps/hello", gh.url);
    let carol = tb.id_token("carol", "").await;
    let http = tb.http();
    let get = || http.get(&url).bearer_auth(&carol).send();

    // Until the watch has delivered both mappings, the first answer may still be 403.
    let before_first = AuditLog::mark(&tb);
    let mut first = 0;
    for _ in 0..50 {
        first = get().await.unwrap().status().as_u16();
        if first == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let decided = before_first.events(REVIEWS, Duration::from_secs(1)).len();

    let counted = AuditLog::mark(&tb);
    let mut answers = Vec::with_capacity(1000);
    for _ in 0..1000 {
        answers.push(get().await.unwrap().status().as_u16());
    }
    let reviews = counted.events(REVIEWS, Duration::from_secs(2));
    let reads = counted.events("/api/v1/namespaces/team-b/configmaps/hello", Duration::ZERO);

    let _ = kubectl_admin(
        &tb,
        &["delete", "rolebinding", "e2e-dc-b-reader", "-n", "team-b"],
    );
    let _ = kubectl_admin(
        &tb,
        &[
            "delete",
            "serviceaccount",
            accounts[0],
            accounts[1],
            "-n",
            "team-b",
        ],
    );

    assert_eq!(first, 200, "carol never got access through the mapping");
    assert!(decided > 0, "the first request was not decided by a review");
    assert!(
        answers.iter().all(|s| *s == 200),
        "not every request was answered 200: {:?}",
        answers
            .iter()
            .filter(|s| **s != 200)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        reviews.len(),
        0,
        "1,000 requests with a cached decision sent the kube-apiserver reviews"
    );
    let as_reader: Vec<_> = reads
        .iter()
        .filter(|e| e["stage"] == "ResponseComplete")
        .collect();
    assert_eq!(
        as_reader.len(),
        1000,
        "every request reached the kube-apiserver exactly once"
    );
    assert!(
        as_reader
            .iter()
            .all(|e| e["impersonatedUser"]["username"]
                == "system:serviceaccount:team-b:e2e-dc-b-reader"),
        "every request acts as the reviewed ServiceAccount"
    );
}
