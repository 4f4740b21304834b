//! The token cache: one JSON document, kept in the OS keyring (see [`crate::cli::keyring`])
//! or in a 0600 file `tokens.json` under `$XDG_CONFIG_HOME/gatehouse/` (else
//! `$HOME/.config/gatehouse/`). The lock file lives in that folder in both cases.
//!
//! # Where: `--token-cache auto|file|keyring`
//! `auto` (the default) uses the keyring when a session bus is configured and the Secret
//! Service answers the first read, else the file; `keyring` insists (an unreachable keyring is an error with a
//! hint, never a silent downgrade); `file` never touches D-Bus. With the keyring, a
//! `tokens.json` left from an earlier file-mode sign-in is read while the keyring has no item,
//! and removed once the next write has put the cache into the keyring, so tokens do not stay
//! on disk in clear. With `auto`, a keyring that answers reads but refuses a write (locked, or
//! its unlock needs a prompt) means the file; the login message says so.
//!
//! # Concurrency and safety
//! - Writes go to a temporary file in the same folder (created 0600), are synced, then renamed
//!   over `tokens.json`, so a reader sees the old or the new file, never half of one. Readers of
//!   a still-valid token therefore take no lock at all (the fast path of `gatehouse token`).
//! - Everything that reads, refreshes and writes holds an exclusive advisory lock on a separate
//!   `tokens.lock` file (the OS's `flock`, through `std::fs::File::lock`), and re-reads the cache
//!   after acquiring it: twenty kubectl processes that find an expired token at once make one
//!   refresh; the others wait, re-read, and find the fresh token. This matters because IdPs
//!   such as Dex rotate refresh tokens: two concurrent refreshes would lose one of them.
//! - A file that is readable by group or others, or that does not parse as this cache, is
//!   refused with a hint (never silently overwritten, never a panic).
//! - The key of an entry covers server, issuer, client ID and the sign-in parameters, so a
//!   login with other parameters (another `connector_id`, another audience) never hands out the
//!   token of the first.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::cli::keyring::{self, Keyring, KeyringError};

/// The format version written in the file.
const VERSION: u32 = 1;

/// How a cached token was obtained; decides how it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// OIDC sign-in (browser or device); renewed with the refresh token.
    Oidc,
    /// gatehouse admin token; renewed by signing in again.
    Admin,
    /// A token taken from a kubeconfig context; renewed by running the login again.
    Kubeconfig,
}

/// Which token of the IdP's answer is handed to kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum TokenType {
    /// The ID token (the default; its `aud` holds the client and any peer audiences).
    #[default]
    IdToken,
    /// The access token, when the IdP issues it as a JWT for a resource (RFC 8707 resource
    /// indicators): its `aud` is the resource, for example the cluster.
    AccessToken,
}

/// One cached sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The gatehouse server URL, normalised (no trailing slash).
    pub server: String,
    /// The OIDC issuer, for OIDC entries.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The client ID the tokens were issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The authorization parameters (static and per-user) the sign-in used.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// How the token was obtained.
    pub kind: Kind,
    /// The bearer token handed to kubectl (the ID token for OIDC).
    pub token: String,
    /// The refresh token, when the IdP gave one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When `token` expires, unix seconds.
    pub expires_at: i64,
    /// The CA bundle (PEM) for the server and the IdP, when one was given at login.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// When this entry was written, unix seconds (the newest entry of a server wins).
    pub updated_at: i64,
    /// The login command that renews this entry, shown in hints.
    pub login_command: String,
    /// Which token `token` holds.
    #[serde(default)]
    pub token_type: TokenType,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("server", &self.server)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("parameters", &self.parameters)
            .field("kind", &self.kind)
            .field("token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// The cache key: server, issuer, client and parameters.
    pub fn key(&self) -> String {
        let material = serde_json::json!([
            self.server,
            self.issuer,
            self.client_id,
            self.parameters,
            self.kind
        ]);
        let digest = Sha256::digest(material.to_string().as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The whole file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// The format version.
    pub version: u32,
    /// Entries by key.
    pub entries: BTreeMap<String, Entry>,
}

impl CacheFile {
    /// The newest entry for `server`.
    pub fn for_server(&self, server: &str) -> Option<&Entry> {
        let server = normalize_server(server);
        self.entries
            .values()
            .filter(|e| e.server == server)
            .max_by_key(|e| e.updated_at)
    }

    /// The server of the newest entry, for commands run without a server.
    pub fn newest_server(&self) -> Option<&str> {
        self.entries
            .values()
            .max_by_key(|e| e.updated_at)
            .map(|e| e.server.as_str())
    }

    /// Inserts or replaces an entry.
    pub fn put(&mut self, mut entry: Entry) {
        entry.server = normalize_server(&entry.server);
        self.entries.insert(entry.key(), entry);
    }

    /// Removes every entry of `server`; returns them.
    pub fn remove_server(&mut self, server: &str) -> Vec<Entry> {
        let server = normalize_server(server);
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.server == server)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.entries.remove(k)).collect()
    }
}

