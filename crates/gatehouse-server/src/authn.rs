//! Authentication of every request, in a fixed order.
//!
//! 1. **Admin token**: a JWT whose `iss` is gatehouse's admin issuer is verified with the admin
//!    HMAC key, and only with it.
//! 2. **An issuer of the `AuthenticationConfiguration`** (`authentication`): a JWT whose `iss`
//!    is exactly one of its `issuer.url`s is verified by that issuer only, with the
//!    kube-apiserver's rules, and its claims mapped by the file ([`crate::issuers`]). This
//!    comes before `oidc`: when `oidc.issuerUrl` is also in the file, the file decides who
//!    its tokens are (as it does in the kube-apiserver), and `oidc` only signs users in.
//! 3. **OIDC token**: a JWT whose `iss` is the configured issuer is fully verified
//!    ([`gatehouse_core::jwt`]).
//! 4. **Fall-through**: anything else (another issuer's JWT, an opaque cloud-provider token) is
//!    forwarded untouched for the kube-apiserver to authenticate, when `fallThrough.enabled`.
//!
//! # Security
//! - Routing reads `iss` from the *unverified* payload, but only to choose the verifier; a token
//!   that names gatehouse's admin issuer or the configured issuer and then fails verification is
//!   refused with 401 and **never** falls through. Otherwise a tampered or expired token could
//!   be replayed to the kube-apiserver hoping it is more lenient. The same holds for a
//!   verified token whose claims make no user (an unverified `email` as username,
//!   [`gatehouse_core::identity::IdentityError`]; a claim mapping or validation rule of the
//!   file that fails, [`gatehouse_authconfig::MappingError`]).
//! - A token with the three parts of a JWT that is not a canonical one is refused, never
//!   forwarded ([`gatehouse_core::token::BearerToken::shape`]): the kube-apiserver reads other
//!   spellings of a signed token as that token.
//! - A token whose `iss` is a near miss of a known issuer (equal to it after removing one
//!   trailing slash and lower-casing the scheme and host, [`issuer_near_miss`]) is refused
//!   ([`AuthnError::IssuerNearMiss`]), never forwarded, even with fall-through on. It is not
//!   the issuer gatehouse verifies (issuers are compared exactly), but nor is it plausibly
//!   someone else's: it is a misconfiguration (`oidc.issuerUrl` against the IdP's `issuer`) or
//!   a probe for a more lenient comparison upstream. When in doubt, refuse.
//! - A token longer than [`MAX_TOKEN_BYTES`] (16 KiB) is refused before any of it is parsed;
//!   so are JSON with repeated member names, a JOSE header in other than three parts, and an
//!   encrypted token (JWE) ([`gatehouse_core::token::BearerToken::shape`]).
//! - With fall-through off, every token gatehouse cannot verify is refused.
//! - Verified principals are cached by the SHA-256 of the token until the token expires (and
//!   for at most five minutes), so a repeat request costs a hash and a map lookup. An expired
//!   token is never served from the cache: expiry is rechecked on every hit. Nor is a
//!   principal made by an older version of the `AuthenticationConfiguration`: entries carry
//!   the generation of the issuer set that made them, and a hit from another is a miss.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_authconfig::MappingError;
use gatehouse_core::admin::{AdminTokenError, AdminTokens};
use gatehouse_core::identity::{ClaimRules, IdentityError, KubeUser, OidcUser, Principal};
use gatehouse_core::jwt::VerifyError;
use gatehouse_core::token::{BearerToken, MAX_TOKEN_BYTES, TokenFingerprint, TokenShape};

use crate::credentials::{ConnectionNamesProtected, Credential, CredentialError, IdentityHeader};
use crate::issuers::{IssuerSet, Issuers, KubeIssuer};
use crate::oidc::{OidcError, OidcVerifier};

/// The outcome of authentication.
#[derive(Debug, Clone)]
pub enum Authenticated {
    /// A verified principal (admin or OIDC user).
    Principal(Arc<Principal>),
    /// A token gatehouse does not own, to be forwarded for the kube-apiserver to judge.
    FallThrough,
}

