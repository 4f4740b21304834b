//! Mapping OIDC claims to Kubernetes ServiceAccounts through annotations.
//!
//! A ServiceAccount opts in with annotations under a configurable prefix (default
//! `gatehouse.dev`; an existing platform's `rbac.kargo.akuity.io` works unchanged):
//!
//! - JSON form: `<prefix>/claims: {"groups": ["devs"], "email": ["a@x"]}`
//! - per-claim form: `<prefix>/claim.<name>: v1, v2` (comma list, each value trimmed)
//!
//! and, for the user an `AuthenticationConfiguration` issuer's claim mappings made of the token
//! (so an issuer whose claims differ can still map by a computed name; the `oidc` issuer's
//! users, whose names carry no prefix, match claim rules only):
//!
//! - JSON form: `<prefix>/user: {"username": ["ci:acme/site@main"], "groups": ["ci:acme"]}`
//! - per-field form: `<prefix>/user.username: a, b` and `<prefix>/user.groups: g1, g2`
//!
//! A per-claim value holding `=` is refused, the whole annotation ignored (with a
//! [`RuleError`] naming it): it is almost always an LDAP distinguished name such as
//! `cn=admins,ou=groups,dc=example,dc=com`, which the comma list would split into several
//! unrelated rules (`dc=com` among them). Such values go in the JSON form, which holds any
//! string: `<prefix>/claims: {"groups": ["cn=admins,ou=groups,dc=example,dc=com"]}`.
//!
//! A user maps to the ServiceAccount when **any** listed (claim, value) pair matches one of the
//! user's claims, or any listed username or group is the user's ([`Who`]). Matching is exact and case-sensitive. A claim that is a string or a list of
//! strings can match; numbers, booleans, objects and nulls never do, so `"true"` in an
//! annotation cannot be satisfied by a boolean claim.
//!
//! # Security
//! The index is built from ServiceAccount objects only, so who may map to what is decided by
//! whoever may annotate ServiceAccounts — the same people who can already bind roles to them.
//! There is deliberately no wildcard and no default ServiceAccount: a user with no matching
//! annotation maps to nothing.
//!
//! That is a weaker promise than it sounds: ServiceAccounts are patched by GitOps controllers,
//! CI deployers and operators that hold `patch serviceaccounts` far more widely than anyone
//! holds role bindings, and an annotation on a controller's ServiceAccount in `kube-system`
//! would hand its rights to whoever the annotation names. So which namespaces are mappable
//! is gatehouse's configuration, not the annotations' ([`NamespaceScope`]): mapping every
//! namespace is an explicit opt-in, and even then `kube-system`, `kube-public`,
//! `kube-node-lease` and gatehouse's own namespace ([`PROTECTED_NAMESPACES`] plus the one
//! gatehouse runs in) are mappable only when named one by one.
//!
//! With several issuers, a raw claim is only as trustworthy as the issuer that signed it: two
//! issuers can both say `email: boss@example.com`. So claim rules match only the claims of
//! issuers trusted for them ([`Who::claims`] is `None` otherwise: the server passes the
//! claims of the `oidc` issuer, and of an `AuthenticationConfiguration` issuer only with
//! `matchClaims: true`), while `user` rules match the names the file's mappings made, which
//! the file's prefixes keep apart per issuer as they do for the cluster's own RBAC (as far as
//! the prefixes differ: the operator's to choose). The `oidc` issuer's own names have no
//! prefix, so its users never match `user` rules ([`crate::identity::OidcUser::who`]).
//!
//! A comma list cannot hold a value with a comma, and an LDAP DN would silently become several
//! rules; values with `=` are therefore refused in that form (see above), never split.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

/// A ServiceAccount, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ServiceAccountRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceAccountRef {
    /// Builds a reference.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The Kubernetes username of the ServiceAccount.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// The groups Kubernetes gives the ServiceAccount.
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".to_owned(),
        ]
    }
}

impl std::fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Namespaces whose ServiceAccounts are never mappable unless named one by one, besides the
/// namespace gatehouse runs in: the control plane's own accounts live there.
pub const PROTECTED_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Which namespaces' ServiceAccounts may be mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceScope {
    all: bool,
    named: BTreeSet<String>,
    protected: BTreeSet<String>,
}

