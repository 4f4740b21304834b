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

// ---------------------------------------------------------------- authentication order

#[tokio::test]
async fn admin_token_is_impersonated_as_the_configured_user_and_never_forwarded() {
    let h = harness().await;
    let token = h.admin_token();
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    let admin = h.app.config.admin.as_ref().unwrap();
    assert_eq!(
        s.header("impersonate-user"),
        Some(admin.impersonate_user.as_str())
    );
    let groups: Vec<&str> = s
        .headers
        .get_all("impersonate-group")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(groups, admin.impersonate_groups);
    assert_eq!(s.header("authorization"), Some(bearer(OWN_TOKEN).as_str()));
    assert_eq!(
        s.header("impersonate-extra-gatehouse.dev%2fsubject"),
        Some("admin")
    );
    for (name, value) in &s.headers {
        assert!(
            !value.to_str().unwrap_or("").contains(&token),
            "the admin token went upstream in {name}"
        );
    }
}

#[tokio::test]
async fn unmapped_oidc_user_falls_through_with_exactly_their_token_and_no_impersonation() {
    let h = harness().await;
    let token = h.unmapped_token();
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(s.header("authorization"), Some(bearer(&token).as_str()));
    assert!(s.names_with("impersonate-").is_empty(), "{s:?}");
}

#[tokio::test]
async fn opaque_token_falls_through_without_gatehouse_credential() {
    let h = harness().await;
    let a = h
        .get(PODS, &[("authorization", "Bearer cloud-opaque-token")])
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(s.header("authorization"), Some("Bearer cloud-opaque-token"));
    assert!(s.names_with("impersonate-").is_empty(), "{s:?}");
}

#[tokio::test]
async fn jwt_of_another_issuer_falls_through_untouched() {
    let h = harness().await;
    let now = gatehouse_server::app::unix_now();
    let other = sign(&serde_json::json!({
        "iss": "https://other-issuer.example", "sub": "x", "aud": "kubernetes",
        "exp": now + 300, "iat": now, "groups": ["devs"],
    }));
    let a = h.get(PODS, &[("authorization", &bearer(&other))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(s.header("authorization"), Some(bearer(&other).as_str()));
    assert!(s.names_with("impersonate-").is_empty(), "{s:?}");
}

#[tokio::test]
async fn with_fall_through_off_an_opaque_token_is_401_and_nothing_reaches_upstream() {
    let h = Setup {
        fall_through: false,
        ..Setup::default()
    }
    .build()
    .await;
    let a = h
        .get(PODS, &[("authorization", "Bearer cloud-opaque-token")])
        .await;
    a.assert_status(401, "fall-through to Kubernetes authentication is disabled");
    h.kube
        .assert_untouched("opaque token with fall-through off");
}

#[tokio::test]
async fn with_fall_through_off_an_unmapped_oidc_user_is_403_and_nothing_reaches_upstream() {
    let h = Setup {
        fall_through: false,
        ..Setup::default()
    }
    .build()
    .await;
    let a = h
        .get(PODS, &[("authorization", &bearer(&h.unmapped_token()))])
        .await;
    a.assert_status(403, "maps to no ServiceAccount");
    h.kube
        .assert_untouched("unmapped user with fall-through off");
    // The mapped user still gets through.
    let a = h
        .get(
            PODS,
            &[("authorization", &bearer(&h.token(serde_json::json!({}))))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn tampered_oidc_token_is_401_and_never_falls_through() {
    let h = harness().await;
    // Another user's payload under alice's signature: canonical, a known key, a signature
    // that is not this payload's.
    let alice: Vec<String> = h
        .token(serde_json::json!({}))
        .split('.')
        .map(str::to_owned)
        .collect();
    let mallory = h.token(serde_json::json!({"sub": "mallory"}));
    let tampered = format!(
        "{}.{}.{}",
        alice[0],
        mallory.split('.').nth(1).unwrap(),
        alice[2]
    );
    let a = h.get(PODS, &[("authorization", &bearer(&tampered))]).await;
    a.assert_status(401, "signature does not verify");
    h.kube.assert_untouched("tampered token");
}

#[tokio::test]
async fn expired_oidc_token_is_401_for_its_expiry_and_never_falls_through() {
    let h = harness().await;
    let now = gatehouse_server::app::unix_now();
    let token = h.token(serde_json::json!({"exp": now - 3600, "iat": now - 7200}));
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    a.assert_status(401, "the token expired at");
    h.kube.assert_untouched("expired token");
}

#[tokio::test]
async fn oidc_token_for_another_audience_is_401_and_never_falls_through() {
    let h = harness().await;
    let token = h.token(serde_json::json!({"aud": "kubernetes"}));
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    a.assert_status(401, "contains no accepted client ID or audience");
    h.kube.assert_untouched("token for another audience");
}

#[tokio::test]
async fn forged_admin_token_is_401_and_never_falls_through() {
    let h = harness().await;
    let real = h.admin_token();
    // The admin issuer's claims, signed with another HMAC key.
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            real.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    // The real token's header (its kid names gatehouse's key), another key.
    let header = jsonwebtoken::decode_header(&real).unwrap();
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-gatehouse-key-0123456789abcdef").unwrap(),
    )
    .unwrap();
    assert_ne!(forged, real);
    let a = h.get(PODS, &[("authorization", &bearer(&forged))]).await;
    a.assert_status(401, "the admin token is invalid");
    h.kube.assert_untouched("forged admin token");
}

#[tokio::test]
async fn no_credentials_is_401_and_nothing_reaches_upstream() {
    let h = harness().await;
    let a = h.get(PODS, &[]).await;
    a.assert_status(401, "no credentials");
    h.kube.assert_untouched("no credentials");
}

#[tokio::test]
async fn several_qualifying_serviceaccounts_are_chosen_by_review() {
    let h = Setup {
        accounts: Some(vec![("team-a", "dev", DEVS), ("team-a", "viewer", DEVS)]),
        ..Setup::default()
    }
    .build()
    .await;
    h.kube.allow_only(&["system:serviceaccount:team-a:viewer"]);
    let token = h.token(serde_json::json!({}));
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(
        s.header("impersonate-user"),
        Some("system:serviceaccount:team-a:viewer")
    );
    let reviews: Vec<Seen> = h
        .kube
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("subjectaccessreviews"))
        .collect();
    assert!(!reviews.is_empty(), "no review was asked");
    for r in &reviews {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("authorization"), Some(bearer(OWN_TOKEN).as_str()));
        assert!(
            !r.body.contains(&token),
            "the user's token went into a review"
        );
    }
}

#[tokio::test]
async fn stale_index_refuses_mapped_users_with_503_but_unmapped_ones_fall_through() {
    let h = Setup {
        max_staleness: "1m",
        ..Setup::default()
    }
    .build()
    .await;
    let since = std::time::Instant::now()
        .checked_sub(std::time::Duration::from_secs(120))
        .unwrap();
    h.app
        .index
        .fail_for_tests(since, "serviceaccounts is forbidden");
    let a = h
        .get(
            PODS,
            &[("authorization", &bearer(&h.token(serde_json::json!({}))))],
        )
        .await;
    a.assert_status(503, "cannot use its ServiceAccount mappings right now");
    h.kube.assert_untouched("mapped user with a stale index");
    let token = h.unmapped_token();
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        h.kube.one().header("authorization"),
        Some(bearer(&token).as_str())
    );
    let ready = h.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("maxStaleness"), "{}", ready.body);
}
