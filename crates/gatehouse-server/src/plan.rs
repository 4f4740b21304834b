//! The proxy's decision for one request, as a value: [`decide`] takes who the request is
//! (the authentication layer's outcome), what the ServiceAccount index and the access choice
//! said about an OIDC user, and the settings, and returns a [`Plan`]: forward as an identity
//! (gatehouse's credential and the impersonation headers), fall through (the examined token
//! goes to the kube-apiserver), or a [`Denial`] with its reason. No I/O: the proxy
//! ([`crate::proxy`]) asks the index and the access resolver first, and sends what the plan
//! says.
//!
//! # Security
//! - Mapped users and the admin are sent with gatehouse's own credentials and `Impersonate-*`
//!   headers that gatehouse sets here, and only here; `Impersonate-Extra-gatehouse.dev/*`
//!   carries the original user's subject, username and issuer for the audit log.
//! - An OIDC user who maps to no ServiceAccount falls through only when fall-through is on
//!   and the user's issuer says `whenUnmapped: fallThrough` (the default); otherwise the
//!   request is denied (403) and never forwarded, or, with `whenUnmapped: impersonate`, sent
//!   as the user the `AuthenticationConfiguration`'s mappings made ([`impersonate_user`]).
//! - In `impersonate` mode gatehouse vouches for the user, so what it sends must be read by
//!   the kube-apiserver as exactly that user, or not be sent:
//!   - an empty username is refused (no `Impersonate-User` would make the kube-apiserver
//!     judge the request as gatehouse's own identity, or refuse its groups);
//!   - `system:` user and group names are refused unless the issuer has
//!     `allowSystemNames: true` (a claim must not make anyone `system:masters` or a node);
//!     the admin account's user and groups (`admin.impersonate`) always are;
//!   - a value the kube-apiserver's HTTP parser would read differently is refused: empty,
//!     with leading or trailing spaces or tabs (HTTP strips them), or with control characters
//!     (Go's parser refuses them). UTF-8 is sent as it is: Go's HTTP/1.1 and HTTP/2 parsers
//!     take such bytes as they are;
//!   - `extra` keys are percent-encoded in `Impersonate-Extra-*` header names (every byte but
//!     `a-z`, `0-9`, `-`, `.`, `_`, `~`), which the kube-apiserver lower-cases and decodes
//!     (the file's keys are lowercase by its validation), and each value is its own header;
//!   - the `gatehouse.dev/*` extras are gatehouse's (the file may not set such keys).
//! - A stale ServiceAccount index is not a verdict: a mapped user (or, with fall-through off,
//!   any user) gets 503 ([`PlanError::Stale`]), never a guess from old data.

use gatehouse_core::identity::{KubeUser, OidcUser, Principal, WhenUnmapped};
use gatehouse_core::mapping::ServiceAccountRef;
use http::header::{HeaderName, HeaderValue};

use crate::authn::Authenticated;
use crate::config::AdminConfig;
use crate::upstream::Identity;

/// What the index and the access choice said about an OIDC user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// The index cannot be used now: why (from the index).
    Stale(String),
    /// The ServiceAccount chosen for this request, or `None` when none is mapped.
    Chosen(Option<ServiceAccountRef>),
}

/// The settings a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The admin account, when enabled.
    pub admin: Option<&'a AdminConfig>,
    /// `fallThrough.enabled`.
    pub fall_through: bool,
    /// `authentication.impersonate.groups`: when not empty, the only groups `impersonate`
    /// mode sends.
    pub impersonate_groups: &'a [String],
}

/// How a request is sent, or why it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Over the privileged pool with gatehouse's credential and these impersonation headers.
    Impersonate {
        /// The metrics label (`admin` or `oidc`).
        label: &'static str,
        /// `Impersonate-User`, `Impersonate-Group`s, `Impersonate-Extra-*`.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Over the anonymous pool, with exactly the token gatehouse examined.
    FallThrough,
    /// Not sent.
    Deny(Denial),
}

