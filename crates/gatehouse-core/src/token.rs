//! Bearer tokens as an opaque secret type.
//!
//! A [`BearerToken`] never prints its value (`Debug` is redacted, there is no `Display`), and the
//! only way to read it is [`BearerToken::expose_secret`], whose name makes every use easy to
//! audit. Caches are keyed by a SHA-256 [`TokenFingerprint`], so the token itself is never
//! stored as a map key; comparing fingerprints in variable time leaks nothing useful, because
//! learning a prefix of a hash does not help an attacker to find a preimage.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A bearer credential taken from a request: a JWT or an opaque token.
pub struct BearerToken(SecretString);

impl BearerToken {
    /// Wraps a token string.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The raw token. Only for verification and for forwarding it to the kube-apiserver.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// A SHA-256 digest of the token, used as a cache key.
    pub fn fingerprint(&self) -> TokenFingerprint {
        TokenFingerprint(Sha256::digest(self.expose_secret().as_bytes()).into())
    }

    /// True when the token has the three dot-separated parts of a compact JWS.
    pub fn looks_like_jwt(&self) -> bool {
        let t = self.expose_secret();
        t.split('.').count() == 3 && !t.contains(' ')
    }

    /// The `iss` claim read from the payload **without verifying anything**.
    ///
    /// Used only to route a token to the verifier responsible for it; every security decision
    /// is taken after full verification by that verifier.
    pub fn unverified_issuer(&self) -> Option<String> {
        let payload = self.expose_secret().split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        serde_json::from_slice::<Iss>(&bytes).ok()?.iss
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// SHA-256 of a token; safe to keep in memory and to use as a map key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TokenFingerprint([u8; 32]);

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_payload(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn debug_is_redacted() {
        let t = BearerToken::new("very-secret");
        assert!(!format!("{t:?}").contains("very-secret"));
    }

    #[test]
    fn reads_unverified_issuer() {
        let t = BearerToken::new(jwt_with_payload(r#"{"iss":"https://idp"}"#));
        assert!(t.looks_like_jwt());
        assert_eq!(t.unverified_issuer().as_deref(), Some("https://idp"));
    }

    #[test]
    fn opaque_tokens_have_no_issuer() {
        let t = BearerToken::new("ya29.opaque-cloud-token");
        assert!(!t.looks_like_jwt());
        assert_eq!(t.unverified_issuer(), None);
        let garbage = BearerToken::new("a.b.c");
        assert_eq!(garbage.unverified_issuer(), None);
    }

    #[test]
    fn fingerprints_differ_per_token() {
        assert_ne!(
            BearerToken::new("a").fingerprint(),
            BearerToken::new("b").fingerprint()
        );
        assert_eq!(
            BearerToken::new("a").fingerprint(),
            BearerToken::new("a").fingerprint()
        );
    }
}
