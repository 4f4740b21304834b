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

use std::sync::Arc;
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
    privileged_h2: HttpsClient,
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
            privileged_h2: client(privileged_tls.clone(), true),
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
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let client = match (identity, upgrade) {
            (Identity::Privileged, false) => &self.privileged_h2,
            (Identity::Privileged, true) => &self.privileged_h1,
            (Identity::Anonymous, _) => &self.anonymous_h1,
        };
        if identity == Identity::Privileged
            && let Some(token) = &self.token
            && let Some(value) = token.header().await
        {
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        client.request(req).await
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