impl Plan {
    /// The metrics label: `admin`, `oidc` (as a ServiceAccount), `impersonated` (as the user
    /// the claim mappings made), `fallthrough`, or `refused`.
    pub fn label(&self) -> &'static str {
        match self {
            Plan::Impersonate { label, .. } => label,
            Plan::FallThrough => "fallthrough",
            Plan::Deny(_) => "refused",
        }
    }

    /// The upstream connection pool, when the request is sent.
    pub fn identity(&self) -> Option<Identity> {
        match self {
            Plan::Impersonate { .. } => Some(Identity::Privileged),
            Plan::FallThrough => Some(Identity::Anonymous),
            Plan::Deny(_) => None,
        }
    }
}

/// Why an authenticated request is not sent (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A signed-in user maps to no ServiceAccount, with fall-through off.
    Unmapped {
        /// The user's name.
        username: String,
        /// Why the email claim was not used, when it was withheld.
        withheld: Option<String>,
    },
    /// A signed-in user maps to no ServiceAccount, and the issuer's `whenUnmapped` is `deny`.
    UnmappedDenied {
        /// The user's name.
        username: String,
        /// The issuer.
        issuer: String,
    },
    /// `impersonate` mode would send a `system:` name, and the issuer does not allow them.
    SystemName {
        /// `username` or `group`.
        what: &'static str,
        /// The name.
        name: String,
        /// The issuer.
        issuer: String,
    },
    /// `impersonate` mode would send a group outside `authentication.impersonate.groups`.
    GroupNotAllowed {
        /// The group.
        group: String,
        /// The issuer.
        issuer: String,
    },
    /// `impersonate` mode would send the user or a group gatehouse's admin account acts as.
    AdminName {
        /// `username` or `group`.
        what: &'static str,
        /// The name.
        name: String,
        /// The issuer.
        issuer: String,
    },
    /// `impersonate` mode would send a value the kube-apiserver would read differently (or
    /// an empty username).
    Unsendable {
        /// Which value (`username`, `uid`, `group`, `extra <key>`).
        what: String,
        /// Why.
        why: &'static str,
    },
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Unmapped { username, withheld } => {
                let why = withheld
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                write!(
                    f,
                    "{username} is signed in, but maps to no ServiceAccount{why} and fall-through to Kubernetes authentication is disabled; ask your platform team to annotate a ServiceAccount with one of your claims"
                )
            }
            Denial::UnmappedDenied { username, issuer } => write!(
                f,
                "{username} is signed in with {issuer}, but maps to no ServiceAccount, and gatehouse is set to refuse such users of this issuer (authentication.issuers[].whenUnmapped: deny); ask your platform team to annotate a ServiceAccount with one of your claims"
            ),
            Denial::SystemName { what, name, issuer } => write!(
                f,
                "the {what} {name:?} that {issuer}'s claim mappings make is a system: name, which gatehouse does not impersonate for this issuer (authentication.issuers[].allowSystemNames is false); ask your platform team to change the claim mappings or the prefix"
            ),
            Denial::GroupNotAllowed { group, issuer } => write!(
                f,
                "the group {group:?} that {issuer}'s claim mappings make is not one gatehouse may impersonate (authentication.impersonate.groups); ask your platform team to add it there and to gatehouse's RBAC, or to change the claim mappings"
            ),
            Denial::AdminName { what, name, issuer } => write!(
                f,
                "the {what} {name:?} that {issuer}'s claim mappings make is the one gatehouse's admin account acts as (admin.impersonate), which gatehouse never impersonates for an issuer's users; ask your platform team to change the claim mappings or the prefix"
            ),
            Denial::Unsendable { what, why } => write!(
                f,
                "the {what} that the claim mappings make {why}, so gatehouse cannot impersonate it exactly; ask your platform team to change the claim mappings"
            ),
        }
    }
}

impl std::error::Error for Denial {}