/// Why a token was refused. Every variant is the client's (401), but
/// [`AuthnError::IssuerNotReady`] (503): gatehouse cannot judge the token yet.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The request carries no credential.
    #[error(
        "no credentials: send a bearer token (run `gatehouse login`, or use a kubeconfig made by `gatehouse kubeconfig`)"
    )]
    NoCredentials,
    /// Three parts like a JWT, but not a canonical one.
    #[error(
        "the token has the three parts of a JWT but is not a canonical one (base64url without padding, a JSON payload); gatehouse refuses it rather than let the kube-apiserver read it differently"
    )]
    NonCanonicalJwt,
    /// Longer than [`MAX_TOKEN_BYTES`]; not parsed at all.
    #[error(
        "the token is longer than {MAX_TOKEN_BYTES} bytes; gatehouse refuses it without reading it"
    )]
    TooLarge,
    /// A JWT whose header or payload repeats a JSON member name.
    #[error(
        "the token's header or payload repeats a JSON member name; gatehouse refuses it rather than guess which value counts"
    )]
    DuplicateJsonKeys,
    /// Top-level claim names equal under Go's case folding.
    #[error(
        "the token has claim names that differ only in case; the kube-apiserver's JSON reader would take another value than gatehouse, so gatehouse refuses it"
    )]
    CaseCollidingClaims,
    /// A JOSE header in a token of other than three parts.
    #[error(
        "the token starts with a JWT header but has {segments} parts instead of three; gatehouse refuses it rather than forward it as an opaque token"
    )]
    WrongSegments {
        /// How many parts.
        segments: usize,
    },
    /// An encrypted token (JWE, five parts).
    #[error(
        "the token is encrypted (a JWE); gatehouse accepts only signed tokens (JWS), as the kube-apiserver does"
    )]
    Encrypted,
    /// `iss` differs from a known issuer only by a trailing slash or the case of its scheme or
    /// host ([`issuer_near_miss`]).
    #[error(
        "the token's issuer {found:?} is not {known:?} but differs from it only by a trailing slash or letter case; issuers are compared exactly, so gatehouse refuses the token rather than forward it (if this issuer is right, set oidc.issuerUrl to exactly the IdP's issuer)"
    )]
    IssuerNearMiss {
        /// The token's `iss`.
        found: String,
        /// The issuer gatehouse knows.
        known: String,
    },
    /// An admin token past its expiry, or issued before `admin.tokensNotBefore`.
    #[error("{0}: run `gatehouse login --admin`")]
    AdminLapsed(AdminTokenError),
    /// An admin token that does not verify.
    #[error("the admin token is invalid: run `gatehouse login --admin` for a new one")]
    AdminInvalid(AdminTokenError),
    /// A verified OIDC token whose claims make no user.
    #[error("the token from {issuer} was refused: {reason}")]
    NoUser {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: IdentityError,
    },
    /// A verified token of an issuer of the `AuthenticationConfiguration` whose claims the
    /// file's mappings or validation rules refuse (the kube-apiserver refuses it too).
    #[error("the token from {issuer} was refused: {reason}")]
    Unmappable {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: MappingError,
    },
    /// An OIDC token that does not verify.
    #[error("the token from {issuer} was refused: {reason}; sign in again with `gatehouse login`")]
    OidcInvalid {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: VerifyError,
    },
    /// The issuer's keys are not loaded yet (503).
    #[error("gatehouse cannot verify tokens from {issuer} yet ({reason}); try again shortly")]
    IssuerNotReady {
        /// The issuer.
        issuer: String,
        /// What is missing.
        reason: String,
    },
    /// A token of no issuer gatehouse knows, with fall-through off.
    #[error(
        "this token was not issued by gatehouse's OIDC issuer or admin account, and fall-through to Kubernetes authentication is disabled"
    )]
    FallThroughDisabled,
}

impl AuthnError {
    /// True when gatehouse, not the token, is the reason (answered 503).
    pub fn not_ready(&self) -> bool {
        matches!(self, AuthnError::IssuerNotReady { .. })
    }

