//! The kube-apiserver's validation of an `AuthenticationConfiguration`, rule for rule
//! (k8s.io/apiserver v0.34 `pkg/apis/apiserver/validation`: `ValidateAuthenticationConfiguration`
//! and `CompileAndValidateJWTAuthenticator`), with every problem reported at once under its
//! field path (`jwt[1].claimMappings.username.prefix`) and in the kube-apiserver's words, so a
//! file either both accept or both refuse, and the message reads the same.
//!
//! Every CEL expression is compiled here ([`crate::cel`]); what passes is an
//! [`Authenticator`] per issuer, ready to map claims.

use std::collections::BTreeSet;

use crate::authenticator::{
    Authenticator, ClaimRule, Extra, Mapping, PrefixedMapping, UidMapping, UserRule,
};
use crate::cel::{Environment, Expression, Variable};
use crate::model::{
    API_VERSIONS, AuthenticationConfiguration, ClaimMappings, ClaimValidationRule, Issuer,
    JwtAuthenticator, KIND, PrefixedClaimOrExpression, UserValidationRule,
};

/// The extra keys gatehouse sends itself (`gatehouse.dev/subject`, `/username`, `/issuer`):
/// reserved, so a token's claims can never set what the audit log says about the user. The
/// kube-apiserver does not reserve them; gatehouse refuses such a file.
pub const GATEHOUSE_EXTRA_PREFIX: &str = "gatehouse.dev/";

/// At most this many `jwt` authenticators (the kube-apiserver's limit).
pub const MAX_AUTHENTICATORS: usize = 64;

/// One problem with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field path, as the kube-apiserver prints it (`jwt[0].issuer.url`).
    pub path: String,
    /// What is wrong, in the kube-apiserver's words where it has them.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What validation depends on besides the file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Issuer URLs no authenticator may use (the kube-apiserver passes its ServiceAccount
    /// token issuers, `--service-account-issuer`).
    pub disallowed_issuers: Vec<String>,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    fn required(&mut self, path: &str, detail: &str) {
        if detail.is_empty() {
            self.add(path, "Required value");
        } else {
            self.add(path, format!("Required value: {detail}"));
        }
    }
    fn invalid(&mut self, path: &str, value: &str, detail: &str) {
        self.add(path, format!("Invalid value: {value:?}: {detail}"));
    }
    fn duplicate(&mut self, path: &str, value: &str) {
        self.add(path, format!("Duplicate value: {value:?}"));
    }
}

/// Validates `config` and compiles its authenticators; every problem, or none.
pub fn compile(
    config: &AuthenticationConfiguration,
    options: &Options,
    env: &Environment,
) -> Result<Vec<Authenticator>, Vec<Problem>> {
    let mut p = Problems::default();
    if !API_VERSIONS.contains(&config.api_version.as_str()) {
        p.invalid(
            "apiVersion",
            &config.api_version,
            &format!("must be one of {}", API_VERSIONS.join(", ")),
        );
    }
    if config.kind != KIND {
        p.invalid("kind", &config.kind, &format!("must be {KIND}"));
    }
    if config.jwt.len() > MAX_AUTHENTICATORS {
        p.add(
            "jwt",
            format!(
                "Too many: {}: must have at most {MAX_AUTHENTICATORS} items",
                config.jwt.len()
            ),
        );
        return Err(p.0);
    }
    let disallowed: BTreeSet<&str> = options
        .disallowed_issuers
        .iter()
        .map(String::as_str)
        .collect();
    let mut seen_issuers = BTreeSet::new();
    let mut seen_discovery = BTreeSet::new();
    let mut out = Vec::with_capacity(config.jwt.len());
    for (i, a) in config.jwt.iter().enumerate() {
        let path = format!("jwt[{i}]");
        let compiled = authenticator(a, &path, &disallowed, env, &mut p);
        if !seen_issuers.insert(a.issuer.url.as_str()) {
            p.duplicate(&format!("{path}.issuer.url"), &a.issuer.url);
        }
        if let Some(d) = a.issuer.discovery_url.as_deref().filter(|d| !d.is_empty())
            && !seen_discovery.insert(d)
        {
            p.duplicate(&format!("{path}.issuer.discoveryURL"), d);
        }
        if let Some(c) = compiled {
            out.push(c);
        }
    }
    if let Some(anonymous) = &config.anonymous
        && !anonymous.enabled
        && !anonymous.conditions.is_empty()
    {
        p.invalid(
            "anonymous.conditions",
            "[...]",
            "enabled should be set to true when conditions are defined",
        );
    }
    if p.0.is_empty() { Ok(out) } else { Err(p.0) }
}

