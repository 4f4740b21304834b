//! Bearer tokens as an opaque secret type, and the one place a token's payload is read without
//! verification ([`BearerToken::shape`] to route it, [`unverified_claims`] for display).
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

    /// What the token is, read **without verifying anything**, to route it to the verifier
    /// responsible for it.
    ///
    /// # Security
    /// The kube-apiserver's JWT authenticators read every token with three dot-separated parts
    /// as a JWT, decode its segments with Go's lenient base64 (which ignores the unused low
    /// bits of the last character) and verify the signature over the *re-encoded* segments.
    /// So one signed token has several spellings. If gatehouse could not read one of them, it
    /// would forward as "not ours" a token it refuses, and the kube-apiserver would accept it.
    /// Therefore a three-part token whose segments are not canonical unpadded base64url (the
    /// strict decoder refuses exactly the other spellings), or whose payload is not a JSON
    /// object with a string `iss` (when present), is [`TokenShape::MalformedJwt`]: refused,
    /// never forwarded. `accounts.google.com` is read as `https://accounts.google.com`, as the
    /// kube-apiserver does.
    pub fn shape(&self) -> TokenShape {
        let t = self.expose_secret();
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 {
            return TokenShape::Opaque;
        }
        let mut decoded = Vec::with_capacity(3);
        for part in &parts {
            match URL_SAFE_NO_PAD.decode(part) {
                Ok(bytes) if !part.is_empty() => decoded.push(bytes),
                _ => return TokenShape::MalformedJwt,
            }
        }
        let Ok(serde_json::Value::Object(payload)) =
            serde_json::from_slice::<serde_json::Value>(&decoded[1])
        else {
            return TokenShape::MalformedJwt;
        };
        match payload.get("iss") {
            None => TokenShape::Jwt { issuer: None },
            Some(serde_json::Value::String(iss)) => TokenShape::Jwt {
                issuer: Some(if iss == "accounts.google.com" {
                    "https://accounts.google.com".to_owned()
                } else {
                    iss.clone()
                }),
            },
            Some(_) => TokenShape::MalformedJwt,
        }
    }
}

/// A token's payload claims, decoded **without verifying anything**: `None` unless the token
/// has a second dot-separated segment that is base64url (padding tolerated) of a JSON object.
///
/// # Security
/// Nothing read here may decide access. It is for display (`whoami`, sign-in messages), for
/// reading the expiry of a token the CLI was just handed by the IdP, and for reading back a
/// token gatehouse itself verified and sealed in a session cookie (authenticated encryption).
/// Routing a request to a verifier uses the stricter [`BearerToken::shape`] instead.
pub fn unverified_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a bearer token is, before any verification ([`BearerToken::shape`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenShape {
    /// Not three dot-separated parts: not a JWT to anyone.
    Opaque,
    /// A compact JWS in canonical encoding, with its unverified `iss`.
    Jwt {
        /// The `iss` claim, when present.
        issuer: Option<String>,
    },
    /// Three parts that are not a canonical JWS: refused, never forwarded.
    MalformedJwt,
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

    fn issuer(iss: &str) -> TokenShape {
        TokenShape::Jwt {
            issuer: Some(iss.to_owned()),
        }
    }

    #[test]
    fn reads_unverified_issuer() {
        let t = BearerToken::new(jwt_with_payload(r#"{"iss":"https://idp"}"#));
        assert_eq!(t.shape(), issuer("https://idp"));
        let google = BearerToken::new(jwt_with_payload(r#"{"iss":"accounts.google.com"}"#));
        assert_eq!(google.shape(), issuer("https://accounts.google.com"));
        let none = BearerToken::new(jwt_with_payload(r#"{"sub":"x"}"#));
        assert_eq!(none.shape(), TokenShape::Jwt { issuer: None });
    }

    #[test]
    fn opaque_tokens_have_no_issuer() {
        for t in [
            "ya29.opaque-cloud-token",
            "k8s-aws-v1.abc",
            "plain",
            "a.b.c.d",
        ] {
            assert_eq!(BearerToken::new(t).shape(), TokenShape::Opaque, "{t}");
        }
    }

    #[test]
    fn a_jwt_in_another_spelling_is_malformed_never_opaque() {
        // `{"iss":"x"}` encodes to `eyJpc3MiOiJ4In0`; `...In1` decodes to the same bytes in
        // Go's lenient base64 (the last character's unused bits differ).
        let canonical = format!(
            "{}.eyJpc3MiOiJ4In0.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#)
        );
        assert_eq!(BearerToken::new(canonical.clone()).shape(), issuer("x"));
        let respelled = canonical.replace("In0.", "In1.");
        assert_eq!(
            BearerToken::new(respelled).shape(),
            TokenShape::MalformedJwt
        );
        let padded = canonical.replace("In0.", "In0=.");
        assert_eq!(BearerToken::new(padded).shape(), TokenShape::MalformedJwt);
        for bad in [
            "a.b.c",
            "..",
            format!("{}..sig", URL_SAFE_NO_PAD.encode("{}")).as_str(),
            jwt_with_payload("[1]").as_str(),
            jwt_with_payload(r#"{"iss":5}"#).as_str(),
            jwt_with_payload("not json").as_str(),
        ] {
            assert_eq!(
                BearerToken::new(bad).shape(),
                TokenShape::MalformedJwt,
                "{bad}"
            );
        }
    }

    #[test]
    fn unverified_claims_reads_the_payload_object_only() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"aud":["a","b"],"azp":"a"}"#);
        let Some(c) = unverified_claims(&format!("x.{payload}.y")) else {
            panic!("claims of a two-dot token with a JSON object payload");
        };
        assert_eq!(c["azp"], "a");
        let padded = format!("x.{}==.y", URL_SAFE_NO_PAD.encode(r#"{"sub":"s"}"#));
        assert_eq!(
            unverified_claims(&padded).and_then(|c| c.get("sub").cloned()),
            Some(serde_json::json!("s"))
        );
        for none in [
            "opaque",
            "x.!!.y",
            jwt_with_payload("[1]").as_str(),
            jwt_with_payload("not json").as_str(),
        ] {
            assert!(unverified_claims(none).is_none(), "{none}");
        }
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
