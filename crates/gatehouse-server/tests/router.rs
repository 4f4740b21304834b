//! In-process router tests: requests in, responses out, through [`gatehouse_server::app::router`]
//! with an app built by `App::from_parts` (see `support`), and what reached the fake
//! kube-apiserver for each. No test bed, no listener of gatehouse's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;

const PODS: &str = "/api/v1/namespaces/team-a/pods";

#[tokio::test]
async fn healthz_answers_ok_without_credentials() {
    let h = harness().await;
    let a = h.get("/healthz", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, "ok\n");
    h.kube.assert_untouched("/healthz");
}

#[tokio::test]
async fn mapped_oidc_user_is_impersonated_as_the_serviceaccount_with_gatehouse_credential() {
    let h = harness().await;
    let token = h.token(serde_json::json!({}));
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(s.path, PODS);
    assert_eq!(
        s.header("impersonate-user"),
        Some("system:serviceaccount:team-a:dev")
    );
    assert_eq!(s.header("authorization"), Some(bearer(OWN_TOKEN).as_str()));
    assert_eq!(
        s.header("impersonate-extra-gatehouse.dev%2fsubject"),
        Some("alice-sub")
    );
    assert_eq!(
        s.header("impersonate-extra-gatehouse.dev%2fusername"),
        Some("alice@example.com")
    );
    assert_eq!(
        s.header("impersonate-extra-gatehouse.dev%2fissuer"),
        Some(h.issuer.as_str())
    );
}
