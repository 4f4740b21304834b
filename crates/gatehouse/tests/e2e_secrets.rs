// Over 300 lines: one end-to-end run through one gatehouse (browser, API, CLI, admin, error paths) whose every output is searched; splitting it would split the run the search needs whole.
//! Secrets never leak (issue 14): one real gatehouse, with its most talkative log
//! (`GATEHOUSE_LOG=trace`), is driven through a broad run against the test bed (browser sign-in
//! with Dex, the signed-in UI pages, the kubeconfig download, sign-out; the CLI's SSO login,
//! `gatehouse token`, kubectl through the exec plugin, a refresh; the admin login with the right
//! and a wrong password; wrong, expired, garbled and foreign-audience tokens, a token in
//! `?access_token=`, refused sign-in callbacks, denied requests, bad cookies). Every response
//! gatehouse gave (status, every header, body), every CLI and kubectl output and gatehouse's
//! log are collected; every secret the run saw (Dex ID, access and refresh tokens, authorization
//! codes, cookies gatehouse set, the admin token, the test bed's passwords, client secrets and
//! keys) is searched for in every spelling [`support::leak::spellings`] lists. The few places
//! that carry a secret by design (the admin login's body, the `Set-Cookie` that sets a cookie,
//! `gatehouse token`'s ExecCredential) are named, and only that secret is allowed there.
//!
//! Dex's `gatehouse` client accepts `https://127.0.0.1:8443/auth/callback` and
//! `http://127.0.0.1:8080/auth/callback`; 8443 belongs to the shared test bed's own runs, so this
//! gatehouse serves plain HTTP on 8080 (loopback).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support as support;

use std::time::Duration;

use support::config::ServerConfig;
use support::leak::{Collection, Secrets, find_leaks, record, token_fields};
use support::machine::{Machine, sso_login_full};
use support::{Browser, Gatehouse, Testbed, text, workspace_root};

const PORT: u16 = 8080;
const BASE: &str = "http://127.0.0.1:8080";
const SESSION_KEY: &str = "e2e-secrets-session-key-0123456789abcdef0123";
/// Cookie names without `__Host-`: this gatehouse serves plain HTTP.
const SESSION_COOKIE: &str = "gatehouse_session";

fn config(tb: &Testbed) -> String {
    ServerConfig::new(tb)
        .port(PORT)
        .public_url(BASE)
        .dex()
        .oidc_yaml(&format!(
            "clientSecret: \"{}\"\n\
             additionalScopes: [groups, offline_access, \"audience:server:client_id:kubernetes\"]\n\
             additionalParameters: {{ connector_id: local }}",
            tb.var("DEX_WEB_CLIENT_SECRET")
        ))
        .yaml(&format!(
            "session: {{ key: \"{SESSION_KEY}\", secureCookies: false }}\nfallThrough: {{ enabled: true }}"
        ))
        .plain_http()
        .admin()
        .build()
}

/// The run's record: what was collected and the secrets seen.
struct Run {
    c: Collection,
    s: Secrets,
    http: reqwest::Client,
    n: usize,
}

impl Run {
    /// Records a response of gatehouse as `response N: WHAT` (WHAT never holds a secret).
    async fn rec(&mut self, what: &str, resp: reqwest::Response) -> (u16, String, String) {
        self.n += 1;
        let name = format!("response {}: {what}", self.n);
        let (status, body) = record(&mut self.c, name.clone(), resp).await;
        (status, body, name)
    }

