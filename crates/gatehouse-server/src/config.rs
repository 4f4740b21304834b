//! gatehouse's configuration: one YAML file, with environment variables of the origin platform
//! accepted as aliases for the matching keys.
//!
//! Loading never stops at the first mistake: every problem (unknown key, wrong type, missing
//! required value, unreadable secret file, reserved value) is collected with its key path and
//! reported at once, so an operator fixes a config in one round trip.
//!
//! Values are read through the [`Source`] trait for the environment, so tests hand in a map
//! instead of mutating the process environment. Environment aliases win over the file.
//!
//! # Security
//! Secrets (admin password hash, token signing key) may be given inline, through a `...File`
//! key naming a file (for mounted Kubernetes Secrets), or through their environment alias. They
//! are held as `secrecy` types and never printed, not even in problems.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use secrecy::{SecretSlice, SecretString};
use serde_json::Value;
use url::Url;

/// Where environment values come from.
pub trait Source {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// The whole server configuration, validated.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on (`listen`, default `0.0.0.0:8443`).
    pub listen: SocketAddr,
    /// The URL users reach gatehouse at (`publicUrl`), used in the public config and kubeconfigs.
    pub public_url: Option<Url>,
    /// The CA certificate(s), PEM, that clients need to trust `publicUrl` (`publicCaFile`):
    /// embedded in the kubeconfig the web UI hands out and offered for download.
    pub public_ca: Option<String>,
    /// Serving certificate and key (`tls.certFile`, `tls.keyFile`); plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// How gatehouse reaches the kube-apiserver.
    pub kubernetes: KubernetesConfig,
    /// The OIDC issuer, when enabled.
    pub oidc: Option<OidcConfig>,
    /// ServiceAccount mapping.
    pub service_accounts: ServiceAccountsConfig,
    /// Forward tokens gatehouse cannot map to the kube-apiserver (`fallThrough.enabled`, default true).
    pub fall_through: bool,
    /// The admin account, when enabled.
    pub admin: Option<AdminConfig>,
    /// Browser sign-in, when `oidc.clientSecret` and `session.key` are set.
    pub browser: Option<BrowserConfig>,
    /// Limits.
    pub limits: Limits,
    /// Peers (an ingress, a load balancer) whose `X-Forwarded-For` is kept in front of their
    /// own address; every other client's is replaced by its address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Config {
    /// The effective configuration as JSON, secrets left out. Printed by
    /// `gatehouse serve --check-config` so operators (and the Helm chart's tests) can see exactly
    /// what gatehouse read.
    pub fn describe(&self) -> Value {
        serde_json::json!({
            "listen": self.listen.to_string(),
            "publicUrl": self.public_url.as_ref().map(Url::as_str),
            "publicCaFile": self.public_ca.is_some(),
            "tls": self.tls.as_ref().map(|t| serde_json::json!({"certFile": t.cert_file, "keyFile": t.key_file})),
            "kubernetes": {"kubeconfig": self.kubernetes.kubeconfig, "context": self.kubernetes.context},
            "oidc": self.oidc.as_ref().map(|o| serde_json::json!({
                "issuerUrl": o.issuer_url,
                "clientId": o.client_id,
                "cliClientId": o.cli_client_id,
                "scopes": o.scopes(),
                "audiences": o.audiences,
                "usernameClaim": o.username_claim,
                "emailVerifiedWhenAbsent": o.email_verified_when_absent,
                "caFile": o.ca_file,
                "algorithms": o.algorithms.as_ref().map(|a| a.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>()),
                "clockSkew": humantime::format_duration(o.clock_skew).to_string(),
                "jwksMinRefreshInterval": humantime::format_duration(o.jwks_min_refresh_interval).to_string(),
                "jwksRefreshInterval": humantime::format_duration(o.jwks_refresh_interval).to_string(),
                "tokenType": o.token_type,
                "additionalParameters": o.additional_parameters,
                "userParameters": o.user_parameters.iter().map(|(k, v)| (k.clone(), serde_json::json!({"pattern": v.pattern}))).collect::<serde_json::Map<_, _>>(),
            })),
            "serviceAccounts": {
                "annotationPrefix": self.service_accounts.annotation_prefix,
                "namespaces": self.service_accounts.namespaces,
                "allNamespaces": self.service_accounts.all_namespaces,
                "globalNamespaces": self.service_accounts.global_namespaces,
                "protectedNamespaces": self.service_accounts.scope().protected().collect::<Vec<_>>(),
                "maxStaleness": humantime::format_duration(self.service_accounts.max_staleness).to_string(),
            },
            "fallThrough": {"enabled": self.fall_through},
            "admin": self.admin.as_ref().map(|a| serde_json::json!({
                "enabled": true,
                "tokenTtl": humantime::format_duration(a.token_ttl).to_string(),
                "tokensNotBefore": a.tokens_not_before.map(crate::clock::rfc3339),
                "previousTokenSigningKey": a.previous_token_signing_key.is_some(),
                "loginAllowedCidrs": a.login_allowed_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "tokenIssuer": a.token_issuer,
                "impersonate": {"user": a.impersonate_user, "groups": a.impersonate_groups},
            })).unwrap_or_else(|| serde_json::json!({"enabled": false})),
        })
    }
}

/// Serving certificate files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// How to reach the kube-apiserver.
#[derive(Debug, Clone, Default)]
pub struct KubernetesConfig {
    /// A kubeconfig file (`kubernetes.kubeconfig`); in-cluster configuration when absent.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (`kubernetes.context`).
    pub context: Option<String>,
}

/// The OIDC issuer.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Issuer URL exactly as configured; compared byte for byte with `iss`.
    pub issuer_url: String,
    /// The web (server) client ID.
    pub client_id: String,
    /// The CLI client ID.
    pub cli_client_id: Option<String>,
    /// Scopes requested beyond `openid profile email`.
    pub additional_scopes: Vec<String>,
    /// Audiences accepted besides the client IDs.
    pub audiences: Vec<String>,
    /// The claim used as username (default `email`).
    pub username_claim: String,
    /// Whether an `email` claim without `email_verified` is trusted
    /// (`oidc.emailVerifiedWhenAbsent`, default false; see `gatehouse_core::identity`).
    pub email_verified_when_absent: bool,
    /// A PEM CA bundle for the issuer.
    pub ca_file: Option<PathBuf>,
    /// Allowed signing algorithms; from discovery when absent.
    pub algorithms: Option<Vec<Algorithm>>,
    /// Clock skew for `exp`/`nbf`/`iat` (at most 60 s).
    pub clock_skew: Duration,
    /// The shortest interval between two JWKS fetches triggered by unknown key IDs
    /// (`oidc.jwksMinRefreshInterval`, default 10s, at least [`JWKS_MIN_REFRESH_FLOOR`]).
    pub jwks_min_refresh_interval: Duration,
    /// How often discovery and the JWKS are re-read when the JWKS response names no
    /// `Cache-Control: max-age` (`oidc.jwksRefreshInterval`, default 5m, within
    /// [`JWKS_REFRESH_BOUNDS`]).
    pub jwks_refresh_interval: Duration,
    /// Static parameters added to every authorization request (`oidc.additionalParameters`).
    pub additional_parameters: BTreeMap<String, String>,
    /// Parameters a user may set per sign-in, each with an optional full-match pattern.
    pub user_parameters: BTreeMap<String, UserParameter>,
    /// Which token the CLI hands to kubectl: `id_token` (default) or `access_token` (a JWT
    /// access token for a resource, from resource indicators). Published in `/v1/config`.
    pub token_type: String,
}

/// The smallest `oidc.jwksMinRefreshInterval`: below it, a flood of tokens with made-up key
/// IDs would turn into a flood of JWKS fetches at the IdP.
pub const JWKS_MIN_REFRESH_FLOOR: Duration = Duration::from_secs(1);

/// The bounds of the periodic JWKS refresh: `oidc.jwksRefreshInterval` and the JWKS response's
/// `Cache-Control: max-age` are kept within them (at least a minute, so an IdP answering
/// `max-age=0` is not polled in a loop; at most an hour, so a key the IdP removed stops being
/// trusted within the hour).
pub const JWKS_REFRESH_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(3600));

/// A parameter a user may set per sign-in.
#[derive(Debug, Clone)]
pub struct UserParameter {
    /// The pattern the whole value must match, when set (as configured, unanchored).
    pub pattern: Option<String>,
    anchored: Option<regex::Regex>,
}

impl UserParameter {
    /// Whether `value` is acceptable.
    pub fn accepts(&self, value: &str) -> bool {
        self.anchored.as_ref().is_none_or(|p| p.is_match(value))
    }
}

pub use gatehouse_core::authorize::RESERVED_PARAMETERS;

/// Parses `OIDC_ADDITIONAL_PARAMETERS`: `k=v,k2=v2`, each pair split at its first `=` (so
/// values may hold `=`). A comma inside a value is written `\,` and a backslash `\\`.
pub fn parse_parameter_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut pairs = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ (',' | '\\')) => cur.push(next),
                Some(other) => {
                    cur.push('\\');
                    cur.push(other);
                }
                None => cur.push('\\'),
            },
            ',' => pairs.push(std::mem::take(&mut cur)),
            other => cur.push(other),
        }
    }
    pairs.push(cur);
    let mut out = BTreeMap::new();
    for pair in pairs {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!(
                "{:?} has no `=`; write pairs as name=value, separated by commas (a comma inside a value is written \\,)",
                pair.trim()
            ));
        };
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

