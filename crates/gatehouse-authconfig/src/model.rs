//! The file's types: `AuthenticationConfiguration` of `apiserver.config.k8s.io/v1` (and its
//! `v1beta1` and `v1alpha1` spellings, which the kube-apiserver still reads), field for field as
//! k8s.io/apiserver v0.34 declares them (`pkg/apis/apiserver/v1/types.go`).
//!
//! The kube-apiserver decodes this file strictly: an unknown or duplicated field is an error,
//! and field names are case-sensitive. serde does the same here (`deny_unknown_fields`, exact
//! names), so a file one of them refuses the other refuses too. Strings the Go types leave
//! empty by `omitempty` are empty strings here; `*string` (only `prefix`) is an `Option`, since
//! the kube-apiserver tells an absent prefix from an empty one.

use serde::Deserialize;

/// The `apiVersion`s the kube-apiserver reads this kind in.
pub const API_VERSIONS: [&str; 3] = [
    "apiserver.config.k8s.io/v1",
    "apiserver.config.k8s.io/v1beta1",
    "apiserver.config.k8s.io/v1alpha1",
];

/// The kind.
pub const KIND: &str = "AuthenticationConfiguration";

/// `AuthenticationConfiguration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticationConfiguration {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `jwt`: the JWT authenticators, tried by issuer.
    #[serde(default)]
    pub jwt: Vec<JwtAuthenticator>,
    /// `anonymous`: the kube-apiserver's anonymous authenticator. Read and validated as the
    /// kube-apiserver does; it does not apply to gatehouse, which never lets an anonymous
    /// request through as anyone but the caller's own credential.
    #[serde(default)]
    pub anonymous: Option<AnonymousAuthConfig>,
}

/// `anonymous`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnonymousAuthConfig {
    /// `enabled`.
    #[serde(default)]
    pub enabled: bool,
    /// `conditions`.
    #[serde(default)]
    pub conditions: Vec<AnonymousAuthCondition>,
}

/// `anonymous.conditions[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnonymousAuthCondition {
    /// `path`.
    #[serde(default)]
    pub path: String,
}

/// `jwt[]`: one JWT authenticator (one issuer).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtAuthenticator {
    /// `issuer`.
    pub issuer: Issuer,
    /// `claimValidationRules`.
    #[serde(default)]
    pub claim_validation_rules: Vec<ClaimValidationRule>,
    /// `claimMappings`.
    pub claim_mappings: ClaimMappings,
    /// `userValidationRules`.
    #[serde(default)]
    pub user_validation_rules: Vec<UserValidationRule>,
}

/// `jwt[].issuer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Issuer {
    /// `url`: must equal the token's `iss` and discovery's `issuer`.
    #[serde(default)]
    pub url: String,
    /// `discoveryURL`: where discovery is read instead of `{url}/.well-known/openid-configuration`.
    #[serde(default, rename = "discoveryURL")]
    pub discovery_url: Option<String>,
    /// `certificateAuthority`: PEM certificates for the connection to discovery and keys.
    #[serde(default)]
    pub certificate_authority: String,
    /// `audiences`: at least one must be in the token's `aud`.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `audienceMatchPolicy`: empty, or `MatchAny`.
    #[serde(default)]
    pub audience_match_policy: String,
    /// `egressSelectorType`: `controlplane` or `cluster`. Validated as the kube-apiserver does;
    /// not applicable to gatehouse, which has no egress selector (it connects directly).
    #[serde(default)]
    pub egress_selector_type: String,
}

/// `jwt[].claimValidationRules[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimValidationRule {
    /// `claim`: a string claim that must equal `requiredValue`.
    #[serde(default)]
    pub claim: String,
    /// `requiredValue`.
    #[serde(default)]
    pub required_value: String,
    /// `expression`: CEL over `claims`, must be true.
    #[serde(default)]
    pub expression: String,
    /// `message`: said when `expression` is false.
    #[serde(default)]
    pub message: String,
}

/// `jwt[].claimMappings`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimMappings {
    /// `username`.
    pub username: PrefixedClaimOrExpression,
    /// `groups`.
    #[serde(default)]
    pub groups: PrefixedClaimOrExpression,
    /// `uid`.
    #[serde(default)]
    pub uid: ClaimOrExpression,
    /// `extra`.
    #[serde(default)]
    pub extra: Vec<ExtraMapping>,
}

/// `username` and `groups`: a claim with a prefix, or an expression.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrefixedClaimOrExpression {
    /// `claim`.
    #[serde(default)]
    pub claim: String,
    /// `prefix`: required with `claim` (may be empty).
    #[serde(default)]
    pub prefix: Option<String>,
    /// `expression`.
    #[serde(default)]
    pub expression: String,
}

/// `uid`: a claim or an expression.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimOrExpression {
    /// `claim`.
    #[serde(default)]
    pub claim: String,
    /// `expression`.
    #[serde(default)]
    pub expression: String,
}

/// `extra[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtraMapping {
    /// `key`: a lowercase domain-prefixed path (`example.org/team`).
    #[serde(default)]
    pub key: String,
    /// `valueExpression`: CEL giving a string or a list of strings.
    #[serde(default)]
    pub value_expression: String,
}

/// `jwt[].userValidationRules[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserValidationRule {
    /// `expression`: CEL over `user`, must be true.
    #[serde(default)]
    pub expression: String,
    /// `message`.
    #[serde(default)]
    pub message: String,
}