impl NamespaceScope {
    /// The namespaces named one by one; with `all`, also every namespace that is not
    /// protected. Protected: [`PROTECTED_NAMESPACES`] and `own` (gatehouse's own namespace).
    pub fn new(
        all: bool,
        named: impl IntoIterator<Item = String>,
        own: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            all,
            named: named.into_iter().collect(),
            protected: PROTECTED_NAMESPACES
                .iter()
                .map(|s| (*s).to_owned())
                .chain(own)
                .collect(),
        }
    }

    /// True when ServiceAccounts in `namespace` may be mapped.
    pub fn allows(&self, namespace: &str) -> bool {
        self.named.contains(namespace) || (self.all && !self.protected.contains(namespace))
    }

    /// The protected namespaces (mappable only when named).
    pub fn protected(&self) -> impl Iterator<Item = &str> {
        self.protected.iter().map(String::as_str)
    }
}

/// One (claim name, claim value) pair that grants a mapping.
pub type ClaimRule = (String, String);

/// A username or a group of the mapped user that grants a mapping (`<prefix>/user...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameRule {
    /// The user's username is this.
    Username(String),
    /// The user has this group.
    Group(String),
}

/// Who a lookup is for: the claims annotations may match (`None` when the user's issuer is
/// not trusted for claim rules) and the user gatehouse made.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The token's claims, when claim rules may match them.
    pub claims: Option<&'a Map<String, Value>>,
    /// The username.
    pub username: &'a str,
    /// The groups.
    pub groups: &'a [String],
}

impl<'a> Who<'a> {
    /// Claims only, no mapped user (tests and benchmarks of claim rules).
    pub fn claims(claims: &'a Map<String, Value>) -> Self {
        Self {
            claims: Some(claims),
            username: "",
            groups: &[],
        }
    }
}

/// Every rule of a ServiceAccount's annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// (claim, value) rules.
    pub claims: Vec<ClaimRule>,
    /// Username and group rules.
    pub names: Vec<NameRule>,
}

impl Rules {
    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.names.is_empty()
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.claims.len() + self.names.len()
    }
}

/// Reads every rule (claim and user rules) from a ServiceAccount's annotations.
pub fn all_rules_from_annotations(
    prefix: &str,
    annotations: &BTreeMap<String, String>,
) -> (Rules, Vec<RuleError>) {
    let (claims, mut errors) = rules_from_annotations(prefix, annotations);
    let json_key = format!("{prefix}/user");
    let mut names = BTreeSet::new();
    for (key, value) in annotations {
        let field = if *key == json_key {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct User {
                #[serde(default)]
                username: Vec<String>,
                #[serde(default)]
                groups: Vec<String>,
            }
            match serde_json::from_str::<User>(value) {
                Ok(u) => {
                    let given = |v: &String| !v.is_empty();
                    names.extend(u.username.into_iter().filter(given).map(NameRule::Username));
                    names.extend(u.groups.into_iter().filter(given).map(NameRule::Group));
                }
                Err(e) => errors.push(RuleError {
                    key: key.clone(),
                    reason: format!(
                        "expected a JSON object with the lists \"username\" and \"groups\" ({e})"
                    ),
                }),
            }
            continue;
        } else if let Some(field) = key
            .strip_prefix(&json_key)
            .and_then(|f| f.strip_prefix('.'))
        {
            field
        } else {
            continue;
        };
        let make: fn(String) -> NameRule = match field {
            "username" => NameRule::Username,
            "groups" => NameRule::Group,
            _ => {
                errors.push(RuleError {
                    key: key.clone(),
                    reason: "expected user.username or user.groups".to_owned(),
                });
                continue;
            }
        };
        match comma_list(&json_key, key, field, value) {
            Ok(values) => names.extend(values.into_iter().map(|v| make(v.to_owned()))),
            Err(e) => errors.push(e),
        }
    }
    (
        Rules {
            claims,
            names: names.into_iter().collect(),
        },
        errors,
    )
}

/// A comma list's values, trimmed, empty ones dropped; refused when one holds `=` (an LDAP
/// distinguished name the list would split).
fn comma_list<'v>(
    json_key: &str,
    key: &str,
    field: &str,
    value: &'v str,
) -> Result<Vec<&'v str>, RuleError> {
    let values: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.iter().any(|v| v.contains('=')) {
        let json = format!("{json_key}: {{\"{field}\": [\"cn=...,ou=...\"]}}");
        return Err(RuleError {
            key: key.to_owned(),
            reason: format!(
                "the value holds `=`, so it looks like an LDAP distinguished name, which this comma-separated form would split into several values; the whole annotation is ignored. Put such values in the JSON form instead: {json}"
            ),
        });
    }
    Ok(values)
}

