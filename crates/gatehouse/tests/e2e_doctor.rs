//! `gatehouse doctor` against the test bed, healthy and broken on purpose: each break must be
//! named at the right step, with a fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::config::ServerConfig;
use support::{Gatehouse, Testbed};

fn config(tb: &Testbed, issuer: &str, cli_client: &str, connector: &str) -> String {
    ServerConfig::new(tb)
        .public_url("https://127.0.0.1:8443")
        .oidc_client(issuer, cli_client)
        .oidc_yaml(&format!(
            "additionalScopes: [groups]\nadditionalParameters: {{ connector_id: {connector} }}"
        ))
        .build()
}

struct Doctor {
    ok: bool,
    exit_ok: bool,
    steps: Vec<serde_json::Value>,
    stdout: String,
}

impl Doctor {
    fn step(&self, name: &str) -> &serde_json::Value {
        self.steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {}", self.stdout))
    }
    fn verdict(&self, name: &str) -> &str {
        self.step(name)["verdict"].as_str().unwrap()
    }
    fn fix(&self, name: &str) -> String {
        self.step(name)["fix"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn doctor(
    tb: &Testbed,
    gh: &Gatehouse,
    token: Option<&str>,
    with_ca: bool,
    apiserver: bool,
) -> Doctor {
    let dir = support::tempdir::TempDir::new("doctor");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["doctor", "--server", &gh.url, "--output", "json"])
        .env("XDG_CONFIG_HOME", dir.path())
        .env_remove("GATEHOUSE_SERVER");
    if with_ca {
        cmd.args(["--certificate-authority", &tb.var("TESTBED_CA_FILE")]);
    }
    if let Some(t) = token {
        let f = dir.path().join("token");
        std::fs::write(&f, t).unwrap();
        cmd.arg("--token-file").arg(&f);
    }
    if apiserver {
        cmd.args([
            "--apiserver",
            &tb.var("KUBE_APISERVER_URL"),
            "--apiserver-certificate-authority",
            &tb.var("TESTBED_CA_FILE"),
        ]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if let Some(t) = token {
        assert!(
            !stdout.contains(t) && !String::from_utf8_lossy(&out.stderr).contains(t),
            "doctor must never print the token"
        );
    }
    Doctor {
        ok: v["ok"].as_bool().unwrap(),
        exit_ok: out.status.success(),
        steps: v["steps"].as_array().unwrap().clone(),
        stdout,
    }
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn healthy_installation_passes_every_step() {
    let tb = Testbed::load();
    let gh = Gatehouse::start(
        &config(&tb, &tb.var("DEX_ISSUER"), "gatehouse-cli", "local"),
        "https",
        true,
    );
    let token = tb
        .id_token("alice", "audience:server:client_id:kubernetes")
        .await;
    let d = doctor(&tb, &gh, Some(&token), true, true);
    assert!(d.ok && d.exit_ok, "{}", d.stdout);
    for s in &d.steps {
        assert_eq!(s["verdict"], "pass", "{s}");
    }
    assert!(
        d.step("Kubernetes through gatehouse")["detail"]
            .as_str()
            .unwrap()
            .starts_with("system:serviceaccount:team-a:dev")
    );
    assert!(
        d.step("Kubernetes directly")["detail"]
            .as_str()
            .unwrap()
            .starts_with("oidc:alice@example.com")
    );
    assert_eq!(d.step("mapped ServiceAccounts")["detail"], "team-a/dev");
    assert!(
        d.step("token audiences")["detail"]
            .as_str()
            .unwrap()
            .contains("kubernetes")
    );
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn broken_installations_name_the_step_and_the_fix() {
    let tb = Testbed::load();
    let dex = tb.var("DEX_ISSUER");
    let alice = tb.id_token("alice", "").await;

    // Wrong client ID.
    let gh = Gatehouse::start(&config(&tb, &dex, "no-such-client", "local"), "https", true);
    let d = doctor(&tb, &gh, None, true, false);
    assert!(!d.ok && !d.exit_ok);
    assert_eq!(
        d.verdict("client IDs known to the IdP"),
        "fail",
        "{}",
        d.stdout
    );
    assert!(
        d.step("client IDs known to the IdP")["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-client")
    );
    assert!(
        d.fix("client IDs known to the IdP")
            .contains("oidc.cliClientId")
    );
    // No token: the token steps are skipped, not passed.
    assert_eq!(d.verdict("gatehouse's view"), "skip");
    drop(gh);

    // A static parameter the IdP refuses.
    let gh = Gatehouse::start(
        &config(&tb, &dex, "gatehouse-cli", "no-such-connector"),
        "https",
        true,
    );
    let d = doctor(&tb, &gh, None, true, false);
    assert_eq!(
        d.verdict("static parameters accepted"),
        "fail",
        "{}",
        d.stdout
    );
    assert!(
        d.fix("static parameters accepted")
            .contains("oidc.additionalParameters")
    );

    // Untrusted CA: the first step fails and says to pass the CA.
    let d = doctor(&tb, &gh, None, false, false);
    assert_eq!(d.verdict("server reachable"), "fail");
    assert!(
        d.fix("server reachable")
            .contains("--certificate-authority")
    );
    drop(gh);

    let gh = Gatehouse::start(&config(&tb, &dex, "gatehouse-cli", "local"), "https", true);
    // Missing audience: a token for the cluster's client only; gatehouse does not accept it.
    let cluster_only = tb.id_token_cluster_only("alice").await;
    let d = doctor(&tb, &gh, Some(&cluster_only), true, true);
    assert_eq!(d.verdict("token audiences"), "fail", "{}", d.stdout);
    assert!(d.fix("token audiences").contains("oidc.audiences"));
    assert_eq!(d.verdict("gatehouse's view"), "fail");
    assert_eq!(
        d.verdict("Kubernetes directly"),
        "pass",
        "the cluster itself accepts its own audience"
    );

    // Missing the cluster's audience: gatehouse accepts the token, the kube-apiserver does not,
    // and doctor says where to look.
    let no_cluster = tb.id_token_without_cluster_audience("bob").await;
    let d = doctor(&tb, &gh, Some(&no_cluster), true, true);
    assert_eq!(d.verdict("gatehouse's view"), "pass", "{}", d.stdout);
    assert_eq!(d.verdict("Kubernetes directly"), "fail", "{}", d.stdout);
    assert_eq!(
        d.verdict("Kubernetes through gatehouse"),
        "fail",
        "bob falls through with the same token"
    );
    assert!(
        d.fix("Kubernetes directly").contains("audience"),
        "{}",
        d.fix("Kubernetes directly")
    );

    // Skewed clock: a crafted token issued ten minutes in the future.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(alice.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["iat"] = (now + 600).into();
    claims["exp"] = (now + 4200).into();
    let parts: Vec<&str> = alice.split('.').collect();
    let skewed = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let d = doctor(&tb, &gh, Some(&skewed), true, false);
    assert_eq!(d.verdict("token expiry and clock"), "fail", "{}", d.stdout);
    assert!(
        d.step("token expiry and clock")["detail"]
            .as_str()
            .unwrap()
            .contains("in the future")
    );
    assert!(d.fix("token expiry and clock").contains("clocks"));
    assert_eq!(
        d.verdict("gatehouse's view"),
        "fail",
        "gatehouse refuses the altered token"
    );
    drop(gh);

    // IdP down.
    let dead = format!("https://127.0.0.1:{}/dex", support::free_port());
    let gh = Gatehouse::start(
        &config(&tb, &dead, "gatehouse-cli", "local"),
        "https",
        false,
    );
    let d = doctor(&tb, &gh, None, true, false);
    // gatehouse itself says it is not ready, and why: before any IdP step runs.
    assert_eq!(d.verdict("server ready"), "fail", "{}", d.stdout);
    assert!(
        d.step("server ready")["detail"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{}",
        d.stdout
    );
    assert!(d.fix("server ready").contains("oidc.issuerUrl"));
    assert_eq!(d.verdict("IdP discovery"), "fail", "{}", d.stdout);
    assert!(
        d.step("IdP discovery")["detail"]
            .as_str()
            .unwrap()
            .contains(&dead)
    );
}
