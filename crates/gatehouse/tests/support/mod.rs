//! Shared helpers for the integration tests: start the real `gatehouse` binary, read the test
//! bed's environment, get tokens from the real Dex, run the real kubectl.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod config;
pub mod hostile;
pub mod machine;
pub mod secret_service;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The test bed's `testbed/.state/env`, parsed.
pub struct Testbed {
    vars: HashMap<String, String>,
}

impl Testbed {
    /// Loads the env file; panics with a hint when the test bed is not up.
    pub fn load() -> Self {
        let path = workspace_root().join("testbed/.state/env");
        assert!(
            path.exists(),
            "{} is missing: run `testbed/up` first (these tests need the test bed)",
            path.display()
        );
        // Let the shell undo its own quoting: source the file and print the environment.
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"set -a; . "$1"; env -0"#)
            .arg("bash")
            .arg(&path)
            .env_clear()
            .output()
            .unwrap();
        let vars = out
            .stdout
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { vars }
    }

    /// One variable.
    pub fn var(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_else(|| {
            panic!(
                "{name} is not in the test bed env (testbed/.state/env): the running test bed \
                     is older than this checkout or was started without that component; run \
                     `testbed/up` (it restarts what changed)"
            )
        })
    }

    /// A fixture user's e-mail and password (`alice`: `ALICE_EMAIL`, `ALICE_PASSWORD`).
    pub fn credentials(&self, user: &str) -> (String, String) {
        let upper = user.to_ascii_uppercase();
        (
            self.var(&format!("{upper}_EMAIL")),
            self.var(&format!("{upper}_PASSWORD")),
        )
    }

    /// Fails the calling test when Keycloak is not running in this test bed: a test that
    /// cannot run fails, it never counts as passed.
    pub fn require_keycloak(&self) {
        assert_eq!(
            self.vars.get("TESTBED_WITH_KEYCLOAK").map(String::as_str),
            Some("1"),
            "Keycloak is not running in this test bed: run testbed/up without TESTBED_WITHOUT_KEYCLOAK"
        );
    }

    /// An HTTP client trusting the test bed CA.
    pub fn http(&self) -> reqwest::Client {
        self.http_with(reqwest::Client::builder())
    }

    /// An HTTP/1.1-only client trusting the test bed CA (for upgrade requests).
    pub fn http1(&self) -> reqwest::Client {
        self.http_with(reqwest::Client::builder().http1_only())
    }

