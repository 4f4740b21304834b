//! The load tool of `bench/watches` and `bench/scale` (bench/README.md).
//!
//! ```text
//! bench-watch watch --url URL --ca CA --admin-url URL --admin-cert CERT --admin-key KEY \
//!     --namespace NS --name CONFIGMAP --watches N --protocol h2|h1 [--pid PID] ...
//! bench-watch create-sas --url URL --ca CA --cert CERT --key KEY --count N ...
//! bench-watch delete-namespaces --url URL --ca CA --cert CERT --key KEY ...
//! ```
//!
//! `watch` opens N watches of one ConfigMap as kubectl/client-go would (HTTP/2: many streams
//! multiplexed over each connection, a new connection when one is full; or one HTTP/1.1
//! connection per watch), with the bearer token from `BENCH_TOKEN`. It then patches the
//! ConfigMap K times straight at the kube-apiserver (the admin client certificate) and records,
//! for every watcher, the time from just before the patch to the event's arrival. With `--pid`
//! it reads that process's resident memory and open descriptors before, with all watches open,
//! and after they are closed. The result is one JSON document on stdout.
//!
//! `create-sas` creates ServiceAccounts fast (parallel requests over a few HTTP/2 connections),
//! spread over namespaces `PREFIX000`..; `delete-namespaces` deletes them again (a collection
//! delete per namespace, then the namespace, then its finalizer, since the test bed has no
//! namespace controller).

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt as _;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

#[derive(Parser)]
#[command(about = "gatehouse's watch and scale benchmarks' load tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    H2,
    H1,
}

#[derive(clap::Args)]
struct Server {
    /// The server (gatehouse or the kube-apiserver), https://host:port.
    #[arg(long)]
    url: String,
    /// The CA that signed its serving certificate.
    #[arg(long)]
    ca: String,
    /// A client certificate (PEM), with --key.
    #[arg(long)]
    cert: Option<String>,
    /// The client certificate's key (PEM).
    #[arg(long)]
    key: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Opens watches, patches the ConfigMap, measures delivery and the process's memory.
    Watch {
        /// Where the watches go; the bearer token is read from BENCH_TOKEN.
        #[arg(long)]
        url: String,
        #[arg(long)]
        ca: String,
        /// The kube-apiserver, for the patches (admin client certificate).
        #[arg(long)]
        admin_url: String,
        #[arg(long)]
        admin_cert: String,
        #[arg(long)]
        admin_key: String,
        #[arg(long, default_value = "bench")]
        namespace: String,
        #[arg(long, default_value = "watched")]
        name: String,
        #[arg(long, default_value_t = 1000)]
        watches: usize,
        #[arg(long, value_enum, default_value = "h2")]
        protocol: Protocol,
        /// HTTP/2 streams per connection (client-go opens another connection when the
        /// server's limit is reached; the kube-apiserver's default limit is 100).
        #[arg(long, default_value_t = 100)]
        streams_per_connection: usize,
        /// Patches (events) to time.
        #[arg(long, default_value_t = 20)]
        events: u32,
        /// Pause between two patches, milliseconds.
        #[arg(long, default_value_t = 300)]
        interval_ms: u64,
        /// The process whose memory and descriptors are read (gatehouse).
        #[arg(long)]
        pid: Option<u32>,
        /// Seconds to wait before each memory reading.
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
        /// Seconds for all watches to be answered.
        #[arg(long, default_value_t = 90)]
        open_timeout_secs: u64,
        /// Seconds for one event to reach every watcher.
        #[arg(long, default_value_t = 30)]
        event_timeout_secs: u64,
    },
    /// Creates ServiceAccounts `sa-NNNNNN` spread over namespaces PREFIX000...
    CreateSas {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 100)]
        namespaces: usize,
        #[arg(long, default_value = "scale-")]
        prefix: String,
        /// Percent of the ServiceAccounts with gatehouse.dev/claim.* annotations.
        #[arg(long, default_value_t = 10)]
        annotated_percent: usize,
        /// ServiceAccounts already there (numbering continues after them).
        #[arg(long, default_value_t = 0)]
        start: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// Deletes the namespaces PREFIX000.. and their ServiceAccounts.
    DeleteNamespaces {
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 100)]
        namespaces: usize,
        #[arg(long, default_value = "scale-")]
        prefix: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Watch {
            url,
            ca,
            admin_url,
            admin_cert,
            admin_key,
            namespace,
            name,
            watches,
            protocol,
            streams_per_connection,
            events,
            interval_ms,
            pid,
            settle_secs,
            open_timeout_secs,
            event_timeout_secs,
        } => {
            let token = std::env::var("BENCH_TOKEN").context("BENCH_TOKEN is not set")?;
            let target = Target::new(&url, &ca, None)?;
            let admin = Target::new(&admin_url, &ca, Some((&admin_cert, &admin_key)))?;
            let settings = WatchSettings {
                token,
                namespace,
                name,
                watches,
                protocol,
                streams_per_connection: streams_per_connection.max(1),
                events,
                interval: Duration::from_millis(interval_ms),
                pid,
                settle: Duration::from_secs(settle_secs),
                open_timeout: Duration::from_secs(open_timeout_secs),
                event_timeout: Duration::from_secs(event_timeout_secs),
            };
            let out = watch(&target, &admin, &settings).await?;
            println!("{}", serde_json::to_string(&out)?);
        }
        Command::CreateSas {
            server,
            count,
            namespaces,
            prefix,
            annotated_percent,
            start,
            concurrency,
            connections,
        } => {
            let target = server.target()?;
            let out = create_sas(
                &target,
                &prefix,
                namespaces.max(1),
                start,
                count,
                annotated_percent,
                concurrency.max(1),
                connections.max(1),
            )
            .await?;
            println!("{}", serde_json::to_string(&out)?);
        }
        Command::DeleteNamespaces {
            server,
            namespaces,
            prefix,
        } => {
            let target = server.target()?;
            delete_namespaces(&target, &prefix, namespaces).await?;
        }
    }
    Ok(())
}