impl OidcConfig {
    /// The client IDs whose tokens are accepted (as `aud` and as `azp`).
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids = vec![self.client_id.clone()];
        if let Some(cli) = &self.cli_client_id
            && cli != &self.client_id
        {
            ids.push(cli.clone());
        }
        ids
    }

    /// How verified tokens become users (username claim, `email_verified` rule).
    pub fn claim_rules(&self) -> gatehouse_core::identity::ClaimRules {
        gatehouse_core::identity::ClaimRules {
            username_claim: self.username_claim.clone(),
            email_verified_when_absent: self.email_verified_when_absent,
        }
    }

    /// Whether RFC 9068 JWT access tokens (`typ: at+jwt`) are accepted
    /// (`oidc.tokenType: access_token`).
    pub fn accepts_access_tokens(&self) -> bool {
        self.token_type == "access_token"
    }

    /// The scopes gatehouse asks for.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = ["openid", "profile", "email"].map(String::from).to_vec();
        for s in &self.additional_scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        scopes
    }
}

/// Browser sign-in (backend-for-frontend) and the web UI.
#[derive(Debug)]
pub struct BrowserConfig {
    /// The web client's secret (`oidc.clientSecret`, `oidc.clientSecretFile`, env `OIDC_CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// The key that encrypts session cookies (`session.key`, `session.keyFile`,
    /// env `GATEHOUSE_SESSION_KEY`); replicas that share it share sessions.
    pub session_key: SecretSlice<u8>,
    /// The longest a session lives, refreshes included (`session.ttl`, default 12h).
    pub session_ttl: Duration,
    /// Session cookie name as sent: `session.cookieName` (default `gatehouse_session`), with
    /// the `__Host-` prefix added when cookies are secure.
    pub cookie_name: String,
    /// The sign-in flow cookie's name: `__Host-gatehouse_flow` with secure cookies, else
    /// `gatehouse_flow`.
    pub flow_cookie_name: String,
    /// Mark cookies `Secure` (`session.secureCookies`, default true).
    pub secure_cookies: bool,
    /// The public URL; the redirect URI is `<publicUrl>/auth/callback`.
    pub public_url: Url,
}

impl BrowserConfig {
    /// The OAuth redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/auth/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// ServiceAccount mapping.
#[derive(Debug, Clone)]
pub struct ServiceAccountsConfig {
    /// Annotation prefix (default `gatehouse.dev`).
    pub annotation_prefix: String,
    /// Namespaces whose ServiceAccounts may be mapped, named one by one (`serviceAccounts.namespaces`).
    pub namespaces: Vec<String>,
    /// Every namespace may be mapped, except the protected ones not named
    /// (`serviceAccounts.allNamespaces`, default false).
    pub all_namespaces: bool,
    /// Namespaces whose mapped ServiceAccounts apply in every namespace.
    pub global_namespaces: Vec<String>,
    /// gatehouse's own namespace(s): `serviceAccounts.gatehouseNamespace`, `POD_NAMESPACE` and
    /// the in-cluster ServiceAccount namespace file. Protected like `kube-system`.
    pub gatehouse_namespaces: Vec<String>,
    /// How long the ServiceAccount watch may fail before mappings are no longer trusted
    /// (`serviceAccounts.maxStaleness`, default 5m).
    pub max_staleness: Duration,
}

/// Where a pod finds its own namespace when the downward API does not set `POD_NAMESPACE`.
pub const IN_CLUSTER_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl ServiceAccountsConfig {
    /// True when no namespace is mappable (neither `namespaces`, `globalNamespaces` nor
    /// `allNamespaces` is set): gatehouse then maps nobody and watches nothing.
    pub fn maps_nothing(&self) -> bool {
        !self.all_namespaces && self.namespaces.is_empty() && self.global_namespaces.is_empty()
    }

    /// The namespaces to watch; `None` means all namespaces.
    pub fn watched_namespaces(&self) -> Option<Vec<String>> {
        if self.all_namespaces {
            return None;
        }
        let set: BTreeSet<String> = self
            .namespaces
            .iter()
            .chain(&self.global_namespaces)
            .cloned()
            .collect();
        Some(set.into_iter().collect())
    }

    /// Which namespaces' ServiceAccounts may be mapped: those named in `namespaces` or
    /// `globalNamespaces`, and with `allNamespaces` every other one except the protected
    /// namespaces (`kube-system`, `kube-public`, `kube-node-lease`, gatehouse's own).
    pub fn scope(&self) -> gatehouse_core::mapping::NamespaceScope {
        gatehouse_core::mapping::NamespaceScope::new(
            self.all_namespaces,
            self.namespaces
                .iter()
                .chain(&self.global_namespaces)
                .cloned(),
            self.gatehouse_namespaces.iter().cloned(),
        )
    }
}

/// gatehouse's own namespace, from every place that may name it: the setting, the
/// `POD_NAMESPACE` environment variable (the Helm chart sets it with the downward API) and the
/// in-cluster ServiceAccount namespace file. All of them are protected, so a disagreement
/// between them can only protect more.
fn gatehouse_namespaces(
    configured: Option<String>,
    env: &dyn Source,
    file: &std::path::Path,
) -> Vec<String> {
    let from_file = std::fs::read_to_string(file).ok();
    let set: BTreeSet<String> = [configured, env.get("POD_NAMESPACE"), from_file]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    set.into_iter().collect()
}

/// The admin account.
#[derive(Debug)]
pub struct AdminConfig {
    /// bcrypt hash of the admin password (cost at least 10).
    pub password_hash: SecretString,
    /// HS256 key for admin tokens.
    pub token_signing_key: SecretSlice<u8>,
    /// The key used before the last rotation (`admin.previousTokenSigningKey`): tokens it
    /// signed (named by their `kid`) are accepted until they expire; new tokens never use it.
    pub previous_token_signing_key: Option<SecretSlice<u8>>,
    /// Lifetime of admin tokens (default 8h, at most 24h).
    pub token_ttl: Duration,
    /// Admin tokens issued before this instant (unix seconds) are refused
    /// (`admin.tokensNotBefore`, RFC 3339).
    pub tokens_not_before: Option<i64>,
    /// `iss` of admin tokens (default `gatehouse-admin`).
    pub token_issuer: String,
    /// `aud` of admin tokens (default `gatehouse`).
    pub token_audience: String,
    /// The Kubernetes user the admin acts as (default `gatehouse:admin`).
    pub impersonate_user: String,
    /// The Kubernetes groups the admin acts with (default `[gatehouse:admins]`).
    pub impersonate_groups: Vec<String>,
    /// Client networks allowed to use `POST /v1/admin/login` and the UI's admin form
    /// (`admin.loginAllowedCidrs`); every address when empty.
    pub login_allowed_cidrs: Vec<ipnet::IpNet>,
}

impl AdminConfig {
    /// True when `peer` may sign in as the admin (the allow-list is empty or holds it).
    pub fn login_allowed_from(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.login_allowed_cidrs.is_empty()
            || self.login_allowed_cidrs.iter().any(|n| n.contains(&peer))
    }
}

/// Limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head accepted, in bytes (default 64 KiB).
    pub max_header_bytes: usize,
    /// How long a SubjectAccessReview answer is reused (default 10 s).
    pub review_cache_ttl: Duration,
    /// How many verified tokens are kept (default 10000).
    pub token_cache_entries: u64,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path (`oidc.issuerUrl`) or environment variable.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("config file {path} is not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (positions included).
        message: String,
    },
    /// The values are wrong; every problem is listed.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// An address as proxies write it in `X-Forwarded-For`: `ip`, `[v6]`, `ip:port`, `[v6]:port`.
fn parse_forwarded_address(text: &str) -> Option<std::net::IpAddr> {
    let ip = text
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(std::net::IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

impl Config {
    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the one the
    /// outermost trusted proxy saw). Used for admin sign-in throttling and its allow-list, so
    /// that behind an ingress each client has its own budget.
    ///
    /// # Security
    /// The chain is read from the raw bytes, right to left, and every entry up to the answer
    /// must be an address (`ip`, `[v6]`, `ip:port`, `[v6]:port`): a client could otherwise
    /// make the whole header unreadable (a byte that is not text, which the proxy then appends
    /// to) or slip an entry in front of one gatehouse cannot parse, and be counted as the
    /// proxy or as an address of its choice. A chain that cannot be read that far is an
    /// error: the caller refuses the sign-in instead of guessing.
    pub fn client_ip(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: &http::HeaderMap,
    ) -> Result<Option<std::net::IpAddr>, String> {
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return Ok(None);
        };
        let trusted = |ip: &std::net::IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return Ok(Some(peer));
        }
        let raw: Vec<u8> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b","[..]);
        for entry in raw.split(|b| *b == b',').rev() {
            let text = std::str::from_utf8(entry)
                .map_err(|_| {
                    "the X-Forwarded-For header from the trusted proxy is not text".to_owned()
                })?
                .trim();
            if text.is_empty() {
                continue;
            }
            let ip = parse_forwarded_address(text).ok_or_else(|| {
                format!("the X-Forwarded-For header from the trusted proxy holds {text:?}, which is not an address")
            })?;
            if !trusted(&ip) {
                return Ok(Some(ip));
            }
        }
        Ok(Some(peer))
    }

