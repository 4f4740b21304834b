// Over 600 lines: browser sign-in flows against real Dex and Keycloak, sharing the cookie-jar browser and the server start.
//! Browser sign-in against the real Dex of the test bed, driven over HTTP the way a browser
//! follows redirects and submits forms (the Chromium tests in `tests/browser/` cover the pages
//! themselves). Hostile inputs are checked here: each must give a clear error and no session.
//!
//! Dex's `gatehouse` client only accepts `https://127.0.0.1:8443/auth/callback`, so these tests
//! share that port and run one at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::await_holding_lock
)]

use gatehouse_test_support as support;

use std::collections::BTreeMap;
use std::sync::Mutex;

use support::config::ServerConfig;
use support::{Browser, Gatehouse, Page, Testbed};

static PORT_8443: Mutex<()> = Mutex::new(());
const SESSION_KEY: &str = "e2e-session-key-0123456789abcdef0123456789";
const BASE: &str = "https://127.0.0.1:8443";
/// The cookie names with secure cookies (A9: the `__Host-` prefix).
const SESSION_COOKIE: &str = "__Host-gatehouse_session";
const FLOW_COOKIE: &str = "__Host-gatehouse_flow";

fn start(tb: &Testbed) -> Gatehouse {
    Gatehouse::start_on(&browser_config(tb, 8443), 8443, "https", true)
}

fn browser_config(tb: &Testbed, port: u16) -> String {
    ServerConfig::new(tb)
        .port(port)
        .public_url(BASE)
        .dex()
        .oidc_yaml(&format!(
            "clientSecret: \"{}\"\n\
             additionalScopes: [groups, offline_access]\n\
             additionalParameters: {{ connector_id: local }}\n\
             userParameters:\n  login_hint: {{ pattern: '[a-z]+@example\\.com' }}",
            tb.var("DEX_WEB_CLIENT_SECRET")
        ))
        .yaml(&format!("session: {{ key: \"{SESSION_KEY}\" }}"))
        .admin()
        .build()
}

/// The sign-in steps of these tests on the shared [`Browser`]: Dex's password form and the way
/// back to gatehouse at [`BASE`].
trait SignIn {
    async fn dex_login(&mut self, tb: &Testbed, login_page: &Page, user: &str) -> String;
    async fn sign_in(&mut self, tb: &Testbed, start: &str, user: &str) -> Page;
    fn has_session(&self) -> bool;
}

impl SignIn for Browser {
    /// Signs `user` in at Dex's password form; returns the callback URL Dex sends back to.
    async fn dex_login(&mut self, tb: &Testbed, login_page: &Page, user: &str) -> String {
        let action = support::form_action(&login_page.body, &login_page.url, r#"method="post""#);
        let (email, password) = tb.credentials(user);
        let mut page = self
            .request(
                reqwest::Method::POST,
                &action,
                Some(&[("login", &email), ("password", &password)]),
                None,
            )
            .await;
        for _ in 0..10 {
            let next = page.location.clone().unwrap_or_else(|| {
                panic!(
                    "Dex did not redirect after login ({}): {}",
                    page.status,
                    &page.body[..page.body.len().min(300)]
                )
            });
            if next.starts_with(BASE) {
                return next;
            }
            page = self.get(&next).await;
        }
        panic!("Dex never redirected back")
    }

    /// A full sign-in; returns the final page.
    async fn sign_in(&mut self, tb: &Testbed, start: &str, user: &str) -> Page {
        let login = self.follow(start, |_| false).await.unwrap();
        let callback = self.dex_login(tb, &login, user).await;
        self.follow(&callback, |_| false).await.unwrap()
    }

    fn has_session(&self) -> bool {
        self.cookie(BASE, SESSION_COOKIE).is_some()
    }
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn sign_in_with_dex_then_session_authenticates_ui_but_never_the_proxy() {
    let _port = PORT_8443
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tb = Testbed::load();
    let gh = start(&tb);
    let mut b = Browser::new(&tb);

    // The authorization request carries PKCE, state, nonce, and the static connector_id.
    let first = b
        .get(&format!(
            "{BASE}/auth/login?return_to=%2Fui%2Fwhoami&login_hint=alice%40example.com"
        ))
        .await;
    assert_eq!(first.status, 303);
    let to_idp = url::Url::parse(first.location.as_deref().unwrap()).unwrap();
    let q: BTreeMap<String, String> = to_idp.query_pairs().into_owned().collect();
    assert!(to_idp.as_str().starts_with(&tb.var("DEX_ISSUER")));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["connector_id"], "local");
    assert_eq!(q["login_hint"], "alice@example.com");
    assert_eq!(q["redirect_uri"], format!("{BASE}/auth/callback"));
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43 && q["code_challenge"].len() == 43);
    let flow_cookie = first
        .set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{FLOW_COOKIE}=")))
        .unwrap();
    assert!(
        flow_cookie.contains("HttpOnly")
            && flow_cookie.contains("Secure")
            && flow_cookie.contains("SameSite=Lax")
            && flow_cookie.contains("Path=/;")
            && !flow_cookie.contains("Domain"),
        "a __Host- cookie needs Secure, Path=/ and no Domain: {flow_cookie}"
    );