/// An annotation that could not be read. The rest of the ServiceAccount's rules still apply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("annotation {key:?}: {reason}")]
pub struct RuleError {
    /// The annotation key.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

/// Reads the claim rules from a ServiceAccount's annotations.
pub fn rules_from_annotations(
    prefix: &str,
    annotations: &BTreeMap<String, String>,
) -> (Vec<ClaimRule>, Vec<RuleError>) {
    let json_key = format!("{prefix}/claims");
    let claim_prefix = format!("{prefix}/claim.");
    let mut rules = BTreeSet::new();
    let mut errors = Vec::new();
    for (key, value) in annotations {
        if *key == json_key {
            match serde_json::from_str::<BTreeMap<String, Vec<String>>>(value) {
                Ok(map) => {
                    for (claim, values) in map {
                        for v in values {
                            rules.insert((claim.clone(), v));
                        }
                    }
                }
                Err(e) => errors.push(RuleError {
                    key: key.clone(),
                    reason: format!(
                        "expected a JSON object of claim name to a list of strings ({e})"
                    ),
                }),
            }
        } else if let Some(claim) = key.strip_prefix(&claim_prefix) {
            if claim.is_empty() {
                errors.push(RuleError {
                    key: key.clone(),
                    reason: "the claim name after `claim.` is empty".to_owned(),
                });
                continue;
            }
            match comma_list(&json_key, key, claim, value) {
                Ok(values) => {
                    for v in values {
                        rules.insert((claim.to_owned(), v.to_owned()));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (rules.into_iter().collect(), errors)
}

/// ServiceAccounts indexed by (claim, value), so a lookup costs one hash probe per claim value
/// of the user, independent of the number of ServiceAccounts.
#[derive(Debug, Default, Clone)]
pub struct MappingIndex {
    by_claim: HashMap<String, HashMap<String, BTreeSet<ServiceAccountRef>>>,
    by_username: HashMap<String, BTreeSet<ServiceAccountRef>>,
    by_group: HashMap<String, BTreeSet<ServiceAccountRef>>,
    rules: HashMap<ServiceAccountRef, Rules>,
}

impl MappingIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of ServiceAccounts with at least one rule.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no ServiceAccount has a rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The ServiceAccounts that have rules.
    pub fn service_accounts(&self) -> impl Iterator<Item = &ServiceAccountRef> {
        self.rules.keys()
    }

    /// Sets the claim rules of a ServiceAccount (and no user rules), replacing any earlier
    /// ones.
    pub fn upsert(&mut self, sa: ServiceAccountRef, rules: Vec<ClaimRule>) {
        self.upsert_rules(
            sa,
            Rules {
                claims: rules,
                names: Vec::new(),
            },
        );
    }

    /// Sets every rule of a ServiceAccount, replacing any earlier ones.
    pub fn upsert_rules(&mut self, sa: ServiceAccountRef, rules: Rules) {
        self.remove(&sa);
        if rules.is_empty() {
            return;
        }
        for (claim, value) in &rules.claims {
            self.by_claim
                .entry(claim.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(sa.clone());
        }
        for rule in &rules.names {
            let (map, name) = match rule {
                NameRule::Username(n) => (&mut self.by_username, n),
                NameRule::Group(n) => (&mut self.by_group, n),
            };
            map.entry(name.clone()).or_default().insert(sa.clone());
        }
        self.rules.insert(sa, rules);
    }

    /// Forgets a ServiceAccount.
    pub fn remove(&mut self, sa: &ServiceAccountRef) {
        let Some(old) = self.rules.remove(sa) else {
            return;
        };
        for rule in old.names {
            let (map, name) = match rule {
                NameRule::Username(n) => (&mut self.by_username, n),
                NameRule::Group(n) => (&mut self.by_group, n),
            };
            if let Some(set) = map.get_mut(&name) {
                set.remove(sa);
                if set.is_empty() {
                    map.remove(&name);
                }
            }
        }
        for (claim, value) in old.claims {
            if let Some(values) = self.by_claim.get_mut(&claim) {
                if let Some(set) = values.get_mut(&value) {
                    set.remove(sa);
                    if set.is_empty() {
                        values.remove(&value);
                    }
                }
                if values.is_empty() {
                    self.by_claim.remove(&claim);
                }
            }
        }
    }

    /// The ServiceAccounts that `who` maps to, in (namespace, name) order: by its claims
    /// (when given) and by its username and groups.
    pub fn lookup_who(&self, who: Who<'_>) -> BTreeSet<ServiceAccountRef> {
        let mut out = match who.claims {
            Some(claims) => self.lookup(claims),
            None => BTreeSet::new(),
        };
        if self.by_username.is_empty() && self.by_group.is_empty() {
            return out;
        }
        if !who.username.is_empty()
            && let Some(set) = self.by_username.get(who.username)
        {
            out.extend(set.iter().cloned());
        }
        for g in who.groups {
            if let Some(set) = self.by_group.get(g) {
                out.extend(set.iter().cloned());
            }
        }
        out
    }

    /// The ServiceAccounts that `claims` map to, in (namespace, name) order.
    pub fn lookup(&self, claims: &Map<String, Value>) -> BTreeSet<ServiceAccountRef> {
        let mut out = BTreeSet::new();
        let mut add = |value: &Value, values: &HashMap<String, BTreeSet<ServiceAccountRef>>| {
            let mut one = |v: &str| {
                if let Some(set) = values.get(v) {
                    out.extend(set.iter().cloned());
                }
            };
            match value {
                Value::String(s) => one(s),
                Value::Array(items) => items.iter().filter_map(Value::as_str).for_each(&mut one),
                _ => {}
            }
        };
        // The claim names both sides have, found from the smaller side: an ID token has a
        // dozen claims and the index usually rules on two or three (`groups`, `email`), so
        // walking the index's names and reading the token's ordered map saves hashing every
        // other claim name of the token.
        if self.by_claim.len() < claims.len() {
            for (name, values) in &self.by_claim {
                if let Some(value) = claims.get(name) {
                    add(value, values);
                }
            }
        } else {
            for (name, value) in claims {
                if let Some(values) = self.by_claim.get(name) {
                    add(value, values);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn claims(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reads_both_forms_under_prefix() {
        let (rules, errors) = rules_from_annotations(
            "rbac.kargo.akuity.io",
            &ann(&[
                (
                    "rbac.kargo.akuity.io/claims",
                    r#"{"groups":["devs","ops"]}"#,
                ),
                ("rbac.kargo.akuity.io/claim.email", " a@x , b@x,, "),
                ("gatehouse.dev/claims", r#"{"groups":["ignored"]}"#),
            ]),
        );
        assert!(errors.is_empty());
        assert_eq!(
            rules,
            vec![
                ("email".into(), "a@x".into()),
                ("email".into(), "b@x".into()),
                ("groups".into(), "devs".into()),
                ("groups".into(), "ops".into()),
            ]
        );
    }

    #[test]
    fn bad_json_is_reported_and_other_rules_kept() {
        let (rules, errors) = rules_from_annotations(
            "gatehouse.dev",
            &ann(&[
                ("gatehouse.dev/claims", r#"{"groups":"devs"}"#),
                ("gatehouse.dev/claim.sub", "u1"),
                ("gatehouse.dev/claim.", "x"),
            ]),
        );
        assert_eq!(rules, vec![("sub".into(), "u1".into())]);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn comma_form_value_with_equals_is_refused_and_points_to_json_form() {
        let dn = "cn=admins,ou=groups,dc=example,dc=com";
        let (rules, errors) = rules_from_annotations(
            "gatehouse.dev",
            &ann(&[
                ("gatehouse.dev/claim.groups", dn),
                ("gatehouse.dev/claim.sub", "u1"),
                ("gatehouse.dev/claim.email", "a@x, b=c"),
            ]),
        );
        // Neither the DN's parts (`dc=com`, ...) nor any part of a list holding `=` is a rule;
        // other annotations still apply.
        assert_eq!(rules, vec![("sub".into(), "u1".into())]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].key, "gatehouse.dev/claim.email");
        assert_eq!(errors[1].key, "gatehouse.dev/claim.groups");
        let text = errors[1].to_string();
        assert!(text.contains("gatehouse.dev/claim.groups"), "{text}");
        assert!(
            text.contains(r#"gatehouse.dev/claims: {"groups""#),
            "{text}"
        );
        // The JSON form holds the DN as one value.
        let (rules, errors) = rules_from_annotations(
            "gatehouse.dev",
            &ann(&[("gatehouse.dev/claims", &format!(r#"{{"groups":["{dn}"]}}"#))]),
        );
        assert!(errors.is_empty());
        assert_eq!(rules, vec![("groups".into(), dn.into())]);
    }

    #[test]
    fn protected_namespaces_are_mappable_only_when_named() {
        let all = NamespaceScope::new(true, [], ["gatehouse".to_owned()]);
        for ns in ["kube-system", "kube-public", "kube-node-lease", "gatehouse"] {
            assert!(
                !all.allows(ns),
                "{ns} must not be mappable by allNamespaces"
            );
        }
        assert!(all.allows("team-a"));
        let named = NamespaceScope::new(true, ["kube-system".to_owned()], ["gatehouse".to_owned()]);
        assert!(named.allows("kube-system"));
        assert!(!named.allows("kube-public"));
        let listed = NamespaceScope::new(false, ["team-a".to_owned()], []);
        assert!(listed.allows("team-a"));
        assert!(!listed.allows("team-b"));
        assert!(!listed.allows("kube-system"));
        assert!(!NamespaceScope::default().allows("team-a"));
    }

    #[test]
    fn lookup_matches_strings_and_lists_only() {
        let mut idx = MappingIndex::new();
        let dev = ServiceAccountRef::new("team-a", "dev");
        let ops = ServiceAccountRef::new("team-b", "ops");
        idx.upsert(dev.clone(), vec![("groups".into(), "devs".into())]);
        idx.upsert(
            ops.clone(),
            vec![
                ("email".into(), "o@x".into()),
                ("admin".into(), "true".into()),
            ],
        );
        assert_eq!(
            idx.lookup(&claims(json!({"groups": ["qa", "devs"]}))),
            BTreeSet::from([dev.clone()])
        );
        assert_eq!(
            idx.lookup(&claims(json!({"groups": "devs", "email": "o@x"}))),
            BTreeSet::from([dev.clone(), ops.clone()])
        );
        assert!(idx.lookup(&claims(json!({"admin": true}))).is_empty());
        assert!(idx.lookup(&claims(json!({"groups": ["Devs"]}))).is_empty());
        assert!(
            idx.lookup(&claims(json!({"groups": {"devs": 1}})))
                .is_empty()
        );
        assert!(idx.lookup(&claims(json!({"Groups": ["devs"]}))).is_empty());
    }

    #[test]
    fn lookup_finds_the_same_whichever_side_has_fewer_claim_names() {
        let mut idx = MappingIndex::new();
        let dev = ServiceAccountRef::new("team-a", "dev");
        let ops = ServiceAccountRef::new("team-b", "ops");
        idx.upsert(dev.clone(), vec![("groups".into(), "devs".into())]);
        idx.upsert(ops.clone(), vec![("email".into(), "o@x".into())]);
        // A token with more claim names than the index rules on (the index's side is walked).
        let token = claims(json!({
            "iss": "i", "sub": "s", "aud": "a", "exp": 1, "admin": true,
            "groups": ["qa", "devs"], "email": "o@x", "name": "O",
        }));
        assert_eq!(
            idx.lookup(&token),
            BTreeSet::from([dev.clone(), ops.clone()])
        );
        let mut no_email = token.clone();
        no_email.remove("email");
        assert_eq!(idx.lookup(&no_email), BTreeSet::from([dev.clone()]));
        // An index ruling on more claim names than the token has (the token's side is walked).
        for n in 0..20 {
            idx.upsert(
                ServiceAccountRef::new("team-c", format!("sa-{n}")),
                vec![(format!("claim-{n}"), "x".into())],
            );
        }
        assert_eq!(
            idx.lookup(&claims(json!({"groups": "devs", "email": "o@x"}))),
            BTreeSet::from([dev.clone(), ops])
        );
        assert_eq!(idx.lookup(&token).len(), 2);
        assert_eq!(
            idx.lookup(&claims(json!({"claim-3": ["x"], "groups": ["devs"]}))),
            BTreeSet::from([dev, ServiceAccountRef::new("team-c", "sa-3")])
        );
    }

    #[test]
    fn upsert_replaces_and_remove_forgets() {
        let mut idx = MappingIndex::new();
        let dev = ServiceAccountRef::new("team-a", "dev");
        idx.upsert(dev.clone(), vec![("groups".into(), "devs".into())]);
        idx.upsert(dev.clone(), vec![("groups".into(), "ops".into())]);
        assert!(idx.lookup(&claims(json!({"groups": ["devs"]}))).is_empty());
        assert_eq!(idx.lookup(&claims(json!({"groups": ["ops"]}))).len(), 1);
        idx.remove(&dev);
        assert!(idx.is_empty());
        assert!(idx.by_claim.is_empty());
        idx.upsert(dev, vec![]);
        assert!(idx.is_empty());
    }

    #[test]
    fn user_rules_are_read_in_both_forms_and_match_the_mapped_user_only() {
        let (rules, errors) = all_rules_from_annotations(
            "gatehouse.dev",
            &ann(&[
                (
                    "gatehouse.dev/user.username",
                    "ci:acme/site@main, ci:acme/tool@main",
                ),
                ("gatehouse.dev/user.groups", "ci:acme"),
                (
                    "gatehouse.dev/user",
                    r#"{"groups": ["cn=ops,dc=example,dc=com"]}"#,
                ),
                ("gatehouse.dev/claim.sub", "u1"),
                ("gatehouse.dev/user.nope", "x"),
            ]),
        );
        assert_eq!(rules.claims, vec![("sub".into(), "u1".into())]);
        assert_eq!(
            rules.names,
            vec![
                NameRule::Username("ci:acme/site@main".into()),
                NameRule::Username("ci:acme/tool@main".into()),
                NameRule::Group("ci:acme".into()),
                NameRule::Group("cn=ops,dc=example,dc=com".into()),
            ]
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .to_string()
                .contains("user.username or user.groups")
        );
        // A DN in the comma form is refused, pointing at the JSON form of `user`.
        let (rules, errors) = all_rules_from_annotations(
            "gatehouse.dev",
            &ann(&[("gatehouse.dev/user.groups", "cn=ops,dc=example,dc=com")]),
        );
        assert!(rules.is_empty());
        assert!(
            errors[0].to_string().contains("gatehouse.dev/user: {"),
            "{errors:?}"
        );
        let (_, errors) = all_rules_from_annotations(
            "gatehouse.dev",
            &ann(&[("gatehouse.dev/user", r#"{"user": ["x"]}"#)]),
        );
        assert!(
            errors[0]
                .to_string()
                .contains("\"username\" and \"groups\""),
            "{errors:?}"
        );

        let mut idx = MappingIndex::new();
        let site = ServiceAccountRef::new("ci", "site");
        let by_claim = ServiceAccountRef::new("ci", "by-claim");
        idx.upsert_rules(
            site.clone(),
            Rules {
                claims: vec![],
                names: vec![
                    NameRule::Username("ci:acme/site@main".into()),
                    NameRule::Group("ci:acme".into()),
                ],
            },
        );
        idx.upsert(
            by_claim.clone(),
            vec![("repository".into(), "acme/site".into())],
        );
        let token = claims(json!({"repository": "acme/site", "username": "ci:acme/site@main"}));
        let groups = ["ci:other".to_owned()];
        let who = |claims, username, groups| Who {
            claims,
            username,
            groups,
        };
        // The mapped username matches; so does the claim, when claims are trusted.
        assert_eq!(
            idx.lookup_who(who(Some(&token), "ci:acme/site@main", &groups)),
            BTreeSet::from([by_claim.clone(), site.clone()])
        );
        // Claims not trusted: only the user rules.
        assert_eq!(
            idx.lookup_who(who(None, "ci:acme/site@main", &groups)),
            BTreeSet::from([site.clone()])
        );
        // A claim named like the mapped field never matches a user rule.
        assert!(idx.lookup_who(who(Some(&token), "other", &groups)).len() == 1);
        let acme = ["ci:acme".to_owned()];
        let near = ["ci:acm".to_owned()];
        assert_eq!(
            idx.lookup_who(who(None, "x", &acme)),
            BTreeSet::from([site.clone()])
        );
        assert!(idx.lookup_who(who(None, "x", &near)).is_empty());
        // An empty name never matches (the oidc issuer's users have none), nor does a rule
        // written with an empty name.
        let (rules, _) = all_rules_from_annotations(
            "gatehouse.dev",
            &ann(&[(
                "gatehouse.dev/user",
                r#"{"username": [""], "groups": [""]}"#,
            )]),
        );
        assert!(rules.is_empty(), "{rules:?}");
        idx.remove(&site);
        assert!(idx.by_username.is_empty() && idx.by_group.is_empty());
        assert!(
            idx.lookup_who(who(None, "ci:acme/site@main", &groups))
                .is_empty()
        );
    }

    #[test]
    fn serviceaccount_identity() {
        let sa = ServiceAccountRef::new("team-a", "dev");
        assert_eq!(sa.username(), "system:serviceaccount:team-a:dev");
        assert!(
            sa.groups()
                .contains(&"system:serviceaccounts:team-a".to_owned())
        );
    }
}
