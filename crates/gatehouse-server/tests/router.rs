// Over 600 lines: one in-process case per request rule (48 tests, tables of hostile forms); grouped by layer under section comments.
//! In-process router tests: requests in, responses out, through [`gatehouse_server::routes::router`]
//! with an app built by `App::from_parts` (see `support`), and what reached the fake
//! kube-apiserver for each. No test bed, no listener of gatehouse's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support::in_process as support;

use axum::body::Body;
use axum::http::Request;
use support::*;

const PODS: &str = "/api/v1/namespaces/team-a/pods";

/// Headers of a hostile form, appended in order (repeated names stay repeated).
type Headers = Vec<(&'static str, String)>;

/// The rule for a request gatehouse refuses: a Kubernetes `Status` with this code whose
/// message names the reason, and nothing at all reached the fake kube-apiserver.
async fn assert_refused(h: &Harness, req: Request<Body>, code: u16, reason: &str, what: &str) {
    let a = h.send(req).await;
    assert_eq!(a.status, code, "{what}: {}", a.body);
    a.assert_status(code, reason);
    h.kube.assert_untouched(what);
}

/// The rule for a token gatehouse does not judge: forwarded with exactly this `Authorization`
/// (the user's own token, not gatehouse's credential) and no impersonation header.
async fn assert_falls_through(h: &Harness, token: &str, what: &str) {
    let a = h.get(PODS, &[("authorization", &bearer(token))]).await;
    assert_eq!(a.status, 200, "{what}: {}", a.body);
    let s = h.kube.one();
    assert_eq!(
        s.header("authorization"),
        Some(bearer(token).as_str()),
        "{what}"
    );
    assert!(s.names_with("impersonate-").is_empty(), "{what}: {s:?}");
}

/// A request with headers appended in order (a repeated name stays repeated).
fn request_with(method: &str, path: &str, base: &[(&str, &str)], extra: Headers) -> Request<Body> {
    let mut req = request(method, path, base);
    for (k, v) in extra {
        req.headers_mut().append(k, v.parse().unwrap());
    }
    req
}

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
async fn tokens_gatehouse_does_not_judge_fall_through_with_exactly_their_token() {
    let now = gatehouse_server::clock::unix_now();
    let other_issuer = sign(&serde_json::json!({
        "iss": "https://other-issuer.example", "sub": "x", "aud": "kubernetes",
        "exp": now + 300, "iat": now, "groups": ["devs"],
    }));
    // A harness per case: `one()` reads the one request that case sent.
    for (what, token) in [
        ("an unmapped OIDC user", None),
        ("an opaque token", Some("cloud-opaque-token".to_owned())),
        ("a JWT of another issuer", Some(other_issuer)),
    ] {
        let h = harness().await;
        let token = token.unwrap_or_else(|| h.unmapped_token());
        assert_falls_through(&h, &token, what).await;
    }
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
async fn refused_credentials_are_401_for_their_reason_and_never_fall_through() {
    let h = harness().await;
    let now = gatehouse_server::clock::unix_now();
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
    // The admin issuer's claims and the real token's header (its kid names gatehouse's key),
    // signed with another HMAC key.
    let real = h.admin_token();
    let claims =
        serde_json::Value::Object(gatehouse_core::token::unverified_claims(&real).unwrap());
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::decode_header(&real).unwrap(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-gatehouse-key-0123456789abcdef").unwrap(),
    )
    .unwrap();
    assert_ne!(forged, real);
    for (what, token, reason) in [
        (
            "tampered token",
            Some(tampered),
            "signature does not verify",
        ),
        (
            "expired token",
            Some(h.token(serde_json::json!({"exp": now - 3600, "iat": now - 7200}))),
            "the token expired at",
        ),
        (
            "token for another audience",
            Some(h.token(serde_json::json!({"aud": "kubernetes"}))),
            "contains no accepted client ID or audience",
        ),
        (
            "forged admin token",
            Some(forged),
            "the admin token is invalid",
        ),
        ("no credentials", None, "no credentials"),
    ] {
        let auth = token.as_deref().map(bearer);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        assert_refused(&h, request("GET", PODS, &headers), 401, reason, what).await;
    }
}

#[tokio::test]
async fn the_apps_clock_decides_expiry_a_token_valid_now_is_refused_at_a_later_fixed_time() {
    let now = gatehouse_server::clock::unix_now();
    let late = Setup {
        clock: gatehouse_server::clock::Clock::Fixed(now + 3600),
        ..Setup::default()
    }
    .build()
    .await;
    // Valid for five more minutes by the system clock; an hour late by the app's.
    let token = late.token(serde_json::json!({}));
    let a = late.get(PODS, &[("authorization", &bearer(&token))]).await;
    a.assert_status(401, "the token expired at");
    late.kube
        .assert_untouched("a token expired by the app's clock");
    // The same claims (from that app's own issuer), with the system clock: accepted.
    let h = harness().await;
    let token = h.token(serde_json::json!({}));
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        h.kube.one().header("impersonate-user"),
        Some("system:serviceaccount:team-a:dev")
    );
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

// ---------------------------------------------------------------- header rules

#[tokio::test]
async fn client_identity_headers_are_refused_with_403_before_authentication_and_upstream() {
    let h = harness().await;
    let admin = h.admin_token();
    for name in [
        "impersonate-user",
        "Impersonate-Group",
        "impersonate-uid",
        "impersonate-extra-scopes",
        "x-remote-user",
        "X-Remote-Group",
        "x-remote-extra-foo",
    ] {
        // Even with the most privileged token gatehouse knows.
        let a = h
            .get(
                PODS,
                &[("authorization", &bearer(&admin)), (name, "system:admin")],
            )
            .await;
        a.assert_status(403, "gatehouse does not accept the");
        assert_eq!(
            a.header("content-security-policy"),
            Some("sandbox"),
            "{name}"
        );
    }
    // Refused before authentication: no token at all still gets the 403, not a 401.
    let a = h.get(PODS, &[("impersonate-user", "system:admin")]).await;
    a.assert_status(403, "impersonate-user");
    h.kube.assert_untouched("client identity headers");
}

#[tokio::test]
async fn identity_headers_are_refused_on_v1_whoami_too() {
    let h = harness().await;
    let a = h
        .get(
            "/v1/whoami",
            &[
                ("authorization", &bearer(&h.unmapped_token())),
                ("impersonate-user", "system:admin"),
            ],
        )
        .await;
    a.assert_status(403, "impersonate-user");
    h.kube.assert_untouched("whoami with identity headers");
}

#[tokio::test]
async fn connection_naming_a_credential_identity_or_framing_header_is_400_and_never_forwarded() {
    let h = harness().await;
    let token = h.unmapped_token();
    for listed in [
        "authorization",
        "keep-alive, Authorization",
        "cookie",
        "content-length",
        "transfer-encoding",
        "sec-websocket-protocol",
        "impersonate-user",
        "x-forwarded-for",
        "audit-id",
    ] {
        let a = h
            .get(
                PODS,
                &[("authorization", &bearer(&token)), ("connection", listed)],
            )
            .await;
        a.assert_status(400, "the Connection header names");
    }
    h.kube
        .assert_untouched("Connection naming protected headers");
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_and_end_to_end_ones_are() {
    let h = harness().await;
    let token = h.unmapped_token();
    let a = h
        .get(
            PODS,
            &[
                ("authorization", &bearer(&token)),
                ("connection", "keep-alive, x-hop-secret"),
                ("x-hop-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic c2VjcmV0"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "h2c"),
                ("accept", "application/json;as=Table"),
                ("user-agent", "kubectl/v1.34"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    for gone in [
        "x-hop-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(s.header(gone).is_none(), "{gone} was forwarded: {s:?}");
    }
    assert_eq!(s.header("accept"), Some("application/json;as=Table"));
    assert_eq!(s.header("user-agent"), Some("kubectl/v1.34"));
}

#[tokio::test]
async fn cookie_audit_id_and_forwarding_headers_are_dropped_and_x_forwarded_for_is_the_peer() {
    let h = harness().await;
    let hostile: &[(&str, &str)] = &[
        ("cookie", "__Host-gatehouse_session=sealed; other=1"),
        ("audit-id", "spoofed-audit-id"),
        ("x-forwarded-for", "203.0.113.66"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "http"),
        ("forwarded", "for=203.0.113.66"),
        ("x-real-ip", "203.0.113.66"),
    ];
    for token in [h.token(serde_json::json!({})), h.unmapped_token()] {
        let auth = bearer(&token);
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(hostile);
        let a = h.get(PODS, &headers).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let seen = h.kube.proxied();
    assert_eq!(seen.len(), 2);
    for s in seen {
        for gone in [
            "cookie",
            "audit-id",
            "x-forwarded-host",
            "x-forwarded-proto",
            "forwarded",
            "x-real-ip",
        ] {
            assert!(s.header(gone).is_none(), "{gone} was forwarded: {s:?}");
        }
        assert_eq!(s.header("x-forwarded-for"), Some("198.51.100.7"), "{s:?}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_its_chain_is_kept_before_its_own_address() {
    let h = Setup {
        trusted_proxies: vec!["198.51.100.0/24"],
        ..Setup::default()
    }
    .build()
    .await;
    let a = h
        .get(
            PODS,
            &[
                ("authorization", &bearer(&h.unmapped_token())),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        h.kube.one().header("x-forwarded-for"),
        Some("203.0.113.7, 198.51.100.7")
    );
}

#[tokio::test]
async fn upstream_cannot_set_browser_state_and_proxied_responses_are_sandboxed() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    let admin = bearer(&h.admin_token());
    let unmapped = bearer(&h.unmapped_token());
    // A fall-through user's API call, and the admin's kubectl-style visit (bearer token, the
    // browser's session cookie beside it) to content served through the service proxy.
    let service_page = "/api/v1/namespaces/hostile/services/page:80/proxy/";
    for (path, headers) in [
        (PODS, vec![("authorization", unmapped.as_str())]),
        (
            service_page,
            vec![
                ("authorization", admin.as_str()),
                ("cookie", cookie.as_str()),
            ],
        ),
    ] {
        let a = h.get(path, &headers).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        for gone in [
            "set-cookie",
            "clear-site-data",
            "strict-transport-security",
            "report-to",
        ] {
            assert!(
                a.header(gone).is_none(),
                "{path}: {gone} reached the client: {:?}",
                a.headers
            );
        }
        assert_eq!(
            a.header("content-security-policy"),
            Some("sandbox"),
            "{path}"
        );
        assert_eq!(
            a.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            a.header("cross-origin-resource-policy"),
            Some("same-origin"),
            "{path}"
        );
        assert_eq!(a.header("x-upstream"), Some("kept"), "other headers pass");
        assert_eq!(a.json()["path"], path);
    }
    let seen = h.kube.proxied();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|s| s.header("cookie").is_none()),
        "the browser's cookie went upstream: {seen:?}"
    );
}

#[tokio::test]
async fn refusals_on_proxy_paths_are_sandboxed_too() {
    let h = harness().await;
    let a = h.get("/apis/apps/v1/deployments", &[]).await;
    a.assert_status(401, "no credentials");
    assert_eq!(a.header("content-security-policy"), Some("sandbox"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        a.header("cross-origin-resource-policy"),
        Some("same-origin")
    );
}

// ---------------------------------------------------------------- credential forms

#[tokio::test]
async fn ambiguous_authorization_forms_are_401_and_never_forwarded() {
    let h = harness().await;
    let token = h.unmapped_token();
    let forms: Vec<(&str, Headers, &str)> = vec![
        (
            "two headers, junk first",
            vec![
                ("authorization", "Bearer junk".to_owned()),
                ("authorization", bearer(&token)),
            ],
            "more than one Authorization header",
        ),
        (
            "two headers, token first",
            vec![
                ("authorization", bearer(&token)),
                ("authorization", "Bearer junk".to_owned()),
            ],
            "more than one Authorization header",
        ),
        (
            "another scheme",
            vec![("authorization", format!("Basic {token}"))],
            "accepts only `Authorization: Bearer <token>`",
        ),
        (
            "two spaces",
            vec![("authorization", format!("Bearer  {token}"))],
            "is empty (or preceded by more than one space)",
        ),
        (
            "text after the token",
            vec![("authorization", format!("Bearer {token} x"))],
            "text after the token",
        ),
        (
            "the token twice",
            vec![("authorization", format!("Bearer {token} {token}"))],
            "text after the token",
        ),
        (
            "scheme only",
            vec![("authorization", "Bearer".to_owned())],
            "is empty",
        ),
    ];
    for (what, headers, reason) in forms {
        assert_refused(
            &h,
            request_with("GET", PODS, &[], headers),
            401,
            reason,
            what,
        )
        .await;
    }
}

#[tokio::test]
async fn three_part_token_with_a_non_canonical_payload_is_401_and_never_forwarded() {
    let h = harness().await;
    // Some user's token payload leaves unused bits in its last character.
    let token = (0..8)
        .map(|i| h.token(serde_json::json!({"sub": format!("user-{}", "x".repeat(i))})))
        .find(|t| respell(t).is_some())
        .unwrap();
    let respelled = respell(&token).unwrap();
    assert_ne!(respelled, token);
    // A 3-part token of no issuer at all, with a payload that is not JSON, too.
    let not_json = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            b"not json"
        )
    );
    for t in [&respelled, &not_json] {
        let a = h.get(PODS, &[("authorization", &bearer(t))]).await;
        a.assert_status(401, "not a canonical one");
    }
    h.kube.assert_untouched("non-canonical JWTs");
    // The canonical spelling is the user's token and goes through.
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn websocket_bearer_of_a_fall_through_user_goes_upstream_as_the_one_authorization_header() {
    let h = harness().await;
    let token = h.unmapped_token();
    let proto = format!("{}, v5.channel.k8s.io", ws_bearer(&token));
    let mut headers = WS.to_vec();
    headers.push(("sec-websocket-protocol", &proto));
    let a = h.get(&format!("{PODS}/p/exec?command=sh"), &headers).await;
    assert_eq!(a.status, 101, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(s.header("authorization"), Some(bearer(&token).as_str()));
    assert_eq!(
        s.header("sec-websocket-protocol"),
        Some("v5.channel.k8s.io")
    );
    assert_eq!(s.header("upgrade"), Some("websocket"));
    assert_eq!(s.header("connection"), Some("Upgrade"));
    assert!(s.names_with("impersonate-").is_empty());
}

#[tokio::test]
async fn websocket_bearer_of_a_mapped_user_is_removed_and_impersonated() {
    let h = harness().await;
    let token = h.token(serde_json::json!({}));
    let proto = format!("v5.channel.k8s.io, {}", ws_bearer(&token));
    let mut headers = WS.to_vec();
    headers.push(("sec-websocket-protocol", &proto));
    let a = h.get(&format!("{PODS}/p/exec?command=sh"), &headers).await;
    assert_eq!(a.status, 101, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(
        s.header("impersonate-user"),
        Some("system:serviceaccount:team-a:dev")
    );
    assert_eq!(s.header("authorization"), Some(bearer(OWN_TOKEN).as_str()));
    assert_eq!(
        s.header("sec-websocket-protocol"),
        Some("v5.channel.k8s.io")
    );
}

#[tokio::test]
async fn ambiguous_websocket_bearer_forms_are_401_and_never_forwarded() {
    let h = harness().await;
    let token = h.unmapped_token();
    let cases: Vec<(&str, Headers, bool, &str)> = vec![
        (
            "header and subprotocol",
            vec![
                ("authorization", "Bearer junk".to_owned()),
                (
                    "sec-websocket-protocol",
                    format!("{}, v5.channel.k8s.io", ws_bearer(&token)),
                ),
            ],
            true,
            "both in Authorization and in Sec-WebSocket-Protocol",
        ),
        (
            "two subprotocol bearers",
            vec![(
                "sec-websocket-protocol",
                format!(
                    "{}, {}, v5.channel.k8s.io",
                    ws_bearer("junk"),
                    ws_bearer(&token)
                ),
            )],
            true,
            "more than one bearer token",
        ),
        (
            "bearer subprotocol only",
            vec![("sec-websocket-protocol", ws_bearer(&token))],
            true,
            "needs at least one other subprotocol",
        ),
        (
            "bad encoding",
            vec![(
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.***, v5.channel.k8s.io".to_owned(),
            )],
            true,
            "not unpadded base64url",
        ),
        (
            "subprotocol bearer without an upgrade",
            vec![(
                "sec-websocket-protocol",
                format!("{}, v5.channel.k8s.io", ws_bearer(&token)),
            )],
            false,
            "only read on a WebSocket upgrade",
        ),
    ];
    for (what, headers, upgrade, reason) in cases {
        let base = if upgrade { WS } else { &[] };
        let req = request_with("GET", &format!("{PODS}?watch=true"), base, headers);
        assert_refused(&h, req, 401, reason, what).await;
    }
}

/// gatehouse's side of `e2e_security`'s refused-token test: a token gatehouse refuses (its
/// audience names no gatehouse client, so the kube-apiserver may well accept it) gets 401 in
/// every other form it could be sent in, and none of them is forwarded. (That the real
/// kube-apiserver accepts such a token, and that its audit log shows none of these forms, stays
/// in the test-bed tier.)
#[tokio::test]
async fn a_refused_token_is_401_in_every_other_form_and_never_forwarded() {
    let h = harness().await;
    // Some user's cluster-only token whose payload leaves unused bits in its last character.
    let refused = (0..8)
        .map(|i| {
            h.token(serde_json::json!({
                "aud": "kubernetes", "sub": format!("user-{}", "x".repeat(i)),
            }))
        })
        .find(|t| respell(t).is_some())
        .unwrap();
    let respelled = respell(&refused).unwrap();
    let forms: Vec<(&str, Headers, bool, &str)> = vec![
        (
            "the token as sent",
            vec![("authorization", bearer(&refused))],
            false,
            "contains no accepted client ID or audience",
        ),
        (
            "text after the token",
            vec![("authorization", format!("Bearer {refused} x"))],
            false,
            "text after the token",
        ),
        (
            "another base64 spelling of the payload",
            vec![("authorization", bearer(&respelled))],
            false,
            "not a canonical one",
        ),
        (
            "the token twice",
            vec![("authorization", format!("Bearer {refused} {refused}"))],
            false,
            "text after the token",
        ),
        (
            "two spaces",
            vec![("authorization", format!("Bearer  {refused}"))],
            false,
            "preceded by more than one space",
        ),
        (
            "two headers, junk first",
            vec![
                ("authorization", "Bearer junk".to_owned()),
                ("authorization", bearer(&refused)),
            ],
            false,
            "more than one Authorization header",
        ),
        (
            "two headers, token first",
            vec![
                ("authorization", bearer(&refused)),
                ("authorization", "Bearer junk".to_owned()),
            ],
            false,
            "more than one Authorization header",
        ),
        (
            "junk header plus WebSocket bearer",
            vec![
                ("authorization", "Bearer junk".to_owned()),
                (
                    "sec-websocket-protocol",
                    format!("{}, v5.channel.k8s.io", ws_bearer(&refused)),
                ),
            ],
            true,
            "both in Authorization and in Sec-WebSocket-Protocol",
        ),
        (
            "two WebSocket bearers",
            vec![(
                "sec-websocket-protocol",
                format!(
                    "{}, {}, v5.channel.k8s.io",
                    ws_bearer("junk"),
                    ws_bearer(&refused)
                ),
            )],
            true,
            "more than one bearer token",
        ),
        (
            "another scheme",
            vec![("authorization", format!("Basic {refused}"))],
            false,
            "accepts only `Authorization: Bearer <token>`",
        ),
    ];
    for (what, headers, upgrade, reason) in forms {
        let base = if upgrade { WS } else { &[] };
        let req = request_with("GET", &format!("{PODS}?watch=true"), base, headers);
        let a = h.send(req).await;
        assert!(!a.body.contains(&refused), "{what}: the token is echoed");
        a.assert_status(401, reason);
        h.kube.assert_untouched(what);
    }
}

// ---------------------------------------------------------------- the session cookie

#[tokio::test]
async fn session_cookie_never_authenticates_the_proxy() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    // A Kubernetes API path, and content served through the kube-apiserver's service proxy
    // (a page a link could send the admin's browser to).
    let service_page = "/api/v1/namespaces/hostile/services/page:80/proxy/";
    for path in [PODS, service_page] {
        for (method, origin) in [("GET", None), ("GET", Some(PUBLIC)), ("POST", Some(PUBLIC))] {
            let mut headers = vec![
                ("cookie", cookie.as_str()),
                ("sec-fetch-site", "same-origin"),
            ];
            if let Some(o) = origin {
                headers.push(("origin", o));
            }
            let a = h.send(request(method, path, &headers)).await;
            a.assert_status(
                401,
                "session cookie does not authenticate Kubernetes API requests",
            );
            assert!(
                a.header("set-cookie").is_none(),
                "{method} {path} {origin:?}"
            );
        }
    }
    h.kube.assert_untouched("a session cookie without a token");
}

#[tokio::test]
async fn unreadable_session_cookie_on_the_proxy_gets_the_same_401() {
    let h = harness().await;
    let name = &h.app.config.browser.as_ref().unwrap().cookie_name;
    let a = h.get(PODS, &[("cookie", &format!("{name}=garbage"))]).await;
    a.assert_status(401, "session cookie does not authenticate");
    h.kube.assert_untouched("a garbage session cookie");
}

#[tokio::test]
async fn session_cookie_does_not_authenticate_v1_endpoints() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    let a = h.get("/v1/whoami", &[("cookie", &cookie)]).await;
    a.assert_status(401, "no credentials");
    h.kube.assert_untouched("/v1/whoami with a cookie");
}

#[tokio::test]
async fn session_cookie_authenticates_the_ui() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    let a = h.get("/ui/whoami", &[("cookie", &cookie)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("gatehouse admin account"), "{}", a.body);
    // Without it, the page sends the browser to sign in.
    let a = h.get("/ui/whoami", &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some("/?return_to=%2Fui%2Fwhoami"));
    h.kube.assert_untouched("UI pages");
}

#[tokio::test]
async fn bearer_with_a_session_cookie_on_the_proxy_is_judged_by_the_bearer_and_no_cookie_goes_upstream()
 {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    let token = h.unmapped_token();
    let a = h
        .get(
            PODS,
            &[("cookie", &cookie), ("authorization", &bearer(&token))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(s.header("authorization"), Some(bearer(&token).as_str()));
    assert!(
        s.names_with("impersonate-").is_empty(),
        "the cookie's admin leaked in: {s:?}"
    );
    assert!(s.header("cookie").is_none());
}

// ---------------------------------------------------------------- hostile browser requests

#[tokio::test]
async fn cross_site_state_changing_requests_with_the_session_cookie_are_refused() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    for (method, path, extra) in [
        (
            "POST",
            "/ui/whoami",
            vec![("origin", "https://evil.example")],
        ),
        ("POST", "/", vec![("sec-fetch-site", "cross-site")]),
        ("POST", "/ui/access", vec![]),
        (
            "DELETE",
            "/ui/kubeconfig",
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
    ] {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend(extra);
        let a = h.send(request(method, path, &headers)).await;
        a.assert_status(403, "cross-site request refused");
    }
    // The same request from gatehouse's own page passes the session layer (and then finds no
    // POST route): the refusal above is the layer's.
    let a = h
        .send(request(
            "POST",
            "/ui/whoami",
            &[("cookie", &cookie), ("origin", PUBLIC)],
        ))
        .await;
    assert_eq!(a.status, 405, "{}", a.body);
    h.kube.assert_untouched("cross-site requests");
}

#[tokio::test]
async fn cross_site_websocket_upgrade_to_a_ui_page_is_refused() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    let mut headers = WS.to_vec();
    headers.push(("cookie", &cookie));
    headers.push(("origin", "https://evil.example"));
    let a = h.get("/ui/whoami", &headers).await;
    a.assert_status(403, "cross-site request refused");
    h.kube.assert_untouched("cross-site upgrade");
}

#[tokio::test]
async fn cross_site_admin_sign_in_form_is_refused_before_the_password_is_checked() {
    let h = harness().await;
    for extra in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![],
    ] {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        headers.extend(extra);
        let mut req = request("POST", "/ui/admin-login", &headers);
        *req.body_mut() = axum::body::Body::from("password=pw");
        let a = h.send(req).await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(a.body.contains("Cross-site sign-in refused"), "{}", a.body);
        assert!(a.header("set-cookie").is_none());
    }
}

#[tokio::test]
async fn sign_in_parameters_are_vetted_by_the_core_rule_and_refused_with_their_page() {
    let h = harness().await;
    let long = format!("{}%40example.com", "a".repeat(600));
    for (query, title, message) in [
        (
            "state=attacker",
            "Reserved parameter",
            "\"state\" is a protocol parameter",
        ),
        (
            "redirect_uri=https%3A%2F%2Fevil.example",
            "Reserved parameter",
            "\"redirect_uri\" is a protocol parameter",
        ),
        (
            "prompt=none",
            "Parameter not allowed",
            "Allowed: login_hint.",
        ),
        (
            "login_hint=mallory%40evil.example",
            "Parameter value refused",
            "does not match the pattern the server allows ([a-z]+@example\\.com)",
        ),
        (
            &format!("login_hint={long}"),
            "Parameter too long",
            "longer than 512 bytes",
        ),
        (
            "return_to=%2F%2Fevil.example",
            "Unsafe return address",
            "must be a path on this gatehouse",
        ),
        (
            "State=attacker",
            "Reserved parameter",
            "\"State\" is a protocol parameter",
        ),
        (
            "login_hint=alice%40example.com&login_hint=mallory%40example.com",
            "Parameter repeated",
            "\"login_hint\" is given more than once",
        ),
        (
            "return_to=%2Fui%2Fwhoami&return_to=%2F%2Fevil.example",
            "Unsafe return address",
            "must be a path on this gatehouse",
        ),
    ] {
        let a = h.get(&format!("/auth/login?{query}"), &[]).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert!(a.body.contains(title), "{query}: {}", a.body);
        assert!(
            a.body.contains(&message.replace('"', "&#34;")),
            "{query}: {message:?} not in {}",
            a.body
        );
        assert!(a.header("location").is_none(), "{query}: went to the IdP");
        assert!(a.header("set-cookie").is_none(), "{query}: a flow started");
    }
    // An allowed value goes to the IdP with the static parameter beside it.
    let a = h
        .get("/auth/login?login_hint=alice%40example.com", &[])
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let to = url::Url::parse(a.header("location").unwrap()).unwrap();
    assert!(
        to.as_str().starts_with(&format!("{}/auth?", h.issuer)),
        "{to}"
    );
    let q: std::collections::BTreeMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["login_hint"], "alice@example.com");
    assert_eq!(q["connector_id"], "local");
    assert!(a.header("set-cookie").is_some(), "no flow cookie");
    h.kube.assert_untouched("sign-in parameters");
}

#[tokio::test]
async fn ui_pages_carry_the_security_headers() {
    let h = harness().await;
    let a = h.get("/", &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let csp = a.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains(&format!("form-action 'self' {}", h.issuer)),
        "{csp}"
    );
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("referrer-policy"), Some("same-origin"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert!(
        a.header("strict-transport-security").is_some(),
        "publicUrl is https"
    );
}

// ---------------------------------------------------------------- health and gatehouse's own paths

#[tokio::test]
async fn readyz_is_ok_once_keys_are_loaded_and_serviceaccounts_listed() {
    let h = harness().await;
    let a = h.get("/readyz", &[]).await;
    assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "ok\n"));
    for name in [
        "oidc-keys",
        "serviceaccount-watch-synced",
        "serviceaccount-watch-fresh",
    ] {
        let a = h.get(&format!("/readyz/{name}"), &[]).await;
        assert_eq!(a.status, 200, "{name}: {}", a.body);
    }
    h.kube.assert_untouched("readiness without rights checks");
}

#[tokio::test]
async fn readyz_is_503_until_serviceaccounts_are_listed() {
    let h = Setup {
        accounts: None,
        ..Setup::default()
    }
    .build()
    .await;
    let a = h.get("/readyz", &[]).await;
    assert_eq!(a.status, 503);
    assert!(
        a.body
            .contains("not ready: ServiceAccounts have not been listed yet"),
        "{}",
        a.body
    );
    let a = h.get("/readyz/serviceaccount-watch-synced", &[]).await;
    assert_eq!(a.status, 503);
    assert!(
        a.body.starts_with("serviceaccount-watch-synced failed:"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn readyz_of_an_unknown_check_is_404_and_asks_nothing_upstream() {
    let h = harness().await;
    for name in ["nope", "rbacx", "oidc-keys/extra"] {
        let a = h.get(&format!("/readyz/{name}"), &[]).await;
        assert_eq!(a.status, 404, "{name}: {}", a.body);
        assert!(a.body.contains("no such check"), "{}", a.body);
    }
    h.kube.assert_untouched("unknown readiness checks");
}

#[tokio::test]
async fn unknown_path_is_a_404_status_and_never_proxied() {
    let h = harness().await;
    let a = h
        .get(
            "/apiz/v1/pods",
            &[("authorization", &bearer(&h.unmapped_token()))],
        )
        .await;
    a.assert_status(404, "this path is none of them");
    h.kube.assert_untouched("unknown path");
}

#[tokio::test]
async fn public_config_names_the_issuer_and_holds_no_secret() {
    let h = harness().await;
    let a = h.get("/v1/config", &[]).await;
    assert_eq!(a.status, 200);
    let c = a.json();
    assert_eq!(c["oidc"]["issuerUrl"], h.issuer.as_str());
    assert_eq!(c["oidc"]["clientId"], CLIENT_ID);
    assert_eq!(c["adminEnabled"], true);
    assert_eq!(c["fallThrough"], true);
    for secret in [
        "web-secret",
        "router-tests-session-key",
        "0123456789abcdef0123456789abcdef",
    ] {
        assert!(!a.body.contains(secret), "{secret} in /v1/config");
    }
}

#[tokio::test]
async fn v1_whoami_of_a_mapped_user_names_the_serviceaccount_without_asking_upstream() {
    let h = harness().await;
    let a = h
        .get(
            "/v1/whoami",
            &[("authorization", &bearer(&h.token(serde_json::json!({}))))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let w = a.json();
    assert_eq!(w["authenticatedBy"], "oidc");
    assert_eq!(w["username"], "alice@example.com");
    assert_eq!(w["kubernetes"]["via"], "impersonation");
    assert_eq!(w["serviceAccounts"], serde_json::json!(["team-a/dev"]));
    h.kube.assert_untouched("whoami of a mapped user");
}

// ---------------------------------------------------------------- the authentication layer

#[tokio::test]
async fn the_admin_principal_reaches_v1_whoami_from_the_layer() {
    let h = harness().await;
    let a = h
        .get(
            "/v1/whoami",
            &[("authorization", &bearer(&h.admin_token()))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let w = a.json();
    assert_eq!(w["authenticatedBy"], "admin", "{w}");
    assert_eq!(w["kubernetes"]["via"], "impersonation", "{w}");
    h.kube.assert_untouched("whoami of the admin");
}

#[tokio::test]
async fn each_surface_words_a_refused_credential_form_its_own_way() {
    let h = harness().await;
    let two = [
        ("authorization", "Bearer one"),
        ("authorization", "Bearer two"),
    ];
    // The Kubernetes API says why gatehouse refuses forms it could read differently.
    let a = h.get(PODS, &two).await;
    a.assert_status(401, "more than one Authorization header");
    a.assert_status(401, "could read differently from the kube-apiserver");
    // gatehouse's own API gives the reason alone.
    let a = h.get("/v1/whoami", &two).await;
    a.assert_status(401, "more than one Authorization header");
    assert!(!a.body.contains("could read differently"), "{}", a.body);
    // A page sends the browser to sign in.
    let a = h.get("/ui/whoami", &two).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some("/?return_to=%2Fui%2Fwhoami"));
    h.kube.assert_untouched("refused credential forms");
}

#[tokio::test]
async fn a_session_cookie_with_a_websocket_bearer_on_a_page_is_ambiguous_and_signs_nobody_in() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.admin_token(), "admin");
    let protocols = format!("{}, v5.channel.k8s.io", ws_bearer(&h.unmapped_token()));
    let mut headers = WS.to_vec();
    headers.push(("sec-websocket-protocol", &protocols));
    headers.push(("cookie", &cookie));
    headers.push(("origin", PUBLIC));
    let a = h.get("/ui/whoami", &headers).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(!a.body.contains("gatehouse admin account"), "{}", a.body);
    h.kube.assert_untouched("an ambiguous page request");
}

#[tokio::test]
async fn the_access_page_sends_the_review_as_the_session_user_without_authenticating_again() {
    let h = harness().await;
    // A user no ServiceAccount maps: the review falls through with exactly the session's token,
    // which the page's request carried only in the sealed cookie. The in-process proxy call
    // gets the layer's outcome; no Authorization header was written for it to read.
    let token = h.unmapped_token();
    let cookie = h.session_cookie(&token, "oidc");
    let a = h
        .get("/ui/access?namespace=team-a", &[("cookie", &cookie)])
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(
        s.path,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
    );
    assert_eq!(s.header("authorization"), Some(bearer(&token).as_str()));
    assert!(s.names_with("impersonate-").is_empty(), "{s:?}");
    assert!(s.header("cookie").is_none(), "{s:?}");
    assert_eq!(s.header("x-forwarded-for"), Some("198.51.100.7"));
}

#[tokio::test]
async fn the_access_page_of_a_mapped_session_user_is_impersonated() {
    let h = harness().await;
    let cookie = h.session_cookie(&h.token(serde_json::json!({})), "oidc");
    let a = h
        .get("/ui/access?namespace=team-a", &[("cookie", &cookie)])
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let s = h.kube.one();
    assert_eq!(
        s.header("impersonate-user"),
        Some("system:serviceaccount:team-a:dev")
    );
    assert_eq!(
        s.header("authorization"),
        Some(&*format!("Bearer {OWN_TOKEN}"))
    );
}

#[tokio::test]
async fn the_apps_clock_decides_when_a_session_is_refreshed_and_when_it_ends() {
    let now = gatehouse_server::clock::unix_now();
    // The session (support's: created now, its token recorded as expiring in an hour, no
    // refresh token; `session.ttl` 12h) at three times by the app's clock.
    let signed_out = "/?return_to=%2Fui%2Fwhoami";
    for (at, status, cleared) in [
        // Well before its token expires: signed in.
        (now + 3600 - 120, 200, false),
        // Within a minute of it: a refresh is due, and without a refresh token the session
        // ends (its cookie cleared).
        (now + 3600 - 30, 303, true),
        // Past `session.ttl`: the cookie is not honoured at all (nothing to refresh or clear).
        // A minute past: the cookie is made after the app is built, so its `created` may be a
        // second or more later than `now` on a busy machine.
        (now + 12 * 3600 + 60, 303, false),
    ] {
        let h = Setup {
            clock: gatehouse_server::clock::Clock::Fixed(at),
            ..Setup::default()
        }
        .build()
        .await;
        // The token inside stays valid past all three times.
        let token = h.token(serde_json::json!({"exp": now + 13 * 3600}));
        let cookie = h.session_cookie(&token, "oidc");
        let a = h.get("/ui/whoami", &[("cookie", &cookie)]).await;
        assert_eq!(a.status, status, "at now+{}: {}", at - now, a.body);
        if status == 200 {
            assert!(a.body.contains("alice@example.com"), "{}", a.body);
        } else {
            assert_eq!(a.header("location"), Some(signed_out));
        }
        let clearing = a
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(clearing, cleared, "at now+{}: {:?}", at - now, a.headers);
    }
}

#[tokio::test]
async fn the_proxy_acts_only_on_the_layers_outcome_and_never_authenticates_by_itself() {
    let h = harness().await;
    // A valid token, handed to the proxy handler without the authentication layer: the handler
    // does not read it (a 500 Status for the bug), and nothing goes upstream.
    let token = h.token(serde_json::json!({}));
    let req = request("GET", PODS, &[("authorization", &bearer(&token))]);
    let resp =
        gatehouse_server::proxy::proxy(axum::extract::State(std::sync::Arc::clone(&h.app)), req)
            .await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["content-security-policy"], "sandbox");
    h.kube.assert_untouched("a request that bypassed the layer");
    // Through the router, the same request is authenticated once and impersonated.
    let a = h.get(PODS, &[("authorization", &bearer(&token))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        h.kube.one().header("impersonate-user"),
        Some("system:serviceaccount:team-a:dev")
    );
}

#[tokio::test]
async fn requests_gatehouse_cannot_read_as_the_kube_apiserver_does_are_400_and_never_forwarded() {
    let h = harness().await;
    let admin = h.admin_token();
    let many = format!("{PODS}?watch=1{}", "&".repeat(10_000));
    for (path, reason) in [
        ("/api/v1/namespaces/team-%FF/pods", "not UTF-8"),
        (
            "/api/v1/namespaces/team-a/pods?fieldSelector=metadata.name%3D%FF",
            "fieldSelector parameter is not UTF-8",
        ),
        (
            "/api/v1/namespaces/team-a/pods?watch=fal%C5%BFe&labelSelector=a+in+(b)",
            "watch parameter",
        ),
        (many.as_str(), "more than 10000 parameters"),
    ] {
        let req = request("GET", path, &[("authorization", &bearer(&admin))]);
        assert_refused(&h, req, 400, reason, path).await;
    }
    // Readable neighbours go through.
    let a = h
        .get(
            "/api/v1/namespaces/team-a/pods?watch=fal%C5%BFe&labelSelector=a%3Db",
            &[("authorization", &bearer(&admin))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// A method a path does not take is a 405 `Status` with the `Allow` header (RFC 9110): on
/// gatehouse's own routes (axum's method routing, answered like every other error of
/// gatehouse's) and for `CONNECT` on the Kubernetes API, which is never forwarded.
#[tokio::test]
async fn methods_a_path_does_not_take_are_405_status_with_allow() {
    let h = harness().await;
    for (method, path, allowed) in [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/config", "GET"),
        ("GET", "/v1/admin/login", "POST"),
        ("PUT", "/auth/callback", "GET"),
    ] {
        let a = h.send(request(method, path, &[])).await;
        a.assert_status(405, &format!("does not take {method}"));
        assert_eq!(a.json()["reason"], "MethodNotAllowed", "{method} {path}");
        let allow = a
            .header("allow")
            .unwrap_or_else(|| panic!("no Allow on {method} {path}"));
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
    }
    let token = h.token(serde_json::json!({}));
    let a = h
        .send(request(
            "CONNECT",
            "/api/v1/namespaces/team-a/pods",
            &[("authorization", &bearer(&token))],
        ))
        .await;
    a.assert_status(405, "does not serve the CONNECT method");
    let allow = a.header("allow").unwrap_or("");
    assert!(
        allow.contains("GET") && allow.contains("POST") && !allow.contains("CONNECT"),
        "{allow:?}"
    );
    h.kube.assert_untouched("CONNECT is never forwarded");
}
