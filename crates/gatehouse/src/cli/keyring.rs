//! The OS keyring back-end of the token cache: the freedesktop Secret Service (GNOME Keyring,
//! KWallet, KeePassXC...) over the D-Bus session bus, through the `secret-service` crate (pure
//! Rust, on zbus).
//!
//! # Security
//! - The whole cache document (the same JSON as `tokens.json`) is one secret item, found by
//!   the attributes `service=gatehouse` and `username=<cache folder>`; the Secret Service keeps
//!   it encrypted at rest and hands it only to the user's session. The transfer over the
//!   session bus uses the `plain` algorithm (see `connect` below for why).
//! - Errors are reduced to their messages here; they never include the secret.
//! - "Reachable" means a session bus is configured: `DBUS_SESSION_BUS_ADDRESS`, or the
//!   `$XDG_RUNTIME_DIR/bus` socket systemd sets up. Without one, `auto` uses the file without
//!   touching D-Bus, so the common headless case (CI, containers, SSH) pays nothing.
//!
//! Only Linux has a keyring back-end in this build; elsewhere [`Keyring::connect`] reports it
//! unavailable (and `auto` uses the file).

use std::path::Path;

/// The Secret Service `service` attribute of gatehouse's item.
pub const SERVICE: &str = "gatehouse";

/// Why the keyring could not be used (messages only; see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The Secret Service is unreachable, locked, or refused the operation.
    #[error("{0}")]
    Failed(String),
    /// Several items match gatehouse's attributes: which one is the cache is unclear.
    #[error("{0} items match service={SERVICE} and this cache folder")]
    Ambiguous(usize),
}

/// Whether a session bus is configured for this process (see the module docs).
pub fn bus_configured(env: &dyn Fn(&str) -> Option<String>) -> bool {
    if env("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return true;
    }
    env("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty() && Path::new(&d).join("bus").exists())
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;

    use secret_service::blocking::SecretService;
    use secret_service::{EncryptionType, Error};

    use super::{KeyringError, SERVICE};

    /// gatehouse's item in the Secret Service, for one cache folder.
    #[derive(Debug)]
    pub struct Keyring {
        account: String,
    }

    fn failed(what: &str, e: &Error) -> KeyringError {
        // secret-service's errors carry D-Bus messages and paths, never secret bytes.
        KeyringError::Failed(format!("{what}: {e}"))
    }

    /// Connects for one operation. The Secret Service session is opened in the `plain`
    /// algorithm: its Diffie-Hellman alternative is unauthenticated, so it only hides the
    /// secret from processes that can monitor this user's session bus, and those (the same
    /// user, or root) can ask the unlocked keyring for the item anyway. The `dh` session costs
    /// about 10 ms of big-number arithmetic on every kubectl call; kubelogin's keyring
    /// back-end (go-keyring) uses `plain` as well.
    fn connect<'a>() -> Result<SecretService<'a>, KeyringError> {
        SecretService::connect(EncryptionType::Plain)
            .map_err(|e| failed("cannot open a Secret Service session", &e))
    }

    impl Keyring {
        /// The item for the cache folder `account` (nothing is contacted yet).
        pub fn connect(account: &str) -> Result<Self, KeyringError> {
            Ok(Self {
                account: account.to_owned(),
            })
        }

        fn attributes(&self) -> HashMap<&str, &str> {
            HashMap::from([("service", SERVICE), ("username", self.account.as_str())])
        }

        /// The secret, or `None` when there is no item yet.
        pub fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
            off_runtime(|| {
                let ss = connect()?;
                let found = ss
                    .search_items(self.attributes())
                    .map_err(|e| failed("cannot search the keyring", &e))?;
                let matches = found.unlocked.len() + found.locked.len();
                if matches > 1 {
                    return Err(KeyringError::Ambiguous(matches));
                }
                let item = match (found.unlocked.first(), found.locked.first()) {
                    (Some(item), _) => item,
                    (None, Some(item)) => {
                        // The Secret Service asks to unlock it (on a desktop, its prompt).
                        item.unlock()
                            .map_err(|e| failed("the keyring is locked", &e))?;
                        item
                    }
                    (None, None) => return Ok(None),
                };
                item.get_secret()
                    .map(Some)
                    .map_err(|e| failed("cannot read the item", &e))
            })
        }

        /// Creates or replaces the item (in the default collection).
        pub fn set(&self, secret: &[u8]) -> Result<(), KeyringError> {
            off_runtime(|| {
                let ss = connect()?;
                // An existing item is updated in place (whatever other attributes it has).
                let found = ss
                    .search_items(self.attributes())
                    .map_err(|e| failed("cannot search the keyring", &e))?;
                if let [item] = found.unlocked.as_slice() {
                    return item
                        .set_secret(secret, "application/json")
                        .map_err(|e| failed("cannot store the item", &e));
                }
                let collection = ss
                    .get_default_collection()
                    .map_err(|e| failed("no default keyring collection", &e))?;
                collection
                    .ensure_unlocked()
                    .map_err(|e| failed("the keyring is locked", &e))?;
                let label = format!("gatehouse token cache ({})", self.account);
                collection
                    .create_item(
                        &label,
                        self.attributes(),
                        secret,
                        true, // replace the item with the same attributes
                        "application/json",
                    )
                    .map(|_| ())
                    .map_err(|e| failed("cannot store the item", &e))
            })
        }

        /// Removes the item; no item is fine.
        pub fn delete(&self) -> Result<(), KeyringError> {
            off_runtime(|| {
                let ss = connect()?;
                let found = ss
                    .search_items(self.attributes())
                    .map_err(|e| failed("cannot search the keyring", &e))?;
                for item in found.unlocked.iter().chain(found.locked.iter()) {
                    item.delete()
                        .map_err(|e| failed("cannot delete the item", &e))?;
                }
                Ok(())
            })
        }
    }

    /// Runs `f` outside any tokio runtime: zbus's blocking calls run on a runtime of their
    /// own, which tokio refuses to start inside another.
    fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return f();
        }
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::KeyringError;

    /// No keyring back-end on this platform in this build.
    #[derive(Debug)]
    pub struct Keyring(());

    impl Keyring {
        /// Always unavailable here.
        pub fn connect(_account: &str) -> Result<Self, KeyringError> {
            Err(KeyringError::Failed(
                "this build of gatehouse has no OS keyring back-end for this platform".to_owned(),
            ))
        }
        /// Unreachable (no value of this type exists).
        pub fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
            Ok(None)
        }
        /// Unreachable (no value of this type exists).
        pub fn set(&self, _secret: &[u8]) -> Result<(), KeyringError> {
            Ok(())
        }
        /// Unreachable (no value of this type exists).
        pub fn delete(&self) -> Result<(), KeyringError> {
            Ok(())
        }
    }
}

pub use imp::Keyring;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_is_configured_by_address_or_runtime_socket() {
        let env = |k: &str| (k == "DBUS_SESSION_BUS_ADDRESS").then(|| "unix:path=/x".to_owned());
        assert!(bus_configured(&env));
        assert!(!bus_configured(&|_| None));
        let env = |k: &str| (k == "DBUS_SESSION_BUS_ADDRESS").then(String::new);
        assert!(!bus_configured(&env));
        let dir = std::env::temp_dir().join(format!("gatehouse-bus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let d = dir.display().to_string();
        let env = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| d.clone());
        assert!(!bus_configured(&env));
        std::fs::write(dir.join("bus"), b"").ok();
        assert!(bus_configured(&env));
        std::fs::remove_dir_all(&dir).ok();
    }
}
