//! One issuer's claims made into a user, as the kube-apiserver's JWT authenticator makes it
//! (k8s.io/apiserver v0.34 `plugin/pkg/authenticator/token/oidc`, `AuthenticateToken` after
//! the signature, `iss`, `aud` and `exp` are verified, which the caller does).
//!
//! # Security
//! The user this produces is who gatehouse says the caller is, to the kube-apiserver (in
//! `impersonate` mode) and to ServiceAccount mapping. Each rule below is the kube-apiserver's,
//! so that gatehouse never makes a different user from the same token than the cluster would:
//! - **username** by claim: the claim must be a JSON string (a missing claim or another type
//!   refuses the token; `null` decodes to the empty string, as in Go); with claim `email`, an
//!   `email_verified` claim, when present, must be `true` (a non-boolean refuses). The prefix
//!   is prepended. By expression: it must give a non-empty string.
//! - **groups** by claim: a string or a list of strings (`null` is no groups); each prefixed.
//!   A token whose groups claim is only a distributed claim (`_claim_names`) is refused:
//!   gatehouse does not fetch distributed claims, and a user without groups the cluster would
//!   have given is not the same user. By expression: a string or a list of strings, empty
//!   strings dropped.
//! - **uid** by claim: a JSON string, required when configured. By expression: a string.
//! - **extra**: `authentication.kubernetes.io/credential-id` is `JTI=<jti>` when the token has
//!   a string `jti`; each mapping gives a string or a list of strings, empty ones dropped, and
//!   a key with no value is left out.
//! - **claim validation rules**: a `claim` rule requires the claim as a string equal to
//!   `requiredValue`; an expression must be true. **User validation rules** see the mapped
//!   user and must all be true. A failing rule refuses the token with its message.
//! - Every expression runs within the cost bound ([`crate::cel`]); an expression that fails
//!   (a missing key, a wrong type) refuses the token, as in the kube-apiserver.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::cel::{Environment, EvalError, Expression, value};

/// The extra key the kube-apiserver sets from a token's `jti`.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// One issuer's compiled configuration.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// `issuer.url`.
    pub issuer: String,
    /// `issuer.audiences` (matched as `MatchAny`).
    pub audiences: Vec<String>,
    /// `claimMappings`.
    pub mapping: Mapping,
    /// `claimValidationRules`.
    pub claim_rules: Vec<ClaimRule>,
    /// `userValidationRules`.
    pub user_rules: Vec<UserRule>,
}

/// `claimMappings`, compiled.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `username` (never [`PrefixedMapping::None`]: validation requires it).
    pub username: PrefixedMapping,
    /// `groups`.
    pub groups: PrefixedMapping,
    /// `uid`.
    pub uid: UidMapping,
    /// `extra`.
    pub extra: Vec<Extra>,
}

/// `username` or `groups`.
#[derive(Debug, Clone)]
pub enum PrefixedMapping {
    /// Not configured.
    None,
    /// A claim and its prefix.
    Claim {
        /// The claim.
        claim: String,
        /// The prefix (may be empty).
        prefix: String,
    },
    /// A CEL expression.
    Expression(Expression),
}

/// `uid`.
#[derive(Debug, Clone)]
pub enum UidMapping {
    /// Not configured: no uid.
    None,
    /// A claim.
    Claim(String),
    /// A CEL expression.
    Expression(Expression),
}

/// `extra[]`.
#[derive(Debug, Clone)]
pub struct Extra {
    /// The key.
    pub key: String,
    /// Its value expression.
    pub expression: Expression,
}

/// `claimValidationRules[]`.
#[derive(Debug, Clone)]
pub enum ClaimRule {
    /// `claim` and `requiredValue`.
    Required {
        /// The claim.
        claim: String,
        /// The value it must have.
        value: String,
    },
    /// `expression` and `message`.
    Expression {
        /// The expression.
        expression: Expression,
        /// Said when it is false.
        message: String,
    },
}

/// `userValidationRules[]`.
#[derive(Debug, Clone)]
pub struct UserRule {
    /// The expression.
    pub expression: Expression,
    /// Said when it is false.
    pub message: String,
}