    /// A short, fixed label for the reason (the `reason` of
    /// `gatehouse_authentication_refusals_total`; never user data).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthnError::NoCredentials => "no_credentials",
            AuthnError::NonCanonicalJwt | AuthnError::WrongSegments { .. } => "malformed",
            AuthnError::TooLarge => "too_large",
            AuthnError::DuplicateJsonKeys => "duplicate_keys",
            AuthnError::CaseCollidingClaims => "case_colliding_claims",
            AuthnError::Encrypted => "encrypted",
            AuthnError::IssuerNearMiss { .. } => "wrong_issuer",
            AuthnError::AdminLapsed(AdminTokenError::Revoked) => "revoked",
            AuthnError::AdminLapsed(_) => "expired",
            AuthnError::AdminInvalid(_) => "admin_invalid",
            AuthnError::NoUser { .. } | AuthnError::Unmappable { .. } => "no_user",
            AuthnError::OidcInvalid { reason, .. } => reason.reason(),
            AuthnError::IssuerNotReady { .. } => "issuer_not_ready",
            AuthnError::FallThroughDisabled => "unknown_issuer",
        }
    }
}

/// True when `found` is not `known` but equal to it after removing one trailing `/` from each
/// and lower-casing their schemes and hosts (`HTTPS://IdP.example/` for
/// `https://idp.example`). Paths keep their case: they are case-sensitive (Keycloak realms).
pub fn issuer_near_miss(found: &str, known: &str) -> bool {
    fn normal(iss: &str) -> String {
        let iss = iss.strip_suffix('/').unwrap_or(iss);
        match iss.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                format!(
                    "{}://{}{path}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase()
                )
            }
            None => iss.to_owned(),
        }
    }
    found != known && normal(found) == normal(known)
}

/// Why the authentication layer refused a request, in the order it checks: the header rules
/// of the Kubernetes API (identity headers, `Connection`), the credential's form, the session
/// cookie where it is not a credential, then the token itself.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A client-sent identity header (403).
    #[error(transparent)]
    IdentityHeader(#[from] IdentityHeader),
    /// `Connection` names a protected header (400).
    #[error(transparent)]
    ConnectionNamesProtected(#[from] ConnectionNamesProtected),
    /// The credential's form is refused on a Kubernetes API path (401): the reason, and that
    /// gatehouse refuses what it could read differently from the kube-apiserver.
    #[error("{0}: gatehouse refuses credentials it could read differently from the kube-apiserver")]
    KubernetesCredential(CredentialError),
    /// The credential's form is refused on gatehouse's own API (401).
    #[error(transparent)]
    Credential(CredentialError),
    /// Only the web UI's session cookie, on a Kubernetes API path (401).
    #[error(
        "the web UI's session cookie does not authenticate Kubernetes API requests: use kubectl with a kubeconfig from `gatehouse kubeconfig` (or the web UI's kubeconfig page)"
    )]
    SessionCookieOnApi,
    /// A token in the query string (`access_token`, RFC 6750 §2.3) (401): never read.
    #[error(
        "tokens in URLs are not accepted (the query names access_token): send the token in the Authorization header"
    )]
    TokenInQuery,
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] AuthnError),
}

impl Refusal {
    /// A short, fixed label for the reason (the `reason` of
    /// `gatehouse_authentication_refusals_total`; never user data).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::IdentityHeader(_) => "identity_header",
            Refusal::ConnectionNamesProtected(_) => "connection_header",
            Refusal::KubernetesCredential(_) | Refusal::Credential(_) => "credential_form",
            Refusal::SessionCookieOnApi => "session_cookie",
            Refusal::TokenInQuery => "token_in_query",
            Refusal::Token(e) => e.reason(),
        }
    }
}

/// A request the authentication layer accepted: the credential it was judged by, and the
/// outcome.
#[derive(Debug)]
pub struct Accepted {
    /// The one credential of the request (the token forwarded on fall-through).
    pub credential: Credential,
    /// Who it is.
    pub outcome: Authenticated,
}

/// What the authentication layer ([`crate::auth_layer`]) put in the request's extensions;
/// handlers read it instead of authenticating.
#[derive(Debug, Clone)]
pub enum Authn {
    /// Authenticated: a principal, or fall-through.
    Accepted(Arc<Accepted>),
    /// Refused, and why (no credential is [`AuthnError::NoCredentials`]).
    Refused(Arc<Refusal>),
}