    /// `GET path` with a bearer token, recorded.
    async fn get_bearer(&mut self, what: &str, path: &str, token: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{BASE}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, body, _) = self.rec(what, resp).await;
        (status, body)
    }

    /// `GET path` with a bearer token, recorded; asserts the status (the body in the message:
    /// an error response, never a secret of this run).
    async fn expect(&mut self, what: &str, path: &str, token: &str, want: u16) -> String {
        let (status, body) = self.get_bearer(what, path, token).await;
        assert_eq!(status, want, "{what}: {}", &body[..body.len().min(400)]);
        body
    }

    /// A CLI or kubectl run, stdout and stderr recorded as two items.
    fn out(&mut self, what: &str, out: &std::process::Output) -> (String, String, String) {
        let (o, e) = text(out);
        self.n += 1;
        let name = format!("command {}: {what}", self.n);
        self.c.add(format!("{name} stdout"), o.clone());
        self.c.add(format!("{name} stderr"), e.clone());
        (o, e, format!("{name} stdout"))
    }

    /// The token fields of a JSON document (a cache, a token response, an opened session).
    fn tokens_of(&mut self, kind_prefix: &str, label: &str, v: &serde_json::Value) -> usize {
        let fields = token_fields(v);
        for (key, value) in &fields {
            let kind = match key.to_ascii_lowercase().as_str() {
                k if k.contains("refresh") => "refresh token",
                k if k.contains("access") => "access token",
                _ => "ID token",
            };
            self.s.add(
                &format!("{kind_prefix} {kind}"),
                &format!("{label} {key}"),
                value,
            );
        }
        fields.len()
    }

    /// Cookies gatehouse set on the browser's pages: each value a secret, allowed only in the
    /// response that set it.
    fn cookies_of(&mut self, pages: &[support::Page]) {
        for p in pages.iter().filter(|p| p.url.starts_with(BASE)) {
            self.n += 1;
            let path = url::Url::parse(&p.url).unwrap().path().to_owned();
            let name = format!("response {}: browser {} {path}", self.n, p.method);
            self.c.add(name.clone(), p.raw.clone());
            for line in &p.set_cookies {
                let first = line.split(';').next().unwrap_or_default();
                let (cookie, value) = first.split_once('=').unwrap_or_default();
                if value.len() >= 12 {
                    self.s.add("cookie", cookie, value);
                    self.s.allow(value, &name);
                }
            }
        }
    }
}

fn cli_pages(c: &mut Collection, pages: &[support::Page], callback: &str) {
    let loopback = Browser::origin(callback);
    for (i, p) in pages
        .iter()
        .filter(|p| p.url.starts_with(&loopback))
        .enumerate()
    {
        c.add(format!("CLI loopback page {i}"), p.raw.clone());
    }
}

fn code_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code in the redirect"))
        .1
        .into_owned()
}

/// The test bed's generated secrets (`testbed/up`'s `secret` lines and the password hashes),
/// from `testbed/.state/secrets.env`: `(kind, name, value)`.
fn testbed_secrets() -> Vec<(&'static str, String, String)> {
    let text =
        std::fs::read_to_string(workspace_root().join("testbed/.state/secrets.env")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            let kind = if k.ends_with("_PASSWORD_HASH") {
                "password hash"
            } else if k.ends_with("_PASSWORD") {
                "password"
            } else if k.ends_with("_CLIENT_SECRET") {
                "client secret"
            } else {
                "signing key"
            };
            (kind, k.to_owned(), v.to_owned())
        })
        .collect()
}

