//! One user's machine for CLI tests: a home, a token cache, a kubeconfig, PATH with the built
//! binary; and the sign-in steps the tests share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::browser::Browser;
use crate::config::ServerConfig;
use crate::process::{LineReader, gatehouse_bin, text};
use crate::tempdir::TempDir;
use crate::testbed::Testbed;

/// A gatehouse server config for Dex (static `connector_id`, a per-user `login_hint`,
/// fall-through, admin sign-in), on a free port.
pub fn config(tb: &Testbed) -> String {
    ServerConfig::new(tb)
        .dex()
        .oidc_yaml(
            "additionalScopes: [groups, \"audience:server:client_id:kubernetes\"]\n\
             additionalParameters: { connector_id: local }\n\
             userParameters:\n  login_hint: { pattern: '[a-z]+@example\\.com' }",
        )
        .yaml("fallThrough: { enabled: true }")
        .admin()
        .build()
}

/// A gatehouse server config for the test bed's Keycloak (realm `gatehouse`, a per-user
/// `login_hint`, fall-through), on a free port.
pub fn keycloak_config(tb: &Testbed) -> String {
    ServerConfig::new(tb)
        .keycloak()
        .oidc_yaml(
            "additionalScopes: [groups]\n\
             userParameters:\n  login_hint: { pattern: '[a-z]+@example\\.com' }",
        )
        .yaml("fallThrough: { enabled: true }")
        .build()
}

/// One user's machine: a home, a token cache, a kubeconfig, PATH with the built binary.
pub struct Machine {
    pub dir: TempDir,
    pub ca: String,
    pub kubectl: String,
    /// The D-Bus session bus the machine's processes see (none by default).
    pub bus: Option<String>,
}