/// A server URL without its trailing slashes.
pub fn normalize_server(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find a folder for the token cache: neither XDG_CONFIG_HOME nor HOME is set")]
    NoHome,
    /// An I/O failure on a cache file.
    #[error("cannot {action} the token cache {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a gatehouse token cache of this version.
    #[error("the token cache {path} is corrupted or not a gatehouse token cache ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error (positions only; the file's content is never echoed).
        reason: String,
    },
    /// The file can be read by other users.
    #[error("the token cache {path} is readable by other users (mode {mode:o})")]
    Insecure {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The OS keyring was asked for but cannot be used.
    #[error("cannot {action} the OS keyring: {reason}")]
    Keyring {
        /// What was being done.
        action: &'static str,
        /// Why (the keyring's message; never secret content).
        reason: String,
    },
    /// The keyring item is not a gatehouse token cache of this version.
    #[error(
        "the token cache in the OS keyring (item service={service} username={account}) is corrupted or not a gatehouse token cache ({reason})"
    )]
    KeyringCorrupt {
        /// The item's `service` attribute.
        service: &'static str,
        /// The item's `username` attribute (the cache folder).
        account: String,
        /// The parse error (positions only).
        reason: String,
    },
}

impl CacheError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            CacheError::NoHome => "set XDG_CONFIG_HOME or HOME".to_owned(),
            CacheError::Io { path, .. } => format!(
                "check that {} exists and is writable by you",
                path.parent().unwrap_or(path).display()
            ),
            CacheError::Corrupt { path, .. } => format!(
                "move the file away (`mv {0} {0}.bad`), then sign in again with `gatehouse login`",
                path.display()
            ),
            CacheError::Insecure { path, .. } => format!(
                "make it private with `chmod 600 {}`, and sign in again if others may have read it",
                path.display()
            ),
            CacheError::Keyring { .. } => "unlock your keyring (sign in to the desktop session, or start a Secret Service such as gnome-keyring-daemon), or use `--token-cache file` (a 0600 file)".to_owned(),
            CacheError::KeyringCorrupt { service, account, .. } => format!(
                "remove the item (`secret-tool clear service {service} username '{account}'`), then sign in again with `gatehouse login`"
            ),
        }
    }
}

/// Where tokens are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The OS keyring when reachable, else the file.
    Auto,
    /// A 0600 file under the XDG config folder.
    File,
    /// The OS keyring: the freedesktop Secret Service on Linux (GNOME Keyring, KWallet...).
    Keyring,
}

/// The token cache.
#[derive(Debug)]
pub struct Cache {
    /// The folder of `tokens.json` and `tokens.lock`.
    dir: PathBuf,
    /// The keyring item, when the cache lives in the keyring.
    keyring: Option<Keyring>,
    /// `auto`: a keyring that fails a read or refuses a write means the file.
    fallback_to_file: bool,
    /// Set when `auto` gave up on the keyring in this process (reads and writes use the file).
    keyring_failed: AtomicBool,
}

