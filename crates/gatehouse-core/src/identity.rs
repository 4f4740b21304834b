//! Who a request is, and as whom gatehouse sends it to the kube-apiserver.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::admin::AdminClaims;
use crate::jwt::Verified;
use crate::mapping::ServiceAccountRef;

/// A user signed in with the configured OIDC issuer, after full verification.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcUser {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The configured username claim (default `email`), or `sub` when that claim is absent.
    pub username: String,
    /// `groups`, when the claim is a string list.
    pub groups: Vec<String>,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `azp`.
    pub authorized_party: Option<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// Every claim of the token.
    pub claims: Map<String, Value>,
}

impl OidcUser {
    /// Builds the user from a verified token.
    pub fn from_verified(v: Verified, username_claim: &str) -> Self {
        let username = v
            .claims
            .get(username_claim)
            .and_then(Value::as_str)
            .unwrap_or(&v.subject)
            .to_owned();
        let groups = match v.claims.get("groups") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Self {
            issuer: v.issuer,
            subject: v.subject,
            username,
            groups,
            audiences: v.audiences,
            authorized_party: v.authorized_party,
            expires_at: v.expires_at,
            claims: v.claims,
        }
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
        let u = OidcUser::from_verified(v, "email");
        assert_eq!(u.username, "s");
        assert_eq!(u.groups, vec!["a", "b"]);
    }
}