    // connector_id skipped Dex's connector chooser: straight to the password form.
    let login = b.follow(to_idp.as_str(), |_| false).await.unwrap();
    assert!(login.url.contains("/auth/local/login"), "{}", login.url);
    let callback = b.dex_login(&tb, &login, "alice").await;
    let landed = b.follow(&callback, |_| false).await.unwrap();
    assert_eq!(
        landed.url,
        format!("{BASE}/ui/whoami"),
        "back where the user started, code gone from the URL"
    );
    assert!(landed.body.contains("alice@example.com"));
    assert!(landed.body.contains("team-a/dev"));
    assert!(b.has_session());
    assert!(
        b.cookie(BASE, FLOW_COOKIE).is_none(),
        "the flow cookie is single use"
    );
    let session_value = b.cookie(BASE, SESSION_COOKIE).unwrap().clone();
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();

    // Another replica with the same session key accepts the session: nothing is stored on the
    // server that signed the user in.
    let replica_port = support::free_port();
    let replica = Gatehouse::start_on(
        &browser_config(&tb, replica_port),
        replica_port,
        "https",
        true,
    );
    let seen = tb
        .http()
        .get(format!("{}/ui/whoami", replica.url))
        .header("cookie", format!("{SESSION_COOKIE}={session_value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 200);
    assert!(seen.text().await.unwrap().contains("alice@example.com"));
    drop(replica);

    // The what-can-I-do page runs a SelfSubjectRulesReview as alice (server side)...
    let access = b.get(&format!("{BASE}/ui/access?namespace=team-a")).await;
    assert!(
        access.body.contains("configmaps") && access.body.contains("watch"),
        "{}",
        access.body
    );
    // ...but the session cookie itself never authenticates the Kubernetes API proxy: not a
    // read, not a write from gatehouse's own origin, not a WebSocket upgrade (kubectl exec,
    // attach, port-forward).
    let cms = b
        .get(&format!("{BASE}/api/v1/namespaces/team-a/configmaps"))
        .await;
    assert_eq!(cms.status, 401, "{}", cms.body);
    assert!(
        cms.body
            .contains("session cookie does not authenticate Kubernetes API requests")
    );
    let write = b
        .request(
            reqwest::Method::POST,
            &format!("{BASE}/api/v1/namespaces/team-a/configmaps"),
            None,
            Some(BASE),
        )
        .await;
    assert_eq!(write.status, 401, "{}", write.body);
    let cookies = b.cookie_header(BASE);
    let upgrade = tb
        .http1()
        .get(format!(
            "{BASE}/api/v1/namespaces/team-a/pods/nope/exec?command=id&stdout=true"
        ))
        .header("cookie", cookies.clone())
        .header("origin", BASE)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "v5.channel.k8s.io")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), 401);

    // Replaying the callback finds no flow: clear error, no new session.
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("Sign-in flow not found"));

    // Logout clears the session (Dex has no end-session endpoint: back to the sign-in page).
    let out = b
        .request(
            reqwest::Method::POST,
            &format!("{BASE}/auth/logout"),
            None,
            Some(BASE),
        )
        .await;
    assert_eq!(out.status, 303);
    assert!(!b.has_session());
    let after = b.get(&format!("{BASE}/ui/whoami")).await;
    assert_eq!(after.status, 303, "signed out: sent to sign in");
    let log = gh.log();
    assert!(log.contains("browser sign-in"), "the sign-in is logged");
    assert!(
        !log.contains(&session_value) && !log.contains(&code),
        "no cookie or code in the log"
    );
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn hostile_callbacks_give_clear_errors_and_no_session() {
    let _port = PORT_8443
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tb = Testbed::load();
    let _gh = start(&tb);

    // State mismatch.
    let mut b = Browser::new(&tb);
    let login = b
        .follow(&format!("{BASE}/auth/login"), |_| false)
        .await
        .unwrap();
    let callback = b.dex_login(&tb, &login, "alice").await;
    let tampered = regex::Regex::new(r"state=[^&]+")
        .unwrap()
        .replace(&callback, "state=forged")
        .to_string();
    let page = b.get(&tampered).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("state does not match"), "{}", page.body);
    assert!(!b.has_session());

    // Missing flow cookie: a callback in a browser that never started a sign-in.
    let mut stranger = Browser::new(&tb);
    let page = stranger.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Sign-in flow not found"));
    assert!(!stranger.has_session());

    // Reused code: a fresh flow, but the code of an earlier, already exchanged sign-in.
    let mut c = Browser::new(&tb);
    let done = c.sign_in(&tb, &format!("{BASE}/auth/login"), "bob").await;
    assert_eq!(done.status, 200);
    let used_code = c
        .visited
        .iter()
        .find(|u| u.starts_with(&format!("{BASE}/auth/callback")))
        .unwrap()
        .clone();
    let mut d = Browser::new(&tb);
    let fresh = d.get(&format!("{BASE}/auth/login")).await;
    let state = url::Url::parse(fresh.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let reuse = regex::Regex::new(r"state=[^&]+")
        .unwrap()
        .replace(&used_code, format!("state={state}").as_str())
        .to_string();
    // Dex refuses it with invalid_grant: the client's fault, 400 (not 502, which would look
    // like an IdP outage in metrics), with a way to start again.
    let page = d.get(&reuse).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("could not be completed"),
        "{}",
        page.body
    );
    assert!(page.body.contains("invalid_grant"), "{}", page.body);
    assert!(page.body.contains("/auth/login"), "offers to start again");
    assert!(!d.has_session());

    // A forged code (right state, a code Dex never issued): 400 too.
    let mut f = Browser::new(&tb);
    let fresh = f.get(&format!("{BASE}/auth/login")).await;
    let state = url::Url::parse(fresh.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let page = f
        .get(&format!(
            "{BASE}/auth/callback?code=forged-{}&state={state}",
            support::free_port()
        ))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("could not be completed"),
        "{}",
        page.body
    );
    assert!(!f.has_session());

    // The IdP says no.
    let mut e = Browser::new(&tb);
    let fresh = e.get(&format!("{BASE}/auth/login")).await;
    let state = url::Url::parse(fresh.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let page = e
        .get(&format!(
            "{BASE}/auth/callback?error=access_denied&error_description=user+declined&state={state}"
        ))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("access_denied") && page.body.contains("user declined"));
    assert!(!e.has_session());

    // An expired flow cookie (sealed with the server's key, created 11 minutes ago).
    let codec = gatehouse_server::session::CookieCodec::new(SESSION_KEY.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let stale = serde_json::json!({"secrets": {"state": "s", "nonce": "n", "verifier": "v"}, "return_to": "/", "created": now - 660});
    let sealed = codec
        .seal(FLOW_COOKIE, stale.to_string().as_bytes())
        .unwrap();
    let mut f = Browser::new(&tb);
    f.jar
        .entry(BASE.to_owned())
        .or_default()
        .insert(FLOW_COOKIE.into(), sealed);
    let page = f.get(&format!("{BASE}/auth/callback?code=x&state=s")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("took too long"), "{}", page.body);
    assert!(!f.has_session());
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn hostile_login_requests_are_refused_before_the_idp() {
    let _port = PORT_8443
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tb = Testbed::load();
    let _gh = start(&tb);
    let mut b = Browser::new(&tb);
    let long = "a".repeat(600);
    for (query, expect) in [
        ("return_to=%2F%2Fevil.example", "Unsafe return address"),
        (
            "return_to=https%3A%2F%2Fevil.example",
            "Unsafe return address",
        ),
        ("return_to=%2F%5Cevil.example", "Unsafe return address"),
        ("state=attacker", "Reserved parameter"),
        (
            "redirect_uri=https%3A%2F%2Fevil.example",
            "Reserved parameter",
        ),
        ("prompt=none", "Parameter not allowed"),
        (
            "login_hint=mallory%40evil.example",
            "does not match the pattern",
        ),
        (
            &format!("login_hint={long}%40example.com"),
            "Parameter too long",
        ),
    ] {
        let page = b.get(&format!("{BASE}/auth/login?{query}")).await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.body.contains(expect), "{query}: {}", page.body);
        assert!(page.location.is_none(), "{query}: must not go to the IdP");
        assert!(
            b.cookie(BASE, FLOW_COOKIE).is_none(),
            "{query}: no flow started"
        );
    }
    // Pages carry a strict CSP and no script.
    let page = b.get(&format!("{BASE}/")).await;
    assert!(!page.body.contains("<script"));
    let resp = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(tb.var("TESTBED_CA_FILE")).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("{BASE}/"))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
}