/// An admin token like `real` but expired an hour ago, signed with the test bed's key.
fn expired_admin_token(tb: &Testbed, real: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = real.split('.').collect();
    let header: jsonwebtoken::Header =
        serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let now = claims["iat"].as_i64().unwrap();
    claims["iat"] = (now - 7200).into();
    claims["exp"] = (now - 3600).into();
    let key =
        jsonwebtoken::EncodingKey::from_secret(tb.var("GATEHOUSE_ADMIN_SIGNING_KEY").as_bytes());
    jsonwebtoken::encode(&header, &claims, &key.unwrap()).unwrap()
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn no_token_code_cookie_password_or_client_secret_reaches_a_log_a_response_or_a_cli_output() {
    let tb = Testbed::load();
    let gh = Gatehouse::start_logging(&config(&tb), PORT, "http", true, "trace");
    let mut run = Run {
        c: Collection::default(),
        s: Secrets::default(),
        http: tb.http_with(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())),
        n: 0,
    };
    for (kind, name, value) in testbed_secrets() {
        run.s.add(kind, &name, &value);
    }
    run.s.add("session key", "session.key", SESSION_KEY);
    let codec = gatehouse_server::session::CookieCodec::new(SESSION_KEY.as_bytes()).unwrap();
    let callback_prefix = format!("{BASE}/auth/callback");

    // --- The browser: sign-in with Dex, the UI, the kubeconfig download, refusals, sign-out.
    let mut b = Browser::new(&tb);
    let first = b
        .get(&format!("{BASE}/auth/login?return_to=%2Fui%2Fwhoami"))
        .await;
    assert_eq!(first.status, 303);
    let login = b
        .follow(first.location.as_deref().unwrap(), |_| false)
        .await
        .unwrap();
    let callback = b
        .submit_login(&tb, &login, "alice", &callback_prefix)
        .await
        .err()
        .expect("Dex redirects to gatehouse's callback");
    run.s.add(
        "authorization code",
        "alice's browser sign-in",
        &code_of(&callback),
    );
    let landed = b.follow(&callback, |_| false).await.unwrap();
    assert_eq!(landed.url, format!("{BASE}/ui/whoami"));
    assert!(landed.body.contains("alice@example.com"), "{}", landed.body);
    let session_value = (0..8)
        .map(|i| {
            let name = if i == 0 {
                SESSION_COOKIE.to_owned()
            } else {
                format!("{SESSION_COOKIE}.{i}")
            };
            b.cookie(BASE, &name).cloned().unwrap_or_default()
        })
        .collect::<String>();
    let session: serde_json::Value = serde_json::from_slice(
        &codec
            .open(SESSION_COOKIE, &session_value)
            .expect("the session cookie opens with the session key"),
    )
    .unwrap();
    assert!(
        run.tokens_of("Dex", "the browser session's", &session) >= 2,
        "the session holds the ID and refresh tokens"
    );
    let home = b.get(&format!("{BASE}/")).await;
    assert!(home.status == 200 || home.status == 303, "{}", home.status);
    for path in [
        "/ui/whoami",
        "/ui/access?namespace=team-a",
        "/ui/cli",
        "/ui/kubeconfig",
    ] {
        let page = b.get(&format!("{BASE}{path}")).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
    // The session cookie never authenticates the API or the proxy.
    let api = b.get(&format!("{BASE}/v1/whoami")).await;
    assert_eq!(api.status, 401);
    let proxy = b
        .get(&format!("{BASE}/api/v1/namespaces/team-a/configmaps"))
        .await;
    assert_eq!(proxy.status, 401);
    // The callback replayed: the flow is gone (and the code used).
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, 400);
    // A sign-out from another origin is refused; then the real one.
    let cross = b
        .request(
            reqwest::Method::POST,
            &format!("{BASE}/auth/logout"),
            None,
            Some("https://evil.example"),
        )
        .await;
    assert!(
        cross.status >= 400,
        "a cross-site sign-out is refused: {}",
        cross.status
    );
    let out = b
        .request(
            reqwest::Method::POST,
            &format!("{BASE}/auth/logout"),
            None,
            Some(BASE),
        )
        .await;
    assert_eq!(out.status, 303);
    // A second sign-in whose callback comes back with a forged state; then the code of the first
    // sign-in under this flow's state (a replayed code: Dex refuses it).
    let mut forged = Browser::new(&tb);
    let start = forged.get(&format!("{BASE}/auth/login")).await;
    let login = forged
        .follow(start.location.as_deref().unwrap(), |_| false)
        .await
        .unwrap();
    let callback2 = forged
        .submit_login(&tb, &login, "bob", &callback_prefix)
        .await
        .err()
        .expect("Dex redirects to gatehouse's callback");
    run.s.add(
        "authorization code",
        "bob's browser sign-in",
        &code_of(&callback2),
    );
    let state_re = regex::Regex::new(r"state=[^&]+").unwrap();
    let page = forged
        .get(&state_re.replace(&callback2, "state=forged-state-value"))
        .await;
    assert_eq!(page.status, 400, "a forged state is refused");
    let state = url::Url::parse(&callback2)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let page = forged
        .get(&state_re.replace(&callback, format!("state={state}").as_str()))
        .await;
    assert_eq!(page.status, 400, "a used code is refused: {}", page.body);
    // Bad cookies: garbage, and a real (signed-out) session cut short.
    for (what, cookie) in [
        (
            "garbage session cookie",
            format!("{SESSION_COOKIE}=garbage-value-not-sealed"),
        ),
        (
            "truncated session cookie",
            format!(
                "{SESSION_COOKIE}={}",
                &session_value[..session_value.len() / 2]
            ),
        ),
    ] {
        let resp = run
            .http
            .get(format!("{BASE}/ui/whoami"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let (status, _, _) = run.rec(&format!("GET /ui/whoami ({what})"), resp).await;
        assert_eq!(status, 303, "{what}: sent to sign in");
    }
    let browser_pages: Vec<support::Page> =
        b.history.iter().chain(&forged.history).cloned().collect();
    run.cookies_of(&browser_pages);

    // --- The API with bearer tokens: right, wrong, expired, garbled, foreign, in the query.
    let cli = tb.var("DEX_CLI_CLIENT_ID");
    let alice = tb
        .token_response(
            "alice",
            &cli,
            None,
            "audience:server:client_id:kubernetes offline_access",
        )
        .await;
    run.tokens_of("Dex", "alice's password grant", &alice);
    let alice_id = alice["id_token"].as_str().unwrap().to_owned();
    let bob = tb
        .token_response("bob", &cli, None, "audience:server:client_id:kubernetes")
        .await;
    run.tokens_of("Dex", "bob's password grant", &bob);
    let bob_id = bob["id_token"].as_str().unwrap().to_owned();
    let foreign = tb.id_token_cluster_only("carol").await;
    run.s
        .add("Dex ID token", "carol's, cluster audience only", &foreign);
    let mut garbled = alice_id.clone();
    let tail = garbled.split_off(garbled.len() - 6);
    garbled.push_str(if tail == "AAAAAA" { "BBBBBB" } else { "AAAAAA" });
    run.s.add(
        "garbled token",
        "alice's ID token, signature changed",
        &garbled,
    );
    let made_up = format!("opaque-made-up-token-{}", support::unique("leak"));
    run.s
        .add("made-up token", "an opaque bearer token", &made_up);

    let cms = "/api/v1/namespaces/team-a/configmaps";
    run.expect(
        "GET configmaps in team-a (alice, mapped)",
        cms,
        &alice_id,
        200,
    )
    .await;
    run.expect(
        "GET secrets in team-a (alice, denied)",
        "/api/v1/namespaces/team-a/secrets",
        &alice_id,
        403,
    )
    .await;
    run.expect(
        "GET configmaps in team-b (bob, fall-through)",
        "/api/v1/namespaces/team-b/configmaps",
        &bob_id,
        200,
    )
    .await;
    run.expect(
        "GET configmaps in team-a (bob, fall-through, denied)",
        cms,
        &bob_id,
        403,
    )
    .await;
    run.expect("GET /v1/whoami (alice)", "/v1/whoami", &alice_id, 200)
        .await;
    run.expect("GET configmaps (foreign audience)", cms, &foreign, 401)
        .await;
    run.expect("GET configmaps (garbled signature)", cms, &garbled, 401)
        .await;
    run.expect("GET configmaps (made-up opaque token)", cms, &made_up, 401)
        .await;
    let refresh = alice["refresh_token"].as_str().unwrap().to_owned();
    run.expect(
        "GET configmaps (a refresh token as bearer)",
        cms,
        &refresh,
        401,
    )
    .await;
    let resp = run
        .http
        .get(format!("{BASE}{cms}?access_token={alice_id}"))
        .send()
        .await
        .unwrap();
    let (st, _, _) = run
        .rec("GET configmaps (token in ?access_token=)", resp)
        .await;
    assert!(st == 400 || st == 401, "{st}");
    let resp = run
        .http
        .get(format!("{BASE}/ui/whoami?access_token={alice_id}"))
        .send()
        .await
        .unwrap();
    run.rec("GET /ui/whoami (token in ?access_token=)", resp)
        .await;

    // --- The admin: a wrong password, the right one, its token, an expired one, the UI login.
    let password = tb.var("GATEHOUSE_ADMIN_PASSWORD");
    let resp = run
        .http
        .post(format!("{BASE}/v1/admin/login"))
        .json(&serde_json::json!({"password": format!("{password}-wrong")}))
        .send()
        .await
        .unwrap();
    let (st, _, _) = run.rec("POST /v1/admin/login (wrong password)", resp).await;
    assert_eq!(st, 401);
    let resp = run
        .http
        .post(format!("{BASE}/v1/admin/login"))
        .json(&serde_json::json!({"password": password}))
        .send()
        .await
        .unwrap();
    let (st, body, item) = run.rec("POST /v1/admin/login (right password)", resp).await;
    assert_eq!(st, 200);
    let admin_token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    run.s
        .add("admin token", "POST /v1/admin/login", &admin_token);
    run.s.allow(&admin_token, &item);
    run.expect(
        "GET namespaces (admin)",
        "/api/v1/namespaces",
        &admin_token,
        200,
    )
    .await;
    let expired = expired_admin_token(&tb, &admin_token);
    run.s.add(
        "expired admin token",
        "re-signed an hour in the past",
        &expired,
    );
    let (st, body) = run
        .get_bearer(
            "GET namespaces (expired admin token)",
            "/api/v1/namespaces",
            &expired,
        )
        .await;
    assert_eq!(st, 401, "{body}");
    for (what, pw) in [
        ("wrong password", format!("{password}-wrong")),
        ("right password", password.clone()),
    ] {
        let resp = run
            .http
            .post(format!("{BASE}/ui/admin-login"))
            .header("origin", BASE)
            .form(&[("password", pw)])
            .send()
            .await
            .unwrap();
        let cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| {
                v.to_str()
                    .ok()?
                    .split(';')
                    .next()?
                    .split_once('=')
                    .map(|(_, v)| v.to_owned())
            })
            .filter(|v| v.len() >= 12)
            .collect();
        let (_, _, item) = run
            .rec(&format!("POST /ui/admin-login ({what})"), resp)
            .await;
        for v in cookies {
            run.s.add("cookie", "the admin's UI session", &v);
            run.s.allow(&v, &item);
        }
    }
    for path in ["/v1/config", "/healthz", "/readyz", "/metrics"] {
        let resp = run.http.get(format!("{BASE}{path}")).send().await.unwrap();
        run.rec(&format!("GET {path}"), resp).await;
    }

    // --- The CLI: SSO login, kubeconfig, the exec plugin, kubectl, a refresh, admin, logout.
    let m = Machine::new(&tb);
    let sso = sso_login_full(&tb, &m, BASE, "alice", &[]).await;
    run.c
        .add("CLI gatehouse login --sso stdout", sso.stdout.clone());
    run.c
        .add("CLI gatehouse login --sso stderr", sso.stderr.clone());
    cli_pages(&mut run.c, &sso.pages, &sso.callback);
    run.s.add(
        "authorization code",
        "the CLI's SSO login",
        &code_of(&sso.callback),
    );
    assert!(
        run.tokens_of("Dex", "the CLI cache's", &m.cache()) >= 2,
        "token and refresh token cached"
    );
    let cli_token = m.entry()["token"].as_str().unwrap().to_owned();
    let o = m.run(&["kubeconfig", BASE, "--certificate-authority", &m.ca]);
    assert!(o.status.success(), "{:?}", text(&o));
    run.out("gatehouse kubeconfig", &o);
    let o = m.run(&["token", "--server", BASE]);
    let (stdout, _, item) = run.out("gatehouse token", &o);
    assert!(stdout.contains("ExecCredential"), "{stdout}");
    run.s.allow(&cli_token, &item);
    // kubectl sends no credential to this plain-HTTP gatehouse (401 "You must be logged in"):
    // the kubectl path is left to the HTTPS e2e tests; here the CLI's token goes through the API
    // as a bearer, and `gatehouse token` (the exec plugin) runs as kubectl would run it.
    run.expect(
        "GET configmaps in team-a (the CLI's token)",
        "/api/v1/namespaces/team-a/configmaps",
        &cli_token,
        200,
    )
    .await;
    let o = m.run(&["whoami"]);
    run.out("gatehouse whoami", &o);
    m.expire();
    let o = m.run(&["token", "--server", BASE]);
    let (stdout, _, item) = run.out("gatehouse token after the token expired (refresh)", &o);
    assert!(
        o.status.success() && m.refreshes() >= 1,
        "a refresh: {:?}",
        text(&o)
    );
    let refreshed = m.entry()["token"].as_str().unwrap().to_owned();
    assert!(
        stdout.contains(&refreshed),
        "the plugin prints the refreshed token"
    );
    run.tokens_of("Dex", "the CLI cache's refreshed", &m.cache());
    run.s.allow(&refreshed, &item);
    let o = m.admin_login(BASE, &format!("{password}-wrong"), &[]);
    assert!(!o.status.success());
    run.out("gatehouse login --admin (wrong password)", &o);
    let o = m.admin_login(BASE, &password, &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    run.out("gatehouse login --admin (right password)", &o);
    run.tokens_of("admin", "the CLI cache's", &m.cache());
    let o = m.run(&["logout", BASE]);
    run.out("gatehouse logout", &o);

    // --- gatehouse's own log, the last item.
    std::thread::sleep(Duration::from_millis(300));
    let log = gh.log();
    run.c.add("gatehouse log", log.clone());

    // The collection is not trivial: every part of the run is in it.
    let responses = run.c.count("response ");
    let commands = run.c.count("command ");
    assert!(responses >= 40, "responses recorded: {responses}");
    assert!(
        commands >= 14,
        "CLI outputs recorded (stdout and stderr of 7 runs): {commands}"
    );
    assert!(run.c.count("CLI loopback page") >= 2);
    for line in [
        "browser sign-in",
        "refused an OIDC token",
        "admin signed in",
        "admin sign-in with a wrong password",
    ] {
        assert!(log.contains(line), "the log has `{line}`");
    }
    let log_lines = log.lines().count();
    assert!(
        log_lines > 500 && log.contains("\"level\":\"TRACE\""),
        "a trace log ({log_lines} lines)"
    );
    assert!(
        log.contains("5556"),
        "the IdP connections (code exchange, keys) are in the log"
    );
    assert!(
        log.contains("6443"),
        "the proxy's upstream connections are in the log"
    );
    for kind in [
        "password",
        "client secret",
        "signing key",
        "session key",
        "authorization code",
        "cookie",
        "admin token",
        "expired admin token",
        "garbled token",
        "made-up token",
        "Dex ID token",
        "Dex access token",
        "Dex refresh token",
    ] {
        assert!(run.s.count(kind) >= 1, "no {kind} gathered");
    }
    assert!(run.s.count("authorization code") >= 3);
    assert!(
        run.s.count("Dex refresh token") >= 3,
        "browser, grant and CLI refresh tokens"
    );
    assert!(run.s.contains(&tb.var("DEX_WEB_CLIENT_SECRET")));

    let leaks = find_leaks(&run.c, &run.s);
    eprintln!(
        "searched {} collected items ({} responses, {} command outputs, {} log lines, {} bytes) for {} secrets in {} spellings: {} found",
        run.c.items().len(),
        responses,
        commands,
        log_lines,
        run.c.bytes(),
        run.s.items().len(),
        run.s.needles(),
        leaks.len()
    );
    assert!(
        leaks.is_empty(),
        "secrets leaked ({}):\n{}",
        leaks.len(),
        leaks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
