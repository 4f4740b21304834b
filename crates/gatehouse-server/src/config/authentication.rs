//! The `authentication` section: the kube-apiserver's own `AuthenticationConfiguration`
//! (`authentication.configFile`, watched, or inline `authentication.config`), and gatehouse's
//! settings for its issuers (`authentication.issuers`, by issuer URL).
//!
//! ```yaml
//! authentication:
//!   configFile: /etc/kubernetes/authentication.yaml   # the same file the kube-apiserver reads
//!   reloadInterval: 10s
//!   issuers:
//!     - url: https://token.actions.githubusercontent.com
//!       whenUnmapped: impersonate      # fallThrough (default) | impersonate | deny
//!       allowSystemNames: false
//!       matchClaims: false             # ServiceAccount claim annotations match its raw claims
//!   impersonate:
//!     groups: [ci:acme]                # when set, the only groups impersonate mode sends
//! ```
//!
//! The file is read with [`gatehouse_authconfig`]: strictly, with the kube-apiserver's
//! validation rules, every problem reported with its path, every CEL expression compiled at
//! load. gatehouse's admin token issuer may not be one of its issuers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_authconfig::{AuthenticationConfiguration, Authenticator, Environment, Options};
use gatehouse_core::identity::WhenUnmapped;
use serde_json::Value;

use super::Reader;
use super::reader::RawValue;

/// The default of `authentication.reloadInterval`.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Where the `AuthenticationConfiguration` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationSource {
    /// `authentication.configFile`: read at start, then re-read every
    /// `authentication.reloadInterval`.
    File(PathBuf),
    /// `authentication.config`: inline, fixed.
    Inline,
}

/// gatehouse's own settings for one issuer of the file (`authentication.issuers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    /// The issuer's `url`, exactly as in the file.
    pub url: String,
    /// The name users see (defaults to the URL).
    pub name: Option<String>,
    /// What happens to a verified user who maps to no ServiceAccount.
    pub when_unmapped: WhenUnmapped,
    /// Whether `impersonate` mode may send `system:` user and group names.
    pub allow_system_names: bool,
    /// Whether ServiceAccount claim annotations (`claims`, `claim.<name>`) match this
    /// issuer's raw claims (`matchClaims`, default false; always for `oidc.issuerUrl`).
    pub match_claims: bool,
}

/// The file compiled: what the kube-apiserver would run.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The file as read.
    pub config: AuthenticationConfiguration,
    /// One compiled authenticator per `jwt` entry, in order.
    pub authenticators: Vec<Authenticator>,
    /// The CEL environment they were compiled in.
    pub env: Arc<Environment>,
    /// The SHA-256 of the text compiled, to tell an unchanged file on re-read.
    pub digest: [u8; 32],
}

/// The `authentication` section, validated.
#[derive(Debug, Clone)]
pub struct AuthenticationConfig {
    /// Where the file comes from.
    pub source: AuthenticationSource,
    /// gatehouse's settings, by issuer URL; issuers not named get the defaults.
    pub issuers: Vec<IssuerSettings>,
    /// How often `configFile` is re-read (default [`DEFAULT_RELOAD_INTERVAL`]).
    pub reload_interval: Duration,
    /// The file as loaded at start.
    pub initial: Compiled,
    /// Issuers no `jwt` entry may use (gatehouse's admin token issuer).
    pub options: Options,
    /// `authentication.impersonate.groups`: when set, the only groups `impersonate` mode may
    /// send (the same list the RBAC grant names).
    pub impersonate_groups: Vec<String>,
}

impl AuthenticationConfig {
    /// The settings for `url`: those configured, else the defaults.
    pub fn settings(&self, url: &str) -> IssuerSettings {
        settings_for(&self.issuers, url)
    }
}

/// The settings for `url` in `issuers`, else the defaults.
pub fn settings_for(issuers: &[IssuerSettings], url: &str) -> IssuerSettings {
    issuers
        .iter()
        .find(|s| s.url == url)
        .cloned()
        .unwrap_or_else(|| IssuerSettings {
            url: url.to_owned(),
            name: None,
            when_unmapped: WhenUnmapped::default(),
            allow_system_names: false,
            match_claims: false,
        })
}

