//! A mapped user's repeated requests cost the kube-apiserver nothing beyond the requests
//! themselves: with a cached decision, gatehouse asks no SubjectAccessReview and verifies no
//! token again (issue 13's goal "zero upstream review requests over 1,000 proxied requests of a
//! mapped user with a cached decision"). In-process: the app, a local issuer and a recording
//! fake kube-apiserver from `gatehouse_test_support::in_process`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support::in_process::{DEVS, Setup, bearer};

const PODS: &str = "/api/v1/namespaces/team-a/pods";

fn reviews(seen: &[gatehouse_test_support::in_process::Seen]) -> usize {
    seen.iter()
        .filter(|s| s.path.contains("subjectaccessreviews"))
        .count()
}

#[tokio::test]
async fn a_thousand_requests_with_a_cached_decision_ask_no_review() {
    // Two ServiceAccounts qualify, so the first request must be decided by review.
    let h = Setup {
        accounts: Some(vec![("team-a", "dev", DEVS), ("team-a", "viewer", DEVS)]),
        ..Setup::default()
    }
    .build()
    .await;
    h.kube.allow_only(&["system:serviceaccount:team-a:viewer"]);
    let token = h.token(serde_json::json!({}));
    let auth = bearer(&token);
    let first = h.get(PODS, &[("authorization", &auth)]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let decided = reviews(&h.kube.seen());
    assert!(decided > 0, "the first request was not decided by review");

    for i in 0..1000 {
        let a = h.get(PODS, &[("authorization", &auth)]).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
    }
    let seen = h.kube.seen();
    assert_eq!(
        reviews(&seen),
        decided,
        "1,000 requests with a cached decision asked the kube-apiserver for reviews"
    );
    let proxied: Vec<_> = seen
        .iter()
        .filter(|s| !s.path.contains("subjectaccessreviews"))
        .collect();
    assert_eq!(proxied.len(), 1001, "every request reached upstream once");
    assert!(
        proxied
            .iter()
            .all(|s| s.header("impersonate-user") == Some("system:serviceaccount:team-a:viewer")),
        "every request acts as the reviewed ServiceAccount"
    );
}
