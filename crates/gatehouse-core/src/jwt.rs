// Over 600 lines: about 420 of code; the rest are its refusal tests, kept beside the security rules they prove.
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
//! - `client_id` (the client of an RFC 9068 JWT access token, which has no `azp`) must, when
//!   present, name an accepted client too, exactly like `azp`: an access token minted for some
//!   other client of the same IdP does not get in by listing our audience.
//! - The `typ` header is checked, case-insensitively and with an optional `application/`
//!   prefix (RFC 7515 §4.1.9): absent or `JWT` is accepted; `at+jwt` (RFC 9068) only when the
//!   policy accepts access tokens ([`Policy::accepting_access_tokens`]). Every other type is
//!   refused ([`VerifyError::WrongType`]), so a logout token (`logout+jwt`), a DPoP proof
//!   (`dpop+jwt`), a security event token (`secevent+jwt`) or any other JWT the IdP signs with
//!   the same keys never authenticates.
//! - Key selection ([`select_key`]): only keys usable for verifying signatures are candidates
//!   (`use` absent or `sig`, `key_ops` absent or holding `verify`), and only keys whose type
//!   and curve fit the token's algorithm (RSA for `RS*`/`PS*`, EC P-256 for `ES256`, EC P-384
//!   for `ES384`, OKP Ed25519 for `EdDSA`) and whose `alg`, when named, equals it. A token
//!   without `kid` is checked only when exactly one key is a candidate.
//! - A `crit` header (RFC 7515 §4.1.11) is refused whatever it lists
//!   ([`VerifyError::CriticalHeader`]): gatehouse understands no JWS extension, and the RFC
//!   says a token naming one the recipient does not understand must be rejected.
//!   (jsonwebtoken lets `crit: ["b64"]` with `b64: true` through; gatehouse does not.)
//! - An `alg` jsonwebtoken does not know (`none` above all) is refused as an algorithm
//!   ([`VerifyError::UnknownAlgorithm`]), before any key is looked at.
//! - Keys embedded in the header (`jwk`, `jku`, `x5u`, `x5c`) are never used: the key always
//!   comes from the issuer's key set, by `kid`.
//! - The clock is an argument, so expiry is tested without sleeping.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
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
    access_tokens: bool,
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
            access_tokens: false,
        }
    }

    /// Also accepts RFC 9068 JWT access tokens (`typ: at+jwt`), as configured with
    /// `oidc.tokenType: access_token`. Without it, only `typ` absent or `JWT` is accepted.
    #[must_use]
    pub fn accepting_access_tokens(mut self, yes: bool) -> Self {
        self.access_tokens = yes;
        self
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
    /// The header names an algorithm gatehouse does not know at all (`none` among them).
    #[error("signing algorithm {found:?} is not allowed")]
    UnknownAlgorithm {
        /// The `alg` header (at most 32 characters of it).
        found: String,
    },
    /// The header has a `crit` member (RFC 7515 §4.1.11): gatehouse understands no extension.
    #[error("the token's header names critical extensions (crit) gatehouse does not understand")]
    CriticalHeader,
    /// No key in the issuer's key set matches the token's `kid`.
    #[error("no key with id {kid:?} in the issuer's key set")]
    UnknownKey {
        /// The `kid` from the token header.
        kid: Option<String>,
    },
    /// The key cannot be used with the token's algorithm.
    #[error("the issuer's key does not fit algorithm {0:?}")]
    KeyMismatch(Algorithm),
    /// The only keys with the token's `kid` are not for signatures (`use: enc`, or `key_ops`
    /// without `verify`).
    #[error("the issuer's key {kid:?} is not a signature key (its use or key_ops say otherwise)")]
    KeyNotForSignatures {
        /// The `kid` from the token header.
        kid: Option<String>,
    },
    /// The `typ` header names a kind of JWT that does not authenticate.
    #[error(
        "the token's type (typ header {found:?}) is not accepted: ID tokens (typ absent or JWT) are, JWT access tokens (typ at+jwt) only with oidc.tokenType: access_token, and other types (logout tokens, DPoP proofs, security events) never sign in"
    )]
    WrongType {
        /// The `typ` header.
        found: String,
    },
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
    /// `client_id` (RFC 9068 access tokens) names a client that is not accepted.
    #[error("client (client_id) {found:?} is not an accepted client")]
    WrongClient {
        /// The `client_id` found in the token.
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
    let header = jsonwebtoken::decode_header(token).map_err(|_| unknown_algorithm(token))?;
    if header.crit.is_some() {
        return Err(VerifyError::CriticalHeader);
    }
    if !policy.algorithms.contains(&header.alg) {
        return Err(VerifyError::AlgorithmNotAllowed(header.alg));
    }
    check_type(header.typ.as_deref(), policy.access_tokens)?;
    let jwk = select_key(keys, header.kid.as_deref(), header.alg)?;
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

/// Why a header jsonwebtoken could not read was refused: an `alg` string it does not know
/// (`none`, `None`, `RS1`, ...) is [`VerifyError::UnknownAlgorithm`], anything else
/// [`VerifyError::Malformed`].
fn unknown_algorithm(token: &str) -> VerifyError {
    use base64::Engine as _;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, _, _] = parts.as_slice() else {
        return VerifyError::Malformed;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return VerifyError::Malformed;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(h)) => match h.get("alg") {
            Some(Value::String(alg))
                if serde_json::from_value::<Algorithm>(Value::String(alg.clone())).is_err() =>
            {
                VerifyError::UnknownAlgorithm {
                    found: alg.chars().take(32).collect(),
                }
            }
            _ => VerifyError::Malformed,
        },
        _ => VerifyError::Malformed,
    }
}

