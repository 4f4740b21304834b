//! The validated configuration as the server reads it: [`Config`] and its plain sections (TLS
//! files, the kube-apiserver, limits), its JSON description for `--check-config`, and the
//! problems a load reports ([`Problem`], [`ConfigError`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::{
    AdminConfig, AuthenticationConfig, AuthenticationSource, BrowserConfig, OidcConfig,
    ServiceAccountsConfig,
};

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
    /// Issuers configured by an `AuthenticationConfiguration` (`authentication`), when set.
    pub authentication: Option<AuthenticationConfig>,
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
            "kubernetes": {
                "kubeconfig": self.kubernetes.kubeconfig,
                "context": self.kubernetes.context,
                "maxStreamsPerConnection": self.kubernetes.max_streams_per_connection,
                "maxConnections": self.kubernetes.max_connections,
            },
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
            "authentication": self.authentication.as_ref().map(|a| serde_json::json!({
                "configFile": match &a.source {
                    AuthenticationSource::File(p) => Some(p.display().to_string()),
                    AuthenticationSource::Inline => None,
                },
                "inline": a.source == AuthenticationSource::Inline,
                "reloadInterval": humantime::format_duration(a.reload_interval).to_string(),
                "jwt": a.initial.authenticators.iter().map(|j| {
                    let s = a.settings(&j.issuer);
                    serde_json::json!({
                        "issuer": j.issuer,
                        "audiences": j.audiences,
                        "name": s.name,
                        "whenUnmapped": s.when_unmapped.as_str(),
                        "allowSystemNames": s.allow_system_names,
                        "matchClaims": s.match_claims,
                    })
                }).collect::<Vec<_>>(),
            })),
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

/// The default of `kubernetes.maxStreamsPerConnection`: the kube-apiserver's default
/// `--http2-max-streams-per-connection` (100 since the CVE-2023-44487 fixes; 250 before).
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: usize = 100;

/// The default of `kubernetes.maxConnections`: 100 connections, so 10,000 concurrent mapped
/// requests (watches and log streams included) at the default stream limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// How to reach the kube-apiserver.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// A kubeconfig file (`kubernetes.kubeconfig`); in-cluster configuration when absent.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (`kubernetes.context`).
    pub context: Option<String>,
    /// Concurrent requests gatehouse sends over one HTTP/2 connection with its own credentials
    /// (`kubernetes.maxStreamsPerConnection`, default
    /// [`DEFAULT_MAX_STREAMS_PER_CONNECTION`], at least 1): never more than the server
    /// announces in `SETTINGS_MAX_CONCURRENT_STREAMS` ([`crate::upstream`]).
    pub max_streams_per_connection: usize,
    /// HTTP/2 connections gatehouse opens with its own credentials at most
    /// (`kubernetes.maxConnections`, default [`DEFAULT_MAX_CONNECTIONS`], at least 1); a
    /// request for which all are full is refused with 429 ([`crate::upstream`]).
    pub max_connections: usize,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
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