/// The user a token's claims make: what `SelfSubjectReview` shows for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `username`.
    pub username: String,
    /// `uid` (empty when none).
    pub uid: String,
    /// `groups`, in order.
    pub groups: Vec<String>,
    /// `extra`.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why the claims make no user: the kube-apiserver refuses such a token too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A claim the configuration names is missing or of the wrong type.
    #[error("the token's {claim} claim {problem}")]
    Claim {
        /// The claim.
        claim: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The username claim is `email` and `email_verified` is not `true`.
    #[error("the token's email is not verified (email_verified is not true)")]
    EmailNotVerified,
    /// A claim name the kube-apiserver's CEL would read as an escaped name.
    #[error(
        "the token has a claim whose name the kube-apiserver's CEL reads as an escaped name (__dot__, __dash__, __slash__, __underscores__): gatehouse refuses it rather than read another claim than the cluster"
    )]
    EscapedClaimName,
    /// The groups claim is only available as a distributed claim.
    #[error(
        "the token's {0} claim is a distributed claim (_claim_names); gatehouse does not fetch distributed claims, so it cannot make the user the cluster would"
    )]
    DistributedClaim(String),
    /// An expression failed or gave a value of the wrong type.
    #[error("the {what} expression '{expression}' {problem}")]
    Expression {
        /// Which mapping or rule.
        what: &'static str,
        /// The expression's source.
        expression: String,
        /// What went wrong.
        problem: String,
    },
    /// A claim validation rule with `claim` and `requiredValue` does not hold.
    #[error("the token's {claim} claim does not have the required value")]
    RequiredClaim {
        /// The claim.
        claim: String,
    },
    /// A validation rule's expression is false.
    #[error("validation expression '{expression}' failed: {message}")]
    RuleFailed {
        /// The expression.
        expression: String,
        /// The rule's message.
        message: String,
    },
}

impl Authenticator {
    /// Makes the user from verified `claims`, or says why the kube-apiserver would refuse.
    pub fn user(
        &self,
        env: &Environment,
        claims: &Map<String, Json>,
    ) -> Result<UserInfo, MappingError> {
        if self.uses_cel()
            && claims
                .iter()
                .any(|(k, v)| value::is_escaped_name(k) || value::has_escaped_key(v))
        {
            return Err(MappingError::EscapedClaimName);
        }
        let input = Input::new(claims);
        let username = self.username(env, &input)?;
        let groups = self.groups(env, &input)?;
        let uid = self.uid(env, &input)?;
        let extra = self.extra(env, &input)?;
        self.check_claims(env, &input)?;
        let user = UserInfo {
            username,
            uid,
            groups,
            extra,
        };
        self.check_user(env, &user)?;
        Ok(user)
    }

    /// Whether any mapping or rule is a CEL expression.
    fn uses_cel(&self) -> bool {
        matches!(self.mapping.username, PrefixedMapping::Expression(_))
            || matches!(self.mapping.groups, PrefixedMapping::Expression(_))
            || matches!(self.mapping.uid, UidMapping::Expression(_))
            || !self.mapping.extra.is_empty()
            || !self.user_rules.is_empty()
            || self
                .claim_rules
                .iter()
                .any(|r| matches!(r, ClaimRule::Expression { .. }))
    }

    fn username(&self, env: &Environment, input: &Input<'_>) -> Result<String, MappingError> {
        match &self.mapping.username {
            PrefixedMapping::Expression(e) => match input.eval(env, e, "username claim")? {
                cel::Value::String(s) if !s.is_empty() => Ok(s.as_ref().clone()),
                cel::Value::String(_) => Err(expression_error(
                    "username claim",
                    e,
                    "gave an empty username, which is not allowed",
                )),
                _ => Err(expression_error(
                    "username claim",
                    e,
                    "must return a string",
                )),
            },
            PrefixedMapping::Claim { claim, prefix } => {
                let name = string_claim(input.claims, claim)?;
                if claim == "email" {
                    match input.claims.get("email_verified") {
                        None | Some(Json::Bool(true)) => {}
                        Some(Json::Bool(false) | Json::Null) => {
                            return Err(MappingError::EmailNotVerified);
                        }
                        Some(_) => {
                            return Err(MappingError::Claim {
                                claim: "email_verified".to_owned(),
                                problem: "is not a boolean",
                            });
                        }
                    }
                }
                Ok(format!("{prefix}{name}"))
            }
            // Validation requires a username mapping; a missing one refuses every token.
            PrefixedMapping::None => Err(MappingError::Claim {
                claim: "username".to_owned(),
                problem: "has no mapping",
            }),
        }
    }

