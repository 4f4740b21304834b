//! Who a request is, and as whom gatehouse sends it to the kube-apiserver.
//!
//! # Security
//! - An `email` claim is trusted only when the IdP says it verified the address:
//!   `email_verified` must be the JSON boolean `true` ([`EmailVerified::True`]). `false`, any
//!   other type (the string `"true"` included, which the kube-apiserver refuses too) and, by
//!   default, an absent claim leave the address untrusted; `oidc.emailVerifiedWhenAbsent: true`
//!   trusts an address without `email_verified` (the kube-apiserver's own rule for
//!   `claim: email`), for IdPs that verify every address and never send the claim.
//! - An untrusted `email` is never used: when it is the username claim (the default,
//!   `oidc.usernameClaim: email`) the token is refused ([`IdentityError::EmailNotVerified`]),
//!   as the kube-apiserver refuses it; otherwise it is withheld from the claims that
//!   ServiceAccount mapping sees ([`OidcUser::claims`]), so neither a `claims` nor a
//!   `claim.email` annotation can match an address the user typed in themselves, and it never
//!   reaches the audit extras. [`OidcUser::email_withheld`] records why, for the user's error
//!   messages and `/v1/whoami`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::admin::AdminClaims;
use crate::jwt::Verified;
use crate::mapping::ServiceAccountRef;

/// What a token says about its `email` claim's verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerified {
    /// `email_verified` is the JSON boolean `true`.
    True,
    /// `email_verified` is `false`.
    False,
    /// The token has no `email_verified` claim.
    Absent,
    /// `email_verified` is something other than a boolean (for example the string `"true"`).
    NotABoolean,
}

impl EmailVerified {
    /// Reads `email_verified` from a token's claims.
    pub fn of(claims: &Map<String, Value>) -> Self {
        match claims.get("email_verified") {
            Some(Value::Bool(true)) => Self::True,
            Some(Value::Bool(false)) => Self::False,
            // `null` is a present claim that is not `true`: the kube-apiserver refuses it too.
            None => Self::Absent,
            Some(_) => Self::NotABoolean,
        }
    }
}

impl std::fmt::Display for EmailVerified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::True => "email_verified is true",
            Self::False => "email_verified is false",
            Self::Absent => "the token has no email_verified claim",
            Self::NotABoolean => "email_verified is not the JSON boolean true",
        })
    }
}

/// How a verified token's claims become an [`OidcUser`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// The claim used as username (`oidc.usernameClaim`, default `email`); `sub` when absent.
    pub username_claim: String,
    /// Whether an `email` without an `email_verified` claim is trusted
    /// (`oidc.emailVerifiedWhenAbsent`, default false).
    pub email_verified_when_absent: bool,
}

impl ClaimRules {
    /// Rules with `username_claim` and the default for an absent `email_verified` (untrusted).
    pub fn new(username_claim: impl Into<String>) -> Self {
        Self {
            username_claim: username_claim.into(),
            email_verified_when_absent: false,
        }
    }
}

/// Why a verified token does not make a user.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The username claim is `email`, and the IdP has not verified the address.
    #[error(
        "gatehouse uses the email claim as username, but the identity provider has not verified this address ({0}); verify the address at the identity provider and sign in again, or ask the platform team to use another oidc.usernameClaim (such as sub)"
    )]
    EmailNotVerified(EmailVerified),
}

/// A user signed in with the configured OIDC issuer, after full verification.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcUser {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The configured username claim (default `email`), or `sub` when that claim is absent.
    /// Never an unverified `email`.
    pub username: String,
    /// `groups`, when the claim is a string list.
    pub groups: Vec<String>,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `azp`.
    pub authorized_party: Option<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// The claims of the token that mapping may use: all of them, except an `email` the IdP
    /// has not verified.
    pub claims: Map<String, Value>,
    /// Set when the token's `email` was withheld from [`OidcUser::claims`], with why.
    pub email_withheld: Option<EmailVerified>,
    /// Set when the issuer is configured by an `AuthenticationConfiguration`: the rest of the
    /// user its claim mappings made ([`OidcUser::username`] and [`OidcUser::groups`] are that
    /// user's), and what gatehouse does when no ServiceAccount is mapped.
    pub kube: Option<KubeUser>,
}

/// The part of a user made by an `AuthenticationConfiguration`'s claim mappings that
/// [`OidcUser`] does not already hold, and the issuer's gatehouse settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeUser {
    /// `uid` (empty when the mappings make none).
    pub uid: String,
    /// `extra`, by key.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
    /// What happens when the user maps to no ServiceAccount.
    pub when_unmapped: WhenUnmapped,
    /// Whether the mapped user may carry `system:` names in `impersonate` mode.
    pub allow_system_names: bool,
    /// Whether ServiceAccount claim annotations may match this issuer's raw claims (its
    /// `matchClaims`, or it is the `oidc` issuer); `user` annotations always match.
    pub match_claims: bool,
    /// The issuer's name for people (`authentication.issuers[].name`), when set.
    pub issuer_name: Option<String>,
}

