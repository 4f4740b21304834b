//! The JSON bodies of gatehouse's own HTTP API, defined once for the side that writes them (the
//! server) and the sides that read them (the CLI, `gatehouse doctor`).
//!
//! | Endpoint | Body |
//! |---|---|
//! | `GET /v1/config` | [`PublicConfig`] |
//! | `GET /v1/whoami` | [`WhoAmI`] |
//! | `POST /v1/admin/login` | [`AdminLoginRequest`] in, [`AdminLoginResponse`] out |
//!
//! [`oauth`] has the IdP's token endpoint answers, which the server (browser sign-in) and the
//! CLI both read.
//!
//! docs/api.md describes these shapes for people; the tests below hold each type to the exact
//! JSON the server sent before these types existed, so the wire does not change by accident.
//! Member order inside an object is not part of the contract (JSON objects are unordered).
//!
//! # Compatibility
//! A CLI is often older or newer than the server it talks to, so reading is tolerant:
//! - unknown fields are ignored (no type here denies them), so an older CLI reads a newer
//!   server's answer;
//! - a field added after the first release is `#[serde(default)]` (or an `Option`), so a newer
//!   CLI reads an older server's answer; only what every gatehouse has always sent and what a
//!   sign-in cannot do without is required (`oidc.issuerUrl`, `oidc.cliClientId`), and a body
//!   without it is not a gatehouse's (the CLI says to check the URL);
//! - an `authenticatedBy` or `kubernetes.via` this CLI does not know reads as
//!   [`WhoAmI::Unknown`] / [`KubernetesAccess::Unknown`] instead of failing.
//!
//! # Security
//! [`PublicConfig`] is public and holds no secret. The admin password and token are
//! [`secrecy::SecretString`] / [`BearerToken`]: their `Debug` is redacted, and reading them
//! takes an explicit `expose_secret()`.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::token::BearerToken;

pub mod oauth;

/// `GET /v1/config`: what a CLI or UI needs to sign in. Public; holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicConfig {
    /// `publicUrl`: the URL gatehouse is reached at, when configured (`null` otherwise).
    #[serde(default)]
    pub public_url: Option<String>,
    /// `oidc`: the OIDC settings, `null` when gatehouse has no OIDC issuer.
    #[serde(default)]
    pub oidc: Option<PublicOidc>,
    /// `adminEnabled`: whether `POST /v1/admin/login` is enabled.
    #[serde(default)]
    pub admin_enabled: bool,
    /// `fallThrough`: whether tokens gatehouse does not map are forwarded for Kubernetes to
    /// judge.
    #[serde(default)]
    pub fall_through: bool,
    /// `issuers`: the issuers of the `AuthenticationConfiguration`, in the file's order
    /// (absent from servers without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<PublicIssuer>,
}

/// One issuer of the `AuthenticationConfiguration`, in [`PublicConfig::issuers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PublicIssuer {
    /// `url`: `issuer.url`, exactly.
    pub url: String,
    /// `name`: its name for people, when configured.
    pub name: Option<String>,
    /// `audiences`: `issuer.audiences` (any of them is accepted).
    pub audiences: Vec<String>,
    /// `whenUnmapped`: `fallThrough`, `impersonate` or `deny`.
    pub when_unmapped: String,
    /// `ready`: whether gatehouse has loaded its discovery document and keys.
    pub ready: bool,
}

impl PublicIssuer {
    /// The name for people: `name`, else the URL.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.url)
    }
}

/// The `oidc` part of [`PublicConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicOidc {
    /// `issuerUrl`, exactly as configured (tokens' `iss` must equal it byte for byte).
    pub issuer_url: String,
    /// `clientId`: the web (server) client ID. Always sent; optional for reading.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `cliClientId`: the client ID the CLI signs in with (`clientId` when not configured).
    pub cli_client_id: String,
    /// `scopes`: every scope to request, `openid profile email` first.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `audiences`: audiences gatehouse accepts besides the client IDs.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `usernameClaim`: the claim gatehouse uses as username. Always sent; optional for
    /// reading.
    #[serde(default)]
    pub username_claim: Option<String>,
    /// `tokenType`: `id_token` or `access_token`, which token the CLI hands to kubectl. Always
    /// sent; absent from servers older than the setting (then `id_token`).
    #[serde(default)]
    pub token_type: Option<String>,
    /// `additionalParameters`: static authorization-request parameters.
    #[serde(default)]
    pub additional_parameters: BTreeMap<String, String>,
    /// `userParameters`: parameters a user may set per sign-in, by name.
    #[serde(default)]
    pub user_parameters: BTreeMap<String, UserParameter>,
}