    fn groups(&self, env: &Environment, input: &Input<'_>) -> Result<Vec<String>, MappingError> {
        match &self.mapping.groups {
            PrefixedMapping::None => Ok(Vec::new()),
            PrefixedMapping::Claim { claim, prefix } => {
                let groups = match input.claims.get(claim) {
                    None => {
                        if is_distributed(input.claims, claim) {
                            return Err(MappingError::DistributedClaim(claim.clone()));
                        }
                        return Ok(Vec::new());
                    }
                    Some(Json::Null) => Vec::new(),
                    Some(Json::String(s)) => vec![s.clone()],
                    Some(Json::Array(items)) => items
                        .iter()
                        .map(|v| match v {
                            Json::String(s) => Ok(s.clone()),
                            // Go's JSON decoding of null into a string leaves it empty.
                            Json::Null => Ok(String::new()),
                            _ => Err(MappingError::Claim {
                                claim: claim.clone(),
                                problem: "is not a string or a list of strings",
                            }),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => {
                        return Err(MappingError::Claim {
                            claim: claim.clone(),
                            problem: "is not a string or a list of strings",
                        });
                    }
                };
                Ok(groups.into_iter().map(|g| format!("{prefix}{g}")).collect())
            }
            PrefixedMapping::Expression(e) => {
                let v = input.eval_strings(env, e, "group claim")?;
                string_list(&v).ok_or_else(|| {
                    expression_error(
                        "group claim",
                        e,
                        "must return a string or a list of strings",
                    )
                })
            }
        }
    }

    fn uid(&self, env: &Environment, input: &Input<'_>) -> Result<String, MappingError> {
        match &self.mapping.uid {
            UidMapping::None => Ok(String::new()),
            UidMapping::Claim(claim) => string_claim(input.claims, claim),
            UidMapping::Expression(e) => match input.eval(env, e, "uid claim")? {
                cel::Value::String(s) => Ok(s.as_ref().clone()),
                _ => Err(expression_error("uid claim", e, "must return a string")),
            },
        }
    }

    fn extra(
        &self,
        env: &Environment,
        input: &Input<'_>,
    ) -> Result<BTreeMap<String, Vec<String>>, MappingError> {
        let mut extra = BTreeMap::new();
        // The kube-apiserver's CredentialIDForJTI gives nothing for an empty jti.
        if let Some(Json::String(jti)) = input.claims.get("jti")
            && !jti.is_empty()
        {
            extra.insert(CREDENTIAL_ID_KEY.to_owned(), vec![format!("JTI={jti}")]);
        }
        for mapping in &self.mapping.extra {
            let v = input.eval_strings(env, &mapping.expression, "extra claim")?;
            let values = string_list(&v).ok_or_else(|| {
                expression_error(
                    "extra claim",
                    &mapping.expression,
                    "must return a string or a list of strings",
                )
            })?;
            if !values.is_empty() {
                extra.insert(mapping.key.clone(), values);
            }
        }
        Ok(extra)
    }

    fn check_claims(&self, env: &Environment, input: &Input<'_>) -> Result<(), MappingError> {
        for rule in &self.claim_rules {
            match rule {
                ClaimRule::Required { claim, value } => {
                    if string_claim(input.claims, claim)? != *value {
                        return Err(MappingError::RequiredClaim {
                            claim: claim.clone(),
                        });
                    }
                }
                ClaimRule::Expression {
                    expression,
                    message,
                } => check_rule(
                    input.eval(env, expression, "claim validation")?,
                    expression,
                    message,
                    "claim validation",
                )?,
            }
        }
        Ok(())
    }

    fn check_user(&self, env: &Environment, user: &UserInfo) -> Result<(), MappingError> {
        if self.user_rules.is_empty() {
            return Ok(());
        }
        let input = value::user(&user.username, &user.uid, &user.groups, &user.extra);
        let mut size = [
            user.username.len(),
            user.uid.len(),
            user.groups.len(),
            user.extra.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        for g in user.groups.iter().chain(user.extra.values().flatten()) {
            size = size.max(g.len());
        }
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        for rule in &self.user_rules {
            let v = env
                .eval(&rule.expression, &input, size)
                .map_err(|e| eval_error("user validation", &rule.expression, &e))?;
            check_rule(v, &rule.expression, &rule.message, "user validation")?;
        }
        Ok(())
    }
}

/// The claims, converted to a CEL value once (only when an expression needs them).
struct Input<'a> {
    claims: &'a Map<String, Json>,
    value: std::cell::OnceCell<(cel::Value, u64)>,
}

impl<'a> Input<'a> {
    fn new(claims: &'a Map<String, Json>) -> Self {
        Self {
            claims,
            value: std::cell::OnceCell::new(),
        }
    }

    fn eval(
        &self,
        env: &Environment,
        e: &Expression,
        what: &'static str,
    ) -> Result<cel::Value, MappingError> {
        let (value, size) = self.value();
        env.eval(e, value, size)
            .map_err(|err| eval_error(what, e, &err))
    }

    /// [`Input::eval`] for a value the kube-apiserver converts to a list of strings.
    fn eval_strings(
        &self,
        env: &Environment,
        e: &Expression,
        what: &'static str,
    ) -> Result<cel::Value, MappingError> {
        let (value, size) = self.value();
        env.eval_strings(e, value, size)
            .map_err(|err| eval_error(what, e, &err))
    }

    fn value(&self) -> (&cel::Value, u64) {
        let (value, size) = self.value.get_or_init(|| {
            (
                value::from_claims(self.claims),
                value::claims_size(self.claims),
            )
        });
        (value, *size)
    }
}

fn check_rule(
    v: cel::Value,
    e: &Expression,
    message: &str,
    what: &'static str,
) -> Result<(), MappingError> {
    match v {
        cel::Value::Bool(true) => Ok(()),
        cel::Value::Bool(false) => Err(MappingError::RuleFailed {
            expression: e.source().to_owned(),
            message: message.to_owned(),
        }),
        _ => Err(expression_error(what, e, "must return a boolean")),
    }
}

fn expression_error(what: &'static str, e: &Expression, problem: &str) -> MappingError {
    MappingError::Expression {
        what,
        expression: e.source().to_owned(),
        problem: problem.to_owned(),
    }
}

fn eval_error(what: &'static str, e: &Expression, err: &EvalError) -> MappingError {
    expression_error(what, e, &format!("resulted in error: {err}"))
}

/// A claim Go decodes into a string: a JSON string, or `null` (left empty).
fn string_claim(claims: &Map<String, Json>, claim: &str) -> Result<String, MappingError> {
    match claims.get(claim) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(Json::Null) => Ok(String::new()),
        None => Err(MappingError::Claim {
            claim: claim.to_owned(),
            problem: "is not present",
        }),
        Some(_) => Err(MappingError::Claim {
            claim: claim.to_owned(),
            problem: "is not a string",
        }),
    }
}

/// Whether `claim` is named in the token's `_claim_names` (OIDC Core 5.6.2).
fn is_distributed(claims: &Map<String, Json>, claim: &str) -> bool {
    matches!(claims.get("_claim_names"), Some(Json::Object(names)) if names.contains_key(claim))
}

/// The kube-apiserver's `convertCELValueToStringList`: a string (empty: none), a list of
/// strings (empty ones dropped), or null (none).
fn string_list(v: &cel::Value) -> Option<Vec<String>> {
    match v {
        cel::Value::String(s) if s.is_empty() => Some(Vec::new()),
        cel::Value::String(s) => Some(vec![s.as_ref().clone()]),
        cel::Value::Null => Some(Vec::new()),
        cel::Value::List(items) => items
            .iter()
            .filter_map(|item| match item {
                cel::Value::String(s) if s.is_empty() => None,
                cel::Value::String(s) => Some(Some(s.as_ref().clone())),
                _ => Some(None),
            })
            .collect(),
        _ => None,
    }
}
