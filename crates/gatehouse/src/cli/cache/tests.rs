//! The token cache's tests: file permissions, keys, refused files, the lock, the folder, the
//! keyring choice and redaction.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use gatehouse_core::protocol::RefreshToken;

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "gatehouse-cache-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&p);
    p
}

fn entry(server: &str, token: &str, updated_at: i64) -> Entry {
    Entry {
        token_type: TokenType::IdToken,
        server: server.to_owned(),
        issuer: Some("https://idp".to_owned()),
        client_id: Some("cli".to_owned()),
        parameters: BTreeMap::from([("connector_id".to_owned(), "local".to_owned())]),
        kind: Kind::Oidc,
        token: token.to_owned(),
        refresh_token: Some(RefreshToken::new("refresh-secret")),
        expires_at: 100,
        ca_pem: None,
        updated_at,
        login_command: format!("gatehouse login --sso {server}"),
    }
}

#[test]
fn round_trip_with_private_permissions() {
    let dir = temp_dir("rt");
    let cache = Cache::in_dir(dir.join("gatehouse"));
    assert!(cache.read().unwrap().entries.is_empty());
    let lock = cache.lock().unwrap();
    let mut f = lock.read().unwrap();
    f.put(entry("https://gh/", "t1", 1));
    lock.write(&f).unwrap();
    drop(lock);
    let mode = fs::metadata(cache.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(dir.join("gatehouse"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let back = cache.read().unwrap();
    assert_eq!(back.for_server("https://gh").unwrap().token, "t1");
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.join("gatehouse"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn key_covers_parameters_and_newest_entry_wins() {
    let mut f = CacheFile::default();
    let a = entry("https://gh", "a", 1);
    let mut b = entry("https://gh", "b", 2);
    b.parameters
        .insert("login_hint".into(), "x@example.com".into());
    assert_ne!(a.key(), b.key());
    f.put(a);
    f.put(b);
    assert_eq!(f.entries.len(), 2);
    assert_eq!(f.for_server("https://gh/").unwrap().token, "b");
    assert_eq!(f.remove_server("https://gh").len(), 2);
    assert!(f.for_server("https://gh").is_none());
}

#[test]
fn corrupted_and_foreign_files_are_refused_without_echoing_content() {
    let dir = temp_dir("corrupt");
    let cache = Cache::in_dir(dir.clone());
    fs::create_dir_all(&dir).unwrap();
    for content in [
        "{not json SECRET-CONTENT".as_bytes(),
        br#"{"version":1,"entries":{"k":{"server":"x"}}}"#,
        br#"{"version":7,"entries":{}}"#,
        br#"{"kind":"Config","apiVersion":"v1"}"#,
        &[0xff, 0xfe, 0x00],
    ] {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(cache.path())
            .unwrap();
        f.write_all(content).unwrap();
        drop(f);
        let err = cache.read().unwrap_err();
        assert!(matches!(err, CacheError::Corrupt { .. }), "{err:?}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert!(err.hint().contains("gatehouse login"));
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn world_readable_file_is_refused() {
    let dir = temp_dir("mode");
    let cache = Cache::in_dir(dir.clone());
    let lock = cache.lock().unwrap();
    lock.write(&CacheFile::default()).unwrap();
    drop(lock);
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o644)).unwrap();
    let err = cache.read().unwrap_err();
    assert!(
        matches!(err, CacheError::Insecure { mode: 0o644, .. }),
        "{err:?}"
    );
    assert!(err.hint().contains("chmod 600"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lock_serialises_read_modify_write() {
    // 16 threads each add one entry under the lock; none is lost. flock locks belong to
    // the open file description, so separate opens exclude each other across threads as
    // they do across processes.
    let dir = temp_dir("lock");
    let cache = Arc::new(Cache::in_dir(dir.clone()));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                let lock = cache.lock().unwrap();
                let mut f = lock.read().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
                f.put(entry(&format!("https://gh{i}"), "t", i));
                lock.write(&f).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(cache.read().unwrap().entries.len(), 16);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_dir_prefers_xdg_then_home() {
    let env = |k: &str| match k {
        "XDG_CONFIG_HOME" => Some("/x".to_owned()),
        "HOME" => Some("/h".to_owned()),
        _ => None,
    };
    assert_eq!(config_dir(&env).unwrap(), PathBuf::from("/x/gatehouse"));
    let env = |k: &str| (k == "HOME").then(|| "/h".to_owned());
    assert_eq!(
        config_dir(&env).unwrap(),
        PathBuf::from("/h/.config/gatehouse")
    );
    assert!(matches!(config_dir(&|_| None), Err(CacheError::NoHome)));
}

#[test]
fn keyring_without_a_bus_is_refused_explicitly_and_auto_is_the_file() {
    let env = |k: &str| (k == "HOME").then(|| "/h".to_owned());
    let err = Cache::open(Backend::Keyring, &env).unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::Keyring {
                action: "reach",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("DBUS_SESSION_BUS_ADDRESS"),
        "{err}"
    );
    assert!(err.hint().contains("--token-cache file"), "{}", err.hint());
    let auto = Cache::open(Backend::Auto, &env).unwrap();
    assert_eq!(auto.location(), "/h/.config/gatehouse/tokens.json");
}

#[test]
fn debug_redacts_tokens() {
    let e = entry("https://gh", "tok-secret", 1);
    let d = format!("{e:?}");
    assert!(
        !d.contains("tok-secret") && !d.contains("refresh-secret"),
        "{d}"
    );
}