fn authenticator(
    a: &JwtAuthenticator,
    path: &str,
    disallowed: &BTreeSet<&str>,
    env: &Environment,
    p: &mut Problems,
) -> Option<Authenticator> {
    let before = p.0.len();
    issuer(&a.issuer, &format!("{path}.issuer"), disallowed, p);
    let mut uses_email_verified = false;
    let claim_rules = claim_validation_rules(
        &a.claim_validation_rules,
        &format!("{path}.claimValidationRules"),
        env,
        p,
        &mut uses_email_verified,
    );
    let mapping = claim_mappings(
        &a.claim_mappings,
        &format!("{path}.claimMappings"),
        env,
        p,
        &mut uses_email_verified,
    );
    let user_rules = user_validation_rules(
        &a.user_validation_rules,
        &format!("{path}.userValidationRules"),
        env,
        p,
    );
    if p.0.len() != before {
        return None;
    }
    Some(Authenticator {
        issuer: a.issuer.url.clone(),
        audiences: a.issuer.audiences.clone(),
        mapping: mapping?,
        claim_rules,
        user_rules,
    })
}

fn issuer(issuer: &Issuer, path: &str, disallowed: &BTreeSet<&str>, p: &mut Problems) {
    let url_path = format!("{path}.url");
    if issuer.url.is_empty() {
        p.required(&url_path, "");
    } else {
        url(&issuer.url, &url_path, Some(disallowed), p);
    }
    if let Some(d) = issuer.discovery_url.as_deref().filter(|d| !d.is_empty()) {
        let d_path = format!("{path}.discoveryURL");
        if !issuer.url.is_empty() && issuer.url.trim_end_matches('/') == d.trim_end_matches('/') {
            p.invalid(&d_path, d, "discoveryURL must be different from URL");
        }
        url(d, &d_path, None, p);
    }
    audiences(issuer, path, p);
    if !issuer.certificate_authority.is_empty() {
        certificate_authority(&issuer.certificate_authority, path, p);
    }
    match issuer.egress_selector_type.as_str() {
        "" | "controlplane" | "cluster" => {}
        other => p.invalid(
            &format!("{path}.egressSelectorType"),
            other,
            "egress selector must be either controlplane or cluster",
        ),
    }
}

/// The kube-apiserver's `validateURL`: https, no user info, no query, no fragment, not a
/// disallowed issuer.
fn url(value: &str, path: &str, disallowed: Option<&BTreeSet<&str>>, p: &mut Problems) {
    if let Some(disallowed) = disallowed
        && disallowed.contains(value)
    {
        let list: Vec<&str> = disallowed.iter().copied().collect();
        p.invalid(
            path,
            value,
            &format!(
                "URL must not overlap with disallowed issuers: [{}]",
                list.join(" ")
            ),
        );
    }
    let parsed = match url::Url::parse(value) {
        Ok(u) => u,
        Err(e) => {
            p.invalid(path, value, &e.to_string());
            return;
        }
    };
    if parsed.scheme() != "https" {
        p.invalid(path, value, "URL scheme must be https");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        p.invalid(path, value, "URL must not contain a username or password");
    }
    if parsed.query().is_some_and(|q| !q.is_empty()) {
        p.invalid(path, value, "URL must not contain a query");
    }
    if parsed.fragment().is_some_and(|f| !f.is_empty()) {
        p.invalid(path, value, "URL must not contain a fragment");
    }
}

fn audiences(issuer: &Issuer, path: &str, p: &mut Problems) {
    let a_path = format!("{path}.audiences");
    let policy_path = format!("{path}.audienceMatchPolicy");
    if issuer.audiences.is_empty() {
        p.required(&a_path, &format!("at least one {a_path} is required"));
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, audience) in issuer.audiences.iter().enumerate() {
        let item = format!("{a_path}[{i}]");
        if audience.is_empty() {
            p.required(&item, "");
        }
        if !seen.insert(audience.as_str()) {
            p.duplicate(&item, audience);
        }
    }
    let policy = issuer.audience_match_policy.as_str();
    if issuer.audiences.len() > 1 && policy != "MatchAny" {
        p.invalid(
            &policy_path,
            policy,
            "audienceMatchPolicy must be MatchAny for multiple audiences",
        );
    }
    if issuer.audiences.len() == 1 && !policy.is_empty() && policy != "MatchAny" {
        p.invalid(
            &policy_path,
            policy,
            "audienceMatchPolicy must be empty or MatchAny for single audience",
        );
    }
}