/// An exclusive hold on the cache; released on drop.
#[derive(Debug)]
pub struct Locked<'a> {
    cache: &'a Cache,
    _lock: File,
}

impl Cache {
    /// The cache for a backend, in the folder given by the environment.
    pub fn open(
        backend: Backend,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CacheError> {
        let dir = config_dir(env)?;
        let account = dir.display().to_string();
        let keyring = match backend {
            Backend::File => None,
            Backend::Keyring => {
                if !keyring::bus_configured(env) {
                    return Err(CacheError::Keyring {
                        action: "reach",
                        reason: "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus)".to_owned(),
                    });
                }
                Some(Keyring::connect(&account).map_err(|e| CacheError::Keyring {
                    action: "connect to",
                    reason: e.to_string(),
                })?)
            }
            // The keyring only when a bus is configured; whether it answers is found out by
            // the first read (see `read`), so the common case costs one round of D-Bus calls.
            Backend::Auto => keyring::bus_configured(env)
                .then(|| Keyring::connect(&account).ok())
                .flatten(),
        };
        Ok(Self {
            dir,
            keyring,
            fallback_to_file: backend == Backend::Auto,
            keyring_failed: AtomicBool::new(false),
        })
    }

    /// A file cache in `dir` (tests).
    #[cfg(test)]
    pub fn in_dir(dir: PathBuf) -> Self {
        Self {
            dir,
            keyring: None,
            fallback_to_file: false,
            keyring_failed: AtomicBool::new(false),
        }
    }

    /// Where the tokens are kept, for people.
    pub fn location(&self) -> String {
        match self.keyring() {
            Some(_) => format!(
                "the OS keyring (Secret Service item service={} username={})",
                keyring::SERVICE,
                self.dir.display()
            ),
            None => self.path().display().to_string(),
        }
    }

    /// The folder of the cache, its lock, and the pinned server settings.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache file.
    pub fn path(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("tokens.lock")
    }

    fn io(&self, action: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> CacheError {
        move |source| CacheError::Io {
            action,
            path,
            source,
        }
    }

    /// The keyring, unless there is none or `auto` gave up on it.
    fn keyring(&self) -> Option<&Keyring> {
        self.keyring
            .as_ref()
            .filter(|_| !self.keyring_failed.load(Ordering::Relaxed))
    }

    /// Reads the cache without a lock (writes are atomic). A missing cache is empty.
    pub fn read(&self) -> Result<CacheFile, CacheError> {
        if let Some(k) = self.keyring() {
            let secret = match k.get() {
                Ok(secret) => secret,
                // Never a fallback: the cache exists but which item it is is unclear.
                Err(e @ KeyringError::Ambiguous(_)) => {
                    return Err(CacheError::KeyringCorrupt {
                        service: keyring::SERVICE,
                        account: self.dir.display().to_string(),
                        reason: e.to_string(),
                    });
                }
                // `auto`: a Secret Service that does not answer (or is locked) means the file.
                Err(_) if self.fallback_to_file => {
                    self.keyring_failed.store(true, Ordering::Relaxed);
                    return self.read_file();
                }
                Err(e) => {
                    return Err(CacheError::Keyring {
                        action: "read from",
                        reason: e.to_string(),
                    });
                }
            };
            if let Some(secret) = secret {
                return parse(&secret).map_err(|reason| CacheError::KeyringCorrupt {
                    service: keyring::SERVICE,
                    account: self.dir.display().to_string(),
                    reason,
                });
            }
            // No item yet: a file from an earlier file-mode sign-in still counts.
        }
        self.read_file()
    }

    fn read_file(&self) -> Result<CacheFile, CacheError> {
        let path = self.path();
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::default()),
            Err(e) => return Err(self.io("read", path)(e)),
        };
        let meta = file.metadata().map_err(self.io("read", path.clone()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CacheError::Insecure { path, mode });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(self.io("read", path.clone()))?;
        parse(&bytes).map_err(|reason| CacheError::Corrupt { path, reason })
    }

    /// Takes the exclusive lock, blocking until other gatehouse processes release it.
    pub fn lock(&self) -> Result<Locked<'_>, CacheError> {
        self.ensure_dir()?;
        let path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(self.io("create the lock of", path.clone()))?;
        file.lock().map_err(self.io("lock", path))?;
        Ok(Locked {
            cache: self,
            _lock: file,
        })
    }