/// A session whose ID token is about to expire is refreshed with its refresh token at Dex, and
/// the request goes through with a fresh cookie; a session whose refresh fails is signed out.
#[tokio::test]
#[ignore = "needs testbed"]
async fn session_refreshes_before_expiry_and_signs_out_when_refresh_fails() {
    let _port = PORT_8443
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tb = Testbed::load();
    let _gh = start(&tb);
    // Real tokens for the web client (password grant with its secret), offline_access for a
    // refresh token.
    let resp: serde_json::Value = tb
        .http()
        .post(tb.var("DEX_TOKEN_URL"))
        .basic_auth("gatehouse", Some(tb.var("DEX_WEB_CLIENT_SECRET")))
        .form(&[
            ("grant_type", "password"),
            ("username", &tb.var("ALICE_EMAIL")),
            ("password", &tb.var("ALICE_PASSWORD")),
            ("scope", "openid email profile groups offline_access"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codec = gatehouse_server::session::CookieCodec::new(SESSION_KEY.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let seal = |refresh: &str| {
        let session = serde_json::json!({
            "token": resp["id_token"], "refresh_token": refresh, "kind": "oidc",
            "created": now - 60, "expires": now + 30,   // inside the refresh window
        });
        codec
            .seal(SESSION_COOKIE, session.to_string().as_bytes())
            .unwrap()
    };

    let mut b = Browser::new(&tb);
    b.jar.entry(BASE.to_owned()).or_default().insert(
        SESSION_COOKIE.into(),
        seal(resp["refresh_token"].as_str().unwrap()),
    );
    let page = b.get(&format!("{BASE}/ui/whoami")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("alice@example.com"));
    let renewed = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")) && !c.contains("Max-Age=0"))
        .expect("a refreshed session cookie");
    let value = renewed
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{SESSION_COOKIE}="));
    let fresh: serde_json::Value =
        serde_json::from_slice(&codec.open(SESSION_COOKIE, value).unwrap()).unwrap();
    assert!(
        fresh["expires"].as_i64().unwrap() > now + 600,
        "a new ID token with a new expiry"
    );
    assert_ne!(fresh["token"], resp["id_token"]);

    // A refresh token the IdP refuses: the session ends and the user is sent to sign in.
    let mut c = Browser::new(&tb);
    c.jar
        .entry(BASE.to_owned())
        .or_default()
        .insert(SESSION_COOKIE.into(), seal("not-a-refresh-token"));
    let page = c.get(&format!("{BASE}/ui/whoami")).await;
    assert_eq!(page.status, 303);
    assert!(
        page.location
            .unwrap()
            .starts_with(&format!("{BASE}/?return_to="))
    );
    assert!(!c.has_session(), "the dead session cookie is cleared");

    // A session whose token gatehouse refuses (it names the OIDC issuer, its signature is not
    // the issuer's; within its lifetime, so no refresh is tried): the start page shows the
    // sign-in instead of bouncing to who-am-I and back.
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let forged = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(serde_json::json!({"alg": "RS256", "kid": "k"})),
        b64(
            serde_json::json!({"iss": tb.var("DEX_ISSUER"), "aud": "gatehouse", "exp": now + 3000})
        )
    );
    let refused = codec
        .seal(
            SESSION_COOKIE,
            serde_json::json!({
                "token": forged, "refresh_token": null, "kind": "oidc",
                "created": now - 60, "expires": now + 3000,
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
    let mut d = Browser::new(&tb);
    d.jar
        .entry(BASE.to_owned())
        .or_default()
        .insert(SESSION_COOKIE.into(), refused);
    let home = d.get(&format!("{BASE}/")).await;
    assert_eq!(home.status, 200, "no redirect loop: {:?}", home.location);
}

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Tokens for the web client `gatehouse` by the password grant (with its secret).
async fn password_grant(
    tb: &Testbed,
    token_url: &str,
    secret: &str,
    user: &str,
    scope: &str,
) -> serde_json::Value {
    let (username, password) = tb.credentials(user);
    let resp = tb
        .http()
        .post(token_url)
        .basic_auth("gatehouse", Some(secret))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", password.as_str()),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "password grant for {user}");
    resp.json().await.unwrap()
}

/// A session cookie value sealed with the tests' session key.
fn sealed_session(id_token: &serde_json::Value, refresh_token: &str, expires: i64) -> String {
    let codec = gatehouse_server::session::CookieCodec::new(SESSION_KEY.as_bytes()).unwrap();
    let session = serde_json::json!({
        "token": id_token, "refresh_token": refresh_token, "kind": "oidc",
        "created": unix_now() - 60, "expires": expires,
    });
    codec
        .seal(SESSION_COOKIE, session.to_string().as_bytes())
        .unwrap()
}

/// The session a response's `Set-Cookie` writes, opened.
fn session_set_by(resp: &reqwest::Response) -> Option<serde_json::Value> {
    let codec = gatehouse_server::session::CookieCodec::new(SESSION_KEY.as_bytes()).unwrap();
    let line = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")) && !c.contains("Max-Age=0"))?;
    let value = line
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches(&format!("{SESSION_COOKIE}="));
    serde_json::from_slice(&codec.open(SESSION_COOKIE, value)?).ok()
}

/// gatehouse with browser sign-in against Keycloak's realm `gatehouse`, on a free port.
fn start_keycloak(tb: &Testbed) -> Gatehouse {
    tb.require_keycloak();
    let port = support::free_port();
    let config = ServerConfig::new(tb)
        .port(port)
        .public_url(&format!("https://127.0.0.1:{port}"))
        .keycloak()
        .oidc_yaml(&format!(
            "clientSecret: \"{}\"\nadditionalScopes: [groups]",
            tb.var("KEYCLOAK_WEB_CLIENT_SECRET")
        ))
        .yaml(&format!("session: {{ key: \"{SESSION_KEY}\" }}"))
        .build();
    Gatehouse::start_on(&config, port, "https", true)
}

/// A8: parallel requests with one session near expiry make one refresh at the IdP and all get
/// the same fresh session. Keycloak issues a distinct ID token (its own `jti`) and refresh token
/// per refresh, so without single-flight every request would carry another session, and with
/// rotating refresh tokens all but one would be signed out.
#[tokio::test]
#[ignore = "needs testbed"]
async fn parallel_requests_near_expiry_share_one_refresh_at_keycloak() {
    let tb = Testbed::load();
    let gh = start_keycloak(&tb);
    let tokens = password_grant(
        &tb,
        &tb.var("KEYCLOAK_TOKEN_URL"),
        &tb.var("KEYCLOAK_WEB_CLIENT_SECRET"),
        "alice",
        "openid email profile groups",
    )
    .await;
    let cookie = format!(
        "{SESSION_COOKIE}={}",
        sealed_session(
            &tokens["id_token"],
            tokens["refresh_token"].as_str().unwrap(),
            unix_now() + 30, // inside the refresh window
        )
    );
    let http = tb.http();
    let requests = (0..6).map(|_| {
        http.get(format!("{}/ui/whoami", gh.url))
            .header("cookie", cookie.clone())
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut id_tokens = std::collections::BTreeSet::new();
    let mut refresh_tokens = std::collections::BTreeSet::new();
    for r in responses {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        let fresh = session_set_by(&r).expect("every response carries the refreshed session");
        assert_ne!(fresh["token"], tokens["id_token"], "refreshed");
        id_tokens.insert(fresh["token"].as_str().unwrap().to_owned());
        refresh_tokens.insert(fresh["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        id_tokens.len(),
        1,
        "one refresh, shared by all six requests"
    );
    assert_eq!(refresh_tokens.len(), 1);
}

/// A8: a refresh whose new ID token names another subject ends the session. The session holds
/// bob's ID token with alice's refresh token (as a confused IdP or a spliced session would give):
/// the refresh returns alice, and gatehouse signs the browser out instead of switching users.
#[tokio::test]
#[ignore = "needs testbed"]
async fn a_refresh_that_returns_another_subject_ends_the_session() {
    let _port = PORT_8443
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tb = Testbed::load();
    let gh = start(&tb);
    let secret = tb.var("DEX_WEB_CLIENT_SECRET");
    let scope = "openid email profile groups offline_access";
    let alice = password_grant(&tb, &tb.var("DEX_TOKEN_URL"), &secret, "alice", scope).await;
    let bob = password_grant(&tb, &tb.var("DEX_TOKEN_URL"), &secret, "bob", scope).await;
    let mut b = Browser::new(&tb);
    b.jar.entry(BASE.to_owned()).or_default().insert(
        SESSION_COOKIE.into(),
        sealed_session(
            &bob["id_token"],
            alice["refresh_token"].as_str().unwrap(),
            unix_now() + 30,
        ),
    );
    let page = b.get(&format!("{BASE}/ui/whoami")).await;
    assert_eq!(
        page.status, 303,
        "signed out, not switched to alice: {}",
        page.body
    );
    assert!(!page.body.contains("alice@example.com"));
    assert!(!b.has_session(), "the session cookie is cleared");
    assert!(
        gh.log().contains("another user"),
        "the reason is logged: {}",
        gh.log()
    );
}

/// A8: sign-out revokes the session's refresh token at the IdP (RFC 7009) when discovery has a
/// `revocation_endpoint` (Keycloak has one): the refresh token no longer works afterwards.
#[tokio::test]
#[ignore = "needs testbed"]
async fn logout_revokes_the_refresh_token_at_keycloak() {
    let tb = Testbed::load();
    let gh = start_keycloak(&tb);
    let secret = tb.var("KEYCLOAK_WEB_CLIENT_SECRET");
    let token_url = tb.var("KEYCLOAK_TOKEN_URL");
    let tokens = password_grant(
        &tb,
        &token_url,
        &secret,
        "alice",
        "openid email profile groups",
    )
    .await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let cookie = format!(
        "{SESSION_COOKIE}={}",
        sealed_session(&tokens["id_token"], &refresh_token, unix_now() + 3000)
    );
    let out = tb
        .http_with(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))
        .post(format!("{}/auth/logout", gh.url))
        .header("cookie", cookie)
        .header("origin", &gh.url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let refreshed = tb
        .http()
        .post(&token_url)
        .basic_auth("gatehouse", Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        400,
        "the refresh token was revoked at sign-out"
    );
    let err: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");
    let log = gh.log();
    assert!(log.contains("refresh token revoked"), "{log}");
    assert!(!log.contains(&refresh_token), "the token is never logged");
}

/// A9: UI responses carry HSTS when publicUrl is https, and the session cookie set at sign-in
/// is a `__Host-` cookie (Secure, Path=/, no Domain).
#[tokio::test]
#[ignore = "needs testbed"]
async fn https_pages_send_hsts_and_host_prefixed_cookies() {
    let tb = Testbed::load();
    let port = support::free_port();
    let gh = Gatehouse::start_on(&browser_config(&tb, port), port, "https", true);
    let resp = tb
        .http_with(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))
        .get(format!("{}/auth/login", gh.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let flow = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{FLOW_COOKIE}=")))
        .expect("a __Host- flow cookie");
    assert!(flow.contains("; Path=/;") && flow.contains("Secure") && !flow.contains("Domain"));
}