    /// A client from `b` (redirect policy, ...) trusting the test bed CA.
    pub fn http_with(&self, mut b: reqwest::ClientBuilder) -> reqwest::Client {
        let pem = std::fs::read(self.var("TESTBED_CA_FILE")).unwrap();
        b = b.timeout(Duration::from_secs(30));
        for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
            b = b.add_root_certificate(c);
        }
        b.build().unwrap()
    }

    /// An ID token for a fixture user from Dex (password grant with the CLI client), with the
    /// cluster's audience added through Dex's cross-client scope, as a real installation
    /// configures it (the test bed's kube-apiserver accepts only the `kubernetes` audience).
    pub async fn id_token(&self, user: &str, extra_scope: &str) -> String {
        let scope = format!(
            "audience:server:client_id:{} {extra_scope}",
            self.var("DEX_PEER_CLIENT_ID")
        );
        self.id_token_for_client(user, &self.var("DEX_CLI_CLIENT_ID"), None, &scope)
            .await
    }

    /// An ID token for the CLI client only (`aud` is just `gatehouse-cli`): one the
    /// kube-apiserver does not accept.
    pub async fn id_token_without_cluster_audience(&self, user: &str) -> String {
        self.id_token_for_client(user, &self.var("DEX_CLI_CLIENT_ID"), None, "")
            .await
    }

    /// An ID token requested by the cluster's own client (`aud` is just `kubernetes`): one
    /// gatehouse does not accept unless configured to.
    pub async fn id_token_cluster_only(&self, user: &str) -> String {
        self.id_token_for_client(
            user,
            &self.var("DEX_PEER_CLIENT_ID"),
            Some(&self.var("DEX_PEER_CLIENT_SECRET")),
            "",
        )
        .await
    }

    /// An ID token for a fixture user requested by a given client.
    pub async fn id_token_for_client(
        &self,
        user: &str,
        client_id: &str,
        client_secret: Option<&str>,
        extra_scope: &str,
    ) -> String {
        let (email, password) = self.credentials(user);
        let scope = format!("openid email profile groups {extra_scope}");
        let mut form = vec![
            ("grant_type", "password".to_owned()),
            ("client_id", client_id.to_owned()),
            ("username", email),
            ("password", password),
            ("scope", scope.trim().to_owned()),
        ];
        if let Some(s) = client_secret {
            form.push(("client_secret", s.to_owned()));
        }
        let resp = self
            .http()
            .post(self.var("DEX_TOKEN_URL"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "Dex refused the password grant: {}",
            resp.status()
        );
        let v: serde_json::Value = resp.json().await.unwrap();
        v["id_token"].as_str().unwrap().to_owned()
    }
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `gatehouse serve`, stopped on drop.
pub struct Gatehouse {
    child: Child,
    pub url: String,
    pub dir: tempdir::TempDir,
}

pub mod tempdir {
    use std::path::{Path, PathBuf};

    /// A temporary folder removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "gatehouse-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Gatehouse {
    /// Starts gatehouse with `config` (YAML; `{{PORT}}` is replaced by a free port) and waits
    /// until `/healthz` answers. `wait_ready` also waits for `/readyz`.
    pub fn start(config: &str, scheme: &str, wait_ready: bool) -> Self {
        Self::start_on(config, free_port(), scheme, wait_ready)
    }

    /// Like [`Gatehouse::start`] on a given port.
    pub fn start_on(config: &str, port: u16, scheme: &str, wait_ready: bool) -> Self {
        let dir = tempdir::TempDir::new("gh");
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config.replace("{{PORT}}", &port.to_string())).unwrap();
        let log = std::fs::File::create(dir.path().join("gatehouse.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("GATEHOUSE_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut gh = Self {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            dir,
        };
        gh.wait_for(if wait_ready { "/readyz" } else { "/healthz" });
        gh
    }

    fn wait_for(&mut self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.rsplit("//").next().unwrap().to_owned();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gatehouse exited ({status}); log:\n{}", self.log());
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                // Ask with curl-free plain HTTP via a tiny blocking client below.
                if probe(&self.url, path) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not answer {path} within 30 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }

    /// Writes a kubeconfig pointing at this gatehouse with `token`, and returns its path.
    pub fn kubeconfig(&self, tb: &Testbed, name: &str, token: &str) -> PathBuf {
        kubeconfig(
            self.dir.path(),
            name,
            &self.url,
            &tb.var("TESTBED_CA_FILE"),
            token,
        )
    }
}

/// Writes a kubeconfig for `server` with a bearer token.
pub fn kubeconfig(dir: &Path, name: &str, server: &str, ca: &str, token: &str) -> PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: ctx\n  context: {{cluster: c, user: u}}\ncurrent-context: ctx\n"
    )
    .unwrap();
    path
}

