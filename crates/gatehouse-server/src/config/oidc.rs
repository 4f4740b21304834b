//! The `oidc` section: the issuer and its clients, token checks, the JWKS refresh bounds, and
//! the parameters of the authorization request (static `additionalParameters`, vetted
//! `userParameters`, the reserved names neither may set).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use url::Url;

use super::{RawValue, Reader};

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

/// The browser flow vets users' parameters with the core's rule
/// ([`gatehouse_core::authorize::vet_user_parameters`]); the pattern was compiled (anchored) when
/// the configuration was loaded, so it can always be used.
impl gatehouse_core::authorize::ParameterRule for UserParameter {
    fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    fn accepts(&self, value: &str) -> Result<bool, String> {
        Ok(UserParameter::accepts(self, value))
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

pub(super) fn read_oidc(r: &mut Reader<'_>) -> Option<OidcConfig> {
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

/// `pattern` anchored to the whole value. It must compile on its own first: a pattern that
/// compiles only inside the wrapper (`x)|(.*` makes `^(?:x)|(.*)$`, which accepts anything)
/// would escape the anchors. One that compiles alone has balanced groups, so `^(?:p)$` keeps
/// it whole; the wrapped form is compiled again and refused if it then fails (a trailing
/// `(?x)` comment would swallow the closing `)$`).
fn anchored_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(pattern)?;
    regex::Regex::new(&format!("^(?:{pattern})$"))
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
                        ("pattern", Value::String(p)) => match anchored_pattern(&p) {
                            Ok(re) => pattern = Some((p, re)),
                            Err(e) => r.problem(
                                &format!("{k}.pattern"),
                                &format!("not a valid regular expression: {e}"),
                            ),
                        },
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
