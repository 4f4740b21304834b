//! Verification of OIDC ID tokens (and JWT access tokens) against an issuer's key set.
//!
//! # Security
//! - Only asymmetric algorithms are ever accepted ([`Policy::new`] drops `none` and every HMAC
//!   algorithm from the allow-list), so a token signed with HMAC using the issuer's *public* key
//!   as the secret cannot pass. The key must also be of the algorithm's family, and when the JWK
//!   names an `alg`, it must equal the token's.
//! - `iss` is compared exactly. `aud` may be a string or a list; the token is accepted when at
//!   least one audience is an accepted client ID or configured audience (several audiences are
//!   normal for tokens shared with a kube-apiserver). When `azp` is present it must name an
//!   accepted client, which stops a token minted for some other client of the same IdP (that
//!   happens to list our audience) from being used here.
//! - `exp` is required; `exp`, `nbf` and `iat` are checked against the clock passed in, with a
//!   skew bounded by [`MAX_SKEW_SECS`].
//! - The clock is an argument, so expiry is tested without sleeping.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The largest clock skew a policy may allow, in seconds.
pub const MAX_SKEW_SECS: u64 = 60;

/// What a token must satisfy to be accepted from one issuer.
#[derive(Debug, Clone)]
pub struct Policy {
    issuer: String,
    audiences: Vec<String>,
    authorized_parties: Vec<String>,
    algorithms: Vec<Algorithm>,
    skew_secs: u64,
}

/// Algorithms that use a public key; the only ones a [`Policy`] keeps.
pub fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Policy {
    /// Builds a policy. HMAC algorithms are removed from `algorithms` and the skew is capped at
    /// [`MAX_SKEW_SECS`].
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        authorized_parties: Vec<String>,
        algorithms: Vec<Algorithm>,
        skew_secs: u64,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            authorized_parties,
            algorithms: algorithms
                .into_iter()
                .filter(|a| is_asymmetric(*a))
                .collect(),
            skew_secs: skew_secs.min(MAX_SKEW_SECS),
        }
    }

    /// The exact issuer string this policy accepts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The algorithms this policy accepts.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

/// Why a token was refused. Each variant is a distinct, testable reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The token is not a well-formed compact JWS.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header names an algorithm outside the allow-list.
    #[error("signing algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    /// No key in the issuer's key set matches the token's `kid`.
    #[error("no key with id {kid:?} in the issuer's key set")]
    UnknownKey {
        /// The `kid` from the token header.
        kid: Option<String>,
    },
    /// The key cannot be used with the token's algorithm.
    #[error("the issuer's key does not fit algorithm {0:?}")]
    KeyMismatch(Algorithm),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// `iss` differs from the configured issuer.
    #[error("issuer {found:?} is not the configured issuer")]
    WrongIssuer {
        /// The `iss` found in the token.
        found: String,
    },
    /// No audience is an accepted client ID or audience.
    #[error("audience {found:?} contains no accepted client ID or audience")]
    WrongAudience {
        /// The audiences found in the token.
        found: Vec<String>,
    },
    /// `azp` names a client that is not accepted.
    #[error("authorized party (azp) {found:?} is not an accepted client")]
    WrongAuthorizedParty {
        /// The `azp` found in the token.
        found: String,
    },
    /// The token has expired.
    #[error("the token expired at {exp} (unix time)")]
    Expired {
        /// The `exp` claim.
        exp: i64,
    },
    /// The token is not valid yet.
    #[error("the token is not valid before {nbf} (unix time)")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: i64,
    },
    /// The token was issued in the future (clock skew beyond the allowed bound).
    #[error("the token was issued in the future ({iat}, unix time)")]
    IssuedInFuture {
        /// The `iat` claim.
        iat: i64,
    },
    /// A required claim is missing or has the wrong type.
    #[error("claim {0:?} is missing or has the wrong type")]
    MissingClaim(&'static str),
}

/// A token whose signature and claims have been verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`, always as a list.
    pub audiences: Vec<String>,
    /// `azp`, when present.
    pub authorized_party: Option<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// All claims of the payload.
    pub claims: Map<String, Value>,
}

