//! Connections to the kube-apiserver.
//!
//! # Security: two identities, never mixed
//! gatehouse talks to the kube-apiserver as two different clients:
//!
//! - **privileged**: gatehouse's own credentials (client certificate or ServiceAccount token).
//!   Used only for requests that carry `Impersonate-*` headers set by gatehouse, and for
//!   gatehouse's own reviews and ServiceAccount watch. That identity should be granted nothing
//!   but impersonation, reviews and reading ServiceAccounts.
//! - **anonymous**: TLS to the same server with the same CA, but *no* client certificate and no
//!   token of gatehouse's. Used for fall-through, with the user's own bearer token.
//!
//! The split matters: the kube-apiserver tries client certificates before bearer tokens, so a
//! fall-through request sent over a connection that presents gatehouse's certificate would be
//! authenticated as gatehouse, not as the user. Keeping separate connection pools makes that
//! impossible by construction.
//!
//! The privileged identity has an HTTP/2 pool (ALPN, connection reuse, many streams per
//! connection) and an HTTP/1.1 pool for upgrade requests (exec, attach, port-forward, WebSocket
//! watch), which cannot run over HTTP/2.
//!
//! # HTTP/2: a new connection when one is full, up to a cap
//! The kube-apiserver allows a number of concurrent streams per HTTP/2 connection
//! (`--http2-max-streams-per-connection`, 100 by default since the fixes for CVE-2023-44487;
//! 250 before; aggregated API servers default to 1000), and every mapped user's requests share
//! gatehouse's privileged connections. hyper's pool keeps one HTTP/2 connection per server and
//! queues a request for which that connection has no free stream until one ends: with a
//! hundred watches open (each a stream for as long as it runs), every further mapped request,
//! watch or not, waited behind them. client-go opens another connection then, and so does
//! [`H2Pool`]: each of its connections (a hyper client of its own) carries at most
//! [`PoolLimits::streams_per_connection`] requests at once (`kubernetes.maxStreamsPerConnection`,
//! default 100), counted from sending until the response body ends or is dropped
//! ([`UpstreamBody`]), and a request for which every connection is full gets a new one.
//!
//! That limit must not exceed what the server announces in `SETTINGS_MAX_CONCURRENT_STREAMS`:
//! gatehouse cannot see the announced value through hyper, and a request sent on a connection
//! the server considers full is parked by hyper until a stream ends, which for watches is
//! never (`a_limit_above_the_servers_parks_the_request_past_it`). Set it to the server's limit
//! when it is lower than 100: an HTTP/2 front before the kube-apiserver (HAProxy, Envoy, a cloud
//! load balancer) may announce its own.
//!
//! There are at most [`PoolLimits::connections`] such connections (`kubernetes.maxConnections`,
//! default 100, so 10,000 concurrent mapped requests): without a cap one mapped identity opening
//! 100,000 watches made 1,000 TLS connections to the kube-apiserver under gatehouse's
//! certificate. A request for which all of them are full is refused at once with
//! [`PoolFull`], which the proxy answers 429 with `Retry-After: 1` (client-go retries it);
//! queueing it would bring back the hang above. The cap is shared by every mapped user and the
//! admin: one identity holding every stream makes the others' requests wait for 429 retries
//! too (the kube-apiserver's own limits per user, API Priority and Fairness, apply behind
//! gatehouse, not to how many streams gatehouse opens). `gatehouse_upstream_h2_connections`
//! counts the connections carrying requests, `gatehouse_upstream_pool_refused_total` the
//! refusals. Connections that carry nothing close after the pool's idle timeout as before and
//! are reopened when needed. (A server that does not offer HTTP/2 in ALPN gets HTTP/1.1, one
//! connection per request, still at most `maxConnections × maxStreamsPerConnection` at once.)
//!
//! # HTTP/2 flow control: one stalled reader pins only its own stream
//! Each stream may receive [`STREAM_WINDOW`] (2 MiB, hyper's default) before gatehouse reads
//! it, and each connection `maxStreamsPerConnection × STREAM_WINDOW` (at most HTTP/2's largest
//! window, 2 GiB - 1). hyper's default connection window, 5 MiB, is shared by every stream of
//! the connection: a few readers that stall (a suspended `kubectl logs -f`, a client that stops
//! reading a watch) pinned it, and every other mapped user's streams on that connection froze
//! (`stalled_readers_never_freeze_other_streams_on_their_connection`). Now a stalled stream pins
//! only its own window. The cost is memory: what gatehouse may hold unread is one stream
//! window per stalled stream, at most `maxStreamsPerConnection × 2 MiB` per connection (200 MiB
//! at the defaults) and `maxConnections` times that in all, reached only if every stream
//! stalls with a full window.
//!
//! # Security: fall-through never shares an HTTP/2 connection between users
//! The anonymous identity uses HTTP/1.1 only (a pooled keep-alive connection carries one
//! request at a time). The kube-apiserver answers a request it cannot authenticate over HTTP/2
//! with `Connection: close`, which Go's server turns into a GOAWAY for the whole connection
//! (`UnauthenticatedHTTP2DOSMitigation`, after CVE-2023-44487): streams other users had just
//! opened on it are refused. Multiplexed, one client sending garbage tokens made every other
//! user's concurrent fall-through requests fail (a third of them in
//! `e2e_security::a_bad_token_of_one_client_never_fails_another_users_requests`). Over HTTP/1.1
//! a refused token closes only its own connection. Privileged requests keep HTTP/2: they are
//! all authenticated as gatehouse, so the mitigation never fires on them; a GOAWAY the
//! kube-apiserver sends for other reasons (shutdown, `--goaway-chance`) gives a 503 with
//! `Retry-After: 1`, which client-go retries ([`crate::status::ApiError::retry_after`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::RwLock;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// How much one HTTP/2 stream from the kube-apiserver may receive before gatehouse reads it
/// (hyper's default); each connection's window is this times the streams it carries (see the
/// module's "HTTP/2 flow control").
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// HTTP/2's largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// How many privileged HTTP/2 connections, of how many concurrent requests each, gatehouse
/// opens at most (see the module's "HTTP/2: a new connection when one is full, up to a cap").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// `kubernetes.maxStreamsPerConnection` (at least 1).
    pub streams_per_connection: usize,
    /// `kubernetes.maxConnections` (at least 1).
    pub connections: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self::from(&crate::config::KubernetesConfig::default())
    }
}