/// One entry of [`PublicOidc::user_parameters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserParameter {
    /// `pattern`: the pattern the whole value must match (as configured, unanchored), or
    /// `null` for any value.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// `GET /v1/whoami`: who the caller is (`authenticatedBy` says how they were authenticated),
/// and how their requests reach Kubernetes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "authenticatedBy")]
pub enum WhoAmI {
    /// `"admin"`: gatehouse's own admin token.
    #[serde(rename = "admin")]
    Admin(AdminWhoAmI),
    /// `"oidc"`: a token of the configured OIDC issuer.
    #[serde(rename = "oidc")]
    Oidc(Box<OidcWhoAmI>),
    /// `"fallThrough"`: a token gatehouse does not verify, forwarded for Kubernetes to judge.
    #[serde(rename = "fallThrough")]
    FallThrough(FallThroughWhoAmI),
    /// A kind this CLI does not know (a newer server). Never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// [`WhoAmI::Admin`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdminWhoAmI {
    /// `username`: the admin token's subject.
    pub username: String,
    /// `issuer`: the admin token issuer.
    pub issuer: String,
    /// `expiresAt`: RFC 3339.
    pub expires_at: String,
    /// `kubernetes`: always [`Impersonation::User`], the configured `admin.impersonate`.
    pub kubernetes: KubernetesAccess,
}

/// [`WhoAmI::Oidc`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OidcWhoAmI {
    /// `username`: the configured username claim, or `sub`.
    pub username: String,
    /// `subject`: `sub`.
    pub subject: String,
    /// `issuer`: `iss`.
    pub issuer: String,
    /// `groups`.
    pub groups: Vec<String>,
    /// `audiences`: `aud`.
    pub audiences: Vec<String>,
    /// `authorizedParty`: `azp`, `null` when the token has none.
    pub authorized_party: Option<String>,
    /// `expiresAt`: RFC 3339.
    pub expires_at: String,
    /// `claims`: the claims mapping may use (an unverified `email` is left out).
    pub claims: Map<String, Value>,
    /// `emailWithheld`: why the token's `email` was left out of `claims`, `null` when it was
    /// not.
    pub email_withheld: Option<String>,
    /// `serviceAccounts`: the ServiceAccounts the claims map to, `namespace/name`.
    pub service_accounts: Vec<String>,
    /// `kubernetes`: how the requests reach the cluster.
    pub kubernetes: KubernetesAccess,
    /// `issuerName`: the issuer's name (`authentication.issuers[].name`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_name: Option<String>,
    /// `uid`: the uid the claim mappings of an `AuthenticationConfiguration` issuer made
    /// (absent for the `oidc` issuer and when they make none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `extra`: the extra the claim mappings made (absent when none).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// [`WhoAmI::FallThrough`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FallThroughWhoAmI {
    /// `serviceAccounts`: always empty.
    pub service_accounts: Vec<String>,
    /// `kubernetes`: always [`KubernetesAccess::FallThrough`].
    pub kubernetes: KubernetesAccess,
}

/// `kubernetes` in [`WhoAmI`]: how the caller's requests reach the kube-apiserver (`via`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via")]
pub enum KubernetesAccess {
    /// `"impersonation"`: with gatehouse's credential, impersonating someone.
    #[serde(rename = "impersonation")]
    Impersonation(Impersonation),
    /// `"fallThrough"`: with the caller's own token.
    #[serde(rename = "fallThrough")]
    FallThrough {
        /// `review`: what the kube-apiserver makes of the token (`SelfSubjectReview`), or
        /// `null` when its answer had no user.
        review: Option<Review>,
    },
    /// `"none"`: not at all (no ServiceAccount mapped, fall-through disabled).
    #[serde(rename = "none")]
    Unmapped {
        /// `message`: why.
        message: String,
    },
    /// A `via` this CLI does not know (a newer server), or none. Never sent.
    #[default]
    #[serde(other, skip_serializing)]
    Unknown,
}