impl VerifyError {
    /// A short, fixed label for the reason (a metric label: never user data).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::AlgorithmNotAllowed(_) | VerifyError::UnknownAlgorithm { .. } => {
                "algorithm"
            }
            VerifyError::CriticalHeader => "critical_header",
            VerifyError::UnknownKey { .. } => "unknown_key",
            VerifyError::KeyMismatch(_) | VerifyError::KeyNotForSignatures { .. } => "key_mismatch",
            VerifyError::WrongType { .. } => "type",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::WrongIssuer { .. } => "wrong_issuer",
            VerifyError::WrongAudience { .. } => "audience",
            VerifyError::WrongAuthorizedParty { .. } => "authorized_party",
            VerifyError::WrongClient { .. } => "client",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::IssuedInFuture { .. } => "issued_in_future",
            VerifyError::MissingClaim(_) => "missing_claim",
        }
    }
}

/// Checks the `typ` header: absent, `JWT`, or (`access_tokens`) `at+jwt`, compared without
/// regard to case and with an optional `application/` prefix (RFC 7515 §4.1.9, RFC 9068 §2.1).
pub fn check_type(typ: Option<&str>, access_tokens: bool) -> Result<(), VerifyError> {
    let Some(typ) = typ else {
        return Ok(());
    };
    let lower = typ.to_ascii_lowercase();
    let bare = lower.strip_prefix("application/").unwrap_or(&lower);
    match bare {
        "jwt" => Ok(()),
        "at+jwt" if access_tokens => Ok(()),
        _ => Err(VerifyError::WrongType {
            found: typ.to_owned(),
        }),
    }
}

/// The key that verifies a token with `kid` and `alg`, among the keys that may: see the
/// module's Security section. With a `kid`, the first candidate with that `kid`; without, the
/// only candidate of the set.
pub fn select_key<'a>(
    keys: &'a JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a Jwk, VerifyError> {
    let named: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid)))
        .collect();
    if named.is_empty() {
        return Err(VerifyError::UnknownKey {
            kid: kid.map(str::to_owned),
        });
    }
    let signing: Vec<&Jwk> = named.into_iter().filter(|k| for_signatures(k)).collect();
    if signing.is_empty() {
        return Err(VerifyError::KeyNotForSignatures {
            kid: kid.map(str::to_owned),
        });
    }
    let fitting: Vec<&Jwk> = signing.into_iter().filter(|k| fits(k, alg)).collect();
    match (kid, fitting.as_slice()) {
        (_, []) => Err(VerifyError::KeyMismatch(alg)),
        (Some(_), [first, ..]) | (None, [first]) => Ok(*first),
        (None, _) => Err(VerifyError::UnknownKey { kid: None }),
    }
}