/// Why no plan could be made: not a verdict about the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The ServiceAccount index is stale (503): the index's reason.
    #[error("{0}")]
    Stale(String),
    /// An identity value that cannot be an HTTP header value (400).
    #[error("the identity value for {0} cannot be sent in an HTTP header")]
    HeaderValue(&'static str),
    /// An admin token was accepted while the admin account is off: a bug (500).
    #[error("admin token accepted while the admin account is off")]
    AdminOff,
    /// An OIDC user was planned without asking the index: a bug (500).
    #[error("an OIDC user reached the proxy's decision without a mapping")]
    NoMapping,
}

/// The plan for a request authenticated as `outcome`; `mapping` is what the index and the
/// access choice said (asked for OIDC users only).
pub fn decide(
    outcome: &Authenticated,
    mapping: Option<Mapping>,
    settings: Settings<'_>,
) -> Result<Plan, PlanError> {
    let p = match outcome {
        Authenticated::FallThrough => return Ok(Plan::FallThrough),
        Authenticated::Principal(p) => p,
    };
    match &**p {
        Principal::Admin(claims) => {
            let admin = settings.admin.ok_or(PlanError::AdminOff)?;
            let mut h = vec![header_pair("impersonate-user", &admin.impersonate_user)?];
            for g in &admin.impersonate_groups {
                h.push(header_pair("impersonate-group", g)?);
            }
            h.extend(extras(&claims.sub, &claims.sub, &claims.iss));
            Ok(Plan::Impersonate {
                label: "admin",
                headers: h,
            })
        }
        Principal::Oidc(user) => match mapping.ok_or(PlanError::NoMapping)? {
            Mapping::Stale(reason) => Err(PlanError::Stale(reason)),
            Mapping::Chosen(Some(sa)) => {
                let mut h = vec![header_pair("impersonate-user", &sa.username())?];
                h.extend(extras(&user.subject, &user.username, &user.issuer));
                Ok(Plan::Impersonate {
                    label: "oidc",
                    headers: h,
                })
            }
            Mapping::Chosen(None) => Ok(match unmapped(user, settings.fall_through) {
                Unmapped::FallThrough => Plan::FallThrough,
                Unmapped::Impersonated(kube) => impersonate_user(user, kube, settings),
                Unmapped::Denied => Plan::Deny(Denial::UnmappedDenied {
                    username: user.username.clone(),
                    issuer: user.issuer.clone(),
                }),
                Unmapped::FallThroughOff => Plan::Deny(Denial::Unmapped {
                    username: user.username.clone(),
                    withheld: user.withheld_note(),
                }),
            }),
        },
    }
}

/// What happens to `user` when no ServiceAccount is mapped: the one rule [`decide`],
/// `/v1/whoami` and the UI follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmapped<'a> {
    /// The user's own token goes to the kube-apiserver.
    FallThrough,
    /// gatehouse impersonates the user the claim mappings made (`whenUnmapped: impersonate`);
    /// [`impersonate_user`] may still refuse.
    Impersonated(&'a KubeUser),
    /// Refused: the issuer's `whenUnmapped: deny`.
    Denied,
    /// Refused: fall-through is off.
    FallThroughOff,
}

/// [`Unmapped`] for `user` with `fallThrough.enabled` = `fall_through`.
pub fn unmapped(user: &OidcUser, fall_through: bool) -> Unmapped<'_> {
    match &user.kube {
        Some(k) if k.when_unmapped == WhenUnmapped::Impersonate => Unmapped::Impersonated(k),
        Some(k) if k.when_unmapped == WhenUnmapped::Deny => Unmapped::Denied,
        _ if fall_through => Unmapped::FallThrough,
        _ => Unmapped::FallThroughOff,
    }
}

/// Whether `user`, mapped to no ServiceAccount, falls through (so a stale index's "maps to
/// nothing" is no verdict to refuse): fall-through on, and the issuer's `whenUnmapped` is
/// `fallThrough`.
pub fn unmapped_falls_through(user: &OidcUser, fall_through: bool) -> bool {
    unmapped(user, fall_through) == Unmapped::FallThrough
}

