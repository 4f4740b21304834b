//! A private D-Bus session bus, optionally with a real Secret Service on it (GNOME Keyring's
//! `gnome-keyring-daemon`, unlocked with a throw-away password), for the keyring tests. Nothing
//! of the developer's own session is used: the bus, the keyring files and the runtime folder
//! live in a temporary folder and are stopped and removed on drop.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// A running session bus (and keyring daemon); stopped on drop.
pub struct SecretService {
    /// The bus address for `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
    bus: Child,
    keyring: Option<Child>,
    dir: TempDir,
}

impl SecretService {
    /// A session bus with `gnome-keyring-daemon` serving `org.freedesktop.secrets`, its login
    /// keyring created and unlocked.
    pub fn start() -> Self {
        let mut s = Self::bus(false);
        let mut daemon = s
            .command("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets", "--foreground"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (Debian package gnome-keyring; testbed/install-deps)");
        // `--unlock` reads the login keyring's password from stdin, up to EOF.
        let mut stdin = daemon.stdin.take().unwrap();
        stdin.write_all(b"gatehouse-test-keyring").unwrap();
        drop(stdin);
        s.keyring = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !s.has_owner("org.freedesktop.secrets") {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not take org.freedesktop.secrets within 15 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// A session bus with no Secret Service on it, and none that can be started.
    pub fn without_secret_service() -> Self {
        Self::bus(false)
    }

    /// A session bus that starts the system's Secret Service on first use (D-Bus activation,
    /// as on a desktop), with no keyring created or unlocked: reads answer "nothing stored",
    /// writes are refused because creating the keyring needs a password prompt.
    pub fn with_locked_keyring() -> Self {
        Self::bus(true)
    }

    /// A private session bus; `activation` keeps the system's service files (the standard
    /// session configuration), otherwise none are known.
    fn bus(activation: bool) -> Self {
        let dir = TempDir::new("dbus");
        for sub in ["data", "run"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let config = if activation {
            "/usr/share/dbus-1/session.conf".to_owned()
        } else {
            let path = dir.path().join("session.conf");
            std::fs::write(
                &path,
                format!(
                    r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}/bus</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                    dir.path().display()
                ),
            )
            .unwrap();
            path.display().to_string()
        };
        let mut bus = Command::new("dbus-daemon")
            .args([
                &format!("--config-file={config}"),
                "--nofork",
                "--print-address=1",
                &format!("--address=unix:path={}/bus", dir.path().display()),
            ])
            // Services the bus starts live in this session's folders too.
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", dir.path().join("run"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon)");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {line:?}");
        Self {
            address,
            bus,
            keyring: None,
            dir,
        }
    }

    /// A command in this session (its own HOME, data and runtime folders).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"));
        cmd
    }

    fn has_owner(&self, name: &str) -> bool {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// The secret of gatehouse's item for the cache folder `account` (`secret-tool lookup`).
    pub fn lookup(&self, account: &str) -> Option<String> {
        let out = self
            .command("secret-tool")
            .args(["lookup", "service", "gatehouse", "username", account])
            .output()
            .expect("secret-tool (Debian package libsecret-tools)");
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// Replaces gatehouse's item for `account` (`secret-tool clear`, then `store`: libsecret
    /// adds an `xdg:schema` attribute, so a plain store would add a second item).
    pub fn store(&self, account: &str, secret: &str) {
        let cleared = self
            .command("secret-tool")
            .args(["clear", "service", "gatehouse", "username", account])
            .status()
            .unwrap();
        assert!(cleared.success());
        let mut child = self
            .command("secret-tool")
            .args([
                "store",
                "--label=gatehouse test",
                "service",
                "gatehouse",
                "username",
                account,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(k) = &mut self.keyring {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
