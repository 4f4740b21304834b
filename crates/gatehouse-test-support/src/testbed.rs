//! The shared test bed (`testbed/up`): its environment file, tokens from its Dex, kubectl,
//! kubeconfigs, the kube-apiserver's audit log, and the admin's sign-ins. Only the tests marked
//! `#[ignore = "needs testbed"]` use it.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::workspace_root;

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

    /// A test bed from given variables (for tests of this crate, which need no test bed).
    pub fn from_vars(vars: &[(&str, &str)]) -> Self {
        Self {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
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

    /// An ID token of Keycloak's realm `gatehouse` for a fixture user (password grant with the
    /// CLI client, whose audience mapper adds the cluster's audience).
    pub async fn keycloak_id_token(&self, user: &str) -> String {
        let (email, password) = self.credentials(user);
        self.keycloak_password_grant(&email, &password).await
    }

    /// An ID token of Keycloak's realm `gatehouse` for `username` (password grant, CLI client).
    pub async fn keycloak_password_grant(&self, username: &str, password: &str) -> String {
        let resp = self
            .http()
            .post(self.var("KEYCLOAK_TOKEN_URL"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", self.var("KEYCLOAK_CLI_CLIENT_ID").as_str()),
                ("username", username),
                ("password", password),
                ("scope", "openid email profile"),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "Keycloak refused the password grant: {}",
            resp.status()
        );
        let v: serde_json::Value = resp.json().await.unwrap();
        v["id_token"].as_str().unwrap().to_owned()
    }

    /// An ID token for a fixture user requested by a given client.
    pub async fn id_token_for_client(
        &self,
        user: &str,
        client_id: &str,
        client_secret: Option<&str>,
        extra_scope: &str,
    ) -> String {
        let v = self
            .token_response(user, client_id, client_secret, extra_scope)
            .await;
        v["id_token"].as_str().unwrap().to_owned()
    }

    /// Dex's whole token response (ID, access and, with `offline_access`, refresh token) to
    /// a password grant for a fixture user by a given client.
    pub async fn token_response(
        &self,
        user: &str,
        client_id: &str,
        client_secret: Option<&str>,
        extra_scope: &str,
    ) -> serde_json::Value {
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
        resp.json().await.unwrap()
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

/// A `SelfSubjectReview` at `base` (the kube-apiserver, or a gatehouse in front of it) with
/// `token`: the status and the body (JSON, or `null` when it is not).
pub async fn self_subject_review(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    let resp = http
        .post(format!(
            "{base}/apis/authentication.k8s.io/v1/selfsubjectreviews"
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
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