impl From<&crate::config::KubernetesConfig> for PoolLimits {
    fn from(k: &crate::config::KubernetesConfig) -> Self {
        Self {
            streams_per_connection: k.max_streams_per_connection.max(1),
            connections: k.max_connections.max(1),
        }
    }
}

impl PoolLimits {
    /// The connection-level window: one [`STREAM_WINDOW`] per stream the connection carries,
    /// at most HTTP/2's largest window.
    fn connection_window(self) -> u32 {
        let streams = u32::try_from(self.streams_per_connection).unwrap_or(u32::MAX);
        streams.saturating_mul(STREAM_WINDOW).min(MAX_WINDOW)
    }
}

/// Every privileged HTTP/2 connection carries its limit of requests and there are
/// `kubernetes.maxConnections` of them: the request is refused rather than queued (the proxy
/// answers 429 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "gatehouse has {connections} HTTP/2 connections to the kube-apiserver for mapped users (kubernetes.maxConnections), and each is carrying its limit of {streams_per_connection} concurrent requests (kubernetes.maxStreamsPerConnection), most likely long-running watches and log streams; rather than queue this request behind them, gatehouse refused it. Try again shortly, close watches and `logs -f` you no longer need, or ask the platform team to raise kubernetes.maxConnections"
)]
pub struct PoolFull {
    /// Connections open (the cap).
    pub connections: usize,
    /// Requests each carries.
    pub streams_per_connection: usize,
}

/// A request could not be sent to the kube-apiserver.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The privileged HTTP/2 pool is full ([`PoolFull`]); nothing was sent.
    #[error(transparent)]
    PoolFull(PoolFull),
    /// The kube-apiserver could not be reached, or the connection failed.
    #[error(transparent)]
    Unavailable(#[from] hyper_util::client::legacy::Error),
}

/// The privileged HTTP/2 pool's metrics, registered by [`crate::metrics::Metrics::register_pool`].
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    /// Connections carrying at least one request.
    pub connections: prometheus_client::metrics::gauge::Gauge,
    /// Requests refused because every connection was full at the cap.
    pub refused: prometheus_client::metrics::counter::Counter,
}