    /// The `X-Forwarded-For` value to send upstream for a request from `peer` that carried
    /// `client_chain`: the peer's address, after the client's chain only when the peer is a
    /// trusted proxy. The kube-apiserver records these addresses in the audit event's
    /// `sourceIPs` (and then its own peer, gatehouse).
    pub fn forwarded_for(
        &self,
        peer: Option<std::net::SocketAddr>,
        client_chain: Option<&str>,
    ) -> Option<http::HeaderValue> {
        let ip = peer?.ip().to_canonical();
        let trusted = self.trusted_proxies.iter().any(|n| n.contains(&ip));
        let value = match client_chain {
            Some(chain) if trusted => format!("{chain}, {ip}"),
            _ => ip.to_string(),
        };
        http::HeaderValue::from_str(&value).ok()
    }
}

/// Loads and validates the config file at `path` with environment aliases from `env`.
pub fn load(path: Option<&std::path::Path>, env: &dyn Source) -> Result<Config, ConfigError> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.to_owned(),
            source,
        })?,
        None => String::new(),
    };
    let display_path = path.map(std::path::Path::to_path_buf).unwrap_or_default();
    parse(&text, env).map_err(|e| match e {
        ConfigError::Syntax { message, .. } => ConfigError::Syntax {
            path: display_path,
            message,
        },
        other => other,
    })
}

/// Parses and validates config text.
pub fn parse(text: &str, env: &dyn Source) -> Result<Config, ConfigError> {
    let root: Value = if text.trim().is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        // No source snippet in the message: the lines around a syntax error may hold a secret.
        serde_saphyr::from_str_with_options(text, serde_saphyr::options! { with_snippet: false })
            .map_err(|e| ConfigError::Syntax {
                path: PathBuf::new(),
                message: e.to_string(),
            })?
    };
    let mut r = Reader {
        root,
        env,
        problems: Vec::new(),
        seen: BTreeSet::new(),
    };
    if !r.root.is_object() {
        r.problem("(top level)", "expected a mapping of settings");
    }
    let config = read_config(&mut r);
    r.unknown_keys();
    if r.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(r.problems))
    }
}

fn read_config(r: &mut Reader<'_>) -> Config {
    let listen = r
        .string("listen", None)
        .and_then(|s| {
            r.parse_with("listen", &s, |s| {
                s.parse::<SocketAddr>().map_err(|e| e.to_string())
            })
        })
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443)));
    let public_url = r.url("publicUrl", None);
    let public_ca = r.path("publicCaFile", None).and_then(|path| {
        let read = std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|pem| {
            use rustls_pki_types::pem::PemObject as _;
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("not PEM certificates ({e})"))?;
            if certs.is_empty() {
                return Err("holds no PEM certificate".to_owned());
            }
            Ok(pem)
        });
        match read {
            Ok(pem) => Some(pem),
            Err(e) => {
                r.problem(
                    "publicCaFile",
                    &format!("{}: {e}; name the PEM file of the CA that signed gatehouse's serving certificate", path.display()),
                );
                None
            }
        }
    });
    let tls = match (r.path("tls.certFile", None), r.path("tls.keyFile", None)) {
        (Some(cert_file), Some(key_file)) => Some(TlsFiles {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        _ => {
            r.problem(
                "tls",
                "set both certFile and keyFile, or neither for plain HTTP",
            );
            None
        }
    };
    let kubernetes = KubernetesConfig {
        kubeconfig: r.path("kubernetes.kubeconfig", None),
        context: r.string("kubernetes.context", None),
    };
    let oidc = read_oidc(r);
    let service_accounts = read_service_accounts(r);
    let fall_through = r.bool("fallThrough.enabled", None).unwrap_or(true);
    let admin = read_admin(r);
    let browser = read_browser(r, oidc.is_some(), public_url.as_ref());
    let limits = Limits {
        max_header_bytes: r
            .int("limits.maxHeaderBytes", None)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(64 * 1024),
        review_cache_ttl: r
            .duration("limits.reviewCacheTtl", None)
            .unwrap_or(Duration::from_secs(10)),
        token_cache_entries: r
            .int("limits.tokenCacheEntries", None)
            .map(|n| u64::try_from(n).unwrap_or(0))
            .unwrap_or(10_000),
    };
    if limits.max_header_bytes < 8192 {
        r.problem("limits.maxHeaderBytes", "must be at least 8192");
    }
    if oidc.is_none() && admin.is_none() && !fall_through {
        r.problem(
            "(top level)",
            "nothing can authenticate: enable oidc, admin or fallThrough",
        );
    }
    let trusted_proxies = r
        .list("trustedProxies", None)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            r.parse_with("trustedProxies", c, |c| {
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!("{c:?} is not an address or CIDR (for example 10.0.0.0/8)")
                    })
            })
        })
        .collect();
    Config {
        public_ca,
        trusted_proxies,
        listen,
        public_url,
        tls,
        kubernetes,
        oidc,
        service_accounts,
        fall_through,
        admin,
        browser,
        limits,
    }
}

/// The prefix that binds a cookie to gatehouse's own host (`Secure`, `Path=/`, no `Domain`).
pub const HOST_PREFIX: &str = "__Host-";

/// The flow cookie's base name (with secure cookies it is sent as `__Host-gatehouse_flow`; see
/// [`BrowserConfig::flow_cookie_name`]). Only [`crate::browser`] reads and writes it.
pub const FLOW_COOKIE: &str = "gatehouse_flow";

/// The session and flow cookie names for a configured session cookie name: with secure
/// cookies both carry the `__Host-` prefix (added when the configured name lacks it), so a
/// sibling subdomain cannot plant them.
pub fn cookie_names(configured: &str, secure: bool) -> (String, String) {
    if secure {
        let session = if configured.starts_with(HOST_PREFIX) {
            configured.to_owned()
        } else {
            format!("{HOST_PREFIX}{configured}")
        };
        (session, format!("{HOST_PREFIX}{}", FLOW_COOKIE))
    } else {
        (configured.to_owned(), FLOW_COOKIE.to_owned())
    }
}

fn read_service_accounts(r: &mut Reader<'_>) -> ServiceAccountsConfig {
    let annotation_prefix = r
        .string("serviceAccounts.annotationPrefix", None)
        .unwrap_or_else(|| "gatehouse.dev".to_owned());
    if annotation_prefix.is_empty() || annotation_prefix.contains('/') {
        r.problem(
            "serviceAccounts.annotationPrefix",
            "must be a non-empty annotation prefix without `/`, for example `gatehouse.dev`",
        );
    }
    let namespaces = r
        .list("serviceAccounts.namespaces", None)
        .unwrap_or_default();
    let all_namespaces = r
        .bool("serviceAccounts.allNamespaces", None)
        .unwrap_or(false);
    let global_namespaces = r
        .list(
            "serviceAccounts.globalNamespaces",
            Some("GLOBAL_SERVICE_ACCOUNT_NAMESPACES"),
        )
        .unwrap_or_default();
    let configured_own = r.string("serviceAccounts.gatehouseNamespace", None);
    let max_staleness = r
        .duration("serviceAccounts.maxStaleness", None)
        .unwrap_or(Duration::from_secs(300));
    if max_staleness < Duration::from_secs(1) {
        r.problem(
            "serviceAccounts.maxStaleness",
            "must be at least 1s (the default, 5m, suits most clusters)",
        );
    }
    ServiceAccountsConfig {
        annotation_prefix,
        namespaces,
        all_namespaces,
        global_namespaces,
        gatehouse_namespaces: gatehouse_namespaces(
            configured_own,
            r.env,
            std::path::Path::new(IN_CLUSTER_NAMESPACE_FILE),
        ),
        max_staleness,
    }
}