impl Server {
    fn target(&self) -> anyhow::Result<Target> {
        let client = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
            (None, None) => None,
            _ => bail!("--cert and --key go together"),
        };
        Target::new(&self.url, &self.ca, client)
    }
}

/// A TLS server: where to connect, and the TLS settings for HTTP/2 and HTTP/1.1.
struct Target {
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    h2: TlsConnector,
    h1: TlsConnector,
}

impl Target {
    fn new(url: &str, ca: &str, client: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse().context("the URL")?;
        if uri.scheme_str() != Some("https") {
            bail!("{url}: only https:// URLs");
        }
        let host = uri.host().context("the URL has no host")?.to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).context("the URL's host")?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).context("the CA file")? {
            roots.add(c.context("the CA file")?)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .context("the client certificate")?
                    .collect::<Result<Vec<_>, _>>()
                    .context("the client certificate")?;
                let key = PrivateKeyDer::from_pem_file(key).context("the client key")?;
                builder.with_client_auth_cert(certs, key)?
            }
            None => builder.with_no_client_auth(),
        };
        let mut h2 = config.clone();
        h2.alpn_protocols = vec![b"h2".to_vec()];
        let mut h1 = config;
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            authority: format!("{host}:{port}"),
            host,
            port,
            server_name,
            h2: TlsConnector::from(Arc::new(h2)),
            h1: TlsConnector::from(Arc::new(h1)),
        })
    }

    async fn connect(&self, protocol: Protocol) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        tcp.set_nodelay(true)?;
        let tls = match protocol {
            Protocol::H2 => &self.h2,
            Protocol::H1 => &self.h1,
        }
        .connect(self.server_name.clone(), tcp)
        .await
        .context("TLS handshake")?;
        let io = TokioIo::new(tls);
        Ok(match protocol {
            Protocol::H2 => {
                if io.inner().get_ref().1.alpn_protocol() != Some(b"h2") {
                    bail!("{} did not agree to HTTP/2", self.authority);
                }
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .context("HTTP/2 handshake")?;
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                Conn::H2(send, task.abort_handle())
            }
            Protocol::H1 => {
                let (send, conn) = http1::handshake(io).await.context("HTTP/1.1 handshake")?;
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                Conn::H1(send, task.abort_handle())
            }
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        request(&self.authority, method, path, token, content_type, body)
    }
}

fn request(
    authority: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Bytes,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("https://{authority}{path}"))
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "gatehouse-bench-watch");
    if let Some(t) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    Ok(b.body(Full::new(body))?)
}

/// One connection: HTTP/2 (its streams shared) or HTTP/1.1 (one request at a time).
enum Conn {
    H2(http2::SendRequest<Full<Bytes>>, tokio::task::AbortHandle),
    H1(http1::SendRequest<Full<Bytes>>, tokio::task::AbortHandle),
}