/// Authenticates bearer tokens.
pub struct Authenticator {
    admin: Option<AdminTokens>,
    oidc: Option<Arc<OidcVerifier>>,
    issuers: Option<Arc<Issuers>>,
    fall_through: bool,
    /// Verified principals with the generation of the issuer set that made them (0 without
    /// an `AuthenticationConfiguration`).
    cache: moka::sync::Cache<TokenFingerprint, (u64, Arc<Principal>)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("admin", &self.admin.is_some())
            .field("oidc", &self.oidc.is_some())
            .field("fall_through", &self.fall_through)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator.
    pub fn new(
        admin: Option<AdminTokens>,
        oidc: Option<Arc<OidcVerifier>>,
        fall_through: bool,
        cache_entries: u64,
    ) -> Self {
        Self {
            admin,
            oidc,
            issuers: None,
            fall_through,
            cache: moka::sync::Cache::builder()
                .max_capacity(cache_entries)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }

    /// With the issuers of an `AuthenticationConfiguration`.
    pub fn with_issuers(mut self, issuers: Option<Arc<Issuers>>) -> Self {
        self.issuers = issuers;
        self
    }

    /// The issuers of the `AuthenticationConfiguration`, when configured.
    pub fn issuers(&self) -> Option<&Arc<Issuers>> {
        self.issuers.as_ref()
    }

    /// The admin token issuer, when the admin account is enabled.
    pub fn admin(&self) -> Option<&AdminTokens> {
        self.admin.as_ref()
    }

    /// Authenticates a request's token at time `now` (unix seconds).
    pub async fn authenticate(
        &self,
        token: Option<&BearerToken>,
        now: i64,
    ) -> Result<Authenticated, AuthnError> {
        let Some(token) = token else {
            return Err(AuthnError::NoCredentials);
        };
        if token.expose_secret().len() > MAX_TOKEN_BYTES {
            return Err(AuthnError::TooLarge);
        }
        let fingerprint = token.fingerprint();
        let set = self.issuers.as_ref().map(|i| i.current());
        let generation = set.as_ref().map_or(0, |s| s.generation);
        if let Some((made_by, p)) = self.cache.get(&fingerprint) {
            if p.expires_at() > now && made_by == generation {
                return Ok(Authenticated::Principal(p));
            }
            self.cache.invalidate(&fingerprint);
        }
        let issuer = match token.shape() {
            TokenShape::Opaque => None,
            TokenShape::Jwt { issuer } => issuer,
            TokenShape::MalformedJwt => return Err(AuthnError::NonCanonicalJwt),
            TokenShape::DuplicateKeys => return Err(AuthnError::DuplicateJsonKeys),
            TokenShape::CaseCollidingClaims => return Err(AuthnError::CaseCollidingClaims),
            TokenShape::WrongSegments { segments } => {
                return Err(AuthnError::WrongSegments { segments });
            }
            TokenShape::Encrypted => return Err(AuthnError::Encrypted),
        };
        if let (Some(admin), Some(iss)) = (&self.admin, &issuer)
            && iss == admin.issuer()
        {
            return match admin.verify(token.expose_secret(), now) {
                Ok(claims) => Ok(self.remember(fingerprint, generation, Principal::Admin(claims))),
                Err(e @ (AdminTokenError::Expired | AdminTokenError::Revoked)) => {
                    Err(AuthnError::AdminLapsed(e))
                }
                Err(e) => Err(AuthnError::AdminInvalid(e)),
            };
        }
        if let (Some(set), Some(iss)) = (&set, &issuer)
            && let Some(kube_issuer) = set.get(iss)
        {
            let oidc_issuer = self.oidc.as_ref().map(|o| o.config().issuer_url.as_str());
            let user = kube_user(set, kube_issuer, token.expose_secret(), now, oidc_issuer).await?;
            return Ok(self.remember(fingerprint, generation, Principal::Oidc(user)));
        }
        if let (Some(oidc), Some(iss)) = (&self.oidc, &issuer)
            && iss == &oidc.config().issuer_url
        {
            return match oidc.verify(token.expose_secret(), now).await {
                Ok(verified) => {
                    match OidcUser::from_verified(verified, &oidc.config().claim_rules()) {
                        Ok(user) => {
                            Ok(self.remember(fingerprint, generation, Principal::Oidc(user)))
                        }
                        Err(e) => {
                            tracing::info!(reason = %e, "refused an OIDC token");
                            Err(AuthnError::NoUser {
                                issuer: iss.clone(),
                                reason: e,
                            })
                        }
                    }
                }
                Err(OidcError::NotReady(reason)) => Err(AuthnError::IssuerNotReady {
                    issuer: iss.clone(),
                    reason,
                }),
                Err(OidcError::Invalid(e)) => {
                    tracing::info!(reason = %e, "refused an OIDC token");
                    Err(AuthnError::OidcInvalid {
                        issuer: iss.clone(),
                        reason: e,
                    })
                }
            };
        }
        if let Some(iss) = &issuer {
            let known = self
                .admin
                .iter()
                .map(AdminTokens::issuer)
                .chain(self.oidc.iter().map(|o| o.config().issuer_url.as_str()))
                .chain(set.iter().flat_map(|s| s.urls()));
            for known in known {
                if issuer_near_miss(iss, known) {
                    return Err(AuthnError::IssuerNearMiss {
                        found: iss.clone(),
                        known: known.to_owned(),
                    });
                }
            }
        }
        if self.fall_through {
            Ok(Authenticated::FallThrough)
        } else {
            Err(AuthnError::FallThroughDisabled)
        }
    }

    fn remember(
        &self,
        fingerprint: TokenFingerprint,
        generation: u64,
        p: Principal,
    ) -> Authenticated {
        let p = Arc::new(p);
        self.cache.insert(fingerprint, (generation, Arc::clone(&p)));
        Authenticated::Principal(p)
    }
}

/// Verifies a token of `issuer` (of `set`) and makes its user with the file's mappings and
/// rules.
async fn kube_user(
    set: &IssuerSet,
    issuer: &KubeIssuer,
    token: &str,
    now: i64,
    oidc_issuer: Option<&str>,
) -> Result<OidcUser, AuthnError> {
    let iss = issuer.authenticator.issuer.as_str();
    let verified = match issuer.verify(token, now).await {
        Ok(v) => v,
        Err(OidcError::NotReady(reason)) => {
            return Err(AuthnError::IssuerNotReady {
                issuer: iss.to_owned(),
                reason,
            });
        }
        Err(OidcError::Invalid(e)) => {
            tracing::info!(issuer = iss, reason = %e, "refused a token");
            return Err(AuthnError::OidcInvalid {
                issuer: iss.to_owned(),
                reason: e,
            });
        }
    };
    let info = match issuer.authenticator.user(&set.env, &verified.claims) {
        Ok(info) => info,
        Err(e) => {
            tracing::info!(issuer = iss, reason = %e, "refused a token");
            return Err(AuthnError::Unmappable {
                issuer: iss.to_owned(),
                reason: e,
            });
        }
    };
    // The username claim is never `email` here, so the token is never refused; an email the
    // IdP has not verified is withheld from the claims ServiceAccount annotations match.
    let mut user =
        OidcUser::from_verified(verified, &ClaimRules::new("sub")).map_err(|reason| {
            AuthnError::NoUser {
                issuer: iss.to_owned(),
                reason,
            }
        })?;
    user.username = info.username;
    user.groups = info.groups;
    user.kube = Some(KubeUser {
        uid: info.uid,
        extra: info.extra,
        when_unmapped: issuer.settings.when_unmapped,
        allow_system_names: issuer.settings.allow_system_names,
        match_claims: issuer.settings.match_claims || oidc_issuer == Some(iss),
        issuer_name: issuer.settings.name.clone(),
    });
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::new(vec![3; 32], "gatehouse-admin", "gatehouse", 60).unwrap()
    }

