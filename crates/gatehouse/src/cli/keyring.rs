//! The OS keyring back-end of the token cache: the freedesktop Secret Service (GNOME Keyring,
//! KWallet, KeePassXC...) over the D-Bus session bus, through `keyring-core` and its zbus store.
//!
//! # Security
//! - The whole cache document (the same JSON as `tokens.json`) is one secret item, found by
//!   the attributes `service=gatehouse` and `username=<cache folder>`; the Secret Service keeps
//!   it encrypted at rest and hands it only to the user's session. The session to the service
//!   is encrypted (Diffie-Hellman, AES) so the secret does not cross the bus in clear.
//! - Errors are reduced to their messages here. `keyring-core`'s error values can carry the
//!   secret's bytes (`BadEncoding`, `BadDataFormat`); they are never `Debug`-formatted or kept.
//! - "Reachable" means a session bus is configured: `DBUS_SESSION_BUS_ADDRESS`, or the
//!   `$XDG_RUNTIME_DIR/bus` socket systemd sets up. Without one, `auto` uses the file without
//!   touching D-Bus, so the common headless case (CI, containers, SSH) pays nothing.
//!
//! Only Linux has a keyring back-end in this build; elsewhere [`Keyring::connect`] reports it
//! unavailable (and `auto` uses the file).

use std::path::Path;

/// The Secret Service `service` attribute of gatehouse's item.
pub const SERVICE: &str = "gatehouse";

/// Why the keyring could not be used (the message only; see the module docs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyringError(pub String);

/// Whether a session bus is configured for this process (see the module docs).
pub fn bus_configured(env: &dyn Fn(&str) -> Option<String>) -> bool {
    if env("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return true;
    }
    env("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty() && Path::new(&d).join("bus").exists())
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::Arc;

    use keyring_core::{CredentialStore, Entry, Error};

    use super::{KeyringError, SERVICE};

    /// One secret item in the Secret Service.
    pub struct Keyring {
        entry: Entry,
    }

    impl std::fmt::Debug for Keyring {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Keyring").finish_non_exhaustive()
        }
    }

    fn message(e: &Error) -> KeyringError {
        // Display never includes secret bytes (only Debug of some variants would).
        KeyringError(match e {
            Error::Ambiguous(items) => format!(
                "{} Secret Service items match service={SERVICE} and this cache folder",
                items.len()
            ),
            other => other.to_string(),
        })
    }

    impl Keyring {
        /// Connects to the Secret Service and names the item for `account`.
        pub fn connect(account: &str) -> Result<Self, KeyringError> {
            off_runtime(|| {
                let store: Arc<CredentialStore> =
                    zbus_secret_service_keyring_store::Store::new().map_err(|e| message(&e))?;
                let label = format!("gatehouse token cache ({account})");
                let modifiers = std::collections::HashMap::from([("label", label.as_str())]);
                let entry =
                    Entry::new_in_store_with_modifiers(&store, SERVICE, account, &modifiers)
                        .map_err(|e| message(&e))?;
                Ok(Self { entry })
            })
        }

        /// The secret, or `None` when there is no item yet.
        pub fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
            off_runtime(|| match self.entry.get_secret() {
                Ok(secret) => Ok(Some(secret)),
                Err(Error::NoEntry) => Ok(None),
                Err(e) => Err(message(&e)),
            })
        }

        /// Creates or replaces the item.
        pub fn set(&self, secret: &[u8]) -> Result<(), KeyringError> {
            off_runtime(|| self.entry.set_secret(secret).map_err(|e| message(&e)))
        }

        /// Removes the item; no item is fine.
        pub fn delete(&self) -> Result<(), KeyringError> {
            off_runtime(|| match self.entry.delete_credential() {
                Ok(()) | Err(Error::NoEntry) => Ok(()),
                Err(e) => Err(message(&e)),
            })
        }
    }

    /// Runs `f` outside any tokio runtime: the zbus store blocks on a runtime of its own,
    /// which tokio refuses to start inside another.
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
            Err(KeyringError(
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