/// The plan for `impersonate` mode: the user the claim mappings made, exactly, or a denial
/// (see the module's Security section).
pub fn impersonate_user(user: &OidcUser, kube: &KubeUser, settings: Settings<'_>) -> Plan {
    match impersonation_headers(user, kube, settings) {
        Ok(headers) => Plan::Impersonate {
            label: "impersonated",
            headers,
        },
        Err(denial) => Plan::Deny(denial),
    }
}

fn impersonation_headers(
    user: &OidcUser,
    kube: &KubeUser,
    settings: Settings<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Denial> {
    let admin = settings.admin;
    let system = |what: &'static str, name: &str| -> Result<(), Denial> {
        let admins = admin.is_some_and(|a| {
            if what == "username" {
                a.impersonate_user == name
            } else {
                a.impersonate_groups.iter().any(|g| g == name)
            }
        });
        if admins {
            return Err(Denial::AdminName {
                what,
                name: name.to_owned(),
                issuer: user.issuer.clone(),
            });
        }
        if !kube.allow_system_names && name.starts_with("system:") {
            return Err(Denial::SystemName {
                what,
                name: name.to_owned(),
                issuer: user.issuer.clone(),
            });
        }
        Ok(())
    };
    system("username", &user.username)?;
    let mut h = vec![(
        HeaderName::from_static("impersonate-user"),
        exact_value("username", &user.username)?,
    )];
    if !kube.uid.is_empty() {
        h.push((
            HeaderName::from_static("impersonate-uid"),
            exact_value("uid", &kube.uid)?,
        ));
    }
    for g in &user.groups {
        system("group", g)?;
        if !settings.impersonate_groups.is_empty() && !settings.impersonate_groups.contains(g) {
            return Err(Denial::GroupNotAllowed {
                group: g.clone(),
                issuer: user.issuer.clone(),
            });
        }
        h.push((
            HeaderName::from_static("impersonate-group"),
            exact_value("group", g)?,
        ));
    }
    for (key, values) in &kube.extra {
        let name = extra_header_name(key).ok_or_else(|| Denial::Unsendable {
            what: format!("extra key {key:?}"),
            why: "is empty",
        })?;
        for v in values {
            h.push((name.clone(), exact_value(&format!("extra {key}"), v)?));
        }
    }
    h.extend(extras(&user.subject, &user.username, &user.issuer));
    Ok(h)
}

/// `value` as a header value the kube-apiserver reads back byte for byte, or why not.
fn exact_value(what: &str, value: &str) -> Result<HeaderValue, Denial> {
    let unsendable = |why| Denial::Unsendable {
        what: what.to_owned(),
        why,
    };
    if value.is_empty() {
        return Err(unsendable("is empty"));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(unsendable(
            "starts or ends with a space or tab, which HTTP strips",
        ));
    }
    if value.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(unsendable("holds a control character"));
    }
    HeaderValue::from_bytes(value.as_bytes()).map_err(|_| unsendable("is not valid header text"))
}

/// `Impersonate-Extra-<key>` with `key` percent-encoded (every byte but `a-z0-9-._~`, so an
/// upper-case letter survives the kube-apiserver's lower-casing of the name); `None`
/// for an empty key.
fn extra_header_name(key: &str) -> Option<HeaderName> {
    if key.is_empty() {
        return None;
    }
    let mut name = String::from("impersonate-extra-");
    for b in key.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02x}"));
        }
    }
    HeaderName::from_bytes(name.as_bytes()).ok()
}

fn header_pair(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), PlanError> {
    let value = HeaderValue::from_str(value).map_err(|_| PlanError::HeaderValue(name))?;
    Ok((HeaderName::from_static(name), value))
}