fn read_browser(r: &mut Reader<'_>, oidc: bool, public_url: Option<&Url>) -> Option<BrowserConfig> {
    let before = r.problems.len();
    let secret = r.secret("oidc.clientSecret", Some("OIDC_CLIENT_SECRET"));
    let key = r.secret("session.key", Some("GATEHOUSE_SESSION_KEY"));
    let failed = r.problems.len() > before;
    let session_ttl = r
        .duration("session.ttl", None)
        .unwrap_or(Duration::from_secs(12 * 3600));
    let configured_name = r
        .string("session.cookieName", None)
        .unwrap_or_else(|| "gatehouse_session".to_owned());
    let secure_cookies = r.bool("session.secureCookies", None).unwrap_or(true);
    if !configured_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || configured_name.is_empty()
    {
        r.problem(
            "session.cookieName",
            "use letters, digits, `_` and `-` only",
        );
    }
    let (cookie_name, flow_cookie_name) = cookie_names(&configured_name, secure_cookies);
    if !secure_cookies
        && (configured_name.starts_with(HOST_PREFIX) || configured_name.starts_with("__Secure-"))
    {
        r.problem(
            "session.cookieName",
            "a `__Host-` or `__Secure-` name needs session.secureCookies: true (browsers drop such cookies without Secure); drop the prefix for plain-HTTP development",
        );
    }
    if cookie_name == flow_cookie_name {
        r.problem(
            "session.cookieName",
            "is the name of gatehouse's sign-in flow cookie; choose another",
        );
    }
    if failed {
        return None;
    }
    match (secret, key) {
        (None, None) => None,
        (Some(_), None) => {
            r.problem("session.key", "required for browser sign-in (oidc.clientSecret is set); make one with `openssl rand -hex 32`");
            None
        }
        (None, Some(_)) => {
            r.problem(
                "oidc.clientSecret",
                "required for browser sign-in (session.key is set)",
            );
            None
        }
        (Some(secret), Some(key)) => {
            if key.trim().len() < 32 {
                r.problem(
                    "session.key",
                    "must be at least 32 bytes; make one with `openssl rand -hex 32`",
                );
                return None;
            }
            if !oidc {
                r.problem(
                    "oidc",
                    "browser sign-in needs oidc.issuerUrl and oidc.clientId",
                );
                return None;
            }
            let Some(public_url) = public_url.cloned() else {
                r.problem(
                    "publicUrl",
                    "required for browser sign-in: the redirect URI is <publicUrl>/auth/callback",
                );
                return None;
            };
            Some(BrowserConfig {
                client_secret: SecretString::from(secret),
                session_key: SecretSlice::from(key.trim().as_bytes().to_vec()),
                session_ttl,
                cookie_name,
                flow_cookie_name,
                secure_cookies,
                public_url,
            })
        }
    }
}

fn read_oidc(r: &mut Reader<'_>) -> Option<OidcConfig> {
    let issuer = r
        .string("oidc.issuerUrl", Some("OIDC_ISSUER_URL"))
        .map(|s| s.trim().to_owned());
    let enabled = r
        .bool("oidc.enabled", Some("OIDC_ENABLED"))
        .unwrap_or(issuer.is_some());
    let client_id = r.string("oidc.clientId", Some("OIDC_CLIENT_ID"));
    let cli_client_id = r.string("oidc.cliClientId", Some("OIDC_CLI_CLIENT_ID"));
    let additional_scopes = r
        .list("oidc.additionalScopes", Some("OIDC_ADDITIONAL_SCOPES"))
        .unwrap_or_default();
    let audiences = r.list("oidc.audiences", None).unwrap_or_default();
    let username_claim = r
        .string("oidc.usernameClaim", Some("OIDC_USERNAME_CLAIM"))
        .unwrap_or_else(|| "email".to_owned());
    let email_verified_when_absent = r
        .bool("oidc.emailVerifiedWhenAbsent", None)
        .unwrap_or(false);
    let ca_file = r.path("oidc.caFile", None);
    let algorithms = r.list("oidc.algorithms", None).map(|names| {
        names
            .iter()
            .filter_map(|n| match n.parse::<Algorithm>() {
                Ok(a) if gatehouse_core::jwt::is_asymmetric(a) => Some(a),
                _ => {
                    r.problem(
                        "oidc.algorithms",
                        &format!("{n:?} is not an allowed algorithm; use asymmetric ones such as RS256, ES256, PS256, EdDSA"),
                    );
                    None
                }
            })
            .collect()
    });
    let clock_skew = r
        .duration("oidc.clockSkew", None)
        .unwrap_or(Duration::from_secs(60));
    if clock_skew > Duration::from_secs(60) {
        r.problem("oidc.clockSkew", "must be at most 60s");
    }
    let jwks_min_refresh_interval = r
        .duration("oidc.jwksMinRefreshInterval", None)
        .unwrap_or(Duration::from_secs(10));
    if jwks_min_refresh_interval < JWKS_MIN_REFRESH_FLOOR {
        r.problem(
            "oidc.jwksMinRefreshInterval",
            "must be at least 1s: it bounds how often tokens with unknown key IDs make gatehouse fetch the issuer's key set (default 10s)",
        );
    }
    let jwks_refresh_interval = r
        .duration("oidc.jwksRefreshInterval", None)
        .unwrap_or(Duration::from_secs(300));
    let (floor, ceiling) = JWKS_REFRESH_BOUNDS;
    if jwks_refresh_interval < floor || jwks_refresh_interval > ceiling {
        r.problem(
            "oidc.jwksRefreshInterval",
            "must be between 1m and 1h: it is how often gatehouse re-reads the issuer's discovery document and key set when the key set's response has no Cache-Control max-age (default 5m)",
        );
    }
    let token_type = r
        .string("oidc.tokenType", None)
        .unwrap_or_else(|| "id_token".to_owned());
    if !matches!(token_type.as_str(), "id_token" | "access_token") {
        r.problem("oidc.tokenType", "must be id_token or access_token");
    }
    let additional_parameters = read_additional_parameters(r);
    let user_parameters = read_user_parameters(r, &additional_parameters);
    if !enabled {
        return None;
    }
    let Some(issuer_url) = issuer else {
        r.problem(
            "oidc.issuerUrl",
            "required when oidc is enabled (env OIDC_ISSUER_URL)",
        );
        return None;
    };
    match Url::parse(&issuer_url) {
        Ok(u) => {
            let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if u.scheme() != "https" && !loopback {
                r.problem("oidc.issuerUrl", "must be an https URL");
            }
            if u.query().is_some() || u.fragment().is_some() {
                r.problem("oidc.issuerUrl", "must not have a query or fragment");
            }
        }
        Err(e) => r.problem("oidc.issuerUrl", &format!("expected an absolute URL ({e})")),
    }
    let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
        r.problem(
            "oidc.clientId",
            "required when oidc is enabled (env OIDC_CLIENT_ID)",
        );
        return None;
    };
    Some(OidcConfig {
        issuer_url,
        client_id,
        cli_client_id,
        additional_scopes,
        audiences,
        username_claim,
        email_verified_when_absent,
        ca_file,
        algorithms,
        clock_skew,
        jwks_min_refresh_interval,
        jwks_refresh_interval,
        additional_parameters,
        user_parameters,
        token_type,
    })
}

fn check_parameter_name(r: &mut Reader<'_>, key: &str, name: &str) -> bool {
    if name.trim().is_empty() {
        r.problem(key, "a parameter name is empty");
        return false;
    }
    if RESERVED_PARAMETERS.contains(&name) {
        r.problem(
            key,
            &format!("{name:?} is a reserved OAuth/OIDC protocol parameter that gatehouse sets itself; it cannot be configured (reserved: {})", RESERVED_PARAMETERS.join(", ")),
        );
        return false;
    }
    true
}

fn read_additional_parameters(r: &mut Reader<'_>) -> BTreeMap<String, String> {
    let path = "oidc.additionalParameters";
    let mut out = BTreeMap::new();
    let (key, raw) = match r.raw(path, Some("OIDC_ADDITIONAL_PARAMETERS")) {
        None => return out,
        Some(kv) => kv,
    };
    let parsed = match raw {
        RawValue::Env(text) => match parse_parameter_list(&text) {
            Ok(map) => map,
            Err(e) => {
                r.problem(&key, &e);
                return out;
            }
        },
        RawValue::File(Value::Object(map)) => {
            let mut m = BTreeMap::new();
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        m.insert(k, s);
                    }
                    Value::Number(n) => {
                        m.insert(k, n.to_string());
                    }
                    Value::Bool(b) => {
                        m.insert(k, b.to_string());
                    }
                    _ => r.problem(&format!("{path}.{k}"), "expected a string value"),
                }
            }
            m
        }
        RawValue::File(_) => {
            r.problem(&key, "expected a map of parameter name to value");
            return out;
        }
    };
    for (name, value) in parsed {
        if check_parameter_name(r, &format!("{key}.{name}"), &name) {
            out.insert(name, value);
        }
    }
    out
}

fn read_user_parameters(
    r: &mut Reader<'_>,
    statics: &BTreeMap<String, String>,
) -> BTreeMap<String, UserParameter> {
    let path = "oidc.userParameters";
    let mut out = BTreeMap::new();
    let Some((key, raw)) = r.raw(path, None) else {
        return out;
    };
    let RawValue::File(Value::Object(map)) = raw else {
        r.problem(
            &key,
            "expected a map of parameter name to {pattern: REGEX} (or {} for any value)",
        );
        return out;
    };
    for (name, spec) in map {
        let k = format!("{path}.{name}");
        if !check_parameter_name(r, &k, &name) {
            continue;
        }
        if statics.contains_key(&name) {
            r.problem(&k, "is also a static additional parameter; a parameter is either fixed by the server or set by the user, not both");
            continue;
        }
        let pattern = match spec {
            Value::Null => None,
            Value::Object(o) => {
                let mut pattern = None;
                for (field, v) in o {
                    match (field.as_str(), v) {
                        ("pattern", Value::String(p)) => {
                            match regex::Regex::new(&format!("^(?:{p})$")) {
                                Ok(re) => pattern = Some((p, re)),
                                Err(e) => r.problem(
                                    &format!("{k}.pattern"),
                                    &format!("not a valid regular expression: {e}"),
                                ),
                            }
                        }
                        ("pattern", _) => r.problem(&format!("{k}.pattern"), "expected a string"),
                        (other, _) => {
                            r.problem(&format!("{k}.{other}"), "unknown setting (only `pattern`)")
                        }
                    }
                }
                pattern
            }
            _ => {
                r.problem(&k, "expected {pattern: REGEX} or {}");
                continue;
            }
        };
        let (pattern, anchored) = pattern.unzip();
        out.insert(name, UserParameter { pattern, anchored });
    }
    out
}

