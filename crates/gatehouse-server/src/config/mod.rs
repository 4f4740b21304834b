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
//!
//! # Files
//! - `mod.rs`: [`load`] and [`parse`], the top-level keys, the [`Source`] of environment values.
//! - `model.rs`: [`Config`] and its plain sections, its `--check-config` description, and the
//!   problems a load reports.
//! - `reader.rs`: the typed reads every section goes through (key path, alias, `...File`).
//! - `oidc.rs`, `authentication.rs`, `browser.rs`, `service_accounts.rs`, `admin.rs`: one section each, its type and
//!   its reading and checks.
//! - `client_ip.rs`: `trustedProxies` and the client's address from `X-Forwarded-For`.
//! - `tests.rs`: the loader's tests.

mod admin;
mod authentication;
mod browser;
mod client_ip;
mod model;
mod oidc;
mod reader;
mod service_accounts;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

pub use admin::AdminConfig;
pub use authentication::{
    AuthenticationConfig, AuthenticationSource, Compiled, DEFAULT_RELOAD_INTERVAL, IssuerSettings,
    compile_text, settings_for, sha256,
};
pub use browser::{BrowserConfig, FLOW_COOKIE, HOST_PREFIX, cookie_names};
pub use model::{
    Config, ConfigError, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_STREAMS_PER_CONNECTION,
    KubernetesConfig, Limits, Problem, TlsFiles,
};
pub use oidc::{
    JWKS_MIN_REFRESH_FLOOR, JWKS_REFRESH_BOUNDS, OidcConfig, RESERVED_PARAMETERS, UserParameter,
    parse_parameter_list,
};
pub use service_accounts::{IN_CLUSTER_NAMESPACE_FILE, ServiceAccountsConfig};

use admin::read_admin;
use authentication::read_authentication;
use browser::read_browser;
use oidc::read_oidc;
use reader::{RawValue, Reader};
use service_accounts::read_service_accounts;

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

/// A count that must be at least 1: `default` when absent; a problem naming `what` when it is
/// below 1.
fn at_least_one(r: &mut Reader<'_>, key: &str, default: usize, what: &str) -> usize {
    match r.int(key, None) {
        None => default,
        Some(n) => match usize::try_from(n) {
            Ok(n) if n >= 1 => n,
            _ => {
                r.problem(key, &format!("must be at least 1 ({what})"));
                default
            }
        },
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
        max_streams_per_connection: at_least_one(
            r,
            "kubernetes.maxStreamsPerConnection",
            DEFAULT_MAX_STREAMS_PER_CONNECTION,
            "the kube-apiserver's --http2-max-streams-per-connection (100 by default); never more than the server in front of gatehouse's connections allows",
        ),
        max_connections: at_least_one(
            r,
            "kubernetes.maxConnections",
            DEFAULT_MAX_CONNECTIONS,
            "HTTP/2 connections to the kube-apiserver with gatehouse's credentials; 100 by default",
        ),
    };
    let oidc = read_oidc(r);
    let service_accounts = read_service_accounts(r);
    let fall_through = r.bool("fallThrough.enabled", None).unwrap_or(true);
    let admin = read_admin(r);
    let authentication = read_authentication(r, admin.as_ref().map(|a| a.token_issuer.as_str()));
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
    if oidc.is_none() && admin.is_none() && authentication.is_none() && !fall_through {
        r.problem(
            "(top level)",
            "nothing can authenticate: enable oidc, authentication, admin or fallThrough",
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
        authentication,
        browser,
        limits,
    }
}