/// Verifies `token` against `keys` and `policy` at time `now` (unix seconds).
pub fn verify(
    token: &str,
    keys: &JwkSet,
    policy: &Policy,
    now: i64,
) -> Result<Verified, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if !policy.algorithms.contains(&header.alg) {
        return Err(VerifyError::AlgorithmNotAllowed(header.alg));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| VerifyError::UnknownKey {
        kid: header.kid.clone(),
    })?;
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg.to_string() != format!("{:?}", header.alg)
    {
        return Err(VerifyError::KeyMismatch(header.alg));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::KeyMismatch(header.alg))?;

    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                VerifyError::KeyMismatch(header.alg)
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed,
        },
    )?;
    check_claims(data.claims, policy, now)
}

/// Checks the registered claims of a payload whose signature is already verified.
pub fn check_claims(
    claims: Map<String, Value>,
    policy: &Policy,
    now: i64,
) -> Result<Verified, VerifyError> {
    let skew = i64::try_from(policy.skew_secs).unwrap_or(0);
    let issuer = string_claim(&claims, "iss")?;
    if issuer != policy.issuer {
        return Err(VerifyError::WrongIssuer { found: issuer });
    }
    let audiences = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(VerifyError::MissingClaim("aud"))?,
        _ => return Err(VerifyError::MissingClaim("aud")),
    };
    if !audiences.iter().any(|a| policy.audiences.contains(a)) {
        return Err(VerifyError::WrongAudience { found: audiences });
    }
    let authorized_party = match claims.get("azp") {
        None | Some(Value::Null) => None,
        Some(Value::String(azp)) => {
            if !policy.authorized_parties.contains(azp) {
                return Err(VerifyError::WrongAuthorizedParty { found: azp.clone() });
            }
            Some(azp.clone())
        }
        Some(_) => return Err(VerifyError::MissingClaim("azp")),
    };
    let exp = int_claim(&claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if now > exp.saturating_add(skew) {
        return Err(VerifyError::Expired { exp });
    }
    if let Some(nbf) = int_claim(&claims, "nbf")?
        && now.saturating_add(skew) < nbf
    {
        return Err(VerifyError::NotYetValid { nbf });
    }
    if let Some(iat) = int_claim(&claims, "iat")?
        && iat > now.saturating_add(skew)
    {
        return Err(VerifyError::IssuedInFuture { iat });
    }
    let subject = string_claim(&claims, "sub")?;
    Ok(Verified {
        issuer,
        subject,
        audiences,
        authorized_party,
        expires_at: exp,
        claims,
    })
}

fn string_claim(claims: &Map<String, Value>, name: &'static str) -> Result<String, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(VerifyError::MissingClaim(name))
}