fn read_admin(r: &mut Reader<'_>) -> Option<AdminConfig> {
    use gatehouse_core::admin::{MAX_TTL_SECS, MIN_BCRYPT_COST, MIN_KEY_LEN};
    let enabled = r
        .bool("admin.enabled", Some("ADMIN_ACCOUNT_ENABLED"))
        .unwrap_or(false);
    let before = r.problems.len();
    let hash = r.secret("admin.passwordHash", Some("ADMIN_ACCOUNT_PASSWORD_HASH"));
    let hash_failed = r.problems.len() > before;
    let before = r.problems.len();
    let key = r.secret(
        "admin.tokenSigningKey",
        Some("ADMIN_ACCOUNT_TOKEN_SIGNING_KEY"),
    );
    let key_failed = r.problems.len() > before;
    let previous_key = r.secret("admin.previousTokenSigningKey", None);
    let token_ttl_key = if r.env.get("ADMIN_ACCOUNT_TOKEN_TTL").is_some() {
        "ADMIN_ACCOUNT_TOKEN_TTL"
    } else {
        "admin.tokenTtl"
    };
    let token_ttl = r
        .duration("admin.tokenTtl", Some("ADMIN_ACCOUNT_TOKEN_TTL"))
        .unwrap_or(Duration::from_secs(gatehouse_core::admin::DEFAULT_TTL_SECS));
    let not_before = r.string("admin.tokensNotBefore", None).and_then(|s| {
        r.parse_with("admin.tokensNotBefore", &s, |s| {
            let t = humantime::parse_rfc3339(s.trim()).map_err(|e| {
                format!("expected an RFC 3339 time in UTC such as 2026-01-31T09:00:00Z ({e})")
            })?;
            let now = std::time::SystemTime::now();
            if t > now + Duration::from_secs(60) {
                return Err("is in the future: every admin token, new ones included, would be refused until then; use the current time (`date -u +%Y-%m-%dT%H:%M:%SZ`) to revoke the tokens issued so far".to_owned());
            }
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| "must be after 1970".to_owned())?
                .as_secs();
            Ok(i64::try_from(secs).unwrap_or(i64::MAX))
        })
    });
    let token_issuer = r
        .string("admin.tokenIssuer", Some("ADMIN_ACCOUNT_TOKEN_ISSUER"))
        .unwrap_or_else(|| "gatehouse-admin".to_owned());
    let token_audience = r
        .string("admin.tokenAudience", Some("ADMIN_ACCOUNT_TOKEN_AUDIENCE"))
        .unwrap_or_else(|| "gatehouse".to_owned());
    let impersonate_user = r
        .string("admin.impersonate.user", None)
        .unwrap_or_else(|| "gatehouse:admin".to_owned());
    let impersonate_groups = r
        .list("admin.impersonate.groups", None)
        .unwrap_or_else(|| vec!["gatehouse:admins".to_owned()]);
    let allow_system = r
        .bool("admin.allowSystemImpersonation", None)
        .unwrap_or(false);
    let cidrs = r.list("admin.loginAllowedCidrs", None).unwrap_or_default();
    let mut login_allowed_cidrs = Vec::new();
    for (i, c) in cidrs.iter().enumerate() {
        let c = c.trim();
        let parsed = c
            .parse::<ipnet::IpNet>()
            .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => login_allowed_cidrs.push(n.trunc()),
            Err(_) => r.problem(
                &format!("admin.loginAllowedCidrs[{i}]"),
                &format!("{c:?} is not a network in CIDR notation, such as 10.0.0.0/8 or fd00::/8"),
            ),
        }
    }
    if !enabled {
        return None;
    }
    if token_ttl.is_zero() || token_ttl.as_secs() > MAX_TTL_SECS {
        r.problem(
            token_ttl_key,
            "must be more than 0 and at most 24h: an admin token cannot be revoked one by one, so its lifetime bounds how long a leaked one works (sign in again for a new one)",
        );
    }
    // Go trims header values, so ` system:masters` would reach the kube-apiserver as
    // `system:masters`: names with surrounding whitespace or control characters are refused.
    for name in std::iter::once(&impersonate_user).chain(&impersonate_groups) {
        if name.trim() != name || name.is_empty() || name.chars().any(char::is_control) {
            r.problem(
                "admin.impersonate",
                &format!("{name:?} is not a usable Kubernetes user or group name (empty, surrounding whitespace or control characters)"),
            );
        }
    }
    if !allow_system {
        let system: Vec<&str> = std::iter::once(&impersonate_user)
            .chain(&impersonate_groups)
            .map(String::as_str)
            .filter(|n| n.starts_with("system:"))
            .collect();
        if !system.is_empty() {
            r.problem(
                "admin.impersonate",
                &format!(
                    "names Kubernetes system identities ({}): `system:` users and groups (system:masters bypasses RBAC entirely, and no RBAC rule can limit it) are refused unless admin.allowSystemImpersonation is true; prefer a group of your own such as gatehouse:admins bound to the ClusterRole the admin needs",
                    system.join(", ")
                ),
            );
        }
    }
    let hash = match hash {
        Some(h) if gatehouse_core::admin::is_bcrypt_hash(h.trim()) => {
            let h = h.trim().to_owned();
            match gatehouse_core::admin::bcrypt_cost(&h) {
                Some(cost) if cost >= MIN_BCRYPT_COST => {}
                cost => r.problem(
                    "admin.passwordHash",
                    &format!(
                        "uses bcrypt cost {}, below the minimum of {MIN_BCRYPT_COST}: a low cost makes password guessing cheap; make a new hash with `htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`",
                        cost.map_or_else(|| "?".to_owned(), |c| c.to_string())
                    ),
                ),
            }
            h
        }
        Some(_) => {
            r.problem("admin.passwordHash", "is not a bcrypt hash (`$2a$`/`$2b$`/`$2y$`, 60 characters); make one with `htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`");
            return None;
        }
        None if hash_failed => return None,
        None => {
            r.problem("admin.passwordHash", "required when admin is enabled (or passwordHashFile, or env ADMIN_ACCOUNT_PASSWORD_HASH)");
            return None;
        }
    };
    let previous_token_signing_key = match previous_key {
        Some(k) if k.trim().len() >= MIN_KEY_LEN => {
            Some(SecretSlice::from(k.trim().as_bytes().to_vec()))
        }
        Some(_) => {
            r.problem(
                "admin.previousTokenSigningKey",
                "must be at least 32 bytes (the key that was admin.tokenSigningKey before the rotation)",
            );
            None
        }
        None => None,
    };
    let key = match key {
        Some(k) if k.trim().len() >= MIN_KEY_LEN => k.trim().as_bytes().to_vec(),
        Some(_) => {
            r.problem(
                "admin.tokenSigningKey",
                "must be at least 32 bytes; make one with `openssl rand -hex 32`",
            );
            return None;
        }
        None if key_failed => return None,
        None => {
            r.problem("admin.tokenSigningKey", "required when admin is enabled (or tokenSigningKeyFile, or env ADMIN_ACCOUNT_TOKEN_SIGNING_KEY)");
            return None;
        }
    };
    Some(AdminConfig {
        password_hash: SecretString::from(hash),
        token_signing_key: SecretSlice::from(key),
        previous_token_signing_key,
        token_ttl,
        tokens_not_before: not_before,
        token_issuer,
        token_audience,
        impersonate_user,
        impersonate_groups,
        login_allowed_cidrs,
    })
}

struct Reader<'a> {
    root: Value,
    env: &'a dyn Source,
    problems: Vec<Problem>,
    seen: BTreeSet<String>,
}

