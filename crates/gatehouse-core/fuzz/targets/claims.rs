//! Fuzz body: the registered-claim checks ([`jwt::check_claims`]) on any JSON payload, with an
//! oracle written from the rules, not from the code.
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the payload (huge numbers, floats, nesting, odd types);
//! - a payload that passes has: `iss` exactly the policy's issuer; an `aud` (string or list of
//!   strings) naming an accepted audience; an `azp` and a `client_id`, when present, naming an
//!   accepted client; an `exp` not before now minus the skew; an `nbf` and an `iat`, when
//!   present, not after now plus the skew; each of these three a whole number of seconds
//!   within ±2^53 (a fraction, or a value beyond, is refused: a cast would make `1e300` a
//!   token that never expires); a string `sub`.
//!
//! The first 8 bytes choose "now" (so the skew boundary is explored on both sides); the rest
//! is the payload.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use gatehouse_core::jwt::{self, Policy};
use serde_json::{Map, Value};

const SKEW: i64 = 30;

/// Runs one input.
pub fn run(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let (now, payload) = data.split_at(8);
    let mut now_bytes = [0u8; 8];
    now_bytes.copy_from_slice(now);
    // Keep "now" in the range of real clocks, so that the oracle's arithmetic cannot overflow.
    let now = 1_700_000_000
        + i64::from(i32::from_le_bytes([
            now_bytes[0],
            now_bytes[1],
            now_bytes[2],
            now_bytes[3],
        ]));
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    let policy = Policy::new(
        "https://issuer.example",
        vec!["gatehouse".to_owned(), "kubernetes".to_owned()],
        vec!["gatehouse".to_owned(), "gatehouse-cli".to_owned()],
        vec![jsonwebtoken::Algorithm::RS256],
        u64::try_from(SKEW).unwrap_or(0),
    );
    let Ok(verified) = jwt::check_claims(claims.clone(), &policy, now) else {
        return;
    };
    let accepted_aud = ["gatehouse", "kubernetes"];
    let clients = ["gatehouse", "gatehouse-cli"];
    assert_eq!(
        claims.get("iss"),
        Some(&Value::from("https://issuer.example"))
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => accepted_aud.contains(&a.as_str()),
        Some(Value::Array(items)) => {
            items.iter().all(Value::is_string)
                && items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| accepted_aud.contains(&a))
        }
        _ => false,
    };
    assert!(
        aud_ok,
        "accepted without an accepted audience: {:?}",
        claims.get("aud")
    );
    for name in ["azp", "client_id"] {
        match claims.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(c)) => assert!(clients.contains(&c.as_str()), "{name} {c:?}"),
            Some(other) => panic!("accepted a {name} that is not a string: {other}"),
        }
    }
    for name in ["exp", "nbf", "iat"] {
        if let Some(v) = claims.get(name).filter(|v| !v.is_null()) {
            assert!(
                time(&claims, name).is_some(),
                "accepted a {name} that is not whole seconds within 2^53: {v}"
            );
        }
    }
    let exp = time(&claims, "exp").unwrap_or_else(|| panic!("accepted without a numeric exp"));
    assert!(
        exp >= now - SKEW,
        "accepted an expired token: exp {exp}, now {now}"
    );
    assert_eq!(verified.expires_at, exp);
    if let Some(nbf) = time(&claims, "nbf") {
        assert!(
            nbf <= now + SKEW,
            "accepted before nbf: nbf {nbf}, now {now}"
        );
    }
    if let Some(iat) = time(&claims, "iat") {
        assert!(
            iat <= now + SKEW,
            "accepted an iat in the future: iat {iat}, now {now}"
        );
    }
    assert!(claims.get("sub").is_some_and(Value::is_string));
}

/// A time claim as the rules read it: a whole number within ±2^53, written as an integer or
/// as a float without fraction; `None` otherwise.
fn time(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    const BOUND: i64 = 9_007_199_254_740_992; // 2^53
    let n = claims.get(name)?.as_number()?;
    let whole = match n.as_i64() {
        Some(i) => i,
        None => {
            let f = n.as_f64()?;
            // 2^53 is exact as a double, and a whole double within it converts exactly.
            if !(f.is_finite() && f.trunc() == f && f.abs() <= BOUND as f64) {
                return None;
            }
            f as i64
        }
    };
    (whole.abs() <= BOUND).then_some(whole)
}
