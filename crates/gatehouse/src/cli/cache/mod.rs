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

mod entry;
mod error;
mod file;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::keyring::{self, Keyring, KeyringError};

pub use self::entry::{CacheFile, Entry, Kind, TokenType, normalize_server};
use self::entry::{CacheFileRef, VERSION, parse};
pub use self::error::CacheError;

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
        self.cache.write_file(&path, &body)?;
        Ok(match refused {
            Some(reason) => format!("{} (the OS keyring refused it: {reason})", path.display()),
            None => path.display().to_string(),
        })
    }
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