    fn ensure_dir(&self) -> Result<(), CacheError> {
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(self.io("create the folder of", self.dir.clone()))?;
        }
        Ok(())
    }
}

impl Locked<'_> {
    /// Reads the cache (under the lock).
    pub fn read(&self) -> Result<CacheFile, CacheError> {
        self.cache.read()
    }

    /// Writes the whole cache atomically: into the keyring item, or into a 0600 temporary
    /// file, synced, renamed into place. Returns where it went, for people.
    ///
    /// With `auto`, a keyring that answers reads but refuses the write (a locked or
    /// uninitialised keyring whose unlock needs a prompt nobody can see) means the file: reads
    /// fall back to the file while the keyring has no item, so the two stay consistent.
    pub fn write(&self, file: &CacheFile) -> Result<String, CacheError> {
        let path = self.cache.path();
        let body = serde_json::to_vec_pretty(&CacheFileRef {
            version: VERSION,
            entries: &file.entries,
        })
        .map_err(|e| CacheError::Io {
            action: "encode",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut refused = None;
        if let Some(k) = self.cache.keyring() {
            let done = if file.entries.is_empty() {
                k.delete().map_err(|e| CacheError::Keyring {
                    action: "remove the item from",
                    reason: e.to_string(),
                })
            } else {
                k.set(&body).map_err(|e| CacheError::Keyring {
                    action: "write to",
                    reason: e.to_string(),
                })
            };
            match done {
                Ok(()) => {
                    // The cache is in the keyring now: no copy stays on disk.
                    return match fs::remove_file(&path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Io {
                            action: "remove the old file of",
                            path,
                            source: e,
                        }),
                        _ => Ok(self.cache.location()),
                    };
                }
                Err(CacheError::Keyring { reason, .. }) if self.cache.fallback_to_file => {
                    self.cache.keyring_failed.store(true, Ordering::Relaxed);
                    refused = Some(reason);
                }
                Err(e) => return Err(e),
            }
        }
        let tmp = self
            .cache
            .dir
            .join(format!(".tokens.json.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CacheError::Io {
                action: "write",
                path: path.clone(),
                source: e,
            }
        })?;
        Ok(match refused {
            Some(reason) => format!("{} (the OS keyring refused it: {reason})", path.display()),
            None => path.display().to_string(),
        })
    }
}

/// Parses a cache document; the error names the problem's category and position only
/// (serde_json's messages may quote content, which may be a token).
fn parse(bytes: &[u8]) -> Result<CacheFile, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let parsed: CacheFile = serde_json::from_str(text).map_err(|e| {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if parsed.version != VERSION {
        return Err(format!(
            "format version {} (expected {VERSION})",
            parsed.version
        ));
    }
    Ok(parsed)
}

#[derive(Serialize)]
struct CacheFileRef<'a> {
    version: u32,
    entries: &'a BTreeMap<String, Entry>,
}

/// `$XDG_CONFIG_HOME/gatehouse`, else `$HOME/.config/gatehouse`.
pub fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, CacheError> {
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Ok(PathBuf::from(x).join("gatehouse"));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".config").join("gatehouse"))
        .ok_or(CacheError::NoHome)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            refresh_token: Some("refresh-secret".to_owned()),
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
}