/// Whether the key may verify signatures: `use` absent or `sig`, `key_ops` absent or holding
/// `verify`.
fn for_signatures(jwk: &Jwk) -> bool {
    let use_ok = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let ops_ok = jwk
        .common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    use_ok && ops_ok
}

/// Whether the key's type, curve and (when named) `alg` fit `alg`.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if let Some(key_alg) = jwk.common.key_algorithm
        && !key_algorithm_is(key_alg, alg)
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

fn key_algorithm_is(key_alg: KeyAlgorithm, alg: Algorithm) -> bool {
    matches!(
        (key_alg, alg),
        (KeyAlgorithm::RS256, Algorithm::RS256)
            | (KeyAlgorithm::RS384, Algorithm::RS384)
            | (KeyAlgorithm::RS512, Algorithm::RS512)
            | (KeyAlgorithm::PS256, Algorithm::PS256)
            | (KeyAlgorithm::PS384, Algorithm::PS384)
            | (KeyAlgorithm::PS512, Algorithm::PS512)
            | (KeyAlgorithm::ES256, Algorithm::ES256)
            | (KeyAlgorithm::ES384, Algorithm::ES384)
            | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
    )
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
    match claims.get("client_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(client)) => {
            if !policy.authorized_parties.contains(client) {
                return Err(VerifyError::WrongClient {
                    found: client.clone(),
                });
            }
        }
        Some(_) => return Err(VerifyError::MissingClaim("client_id")),
    }
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
        // jsonwebtoken has no `none` algorithm: the header does not parse, so the token is
        // refused (as an algorithm) before any key or policy is consulted.
        for alg in ["none", "None", "NONE", "RS1"] {
            let t = t.replacen(
                &b.encode(r#"{"alg":"none","kid":"rsa1"}"#),
                &b.encode(format!(r#"{{"alg":"{alg}","kid":"rsa1"}}"#)),
                1,
            );
            assert_eq!(
                verify(&t, &keys(), &policy(), NOW),
                Err(VerifyError::UnknownAlgorithm { found: alg.into() }),
                "{alg}"
            );
        }
        assert_eq!(
            verify(&t, &keys(), &policy(), NOW).map_err(|e| e.reason()),
            Err("algorithm")
        );
        // A header with no alg, or alg not a string: malformed.
        for h in [r#"{"kid":"rsa1"}"#, r#"{"alg":5}"#, "[]"] {
            let t = format!("{}.{}.", b.encode(h), b.encode(claims().to_string()));
            assert_eq!(
                verify(&t, &keys(), &policy(), NOW),
                Err(VerifyError::Malformed),
                "{h}"
            );
        }
        // The same header with an algorithm the policy allows, and no signature: refused at
        // the signature, never accepted for lack of one.
        let unsigned = format!(
            "{}.{}.",
            b.encode(r#"{"alg":"RS256","kid":"rsa1"}"#),
            b.encode(claims().to_string())
        );
        assert!(matches!(
            verify(&unsigned, &keys(), &policy(), NOW),
            Err(VerifyError::BadSignature | VerifyError::Malformed)
        ));
    }

    #[test]
    fn crit_headers_are_refused_whatever_they_list() {
        // jsonwebtoken refuses an unknown extension itself, but lets `crit: ["b64"]` with
        // `b64: true` through; gatehouse understands no extension and refuses every `crit`.
        for (crit, b64) in [
            (json!(["exp"]), None),
            (json!(["b64"]), Some(true)),
            (json!([]), None),
        ] {
            let mut h = rsa_header(None);
            h.crit = serde_json::from_value(crit.clone()).unwrap();
            if let Some(b64) = b64 {
                h.extras.insert("b64", b64);
            }
            let t = sign_rsa_with(h, &claims());
            assert_eq!(
                verify(&t, &keys(), &policy(), NOW),
                Err(VerifyError::CriticalHeader),
                "{crit}"
            );
        }
    }

    #[test]
    fn keys_embedded_in_the_header_are_never_used() {
        // The header carries the issuer's own public key (and URLs) but is signed by a key the
        // issuer does not publish under that kid: refused at the signature, never trusted.
        let mut h = rsa_header(None);
        h.kid = Some("ec1".into());
        h.jwk = Some(serde_json::from_str(RSA_JWK).unwrap());
        h.jku = Some("https://attacker.example/keys".into());
        h.x5u = Some("https://attacker.example/cert.pem".into());
        let t = sign_rsa_with(h, &claims());
        assert_eq!(
            verify(&t, &keys(), &policy(), NOW),
            Err(VerifyError::KeyMismatch(Algorithm::RS256))
        );
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

    fn sign_rsa_with(header: Header, claims: &serde_json::Value) -> String {
        encode(
            &header,
            claims,
            &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn rsa_header(typ: Option<&str>) -> Header {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa1".into());
        h.typ = typ.map(str::to_owned);
        h
    }

    fn key_set(keys: Vec<serde_json::Value>) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    fn rsa_jwk_with(changes: serde_json::Value) -> serde_json::Value {
        let mut jwk: serde_json::Value = serde_json::from_str(RSA_JWK).unwrap();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                jwk.as_object_mut().unwrap().remove(k);
            } else {
                jwk[k] = v.clone();
            }
        }
        jwk
    }

    #[test]
    fn typ_header_accepts_only_id_and_access_token_types() {
        let id_only = policy();
        let with_at = policy().accepting_access_tokens(true);
        for typ in [None, Some("JWT"), Some("jwt"), Some("application/JWT")] {
            let t = sign_rsa_with(rsa_header(typ), &claims());
            assert!(verify(&t, &keys(), &id_only, NOW).is_ok(), "{typ:?}");
            assert!(verify(&t, &keys(), &with_at, NOW).is_ok(), "{typ:?}");
        }
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            let t = sign_rsa_with(rsa_header(Some(typ)), &claims());
            assert!(verify(&t, &keys(), &with_at, NOW).is_ok(), "{typ}");
            assert_eq!(
                verify(&t, &keys(), &id_only, NOW),
                Err(VerifyError::WrongType { found: typ.into() }),
                "an access token is no ID token"
            );
        }
        for typ in [
            "logout+jwt",
            "dpop+jwt",
            "secevent+jwt",
            "application/logout+jwt",
            "JOSE",
            "",
            "jwt ",
        ] {
            let t = sign_rsa_with(rsa_header(Some(typ)), &claims());
            for p in [&id_only, &with_at] {
                assert_eq!(
                    verify(&t, &keys(), p, NOW),
                    Err(VerifyError::WrongType { found: typ.into() }),
                    "{typ:?}"
                );
            }
        }
    }

    #[test]
    fn client_id_must_be_an_accepted_client() {
        let p = policy().accepting_access_tokens(true);
        let check =
            |c: serde_json::Value| check_claims(serde_json::from_value(c).unwrap(), &p, NOW);
        // An RFC 9068 access token: the client is in client_id, there is no azp.
        let mut at = claims();
        at.as_object_mut().unwrap().remove("azp");
        at["client_id"] = json!("gatehouse-cli");
        assert!(check(at.clone()).is_ok());
        at["client_id"] = json!("another-client");
        assert_eq!(
            check(at.clone()),
            Err(VerifyError::WrongClient {
                found: "another-client".into()
            })
        );
        at["client_id"] = json!(["gatehouse-cli"]);
        assert_eq!(check(at), Err(VerifyError::MissingClaim("client_id")));
        // Both present: both are checked.
        assert!(matches!(
            check(with("client_id", json!("another-client"))),
            Err(VerifyError::WrongClient { .. })
        ));
        // Through the whole verification too.
        let t = sign_rsa_with(
            rsa_header(Some("at+jwt")),
            &with("client_id", json!("another-client")),
        );
        assert!(matches!(
            verify(&t, &keys(), &p, NOW),
            Err(VerifyError::WrongClient { .. })
        ));
    }

    #[test]
    fn encryption_keys_are_never_candidates() {
        let t = sign_rsa(&claims());
        for changes in [
            json!({"use": "enc"}),
            json!({"use": "enc", "alg": null}),
            json!({"use": "other"}),
            json!({"use": null, "key_ops": ["encrypt", "wrapKey"]}),
            json!({"key_ops": ["sign"]}),
        ] {
            let set = key_set(vec![rsa_jwk_with(changes.clone())]);
            assert_eq!(
                verify(&t, &set, &policy(), NOW),
                Err(VerifyError::KeyNotForSignatures {
                    kid: Some("rsa1".into())
                }),
                "{changes}"
            );
        }
        // The same kid published twice, for encryption and for signatures: the signature key
        // verifies.
        let set = key_set(vec![
            rsa_jwk_with(json!({"use": "enc", "alg": "RSA-OAEP"})),
            rsa_jwk_with(json!({"key_ops": ["verify"]})),
        ]);
        assert!(verify(&t, &set, &policy(), NOW).is_ok());
        // No kid: the one signature key of the set is the only candidate.
        let no_kid = sign_rsa_with(Header::new(Algorithm::RS256), &claims());
        let set = key_set(vec![
            rsa_jwk_with(json!({"use": "enc", "alg": "RSA-OAEP", "kid": "e"})),
            rsa_jwk_with(json!({"kid": "s"})),
        ]);
        assert!(verify(&no_kid, &set, &policy(), NOW).is_ok());
        let set = key_set(vec![rsa_jwk_with(json!({"use": "enc", "alg": "RSA-OAEP"}))]);
        assert_eq!(
            verify(&no_kid, &set, &policy(), NOW),
            Err(VerifyError::KeyNotForSignatures { kid: None })
        );
    }

    #[test]
    fn keys_of_the_wrong_type_or_curve_are_never_candidates() {
        let es256 = {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some("ec1".into());
            encode(
                &h,
                &claims(),
                &EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap(),
            )
            .unwrap()
        };
        let ec: serde_json::Value = serde_json::from_str(EC_JWK).unwrap();
        // The real key, but published as a P-384 key (without alg): not a candidate for ES256.
        let mut p384 = ec.clone();
        p384["crv"] = json!("P-384");
        p384.as_object_mut().unwrap().remove("alg");
        assert_eq!(
            verify(&es256, &key_set(vec![p384]), &policy(), NOW),
            Err(VerifyError::KeyMismatch(Algorithm::ES256))
        );
        // An RSA token naming an EC key, and a key whose alg names another algorithm.
        let mut other_alg = rsa_jwk_with(json!({"alg": "RS512"}));
        other_alg["kid"] = json!("rsa1");
        assert_eq!(
            verify(
                &sign_rsa(&claims()),
                &key_set(vec![other_alg]),
                &policy(),
                NOW
            ),
            Err(VerifyError::KeyMismatch(Algorithm::RS256))
        );
        let mut ec_as_rsa1 = ec.clone();
        ec_as_rsa1["kid"] = json!("rsa1");
        ec_as_rsa1.as_object_mut().unwrap().remove("alg");
        assert_eq!(
            verify(
                &sign_rsa(&claims()),
                &key_set(vec![ec_as_rsa1]),
                &policy(),
                NOW
            ),
            Err(VerifyError::KeyMismatch(Algorithm::RS256))
        );
        // The right curve verifies.
        assert!(verify(&es256, &key_set(vec![ec]), &policy(), NOW).is_ok());
    }

    #[test]
    fn skew_is_capped() {
        let p = Policy::new("i", vec![], vec![], vec![Algorithm::RS256], 3600);
        assert_eq!(p.skew_secs, MAX_SKEW_SECS);
        assert_eq!(p.algorithms(), &[Algorithm::RS256]);
    }
}
