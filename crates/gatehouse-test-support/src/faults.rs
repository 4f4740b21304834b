//! Faults injected into the shared test bed, and the process facts the fault and soak tests
//! compare: a component of the test bed killed ([`Outage::kill`]) and brought back
//! ([`Outage::restore`], which runs `testbed/up`: it starts whatever is not running, with the
//! same state), open file descriptors and resident memory of a process, and a load generator
//! that records every answer ([`Load`]).
//!
//! An outage is always undone: dropping an [`Outage`] that was not restored runs `testbed/up`,
//! so a failing fault test never leaves the shared test bed broken for the tests after it.
//! Fault tests must not run beside other test-bed tests (they take the kube-apiserver, etcd or
//! Dex away from everyone): `e2e_faults` serialises its own tests, and cargo runs test binaries
//! one after another.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::workspace_root;

/// A component of the test bed, by the name `testbed/up` gives its pid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    Dex,
    KubeApiserver,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Dex => "dex",
            Self::KubeApiserver => "kube-apiserver",
        }
    }

    /// The running process's id, from `testbed/.state/run/<name>.pid`.
    pub fn pid(self) -> u32 {
        let path = state().join(format!("run/{}.pid", self.name()));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (is the test bed up?)", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} holds no pid: {text:?}", path.display()))
    }
}

fn state() -> PathBuf {
    workspace_root().join("testbed/.state")
}

/// Whether a process with this id exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

/// Sends a signal (`KILL`, `STOP`, `CONT`, ...) with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A component taken away; brought back by [`Outage::restore`] or, at the latest, on drop.
pub struct Outage {
    component: Component,
    restored: bool,
}

impl Outage {
    /// Kills the component (SIGKILL: no goodbye to its clients) and waits until it is gone.
    pub fn kill(component: Component) -> Self {
        let pid = component.pid();
        signal(pid, "KILL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "{} (pid {pid}) still runs 10 s after SIGKILL",
                component.name()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            component,
            restored: false,
        }
    }

    /// Runs `testbed/up` (which starts the component again and waits until the whole test bed
    /// is ready); returns how long that took.
    pub fn restore(&mut self) -> Duration {
        self.restored = true;
        let started = Instant::now();
        testbed_up();
        assert!(
            alive(self.component.pid()),
            "{} is not running after testbed/up",
            self.component.name()
        );
        started.elapsed()
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.restored {
            testbed_up();
        }
    }
}

/// Runs `testbed/up` and panics with its output when it fails.
pub fn testbed_up() {
    let out = Command::new(workspace_root().join("testbed/up"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testbed/up failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The number of open file descriptors of a process (`/proc/<pid>/fd`).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// A process's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

/// One request of a [`Load`]: a label for reports, the URL, the bearer token.
#[derive(Clone)]
pub struct Shot {
    pub label: &'static str,
    pub url: String,
    pub token: String,
}

/// One answer (or failure) a [`Load`] saw.
#[derive(Debug, Clone)]
pub struct Sample {
    pub label: &'static str,
    /// When the request was sent, from the start of the load.
    pub sent: Duration,
    /// How long until the whole answer was read (or the failure).
    pub took: Duration,
    /// The status, or `None` when no answer came (connection error, or the client's timeout).
    pub status: Option<u16>,
    /// Whether the body is a Kubernetes `Status` object.
    pub is_status_object: bool,
    /// The client's error, when there was no answer; the start of the body for a 5xx.
    pub error: Option<String>,
}

/// Requests sent by `workers` loops until [`Load::stop`], each loop taking the shots in turn;
/// every answer recorded. With `interval`, each worker waits that long between its requests
/// (an open loop at `workers / interval` requests per second, for the soak); without, it sends
/// the next request as soon as the last one is answered (closed loop).
pub struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        http: reqwest::Client,
        shots: Vec<Shot>,
        workers: usize,
        interval: Option<Duration>,
        timeout: Duration,
    ) -> Self {
        assert!(!shots.is_empty(), "a load needs at least one request");
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|w| {
                let (http, shots, stop, samples) =
                    (http.clone(), shots.clone(), stop.clone(), samples.clone());
                tokio::spawn(async move {
                    let mut i = w;
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(every) = interval {
                            tokio::time::sleep_until(next.into()).await;
                            next += every;
                        }
                        let shot = &shots[i % shots.len()];
                        i += 1;
                        let sent = Instant::now();
                        let sample = one(&http, shot, timeout).await;
                        samples.lock().unwrap().push(Sample {
                            sent: sent - t0,
                            took: sent.elapsed(),
                            ..sample
                        });
                    }
                })
            })
            .collect();
        Self {
            t0,
            stop,
            samples,
            workers,
        }
    }

    /// Time since the load started (to compare with [`Sample::sent`]).
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The answers so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops the workers (each finishes its request in flight) and returns every answer.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

async fn one(http: &reqwest::Client, shot: &Shot, timeout: Duration) -> Sample {
    let blank = Sample {
        label: shot.label,
        sent: Duration::ZERO,
        took: Duration::ZERO,
        status: None,
        is_status_object: false,
        error: None,
    };
    let answer = tokio::time::timeout(timeout, async {
        let resp = http.get(&shot.url).bearer_auth(&shot.token).send().await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    })
    .await;
    match answer {
        Ok(Ok((status, body))) => Sample {
            status: Some(status),
            is_status_object: serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v["kind"] == "Status"),
            error: (status >= 500)
                .then(|| String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned()),
            ..blank
        },
        Ok(Err(e)) => Sample {
            error: Some(e.to_string()),
            ..blank
        },
        Err(_) => Sample {
            error: Some(format!("no answer within {timeout:?}")),
            ..blank
        },
    }
}

/// The `q`-quantile (0..=1) of the durations, nearest rank; zero for none.
pub fn quantile(durations: &[Duration], q: f64) -> Duration {
    let mut d = durations.to_vec();
    d.sort_unstable();
    if d.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within the slice"
    )]
    let rank = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
    d[rank - 1]
}
