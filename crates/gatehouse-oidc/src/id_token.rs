//! ID-token verification (OpenID Connect Core §3.1.3.7): the signature with the issuer's key
//! set ([`crate::keys`]), the claims with [`gatehouse_core::jwt`], and the `nonce` of the
//! sign-in that asked for the token.
//!
//! # Security
//! - The audience is the client the token was asked for, and `azp`, when present, must name
//!   it too ([`policy`]); the algorithms are the asymmetric ones discovery names.
//! - `nonce` must equal the sign-in's, compared in constant time ([`check_nonce`]); a token
//!   without one is refused. The nonce ties the token to this sign-in, so a token replayed
//!   from another is refused.

use gatehouse_core::discovery::Discovery;
use gatehouse_core::jwt::{self, Policy, Verified, VerifyError};
use gatehouse_core::protocol::Nonce;

use crate::discovery::signing_algorithms;
use crate::keys::{self, KeySource, TokenRefused};

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// The issuer's keys are not loaded.
    #[error("the OIDC issuer's keys are not loaded yet: {0}")]
    NotReady(String),
    /// The token failed verification.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
    /// The token's `nonce` is not this sign-in's.
    #[error("the ID token's nonce does not match this sign-in")]
    NonceMismatch,
}

impl From<TokenRefused> for IdTokenError {
    fn from(e: TokenRefused) -> Self {
        match e {
            TokenRefused::NotReady(m) => IdTokenError::NotReady(m),
            TokenRefused::Invalid(v) => IdTokenError::Invalid(v),
        }
    }
}

/// The policy for an ID token of `d`'s issuer asked for by `client_id`.
pub fn policy(d: &Discovery, client_id: &str) -> Policy {
    Policy::new(
        d.issuer.clone(),
        vec![client_id.to_owned()],
        vec![client_id.to_owned()],
        signing_algorithms(d),
        jwt::MAX_SKEW_SECS,
    )
}

/// `verified`'s `nonce` must be `expected` (constant-time; absent is a mismatch).
pub fn check_nonce(verified: &Verified, expected: &Nonce) -> Result<(), IdTokenError> {
    let found = verified.claims.get("nonce").and_then(|n| n.as_str());
    match found {
        Some(n) if expected.matches(n) => Ok(()),
        _ => Err(IdTokenError::NonceMismatch),
    }
}

/// Verifies `id_token` at `now` with `keys` (and their policy), then, when given, its `nonce`.
pub async fn verify<K: KeySource + ?Sized>(
    keys: &K,
    id_token: &str,
    nonce: Option<&Nonce>,
    now: i64,
) -> Result<Verified, IdTokenError> {
    let verified = keys::verify(keys, id_token, now).await?;
    if let Some(expected) = nonce {
        check_nonce(&verified, expected)?;
    }
    Ok(verified)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::tests::{JWK, sign};
    use crate::keys::{KeySet, StaticKeys};

    const NOW: i64 = 1_700_000_000;

    fn keys_for(client: &str) -> StaticKeys {
        let d = Discovery {
            issuer: "https://idp".to_owned(),
            ..Discovery::default()
        };
        let mut jwk: serde_json::Value = serde_json::from_str(JWK).unwrap();
        jwk["kid"] = "k1".into();
        let jwks = serde_json::from_value(serde_json::json!({ "keys": [jwk] })).unwrap();
        StaticKeys(Arc::new(KeySet {
            policy: policy(&d, client),
            discovery: d,
            jwks,
        }))
    }

    #[tokio::test]
    async fn the_nonce_must_be_the_sign_ins() {
        let keys = keys_for("gatehouse");
        let t = sign("https://idp", "k1", serde_json::json!({"nonce": "n-123"}));
        assert!(
            verify(&keys, &t, Some(&Nonce::new("n-123")), NOW)
                .await
                .is_ok()
        );
        assert!(matches!(
            verify(&keys, &t, Some(&Nonce::new("n-124")), NOW).await,
            Err(IdTokenError::NonceMismatch)
        ));
        // Without a nonce in the token: refused when one is expected, fine when none is.
        let t = sign("https://idp", "k1", serde_json::json!({}));
        assert!(matches!(
            verify(&keys, &t, Some(&Nonce::new("n-123")), NOW).await,
            Err(IdTokenError::NonceMismatch)
        ));
        assert!(verify(&keys, &t, None, NOW).await.is_ok());
    }

    #[tokio::test]
    async fn the_audience_must_be_the_client() {
        let keys = keys_for("another-client");
        let t = sign("https://idp", "k1", serde_json::json!({}));
        assert!(matches!(
            verify(&keys, &t, None, NOW).await,
            Err(IdTokenError::Invalid(_))
        ));
    }
}