impl Machine {
    pub fn new(tb: &Testbed) -> Self {
        Self {
            dir: TempDir::new("cli"),
            ca: tb.var("TESTBED_CA_FILE"),
            kubectl: tb.var("KUBECTL"),
            bus: None,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn cache_file(&self) -> PathBuf {
        self.dir.path().join("xdg/gatehouse/tokens.json")
    }

    pub fn trace_file(&self) -> PathBuf {
        self.dir.path().join("trace")
    }

    pub fn env(&self, cmd: &mut Command) {
        let bin = gatehouse_bin();
        let bin_dir = bin.parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env_remove("GATEHOUSE_SERVER")
            .env_remove("GATEHOUSE_TOKEN_CACHE")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("KUBECONFIG", self.kubeconfig())
            .env("GATEHOUSE_CLI_TRACE", self.trace_file())
            .env("PATH", path)
            // The machine's keyring is the one the test gives it, or none: the developer's own
            // session bus never leaks in.
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_RUNTIME_DIR");
        if let Some(bus) = &self.bus {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
    }

    pub fn gatehouse(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.args(args);
        self.env(&mut cmd);
        cmd
    }

    /// Starts `gatehouse login ARGS... --certificate-authority CA` (stdin closed, output
    /// piped); returns the process and its stderr, line by line.
    pub fn spawn_login(&self, args: &[&str]) -> (std::process::Child, LineReader) {
        let mut all = vec!["login"];
        all.extend_from_slice(args);
        all.extend(["--certificate-authority", &self.ca]);
        let mut child = self
            .gatehouse(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = LineReader::new(child.stderr.take().unwrap());
        (child, stderr)
    }

    /// `gatehouse login --admin SERVER --password-stdin` with `password` on stdin.
    pub fn admin_login(&self, server: &str, password: &str, extra: &[&str]) -> Output {
        use std::io::Write as _;
        let mut args = vec![
            "login",
            "--admin",
            server,
            "--certificate-authority",
            &self.ca,
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        let mut child = self
            .gatehouse(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may refuse before it reads the password (a broken pipe is fine then).
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes());
        child.wait_with_output().unwrap()
    }

    /// `gatehouse kubeconfig SERVER --certificate-authority CA`: the `gatehouse` context.
    pub fn add_context(&self, server: &str) {
        let out = self.run(&["kubeconfig", server, "--certificate-authority", &self.ca]);
        assert!(out.status.success(), "{:?}", text(&out));
    }

    /// `kubectl --context CONTEXT get configmaps -n NAMESPACE -o name` through the exec
    /// plugin; asserts success and returns the names.
    pub fn configmaps(&self, context: &str, namespace: &str) -> String {
        let out = self.kubectl(&[
            "--context",
            context,
            "get",
            "configmaps",
            "-n",
            namespace,
            "-o",
            "name",
        ]);
        let (o, e) = text(&out);
        assert!(out.status.success(), "kubectl failed: {e}");
        o
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.gatehouse(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    pub fn refreshes(&self) -> usize {
        std::fs::read_to_string(self.trace_file())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("refresh"))
            .count()
    }

    pub fn cache(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.cache_file()).unwrap()).unwrap()
    }

    pub fn write_cache(&self, v: &serde_json::Value) {
        std::fs::write(self.cache_file(), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    /// The only cached entry.
    pub fn entry(&self) -> serde_json::Value {
        let c = self.cache();
        let entries = c["entries"].as_object().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.values().next().unwrap().clone()
    }

    /// Sets `expiresAt` of every entry to the past, keeping the real refresh token.
    pub fn expire(&self) {
        let mut c = self.cache();
        for e in c["entries"].as_object_mut().unwrap().values_mut() {
            e["expiresAt"] = serde_json::json!(1_000_000);
        }
        self.write_cache(&c);
    }
}

/// Fails when any secret (8 characters or more) appears in `haystack`.
pub fn assert_no_secret(haystack: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            s.len() < 8 || !haystack.contains(s),
            "a secret was printed:\n{haystack}"
        );
    }
}

/// `gatehouse login --sso` with the test playing the browser; returns the login's stderr.
pub async fn sso_login(
    tb: &Testbed,
    m: &Machine,
    server: &str,
    user: &str,
    extra: &[&str],
) -> String {
    sso_login_output(tb, m, server, user, extra).await.1
}

/// Like [`sso_login`]; returns the login's stdout and stderr.
pub async fn sso_login_output(
    tb: &Testbed,
    m: &Machine,
    server: &str,
    user: &str,
    extra: &[&str],
) -> (String, String) {
    let done = sso_login_full(tb, m, server, user, extra).await;
    (done.stdout, done.stderr)
}

/// What [`sso_login_full`] saw.
pub struct SsoLogin {
    pub stdout: String,
    pub stderr: String,
    /// The loopback redirect URL Dex sent the browser to (it carries the authorization code).
    pub callback: String,
    /// The pages the browser saw (Dex's and the CLI's loopback listener's).
    pub pages: Vec<crate::browser::Page>,
}

/// Like [`sso_login`]; returns everything it saw.
pub async fn sso_login_full(
    tb: &Testbed,
    m: &Machine,
    server: &str,
    user: &str,
    extra: &[&str],
) -> SsoLogin {
    let mut args = vec!["--sso", server, "--no-browser", "--timeout", "60s"];
    args.extend_from_slice(extra);
    let (mut child, stderr) = m.spawn_login(&args);
    let auth_url = stderr.wait_for(Duration::from_secs(20), |l| {
        l.starts_with(&tb.var("DEX_ISSUER")) && l.contains("/auth?")
    });
    let q: BTreeMap<String, String> = url::Url::parse(&auth_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["client_id"], "gatehouse-cli");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["connector_id"], "local", "the server's static parameter");
    assert!(
        q["scope"].split(' ').any(|s| s == "offline_access"),
        "{q:?}"
    );
    let redirect = q["redirect_uri"].clone();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");

    let mut b = Browser::new(tb);
    // A stray request with a wrong state is refused and does not end the sign-in.
    let stray = b
        .fetch(&format!("{redirect}?code=x&state=wrong"), None)
        .await;
    assert_eq!(stray.status, 400);
    assert!(stray.body.contains("state mismatch"), "{}", stray.body);

    let login = b.follow_to(&auth_url, &redirect).await.unwrap();
    let callback = b
        .submit_login(tb, &login, user, &redirect)
        .await
        .err()
        .expect("Dex redirects to the CLI's loopback listener");
    let done = b.fetch(&callback, None).await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Signed in"), "{}", done.body);
    let status = child.wait().unwrap();
    let err = stderr.finish();
    assert!(status.success(), "login failed:\n{err}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    SsoLogin {
        stdout: out,
        stderr: err,
        callback,
        pages: b.history,
    }
}