/// At least one PEM `CERTIFICATE` block (the kube-apiserver's `cert.NewPoolFromBytes`); the
/// certificates themselves are parsed when the issuer's HTTP client is built.
fn certificate_authority(pem: &str, path: &str, p: &mut Problems) {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        p.add(
            format!("{path}.certificateAuthority"),
            "Invalid value: \"<omitted>\": data does not contain any valid RSA or ECDSA certificates",
        );
    }
}

fn compile_into(
    env: &Environment,
    source: &str,
    variable: Variable,
    want_bool: bool,
    path: &str,
    p: &mut Problems,
) -> Option<Expression> {
    match env.compile(source, variable, want_bool) {
        Ok(e) => Some(e),
        Err(message) => {
            p.invalid(path, source, &message);
            None
        }
    }
}

fn claim_validation_rules(
    rules: &[ClaimValidationRule],
    path: &str,
    env: &Environment,
    p: &mut Problems,
    uses_email_verified: &mut bool,
) -> Vec<ClaimRule> {
    let mut out = Vec::new();
    let mut seen_claims = BTreeSet::new();
    let mut seen_expressions = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("{path}[{i}]");
        match (rule.claim.is_empty(), rule.expression.is_empty()) {
            (false, false) => {
                p.invalid(&path, &rule.claim, "claim and expression can't both be set")
            }
            (true, true) => p.required(&path, "claim or expression is required"),
            (false, true) => {
                if !rule.message.is_empty() {
                    p.invalid(
                        &format!("{path}.message"),
                        &rule.message,
                        "may not be specified when claim is set",
                    );
                }
                if !seen_claims.insert(rule.claim.as_str()) {
                    p.duplicate(&format!("{path}.claim"), &rule.claim);
                }
                out.push(ClaimRule::Required {
                    claim: rule.claim.clone(),
                    value: rule.required_value.clone(),
                });
            }
            (true, false) => {
                if !rule.required_value.is_empty() {
                    p.invalid(
                        &format!("{path}.requiredValue"),
                        &rule.required_value,
                        "may not be specified when expression is set",
                    );
                }
                if !seen_expressions.insert(rule.expression.as_str()) {
                    p.duplicate(&format!("{path}.expression"), &rule.expression);
                    continue;
                }
                if let Some(e) = compile_into(
                    env,
                    &rule.expression,
                    Variable::Claims,
                    true,
                    &format!("{path}.expression"),
                    p,
                ) {
                    *uses_email_verified |= e.selects("email_verified");
                    out.push(ClaimRule::Expression {
                        expression: e,
                        message: rule.message.clone(),
                    });
                }
            }
        }
    }
    out
}

fn prefixed(
    m: &PrefixedClaimOrExpression,
    path: &str,
    required: bool,
    env: &Environment,
    p: &mut Problems,
) -> Option<PrefixedMapping> {
    match (m.claim.is_empty(), m.expression.is_empty()) {
        (false, false) => {
            p.invalid(path, "", "claim and expression can't both be set");
            None
        }
        (true, true) => {
            if required {
                p.required(path, "claim or expression is required");
                None
            } else {
                Some(PrefixedMapping::None)
            }
        }
        (true, false) => {
            if let Some(prefix) = &m.prefix {
                p.invalid(
                    &format!("{path}.prefix"),
                    prefix,
                    "may not be specified when expression is set",
                );
            }
            compile_into(
                env,
                &m.expression,
                Variable::Claims,
                false,
                &format!("{path}.expression"),
                p,
            )
            .map(PrefixedMapping::Expression)
        }
        (false, true) => match &m.prefix {
            None => {
                p.required(
                    &format!("{path}.prefix"),
                    "prefix is required when claim is set. It can be set to an empty string to disable prefixing",
                );
                None
            }
            Some(prefix) => Some(PrefixedMapping::Claim {
                claim: m.claim.clone(),
                prefix: prefix.clone(),
            }),
        },
    }
}

