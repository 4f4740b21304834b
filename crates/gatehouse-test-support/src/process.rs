//! Processes of the tests: `gatehouse serve` started from the built binary and stopped on drop,
//! free ports, blocking probes of our own server, a line reader for a child's output, and small
//! text helpers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::config::listen_port;
use crate::tempdir;
use crate::testbed::{Testbed, kubeconfig};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The built `gatehouse` binary. Cargo builds it before the integration tests of the
/// `gatehouse` package and names it in `CARGO_BIN_EXE_gatehouse`, at compile time of the test
/// (which this crate is not) and, with newer Cargo, at run time; otherwise it is found beside the
/// test executable's `deps/` folder (`target/<profile>/gatehouse`), where Cargo puts it.
pub fn gatehouse_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_gatehouse") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("no target folder above {}", exe.display()));
    let bin = profile.join(format!("gatehouse{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "the gatehouse binary is not at {} (run the tests with cargo test -p gatehouse)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `gatehouse serve`, stopped on drop.
pub struct Gatehouse {
    child: Child,
    pub url: String,
    pub dir: tempdir::TempDir,
}

impl Gatehouse {
    /// Starts gatehouse with `config` (YAML, written as it is) and waits until `/healthz`
    /// answers on the port its `listen` names ([`crate::config::listen_port`]; the builder
    /// picks a free one unless told). `wait_ready` also waits for `/readyz`.
    pub fn start(config: &str, scheme: &str, wait_ready: bool) -> Self {
        Self::start_on(config, listen_port(config), scheme, wait_ready)
    }

    /// Like [`Gatehouse::start`], checking that `config` listens on `port`.
    pub fn start_on(config: &str, port: u16, scheme: &str, wait_ready: bool) -> Self {
        Self::start_logging(config, port, scheme, wait_ready, "debug")
    }

    /// Like [`Gatehouse::start_on`] with `GATEHOUSE_LOG=log` (a `tracing` filter; the other
    /// starts use `debug`).
    pub fn start_logging(
        config: &str,
        port: u16,
        scheme: &str,
        wait_ready: bool,
        log: &str,
    ) -> Self {
        assert_eq!(
            listen_port(config),
            port,
            "the config listens elsewhere:\n{config}"
        );
        let dir = tempdir::TempDir::new("gh");
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log_file = std::fs::File::create(dir.path().join("gatehouse.log")).unwrap();
        let child = Command::new(gatehouse_bin())
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("GATEHOUSE_LOG", log)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut gh = Self {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            dir,
        };
        gh.wait_for(if wait_ready { "/readyz" } else { "/healthz" });
        gh
    }

    fn wait_for(&mut self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.rsplit("//").next().unwrap().to_owned();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gatehouse exited ({status}); log:\n{}", self.log());
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                // Ask with curl-free plain HTTP via a tiny blocking client below.
                if probe(&self.url, path) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not answer {path} within 30 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }

    /// Writes a kubeconfig pointing at this gatehouse with `token`, and returns its path.
    pub fn kubeconfig(&self, tb: &Testbed, name: &str, token: &str) -> PathBuf {
        kubeconfig(
            self.dir.path(),
            name,
            &self.url,
            &tb.var("TESTBED_CA_FILE"),
            token,
        )
    }
}

impl Drop for Gatehouse {
    /// Stops the server and keeps its log in `target/e2e-logs/` (named after the test binary,
    /// the process and a counter), where `scripts/leak-scan` searches every log of the run for
    /// secrets after the test tiers.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = KEPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let dir = workspace_root().join("target/e2e-logs");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(
            self.dir.path().join("gatehouse.log"),
            dir.join(format!("{binary}-{}-{n}.log", std::process::id())),
        );
    }
}

/// Blocking GET returning whether the answer was 200, trusting any certificate (health probe
/// of our own freshly started server only).
fn probe(url: &str, path: &str) -> bool {
    matches!(get_own_server(&format!("{url}{path}")), Some((200, _)))
}

/// Blocking GET of one of our own freshly started servers (any certificate trusted, 2 s
/// timeout): the status and body, `None` when it did not answer. A thread and runtime of its
/// own, so it works from blocking code inside an async test too.
pub fn get_own_server(target: &str) -> Option<(u16, String)> {
    let target = target.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let resp = client.get(target).send().await.ok()?;
            let status = resp.status().as_u16();
            Some((status, resp.text().await.ok()?))
        })
    })
    .join()
    .ok()
    .flatten()
}

/// A unique string for request URIs, so audit events can be told apart.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// stdout and stderr of a command, as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Collects a child's stderr in the background and lets a test wait for a line.
pub struct LineReader {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: std::sync::Arc<std::sync::Mutex<String>>,
    handle: std::thread::JoinHandle<()>,
}

impl LineReader {
    /// Starts reading `stream` line by line.
    pub fn new(stream: impl std::io::Read + Send + 'static) -> Self {
        use std::io::BufRead as _;
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen2 = seen.clone();
        let handle = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                seen2.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Self { rx, seen, handle }
    }

    /// The first line (trimmed) for which `pred` holds, waiting up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if pred(line.trim()) => return line.trim().to_owned(),
                Ok(_) => {}
                Err(_) => panic!(
                    "no matching line within {timeout:?}; output so far:\n{}",
                    self.seen.lock().unwrap()
                ),
            }
        }
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// Waits for the end of the stream (the child exited) and returns everything.
    pub fn finish(self) -> String {
        let _ = self.handle.join();
        self.seen.lock().unwrap().clone()
    }
}
