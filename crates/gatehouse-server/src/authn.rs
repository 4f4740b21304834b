//! Authentication of every request, in a fixed order.
//!
//! 1. **Admin token**: a JWT whose `iss` is gatehouse's admin issuer is verified with the admin
//!    HMAC key, and only with it.
//! 2. **OIDC token**: a JWT whose `iss` is the configured issuer is fully verified
//!    ([`gatehouse_core::jwt`]).
//! 3. **Fall-through**: anything else (another issuer's JWT, an opaque cloud-provider token) is
//!    forwarded untouched for the kube-apiserver to authenticate, when `fallThrough.enabled`.
//!
//! # Security
//! - Routing reads `iss` from the *unverified* payload, but only to choose the verifier; a token
//!   that names gatehouse's admin issuer or the configured issuer and then fails verification is
//!   refused with 401 and **never** falls through. Otherwise a tampered or expired token could
//!   be replayed to the kube-apiserver hoping it is more lenient. The same holds for a
//!   verified token whose claims make no user (an unverified `email` as username,
//!   [`gatehouse_core::identity::IdentityError`]).
//! - A token with the three parts of a JWT that is not a canonical one is refused, never
//!   forwarded ([`gatehouse_core::token::BearerToken::shape`]): the kube-apiserver reads other
//!   spellings of a signed token as that token.
//! - With fall-through off, every token gatehouse cannot verify is refused.
//! - Verified principals are cached by the SHA-256 of the token until the token expires (and
//!   for at most five minutes), so a repeat request costs a hash and a map lookup. An expired
//!   token is never served from the cache: expiry is rechecked on every hit.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::admin::{AdminTokenError, AdminTokens};
use gatehouse_core::identity::{IdentityError, OidcUser, Principal};
use gatehouse_core::jwt::VerifyError;
use gatehouse_core::token::{BearerToken, TokenFingerprint, TokenShape};

use crate::credentials::{ConnectionNamesProtected, Credential, CredentialError, IdentityHeader};
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
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] AuthnError),
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
    fall_through: bool,
    cache: moka::sync::Cache<TokenFingerprint, Arc<Principal>>,
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
            fall_through,
            cache: moka::sync::Cache::builder()
                .max_capacity(cache_entries)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
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
        let fingerprint = token.fingerprint();
        if let Some(p) = self.cache.get(&fingerprint) {
            if p.expires_at() > now {
                return Ok(Authenticated::Principal(p));
            }
            self.cache.invalidate(&fingerprint);
        }
        let issuer = match token.shape() {
            TokenShape::Opaque => None,
            TokenShape::Jwt { issuer } => issuer,
            TokenShape::MalformedJwt => return Err(AuthnError::NonCanonicalJwt),
        };
        if let (Some(admin), Some(iss)) = (&self.admin, &issuer)
            && iss == admin.issuer()
        {
            return match admin.verify(token.expose_secret(), now) {
                Ok(claims) => Ok(self.remember(fingerprint, Principal::Admin(claims))),
                Err(e @ (AdminTokenError::Expired | AdminTokenError::Revoked)) => {
                    Err(AuthnError::AdminLapsed(e))
                }
                Err(e) => Err(AuthnError::AdminInvalid(e)),
            };
        }
        if let (Some(oidc), Some(iss)) = (&self.oidc, &issuer)
            && iss == &oidc.config().issuer_url
        {
            return match oidc.verify(token.expose_secret(), now).await {
                Ok(verified) => {
                    match OidcUser::from_verified(verified, &oidc.config().claim_rules()) {
                        Ok(user) => Ok(self.remember(fingerprint, Principal::Oidc(user))),
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
        if self.fall_through {
            Ok(Authenticated::FallThrough)
        } else {
            Err(AuthnError::FallThroughDisabled)
        }
    }

    fn remember(&self, fingerprint: TokenFingerprint, p: Principal) -> Authenticated {
        let p = Arc::new(p);
        self.cache.insert(fingerprint, Arc::clone(&p));
        Authenticated::Principal(p)
    }
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
