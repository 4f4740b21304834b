//! A token's claims decoded **without verification**, for display only (`whoami`, the sign-in
//! messages): the server verifies every token it is given.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The token's claims, decoded **without verification** (for display only).
pub fn unverified_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn claims_decode_without_padding() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"aud":["a","b"],"azp":"a"}"#);
        let c = unverified_claims(&format!("x.{payload}.y")).unwrap();
        assert_eq!(c["azp"], "a");
        assert!(unverified_claims("opaque").is_none());
    }
}