/// What gatehouse does with a verified user who maps to no ServiceAccount
/// (`authentication.issuers[].whenUnmapped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenUnmapped {
    /// Forward the user's own token for the kube-apiserver to authenticate (when
    /// `fallThrough.enabled`; else refused): the cluster trusts this issuer itself.
    #[default]
    FallThrough,
    /// Impersonate the user the claim mappings made: the cluster does not trust the issuer,
    /// gatehouse vouches for it.
    Impersonate,
    /// Refuse (403).
    Deny,
}

impl WhenUnmapped {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FallThrough => "fallThrough",
            Self::Impersonate => "impersonate",
            Self::Deny => "deny",
        }
    }
}

impl OidcUser {
    /// Builds the user from a verified token, applying `rules` (see the module's Security
    /// section for the `email` rule).
    pub fn from_verified(v: Verified, rules: &ClaimRules) -> Result<Self, IdentityError> {
        let verified = EmailVerified::of(&v.claims);
        let email_trusted = match verified {
            EmailVerified::True => true,
            EmailVerified::Absent => rules.email_verified_when_absent,
            EmailVerified::False | EmailVerified::NotABoolean => false,
        };
        let mut claims = v.claims;
        let mut email_withheld = None;
        if !email_trusted && claims.contains_key("email") {
            if rules.username_claim == "email" {
                return Err(IdentityError::EmailNotVerified(verified));
            }
            claims.remove("email");
            email_withheld = Some(verified);
        }
        let username = claims
            .get(&rules.username_claim)
            .and_then(Value::as_str)
            .unwrap_or(&v.subject)
            .to_owned();
        let groups = match claims.get("groups") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Self {
            issuer: v.issuer,
            subject: v.subject,
            username,
            groups,
            audiences: v.audiences,
            authorized_party: v.authorized_party,
            expires_at: v.expires_at,
            claims,
            email_withheld,
            kube: None,
        })
    }

    /// Who this user is to ServiceAccount mapping: the claims (unless the issuer is not trusted
    /// for claim annotations, [`KubeUser::match_claims`]) and, for a user an
    /// `AuthenticationConfiguration` made, the mapped username and groups. The `oidc` issuer's
    /// names carry no prefix, so they could equal another issuer's mapped names: its users
    /// match claim annotations only.
    pub fn who(&self) -> crate::mapping::Who<'_> {
        let (username, groups): (&str, &[String]) = match &self.kube {
            Some(_) => (&self.username, &self.groups),
            None => ("", &[]),
        };
        crate::mapping::Who {
            claims: self
                .kube
                .as_ref()
                .is_none_or(|k| k.match_claims)
                .then_some(&self.claims),
            username,
            groups,
        }
    }

    /// A sentence for messages when the token's `email` was withheld from mapping.
    pub fn withheld_note(&self) -> Option<String> {
        self.email_withheld.map(|why| {
            format!(
                "its email claim is not used for mapping because the identity provider has not verified the address ({why})"
            )
        })
    }
}

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// gatehouse's own admin account.
    Admin(AdminClaims),
    /// An OIDC user.
    Oidc(OidcUser),
}

impl Principal {
    /// When the credential stops being valid, unix seconds.
    pub fn expires_at(&self) -> i64 {
        match self {
            Principal::Admin(c) => c.exp,
            Principal::Oidc(u) => u.expires_at,
        }
    }
}