/// Which identity a request is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// gatehouse's own credentials (the request carries impersonation headers).
    Privileged,
    /// No credentials of gatehouse's; the request carries the user's token.
    Anonymous,
}

/// The prefix of the extra keys gatehouse sets on [`Identity::Privileged`] (impersonated)
/// requests: `Impersonate-Extra-gatehouse.dev%2F<key>` ([`crate::proxy`] writes them, and
/// [`crate::health`] checks gatehouse may impersonate them).
pub const EXTRA_PREFIX: &str = "gatehouse.dev";

/// Could not set up the connection to the kube-apiserver.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The kubeconfig or in-cluster configuration could not be loaded.
    #[error("cannot load the Kubernetes client configuration: {0}")]
    Config(String),
    /// TLS could not be configured.
    #[error("cannot configure TLS to the kube-apiserver: {0}")]
    Tls(String),
    /// The credentials cannot be used by the proxy.
    #[error("{0}")]
    Unsupported(String),
}

/// The kube-apiserver, with one pool per identity and protocol (anonymous: HTTP/1.1 only).
pub struct Upstream {
    base: Uri,
    privileged_h2: H2Pool,
    privileged_h1: HttpsClient,
    anonymous_h1: HttpsClient,
    token: Option<TokenSource>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the pools from a kube client configuration, the privileged HTTP/2 pool within
    /// `limits`.
    pub fn new(config: &kube::Config, limits: PoolLimits) -> Result<Self, UpstreamError> {
        let auth = &config.auth_info;
        if auth.exec.is_some() || auth.auth_provider.is_some() {
            return Err(UpstreamError::Unsupported(
                "gatehouse's own kubeconfig user uses an exec or auth-provider plugin, which the proxy cannot use; give gatehouse a client certificate or a token (in a cluster, its ServiceAccount token is used automatically)".to_owned(),
            ));
        }
        let privileged_tls = config
            .rustls_client_config()
            .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        let mut anonymous = config.clone();
        anonymous.auth_info = Default::default();
        let anonymous_tls = anonymous
            .rustls_client_config()
            .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        let token = match (&auth.token, &auth.token_file) {
            (Some(t), _) => Some(TokenSource::Static(t.clone())),
            (None, Some(file)) => Some(TokenSource::File {
                path: file.into(),
                cached: RwLock::new(None),
            }),
            (None, None) => None,
        };
        Ok(Self {
            base: config.cluster_url.clone(),
            privileged_h2: H2Pool::new(privileged_tls.clone(), limits),
            privileged_h1: client(privileged_tls, None),
            anonymous_h1: client(anonymous_tls, None),
            token,
        })
    }

    /// The kube-apiserver URL.
    pub fn base(&self) -> &Uri {
        &self.base
    }

    /// Rewrites a path-and-query onto the kube-apiserver URL.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let base_path = self.base.path().trim_end_matches('/');
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(format!("{base_path}{path_and_query}").parse()?);
        Ok(Uri::from_parts(parts)?)
    }

    /// Sends a request. Privileged requests may use HTTP/2 (upgrades go over HTTP/1.1);
    /// anonymous (fall-through) requests always use HTTP/1.1 (see the module's Security). A
    /// privileged HTTP/2 request is refused with [`SendError::PoolFull`] when every connection
    /// of the pool is full at the cap.
    pub async fn send(
        &self,
        identity: Identity,
        upgrade: bool,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let (client, slot) = match (identity, upgrade) {
            (Identity::Privileged, false) => {
                let (client, slot) = self.privileged_h2.acquire().map_err(SendError::PoolFull)?;
                (client, Some(slot))
            }
            (Identity::Privileged, true) => (self.privileged_h1.clone(), None),
            (Identity::Anonymous, _) => (self.anonymous_h1.clone(), None),
        };
        if identity == Identity::Privileged
            && let Some(token) = &self.token
            && let Some(value) = token.header().await
        {
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        let resp = client.request(req).await?;
        Ok(resp.map(|inner| UpstreamBody { inner, slot }))
    }

    /// HTTP/2 connections of the privileged pool (tests).
    #[doc(hidden)]
    pub fn h2_connections_for_tests(&self) -> usize {
        self.privileged_h2.connections()
    }

    /// The privileged HTTP/2 pool's metrics ([`crate::metrics::Metrics::register_pool`]).
    pub fn pool_metrics(&self) -> &PoolMetrics {
        &self.privileged_h2.metrics
    }
}