/// The names of the `Impersonate-Extra-*` headers naming the original user, by key: the key
/// under [`crate::upstream::EXTRA_PREFIX`], percent-encoded as the kube-apiserver expects (`/` becomes `%2F`).
/// Constants, so a request builds no header name (`extra_names_follow_the_prefix` keeps them
/// in step with the prefix).
const EXTRA_NAMES: [(&str, HeaderName); 3] = [
    (
        "subject",
        HeaderName::from_static("impersonate-extra-gatehouse.dev%2fsubject"),
    ),
    (
        "username",
        HeaderName::from_static("impersonate-extra-gatehouse.dev%2fusername"),
    ),
    (
        "issuer",
        HeaderName::from_static("impersonate-extra-gatehouse.dev%2fissuer"),
    ),
];

/// `Impersonate-Extra-*` headers naming the original user ([`EXTRA_NAMES`]), UTF-8 as it is;
/// values the kube-apiserver would read differently ([`exact_value`]) are left out rather than
/// mangled.
fn extras(subject: &str, username: &str, issuer: &str) -> Vec<(HeaderName, HeaderValue)> {
    EXTRA_NAMES
        .into_iter()
        .zip([subject, username, issuer])
        .filter_map(|((key, name), value)| match exact_value(key, value) {
            Ok(v) => Some((name, v)),
            Err(_) => {
                tracing::warn!(
                    key,
                    "identity value is not valid header text; not sent as an extra"
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gatehouse_core::admin::AdminClaims;
    use gatehouse_core::identity::{EmailVerified, OidcUser};

    use super::*;
    use crate::upstream::EXTRA_PREFIX;

    fn admin_config() -> AdminConfig {
        let yaml = "admin:\n  enabled: true\n  passwordHash: '$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a'\n  tokenSigningKey: '0123456789abcdef0123456789abcdef'\n";
        crate::config::parse(yaml, &std::collections::HashMap::new())
            .unwrap()
            .admin
            .unwrap()
    }

    fn admin() -> Authenticated {
        Authenticated::Principal(Arc::new(Principal::Admin(AdminClaims {
            sub: "admin".to_owned(),
            iss: "gatehouse-admin".to_owned(),
            aud: "gatehouse".to_owned(),
            iat: 0,
            exp: 60,
        })))
    }

    fn user(withheld: Option<EmailVerified>) -> Authenticated {
        Authenticated::Principal(Arc::new(Principal::Oidc(OidcUser {
            issuer: "https://idp".to_owned(),
            subject: "alice-sub".to_owned(),
            username: "alice@example.com".to_owned(),
            groups: vec!["devs".to_owned()],
            audiences: vec!["gatehouse".to_owned()],
            authorized_party: None,
            expires_at: 60,
            claims: serde_json::Map::new(),
            email_withheld: withheld,
            kube: None,
        })))
    }

    fn sa() -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: "team-a".to_owned(),
            name: "dev".to_owned(),
        }
    }

    fn names(plan: &Plan) -> Vec<(String, String)> {
        match plan {
            Plan::Impersonate { headers, .. } => headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect(),
            other => panic!("not impersonated: {other:?}"),
        }
    }

    const ON: Settings<'static> = Settings {
        admin: None,
        fall_through: true,
        impersonate_groups: &[],
    };
    const OFF: Settings<'static> = Settings {
        admin: None,
        fall_through: false,
        impersonate_groups: &[],
    };

    #[test]
    fn fall_through_is_forwarded_as_is_whatever_the_settings() {
        for s in [ON, OFF] {
            let plan = decide(&Authenticated::FallThrough, None, s).unwrap();
            assert_eq!(plan, Plan::FallThrough);
            assert_eq!(plan.identity(), Some(Identity::Anonymous));
            assert_eq!(plan.label(), "fallthrough");
        }
    }

    #[test]
    fn the_admin_is_impersonated_as_the_configured_user_and_groups_with_extras() {
        let a = admin_config();
        let settings = Settings {
            admin: Some(&a),
            fall_through: false,
            impersonate_groups: &[],
        };
        let plan = decide(&admin(), None, settings).unwrap();
        assert_eq!(plan.label(), "admin");
        assert_eq!(plan.identity(), Some(Identity::Privileged));
        assert_eq!(
            names(&plan),
            [
                ("impersonate-user", "gatehouse:admin"),
                ("impersonate-group", "gatehouse:admins"),
                ("impersonate-extra-gatehouse.dev%2fsubject", "admin"),
                ("impersonate-extra-gatehouse.dev%2fusername", "admin"),
                (
                    "impersonate-extra-gatehouse.dev%2fissuer",
                    "gatehouse-admin"
                ),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        // An admin token with the admin account off is a bug, not a user to impersonate.
        assert_eq!(decide(&admin(), None, ON), Err(PlanError::AdminOff));
    }

    #[test]
    fn a_mapped_user_is_impersonated_as_the_chosen_serviceaccount() {
        let plan = decide(&user(None), Some(Mapping::Chosen(Some(sa()))), OFF).unwrap();
        assert_eq!(plan.label(), "oidc");
        let h = names(&plan);
        assert_eq!(
            h[0],
            (
                "impersonate-user".to_owned(),
                "system:serviceaccount:team-a:dev".to_owned()
            )
        );
        assert!(
            h.iter().all(|(n, _)| n != "impersonate-group"),
            "no groups of the user's own: {h:?}"
        );
        assert!(h.contains(&(
            "impersonate-extra-gatehouse.dev%2fusername".to_owned(),
            "alice@example.com".to_owned()
        )));
    }

    #[test]
    fn an_unmapped_user_falls_through_only_when_enabled_and_is_denied_with_the_reason_otherwise() {
        assert_eq!(
            decide(&user(None), Some(Mapping::Chosen(None)), ON),
            Ok(Plan::FallThrough)
        );
        let plan = decide(
            &user(Some(EmailVerified::False)),
            Some(Mapping::Chosen(None)),
            OFF,
        )
        .unwrap();
        assert_eq!(plan.identity(), None);
        assert_eq!(plan.label(), "refused");
        let Plan::Deny(denial) = plan else {
            panic!("not denied: {plan:?}");
        };
        let m = denial.to_string();
        assert!(
            m.starts_with("alice@example.com is signed in, but maps to no ServiceAccount (its email claim is not used"),
            "{m}"
        );
        assert!(
            m.contains("fall-through to Kubernetes authentication is disabled"),
            "{m}"
        );
    }

    #[test]
    fn a_stale_index_is_an_error_never_a_verdict_and_a_missing_mapping_is_a_bug() {
        for s in [ON, OFF] {
            assert_eq!(
                decide(&user(None), Some(Mapping::Stale("stale".to_owned())), s),
                Err(PlanError::Stale("stale".to_owned()))
            );
            assert_eq!(decide(&user(None), None, s), Err(PlanError::NoMapping));
        }
    }

    fn kube_user(mode: WhenUnmapped, allow_system_names: bool) -> OidcUser {
        let Authenticated::Principal(p) = user(None) else {
            unreachable!()
        };
        let Principal::Oidc(mut u) = (*p).clone() else {
            unreachable!()
        };
        u.username = "ci:acme/app".to_owned();
        u.groups = vec!["ci:acme".to_owned(), "ci:ref:main".to_owned()];
        u.kube = Some(KubeUser {
            uid: "repo-42".to_owned(),
            extra: [
                (
                    "example.com/ref".to_owned(),
                    vec!["refs/heads/main".to_owned()],
                ),
                (
                    "example.com/Scopes x".to_owned(),
                    vec!["read".to_owned(), "write".to_owned()],
                ),
            ]
            .into_iter()
            .collect(),
            when_unmapped: mode,
            allow_system_names,
            match_claims: false,
            issuer_name: None,
        });
        u
    }

    fn unmapped(u: OidcUser, s: Settings<'_>) -> Plan {
        decide(
            &Authenticated::Principal(Arc::new(Principal::Oidc(u))),
            Some(Mapping::Chosen(None)),
            s,
        )
        .unwrap()
    }

    #[test]
    fn impersonate_mode_sends_the_mapped_user_exactly_with_encoded_extra_keys() {
        for s in [ON, OFF] {
            let plan = unmapped(kube_user(WhenUnmapped::Impersonate, false), s);
            assert_eq!(plan.label(), "impersonated");
            assert_eq!(plan.identity(), Some(Identity::Privileged));
            assert_eq!(
                names(&plan),
                [
                    ("impersonate-user", "ci:acme/app"),
                    ("impersonate-uid", "repo-42"),
                    ("impersonate-group", "ci:acme"),
                    ("impersonate-group", "ci:ref:main"),
                    ("impersonate-extra-example.com%2f%53copes%20x", "read"),
                    ("impersonate-extra-example.com%2f%53copes%20x", "write"),
                    ("impersonate-extra-example.com%2fref", "refs/heads/main"),
                    ("impersonate-extra-gatehouse.dev%2fsubject", "alice-sub"),
                    ("impersonate-extra-gatehouse.dev%2fusername", "ci:acme/app"),
                    ("impersonate-extra-gatehouse.dev%2fissuer", "https://idp"),
                ]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
            );
        }
        // No uid: no Impersonate-Uid header at all.
        let mut u = kube_user(WhenUnmapped::Impersonate, false);
        u.kube.as_mut().unwrap().uid.clear();
        let h = names(&unmapped(u, OFF));
        assert!(h.iter().all(|(n, _)| n != "impersonate-uid"), "{h:?}");
    }

    #[test]
    fn impersonate_mode_refuses_system_names_unless_allowed() {
        for (field, value) in [("username", "system:admin"), ("group", "system:masters")] {
            for allowed in [false, true] {
                let mut u = kube_user(WhenUnmapped::Impersonate, allowed);
                if field == "username" {
                    u.username = value.to_owned();
                } else {
                    u.groups.push(value.to_owned());
                }
                let plan = unmapped(u, ON);
                if allowed {
                    assert!(names(&plan).iter().any(|(_, v)| v == value), "{plan:?}");
                } else {
                    let Plan::Deny(d @ Denial::SystemName { .. }) = &plan else {
                        panic!("{field} {value} was not refused: {plan:?}");
                    };
                    let m = d.to_string();
                    assert!(m.contains(value) && m.contains("allowSystemNames"), "{m}");
                }
            }
        }
    }

    #[test]
    fn impersonate_mode_sends_only_the_allowed_groups_when_a_list_is_set() {
        let allowed = ["ci:acme".to_owned(), "ci:ref:main".to_owned()];
        let settings = Settings {
            admin: None,
            fall_through: true,
            impersonate_groups: &allowed,
        };
        assert_eq!(
            unmapped(kube_user(WhenUnmapped::Impersonate, false), settings).label(),
            "impersonated"
        );
        let mut u = kube_user(WhenUnmapped::Impersonate, false);
        u.groups.push("kubeadm:cluster-admins".to_owned());
        match unmapped(u, settings) {
            Plan::Deny(d @ Denial::GroupNotAllowed { .. }) => {
                assert!(d.to_string().contains("kubeadm:cluster-admins"), "{d}");
            }
            other => panic!("a group outside the list was sent: {other:?}"),
        }
    }

    #[test]
    fn impersonate_mode_never_sends_the_admin_s_user_or_groups() {
        let a = admin_config();
        let settings = Settings {
            admin: Some(&a),
            fall_through: true,
            impersonate_groups: &[],
        };
        for (field, value) in [
            ("username", "gatehouse:admin"),
            ("group", "gatehouse:admins"),
        ] {
            let mut u = kube_user(WhenUnmapped::Impersonate, true);
            if field == "username" {
                u.username = value.to_owned();
            } else {
                u.groups.push(value.to_owned());
            }
            match unmapped(u, settings) {
                Plan::Deny(d @ Denial::AdminName { .. }) => {
                    assert!(d.to_string().contains("admin.impersonate"), "{d}");
                }
                other => panic!("{field} {value}: {other:?}"),
            }
        }
        // Other names still go through with the admin account on.
        assert_eq!(
            unmapped(kube_user(WhenUnmapped::Impersonate, false), settings).label(),
            "impersonated"
        );
    }

    #[test]
    fn impersonate_mode_refuses_values_the_kube_apiserver_would_read_differently() {
        type Change = fn(&mut OidcUser);
        let cases: [(&str, Change); 6] = [
            ("username", |u| u.username.clear()),
            ("username", |u| u.username = " alice".to_owned()),
            ("username", |u| u.username = "alice\t".to_owned()),
            ("group", |u| {
                u.groups.push("a\r\nimpersonate-user: x".to_owned())
            }),
            ("uid", |u| {
                u.kube.as_mut().unwrap().uid = "x\u{7f}".to_owned()
            }),
            ("extra example.com/ref", |u| {
                u.kube
                    .as_mut()
                    .unwrap()
                    .extra
                    .insert("example.com/ref".to_owned(), vec![String::new()]);
            }),
        ];
        for (what, change) in cases {
            let mut u = kube_user(WhenUnmapped::Impersonate, false);
            change(&mut u);
            match unmapped(u, ON) {
                Plan::Deny(d @ Denial::Unsendable { .. }) => {
                    assert!(d.to_string().starts_with(&format!("the {what} ")), "{d}");
                }
                other => panic!("{what}: not refused: {other:?}"),
            }
        }
        // UTF-8 is sent as it is.
        let mut u = kube_user(WhenUnmapped::Impersonate, false);
        u.username = "jürgen".to_owned();
        let Plan::Impersonate { headers, .. } = unmapped(u, ON) else {
            panic!("UTF-8 username refused");
        };
        assert_eq!(headers[0].1.as_bytes(), "jürgen".as_bytes());
    }

    #[test]
    fn deny_and_fall_through_modes_for_unmapped_users_of_the_file() {
        let plan = unmapped(kube_user(WhenUnmapped::Deny, false), ON);
        let Plan::Deny(d @ Denial::UnmappedDenied { .. }) = &plan else {
            panic!("deny mode fell through: {plan:?}");
        };
        assert!(d.to_string().contains("whenUnmapped: deny"), "{d}");
        assert_eq!(
            unmapped(kube_user(WhenUnmapped::FallThrough, false), ON),
            Plan::FallThrough
        );
        assert!(matches!(
            unmapped(kube_user(WhenUnmapped::FallThrough, false), OFF),
            Plan::Deny(Denial::Unmapped { .. })
        ));
        // A mapped user of an impersonate-mode issuer is still the ServiceAccount.
        let plan = decide(
            &Authenticated::Principal(Arc::new(Principal::Oidc(kube_user(
                WhenUnmapped::Impersonate,
                false,
            )))),
            Some(Mapping::Chosen(Some(sa()))),
            OFF,
        )
        .unwrap();
        assert_eq!(plan.label(), "oidc");
        assert_eq!(names(&plan)[0].1, "system:serviceaccount:team-a:dev");
        // Only fall-through mode with fall-through on lets a stale index's "unmapped" pass.
        assert!(unmapped_falls_through(
            &kube_user(WhenUnmapped::FallThrough, false),
            true
        ));
        assert!(!unmapped_falls_through(
            &kube_user(WhenUnmapped::FallThrough, false),
            false
        ));
        assert!(!unmapped_falls_through(
            &kube_user(WhenUnmapped::Impersonate, false),
            true
        ));
        assert!(!unmapped_falls_through(
            &kube_user(WhenUnmapped::Deny, false),
            true
        ));
    }

    #[test]
    fn extras_use_escaped_keys() {
        let e = extras("s", "u@x", "https://idp");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].0.as_str(), "impersonate-extra-gatehouse.dev%2fsubject");
        assert!(extras("s\n", "u", "i").len() == 2);
    }

    #[test]
    fn extra_names_follow_the_prefix() {
        for (key, name) in EXTRA_NAMES {
            assert_eq!(
                name.as_str(),
                format!("impersonate-extra-{EXTRA_PREFIX}%2f{key}"),
                "{key}"
            );
        }
    }
}