/// Whom gatehouse impersonates ([`KubernetesAccess::Impersonation`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Impersonation {
    /// A mapped OIDC user: the ServiceAccounts their claims map to, `namespace/name` (one is
    /// chosen per request).
    ServiceAccounts {
        /// `serviceAccounts`.
        #[serde(rename = "serviceAccounts")]
        service_accounts: Vec<String>,
    },
    /// The admin: the configured user and groups.
    User {
        /// `username`.
        username: Option<String>,
        /// `groups`.
        groups: Option<Vec<String>>,
    },
}

/// The kube-apiserver's answer to gatehouse's `SelfSubjectReview` with the caller's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Review {
    /// The review failed: `{"error": "..."}`.
    Error {
        /// `error`: the kube-apiserver's message, or why gatehouse could not ask.
        error: String,
    },
    /// `status.userInfo` of the answer.
    User(UserInfo),
}

/// Kubernetes' `UserInfo` (`authentication.k8s.io/v1`): who the kube-apiserver says the token
/// is. Fields it does not send are not sent on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// `extra`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<BTreeMap<String, Vec<String>>>,
}

impl WhoAmI {
    /// `authenticatedBy` as sent; `None` for a kind this CLI does not know.
    pub fn authenticated_by(&self) -> Option<&'static str> {
        match self {
            Self::Admin(_) => Some("admin"),
            Self::Oidc(_) => Some("oidc"),
            Self::FallThrough(_) => Some("fallThrough"),
            Self::Unknown => None,
        }
    }

    /// gatehouse's username for the caller (admin and OIDC users; a fall-through token has
    /// none, see [`WhoAmI::kubernetes_username`]).
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::Admin(a) => Some(&a.username),
            Self::Oidc(o) => Some(&o.username),
            Self::FallThrough(_) | Self::Unknown => None,
        }
    }

    /// gatehouse's username, else the kube-apiserver's for a fall-through token.
    pub fn kubernetes_username(&self) -> Option<&str> {
        self.username().or_else(|| {
            self.kubernetes()
                .and_then(KubernetesAccess::reviewed_username)
        })
    }

    /// The OIDC user's groups (`None` for other kinds, which have no `groups`).
    pub fn groups(&self) -> Option<&[String]> {
        match self {
            Self::Oidc(o) => Some(&o.groups),
            _ => None,
        }
    }

    /// `serviceAccounts`: what an OIDC user's claims map to; empty for the other kinds.
    pub fn service_accounts(&self) -> &[String] {
        match self {
            Self::Oidc(o) => &o.service_accounts,
            Self::FallThrough(f) => &f.service_accounts,
            Self::Admin(_) | Self::Unknown => &[],
        }
    }

    /// `kubernetes`.
    pub fn kubernetes(&self) -> Option<&KubernetesAccess> {
        match self {
            Self::Admin(a) => Some(&a.kubernetes),
            Self::Oidc(o) => Some(&o.kubernetes),
            Self::FallThrough(f) => Some(&f.kubernetes),
            Self::Unknown => None,
        }
    }
}

impl KubernetesAccess {
    /// The username of a successful fall-through review.
    pub fn reviewed_username(&self) -> Option<&str> {
        match self {
            Self::FallThrough {
                review: Some(Review::User(u)),
            } => u.username.as_deref(),
            _ => None,
        }
    }
}

/// `POST /v1/admin/login` request body: `{"password": "..."}`. `Debug` is redacted.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdminLoginRequest {
    /// `password`.
    #[serde(with = "secret_string")]
    pub password: SecretString,
}

/// `POST /v1/admin/login` answer: `{"token": "...", "expiresAt": "..."}`. `Debug` redacts the
/// token.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminLoginResponse {
    /// `token`: the admin token, a JWT of gatehouse's own issuer.
    #[serde(with = "bearer_token")]
    pub token: BearerToken,
    /// `expiresAt`: RFC 3339.
    pub expires_at: String,
}

/// Serde for [`SecretString`] without secrecy's `serde` feature (whose `Serialize` is
/// deliberately unavailable for strings): a plain JSON string on the wire.
mod secret_string {
    use secrecy::{ExposeSecret as _, SecretString};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(s.expose_secret())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }
}

/// Serde for [`BearerToken`]: a plain JSON string on the wire.
mod bearer_token {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::token::BearerToken;

    pub fn serialize<S: Serializer>(t: &BearerToken, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(t.expose_secret())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BearerToken, D::Error> {
        String::deserialize(d).map(BearerToken::new)
    }
}

#[cfg(test)]
mod tests;
