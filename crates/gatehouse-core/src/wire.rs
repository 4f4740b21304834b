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
    Oidc(OidcWhoAmI),
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
mod tests {
    use secrecy::ExposeSecret as _;
    use serde_json::json;

    use super::*;

    /// The JSON of `value`, for comparison with what the server sent before these types: as a
    /// `Value`, since member order is not part of the contract.
    fn wire<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    fn oidc() -> PublicOidc {
        PublicOidc {
            issuer_url: "https://idp.example/dex".into(),
            client_id: Some("gatehouse".into()),
            cli_client_id: "gatehouse-cli".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            audiences: vec!["kubernetes".into()],
            username_claim: Some("email".into()),
            token_type: Some("id_token".into()),
            additional_parameters: BTreeMap::from([("connector_id".into(), "local".into())]),
            user_parameters: BTreeMap::from([
                (
                    "login_hint".into(),
                    UserParameter {
                        pattern: Some(".+@example\\.com".into()),
                    },
                ),
                ("prompt".into(), UserParameter { pattern: None }),
            ]),
        }
    }

    #[test]
    fn public_config_is_the_json_the_server_sent_before() {
        let config = PublicConfig {
            public_url: Some("https://gh.example/".into()),
            oidc: Some(oidc()),
            admin_enabled: true,
            fall_through: false,
        };
        // What api.rs built with json! before these types.
        let before = json!({
            "publicUrl": "https://gh.example/",
            "oidc": {
                "issuerUrl": "https://idp.example/dex",
                "clientId": "gatehouse",
                "cliClientId": "gatehouse-cli",
                "scopes": ["openid", "profile", "email"],
                "audiences": ["kubernetes"],
                "usernameClaim": "email",
                "tokenType": "id_token",
                "additionalParameters": {"connector_id": "local"},
                "userParameters": {
                    "login_hint": {"pattern": ".+@example\\.com"},
                    "prompt": {"pattern": null},
                },
            },
            "adminEnabled": true,
            "fallThrough": false,
        });
        assert_eq!(wire(&config), before);
        let back: PublicConfig = serde_json::from_value(before).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn public_config_without_oidc_or_public_url_sends_nulls() {
        let config = PublicConfig {
            public_url: None,
            oidc: None,
            admin_enabled: false,
            fall_through: true,
        };
        // Sent as nulls, not left out.
        let sent = wire(&config);
        assert_eq!(
            sent,
            json!({"publicUrl": null, "oidc": null, "adminEnabled": false, "fallThrough": true})
        );
        assert!(sent["oidc"].is_null() && sent.get("oidc").is_some());
    }

    #[test]
    fn public_config_reads_a_newer_server_and_an_older_one() {
        // A newer server: fields this CLI does not know are ignored.
        let newer: PublicConfig = serde_json::from_value(json!({
            "publicUrl": null,
            "oidc": {"issuerUrl": "https://idp", "cliClientId": "cli", "clientId": "web",
                     "somethingNew": {"x": 1}},
            "adminEnabled": true, "fallThrough": false, "issuers": []
        }))
        .unwrap();
        assert!(newer.admin_enabled);
        assert_eq!(newer.oidc.as_ref().unwrap().cli_client_id, "cli");
        // An older server: no tokenType, userParameters, usernameClaim, audiences.
        let older: PublicConfig = serde_json::from_value(json!({
            "oidc": {"issuerUrl": "https://idp", "cliClientId": "cli", "scopes": ["openid"],
                     "additionalParameters": {}},
        }))
        .unwrap();
        let o = older.oidc.unwrap();
        assert_eq!(o.token_type, None);
        assert!(o.user_parameters.is_empty() && o.audiences.is_empty());
        assert!(!older.admin_enabled && !older.fall_through);
    }

    #[test]
    fn public_config_without_what_a_sign_in_needs_is_refused_naming_the_field() {
        let e = serde_json::from_value::<PublicConfig>(json!({"oidc": {"cliClientId": "cli"}}))
            .unwrap_err();
        assert!(e.to_string().contains("issuerUrl"), "{e}");
        let e = serde_json::from_value::<PublicConfig>(json!({"oidc": {"issuerUrl": "https://i"}}))
            .unwrap_err();
        assert!(e.to_string().contains("cliClientId"), "{e}");
    }

    fn admin() -> WhoAmI {
        WhoAmI::Admin(AdminWhoAmI {
            username: "admin".into(),
            issuer: "gatehouse-admin".into(),
            expires_at: "2026-01-01T00:00:00Z".into(),
            kubernetes: KubernetesAccess::Impersonation(Impersonation::User {
                username: Some("gatehouse:admin".into()),
                groups: Some(vec!["system:masters".into()]),
            }),
        })
    }

    fn oidc_user(kubernetes: KubernetesAccess, mapped: Vec<String>) -> WhoAmI {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("alice-sub"));
        claims.insert("groups".into(), json!(["devs"]));
        WhoAmI::Oidc(OidcWhoAmI {
            username: "alice@example.com".into(),
            subject: "alice-sub".into(),
            issuer: "https://idp".into(),
            groups: vec!["devs".into()],
            audiences: vec!["gatehouse".into(), "kubernetes".into()],
            authorized_party: None,
            expires_at: "2026-01-01T00:00:00Z".into(),
            claims,
            email_withheld: Some("its email claim is not used".into()),
            service_accounts: mapped,
            kubernetes,
        })
    }