    #[tokio::test]
    async fn admin_token_round_trip_and_no_fall_through_on_failure() {
        let a = Authenticator::new(Some(tokens()), None, true, 100);
        let (tok, _) = tokens().issue(1000).unwrap();
        let t = BearerToken::new(tok);
        assert!(matches!(
            a.authenticate(Some(&t), 1000).await,
            Ok(Authenticated::Principal(p)) if matches!(*p, Principal::Admin(_))
        ));
        // Expired: refused for its expiry, even though it is cached and fall-through is on.
        match a.authenticate(Some(&t), 1060).await {
            Err(e @ AuthnError::AdminLapsed(_)) => {
                assert!(e.to_string().contains("has expired"), "{e}");
            }
            other => panic!("an expired admin token was not refused as expired: {other:?}"),
        }
        // Signed with another key: refused as invalid (not as expired), not forwarded.
        let other = AdminTokens::new(vec![4; 32], "gatehouse-admin", "gatehouse", 60).unwrap();
        let (forged, _) = other.issue(1000).unwrap();
        match a.authenticate(Some(&BearerToken::new(forged)), 1000).await {
            Err(e @ AuthnError::AdminInvalid(_)) => {
                assert!(e.to_string().contains("is invalid"), "{e}");
            }
            other => panic!("a forged admin token was not refused as invalid: {other:?}"),
        }
    }