impl Conn {
    async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> anyhow::Result<http::Response<Incoming>> {
        Ok(match self {
            Conn::H2(s, _) => s.send_request(req).await?,
            Conn::H1(s, _) => {
                // HTTP/1.1: origin-form target and a Host header.
                let host = req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default();
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                *req.uri_mut() = path.parse()?;
                req.headers_mut().insert(http::header::HOST, host.parse()?);
                s.ready().await?;
                s.send_request(req).await?
            }
        })
    }

    fn h2_clone(&self) -> Option<Conn> {
        match self {
            Conn::H2(s, t) => Some(Conn::H2(s.clone(), t.clone())),
            Conn::H1(..) => None,
        }
    }

    fn abort_handle(&self) -> tokio::task::AbortHandle {
        match self {
            Conn::H2(_, t) | Conn::H1(_, t) => t.clone(),
        }
    }

    fn abort(&self) {
        self.abort_handle().abort();
    }
}

async fn read_all(resp: http::Response<Incoming>) -> anyhow::Result<(StatusCode, Bytes)> {
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

struct WatchSettings {
    token: String,
    namespace: String,
    name: String,
    watches: usize,
    protocol: Protocol,
    streams_per_connection: usize,
    events: u32,
    interval: Duration,
    pid: Option<u32>,
    settle: Duration,
    open_timeout: Duration,
    event_timeout: Duration,
}

/// What a watcher reports.
enum Report {
    Opened(Result<(), String>),
    Retried,
    Event { seq: u32, at: Instant },
    Ended(String),
}

fn proc_stats(pid: Option<u32>) -> Value {
    let Some(pid) = pid else {
        return Value::Null;
    };
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        });
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .ok();
    json!({"rss_kib": rss, "fds": fds})
}