impl Reader<'_> {
    fn problem(&mut self, key: &str, message: &str) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The raw value at `path`, from the env alias first, then the file. The returned key is
    /// where the value came from, for messages.
    fn raw(&mut self, path: &str, alias: Option<&str>) -> Option<(String, RawValue)> {
        self.seen.insert(path.to_owned());
        if let Some(name) = alias
            && let Some(v) = self.env.get(name)
        {
            return Some((name.to_owned(), RawValue::Env(v)));
        }
        let mut cur = &self.root;
        for part in path.split('.') {
            cur = cur.get(part)?;
        }
        if cur.is_null() {
            return None;
        }
        Some((path.to_owned(), RawValue::File(cur.clone())))
    }

    fn parse_with<T>(
        &mut self,
        key: &str,
        s: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match f(s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, &e);
                None
            }
        }
    }

    fn string(&mut self, path: &str, alias: Option<&str>) -> Option<String> {
        match self.raw(path, alias)? {
            (_, RawValue::Env(s)) => Some(s),
            (_, RawValue::File(Value::String(s))) => Some(s),
            (_, RawValue::File(Value::Number(n))) => Some(n.to_string()),
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected a string");
                None
            }
        }
    }

    fn bool(&mut self, path: &str, alias: Option<&str>) -> Option<bool> {
        match self.raw(path, alias)? {
            (key, RawValue::Env(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" | "" => Some(false),
                _ => {
                    self.problem(&key, "expected true or false");
                    None
                }
            },
            (_, RawValue::File(Value::Bool(b))) => Some(b),
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected true or false");
                None
            }
        }
    }

    fn int(&mut self, path: &str, alias: Option<&str>) -> Option<i64> {
        match self.raw(path, alias)? {
            (key, RawValue::Env(s)) => self.parse_with(&key, &s, |s| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| "expected an integer".to_owned())
            }),
            (_, RawValue::File(Value::Number(n))) if n.is_i64() => n.as_i64(),
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected an integer");
                None
            }
        }
    }

    fn list(&mut self, path: &str, alias: Option<&str>) -> Option<Vec<String>> {
        match self.raw(path, alias)? {
            (_, RawValue::Env(s)) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            (key, RawValue::File(Value::Array(items))) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.to_owned()),
                        None => self.problem(&format!("{key}[{i}]"), "expected a string"),
                    }
                }
                Some(out)
            }
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected a list of strings");
                None
            }
        }
    }

    fn duration(&mut self, path: &str, alias: Option<&str>) -> Option<Duration> {
        let parse = |s: &str| {
            humantime::parse_duration(s.trim())
                .map_err(|e| format!("expected a duration such as 30s, 10m or 24h ({e})"))
        };
        match self.raw(path, alias)? {
            (key, RawValue::Env(s)) | (key, RawValue::File(Value::String(s))) => {
                self.parse_with(&key, &s, parse)
            }
            (_, RawValue::File(Value::Number(n))) if n.is_u64() => {
                n.as_u64().map(Duration::from_secs)
            }
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected a duration such as 30s, 10m or 24h");
                None
            }
        }
    }

    fn url(&mut self, path: &str, alias: Option<&str>) -> Option<Url> {
        let s = self.string(path, alias)?;
        let key = alias
            .filter(|a| self.env.get(a).is_some())
            .unwrap_or(path)
            .to_owned();
        self.parse_with(&key, &s, |s| {
            Url::parse(s.trim()).map_err(|e| format!("expected an absolute URL ({e})"))
        })
    }

    fn path(&mut self, path: &str, alias: Option<&str>) -> Option<PathBuf> {
        self.string(path, alias).map(PathBuf::from)
    }

    /// A secret given inline, through `<path>File`, or through the env alias.
    fn secret(&mut self, path: &str, alias: Option<&str>) -> Option<String> {
        let file_key = format!("{path}File");
        let inline = self.string(path, alias);
        let file = self.path(&file_key, None);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(path, &format!("set either {path} or {file_key}, not both"));
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(f)) => match std::fs::read_to_string(&f) {
                Ok(v) => Some(v.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => {
                    self.problem(&file_key, &format!("cannot read {}: {e}", f.display()));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn unknown_keys(&mut self) {
        let mut unknown = Vec::new();
        walk_unknown(&self.root, "", &self.seen, &mut unknown);
        for key in unknown {
            self.problem(
                &key,
                "unknown setting (check the spelling; see docs/configuration.md)",
            );
        }
    }
}

enum RawValue {
    Env(String),
    File(Value),
}

fn walk_unknown(v: &Value, prefix: &str, seen: &BTreeSet<String>, out: &mut Vec<String>) {
    let Value::Object(map) = v else { return };
    for (k, child) in map {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if seen.contains(&full) {
            continue;
        }
        let dotted = format!("{full}.");
        if seen.iter().any(|s| s.starts_with(&dotted)) {
            walk_unknown(child, &full, seen, out);
        } else {
            out.push(full);
        }
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_address() {
        let c = parse(
            "trustedProxies: [10.0.0.0/8]\n",
            &HashMap::<String, String>::new(),
        )
        .unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.1.1.1".parse().unwrap(),
        );
        let ingress = Some("10.0.0.5".parse().unwrap());
        // The client may prepend anything: the ingress appended what it saw (203.0.113.7).
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("203.0.113.7".parse().unwrap()))
        );
        // A peer that is not trusted is the client, whatever it claims.
        let direct = Some("198.51.100.9".parse().unwrap());
        assert_eq!(c.client_ip(direct, &h), Ok(direct));
        // A trusted peer without a header: the peer.
        assert_eq!(c.client_ip(ingress, &http::HeaderMap::new()), Ok(ingress));
        // Proxies that append ip:port or [v6]:port.
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7:51234".parse().unwrap(),
        );
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("203.0.113.7".parse().unwrap()))
        );
        h.insert("x-forwarded-for", "[2001:db8::7]:443".parse().unwrap());
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("2001:db8::7".parse().unwrap()))
        );
    }

    #[test]
    fn an_unreadable_chain_behind_a_trusted_proxy_is_an_error_not_the_proxy() {
        let c = parse(
            "trustedProxies: [10.0.0.0/8]\n",
            &HashMap::<String, String>::new(),
        )
        .unwrap();
        let ingress = Some("10.0.0.5".parse().unwrap());
        // A byte that is not text in front of what the proxy appended: the header as a whole
        // is not text, but the proxy's entry is still read.
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\x80x, 203.0.113.7").unwrap(),
        );
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("203.0.113.7".parse().unwrap()))
        );
        // Not text where the proxy's entry should be: an error, never the proxy's address.
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"203.0.113.7, \x80x").unwrap(),
        );
        assert!(c.client_ip(ingress, &h).is_err());
        // An entry gatehouse cannot parse to the right of the client's: an error, never the
        // address in front of it.
        h.insert("x-forwarded-for", "198.51.100.2, unknown".parse().unwrap());
        assert!(c.client_ip(ingress, &h).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const HASH: &str = "$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a";
    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn admin_problems(extra: &str) -> Vec<Problem> {
        let yaml = format!(
            "admin: {{ enabled: true, passwordHash: '{HASH}', tokenSigningKey: '{KEY}', {extra} }}"
        );
        match parse(&yaml, &env(&[])) {
            Err(ConfigError::Invalid(p)) => p,
            Ok(_) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    fn admin(extra: &str) -> AdminConfig {
        let yaml = format!(
            "admin: {{ enabled: true, passwordHash: '{HASH}', tokenSigningKey: '{KEY}', {extra} }}"
        );
        parse(&yaml, &env(&[])).unwrap().admin.unwrap()
    }

    #[test]
    fn a_bcrypt_cost_below_10_is_refused_with_how_to_make_a_new_hash() {
        let weak = HASH.replace("$10$", "$04$");
        let yaml =
            format!("admin: {{ enabled: true, passwordHash: '{weak}', tokenSigningKey: '{KEY}' }}");
        let Err(ConfigError::Invalid(problems)) = parse(&yaml, &env(&[])) else {
            panic!("a cost-4 hash must be refused")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "admin.passwordHash");
        assert!(
            problems[0].message.contains("cost 4"),
            "{}",
            problems[0].message
        );
        assert!(problems[0].message.contains("htpasswd -nbBC 12"));
        assert!(
            !problems[0].message.contains(&weak),
            "the hash is never echoed"
        );
        assert!(admin_problems("").is_empty(), "cost 10 is accepted");
    }

    #[test]
    fn admin_token_ttl_defaults_to_8h_and_is_capped_at_24h() {
        assert_eq!(admin("").token_ttl, Duration::from_secs(8 * 3600));
        assert_eq!(
            admin("tokenTtl: 24h").token_ttl,
            Duration::from_secs(24 * 3600)
        );
        let p = admin_problems("tokenTtl: 25h");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "admin.tokenTtl");
        assert!(p[0].message.contains("at most 24h"));
        assert_eq!(admin_problems("tokenTtl: 0s")[0].key, "admin.tokenTtl");
    }

    #[test]
    fn tokens_not_before_and_previous_key_are_read() {
        let a = admin(
            "tokensNotBefore: '2026-01-31T09:00:00Z', previousTokenSigningKey: 'fedcba9876543210fedcba9876543210'",
        );
        assert_eq!(a.tokens_not_before, Some(1_769_850_000));
        assert!(a.previous_token_signing_key.is_some());
        let p = admin_problems("tokensNotBefore: yesterday");
        assert_eq!(p[0].key, "admin.tokensNotBefore");
        let p = admin_problems("tokensNotBefore: '2999-01-01T00:00:00Z'");
        assert!(p[0].message.contains("in the future"), "{p:?}");
        let p = admin_problems("previousTokenSigningKey: short");
        assert_eq!(p[0].key, "admin.previousTokenSigningKey");
    }

    #[test]
    fn system_impersonation_is_refused_unless_explicitly_allowed() {
        let p = admin_problems("impersonate: { user: 'admin', groups: ['system:masters'] }");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "admin.impersonate");
        assert!(p[0].message.contains("system:masters"));
        assert!(p[0].message.contains("admin.allowSystemImpersonation"));
        let p = admin_problems("impersonate: { user: 'admin', groups: [' system:masters'] }");
        assert!(
            p.iter()
                .any(|p| p.message.contains("surrounding whitespace")),
            "{p:?}"
        );
        let p = admin_problems("impersonate: { user: 'system:admin' }");
        assert_eq!(p[0].key, "admin.impersonate");
        let a = admin(
            "allowSystemImpersonation: true, impersonate: { user: 'admin', groups: ['system:masters'] }",
        );
        assert_eq!(a.impersonate_groups, vec!["system:masters"]);
        // The defaults are not system names.
        assert!(admin_problems("").is_empty());
    }

    #[test]
    fn login_allowed_cidrs_are_parsed_and_matched() {
        let a = admin("loginAllowedCidrs: ['10.0.0.0/8', '192.0.2.7', 'fd00::/8']");
        assert_eq!(a.login_allowed_cidrs.len(), 3);
        assert!(a.login_allowed_from("10.1.2.3".parse().unwrap()));
        assert!(a.login_allowed_from("192.0.2.7".parse().unwrap()));
        assert!(!a.login_allowed_from("192.0.2.8".parse().unwrap()));
        assert!(a.login_allowed_from("fd12::1".parse().unwrap()));
        // IPv4-mapped IPv6 peers (a dual-stack listener) match the IPv4 network.
        assert!(a.login_allowed_from("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!a.login_allowed_from("2001:db8::1".parse().unwrap()));
        assert!(admin("").login_allowed_from("203.0.113.1".parse().unwrap()));
        let p = admin_problems("loginAllowedCidrs: ['10.0.0.0/33', 'nope']");
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["admin.loginAllowedCidrs[0]", "admin.loginAllowedCidrs[1]"]
        );
    }

    fn browser(session: &str) -> Result<BrowserConfig, Vec<Problem>> {
        let yaml = format!(
            "publicUrl: https://gh.example\noidc: {{ issuerUrl: https://idp.example, clientId: c, clientSecret: s }}\nsession: {{ key: '{KEY}', {session} }}\n"
        );
        match parse(&yaml, &env(&[])) {
            Ok(c) => Ok(c.browser.unwrap()),
            Err(ConfigError::Invalid(p)) => Err(p),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn secure_cookies_get_host_prefixed_names() {
        let b = browser("").unwrap();
        assert_eq!(b.cookie_name, "__Host-gatehouse_session");
        assert_eq!(b.flow_cookie_name, "__Host-gatehouse_flow");
        // A configured name gets the prefix, once.
        assert_eq!(browser("cookieName: gh").unwrap().cookie_name, "__Host-gh");
        assert_eq!(
            browser("cookieName: __Host-gh").unwrap().cookie_name,
            "__Host-gh"
        );
        // Plain-HTTP development keeps plain names, and refuses prefixed ones.
        let b = browser("secureCookies: false").unwrap();
        assert_eq!(
            (b.cookie_name.as_str(), b.flow_cookie_name.as_str()),
            ("gatehouse_session", "gatehouse_flow")
        );
        let p = browser("secureCookies: false, cookieName: __Host-gh").unwrap_err();
        assert_eq!(p[0].key, "session.cookieName");
        let p = browser("cookieName: gatehouse_flow").unwrap_err();
        assert!(p[0].message.contains("flow cookie"));
    }

    #[test]
    fn full_file_parses() {
        let yaml = format!(
            r#"
listen: 127.0.0.1:9443
publicUrl: https://gatehouse.example
kubernetes: {{ kubeconfig: /k, context: c }}
oidc:
  issuerUrl: https://idp.example/dex
  clientId: gatehouse
  cliClientId: gatehouse-cli
  additionalScopes: [groups, offline_access]
  audiences: [kubernetes]
  algorithms: [RS256, ES256]
  clockSkew: 30s
serviceAccounts:
  annotationPrefix: rbac.kargo.akuity.io
  namespaces: [team-a]
  globalNamespaces: [shared]
fallThrough: {{ enabled: false }}
admin:
  enabled: true
  passwordHash: "{HASH}"
  tokenSigningKey: "0123456789abcdef0123456789abcdef"
  tokenTtl: 1h
"#
        );
        let c = parse(&yaml, &env(&[])).unwrap();
        let o = c.oidc.unwrap();
        assert_eq!(o.client_ids(), vec!["gatehouse", "gatehouse-cli"]);
        assert_eq!(
            o.scopes(),
            vec!["openid", "profile", "email", "groups", "offline_access"]
        );
        assert_eq!(o.clock_skew, Duration::from_secs(30));
        assert_eq!(o.algorithms, Some(vec![Algorithm::RS256, Algorithm::ES256]));
        assert!(!c.fall_through);
        assert_eq!(
            c.service_accounts.watched_namespaces(),
            Some(vec!["shared".to_owned(), "team-a".to_owned()])
        );
        let a = c.admin.unwrap();
        assert_eq!(a.token_ttl, Duration::from_secs(3600));
        assert_eq!(a.impersonate_groups, vec!["gatehouse:admins"]);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let yaml = r#"
listen: not-an-address
oidc:
  issuerUrl: http://idp.example
  clientSecrets: x
  clockSkew: 5m
  algorithms: [HS256]
serviceAccounts: { globalNamespaces: shared }
admin: { enabled: true, passwordHash: plain }
unknownTop: 1
"#;
        let Err(ConfigError::Invalid(problems)) = parse(yaml, &env(&[])) else {
            panic!("expected problems")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "listen",
            "oidc.issuerUrl",
            "oidc.clientId",
            "oidc.clientSecrets",
            "oidc.clockSkew",
            "oidc.algorithms",
            "serviceAccounts.globalNamespaces",
            "admin.passwordHash",
            "unknownTop",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
        let text = ConfigError::Invalid(problems).to_string();
        assert!(!text.contains("plain"), "secret values must not be echoed");
    }

    #[test]
    fn origin_env_aliases_win_over_file() {
        let c = parse(
            "oidc: { issuerUrl: https://file.example, clientId: from-file }",
            &env(&[
                ("OIDC_ISSUER_URL", "https://env.example/"),
                ("OIDC_CLIENT_ID", "from-env"),
                ("OIDC_CLI_CLIENT_ID", "cli"),
                ("OIDC_ADDITIONAL_SCOPES", "groups, offline_access"),
                ("OIDC_USERNAME_CLAIM", "preferred_username"),
                ("GLOBAL_SERVICE_ACCOUNT_NAMESPACES", "shared,ops"),
                ("ADMIN_ACCOUNT_ENABLED", "true"),
                ("ADMIN_ACCOUNT_PASSWORD_HASH", HASH),
                (
                    "ADMIN_ACCOUNT_TOKEN_SIGNING_KEY",
                    "0123456789abcdef0123456789abcdef",
                ),
                ("ADMIN_ACCOUNT_TOKEN_TTL", "2h"),
            ]),
        )
        .unwrap();
        let o = c.oidc.unwrap();
        assert_eq!(o.issuer_url, "https://env.example/");
        assert_eq!(o.client_id, "from-env");
        assert_eq!(o.cli_client_id.as_deref(), Some("cli"));
        assert_eq!(o.additional_scopes, vec!["groups", "offline_access"]);
        assert_eq!(o.username_claim, "preferred_username");
        assert_eq!(c.service_accounts.global_namespaces, vec!["shared", "ops"]);
        assert_eq!(c.admin.unwrap().token_ttl, Duration::from_secs(7200));
    }

    #[test]
    fn mapping_every_namespace_is_an_explicit_opt_in_and_never_covers_protected_namespaces() {
        let oidc = "oidc: { issuerUrl: https://idp.example, clientId: c }\n";
        // Neither namespaces nor allNamespaces: nothing is mappable, nothing is watched.
        let sa = parse(oidc, &env(&[])).unwrap().service_accounts;
        assert!(sa.maps_nothing());
        assert_eq!(sa.watched_namespaces(), Some(vec![]));
        assert!(!sa.scope().allows("team-a") && !sa.scope().allows("kube-system"));
        assert_eq!(sa.max_staleness, Duration::from_secs(300));

        // allNamespaces: every namespace but the protected ones and gatehouse's own (from the
        // setting and from POD_NAMESPACE alike).
        let c = parse(
            &format!(
                "{oidc}serviceAccounts: {{ allNamespaces: true, gatehouseNamespace: gh-config }}"
            ),
            &env(&[("POD_NAMESPACE", "gh-pod")]),
        )
        .unwrap();
        let sa = c.service_accounts;
        assert_eq!(sa.watched_namespaces(), None);
        let scope = sa.scope();
        assert!(scope.allows("team-a"));
        for ns in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "gh-config",
            "gh-pod",
        ] {
            assert!(!scope.allows(ns), "{ns}");
        }

        // Listed by name, a protected namespace is mappable (and watched).
        let sa = parse(
            &format!("{oidc}serviceAccounts: {{ namespaces: [team-a, kube-system] }}"),
            &env(&[]),
        )
        .unwrap()
        .service_accounts;
        assert!(sa.scope().allows("kube-system") && !sa.scope().allows("team-b"));
        assert_eq!(
            sa.watched_namespaces(),
            Some(vec!["kube-system".to_owned(), "team-a".to_owned()])
        );

        let Err(ConfigError::Invalid(problems)) = parse(
            "serviceAccounts: { maxStaleness: 0s, allNamespaces: maybe }",
            &env(&[]),
        ) else {
            panic!("expected problems")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"serviceAccounts.maxStaleness"), "{keys:?}");
        assert!(keys.contains(&"serviceAccounts.allNamespaces"), "{keys:?}");
    }

    #[test]
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("gh-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hash_file = dir.join("hash");
        std::fs::write(&hash_file, format!("{HASH}\n")).unwrap();
        let yaml = format!(
            "admin: {{ enabled: true, passwordHashFile: {}, tokenSigningKeyFile: {} }}",
            hash_file.display(),
            dir.join("missing").display()
        );
        let Err(ConfigError::Invalid(problems)) = parse(&yaml, &env(&[])) else {
            panic!("expected a problem")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "admin.tokenSigningKeyFile");
    }

    #[test]
    fn empty_config_is_fall_through_only() {
        let c = parse("", &env(&[])).unwrap();
        assert!(c.oidc.is_none() && c.admin.is_none() && c.fall_through);
        assert!(parse("fallThrough: {enabled: false}", &env(&[])).is_err());
    }

    #[test]
    fn additional_parameters_from_file_and_env() {
        let yaml = r#"
oidc:
  issuerUrl: https://idp.example
  clientId: c
  additionalParameters: { connector_id: ldap, prompt: login, max_age: 0, "audience": "a=b, c" }
  userParameters:
    login_hint: { pattern: '[^@]+@example\.com' }
    kc_idp_hint: {}
"#;
        let o = parse(yaml, &env(&[])).unwrap().oidc.unwrap();
        assert_eq!(o.additional_parameters["connector_id"], "ldap");
        assert_eq!(o.additional_parameters["max_age"], "0");
        assert_eq!(o.additional_parameters["audience"], "a=b, c");
        let hint = &o.user_parameters["login_hint"];
        assert!(hint.accepts("alice@example.com"));
        assert!(
            !hint.accepts("alice@example.com.evil"),
            "the pattern must match the whole value"
        );
        assert!(o.user_parameters["kc_idp_hint"].accepts("anything"));

        let o = parse(
            "oidc: { issuerUrl: https://idp.example, clientId: c }",
            &env(&[(
                "OIDC_ADDITIONAL_PARAMETERS",
                r"resource=https://k8s?x=1,domain_hint=a\,b, prompt=",
            )]),
        )
        .unwrap()
        .oidc
        .unwrap();
        assert_eq!(o.additional_parameters["resource"], "https://k8s?x=1");
        assert_eq!(o.additional_parameters["domain_hint"], "a,b");
        assert_eq!(o.additional_parameters["prompt"], "");
    }

    #[test]
    fn reserved_and_malformed_parameters_are_refused() {
        for (yaml, envs, key) in [
            (
                "oidc: { issuerUrl: https://i.example, clientId: c, additionalParameters: { state: x } }",
                vec![],
                "oidc.additionalParameters.state",
            ),
            (
                "oidc: { issuerUrl: https://i.example, clientId: c, additionalParameters: { '': x } }",
                vec![],
                "oidc.additionalParameters.",
            ),
            (
                "oidc: { issuerUrl: https://i.example, clientId: c }",
                vec![("OIDC_ADDITIONAL_PARAMETERS", "a=1,broken")],
                "OIDC_ADDITIONAL_PARAMETERS",
            ),
            (
                "oidc: { issuerUrl: https://i.example, clientId: c }",
                vec![("OIDC_ADDITIONAL_PARAMETERS", "code_challenge=x")],
                "OIDC_ADDITIONAL_PARAMETERS.code_challenge",
            ),
            (
                "oidc: { issuerUrl: https://i.example, clientId: c, userParameters: { redirect_uri: {} } }",
                vec![],
                "oidc.userParameters.redirect_uri",
            ),
            (
                "oidc: { issuerUrl: https://i.example, clientId: c, additionalParameters: { prompt: login }, userParameters: { prompt: {} } }",
                vec![],
                "oidc.userParameters.prompt",
            ),
            (
                "oidc: { issuerUrl: https://i.example, clientId: c, userParameters: { login_hint: { pattern: '(' } } }",
                vec![],
                "oidc.userParameters.login_hint.pattern",
            ),
        ] {
            let Err(ConfigError::Invalid(problems)) = parse(yaml, &env(&envs)) else {
                panic!("{yaml} {envs:?} should fail")
            };
            assert!(
                problems.iter().any(|p| p.key == key),
                "{key} not in {problems:?}"
            );
        }
        let Err(ConfigError::Invalid(problems)) = parse(
            "oidc: { issuerUrl: https://i.example, clientId: c }",
            &env(&[("OIDC_ADDITIONAL_PARAMETERS", "a=1,broken")]),
        ) else {
            panic!()
        };
        assert!(
            problems[0].message.contains("\"broken\" has no `=`"),
            "{problems:?}"
        );
    }

    /// The documented example is a valid configuration (secret files aside).
    #[test]
    fn documented_example_parses() {
        let text = include_str!("../../../docs/examples/config.yaml");
        let dir = std::env::temp_dir().join(format!("gh-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hash = dir.join("hash");
        let key = dir.join("key");
        std::fs::write(&hash, HASH).unwrap();
        std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
        let text = text
            .replace(
                "/etc/gatehouse/secret/admin-password-hash",
                hash.to_str().unwrap(),
            )
            .replace(
                "/etc/gatehouse/secret/admin-signing-key",
                key.to_str().unwrap(),
            )
            .replace(
                "/etc/gatehouse/secret/oidc-client-secret",
                key.to_str().unwrap(),
            )
            .replace("/etc/gatehouse/secret/session-key", key.to_str().unwrap());
        let c = parse(&text, &env(&[])).unwrap();
        let b = c.browser.as_ref().unwrap();
        assert_eq!(
            b.redirect_uri(),
            "https://gatehouse.example.com/auth/callback"
        );
        assert_eq!(
            c.oidc.unwrap().additional_parameters["connector_id"],
            "ldap"
        );
        assert_eq!(
            c.service_accounts.global_namespaces,
            vec!["platform-shared"]
        );
    }

    #[test]
    fn yaml_syntax_error_is_reported() {
        assert!(matches!(
            parse("oidc: [", &env(&[])),
            Err(ConfigError::Syntax { .. })
        ));
        // The message names the place, never the text around it (it may be a secret).
        let err = parse(
            "oidc:\n  clientSecret: SECRET-CLIENT-VALUE\n  bad: [unclosed\n",
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("SECRET-CLIENT-VALUE"), "{err}");
    }

    fn oidc_problems(extra: &str) -> Vec<String> {
        match parse(
            &format!("oidc: {{ issuerUrl: https://i.example, clientId: c, {extra} }}"),
            &env(&[]),
        ) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn jwks_min_refresh_interval_below_one_second_is_refused() {
        for bad in ["0s", "0", "500ms"] {
            assert_eq!(
                oidc_problems(&format!("jwksMinRefreshInterval: {bad}")),
                vec!["oidc.jwksMinRefreshInterval"],
                "{bad}"
            );
        }
        assert!(oidc_problems("jwksMinRefreshInterval: 1s").is_empty());
        let o = parse(
            "oidc: { issuerUrl: https://i.example, clientId: c }",
            &env(&[]),
        )
        .unwrap()
        .oidc
        .unwrap();
        assert_eq!(o.jwks_min_refresh_interval, Duration::from_secs(10));
    }

    #[test]
    fn jwks_refresh_interval_defaults_to_five_minutes_within_bounds() {
        let o = parse(
            "oidc: { issuerUrl: https://i.example, clientId: c }",
            &env(&[]),
        )
        .unwrap()
        .oidc
        .unwrap();
        assert_eq!(o.jwks_refresh_interval, Duration::from_secs(300));
        for bad in ["59s", "0s", "2h"] {
            assert_eq!(
                oidc_problems(&format!("jwksRefreshInterval: {bad}")),
                vec!["oidc.jwksRefreshInterval"],
                "{bad}"
            );
        }
        assert!(oidc_problems("jwksRefreshInterval: 1m").is_empty());
        assert!(oidc_problems("jwksRefreshInterval: 1h").is_empty());
    }

    #[test]
    fn email_verified_when_absent_defaults_to_untrusted() {
        let read = |extra: &str| {
            parse(
                &format!("oidc: {{ issuerUrl: https://i.example, clientId: c{extra} }}"),
                &env(&[]),
            )
            .unwrap()
            .oidc
            .unwrap()
        };
        let o = read("");
        assert!(!o.email_verified_when_absent);
        assert_eq!(o.claim_rules().username_claim, "email");
        assert!(!o.claim_rules().email_verified_when_absent);
        assert!(
            read(", emailVerifiedWhenAbsent: true")
                .claim_rules()
                .email_verified_when_absent
        );
        assert!(!o.accepts_access_tokens());
        assert!(read(", tokenType: access_token").accepts_access_tokens());
    }
}
