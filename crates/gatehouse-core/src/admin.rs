//! gatehouse's own admin account: a bcrypt password hash and short-lived HS256 tokens.
//!
//! # Security
//! - The password is checked with bcrypt's own verification; the hash is the only secret
//!   gatehouse stores about the admin, and the plaintext is never kept or logged.
//! - Admin tokens are HS256 JWTs under a signing key that only gatehouse knows. They carry an
//!   issuer and audience of their own, so they can never be mistaken for, or confused with, an
//!   IdP token: routing is by `iss`, and the HMAC verifier is used for that issuer alone. The
//!   IdP verifier refuses HMAC outright (see [`crate::jwt`]).
//! - The signing key must be at least 32 bytes.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};

/// The subject of every admin token.
pub const ADMIN_SUBJECT: &str = "admin";
/// The smallest signing key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Issues and verifies admin tokens.
#[derive(Debug)]
pub struct AdminTokens {
    key: SecretSlice<u8>,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

/// The claims of an admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClaims {
    /// Always [`ADMIN_SUBJECT`].
    pub sub: String,
    /// The admin token issuer.
    pub iss: String,
    /// The admin token audience.
    pub aud: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
}

/// Why an admin token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminTokenError {
    /// The signing key is too short.
    #[error("the admin token signing key must be at least {MIN_KEY_LEN} bytes")]
    KeyTooShort,
    /// Not a valid admin token (bad signature, issuer, audience or shape).
    #[error("the admin token is invalid")]
    Invalid,
    /// The admin token has expired.
    #[error("the admin token has expired; sign in again")]
    Expired,
    /// The token could not be signed.
    #[error("the admin token could not be signed")]
    Signing,
}

impl AdminTokens {
    /// Creates an issuer/verifier. `key` must be at least [`MIN_KEY_LEN`] bytes.
    pub fn new(
        key: Vec<u8>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl_secs: i64,
    ) -> Result<Self, AdminTokenError> {
        if key.len() < MIN_KEY_LEN {
            return Err(AdminTokenError::KeyTooShort);
        }
        Ok(Self {
            key: SecretSlice::from(key),
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_secs,
        })
    }

    /// The issuer written into admin tokens; tokens with this `iss` are routed here.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Issues a token valid from `now` for the configured lifetime.
    pub fn issue(&self, now: i64) -> Result<(String, AdminClaims), AdminTokenError> {
        let claims = AdminClaims {
            sub: ADMIN_SUBJECT.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.key.expose_secret())
                .map_err(|_| AdminTokenError::Signing)?,
        )
        .map_err(|_| AdminTokenError::Signing)?;
        Ok((token, claims))
    }

    /// Verifies a token at time `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<AdminClaims, AdminTokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AdminClaims>(
            token,
            &DecodingKey::from_secret(self.key.expose_secret())
                .map_err(|_| AdminTokenError::Invalid)?,
            &v,
        )
        .map_err(|_| AdminTokenError::Invalid)?;
        let c = data.claims;
        if c.iss != self.issuer || c.aud != self.audience || c.sub != ADMIN_SUBJECT {
            return Err(AdminTokenError::Invalid);
        }
        if now >= c.exp {
            return Err(AdminTokenError::Expired);
        }
        Ok(c)
    }
}

/// Checks a password against a bcrypt hash. Any malformed hash counts as a mismatch.
pub fn verify_password(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// Checks that a string is a bcrypt hash gatehouse can verify against.
pub fn is_bcrypt_hash(hash: &str) -> bool {
    // A bcrypt hash is `$2x$NN$` followed by 53 characters of salt and digest.
    let ok_prefix = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    ok_prefix && hash.len() == 60
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::new(vec![7; 32], "gatehouse-admin", "gatehouse", 3600).unwrap()
    }

    #[test]
    fn round_trip_and_expiry() {
        let t = tokens();
        let (tok, claims) = t.issue(1000).unwrap();
        assert_eq!(t.verify(&tok, 1000).unwrap(), claims);
        assert_eq!(t.verify(&tok, 4600), Err(AdminTokenError::Expired));
    }

    #[test]
    fn other_key_or_audience_refused() {
        let (tok, _) = tokens().issue(1000).unwrap();
        let other = AdminTokens::new(vec![8; 32], "gatehouse-admin", "gatehouse", 3600).unwrap();
        assert_eq!(other.verify(&tok, 1000), Err(AdminTokenError::Invalid));
        let other_aud = AdminTokens::new(vec![7; 32], "gatehouse-admin", "x", 3600).unwrap();
        assert_eq!(other_aud.verify(&tok, 1000), Err(AdminTokenError::Invalid));
    }

    #[test]
    fn short_key_refused() {
        assert_eq!(
            AdminTokens::new(vec![1; 31], "i", "a", 1).unwrap_err(),
            AdminTokenError::KeyTooShort
        );
    }

    #[test]
    fn passwords() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert!(is_bcrypt_hash(&hash));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("s3cret ", &hash));
        assert!(!verify_password("s3cret", "not-a-hash"));
        assert!(!is_bcrypt_hash("plain"));
    }
}
