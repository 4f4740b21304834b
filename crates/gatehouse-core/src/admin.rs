//! gatehouse's own admin account: a bcrypt password hash and short-lived HS256 tokens.
//!
//! # Security
//! - The password is checked with bcrypt's own verification; the hash is the only secret
//!   gatehouse stores about the admin, and the plaintext is never kept or logged. A hash whose
//!   cost is below [`MIN_BCRYPT_COST`] is refused at start-up ([`bcrypt_cost`]): at cost 4 a
//!   stolen hash (or an online guesser on a fast replica) tries thousands of passwords a second.
//! - Admin tokens are HS256 JWTs under a signing key that only gatehouse knows. They carry an
//!   issuer and audience of their own, so they can never be mistaken for, or confused with, an
//!   IdP token: routing is by `iss`, and the HMAC verifier is used for that issuer alone. The
//!   IdP verifier refuses HMAC outright (see [`crate::jwt`]).
//! - The signing key must be at least 32 bytes.
//! - Every token names its key in the `kid` header ([`key_id`]: the first 8 bytes of
//!   SHA-256 of the key, hex; the key cannot be recovered from it). A previous key may be kept
//!   beside the current one ([`AdminTokens::with_previous_key`]) so that tokens issued before a
//!   rotation keep working until they expire; a token is verified with the key its `kid` names
//!   and no other, and a `kid` that names neither key is refused. Tokens without a `kid`
//!   (issued by older versions) are verified with the current key only.
//! - A not-before epoch ([`AdminTokens::with_not_before`], `admin.tokensNotBefore`) revokes
//!   every token issued earlier: the way to sign every admin out at once, without rotating the
//!   key.
//! - The lifetime is bounded by configuration (at most [`MAX_TTL_SECS`]).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The subject of every admin token.
pub const ADMIN_SUBJECT: &str = "admin";
/// The smallest signing key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// The smallest bcrypt cost accepted for the admin password hash.
pub const MIN_BCRYPT_COST: u32 = 10;
/// The longest admin token lifetime accepted, in seconds (24 hours).
pub const MAX_TTL_SECS: u64 = 24 * 3600;
/// The default admin token lifetime, in seconds (8 hours: a working day, so a UI session
/// signed in with the admin password lasts the day, and a leaked token is useful for less).
pub const DEFAULT_TTL_SECS: u64 = 8 * 3600;

/// Issues and verifies admin tokens.
#[derive(Debug)]
pub struct AdminTokens {
    key: SecretSlice<u8>,
    kid: String,
    previous: Option<(String, SecretSlice<u8>)>,
    not_before: Option<i64>,
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
    /// Not a valid admin token (bad signature, issuer, audience, key ID or shape).
    #[error("the admin token is invalid")]
    Invalid,
    /// The admin token has expired.
    #[error("the admin token has expired; sign in again")]
    Expired,
    /// The admin token was issued before `admin.tokensNotBefore`.
    #[error("the admin token was revoked (issued before admin.tokensNotBefore); sign in again")]
    Revoked,
    /// The token could not be signed.
    #[error("the admin token could not be signed")]
    Signing,
}

/// The `kid` of admin tokens signed with `key`: the first 8 bytes of SHA-256 of the key, hex.
pub fn key_id(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
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
            kid: key_id(&key),
            key: SecretSlice::from(key),
            previous: None,
            not_before: None,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_secs,
        })
    }

    /// Also accepts tokens signed with the previous key (named by their `kid`), so tokens
    /// issued before a key rotation keep working until they expire. New tokens always use the
    /// current key.
    pub fn with_previous_key(mut self, key: Vec<u8>) -> Result<Self, AdminTokenError> {
        if key.len() < MIN_KEY_LEN {
            return Err(AdminTokenError::KeyTooShort);
        }
        let kid = key_id(&key);
        if kid != self.kid {
            self.previous = Some((kid, SecretSlice::from(key)));
        }
        Ok(self)
    }

    /// Refuses every token issued (`iat`) before `epoch` (unix seconds).
    pub fn with_not_before(mut self, epoch: Option<i64>) -> Self {
        self.not_before = epoch;
        self
    }

    /// The issuer written into admin tokens; tokens with this `iss` are routed here.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of newly issued tokens.
    pub fn current_key_id(&self) -> &str {
        &self.kid
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
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(self.key.expose_secret())
                .map_err(|_| AdminTokenError::Signing)?,
        )
        .map_err(|_| AdminTokenError::Signing)?;
        Ok((token, claims))
    }

    /// The key a token's `kid` names; no `kid` means the current key.
    fn key_for(&self, kid: Option<&str>) -> Option<&SecretSlice<u8>> {
        match kid {
            None => Some(&self.key),
            Some(k) if k == self.kid => Some(&self.key),
            Some(k) => self
                .previous
                .as_ref()
                .filter(|(pk, _)| pk == k)
                .map(|(_, key)| key),
        }
    }

    /// Verifies a token at time `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<AdminClaims, AdminTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AdminTokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(AdminTokenError::Invalid);
        }
        let key = self
            .key_for(header.kid.as_deref())
            .ok_or(AdminTokenError::Invalid)?;
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AdminClaims>(
            token,
            &DecodingKey::from_secret(key.expose_secret()).map_err(|_| AdminTokenError::Invalid)?,
            &v,
        )
        .map_err(|_| AdminTokenError::Invalid)?;
        let c = data.claims;
        if c.iss != self.issuer || c.aud != self.audience || c.sub != ADMIN_SUBJECT {
            return Err(AdminTokenError::Invalid);
        }
        if self.not_before.is_some_and(|nb| c.iat < nb) {
            return Err(AdminTokenError::Revoked);
        }
        if now >= c.exp {
            return Err(AdminTokenError::Expired);
        }
        // A token minted with a longer lifetime (by an earlier version, or before the TTL was
        // lowered) does not outlive today's limit.
        if c.exp.saturating_sub(c.iat) > self.ttl_secs {
            return Err(AdminTokenError::Invalid);
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
    ok_prefix && hash.len() == 60 && bcrypt_cost(hash).is_some()
}