/// Runs the test bed's kubectl.
pub fn kubectl(tb: &Testbed, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(tb.var("KUBECTL"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

/// kubectl as the test bed's cluster admin (straight to the kube-apiserver).
pub fn kubectl_admin(tb: &Testbed, args: &[&str]) -> Output {
    kubectl(tb, Path::new(&tb.var("KUBECONFIG_ADMIN")), args)
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocking GET returning whether the answer was 200, trusting any certificate (health probe
/// of our own freshly started server only).
fn probe(url: &str, path: &str) -> bool {
    matches!(get_own_server(&format!("{url}{path}")), Some((200, _)))
}

/// Blocking GET of one of our own freshly started servers (any certificate trusted, 2 s
/// timeout): the status and body, `None` when it did not answer. A thread and runtime of its
/// own, so it works from blocking code inside an async test too.
pub fn get_own_server(target: &str) -> Option<(u16, String)> {
    let target = target.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let resp = client.get(target).send().await.ok()?;
            let status = resp.status().as_u16();
            Some((status, resp.text().await.ok()?))
        })
    })
    .join()
    .ok()
    .flatten()
}

/// The kube-apiserver's audit log (`KUBE_AUDIT_LOG`, level Metadata): what reached the
/// cluster, read from the point where [`AuditLog::mark`] was called.
pub struct AuditLog {
    path: PathBuf,
    offset: u64,
}

impl AuditLog {
    /// Remembers the log's current end.
    pub fn mark(tb: &Testbed) -> Self {
        let path = PathBuf::from(tb.var("KUBE_AUDIT_LOG"));
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        Self { path, offset }
    }

    /// Events since the mark whose `requestURI` contains `needle`, after giving the
    /// kube-apiserver `wait` to write them.
    pub fn events(&self, needle: &str, wait: Duration) -> Vec<serde_json::Value> {
        std::thread::sleep(wait);
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let start = usize::try_from(self.offset).unwrap().min(bytes.len());
        String::from_utf8_lossy(&bytes[start..])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["requestURI"].as_str().is_some_and(|u| u.contains(needle)))
            .collect()
    }
}

