//! Hermetic tests of the proxy against a local upstream that speaks HTTP upgrades (as the
//! kubelet-backed exec/attach/port-forward endpoints do, which the test bed lacks) and echoes
//! the headers it receives. Only 127.0.0.1; no test bed needed.
//!
//! These run the real binary, so they prove what the in-process router tests
//! (`crates/gatehouse-server/tests/router.rs`) cannot: the listener's real peer address, bytes
//! through an upgraded connection, `--check-config`, and the admin sign-in's per-address budget.
//! Request rules that the router alone decides (fall-through, header dropping, Connection,
//! WebSocket bearers, trusted proxies) are proven there, not repeated here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support as support;

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::Gatehouse;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers `Upgrade: SPDY/3.1` with 101 and then echoes bytes; answers anything else with the
/// request headers as JSON.
async fn upstream(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v == "SPDY/3.1")
    {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                io.write_all(&buf[..n]).await.unwrap();
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1")
            .header("x-stream-protocol-version", "v4.channel.k8s.io")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").into()))
        .collect();
    let body = serde_json::json!({ "path": req.uri().to_string(), "headers": headers });
    // A hostile upstream: it tries to plant and clear cookies on gatehouse's origin and to run
    // script there.
    Ok(Response::builder()
        .header("set-cookie", "gatehouse_session=planted; Path=/")
        .header(
            "set-cookie",
            "__Host-gatehouse_session=planted; Path=/; Secure",
        )
        .header("clear-site-data", "\"cookies\"")
        .header("content-security-policy", "script-src *")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

/// A local upstream speaking HTTP/1.1 with upgrades.
async fn start_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(upstream))
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

const OWN_TOKEN: &str = "gatehouse-own-credential";
const KEY: &str = "0123456789abcdef0123456789abcdef";

fn start_gatehouse(upstream_port: u16) -> (Gatehouse, support::tempdir::TempDir) {
    start_gatehouse_with(upstream_port, "")
}

fn start_gatehouse_with(upstream_port: u16, extra: &str) -> (Gatehouse, support::tempdir::TempDir) {
    let dir = support::tempdir::TempDir::new("kc");
    let kc = dir.path().join("upstream.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://127.0.0.1:{upstream_port}'}}\nusers:\n- name: u\n  user: {{token: {OWN_TOKEN}}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let hash = bcrypt::hash("pw", gatehouse_core::admin::MIN_BCRYPT_COST).unwrap();
    let port = support::free_port();
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nkubernetes: {{ kubeconfig: '{}' }}\nadmin: {{ enabled: true, passwordHash: '{hash}', tokenSigningKey: '{KEY}' }}\n{extra}",
        kc.display()
    );
    (Gatehouse::start(&cfg, "http", true), dir)
}

async fn admin_token(gh: &Gatehouse) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/admin/login", gh.url))
        .json(&serde_json::json!({"password": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

async fn seen_headers(gh: &Gatehouse, token: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut req = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces/x/pods?watch=true", gh.url))
        .bearer_auth(token);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<serde_json::Value>().await.unwrap()
}

#[tokio::test]
async fn admin_requests_carry_gatehouse_identity_and_impersonation_only() {
    let (gh, _kc) = start_gatehouse(start_upstream().await);
    let token = admin_token(&gh).await;
    let seen = seen_headers(
        &gh,
        &token,
        &[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")],
    )
    .await;
    let h = &seen["headers"];
    assert_eq!(seen["path"], "/api/v1/namespaces/x/pods?watch=true");
    assert_eq!(
        h["authorization"],
        format!("Bearer {OWN_TOKEN}"),
        "gatehouse's own credential, not the user's"
    );
    assert_eq!(h["impersonate-user"], "gatehouse:admin");
    assert_eq!(h["impersonate-group"], "gatehouse:admins");
    assert_eq!(h["impersonate-extra-gatehouse.dev%2fusername"], "admin");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "the peer, not the client's 6.6.6.6"
    );
    assert!(h.get("forwarded").is_none());
}

#[tokio::test]
async fn spdy_upgrade_passes_through_both_ways() {
    let (gh, _kc) = start_gatehouse(start_upstream().await);
    let token = admin_token(&gh).await;
    let port: u16 = gh.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/namespaces/x/pods/p/exec?command=sh HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the 101");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: spdy/3.1"), "{text}");
    assert!(
        text.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{text}"
    );
    for msg in [&b"hello through gatehouse"[..], &[0u8, 1, 2, 255, 254][..]] {
        s.write_all(msg).await.unwrap();
        let mut echoed = vec![0u8; msg.len()];
        s.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, msg);
    }
}

#[tokio::test]
async fn check_config_lists_every_problem() {
    let dir = support::tempdir::TempDir::new("cfg");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "oidc: { issuerUrl: 'http://idp.example' }\nadmin: { enabled: true }\nlisten: nope\ntypo: 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "oidc.issuerUrl",
        "oidc.clientId",
        "admin.passwordHash",
        "listen",
        "typo",
    ] {
        assert!(
            err.contains(&format!("  - {key}")),
            "{key} missing in:\n{err}"
        );
    }
    std::fs::write(&path, "listen: 127.0.0.1:1\n").unwrap();
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success());
}

