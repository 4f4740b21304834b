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
//! # HTTP/2: a new connection when one is full
//! The kube-apiserver allows [`STREAMS_PER_CONNECTION`] concurrent streams per HTTP/2
//! connection by default (`--http2-max-streams-per-connection`), and every mapped user's
//! requests share gatehouse's privileged connections. hyper's pool keeps one HTTP/2 connection
//! per server and queues a request for which that connection has no free stream until one ends:
//! with a hundred watches open (each a stream for as long as it runs), every further mapped
//! request, watch or not, waited behind them. client-go opens another connection then, and so
//! does [`H2Pool`]: each of its connections (a hyper client of its own) carries at most
//! [`STREAMS_PER_CONNECTION`] requests at once, counted from sending until the response body
//! ends or is dropped ([`UpstreamBody`]), and a request for which every connection is full gets
//! a new one. Idle connections close after the pool's idle timeout as before.
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

/// Concurrent requests gatehouse sends over one HTTP/2 connection to the kube-apiserver: the
/// kube-apiserver's default limit of streams per connection (`--http2-max-streams-per-connection`
/// 0 means 100 since Kubernetes 1.29; only aggregated API servers default to 1000).
pub const STREAMS_PER_CONNECTION: usize = 100;

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
    /// Builds the pools from a kube client configuration.
    pub fn new(config: &kube::Config) -> Result<Self, UpstreamError> {
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
            privileged_h2: H2Pool::new(privileged_tls.clone(), STREAMS_PER_CONNECTION),
            privileged_h1: client(privileged_tls, false),
            anonymous_h1: client(anonymous_tls, false),
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
    /// anonymous (fall-through) requests always use HTTP/1.1 (see the module's Security).
    pub async fn send(
        &self,
        identity: Identity,
        upgrade: bool,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, hyper_util::client::legacy::Error> {
        if identity == Identity::Privileged
            && let Some(token) = &self.token
            && let Some(value) = token.header().await
        {
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        let (client, slot) = match (identity, upgrade) {
            (Identity::Privileged, false) => {
                let (client, slot) = self.privileged_h2.acquire();
                (client, Some(slot))
            }
            (Identity::Privileged, true) => (self.privileged_h1.clone(), None),
            (Identity::Anonymous, _) => (self.anonymous_h1.clone(), None),
        };
        let resp = client.request(req).await?;
        Ok(resp.map(|inner| UpstreamBody { inner, slot }))
    }

    /// HTTP/2 connections of the privileged pool (tests).
    #[doc(hidden)]
    pub fn h2_connections_for_tests(&self) -> usize {
        self.privileged_h2.connections()
    }
}

/// The privileged HTTP/2 pool: connections of at most `per_connection` concurrent requests
/// each, a new one when all are full (see the module's "HTTP/2: a new connection when one is
/// full").
struct H2Pool {
    tls: rustls::ClientConfig,
    per_connection: usize,
    /// One hyper client per connection, with the number of requests it carries.
    connections: Mutex<Vec<(HttpsClient, Arc<AtomicUsize>)>>,
}

impl H2Pool {
    fn new(tls: rustls::ClientConfig, per_connection: usize) -> Self {
        Self {
            tls,
            per_connection: per_connection.max(1),
            connections: Mutex::new(Vec::new()),
        }
    }

    /// The first connection with a free stream (a new one if none has), and the stream.
    fn acquire(&self) -> (HttpsClient, StreamSlot) {
        let mut connections = match self.connections.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let free = connections
            .iter()
            .find(|(_, n)| n.load(Ordering::Acquire) < self.per_connection);
        let (client, count) = match free {
            Some((client, count)) => (client.clone(), Arc::clone(count)),
            None => {
                let client = client(self.tls.clone(), true);
                let count = Arc::new(AtomicUsize::new(0));
                connections.push((client.clone(), Arc::clone(&count)));
                if connections.len() > 1 {
                    tracing::debug!(
                        connections = connections.len(),
                        "every HTTP/2 connection to the kube-apiserver is full; one more"
                    );
                }
                (client, count)
            }
        };
        // Counted under the lock, so two requests never take the same last stream.
        count.fetch_add(1, Ordering::AcqRel);
        (client, StreamSlot(count))
    }

    fn connections(&self) -> usize {
        match self.connections.lock() {
            Ok(c) => c.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }
}

/// A request's place on an HTTP/2 connection of [`H2Pool`], given back when dropped.
#[derive(Debug)]
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

fn client(tls: rustls::ClientConfig, http2: bool) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    // A kube-apiserver that vanishes without closing is noticed (upgraded tunnels included).
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = if http2 {
        builder.enable_http1().enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_while_idle(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
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
    /// kube-apiserver does: `/watch` answers 200 at once and never ends its body, anything
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
                        let frames: Frames = if req.uri().path() == "/watch" {
                            Box::pin(futures::stream::pending())
                        } else {
                            Box::pin(futures::stream::once(async {
                                Ok(http_body::Frame::data(Bytes::from_static(b"ok")))
                            }))
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

    fn upstream(port: u16) -> Upstream {
        let mut kc = kube::Config::new(format!("https://127.0.0.1:{port}").parse().unwrap());
        kc.root_cert = Some(vec![
            CertificateDer::from_pem_slice(CERT.as_bytes())
                .unwrap()
                .to_vec(),
        ]);
        Upstream::new(&kc).unwrap()
    }

    async fn send(up: &Upstream, path: &str) -> Response<UpstreamBody> {
        let req = Request::get(up.uri_for(path).unwrap())
            .body(Body::empty())
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            up.send(Identity::Privileged, false, req),
        )
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer within 5 s (queued behind full streams?)"))
        .unwrap()
    }

    #[tokio::test]
    async fn more_open_watches_than_one_connections_streams_get_another_connection() {
        let (port, accepted) = h2_server(STREAMS_PER_CONNECTION as u32).await;
        let up = upstream(port);
        let mut watches = Vec::new();
        for _ in 0..=STREAMS_PER_CONNECTION {
            let resp = send(&up, "/watch").await;
            assert_eq!(resp.status(), StatusCode::OK);
            watches.push(resp);
        }
        // One stream more than a connection allows are open: a short request still goes through.
        let ok = send(&up, "/version").await;
        assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(up.h2_connections_for_tests(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // Closed watches give their streams back: later requests reuse the connections.
        watches.clear();
        for _ in 0..2 * STREAMS_PER_CONNECTION {
            let ok = send(&up, "/version").await;
            assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "ok");
        }
        assert_eq!(up.h2_connections_for_tests(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_stream_is_given_back_when_its_body_is_dropped() {
        let pool = H2Pool::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
            2,
        );
        let a = pool.acquire();
        let b = pool.acquire();
        assert_eq!(pool.connections(), 1);
        let c = pool.acquire();
        assert_eq!(pool.connections(), 2);
        drop(a);
        let _d = pool.acquire();
        assert_eq!(pool.connections(), 2, "the freed stream is reused");
        drop((b, c));
    }
}
