//! In-process test support: an [`App`] built with [`App::from_parts`] from a configuration
//! parsed by the real loader, a local issuer (discovery and a JWKS holding the test RSA key),
//! a local fake kube-apiserver that records every request it gets, and an index filled by
//! hand. Requests go through [`gatehouse_server::routes::router`] with `oneshot`; no listener of
//! gatehouse's, no test bed. Only 127.0.0.1 with ephemeral ports.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use gatehouse_server::app::{App, AppParts};
use gatehouse_server::clock::{Clock, unix_now};
use gatehouse_server::metrics::Metrics;
use gatehouse_server::oidc::OidcVerifier;
use gatehouse_server::routes::router;
use gatehouse_server::serviceaccounts::{ListedForTests, ServiceAccountIndex};
use gatehouse_server::upstream::{PoolLimits, Upstream};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower::ServiceExt as _;

pub use crate::jwt::{respell, ws_bearer};

const PRIV: &str = include_str!("../../gatehouse-core/testdata/rsa_private.pem");
const JWK: &str = include_str!("../../gatehouse-core/testdata/rsa_jwk.json");
/// The key ID the issuer publishes the test key under (the JWK's own).
pub const KID: &str = "rsa1";
/// gatehouse's own credential towards the fake kube-apiserver.
pub const OWN_TOKEN: &str = "gatehouse-own-credential";
/// The address every request comes from, unless a test says otherwise.
pub const PEER: &str = "198.51.100.7:40000";
/// `publicUrl`.
pub const PUBLIC: &str = "https://gatehouse.example";
/// The OIDC client ID.
pub const CLIENT_ID: &str = "gatehouse";
/// A session key (only its length matters).
const SESSION_KEY: &str = "router-tests-session-key-0123456789abcdef";
const ADMIN_KEY: &str = "0123456789abcdef0123456789abcdef";
/// A bcrypt-shaped hash (no test signs in with a password).
const ADMIN_HASH: &str = "$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a";
/// The annotation that maps the `devs` group onto a ServiceAccount.
pub const DEVS: &[(&str, &str)] = &[("gatehouse.dev/claim.groups", "devs")];

/// One request the fake kube-apiserver received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Seen {
    /// The one value of `name`; panics when there are several.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.get_all(name).iter();
        let first = all.next()?;
        assert!(all.next().is_none(), "{name} sent more than once: {self:?}");
        Some(first.to_str().unwrap())
    }

    /// Header names starting with `prefix`.
    pub fn names_with(&self, prefix: &str) -> Vec<String> {
        self.headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k.starts_with(prefix))
            .collect()
    }
}

/// The fake kube-apiserver: records requests; answers 101 to upgrades, reviews with
/// `allowed` (SubjectAccessReviews for users in `allowed`, or every one when it is `None`),
/// and everything else with 200 JSON and hostile response headers (cookies, HSTS, a script
/// policy) that gatehouse must strip.
#[derive(Clone)]
pub struct FakeKube {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    allowed: Arc<Mutex<Option<Vec<String>>>>,
}

impl FakeKube {
    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests so far that are not gatehouse's own reviews.
    pub fn proxied(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !s.path.contains("subjectaccessreviews"))
            .collect()
    }

    /// The one proxied request so far.
    pub fn one(&self) -> Seen {
        let p = self.proxied();
        assert_eq!(p.len(), 1, "expected one request upstream: {p:#?}");
        p.into_iter().next().unwrap()
    }

    /// Asserts that nothing reached the kube-apiserver.
    pub fn assert_untouched(&self, what: &str) {
        let s = self.seen();
        assert!(s.is_empty(), "{what}: reached the kube-apiserver: {s:#?}");
    }

    /// SubjectAccessReviews allow only these users from now on.
    pub fn allow_only(&self, users: &[&str]) {
        *self.allowed.lock().unwrap() = Some(users.iter().map(|u| (*u).to_owned()).collect());
    }

    async fn answer(&self, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
        let upgrade = req.headers().get("upgrade").cloned();
        let on_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or("/".to_owned(), ToString::to_string),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        if let (Some(upgrade), Some(on_upgrade)) = (upgrade, on_upgrade) {
            tokio::spawn(async move {
                // Hold the upgraded stream until the other side goes away.
                if let Ok(io) = on_upgrade.await {
                    let mut io = TokioIo::new(io);
                    let mut sink = tokio::io::sink();
                    let _ = tokio::io::copy(&mut io, &mut sink).await;
                }
            });
            return Response::builder()
                .status(101)
                .header("connection", "Upgrade")
                .header("upgrade", upgrade)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        if seen.path.contains("subjectaccessreviews") {
            let review: serde_json::Value = serde_json::from_str(&seen.body).unwrap_or_default();
            let user = review["spec"]["user"].as_str().unwrap_or("");
            let allowed = self
                .allowed
                .lock()
                .unwrap()
                .as_ref()
                .is_none_or(|a| a.iter().any(|u| u == user));
            let mut answer = review.clone();
            answer["status"] = serde_json::json!({ "allowed": allowed });
            return Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(answer.to_string())))
                .unwrap();
        }
        let body = serde_json::json!({ "kind": "Fake", "path": seen.path });
        Response::builder()
            .header("content-type", "application/json")
            .header("set-cookie", "gatehouse_session=planted; Path=/")
            .header(
                "set-cookie",
                "__Host-gatehouse_session=planted; Path=/; Secure",
            )
            .header("clear-site-data", "\"cookies\"")
            .header("strict-transport-security", "max-age=0")
            .header("content-security-policy", "script-src *")
            .header("report-to", "{}")
            .header("x-upstream", "kept")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }
}