async fn watch(target: &Target, admin: &Target, s: &WatchSettings) -> anyhow::Result<Value> {
    let path = format!("/api/v1/namespaces/{}/configmaps/{}", s.namespace, s.name);
    let mut admin_conn = admin.connect(Protocol::H2).await?;
    let (status, body) = read_all(
        admin_conn
            .send(admin.request(Method::GET, &path, None, None, Bytes::new())?)
            .await?,
    )
    .await?;
    if status != StatusCode::OK {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    let cm: Value = serde_json::from_slice(&body)?;
    let rv = cm["metadata"]["resourceVersion"]
        .as_str()
        .context("the ConfigMap has no resourceVersion")?
        .to_owned();
    let watch_path = format!(
        "/api/v1/namespaces/{}/configmaps?watch=1&fieldSelector=metadata.name%3D{}&resourceVersion={rv}&timeoutSeconds=3600",
        s.namespace, s.name
    );

    tokio::time::sleep(s.settle).await;
    let before = proc_stats(s.pid);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Report)>();
    let started = Instant::now();
    let mut conns: Vec<Conn> = Vec::new();
    let mut tasks = Vec::new();
    // Connections first (HTTP/1.1: one per watch, 32 handshakes at a time), then the watches.
    let connections = match s.protocol {
        Protocol::H2 => s.watches.div_ceil(s.streams_per_connection),
        Protocol::H1 => s.watches,
    };
    let mut opened_conns = futures::stream::iter(0..connections)
        .map(|_| target.connect(s.protocol))
        .buffered(32);
    while let Some(c) = opened_conns.next().await {
        conns.push(c?);
    }
    drop(opened_conns);
    let connect_seconds = started.elapsed().as_secs_f64();
    let aborts: Vec<tokio::task::AbortHandle> = conns.iter().map(Conn::abort_handle).collect();
    let shared: Vec<Conn> = conns.iter().filter_map(Conn::h2_clone).collect();
    let mut own = conns.into_iter();
    for id in 0..s.watches {
        // HTTP/2: the watch's stream on connection id / streams_per_connection; HTTP/1.1: a
        // connection of its own.
        let conn = match s.protocol {
            Protocol::H2 => shared
                .get(id / s.streams_per_connection)
                .and_then(Conn::h2_clone),
            Protocol::H1 => own.next(),
        };
        let Some(mut conn) = conn else {
            bail!("no connection for watch {id}");
        };
        let tx = tx.clone();
        let authority = target.authority.clone();
        let watch_path = watch_path.clone();
        let token = s.token.clone();
        tasks.push(tokio::spawn(async move {
            // A 429 (the kube-apiserver's priority and fairness, when many watches start at
            // once) is retried after its Retry-After, as client-go does.
            let mut retries = 0u32;
            let resp = loop {
                let req = match request(
                    &authority,
                    Method::GET,
                    &watch_path,
                    Some(&token),
                    None,
                    Bytes::new(),
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send((id, Report::Opened(Err(format!("{e:#}")))));
                        return;
                    }
                };
                let resp = match conn.send(req).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send((id, Report::Opened(Err(format!("{e:#}")))));
                        return;
                    }
                };
                if resp.status() == StatusCode::TOO_MANY_REQUESTS && retries < 30 {
                    retries += 1;
                    let wait = resp
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    let _ = read_all(resp).await;
                    let _ = tx.send((id, Report::Retried));
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                break resp;
            };
            if resp.status() != StatusCode::OK {
                let status = resp.status();
                let body = read_all(resp).await.map(|b| b.1).unwrap_or_default();
                let _ = tx.send((
                    id,
                    Report::Opened(Err(format!("{status}: {}", String::from_utf8_lossy(&body)))),
                ));
                return;
            }
            let _ = tx.send((id, Report::Opened(Ok(()))));
            let mut body = resp.into_body();
            let mut buf = BytesMut::new();
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        let at = Instant::now();
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        buf.extend_from_slice(&data);
                        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                            let line = buf.split_to(nl + 1);
                            if let Some(seq) = event_seq(&line) {
                                let _ = tx.send((id, Report::Event { seq, at }));
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let _ = tx.send((id, Report::Ended(format!("{e}"))));
                        return;
                    }
                    None => {
                        let _ = tx.send((id, Report::Ended("closed".to_owned())));
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);

    // Every watch answered (or the time is up).
    let mut opened = 0usize;
    let mut open_errors: Vec<String> = Vec::new();
    let mut ended: Vec<String> = Vec::new();
    let mut retries_429 = 0usize;
    let mut early: Vec<(usize, u32, Instant)> = Vec::new();
    let deadline = tokio::time::Instant::now() + s.open_timeout;
    while opened + open_errors.len() < s.watches {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((_, Report::Opened(Ok(()))))) => opened += 1,
            Ok(Some((_, Report::Retried))) => retries_429 += 1,
            Ok(Some((_, Report::Opened(Err(e))))) => open_errors.push(e),
            Ok(Some((_, Report::Ended(e)))) => ended.push(e),
            Ok(Some((id, Report::Event { seq, at }))) => early.push((id, seq, at)),
            Ok(None) | Err(_) => break,
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    let all_open = opened == s.watches;
    tokio::time::sleep(s.settle).await;
    let open = proc_stats(s.pid);

    // The events.
    let mut latencies_ms: Vec<f64> = Vec::new();
    let mut missed = 0usize;
    let mut per_event = Vec::new();
    if all_open {
        for seq in 1..=s.events {
            let patch = json!({"data": {"seq": seq.to_string()}}).to_string();
            let req = admin.request(
                Method::PATCH,
                &path,
                None,
                Some("application/merge-patch+json"),
                Bytes::from(patch),
            )?;
            let t0 = Instant::now();
            let (status, body) = read_all(admin_conn.send(req).await?).await?;
            let patched_ms = t0.elapsed().as_secs_f64() * 1000.0;
            if status != StatusCode::OK {
                bail!("PATCH {path}: {status}: {}", String::from_utf8_lossy(&body));
            }
            let mut got: HashMap<usize, f64> = HashMap::new();
            for (id, sq, at) in early.drain(..) {
                if sq == seq {
                    got.insert(id, at.saturating_duration_since(t0).as_secs_f64() * 1000.0);
                }
            }
            let deadline = tokio::time::Instant::now() + s.event_timeout;
            while got.len() < opened {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((id, Report::Event { seq: sq, at }))) if sq == seq => {
                        got.insert(id, at.saturating_duration_since(t0).as_secs_f64() * 1000.0);
                    }
                    Ok(Some((_, Report::Ended(e)))) => ended.push(e),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            missed += opened - got.len();
            let mut these: Vec<f64> = got.into_values().collect();
            these.sort_by(f64::total_cmp);
            per_event.push(json!({
                "seq": seq, "patch_ms": patched_ms,
                "first_ms": these.first(), "last_ms": these.last(),
            }));
            latencies_ms.extend(these);
            tokio::time::sleep(s.interval).await;
        }
    }

    // Close every watch and connection.
    for t in &tasks {
        t.abort();
    }
    for a in &aborts {
        a.abort();
    }
    drop(tasks);
    drop(shared);
    drop(own);
    tokio::time::sleep(s.settle).await;
    let after = proc_stats(s.pid);
    latencies_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "watches": s.watches,
        "protocol": match s.protocol { Protocol::H2 => "h2", Protocol::H1 => "h1" },
        "streams_per_connection": s.streams_per_connection,
        "connections": connections,
        "opened": opened,
        "open_errors": open_errors.len(),
        "retries_429": retries_429,
        "open_error_sample": open_errors.first(),
        "ended_early": ended.len(),
        "ended_sample": ended.first(),
        "connect_seconds": connect_seconds,
        "open_seconds": open_seconds,
        "events": s.events,
        "missed": missed,
        "latencies_ms": latencies_ms,
        "per_event": per_event,
        "before": before, "open": open, "after": after,
    }))
}

