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
//! - An OIDC user who maps to no ServiceAccount falls through only when fall-through is on;
//!   otherwise the request is denied (403) and never forwarded.
//! - A stale ServiceAccount index is not a verdict: a mapped user (or, with fall-through off,
//!   any user) gets 503 ([`PlanError::Stale`]), never a guess from old data.

use gatehouse_core::identity::Principal;
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
    /// The metrics label: `admin`, `oidc`, `fallthrough`, or `refused`.
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
            Mapping::Chosen(None) if settings.fall_through => Ok(Plan::FallThrough),
            Mapping::Chosen(None) => Ok(Plan::Deny(Denial::Unmapped {
                username: user.username.clone(),
                withheld: user.withheld_note(),
            })),
        },
    }
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

/// `Impersonate-Extra-*` headers naming the original user ([`EXTRA_NAMES`]); values that are
/// not valid header text are left out rather than mangled.
fn extras(subject: &str, username: &str, issuer: &str) -> Vec<(HeaderName, HeaderValue)> {
    EXTRA_NAMES
        .into_iter()
        .zip([subject, username, issuer])
        .filter_map(|((key, name), value)| match HeaderValue::from_str(value) {
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
    };
    const OFF: Settings<'static> = Settings {
        admin: None,
        fall_through: false,
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