fn int_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, VerifyError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(VerifyError::MissingClaim(name)),
        Some(_) => Err(VerifyError::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    //! Keys are generated at test time with aws-lc-rs through jsonwebtoken's PEM support, so the
    //! tests exercise real RSA and ECDSA signatures.
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const RSA_PRIV: &str = include_str!("../testdata/rsa_private.pem");
    const RSA_JWK: &str = include_str!("../testdata/rsa_jwk.json");
    const RSA_PUB: &str = include_str!("../testdata/rsa_public.pem");
    const EC_PRIV: &str = include_str!("../testdata/ec_private.pem");
    const EC_JWK: &str = include_str!("../testdata/ec_jwk.json");
    const NOW: i64 = 1_800_000_000;

    fn keys() -> JwkSet {
        let rsa: serde_json::Value = serde_json::from_str(RSA_JWK).unwrap();
        let ec: serde_json::Value = serde_json::from_str(EC_JWK).unwrap();
        serde_json::from_value(json!({ "keys": [rsa, ec] })).unwrap()
    }

    fn policy() -> Policy {
        Policy::new(
            "https://idp.example",
            vec!["gatehouse".into(), "gatehouse-cli".into()],
            vec!["gatehouse".into(), "gatehouse-cli".into()],
            vec![Algorithm::RS256, Algorithm::ES256, Algorithm::HS256],
            30,
        )
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": "https://idp.example", "sub": "u1", "aud": ["kubernetes", "gatehouse-cli"],
            "azp": "gatehouse-cli", "exp": NOW + 300, "iat": NOW - 10, "email": "a@x",
        })
    }

    fn sign_rsa(claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa1".into());
        encode(
            &h,
            claims,
            &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn accepts_multi_audience_rsa_token() {
        let v = verify(&sign_rsa(&claims()), &keys(), &policy(), NOW).unwrap();
        assert_eq!(v.subject, "u1");
        assert_eq!(v.audiences, vec!["kubernetes", "gatehouse-cli"]);
        assert_eq!(v.authorized_party.as_deref(), Some("gatehouse-cli"));
        assert_eq!(v.claims["email"], "a@x");
    }

    #[test]
    fn accepts_ecdsa_token() {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("ec1".into());
        let t = encode(
            &h,
            &claims(),
            &EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verify(&t, &keys(), &policy(), NOW).is_ok());
    }

    #[test]
    fn refuses_hmac_signed_with_public_key() {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa1".into());
        let t = encode(
            &h,
            &claims(),
            &EncodingKey::from_secret(RSA_PUB.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify(&t, &keys(), &policy(), NOW),
            Err(VerifyError::AlgorithmNotAllowed(Algorithm::HS256))
        );
    }

    #[test]
    fn refuses_alg_none() {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = format!(
            "{}.{}.",
            b.encode(r#"{"alg":"none","kid":"rsa1"}"#),
            b.encode(claims().to_string())
        );
        assert!(verify(&t, &keys(), &policy(), NOW).is_err());
    }

    #[test]
    fn refuses_tampered_payload() {
        let t = sign_rsa(&claims());
        let other = sign_rsa(
            &json!({"iss": "https://idp.example", "sub": "admin", "aud": "gatehouse", "exp": NOW + 300}),
        );
        let parts: Vec<&str> = t.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        assert_eq!(
            verify(&forged, &keys(), &policy(), NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn refuses_unknown_kid() {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rotated".into());
        let t = encode(
            &h,
            &claims(),
            &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify(&t, &keys(), &policy(), NOW),
            Err(VerifyError::UnknownKey {
                kid: Some("rotated".into())
            })
        );
    }

    #[test]
    fn refuses_key_of_other_family() {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("ec1".into());
        let t = encode(
            &h,
            &claims(),
            &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify(&t, &keys(), &policy(), NOW),
            Err(VerifyError::KeyMismatch(Algorithm::RS256))
        );
    }

    fn with(k: &str, v: serde_json::Value) -> serde_json::Value {
        let mut c = claims();
        c[k] = v;
        c
    }

    #[test]
    fn claim_checks() {
        let p = policy();
        let check =
            |c: serde_json::Value, now| check_claims(serde_json::from_value(c).unwrap(), &p, now);
        assert!(matches!(
            check(with("iss", json!("https://idp.example/")), NOW),
            Err(VerifyError::WrongIssuer { .. })
        ));
        assert!(matches!(
            check(with("aud", json!(["kubernetes"])), NOW),
            Err(VerifyError::WrongAudience { .. })
        ));
        assert!(check(with("aud", json!("gatehouse")), NOW).is_ok());
        assert!(matches!(
            check(with("azp", json!("someone-else")), NOW),
            Err(VerifyError::WrongAuthorizedParty { .. })
        ));
        let mut no_azp = claims();
        no_azp.as_object_mut().unwrap().remove("azp");
        assert!(check(no_azp, NOW).is_ok());
        // exp: accepted within the skew, refused past it.
        assert!(check(claims(), NOW + 300 + 30).is_ok());
        assert_eq!(
            check(claims(), NOW + 300 + 31),
            Err(VerifyError::Expired { exp: NOW + 300 })
        );
        assert!(matches!(
            check(with("nbf", json!(NOW + 31)), NOW),
            Err(VerifyError::NotYetValid { .. })
        ));
        assert!(check(with("nbf", json!(NOW + 30)), NOW).is_ok());
        assert!(matches!(
            check(with("iat", json!(NOW + 31)), NOW),
            Err(VerifyError::IssuedInFuture { .. })
        ));
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(no_exp, NOW), Err(VerifyError::MissingClaim("exp")));
        assert_eq!(
            check(with("sub", json!(5)), NOW),
            Err(VerifyError::MissingClaim("sub"))
        );
    }

    #[test]
    fn skew_is_capped() {
        let p = Policy::new("i", vec![], vec![], vec![Algorithm::RS256], 3600);
        assert_eq!(p.skew_secs, MAX_SKEW_SECS);
        assert_eq!(p.algorithms(), &[Algorithm::RS256]);
    }
}