    /// What api.rs built with json! for an OIDC user, with `kubernetes` and `mapped` as given.
    fn oidc_before(kubernetes: Value, mapped: Value) -> Value {
        json!({
            "authenticatedBy": "oidc",
            "username": "alice@example.com",
            "subject": "alice-sub",
            "issuer": "https://idp",
            "groups": ["devs"],
            "audiences": ["gatehouse", "kubernetes"],
            "authorizedParty": null,
            "expiresAt": "2026-01-01T00:00:00Z",
            "claims": {"sub": "alice-sub", "groups": ["devs"]},
            "emailWithheld": "its email claim is not used",
            "serviceAccounts": mapped,
            "kubernetes": kubernetes,
        })
    }

    #[test]
    fn whoami_of_the_admin_is_the_json_the_server_sent_before() {
        let before = json!({
            "authenticatedBy": "admin",
            "username": "admin",
            "issuer": "gatehouse-admin",
            "expiresAt": "2026-01-01T00:00:00Z",
            "kubernetes": {
                "username": "gatehouse:admin",
                "groups": ["system:masters"],
                "via": "impersonation",
            },
        });
        assert_eq!(wire(&admin()), before);
        assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), admin());
        // Without admin settings (not reachable: no admin token verifies then) the server sent
        // nulls, and still does.
        let bare = KubernetesAccess::Impersonation(Impersonation::User {
            username: None,
            groups: None,
        });
        assert_eq!(
            wire(&bare),
            json!({"username": null, "groups": null, "via": "impersonation"})
        );
    }

    #[test]
    fn whoami_of_a_mapped_user_is_the_json_the_server_sent_before() {
        let mapped = vec!["team-a/deployer".to_owned(), "team-b/viewer".to_owned()];
        let who = oidc_user(
            KubernetesAccess::Impersonation(Impersonation::ServiceAccounts {
                service_accounts: mapped.clone(),
            }),
            mapped,
        );
        let before = oidc_before(
            json!({"via": "impersonation", "serviceAccounts": ["team-a/deployer", "team-b/viewer"]}),
            json!(["team-a/deployer", "team-b/viewer"]),
        );
        assert_eq!(wire(&who), before);
        assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), who);
        assert_eq!(who.service_accounts().len(), 2);
        assert_eq!(who.kubernetes_username(), Some("alice@example.com"));
    }

    #[test]
    fn whoami_of_an_unmapped_user_is_the_json_the_server_sent_before() {
        let none = KubernetesAccess::Unmapped {
            message: "maps to no ServiceAccount and fall-through is disabled".into(),
        };
        let before = oidc_before(
            json!({"via": "none", "message": "maps to no ServiceAccount and fall-through is disabled"}),
            json!([]),
        );
        let who = oidc_user(none, vec![]);
        assert_eq!(wire(&who), before);
        assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), who);
    }

    #[test]
    fn whoami_by_fall_through_is_the_json_the_server_sent_before() {
        let user = UserInfo {
            username: Some("bob".into()),
            uid: None,
            groups: Some(vec!["system:authenticated".into()]),
            extra: None,
        };
        // Each review the server could send: the userInfo as the kube-apiserver wrote it, an
        // error, or null.
        for (review, review_before) in [
            (
                Some(Review::User(user.clone())),
                json!({"username": "bob", "groups": ["system:authenticated"]}),
            ),
            (
                Some(Review::Error {
                    error: "cannot reach the kube-apiserver: refused".into(),
                }),
                json!({"error": "cannot reach the kube-apiserver: refused"}),
            ),
            (None, Value::Null),
        ] {
            let kubernetes = KubernetesAccess::FallThrough {
                review: review.clone(),
            };
            let before = json!({
                "authenticatedBy": "fallThrough",
                "serviceAccounts": [],
                "kubernetes": { "via": "fallThrough", "review": review_before.clone() },
            });
            let who = WhoAmI::FallThrough(FallThroughWhoAmI {
                service_accounts: vec![],
                kubernetes: kubernetes.clone(),
            });
            assert_eq!(wire(&who), before);
            assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), who);
            // An OIDC user who maps to nothing falls through with the same view.
            let mapped_to_nothing = oidc_user(kubernetes, vec![]);
            assert_eq!(
                wire(&mapped_to_nothing),
                oidc_before(
                    json!({"via": "fallThrough", "review": review_before}),
                    json!([])
                )
            );
        }
        let who = WhoAmI::FallThrough(FallThroughWhoAmI {
            service_accounts: vec![],
            kubernetes: KubernetesAccess::FallThrough {
                review: Some(Review::User(user)),
            },
        });
        assert_eq!(who.username(), None);
        assert_eq!(who.kubernetes_username(), Some("bob"));
    }

    #[test]
    fn a_review_user_info_keeps_the_fields_kubernetes_sent() {
        let sent = json!({"username": "system:serviceaccount:a:b", "uid": "u-1",
                          "groups": ["system:serviceaccounts"],
                          "extra": {"authentication.kubernetes.io/pod-name": ["p"]}});
        let review: Review = serde_json::from_value(sent.clone()).unwrap();
        assert!(matches!(&review, Review::User(u) if u.uid.as_deref() == Some("u-1")));
        assert_eq!(wire(&review), sent);
    }

    #[test]
    fn whoami_reads_a_newer_server() {
        // Unknown fields are ignored; an unknown kind or `via` reads as Unknown.
        let who: WhoAmI = serde_json::from_value(json!({
            "authenticatedBy": "oidc", "username": "alice", "sessionId": "x",
            "kubernetes": {"via": "impersonation", "serviceAccounts": ["a/b"], "cluster": "c"}
        }))
        .unwrap();
        assert_eq!(who.username(), Some("alice"));
        assert!(matches!(
            who.kubernetes(),
            Some(KubernetesAccess::Impersonation(Impersonation::ServiceAccounts { service_accounts })) if service_accounts == &["a/b"]
        ));
        let who: WhoAmI = serde_json::from_value(
            json!({"authenticatedBy": "clientCertificate", "username": "x"}),
        )
        .unwrap();
        assert_eq!(who, WhoAmI::Unknown);
        assert_eq!(who.authenticated_by(), None);
        let who: WhoAmI = serde_json::from_value(json!({
            "authenticatedBy": "oidc", "username": "alice",
            "kubernetes": {"via": "anotherCluster", "name": "c"}
        }))
        .unwrap();
        assert_eq!(who.kubernetes(), Some(&KubernetesAccess::Unknown));
        // Without `kubernetes` at all.
        let who: WhoAmI =
            serde_json::from_value(json!({"authenticatedBy": "admin", "username": "admin"}))
                .unwrap();
        assert_eq!(who.kubernetes(), Some(&KubernetesAccess::Unknown));
    }

    #[test]
    fn the_documented_examples_read() {
        // docs/cli.md, `gatehouse whoami --output json`: the `gatehouse` member.
        let who: WhoAmI = serde_json::from_value(json!(
            { "authenticatedBy": "oidc", "username": "...", "groups": ["..."],
              "kubernetes": { "via": "impersonation", "...": "..." } }
        ))
        .unwrap();
        assert_eq!(who.authenticated_by(), Some("oidc"));
        assert_eq!(who.groups(), Some(&["...".to_owned()][..]));
        // docs/api.md, `POST /v1/admin/login`.
        let request: AdminLoginRequest = serde_json::from_str(r#"{"password": "..."}"#).unwrap();
        assert_eq!(request.password.expose_secret(), "...");
        let answer: AdminLoginResponse =
            serde_json::from_str(r#"{"token": "...", "expiresAt": "..."}"#).unwrap();
        assert_eq!(answer.token.expose_secret(), "...");
        assert_eq!(answer.expires_at, "...");
    }

    #[test]
    fn admin_login_bodies_are_the_json_sent_before_and_never_print_their_secrets() {
        let request = AdminLoginRequest {
            password: SecretString::from("hunter2-password".to_owned()),
        };
        assert_eq!(wire(&request), json!({"password": "hunter2-password"}));
        let answer = AdminLoginResponse {
            token: BearerToken::new("eyJ.secret-token.sig"),
            expires_at: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            wire(&answer),
            json!({"token": "eyJ.secret-token.sig", "expiresAt": "2026-01-01T00:00:00Z"})
        );
        let printed = format!("{request:?} {answer:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("secret-token"),
            "{printed}"
        );
        assert!(printed.contains("2026-01-01T00:00:00Z"), "{printed}");
    }
}