/// The cost (log2 rounds) of a bcrypt hash (`$2b$12$...` is 12), when it is well formed.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    let digits = hash.get(4..6)?;
    if hash.get(6..7) != Some("$") || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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
    fn a_token_minted_with_a_longer_lifetime_is_refused() {
        let long =
            AdminTokens::new(vec![7; 32], "gatehouse-admin", "gatehouse", 365 * 86400).unwrap();
        let (tok, _) = long.issue(1000).unwrap();
        assert_eq!(tokens().verify(&tok, 1000), Err(AdminTokenError::Invalid));
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

    #[test]
    fn issued_tokens_name_their_key_and_a_previous_key_keeps_verifying() {
        let old = tokens();
        let (old_token, _) = old.issue(1000).unwrap();
        let header = jsonwebtoken::decode_header(&old_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key_id(&[7; 32]).as_str()));
        assert_eq!(key_id(&[7; 32]).len(), 16);
        // Rotated: new key current, old key previous.
        let rotated = AdminTokens::new(vec![9; 32], "gatehouse-admin", "gatehouse", 3600)
            .unwrap()
            .with_previous_key(vec![7; 32])
            .unwrap();
        assert!(
            rotated.verify(&old_token, 1000).is_ok(),
            "issued before the rotation"
        );
        let (new_token, _) = rotated.issue(1000).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token)
                .unwrap()
                .kid
                .as_deref(),
            Some(rotated.current_key_id())
        );
        assert!(rotated.verify(&new_token, 1000).is_ok());
        // Without the previous key the old token is refused.
        let only_new = AdminTokens::new(vec![9; 32], "gatehouse-admin", "gatehouse", 3600).unwrap();
        assert_eq!(
            only_new.verify(&old_token, 1000),
            Err(AdminTokenError::Invalid)
        );
    }

    #[test]
    fn a_token_is_verified_only_with_the_key_its_kid_names() {
        // Signed with the previous key but claiming the current key's kid: refused.
        let rotated = AdminTokens::new(vec![9; 32], "gatehouse-admin", "gatehouse", 3600)
            .unwrap()
            .with_previous_key(vec![7; 32])
            .unwrap();
        let claims = AdminClaims {
            sub: ADMIN_SUBJECT.into(),
            iss: "gatehouse-admin".into(),
            aud: "gatehouse".into(),
            iat: 1000,
            exp: 2000,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rotated.current_key_id().to_owned());
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&[7; 32]).unwrap(),
        )
        .unwrap();
        assert_eq!(rotated.verify(&forged, 1000), Err(AdminTokenError::Invalid));
        // An unknown kid is refused, even with a valid signature under the current key.
        header.kid = Some("0000000000000000".into());
        let unknown = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&[9; 32]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            rotated.verify(&unknown, 1000),
            Err(AdminTokenError::Invalid)
        );
    }

    #[test]
    fn tokens_issued_before_the_not_before_epoch_are_revoked() {
        let t = tokens().with_not_before(Some(1500));
        let (before, _) = t.issue(1000).unwrap();
        let (after, _) = t.issue(1500).unwrap();
        assert_eq!(t.verify(&before, 1600), Err(AdminTokenError::Revoked));
        assert!(t.verify(&after, 1600).is_ok());
    }

    #[test]
    fn bcrypt_cost_is_read_from_the_hash() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert_eq!(bcrypt_cost(&hash), Some(4));
        assert_eq!(
            bcrypt_cost("$2b$12$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a"),
            Some(12)
        );
        assert_eq!(bcrypt_cost("$2b$1x$abc"), None);
        assert_eq!(bcrypt_cost("$2b"), None);
    }
}