/// The ServiceAccounts to try for a request, best first.
///
/// For a namespaced request: the mapped ServiceAccounts in that namespace, then those in the
/// global namespaces. When neither has one (or the request is cluster-scoped), every mapped
/// ServiceAccount, so that the kube-apiserver answers with its own authorization message for a
/// real identity rather than gatehouse guessing.
pub fn candidate_service_accounts(
    mapped: &BTreeSet<ServiceAccountRef>,
    namespace: Option<&str>,
    global_namespaces: &[String],
) -> Vec<ServiceAccountRef> {
    if let Some(ns) = namespace {
        let local = mapped.iter().filter(|sa| sa.namespace == ns);
        let global = mapped
            .iter()
            .filter(|sa| sa.namespace != ns && global_namespaces.contains(&sa.namespace));
        let picked: Vec<_> = local.chain(global).cloned().collect();
        if !picked.is_empty() {
            return picked;
        }
    }
    mapped.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(ns: &str, n: &str) -> ServiceAccountRef {
        ServiceAccountRef::new(ns, n)
    }

    #[test]
    fn namespace_first_then_global_then_all() {
        let mapped = BTreeSet::from([
            sa("team-a", "dev"),
            sa("shared", "viewer"),
            sa("team-c", "x"),
        ]);
        let global = vec!["shared".to_owned()];
        assert_eq!(
            candidate_service_accounts(&mapped, Some("team-a"), &global),
            vec![sa("team-a", "dev"), sa("shared", "viewer")]
        );
        assert_eq!(
            candidate_service_accounts(&mapped, Some("team-b"), &global),
            vec![sa("shared", "viewer")]
        );
        assert_eq!(candidate_service_accounts(&mapped, None, &global).len(), 3);
        assert_eq!(
            candidate_service_accounts(&mapped, Some("team-b"), &[]).len(),
            3
        );
    }

    #[test]
    fn username_claim_falls_back_to_sub() {
        let claims: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"groups": ["a", 1, "b"]})).unwrap();
        let v = Verified {
            issuer: "i".into(),
            subject: "s".into(),
            audiences: vec![],
            authorized_party: None,
            expires_at: 0,
            claims,
        };
        let u = OidcUser::from_verified(v, &ClaimRules::new("email")).unwrap();
        assert_eq!(u.username, "s");
        assert_eq!(u.groups, vec!["a", "b"]);
    }

    fn verified(claims: Value) -> Verified {
        Verified {
            issuer: "i".into(),
            subject: "s".into(),
            audiences: vec![],
            authorized_party: None,
            expires_at: 0,
            claims: serde_json::from_value(claims).unwrap(),
        }
    }

    #[test]
    fn email_verified_is_read_as_kubernetes_reads_it() {
        let of = |v: Value| EmailVerified::of(&serde_json::from_value(v).unwrap());
        assert_eq!(
            of(serde_json::json!({"email_verified": true})),
            EmailVerified::True
        );
        assert_eq!(
            of(serde_json::json!({"email_verified": false})),
            EmailVerified::False
        );
        assert_eq!(of(serde_json::json!({})), EmailVerified::Absent);
        // `null` is present and not `true` (the kube-apiserver refuses it too).
        assert_eq!(
            of(serde_json::json!({"email_verified": null})),
            EmailVerified::NotABoolean
        );
        for not_bool in [
            serde_json::json!("true"),
            serde_json::json!(1),
            serde_json::json!([true]),
        ] {
            assert_eq!(
                of(serde_json::json!({"email_verified": not_bool})),
                EmailVerified::NotABoolean
            );
        }
    }

    #[test]
    fn unverified_email_as_username_is_refused() {
        let rules = ClaimRules::new("email");
        for (ev, why) in [
            (serde_json::json!(false), EmailVerified::False),
            (serde_json::json!("true"), EmailVerified::NotABoolean),
        ] {
            let v = verified(serde_json::json!({"email": "boss@x", "email_verified": ev}));
            assert_eq!(
                OidcUser::from_verified(v, &rules),
                Err(IdentityError::EmailNotVerified(why))
            );
        }
        // Absent: refused by default, trusted only when configured.
        let absent = || verified(serde_json::json!({"email": "boss@x"}));
        assert_eq!(
            OidcUser::from_verified(absent(), &rules),
            Err(IdentityError::EmailNotVerified(EmailVerified::Absent))
        );
        let lenient = ClaimRules {
            email_verified_when_absent: true,
            ..rules.clone()
        };
        let u = OidcUser::from_verified(absent(), &lenient).unwrap();
        assert_eq!(u.username, "boss@x");
        assert_eq!(u.claims["email"], "boss@x");
        assert_eq!(u.email_withheld, None);
        // Even the lenient rule never trusts an explicit false.
        let v = verified(serde_json::json!({"email": "boss@x", "email_verified": false}));
        assert!(OidcUser::from_verified(v, &lenient).is_err());
        // Verified: used.
        let v = verified(serde_json::json!({"email": "a@x", "email_verified": true}));
        let u = OidcUser::from_verified(v, &rules).unwrap();
        assert_eq!(u.username, "a@x");
        assert_eq!(u.claims["email"], "a@x");
    }

    #[test]
    fn unverified_email_is_withheld_from_mapping_claims() {
        let rules = ClaimRules::new("sub");
        let v = verified(serde_json::json!({
            "email": "boss@x", "email_verified": false, "groups": ["devs"], "sub": "s"
        }));
        let u = OidcUser::from_verified(v, &rules).unwrap();
        assert_eq!(u.username, "s");
        assert!(!u.claims.contains_key("email"), "{:?}", u.claims);
        assert_eq!(u.claims["groups"], serde_json::json!(["devs"]));
        assert_eq!(u.email_withheld, Some(EmailVerified::False));
        assert!(
            u.withheld_note()
                .unwrap()
                .contains("email_verified is false")
        );
        // The username claim being something else that the user controls is the operator's
        // choice; it is taken as is.
        let v = verified(serde_json::json!({"email": "boss@x", "preferred_username": "p"}));
        let u = OidcUser::from_verified(v, &ClaimRules::new("preferred_username")).unwrap();
        assert_eq!(u.username, "p");
        assert!(!u.claims.contains_key("email"));
        assert_eq!(u.email_withheld, Some(EmailVerified::Absent));
        // No email at all: nothing withheld.
        let u = OidcUser::from_verified(verified(serde_json::json!({})), &rules).unwrap();
        assert_eq!(u.email_withheld, None);
    }
}
