//! Bearer tokens as an opaque secret type, and the one place a token's payload is read without
//! verification ([`BearerToken::shape`] to route it, [`unverified_claims`] for display).
//!
//! A [`BearerToken`] never prints its value (`Debug` is redacted, there is no `Display`), and the
//! only way to read it is [`BearerToken::expose_secret`], whose name makes every use easy to
//! audit. Caches are keyed by a SHA-256 [`TokenFingerprint`], so the token itself is never
//! stored as a map key; comparing fingerprints in variable time leaks nothing useful, because
//! learning a prefix of a hash does not help an attacker to find a preimage.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

/// The longest bearer token gatehouse reads, in bytes (16 KiB). A longer one is refused before
/// anything of it is parsed. ID tokens are typically one to a few kilobytes; a token near this
/// limit is an attack on the parser, or one that should carry fewer claims (groups by
/// reference rather than by value).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

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
    /// never forwarded. The header must be a JSON object too. `accounts.google.com` is read as
    /// `https://accounts.google.com`, as the kube-apiserver does.
    ///
    /// A header or payload that repeats a member name, at any depth, is
    /// [`TokenShape::DuplicateKeys`]: JSON parsers disagree on which value counts (serde_json
    /// and Go keep the last, others the first or refuse), and a verifier that reads a
    /// different `iss`, `aud` or `exp` from the one a log or another reader sees is a hole
    /// waiting to happen. RFC 7515 §5.2 lets a JWS recipient refuse such a token; gatehouse
    /// does.
    ///
    /// A payload whose top-level claim names collide under Go's case folding (`iss` and
    /// `ISS`, or `sub` and `\u{17F}ub`) is [`TokenShape::CaseCollidingClaims`]: Go's
    /// `encoding/json` matches object names to struct fields case-insensitively (by
    /// `bytes.EqualFold`, last match wins), so the kube-apiserver's OIDC verifier (go-oidc's
    /// claims struct) would read `ISS` where gatehouse reads `iss`. Refused, like repeats.
    ///
    /// A token of another number of parts whose first part is a JOSE header (a JSON object
    /// with `alg`) is a mangled JWS or a JWE (five parts, with `enc`): refused
    /// ([`TokenShape::WrongSegments`], [`TokenShape::Encrypted`]), never forwarded as opaque.
    /// Opaque tokens (a cloud provider's) never start with a JSON object.
    pub fn shape(&self) -> TokenShape {
        let t = self.expose_secret();
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 {
            return match parts.first().and_then(|p| jose_header(p)) {
                Some(h) if parts.len() == 5 && h.contains_key("enc") => TokenShape::Encrypted,
                Some(_) => TokenShape::WrongSegments {
                    segments: parts.len(),
                },
                None => TokenShape::Opaque,
            };
        }
        let mut decoded = Vec::with_capacity(3);
        for part in &parts {
            match URL_SAFE_NO_PAD.decode(part) {
                Ok(bytes) if !part.is_empty() => decoded.push(bytes),
                _ => return TokenShape::MalformedJwt,
            }
        }
        let Ok(serde_json::Value::Object(_)) =
            serde_json::from_slice::<serde_json::Value>(&decoded[0])
        else {
            return TokenShape::MalformedJwt;
        };
        let Ok(serde_json::Value::Object(payload)) =
            serde_json::from_slice::<serde_json::Value>(&decoded[1])
        else {
            return TokenShape::MalformedJwt;
        };
        if has_duplicate_keys(&decoded[0]) || has_duplicate_keys(&decoded[1]) {
            return TokenShape::DuplicateKeys;
        }
        if has_case_colliding_names(&payload) {
            return TokenShape::CaseCollidingClaims;
        }
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
    /// A canonical JWS whose header or payload repeats a member name: refused.
    DuplicateKeys,
    /// A canonical JWS whose top-level claim names are equal under Go's case folding
    /// (`iss` and `ISS`): refused.
    CaseCollidingClaims,
    /// A JOSE header, but not three parts (nor a JWE): refused.
    WrongSegments {
        /// How many dot-separated parts.
        segments: usize,
    },
    /// Five parts with a JOSE header naming `enc`: an encrypted token (JWE), refused.
    Encrypted,
}

/// The first part of a token as a JOSE header: canonical base64url of a JSON object with `alg`.
fn jose_header(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(h)) if h.contains_key("alg") => Some(h),
        _ => None,
    }
}

/// True when `json` is JSON with an object that repeats a member name, at any depth (names
/// compared after unescaping, so `"iss"` and `"\u0069ss"` are the same name). False for
/// JSON without repeats; text that is no JSON at all counts as repeating (callers parse it
/// first).
pub fn has_duplicate_keys(json: &[u8]) -> bool {
    serde_json::from_slice::<Unique>(json).is_err()
}

/// True when two of the object's names are equal under Go's `bytes.EqualFold` (Unicode simple
/// case folding, which also folds U+017F LONG S to `s` and U+212A KELVIN SIGN to `k`). The
/// fold here ([`go_fold`]) joins at least the names Go joins (a few more, such as `ß` and
/// `ss`, which only refuses more).
fn has_case_colliding_names(object: &serde_json::Map<String, serde_json::Value>) -> bool {
    let mut seen = HashSet::new();
    object.keys().any(|name| !seen.insert(go_fold(name)))
}