/// Serves `handle` on 127.0.0.1 (an ephemeral port) over HTTP/1.1 with upgrades.
async fn serve<F, Fut>(handle: F) -> String
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    url
}

async fn fake_kube() -> FakeKube {
    let kube = FakeKube {
        url: String::new(),
        seen: Arc::default(),
        allowed: Arc::default(),
    };
    let k = kube.clone();
    let url = serve(move |req| {
        let k = k.clone();
        async move { k.answer(req).await }
    })
    .await;
    FakeKube { url, ..kube }
}

/// A local issuer: discovery and a JWKS with the test key.
async fn fake_issuer() -> String {
    let issuer: Arc<Mutex<String>> = Arc::default();
    let i = Arc::clone(&issuer);
    let url = serve(move |req: Request<Incoming>| {
        let i = Arc::clone(&i);
        async move {
            let u = i.lock().unwrap().clone();
            let body = if req.uri().path() == "/.well-known/openid-configuration" {
                serde_json::json!({
                    "issuer": u,
                    "authorization_endpoint": format!("{u}/auth"),
                    "token_endpoint": format!("{u}/token"),
                    "jwks_uri": format!("{u}/keys"),
                    "id_token_signing_alg_values_supported": ["RS256"],
                })
            } else {
                let jwk: serde_json::Value = serde_json::from_str(JWK).unwrap();
                serde_json::json!({ "keys": [jwk] })
            };
            Response::new(Full::new(Bytes::from(body.to_string())))
        }
    })
    .await;
    *issuer.lock().unwrap() = url.clone();
    url
}

/// What the app is built with; [`Setup::build`] writes the YAML from these fields and parses
/// it with the real loader (`config::parse`, which `gatehouse serve --config` uses).
pub struct Setup {
    /// `fallThrough.enabled`.
    pub fall_through: bool,
    /// Browser sign-in (`oidc.clientSecret`, `session.key`).
    pub browser: bool,
    /// `serviceAccounts.maxStaleness`.
    pub max_staleness: &'static str,
    /// `trustedProxies`.
    pub trusted_proxies: Vec<&'static str>,
    /// ServiceAccounts in the index (namespace, name, annotations); `None` leaves the index
    /// unlisted (the watch has not listed yet).
    pub accounts: Option<Vec<ListedForTests<'static>>>,
    /// The app's clock ([`Clock::System`] unless a test fixes it).
    pub clock: Clock,
    /// `limits.reviewCacheTtl` (the default, 10s, when `None`).
    pub review_cache_ttl: Option<&'static str>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            fall_through: true,
            browser: true,
            max_staleness: "5m",
            trusted_proxies: Vec::new(),
            accounts: Some(vec![("team-a", "dev", DEVS)]),
            clock: Clock::System,
            review_cache_ttl: None,
        }
    }
}

/// An app and what stands around it.
pub struct Harness {
    /// The app.
    pub app: Arc<App>,
    /// Its router.
    pub router: Router,
    /// The fake kube-apiserver behind it.
    pub kube: FakeKube,
    /// The issuer's URL.
    pub issuer: String,
}