fn claim_mappings(
    m: &ClaimMappings,
    path: &str,
    env: &Environment,
    p: &mut Problems,
    uses_email_verified: &mut bool,
) -> Option<Mapping> {
    let username = prefixed(&m.username, &format!("{path}.username"), true, env, p);
    let uses_email =
        matches!(&username, Some(PrefixedMapping::Expression(e)) if e.selects("email"));
    if let Some(PrefixedMapping::Expression(e)) = &username {
        *uses_email_verified |= e.selects("email_verified");
    }
    let groups = prefixed(&m.groups, &format!("{path}.groups"), false, env, p);
    let uid = match (m.uid.claim.is_empty(), m.uid.expression.is_empty()) {
        (false, false) => {
            p.invalid(
                &format!("{path}.uid"),
                "",
                "claim and expression can't both be set",
            );
            None
        }
        (true, true) => Some(UidMapping::None),
        (false, true) => Some(UidMapping::Claim(m.uid.claim.clone())),
        (true, false) => compile_into(
            env,
            &m.uid.expression,
            Variable::Claims,
            false,
            &format!("{path}.uid.expression"),
            p,
        )
        .map(UidMapping::Expression),
    };
    let mut extra = Vec::new();
    let mut seen_keys = BTreeSet::new();
    for (i, mapping) in m.extra.iter().enumerate() {
        let path = format!("{path}.extra[{i}]");
        let key_path = format!("{path}.key");
        domain_prefixed_path(&mapping.key, &key_path, p);
        if mapping.key != mapping.key.to_lowercase() {
            p.invalid(&key_path, &mapping.key, "must be lowercase");
        }
        if mapping.key.starts_with(GATEHOUSE_EXTRA_PREFIX) {
            p.invalid(
                &key_path,
                &mapping.key,
                "gatehouse.dev/ is reserved for the extras gatehouse itself sends (subject, username, issuer of the original user, for the audit log): choose another domain",
            );
        }
        if is_kubernetes_domain(&mapping.key) {
            p.invalid(
                &key_path,
                &mapping.key,
                "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use",
            );
        }
        if !seen_keys.insert(mapping.key.as_str()) {
            p.duplicate(&key_path, &mapping.key);
            continue;
        }
        if mapping.value_expression.is_empty() {
            p.required(&format!("{path}.valueExpression"), "");
            continue;
        }
        if let Some(e) = compile_into(
            env,
            &mapping.value_expression,
            Variable::Claims,
            false,
            &format!("{path}.valueExpression"),
            p,
        ) {
            *uses_email_verified |= e.selects("email_verified");
            extra.push(Extra {
                key: mapping.key.clone(),
                expression: e,
            });
        }
    }
    if uses_email && !*uses_email_verified {
        p.invalid(
            &format!("{path}.username.expression"),
            &m.username.expression,
            "claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression",
        );
    }
    Some(Mapping {
        username: username?,
        groups: groups?,
        uid: uid?,
        extra,
    })
}

fn user_validation_rules(
    rules: &[UserValidationRule],
    path: &str,
    env: &Environment,
    p: &mut Problems,
) -> Vec<UserRule> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let e_path = format!("{path}[{i}].expression");
        if rule.expression.is_empty() {
            p.required(&e_path, "");
            continue;
        }
        if !seen.insert(rule.expression.as_str()) {
            p.duplicate(&e_path, &rule.expression);
            continue;
        }
        if let Some(e) = compile_into(env, &rule.expression, Variable::User, true, &e_path, p) {
            out.push(UserRule {
                expression: e,
                message: rule.message.clone(),
            });
        }
    }
    out
}

/// apimachinery's `IsDomainPrefixedPath`: `<DNS-1123 subdomain>/<HTTP path characters>`.
fn domain_prefixed_path(key: &str, path: &str, p: &mut Problems) {
    if key.is_empty() {
        p.required(path, "");
        return;
    }
    let Some((host, rest)) = key
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        p.invalid(
            path,
            key,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        );
        return;
    };
    if host.len() > 253 {
        p.invalid(path, host, "must be no more than 253 characters");
    }
    if !is_dns1123_subdomain(host) {
        p.invalid(
            path,
            host,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        );
    }
    let http_path = |c: char| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c);
    if !rest.chars().all(http_path) {
        p.invalid(
            path,
            rest,
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        );
    }
}

fn is_dns1123_subdomain(host: &str) -> bool {
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
    })
}

/// `k8s.io`, `kubernetes.io` and their subdomains.
fn is_kubernetes_domain(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    domain == "kubernetes.io"
        || domain.ends_with(".kubernetes.io")
        || domain == "k8s.io"
        || domain.ends_with(".k8s.io")
}