/// The privileged HTTP/2 pool: at most `limits.connections` connections of at most
/// `limits.streams_per_connection` concurrent requests each, a new one when all are full (see
/// the module's "HTTP/2: a new connection when one is full, up to a cap").
struct H2Pool {
    tls: rustls::ClientConfig,
    limits: PoolLimits,
    /// One hyper client per connection, with the number of requests it carries. Never more
    /// than `limits.connections`; an entry carrying nothing stays, its connection closed by
    /// hyper when idle, and is reused first.
    connections: Mutex<Vec<(HttpsClient, Arc<InFlight>)>>,
    metrics: PoolMetrics,
    /// When the pool last logged that it is full ([`H2Pool::warn_full`]).
    warned: Mutex<Option<Instant>>,
}

/// The requests one connection of [`H2Pool`] carries.
#[derive(Debug)]
struct InFlight {
    count: AtomicUsize,
    /// [`PoolMetrics::connections`]: one while `count` is above zero.
    busy: prometheus_client::metrics::gauge::Gauge,
}

impl H2Pool {
    fn new(tls: rustls::ClientConfig, limits: PoolLimits) -> Self {
        Self {
            tls,
            limits: PoolLimits {
                streams_per_connection: limits.streams_per_connection.max(1),
                connections: limits.connections.max(1),
            },
            connections: Mutex::new(Vec::new()),
            metrics: PoolMetrics::default(),
            warned: Mutex::new(None),
        }
    }

    /// The first connection with a free stream (a new one if none has and the cap allows),
    /// and the stream; [`PoolFull`] when every connection is full at the cap.
    fn acquire(&self) -> Result<(HttpsClient, StreamSlot), PoolFull> {
        let mut connections = match self.connections.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let per_connection = self.limits.streams_per_connection;
        let free = connections
            .iter()
            .find(|(_, n)| n.count.load(Ordering::Acquire) < per_connection);
        let (client, in_flight) = match free {
            Some((client, in_flight)) => (client.clone(), Arc::clone(in_flight)),
            None if connections.len() < self.limits.connections => {
                let client = client(self.tls.clone(), Some(self.limits));
                let in_flight = Arc::new(InFlight {
                    count: AtomicUsize::new(0),
                    busy: self.metrics.connections.clone(),
                });
                connections.push((client.clone(), Arc::clone(&in_flight)));
                if connections.len() > 1 {
                    tracing::debug!(
                        connections = connections.len(),
                        "every HTTP/2 connection to the kube-apiserver is full; one more"
                    );
                }
                (client, in_flight)
            }
            None => {
                self.metrics.refused.inc();
                self.warn_full(connections.len());
                return Err(PoolFull {
                    connections: connections.len(),
                    streams_per_connection: per_connection,
                });
            }
        };
        // Counted under the lock, so two requests never take the same last stream.
        if in_flight.count.fetch_add(1, Ordering::AcqRel) == 0 {
            in_flight.busy.inc();
        }
        Ok((client, StreamSlot(in_flight)))
    }

    /// Logs that the pool is full at the cap, at most once a minute (every refusal is counted
    /// in [`PoolMetrics::refused`]; a retry storm must not flood the log).
    fn warn_full(&self, connections: usize) {
        let mut warned = match self.warned.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            tracing::warn!(
                connections,
                streams_per_connection = self.limits.streams_per_connection,
                "every HTTP/2 connection to the kube-apiserver is full at kubernetes.maxConnections: mapped requests are refused with 429 (counted in gatehouse_upstream_pool_refused_total); raise kubernetes.maxConnections if this is normal load"
            );
        }
    }

    fn connections(&self) -> usize {
        match self.connections.lock() {
            Ok(c) => c.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// The requests each connection carries (tests).
    #[cfg(test)]
    fn in_flight(&self) -> Vec<usize> {
        let connections = match self.connections.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        connections
            .iter()
            .map(|(_, n)| n.count.load(Ordering::Acquire))
            .collect()
    }
}

/// A request's place on an HTTP/2 connection of [`H2Pool`], given back when dropped.
#[derive(Debug)]
struct StreamSlot(Arc<InFlight>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.busy.dec();
        }
    }
}