/// Signs the admin in with `POST /v1/admin/login` at `base` (the test bed's admin password):
/// the admin token.
pub async fn admin_token(tb: &Testbed, base: &str) -> String {
    let resp: serde_json::Value = tb
        .http()
        .post(format!("{base}/v1/admin/login"))
        .json(&serde_json::json!({"password": tb.var("GATEHOUSE_ADMIN_PASSWORD")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no admin token in {resp}"))
        .to_owned()
}

/// Signs the admin in to the web UI at `base` with `http` (which must not follow redirects):
/// the `Cookie` header value of the session it sets.
pub async fn ui_admin_session(tb: &Testbed, http: &reqwest::Client, base: &str) -> String {
    let signed_in = http
        .post(format!("{base}/ui/admin-login"))
        .header("origin", base)
        .form(&[("password", tb.var("GATEHOUSE_ADMIN_PASSWORD"))])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "the UI's admin sign-in redirects");
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .filter(|kv| !kv.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(!cookie.is_empty(), "a session cookie");
    cookie
}

/// A unique string for request URIs, so audit events can be told apart.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// stdout and stderr of a command, as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A minimal HTTP "browser" for Dex's pages: a cookie jar per origin and manual redirects.
/// Used by the CLI tests to play the user's browser.
pub struct DexBrowser {
    http: reqwest::Client,
    jar: HashMap<String, Vec<(String, String)>>,
}

/// One answer seen by [`DexBrowser`].
pub struct DexPage {
    pub status: u16,
    pub url: String,
    pub location: Option<String>,
    pub body: String,
}

impl DexBrowser {
    /// A browser trusting the test bed CA.
    pub fn new(tb: &Testbed) -> Self {
        let pem = std::fs::read(tb.var("TESTBED_CA_FILE")).unwrap();
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
            b = b.add_root_certificate(c);
        }
        Self {
            http: b.build().unwrap(),
            jar: HashMap::new(),
        }
    }

    /// GET or POST (with a form) one URL, keeping cookies.
    pub async fn request(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> DexPage {
        let parsed = url::Url::parse(url).unwrap();
        let origin = parsed.origin().ascii_serialization();
        let mut req = match form {
            Some(f) => self.http.post(url).form(f),
            None => self.http.get(url),
        };
        if let Some(jar) = self.jar.get(&origin).filter(|j| !j.is_empty()) {
            let header = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", header);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| parsed.join(l.to_str().unwrap()).unwrap().to_string());
        for c in resp.headers().get_all("set-cookie") {
            let first = c.to_str().unwrap().split(';').next().unwrap().to_owned();
            if let Some((k, v)) = first.split_once('=') {
                let jar = self.jar.entry(origin.clone()).or_default();
                jar.retain(|(n, _)| n != k);
                jar.push((k.to_owned(), v.to_owned()));
            }
        }
        let body = resp.text().await.unwrap_or_default();
        DexPage {
            status,
            url: url.to_owned(),
            location,
            body,
        }
    }

    /// Follows redirects from `url` until a page answers or the next URL starts with `stop`
    /// (returned as `Err(url)` without requesting it). A redirect to Dex's bare `/auth`
    /// (connector chooser) gets `connector_id=local` added, as a user picking the password
    /// connector would.
    pub async fn follow(&mut self, url: &str, stop: &str) -> Result<DexPage, String> {
        let mut page = self.request(&with_local_connector(url), None).await;
        for _ in 0..15 {
            match page.location.clone() {
                Some(next) if next.starts_with(stop) => return Err(next),
                Some(next) => page = self.request(&with_local_connector(&next), None).await,
                None => return Ok(page),
            }
        }
        panic!("too many redirects from {url}")
    }

    /// Submits Dex's password form on `page` as `user` and follows the redirects; returns
    /// the first URL that starts with `stop` (the client's redirect URI), or the final page.
    pub async fn submit_login(
        &mut self,
        tb: &Testbed,
        page: &DexPage,
        user: &str,
        stop: &str,
    ) -> Result<DexPage, String> {
        let (email, password) = tb.credentials(user);
        self.submit_form(
            page,
            r#"method="post""#,
            &[("login", &email), ("password", &password)],
            stop,
        )
        .await
    }
}

impl DexBrowser {
    /// Submits the form whose opening tag contains `marker` (for example `id="kc-form-login"`)
    /// with `fields`, and follows the redirects like [`DexBrowser::submit_login`].
    pub async fn submit_form(
        &mut self,
        page: &DexPage,
        marker: &str,
        fields: &[(&str, &str)],
        stop: &str,
    ) -> Result<DexPage, String> {
        let action = form_action(&page.body, &page.url, marker);
        let first = self.request(&action, Some(fields)).await;
        match first.location {
            Some(next) if next.starts_with(stop) => Err(next),
            Some(next) => self.follow(&next, stop).await,
            None => Ok(first),
        }
    }
}

/// The absolute action URL of the form on a page (`body` fetched from `page_url`) whose opening
/// tag contains `marker` (for example `id="kc-form-login"`, or `method="post"` for the first
/// POST form).
pub fn form_action(body: &str, page_url: &str, marker: &str) -> String {
    let tag = regex::Regex::new(r"<form[^>]*>")
        .unwrap()
        .find_iter(body)
        .map(|m| m.as_str())
        .find(|t| t.contains(marker))
        .unwrap_or_else(|| panic!("no form {marker} at {page_url}: {body}"));
    let action = regex::Regex::new(r#"action="([^"]+)""#)
        .unwrap()
        .captures(tag)
        .unwrap_or_else(|| panic!("the form at {page_url} has no action: {tag}"))[1]
        .replace("&amp;", "&");
    url::Url::parse(page_url)
        .unwrap()
        .join(&action)
        .unwrap()
        .to_string()
}

/// Adds `connector_id=local` to a request for Dex's bare `/auth` endpoint that names no
/// connector (Dex would show its connector chooser).
pub fn with_local_connector(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    if u.path().ends_with("/dex/auth") && !u.query_pairs().any(|(k, _)| k == "connector_id") {
        format!("{url}&connector_id=local")
    } else {
        url.to_owned()
    }
}

/// Collects a child's stderr in the background and lets a test wait for a line.
pub struct LineReader {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: std::sync::Arc<std::sync::Mutex<String>>,
    handle: std::thread::JoinHandle<()>,
}

impl LineReader {
    /// Starts reading `stream` line by line.
    pub fn new(stream: impl std::io::Read + Send + 'static) -> Self {
        use std::io::BufRead as _;
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen2 = seen.clone();
        let handle = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                seen2.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Self { rx, seen, handle }
    }

    /// The first line (trimmed) for which `pred` holds, waiting up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if pred(line.trim()) => return line.trim().to_owned(),
                Ok(_) => {}
                Err(_) => panic!(
                    "no matching line within {timeout:?}; output so far:\n{}",
                    self.seen.lock().unwrap()
                ),
            }
        }
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// Waits for the end of the stream (the child exited) and returns everything.
    pub fn finish(self) -> String {
        let _ = self.handle.join();
        self.seen.lock().unwrap().clone()
    }
}