    #[test]
    fn near_misses_differ_only_by_one_trailing_slash_or_scheme_and_host_case() {
        let known = "https://idp.example/realms/Team";
        for near in [
            "https://idp.example/realms/Team/",
            "HTTPS://idp.example/realms/Team",
            "https://IDP.Example/realms/Team",
            "Https://IDP.example/realms/Team/",
        ] {
            assert!(issuer_near_miss(near, known), "{near}");
        }
        for far in [
            known,
            "https://idp.example/realms/team",
            "https://idp.example/realms/Team//",
            "https://idp.example:443/realms/Team",
            "https://other.example/realms/Team",
            "https://idp.example/realms/Team2",
        ] {
            assert!(!issuer_near_miss(far, known), "{far}");
        }
        assert!(issuer_near_miss(
            "https://idp.example",
            "https://IDP.example/"
        ));
        assert!(issuer_near_miss("gatehouse-admin/", "gatehouse-admin"));
    }

    #[tokio::test]
    async fn near_miss_of_the_admin_issuer_is_refused_even_with_fall_through() {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let a = Authenticator::new(Some(tokens()), None, true, 100);
        let t = format!(
            "{}.{}.c2ln",
            b.encode(r#"{"alg":"HS256"}"#),
            b.encode(r#"{"iss":"gatehouse-admin/"}"#)
        );
        match a.authenticate(Some(&BearerToken::new(t)), 0).await {
            Err(e @ AuthnError::IssuerNearMiss { .. }) => {
                assert_eq!(e.reason(), "wrong_issuer");
                assert!(e.to_string().contains("compared exactly"), "{e}");
            }
            other => panic!("a near miss was not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn tokens_over_the_limit_are_refused_before_parsing() {
        let a = Authenticator::new(None, None, true, 100);
        let at_limit = BearerToken::new("x".repeat(MAX_TOKEN_BYTES));
        assert!(matches!(
            a.authenticate(Some(&at_limit), 0).await,
            Ok(Authenticated::FallThrough)
        ));
        let over = BearerToken::new("x".repeat(MAX_TOKEN_BYTES + 1));
        match a.authenticate(Some(&over), 0).await {
            Err(e @ AuthnError::TooLarge) => {
                assert_eq!(e.reason(), "too_large");
                assert!(e.to_string().contains("16384 bytes"), "{e}");
            }
            other => panic!("an oversized token was not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_tokens_fall_through_only_when_enabled() {
        let on = Authenticator::new(None, None, true, 100);
        let off = Authenticator::new(None, None, false, 100);
        let opaque = BearerToken::new("cloud-provider-opaque-token");
        assert!(matches!(
            on.authenticate(Some(&opaque), 0).await,
            Ok(Authenticated::FallThrough)
        ));
        // Refused because fall-through is off (not for some other reason).
        match off.authenticate(Some(&opaque), 0).await {
            Err(e @ AuthnError::FallThroughDisabled) => {
                assert!(
                    e.to_string()
                        .contains("fall-through to Kubernetes authentication is disabled"),
                    "{e}"
                );
            }
            other => panic!("with fall-through off an opaque token was not refused: {other:?}"),
        }
        // No token never falls through, even when fall-through is on.
        match on.authenticate(None, 0).await {
            Err(e @ AuthnError::NoCredentials) => {
                assert!(e.to_string().starts_with("no credentials"), "{e}");
            }
            other => panic!("a request without a token was not refused: {other:?}"),
        }
    }
}