/// The kube-apiserver's response body; on HTTP/2 it holds its stream's place in the pool
/// until it ends or is dropped.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    slot: Option<StreamSlot>,
}

impl http_body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            self.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A hyper client; with `http2` (the privileged HTTP/2 pool's limits) it offers HTTP/2 too,
/// with a connection window of one stream window per stream (see the module's "HTTP/2 flow
/// control").
fn client(tls: rustls::ClientConfig, http2: Option<PoolLimits>) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    // A kube-apiserver that vanishes without closing is noticed (upgraded tunnels included).
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = if http2.is_some() {
        builder.enable_http1().enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_while_idle(true)
        .timer(hyper_util::rt::TokioTimer::new());
    if let Some(limits) = http2 {
        client
            .http2_initial_stream_window_size(STREAM_WINDOW)
            .http2_initial_connection_window_size(limits.connection_window());
    }
    client.build(connector)
}

/// gatehouse's own bearer token: fixed, or read from a file that the kubelet rotates.
enum TokenSource {
    Static(SecretString),
    File {
        path: std::path::PathBuf,
        cached: RwLock<Option<(Instant, HeaderValue)>>,
    },
}

impl TokenSource {
    async fn header(&self) -> Option<HeaderValue> {
        match self {
            TokenSource::Static(t) => bearer(t.expose_secret()),
            TokenSource::File { path, cached } => {
                if let Some((at, value)) = cached.read().await.as_ref()
                    && at.elapsed() < Duration::from_secs(60)
                {
                    return Some(value.clone());
                }
                let text = match tokio::fs::read_to_string(path).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot read gatehouse's own token file");
                        return None;
                    }
                };
                let value = bearer(text.trim())?;
                *cached.write().await = Some((Instant::now(), value.clone()));
                Some(value)
            }
        }
    }
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// Loads the kube client configuration: the configured kubeconfig, or in-cluster.
pub async fn load_kube_config(
    k: &crate::config::KubernetesConfig,
) -> Result<kube::Config, UpstreamError> {
    let options = kube::config::KubeConfigOptions {
        context: k.context.clone(),
        ..Default::default()
    };
    match &k.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| UpstreamError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| UpstreamError::Config(format!("{}: {e}", path.display())))
        }
        None => kube::Config::incluster().map_err(|e| {
            UpstreamError::Config(format!(
                "no kubernetes.kubeconfig is configured and the in-cluster configuration is unavailable ({e}); set kubernetes.kubeconfig"
            ))
        }),
    }
}