impl Setup {
    /// The configuration text.
    pub fn yaml(&self, issuer: &str) -> String {
        let mut y = format!(
            "publicUrl: {PUBLIC}\n\
             oidc:\n  issuerUrl: '{issuer}'\n  clientId: {CLIENT_ID}\n\
             \x20 additionalParameters: {{ connector_id: local }}\n\
             \x20 userParameters:\n    login_hint: {{ pattern: '[a-z]+@example\\.com' }}\n"
        );
        if self.browser {
            y.push_str(&format!(
                "  clientSecret: web-secret\nsession:\n  key: '{SESSION_KEY}'\n"
            ));
        }
        y.push_str(&format!(
            "serviceAccounts:\n  namespaces: [team-a]\n  maxStaleness: {}\n\
             fallThrough:\n  enabled: {}\n\
             admin:\n  enabled: true\n  passwordHash: '{ADMIN_HASH}'\n  tokenSigningKey: '{ADMIN_KEY}'\n",
            self.max_staleness, self.fall_through
        ));
        if let Some(ttl) = self.review_cache_ttl {
            y.push_str(&format!("limits:\n  reviewCacheTtl: {ttl}\n"));
        }
        if !self.trusted_proxies.is_empty() {
            y.push_str(&format!(
                "trustedProxies: [{}]\n",
                self.trusted_proxies.join(", ")
            ));
        }
        y
    }

    /// Builds the app.
    pub async fn build(self) -> Harness {
        let kube = fake_kube().await;
        let issuer = fake_issuer().await;
        let config =
            gatehouse_server::config::parse(&self.yaml(&issuer), &HashMap::<String, String>::new())
                .unwrap();
        let oidc = Arc::new(OidcVerifier::new(config.oidc.clone().unwrap()).unwrap());
        oidc.refresh().await.unwrap();
        let index = ServiceAccountIndex::new(&config.service_accounts);
        if let Some(accounts) = &self.accounts {
            index.list_for_tests(accounts);
        }
        let mut kc = kube::Config::new(kube.url.parse().unwrap());
        kc.auth_info.token = Some(OWN_TOKEN.to_owned().into());
        let upstream = Upstream::new(&kc, PoolLimits::from(&config.kubernetes)).unwrap();
        let client = kube::Client::try_from(kc).unwrap();
        let app = App::from_parts(AppParts {
            config,
            oidc: Some(oidc),
            index,
            upstream,
            client,
            metrics: Metrics::default(),
            clock: self.clock,
        })
        .unwrap();
        Harness {
            router: router(Arc::clone(&app)),
            app,
            kube,
            issuer,
        }
    }
}

/// The default app.
pub async fn harness() -> Harness {
    Setup::default().build().await
}

/// A response, its body read.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Asserts a Kubernetes `Status` with this code whose message contains `text`.
    pub fn assert_status(&self, code: u16, text: &str) {
        assert_eq!(self.status.as_u16(), code, "{}", self.body);
        let s = self.json();
        assert_eq!(s["kind"], "Status", "{s}");
        assert_eq!(s["code"], code, "{s}");
        let m = s["message"].as_str().unwrap_or("");
        assert!(m.contains(text), "{text:?} not in {m:?}");
    }

    /// The one value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Harness {
    /// Sends a request (from [`PEER`], unless it carries its own `ConnectInfo`).
    pub async fn send(&self, mut req: Request<Body>) -> Answer {
        if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
            req.extensions_mut()
                .insert(ConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `GET path` with these headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(request("GET", path, headers)).await
    }

    /// An ID token from the issuer with these claims over the defaults (`sub`, `aud`, `exp`,
    /// `iat`, a verified `email`, groups `devs`).
    pub fn token(&self, extra: serde_json::Value) -> String {
        let now = unix_now();
        let mut claims = serde_json::json!({
            "iss": self.issuer, "sub": "alice-sub", "aud": CLIENT_ID,
            "exp": now + 300, "iat": now,
            "email": "alice@example.com", "email_verified": true, "groups": ["devs"],
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign(&claims)
    }

    /// A token for a user whom no ServiceAccount maps (groups `qa`).
    pub fn unmapped_token(&self) -> String {
        self.token(
            serde_json::json!({"sub": "bob-sub", "email": "bob@example.com", "groups": ["qa"]}),
        )
    }

    /// An admin token from gatehouse's own issuer.
    pub fn admin_token(&self) -> String {
        self.app.authn.admin().unwrap().issue(unix_now()).unwrap().0
    }

    /// A sealed session cookie (`name=value`) holding `token`.
    pub fn session_cookie(&self, token: &str, kind: &str) -> String {
        let now = unix_now();
        let session = gatehouse_server::browser_session::Session {
            token: token.to_owned(),
            refresh_token: None,
            kind: kind.to_owned(),
            created: now,
            expires: now + 3600,
        };
        let set = self
            .app
            .session_cookies()
            .unwrap()
            .set(&session, now)
            .unwrap();
        set.iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Signs `claims` with the test key (RS256, [`KID`]).
pub fn sign(claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(KID.to_owned());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(PRIV.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A request with these headers (repeated names are appended) and an empty body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The headers of a WebSocket upgrade.
pub const WS: &[(&str, &str)] = &[
    ("connection", "Upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];