/// A name folded so that names Go's `bytes.EqualFold` calls equal fold alike: each character
/// lower-cased then upper-cased (each step kept only when it gives one character), which maps
/// every member of a simple case-folding orbit to one character (`s`, `S`, `\u{17F}` to `S`;
/// `k`, `K`, `\u{212A}` to `K`).
fn go_fold(name: &str) -> String {
    fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
        let c = it.next()?;
        it.next().is_none().then_some(c)
    }
    name.chars()
        .map(|c| {
            let lower = single(c.to_lowercase()).unwrap_or(c);
            single(lower.to_uppercase()).unwrap_or(lower)
        })
        .collect()
}

/// Any JSON value, refused by deserialization when an object repeats a name.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without repeated member names")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name) {
                return Err(de::Error::custom("a member name is repeated"));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
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
    fn top_level_claim_names_equal_under_go_case_folding_are_refused() {
        for colliding in [
            r#"{"iss":"https://idp","ISS":"https://other"}"#,
            r#"{"iss":"https://idp","sub":"a","Sub":"b"}"#,
            r#"{"iss":"https://idp","sub":"a","\u017fub":"b"}"#,
            r#"{"iss":"https://idp","kid":1,"\u212aid":2}"#,
            r#"{"iss":"https://idp","\u03c3":1,"\u03c2":2}"#,
        ] {
            assert_eq!(
                BearerToken::new(jwt_with_payload(colliding)).shape(),
                TokenShape::CaseCollidingClaims,
                "{colliding}"
            );
        }
        // Nested names and distinct names are fine: Go's struct fields are top-level claims.
        for fine in [
            r#"{"iss":"https://idp","a":{"x":1,"X":2}}"#,
            r#"{"iss":"https://idp","sub":"a","subs":"b","su":"c"}"#,
        ] {
            assert_eq!(
                BearerToken::new(jwt_with_payload(fine)).shape(),
                issuer("https://idp"),
                "{fine}"
            );
        }
        assert_eq!(go_fold("i\u{17F}s"), go_fold("ISS"));
        assert_eq!(go_fold("\u{212A}id"), go_fold("kid"));
        assert_ne!(go_fold("iss"), go_fold("isa"));
    }

    #[test]
    fn repeated_member_names_are_refused_at_any_depth() {
        for dup in [
            r#"{"iss":"https://idp","iss":"https://other"}"#,
            r#"{"iss":"https://idp","\u0069ss":"https://other"}"#,
            r#"{"iss":"https://idp","a":{"b":1,"b":2}}"#,
            r#"{"iss":"https://idp","a":[{"x":[{"y":1,"y":1}]}]}"#,
        ] {
            assert!(has_duplicate_keys(dup.as_bytes()), "{dup}");
            assert_eq!(
                BearerToken::new(jwt_with_payload(dup)).shape(),
                TokenShape::DuplicateKeys,
                "{dup}"
            );
        }
        for fine in [
            r#"{"iss":"https://idp","a":{"iss":1},"b":[{"iss":2},{"iss":3}]}"#,
            // (`ISS` beside `iss` is refused too, for another reason: see the case-folding test.)
            r#"{"iss":"https://idp","issuer":"x"}"#,
        ] {
            assert!(!has_duplicate_keys(fine.as_bytes()), "{fine}");
            assert_eq!(
                BearerToken::new(jwt_with_payload(fine)).shape(),
                issuer("https://idp")
            );
        }
        // In the header too.
        let t = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"a","kid":"b"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp"}"#)
        );
        assert_eq!(BearerToken::new(t).shape(), TokenShape::DuplicateKeys);
        // A header that is no JSON object: malformed.
        let t = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode("not json"),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp"}"#)
        );
        assert_eq!(BearerToken::new(t).shape(), TokenShape::MalformedJwt);
    }

    #[test]
    fn jose_headers_in_other_part_counts_are_refused_never_opaque() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#);
        let p = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp"}"#);
        assert_eq!(
            BearerToken::new(format!("{h}.{p}")).shape(),
            TokenShape::WrongSegments { segments: 2 }
        );
        assert_eq!(
            BearerToken::new(format!("{h}.{p}.sig.more")).shape(),
            TokenShape::WrongSegments { segments: 4 }
        );
        let jwe = URL_SAFE_NO_PAD.encode(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
        assert_eq!(
            BearerToken::new(format!("{jwe}.key.iv.ciphertext.tag")).shape(),
            TokenShape::Encrypted
        );
        // A five-part JWS-looking header without enc is a mangled JWS.
        assert_eq!(
            BearerToken::new(format!("{h}.a.b.c.d")).shape(),
            TokenShape::WrongSegments { segments: 5 }
        );
        // A JSON first part without alg is no JOSE header: opaque, as before.
        let no_alg = URL_SAFE_NO_PAD.encode(r#"{"x":1}"#);
        assert_eq!(
            BearerToken::new(format!("{no_alg}.{p}")).shape(),
            TokenShape::Opaque
        );
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