/// Keeps a shared handle cheap to clone.
pub type SharedUpstream = Arc<Upstream>;

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::{BodyExt as _, StreamBody};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;

    const CERT: &str = include_str!("../testdata/upstream-test.crt");
    const KEY: &str = include_str!("../testdata/upstream-test.key");

    type Frames = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<http_body::Frame<Bytes>, Infallible>> + Send>,
    >;

    /// An HTTP/2-only TLS server allowing `streams` concurrent streams per connection, as the
    /// kube-apiserver does: `/watch` answers 200 at once and never ends its body, `/flood`
    /// answers 200 and sends 64 KiB chunks for ever (as fast as flow control lets it), anything
    /// else answers `ok`. Returns its port and the number of connections it accepted.
    async fn h2_server(streams: u32) -> (u16, Arc<AtomicUsize>) {
        let certs = vec![CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let tls = acceptor.accept(tcp).await.unwrap();
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let frames: Frames = match req.uri().path() {
                            "/watch" => Box::pin(futures::stream::pending()),
                            "/flood" => Box::pin(futures::stream::repeat_with(|| {
                                Ok(http_body::Frame::data(Bytes::from(vec![b'x'; 64 * 1024])))
                            })),
                            _ => Box::pin(futures::stream::once(async {
                                Ok(http_body::Frame::data(Bytes::from_static(b"ok")))
                            })),
                        };
                        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(streams)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (port, accepted)
    }

    fn upstream(port: u16, streams_per_connection: usize, connections: usize) -> Upstream {
        let mut kc = kube::Config::new(format!("https://127.0.0.1:{port}").parse().unwrap());
        kc.root_cert = Some(vec![
            CertificateDer::from_pem_slice(CERT.as_bytes())
                .unwrap()
                .to_vec(),
        ]);
        let limits = PoolLimits {
            streams_per_connection,
            connections,
        };
        Upstream::new(&kc, limits).unwrap()
    }

    /// Sends a privileged GET; panics when it is not answered within `within`.
    async fn try_send(
        up: &Upstream,
        path: &str,
        within: Duration,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let req = Request::get(up.uri_for(path).unwrap())
            .body(Body::empty())
            .unwrap();
        tokio::time::timeout(within, up.send(Identity::Privileged, false, req))
            .await
            .unwrap_or_else(|_| {
                panic!("{path}: no answer within {within:?} (queued behind full streams?)")
            })
    }

    async fn send(up: &Upstream, path: &str) -> Response<UpstreamBody> {
        try_send(up, path, Duration::from_secs(5)).await.unwrap()
    }

    /// Reads a short answer's body, within 5 s.
    async fn ok_body(resp: Response<UpstreamBody>) -> Bytes {
        tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
            .await
            .expect("the body did not arrive within 5 s (flow control exhausted?)")
            .unwrap()
            .to_bytes()
    }

    /// `n` open watches.
    async fn watches(up: &Upstream, n: usize) -> Vec<Response<UpstreamBody>> {
        let mut open = Vec::new();
        for _ in 0..n {
            let resp = send(up, "/watch").await;
            assert_eq!(resp.status(), StatusCode::OK);
            open.push(resp);
        }
        open
    }

    const DEFAULT_STREAMS: usize = crate::config::DEFAULT_MAX_STREAMS_PER_CONNECTION;

    #[tokio::test]
    async fn more_open_watches_than_one_connections_streams_get_another_connection() {
        let (port, accepted) = h2_server(DEFAULT_STREAMS as u32).await;
        let up = upstream(port, DEFAULT_STREAMS, 100);
        let mut open = watches(&up, DEFAULT_STREAMS + 1).await;
        // One stream more than a connection allows are open: a short request still goes through.
        assert_eq!(ok_body(send(&up, "/version").await).await, "ok");
        assert_eq!(up.h2_connections_for_tests(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(up.pool_metrics().connections.get(), 2);

        // Closed watches give their streams back: later requests reuse the connections.
        open.clear();
        assert_eq!(up.privileged_h2.in_flight(), [0, 0]);
        assert_eq!(up.pool_metrics().connections.get(), 0);
        for _ in 0..2 * DEFAULT_STREAMS {
            assert_eq!(ok_body(send(&up, "/version").await).await, "ok");
        }
        // As many watches as before again: the two connections carry them, no third is opened
        // (a stream not given back when its watch closed would need one).
        let _again = watches(&up, DEFAULT_STREAMS + 1).await;
        assert_eq!(up.privileged_h2.in_flight(), [DEFAULT_STREAMS, 1]);
        assert_eq!(up.h2_connections_for_tests(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stream_is_given_back_when_its_body_is_dropped_or_ends() {
        let (port, accepted) = h2_server(DEFAULT_STREAMS as u32).await;
        let up = upstream(port, 2, 100);
        let pool = &up.privileged_h2;
        let mut open = watches(&up, 3).await;
        assert_eq!(pool.in_flight(), [2, 1]);
        // The response body alone, dropped unread (the client went away).
        let body: UpstreamBody = open.remove(0).into_body();
        assert_eq!(pool.in_flight(), [2, 1], "the body still holds its stream");
        drop(body);
        assert_eq!(pool.in_flight(), [1, 1]);
        // The whole response.
        drop(open.remove(0));
        assert_eq!(pool.in_flight(), [0, 1]);
        // A body read to its end gives its stream back before it is dropped.
        let resp = send(&up, "/version").await;
        assert_eq!(pool.in_flight(), [1, 1]);
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
        assert_eq!(pool.in_flight(), [0, 1]);
        drop(body);
        // The freed streams are reused.
        let _more = watches(&up, 3).await;
        assert_eq!(pool.in_flight(), [2, 2]);
        assert_eq!(pool.connections(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_server_allowing_fewer_streams_works_with_the_limit_set_to_its_own() {
        // An HTTP/2 front (HAProxy, a load balancer) announcing 50 streams per connection.
        let (port, accepted) = h2_server(50).await;
        let up = upstream(port, 50, 100);
        let _open = watches(&up, 51).await;
        assert_eq!(ok_body(send(&up, "/version").await).await, "ok");
        assert_eq!(up.h2_connections_for_tests(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_limit_above_the_servers_parks_the_request_past_it() {
        // Why kubernetes.maxStreamsPerConnection must not exceed the server's limit: hyper
        // parks the request on the full connection, and with watches open it waits for ever.
        let (port, _) = h2_server(50).await;
        let up = upstream(port, 100, 100);
        let _open = watches(&up, 50).await;
        let req = Request::get(up.uri_for("/version").unwrap())
            .body(Body::empty())
            .unwrap();
        let parked = tokio::time::timeout(
            Duration::from_millis(500),
            up.send(Identity::Privileged, false, req),
        )
        .await;
        assert!(parked.is_err(), "answered: the server's limit was not hit");
    }

    #[tokio::test]
    async fn at_max_connections_a_request_is_refused_at_once_not_queued() {
        let (port, accepted) = h2_server(DEFAULT_STREAMS as u32).await;
        let up = upstream(port, 2, 2);
        let mut open = watches(&up, 4).await;
        let refused = try_send(&up, "/version", Duration::from_secs(1)).await;
        assert!(
            matches!(
                refused,
                Err(SendError::PoolFull(PoolFull {
                    connections: 2,
                    streams_per_connection: 2
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(up.h2_connections_for_tests(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(up.pool_metrics().refused.get(), 1);
        assert_eq!(up.pool_metrics().connections.get(), 2);
        // The proxy answers it 429 with Retry-After
        // (`status::tests::a_full_upstream_pool_is_429_with_retry_after_and_says_what_to_do`).
        // Once a watch closes, requests go through again, on the connections there are.
        drop(open.pop());
        assert_eq!(ok_body(send(&up, "/version").await).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Fall-through (HTTP/1.1, no cap of this pool) is not refused by it; the test server
        // speaks HTTP/2 only, so it fails to connect instead of answering.
        let req = Request::get(up.uri_for("/version").unwrap())
            .body(Body::empty())
            .unwrap();
        let other = up.send(Identity::Anonymous, false, req).await;
        assert!(matches!(other, Err(SendError::Unavailable(_))), "{other:?}");
    }

    #[tokio::test]
    async fn stalled_readers_never_freeze_other_streams_on_their_connection() {
        let (port, accepted) = h2_server(DEFAULT_STREAMS as u32).await;
        let up = upstream(port, DEFAULT_STREAMS, 100);
        // Four streams that nobody reads (suspended `kubectl logs -f`): 8 MiB of stream windows,
        // more than hyper's default 5 MiB connection window.
        let mut stalled = Vec::new();
        for _ in 0..4 {
            let resp = send(&up, "/flood").await;
            assert_eq!(resp.status(), StatusCode::OK);
            stalled.push(resp);
        }
        // Let the server fill every window it is given.
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Another user's request on the same connection still gets its body.
        assert_eq!(ok_body(send(&up, "/version").await).await, "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection carried all"
        );
        // A stalled stream holds one stream window at most: read one, it flows on.
        let mut body = stalled.remove(0).into_body();
        let mut read = 0;
        while read < 4 * STREAM_WINDOW as usize {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            read += frame.into_data().map_or(0, |d| d.len());
        }
    }

    #[test]
    fn the_connection_window_is_one_stream_window_per_stream() {
        let window = |streams| {
            PoolLimits {
                streams_per_connection: streams,
                connections: 1,
            }
            .connection_window()
        };
        assert_eq!(window(1), STREAM_WINDOW);
        assert_eq!(window(100), 100 * STREAM_WINDOW);
        // HTTP/2's largest window is 2^31 - 1: beyond 1023 streams of 2 MiB it is the cap.
        assert_eq!(window(1023), 1023 * STREAM_WINDOW);
        assert_eq!(window(1024), MAX_WINDOW);
        assert_eq!(window(usize::MAX), MAX_WINDOW);
        assert_eq!(PoolLimits::default().streams_per_connection, 100);
        assert_eq!(PoolLimits::default().connections, 100);
    }
}