/// Reads, validates and compiles an `AuthenticationConfiguration`'s text; every problem as
/// `path: message`.
pub fn compile_text(text: &str, options: &Options) -> Result<Compiled, Vec<String>> {
    let config = gatehouse_authconfig::parse(text).map_err(|e| vec![e.to_string()])?;
    let env = Environment::new().map_err(|e| vec![format!("the CEL environment: {e}")])?;
    let authenticators = gatehouse_authconfig::compile(&config, options, &env)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(Compiled {
        config,
        authenticators,
        env: Arc::new(env),
        digest: sha256(text.as_bytes()),
    })
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawIssuer {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    when_unmapped: Option<String>,
    #[serde(default)]
    allow_system_names: Option<bool>,
    #[serde(default)]
    match_claims: Option<bool>,
}

pub(super) fn read_authentication(
    r: &mut Reader<'_>,
    admin_issuer: Option<&str>,
) -> Option<AuthenticationConfig> {
    let file = r.path("authentication.configFile", None);
    let inline = r.raw("authentication.config", None);
    let reload_interval = r
        .duration("authentication.reloadInterval", None)
        .unwrap_or(DEFAULT_RELOAD_INTERVAL);
    if reload_interval < Duration::from_secs(1) {
        r.problem("authentication.reloadInterval", "must be at least 1s");
    }
    let issuers = read_issuers(r);
    let impersonate_groups = r
        .list("authentication.impersonate.groups", None)
        .unwrap_or_default();
    if impersonate_groups.iter().any(String::is_empty) {
        r.problem(
            "authentication.impersonate.groups",
            "an empty group name can never be impersonated; remove it",
        );
    }
    let options = Options {
        disallowed_issuers: admin_issuer.map(str::to_owned).into_iter().collect(),
    };
    let (source, key, text) = match (file, inline) {
        (None, None) => {
            if !issuers.is_empty() {
                r.problem(
                    "authentication.issuers",
                    "names issuers, but there is no authentication.configFile or authentication.config to configure them",
                );
            }
            return None;
        }
        (Some(_), Some(_)) => {
            r.problem("authentication", "set configFile or config, not both");
            return None;
        }
        (Some(path), None) => match std::fs::read_to_string(&path) {
            Ok(text) => (
                AuthenticationSource::File(path.clone()),
                format!("authentication.configFile ({})", path.display()),
                text,
            ),
            Err(e) => {
                r.problem(
                    "authentication.configFile",
                    &format!(
                        "cannot read {}: {e}; name the AuthenticationConfiguration file the kube-apiserver reads (its --authentication-config)",
                        path.display()
                    ),
                );
                return None;
            }
        },
        (None, Some((key, raw))) => {
            let text = match raw {
                RawValue::File(v @ Value::Object(_)) => v.to_string(),
                RawValue::File(Value::String(s)) => s,
                _ => {
                    r.problem(
                        &key,
                        "expected an AuthenticationConfiguration (a mapping with apiVersion, kind and jwt)",
                    );
                    return None;
                }
            };
            (AuthenticationSource::Inline, key, text)
        }
    };
    let initial = match compile_text(&text, &options) {
        Ok(c) => c,
        Err(problems) => {
            for p in problems {
                r.problem(&key, &p);
            }
            return None;
        }
    };
    for (i, s) in issuers.iter().enumerate() {
        if !initial.authenticators.iter().any(|a| a.issuer == s.url) {
            r.problem(
                &format!("authentication.issuers[{i}].url"),
                &format!(
                    "{:?} is not the issuer.url of any jwt entry of the AuthenticationConfiguration (issuers are compared exactly)",
                    s.url
                ),
            );
        }
    }
    Some(AuthenticationConfig {
        source,
        issuers,
        reload_interval,
        initial,
        options,
        impersonate_groups,
    })
}

fn read_issuers(r: &mut Reader<'_>) -> Vec<IssuerSettings> {
    let Some((key, raw)) = r.raw("authentication.issuers", None) else {
        return Vec::new();
    };
    let RawValue::File(Value::Array(items)) = raw else {
        r.problem(&key, "expected a list of issuers, each with a url");
        return Vec::new();
    };
    let mut out: Vec<IssuerSettings> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("authentication.issuers[{i}]");
        let raw: RawIssuer = match serde_json::from_value(item) {
            Ok(v) => v,
            Err(e) => {
                r.problem(
                    &at,
                    &format!(
                        "{e} (fields: url, name, whenUnmapped, allowSystemNames, matchClaims)"
                    ),
                );
                continue;
            }
        };
        let when_unmapped = match raw.when_unmapped.as_deref() {
            None | Some("fallThrough") => WhenUnmapped::FallThrough,
            Some("impersonate") => WhenUnmapped::Impersonate,
            Some("deny") => WhenUnmapped::Deny,
            Some(other) => {
                r.problem(
                    &format!("{at}.whenUnmapped"),
                    &format!("{other:?} is not fallThrough, impersonate or deny"),
                );
                WhenUnmapped::Deny
            }
        };
        if out.iter().any(|s| s.url == raw.url) {
            r.problem(
                &format!("{at}.url"),
                &format!("{:?} is named twice", raw.url),
            );
            continue;
        }
        out.push(IssuerSettings {
            url: raw.url,
            name: raw.name.filter(|n| !n.is_empty()),
            when_unmapped,
            allow_system_names: raw.allow_system_names.unwrap_or(false),
            match_claims: raw.match_claims.unwrap_or(false),
        });
    }
    out
}