/// A5: after five wrong passwords from one address, admin sign-in answers 429 with
/// `Retry-After` and a Kubernetes `Status` (before checking the password: the right one is
/// refused too until the wait is over), and each failure is logged with the client address.
#[tokio::test]
async fn admin_login_backs_off_per_address_with_429_and_retry_after() {
    let upstream_port = start_upstream().await;
    let (gh, _dir) = start_gatehouse(upstream_port);
    let client = reqwest::Client::new();
    let login = |password: &'static str| {
        client
            .post(format!("{}/v1/admin/login", gh.url))
            .json(&serde_json::json!({ "password": password }))
            .send()
    };
    for _ in 0..gatehouse_server::login_guard::PEER_FREE_FAILURES {
        assert_eq!(login("wrong").await.unwrap().status(), 401);
    }
    // The sixth attempt waits, even with the right password (no bcrypt runs for it).
    let refused = login("pw").await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let status: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], retry);
    let metrics = reqwest::get(format!("{}/metrics", gh.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_admin_login_refused_total 1")
            && metrics.contains("gatehouse_admin_login_failures_total 5"),
        "{metrics}"
    );
    // After the wait the right password works, and clears the backoff.
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(login("pw").await.unwrap().status(), 200);
    let log = gh.log();
    assert!(
        log.lines()
            .any(|l| l.contains("admin sign-in with a wrong password") && l.contains("127.0.0.1")),
        "the failure is logged with the peer address:\n{log}"
    );
    assert!(!log.contains("\"wrong\""), "no password in the log");
}

