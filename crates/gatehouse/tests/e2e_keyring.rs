//! The token cache in the OS keyring, end to end: a private D-Bus session with GNOME Keyring's
//! real Secret Service daemon, the real `gatehouse` binary as server and CLI, the test bed's
//! Dex, kube-apiserver and kubectl (which runs `gatehouse token` from PATH, in the same
//! session). `secret-tool` (libsecret) looks at the keyring from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support as support;

use support::machine::{Machine, assert_no_secret, config, sso_login};
use support::secret_service::SecretService;
use support::{Gatehouse, Testbed, text};

fn account(m: &Machine) -> String {
    m.dir.path().join("xdg/gatehouse").display().to_string()
}

fn keyring_cache(ss: &SecretService, m: &Machine) -> serde_json::Value {
    let secret = ss
        .lookup(&account(m))
        .expect("gatehouse's item is in the keyring");
    serde_json::from_str(&secret).unwrap()
}

fn only_token(cache: &serde_json::Value) -> String {
    let entries = cache["entries"].as_object().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.values().next().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn exec_token(m: &Machine, server: &str) -> String {
    let out = m.run(&["token", "--server", server]);
    assert!(out.status.success(), "{:?}", text(&out));
    let cred: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    cred["status"]["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn keyring_holds_the_tokens_when_a_secret_service_is_reachable() {
    let tb = Testbed::load();
    let gh = Gatehouse::start(&config(&tb), "https", true);
    let ss = SecretService::start();
    let mut m = Machine::new(&tb);
    m.bus = Some(ss.address.clone());

    // A file-mode sign-in first, as on a machine that had no keyring until now.
    let err = sso_login(&tb, &m, &gh.url, "alice", &["--token-cache", "file"]).await;
    assert!(
        err.contains(&format!("Token cached in {}", m.cache_file().display())),
        "{err}"
    );
    let file_token = m.entry()["token"].as_str().unwrap().to_owned();
    assert!(
        ss.lookup(&account(&m)).is_none(),
        "file mode left the keyring alone"
    );

    // `auto` finds the Secret Service, no item in it yet, and still serves the file's token.
    assert_eq!(exec_token(&m, &gh.url), file_token);

    // Expired: one refresh, and the cache moves into the keyring; no copy stays on disk.
    m.expire();
    let refreshed = exec_token(&m, &gh.url);
    assert_ne!(refreshed, file_token);
    assert_eq!(m.refreshes(), 1);
    assert!(!m.cache_file().exists(), "tokens.json must be gone");
    assert_eq!(only_token(&keyring_cache(&ss, &m)), refreshed);
    let search = ss
        .command("secret-tool")
        .args(["search", "service", "gatehouse"])
        .output()
        .unwrap();
    // (The output holds the secret: not printed on failure.)
    assert!(
        String::from_utf8_lossy(&search.stdout)
            .contains(&format!("label = gatehouse token cache ({})", account(&m))),
        "the item's label names gatehouse and the cache folder"
    );

    // kubectl through the exec plugin reads the keyring (no refresh: the token is valid).
    m.add_context(&gh.url);
    let o = m.configmaps("gatehouse", "team-a");
    assert!(o.contains("configmap/hello"), "{o}");
    assert_eq!(m.refreshes(), 1);

    // whoami says where the tokens are.
    let out = m.run(&["whoami"]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.contains("Token cache:       the OS keyring (Secret Service item service=gatehouse"),
        "{o}"
    );
    assert_no_secret(&format!("{o}{e}"), &[&refreshed]);

    // logout removes the item.
    let out = m.run(&["logout", &gh.url]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(ss.lookup(&account(&m)).is_none(), "logout removes the item");

    // A new sign-in with `auto` goes straight into the keyring; no file is written.
    let err = sso_login(&tb, &m, &gh.url, "alice", &[]).await;
    assert!(
        err.contains("Token cached in the OS keyring (Secret Service item service=gatehouse"),
        "{err}"
    );
    assert!(!m.cache_file().exists());
    let token = only_token(&keyring_cache(&ss, &m));
    assert_eq!(exec_token(&m, &gh.url), token);
    // `--token-cache keyring` insists on the keyring and finds the same token.
    let out = m.run(&["token", "--server", &gh.url, "--token-cache", "keyring"]);
    assert!(out.status.success(), "{:?}", text(&out));

    // A keyring item that is not a gatehouse cache: a clear error naming the item and how to
    // remove it; nothing of its content printed; no panic.
    ss.store(&account(&m), "{\"SECRET-CONTENT\": 1");
    let out = m.run(&["token", "--server", &gh.url]);
    let (o, e) = text(&out);
    assert!(!out.status.success() && o.is_empty(), "{o}{e}");
    assert!(
        e.contains("the token cache in the OS keyring")
            && e.contains("is corrupted or not a gatehouse token cache")
            && e.contains("hint: remove the item (`secret-tool clear service gatehouse username"),
        "{e}"
    );
    assert!(
        !e.contains("SECRET-CONTENT") && !e.contains("panicked"),
        "{e}"
    );
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn without_a_secret_service_auto_uses_the_file_and_keyring_is_refused() {
    let tb = Testbed::load();
    let gh = Gatehouse::start(&config(&tb), "https", true);
    let password = tb.var("GATEHOUSE_ADMIN_PASSWORD");

    // No session bus at all.
    let m = Machine::new(&tb);
    let out = m.admin_login(&gh.url, &password, &["--token-cache", "keyring"]);
    let (o, e) = text(&out);
    assert!(!out.status.success() && o.is_empty(), "{o}{e}");
    assert!(
        e.contains("cannot reach the OS keyring: no D-Bus session bus")
            && e.contains("hint:")
            && e.contains("--token-cache file"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert!(!m.cache_file().exists());

    // A session bus with no Secret Service on it: `keyring` says it cannot open a session; `auto`
    // uses the 0600 file.
    let ss = SecretService::without_secret_service();
    let mut m = Machine::new(&tb);
    m.bus = Some(ss.address.clone());
    let out = m.admin_login(&gh.url, &password, &["--token-cache", "keyring"]);
    let (o, e) = text(&out);
    assert!(!out.status.success() && o.is_empty(), "{o}{e}");
    assert!(
        e.contains("cannot read from the OS keyring: cannot open a Secret Service session")
            && e.contains("--token-cache file"),
        "{e}"
    );
    let out = m.admin_login(&gh.url, &password, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        e.contains(&format!("Token cached in {}.", m.cache_file().display())),
        "{e}"
    );
    assert_no_secret(&format!("{o}{e}"), &[&password]);
    let who = m.run(&["whoami", &gh.url, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(v["gatehouse"]["authenticatedBy"], "admin");
    assert_eq!(v["cache"], m.cache_file().display().to_string());

    // A desktop-like bus whose keyring is locked (D-Bus starts gnome-keyring, which cannot
    // create or unlock the keyring without a prompt): `keyring` fails at the write and says
    // so; `auto` writes the file and says why, and the token then works from there.
    let ss = SecretService::with_locked_keyring();
    let mut m = Machine::new(&tb);
    m.bus = Some(ss.address.clone());
    let out = m.admin_login(&gh.url, &password, &["--token-cache", "keyring"]);
    let (o, e) = text(&out);
    assert!(!out.status.success() && o.is_empty(), "{o}{e}");
    assert!(
        e.contains("cannot write to the OS keyring") && e.contains("hint: unlock your keyring"),
        "{e}"
    );
    assert!(!m.cache_file().exists());
    let out = m.admin_login(&gh.url, &password, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        e.contains(&format!(
            "Token cached in {} (the OS keyring refused it: ",
            m.cache_file().display()
        )),
        "{e}"
    );
    let token = m.entry()["token"].as_str().unwrap().to_owned();
    let out = m.run(&["token", "--server", &gh.url]);
    assert!(out.status.success(), "{:?}", text(&out));
    let cred: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cred["status"]["token"], token.as_str());
}