/// The `data.seq` of a MODIFIED watch event, if the line is one.
fn event_seq(line: &[u8]) -> Option<u32> {
    let v: Value = serde_json::from_slice(line).ok()?;
    if v["type"] != "MODIFIED" {
        return None;
    }
    v["object"]["data"]["seq"].as_str()?.parse().ok()
}

#[allow(clippy::too_many_arguments)]
async fn create_sas(
    target: &Target,
    prefix: &str,
    namespaces: usize,
    start: usize,
    count: usize,
    annotated_percent: usize,
    concurrency: usize,
    connections: usize,
) -> anyhow::Result<Value> {
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(target.connect(Protocol::H2).await?);
    }
    let t0 = Instant::now();
    for n in 0..namespaces {
        let body = json!({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": format!("{prefix}{n:03}")}});
        let req = target.request(
            Method::POST,
            "/api/v1/namespaces",
            None,
            Some("application/json"),
            Bytes::from(body.to_string()),
        )?;
        let (status, text) = read_all(conns[0].send(req).await?).await?;
        if status != StatusCode::CREATED && status != StatusCode::CONFLICT {
            bail!(
                "creating namespace {n}: {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    let senders: Vec<Conn> = conns.iter().filter_map(Conn::h2_clone).collect();
    let mut results = futures::stream::iter(start..start + count)
        .map(|i| {
            let ns = format!("{prefix}{:03}", i % namespaces);
            let mut meta = json!({"name": format!("sa-{i:06}"), "namespace": ns,
                                  "labels": {"app.kubernetes.io/name": format!("app-{}", i % 300),
                                             "bench": "scale"}});
            if i % 100 < annotated_percent {
                meta["annotations"] = json!({
                    "gatehouse.dev/claim.email": format!("user-{i}@example.com"),
                    "gatehouse.dev/claim.groups": format!("team-{}, platform", i % 50),
                });
            }
            let body = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
            let req = target.request(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                None,
                Some("application/json"),
                Bytes::from(body.to_string()),
            );
            let conn = senders.get(i % senders.len()).and_then(Conn::h2_clone);
            async move {
                let mut conn = conn.context("no connection")?;
                let (status, text) = read_all(conn.send(req?).await?).await?;
                if status != StatusCode::CREATED && status != StatusCode::CONFLICT {
                    bail!(
                        "creating sa-{i:06}: {status}: {}",
                        String::from_utf8_lossy(&text)
                    );
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency);
    let mut created = 0usize;
    while let Some(r) = results.next().await {
        r?;
        created += 1;
        if created.is_multiple_of(10_000) {
            eprintln!("[bench-watch] {created} ServiceAccounts");
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    for c in &conns {
        c.abort();
    }
    Ok(json!({"created": created, "seconds": seconds, "per_second": created as f64 / seconds}))
}

async fn delete_namespaces(target: &Target, prefix: &str, namespaces: usize) -> anyhow::Result<()> {
    let mut conn = target.connect(Protocol::H2).await?;
    for n in 0..namespaces {
        let ns = format!("{prefix}{n:03}");
        let steps = [
            (
                Method::DELETE,
                format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                Bytes::new(),
            ),
            (
                Method::DELETE,
                format!("/api/v1/namespaces/{ns}"),
                Bytes::new(),
            ),
            (
                Method::PUT,
                format!("/api/v1/namespaces/{ns}/finalize"),
                Bytes::from(
                    json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ns}, "spec": {"finalizers": []}})
                    .to_string(),
                ),
            ),
        ];
        for (method, path, body) in steps {
            let ct = (!body.is_empty()).then_some("application/json");
            let req = target.request(method.clone(), &path, None, ct, body)?;
            let (status, text) = read_all(conn.send(req).await?).await?;
            if !status.is_success() && status != StatusCode::NOT_FOUND {
                bail!(
                    "{method} {path}: {status}: {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }
    conn.abort();
    Ok(())
}