/// A5: with `admin.loginAllowedCidrs`, admin sign-in from another address is refused with 403
/// before the password is checked.
#[tokio::test]
async fn admin_login_from_outside_the_allowed_cidrs_is_refused() {
    let dir = support::tempdir::TempDir::new("kc");
    let kc = dir.path().join("upstream.kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let hash = bcrypt::hash("pw", gatehouse_core::admin::MIN_BCRYPT_COST).unwrap();
    let port = support::free_port();
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nkubernetes: {{ kubeconfig: '{}' }}\nadmin: {{ enabled: true, passwordHash: '{hash}', tokenSigningKey: '{KEY}', loginAllowedCidrs: ['10.0.0.0/8'] }}\n",
        kc.display()
    );
    let gh = Gatehouse::start(&cfg, "http", true);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/admin/login", gh.url))
        .json(&serde_json::json!({ "password": "pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("admin.loginAllowedCidrs")
    );
}

/// A gatehouse with the admin account and `admin` settings added (keys as given).
fn start_admin_gatehouse(
    upstream_port: u16,
    key: &str,
    extra: &str,
) -> (Gatehouse, support::tempdir::TempDir) {
    let dir = support::tempdir::TempDir::new("kc");
    let kc = dir.path().join("upstream.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://127.0.0.1:{upstream_port}'}}\nusers:\n- name: u\n  user: {{token: {OWN_TOKEN}}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash =
        HASH.get_or_init(|| bcrypt::hash("pw", gatehouse_core::admin::MIN_BCRYPT_COST).unwrap());
    let port = support::free_port();
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nkubernetes: {{ kubeconfig: '{}' }}\nadmin: {{ enabled: true, passwordHash: '{hash}', tokenSigningKey: '{key}'{extra} }}\n",
        kc.display()
    );
    (Gatehouse::start(&cfg, "http", true), dir)
}

async fn whoami_status(gh: &Gatehouse, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/whoami", gh.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A7: admin tokens name their key (`kid`); after a rotation, a token signed with the previous
/// key keeps working while `admin.previousTokenSigningKey` holds it and is refused once it is
/// removed; `admin.tokensNotBefore` revokes every token issued earlier, and new sign-ins work.
#[tokio::test]
async fn admin_token_rotation_and_not_before_revocation() {
    const NEW_KEY: &str = "fedcba9876543210fedcba9876543210";
    let upstream_port = start_upstream().await;
    let (before, _d1) = start_admin_gatehouse(upstream_port, KEY, "");
    let old_token = admin_token(&before).await;
    let header = jsonwebtoken::decode_header(&old_token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some(gatehouse_core::admin::key_id(KEY.as_bytes()).as_str())
    );
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/whoami", before.url))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let exp = humantime::parse_rfc3339(v["expiresAt"].as_str().unwrap()).unwrap();
    let default_ttl = exp
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!(
        (8 * 3600 - 60..=8 * 3600).contains(&default_ttl),
        "default lifetime 8h, got {default_ttl} s"
    );
    drop(before);

    let (rotated, _d2) = start_admin_gatehouse(
        upstream_port,
        NEW_KEY,
        &format!(", previousTokenSigningKey: '{KEY}'"),
    );
    assert_eq!(
        whoami_status(&rotated, &old_token).await.0,
        200,
        "previous key still accepted"
    );
    drop(rotated);
    let (only_new, _d3) = start_admin_gatehouse(upstream_port, NEW_KEY, "");
    assert_eq!(whoami_status(&only_new, &old_token).await.0, 401);
    drop(only_new);

    // Not-before: one second after the old token was issued.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let (revoking, _d4) =
        start_admin_gatehouse(upstream_port, KEY, &format!(", tokensNotBefore: '{now}'"));
    let (code, body) = whoami_status(&revoking, &old_token).await;
    assert_eq!(code, 401);
    assert!(body.contains("admin.tokensNotBefore"), "{body}");
    let fresh = admin_token(&revoking).await;
    assert_eq!(whoami_status(&revoking, &fresh).await.0, 200);
}

/// Behind a trusted proxy (`trustedProxies`), each client the proxy names in `X-Forwarded-For`
/// has its own sign-in budget: one client's wrong passwords do not make the admin wait.
#[tokio::test]
async fn admin_login_backoff_behind_a_trusted_proxy_is_per_client() {
    let upstream_port = start_upstream().await;
    let (gh, _dir) = start_gatehouse_with(upstream_port, "trustedProxies: [127.0.0.1/32]\n");
    let client = reqwest::Client::new();
    let login = |from: &'static str, password: &'static str| {
        client
            .post(format!("{}/v1/admin/login", gh.url))
            .header("x-forwarded-for", from)
            .json(&serde_json::json!({ "password": password }))
            .send()
    };
    for _ in 0..gatehouse_server::login_guard::PEER_FREE_FAILURES {
        assert_eq!(login("203.0.113.66", "wrong").await.unwrap().status(), 401);
    }
    assert_eq!(login("203.0.113.66", "pw").await.unwrap().status(), 429);
    // Another client behind the same proxy is not held back, and a guesser cannot escape its
    // budget by writing another address in front of the one the proxy appended.
    assert_eq!(login("198.51.100.1", "pw").await.unwrap().status(), 200);
    assert_eq!(
        login("198.51.100.2, 203.0.113.66", "pw")
            .await
            .unwrap()
            .status(),
        429
    );
}
