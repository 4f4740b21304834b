//! Fuzz body: a bearer token from the wire through routing ([`BearerToken::shape`]) and
//! verification ([`jwt::verify`]) against a fixed key set and policy.
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the bytes;
//! - no token verifies: the key set holds public keys whose private halves were generated for
//!   this file and thrown away, and an HMAC key that the policy must never use (HS256 is not
//!   an accepted algorithm), so `Ok` means a forged token was accepted;
//! - routing and verification agree: a token routing calls `Opaque` (forwarded untouched
//!   under fall-through) is one the verifier calls malformed, never one it reads as a JWT.
//!
//! Shared by the cargo-fuzz binary (`fuzz_targets/jwt.rs`) and the stable corpus replay
//! (`crates/gatehouse-core/tests/fuzz_corpus.rs`).

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use gatehouse_core::jwt::{self, Policy, VerifyError};
use gatehouse_core::token::{BearerToken, TokenShape};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

/// The fixed "now" of every check (2023-11-14).
const NOW: i64 = 1_700_000_000;

const KEYS: &str = r#"{"keys": [
  {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "e": "AQAB",
   "n": "hkR1paTyuMhz43qYOypZXjqomS1M94Pvk7RZb1JYbeiUz7RvsmyaariBioP5ZCcikxaZO6ngSrdQ3Akh51Sa0hBeixTUZO9qV9lgYJR_Ea9hnna4E2v9vbCB0u_sd-gCmwdtLL3UO37owt_Qcj34IjTgn-H1SSqh6413khwKZMoAzEgGKtOIF7MN01p88I3YJMPdvPjnBlltJg9MMZj8J2EtyzFbrOn6OuSwXiTPRvjCyBzLXMj9ujooGRFLRtkUcXMBlrsopJF9ocw0_sKSfNhKLCiVM9q1U4fNsv67HROJpX7FLJesKyhYuiE6lQN1NB8aa9sIrzjTiqhys_7jHw"},
  {"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256",
   "x": "Md6DQxMJCz2WnFV5W_nXb7uhMRuVuWSjGQo8QTHGDlY", "y": "iCi_ROAWGxknEm0tQzT-cyyFb0UQsYjNWMUkZ2jl9iY"},
  {"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci12ZXJpZnk"}
]}"#;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys: JwkSet = match serde_json::from_str(KEYS) {
        Ok(k) => k,
        Err(e) => panic!("the fixed key set does not parse: {e}"),
    };
    let policy = Policy::new(
        "https://issuer.example",
        vec!["gatehouse".to_owned()],
        vec!["gatehouse".to_owned(), "gatehouse-cli".to_owned()],
        vec![Algorithm::RS256, Algorithm::ES256, Algorithm::HS256],
        30,
    )
    .accepting_access_tokens(data.first().is_some_and(|b| b & 1 == 1));
    let verdict = jwt::verify(token, &keys, &policy, NOW);
    assert!(
        verdict.is_err(),
        "a token nobody could sign was accepted: {verdict:?}"
    );
    let shape = BearerToken::new(token).shape();
    if shape == TokenShape::Opaque {
        assert_eq!(
            verdict,
            Err(VerifyError::Malformed),
            "routing forwards this token as opaque, but the verifier reads it as a JWT"
        );
    }
}
