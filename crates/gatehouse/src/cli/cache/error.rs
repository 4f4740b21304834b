//! Why the token cache could not be used, and what to do about it.

use std::path::PathBuf;

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
