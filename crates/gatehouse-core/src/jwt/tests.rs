//! The refusal tests of `jwt`: each names the rule it proves.
//! Keys are generated at test time with aws-lc-rs through jsonwebtoken's PEM support, so the
//! tests exercise real RSA and ECDSA signatures.

use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

const RSA_PRIV: &str = include_str!("../../testdata/rsa_private.pem");
const RSA_JWK: &str = include_str!("../../testdata/rsa_jwk.json");
const RSA_PUB: &str = include_str!("../../testdata/rsa_public.pem");
const EC_PRIV: &str = include_str!("../../testdata/ec_private.pem");
const EC_JWK: &str = include_str!("../../testdata/ec_jwk.json");
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
        check(with("exp", json!("1800000300")), NOW),
        Err(VerifyError::MissingClaim("exp"))
    );
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
    let check = |c: serde_json::Value| check_claims(serde_json::from_value(c).unwrap(), &p, NOW);
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

/// The claims with `name` set to the JSON number `number`, exactly as written (`json!` would
/// read `1e300` as a float and `2^60` as an integer, but the text is what the IdP signs).
fn with_number(name: &str, number: &str) -> Map<String, Value> {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(name);
    let mut text = c.to_string();
    text.pop();
    serde_json::from_str(&format!(r#"{text},"{name}":{number}}}"#)).unwrap()
}

#[test]
fn time_claims_are_whole_seconds_within_2_pow_53() {
    let p = policy();
    let check = |name: &str, number: &str| check_claims(with_number(name, number), &p, NOW);
    let exp = |number| check("exp", number).map(|v| v.expires_at);
    // A cast would read 1e300 as i64::MAX: a token that never expires.
    for (name, expected) in [("exp", "exp"), ("nbf", "nbf"), ("iat", "iat")] {
        for bad in [
            "1e300",
            "-1e300",
            "1.5",
            "1800000000.5",
            "-0.5",
            "1152921504606846976", // 2^60, as an integer
            "-1152921504606846976",
            "9007199254740993", // 2^53 + 1
            "9007199254740994.0",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "1.8446744073709552e19",
        ] {
            assert_eq!(
                check(name, bad).map(|_| ()),
                Err(VerifyError::BadNumericDate(expected)),
                "{name}: {bad}"
            );
        }
    }
    // Whole numbers are read whatever their form, up to 2^53 itself.
    assert_eq!(exp("1800000300"), Ok(1_800_000_300));
    assert_eq!(exp("1800000300.0"), Ok(1_800_000_300));
    assert_eq!(exp("1.8000003e9"), Ok(1_800_000_300));
    assert_eq!(exp("9007199254740992"), Ok(MAX_NUMERIC_DATE));
    assert_eq!(exp("9007199254740992.0"), Ok(MAX_NUMERIC_DATE));
    assert_eq!(
        check("nbf", "-9007199254740992").map(|_| ()),
        Ok(()),
        "a whole nbf long ago"
    );
    assert_eq!(check("iat", "-0").map(|_| ()), Ok(()));
    // And the ordinary checks still apply to them.
    assert_eq!(
        check("exp", "1.7e9").map(|_| ()),
        Err(VerifyError::Expired { exp: 1_700_000_000 })
    );
    assert_eq!(
        check("nbf", "1.9e9").map(|_| ()),
        Err(VerifyError::NotYetValid { nbf: 1_900_000_000 })
    );
    // NaN and the infinities cannot be written in JSON; a number out of a double's range
    // does not parse at all.
    assert!(serde_json::from_str::<Value>("NaN").is_err());
    assert!(serde_json::from_str::<Value>("1e400").is_err());
    assert_eq!(
        VerifyError::BadNumericDate("exp").reason(),
        "numeric_date",
        "a label of its own"
    );
}

#[test]
fn header_text_in_refusals_is_cut_to_32_characters() {
    let long = "é".repeat(40) + &"x".repeat(16 * 1024);
    let cut: String = long.chars().take(32).collect();
    assert_eq!(cut.chars().count(), 32);
    let t = sign_rsa_with(rsa_header(Some(&long)), &claims());
    assert_eq!(
        verify(&t, &keys(), &policy(), NOW),
        Err(VerifyError::WrongType { found: cut.clone() })
    );
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(long.clone());
    let t = sign_rsa_with(h, &claims());
    assert_eq!(
        verify(&t, &keys(), &policy(), NOW),
        Err(VerifyError::UnknownKey {
            kid: Some(cut.clone())
        })
    );
    // A key that is not for signatures, under the long kid.
    let keys = key_set(vec![rsa_jwk_with(json!({"kid": long, "use": "enc"}))]);
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(long.clone());
    let t = sign_rsa_with(h, &claims());
    assert_eq!(
        verify(&t, &keys, &policy(), NOW),
        Err(VerifyError::KeyNotForSignatures { kid: Some(cut) })
    );
    // Short text is kept whole.
    assert_eq!(
        check_type(Some("logout+jwt"), false),
        Err(VerifyError::WrongType {
            found: "logout+jwt".to_owned()
        })
    );
}

#[test]
fn skew_is_capped() {
    let p = Policy::new("i", vec![], vec![], vec![Algorithm::RS256], 3600);
    assert_eq!(p.skew_secs, MAX_SKEW_SECS);
    assert_eq!(p.algorithms(), &[Algorithm::RS256]);
}

/// `verify` as it was with `jsonwebtoken::decode` reading the token after the key was chosen:
/// the oracle of [`the_payload_is_read_as_jsonwebtoken_reads_it`].
fn verify_with_decode(
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
    let mut validation = jsonwebtoken::Validation::new(header.alg);
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

/// A token over exactly these header and payload bytes, signed with the RSA test key.
fn raw_token(header: &str, payload: &str) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b.encode(header), b.encode(payload));
    let key = EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{message}.{signature}")
}

#[test]
fn the_payload_is_read_as_jsonwebtoken_reads_it() {
    const H: &str = r#"{"alg":"RS256","kid":"rsa1"}"#;
    let base = r#""iss":"https://idp.example","aud":"gatehouse","exp":1800000300"#;
    let mut payloads: Vec<String> = [
        r#"{"sub":"u1",BASE}"#,
        // Registered claims given twice, also behind an escape; other members given twice.
        r#"{"sub":"u1",BASE,"exp":1800000300}"#,
        r#"{"sub":"u1",BASE,"\u0065xp":1800000300}"#,
        r#"{"sub":"u1",BASE,"nbf":1,"nbf":2}"#,
        r#"{"sub":"u1","sub":"u2",BASE}"#,
        r#"{"sub":"u1",BASE,"iss":"https://idp.example"}"#,
        r#"{"sub":"u1",BASE,"aud":"gatehouse"}"#,
        r#"{"sub":"u1",BASE,"email":"a@x","email":"b@x"}"#,
        r#"{"sub":"u1",BASE,"groups":["a"],"groups":"b"}"#,
        // sub of every JSON type.
        r#"{"sub":["u1"],BASE}"#,
        r#"{"sub":{"id":"u1"},BASE}"#,
        r#"{"sub":5,BASE}"#,
        r#"{"sub":null,BASE}"#,
        r#"{"sub":true,BASE}"#,
        r#"{"sub":[],BASE}"#,
        r#"{"\u0073ub":["u1"],BASE}"#,
        r#"{"sub":"u1","\u0073ub":"u2",BASE}"#,
        r#"{"sub":{},BASE}"#,
        r#"{BASE}"#,
        // iss and aud of other types.
        r#"{"sub":"u1","iss":["https://idp.example"],"aud":"gatehouse","exp":1800000300}"#,
        r#"{"sub":"u1","iss":{},"aud":"gatehouse","exp":1800000300}"#,
        r#"{"sub":"u1","iss":"https://idp.example","aud":{},"exp":1800000300}"#,
        r#"{"sub":"u1","iss":"https://idp.example","aud":[1],"exp":1800000300}"#,
        r#"{"sub":"u1","iss":"https://idp.example","aud":["gatehouse","gatehouse"],"exp":1800000300}"#,
        // Not an object, not JSON, trailing bytes, deep nesting.
        r#"["sub"]"#,
        r#""sub""#,
        "5",
        "",
        r#"{"sub":"u1",BASE"#,
        r#"{"sub":"u1",BASE} x"#,
        r#"{"sub":"u1",BASE}  "#,
    ]
    .iter()
    .map(|p| p.replace("BASE", base))
    .collect();
    payloads.push(format!(
        r#"{{"sub":"u1",{base},"x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    ));
    // exp and nbf of every JSON type and numeric edge.
    for v in [
        "-5",
        "-0",
        "0",
        "0.0",
        "1.5",
        "1800000300.4",
        "1e30",
        "1e300",
        "-1e300",
        "9007199254740992",
        "9007199254740993",
        "1152921504606846976",
        "1.8446744073709552e19",
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775808",
        "1e400",
        r#""1800000300""#,
        "null",
        "true",
        "[]",
        "[ ]",
        "{}",
        "[1800000300]",
        "[[]]",
        r#"{"a":1}"#,
    ] {
        payloads.push(format!(
            r#"{{"sub":"u1","iss":"https://idp.example","aud":"gatehouse","exp":{v}}}"#
        ));
        payloads.push(format!(r#"{{"sub":"u1",{base},"nbf":{v}}}"#));
        payloads.push(format!(r#"{{"sub":"u1",{base},"iat":{v}}}"#));
    }
    let headers = [
        H,
        r#"{"alg":"RS256","kid":"rsa1","b64":true}"#,
        r#"{"alg":"RS256","kid":"rsa1","b64":false}"#,
        r#"{"alg":"RS256","kid":"rsa1","b64":"false"}"#,
        r#"{"alg":"RS256","kid":"rsa1","b64":null}"#,
        r#"{"alg":"RS256","kid":"rsa1","typ":"JWT","cty":"JWT","x":[1]}"#,
    ];
    let (keys, policy) = (keys(), policy());
    let mut compared = 0;
    for header in headers {
        for payload in &payloads {
            let token = raw_token(header, payload);
            let mut variants = vec![token.clone()];
            // A broken signature (its last character changed), a padded signature, and a
            // character added to the payload after signing.
            let (message, signature) = token.rsplit_once('.').unwrap();
            let flipped = if signature.ends_with('A') { 'B' } else { 'A' };
            variants.push(format!(
                "{message}.{}{flipped}",
                &signature[..signature.len() - 1]
            ));
            variants.push(format!("{message}.{signature}="));
            variants.push(format!("{message}x.{signature}"));
            for t in variants {
                assert_eq!(
                    verify(&t, &keys, &policy, NOW),
                    verify_with_decode(&t, &keys, &policy, NOW),
                    "header {header}, payload {payload}"
                );
                compared += 1;
            }
        }
    }
    // Payloads signed as base64 that is not canonical base64url without padding.
    let b = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    // A body whose length leaves one byte over (so its padded form is `==`, correct padding)
    // and whose base64url holds both `-` and `_` (so its standard-alphabet form differs).
    let body = format!(r#"{{"sub":"u1",{base},"x":"~~~???"}}"#);
    let canonical = b(&body);
    assert_eq!(body.len() % 3, 1, "{body}");
    assert!(
        canonical.contains('-') && canonical.contains('_'),
        "{canonical}"
    );
    let standard = canonical.replace('-', "+").replace('_', "/");
    let key = EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap();
    let mut odd = vec![
        // The canonical form itself, which both accept.
        canonical.clone(),
        // Correctly padded, wrongly padded, the standard alphabet (unpadded and padded).
        format!("{canonical}=="),
        format!("{canonical}="),
        format!("{canonical}==="),
        standard.clone(),
        format!("{standard}=="),
        format!("{canonical} "),
    ];
    // Spare bits set: `{}` is two bytes in three characters (two bits to spare), `5` one byte
    // in two (four to spare).
    for (payload, spare) in [("{}", "e31"), ("5", "NR")] {
        assert!(
            b(payload).len() == spare.len() && b(payload) != spare,
            "{payload}"
        );
        odd.push(spare.to_owned());
    }
    for p in odd {
        let message = format!("{}.{p}", b(H));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
        let t = format!("{message}.{signature}");
        assert_eq!(
            verify(&t, &keys, &policy, NOW),
            verify_with_decode(&t, &keys, &policy, NOW),
            "payload {p}"
        );
        compared += 1;
    }
    assert!(compared > 500, "{compared}");
    // The cases the rule above names, as they are decided.
    let refused = |payload: &str| verify(&raw_token(H, payload), &keys, &policy, NOW);
    for p in [
        r#"{"sub":"u1",BASE,"exp":1800000300}"#,
        r#"{"sub":["u1"],BASE}"#,
        r#"{"sub":"u1",BASE,"nbf":[1]}"#,
        r#"{"sub":"u1",BASE,"exp":{"a":1}}"#,
    ] {
        assert_eq!(
            refused(&p.replace("BASE", base)),
            Err(VerifyError::Malformed),
            "{p}"
        );
    }
    let last = refused(&r#"{"sub":"u1",BASE,"email":"a@x","email":"b@x"}"#.replace("BASE", base));
    assert_eq!(last.unwrap().claims["email"], "b@x");
    // The payload forms above, as they are decided: only canonical base64url passes.
    let signed = |p: &str| {
        let message = format!("{}.{p}", b(H));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
        verify(&format!("{message}.{signature}"), &keys, &policy, NOW)
    };
    assert_eq!(signed(&canonical).unwrap().claims["x"], "~~~???");
    for p in [format!("{canonical}=="), standard] {
        assert_eq!(signed(&p), Err(VerifyError::Malformed), "{p}");
    }
    // Time claims gatehouse cannot read exactly are refused on both paths, after the payload
    // is read: the oracle's reading (jsonwebtoken's) let them through to `check_claims`, which
    // both share, so the comparison above holds them to one answer and this says which.
    for (claim, v) in [
        ("exp", "1e30"),
        ("exp", "1.5"),
        ("exp", "18446744073709551615"),
        ("nbf", "-1e30"),
        ("iat", "1800000300.4"),
    ] {
        let p = if claim == "exp" {
            format!(r#"{{"sub":"u1","iss":"https://idp.example","aud":"gatehouse","exp":{v}}}"#)
        } else {
            format!(r#"{{"sub":"u1",{base},"{claim}":{v}}}"#)
        };
        let t = raw_token(H, &p);
        for path in [verify, verify_with_decode] {
            let refused = path(&t, &keys, &policy, NOW);
            assert!(
                matches!(refused, Err(VerifyError::BadNumericDate(c)) if c == claim),
                "{p}: {refused:?}"
            );
        }
    }
}

#[test]
fn the_kubernetes_policy_checks_claims_as_go_oidc_v2_does() {
    let p = Policy::kubernetes(
        "https://idp.example",
        vec!["kubernetes".into()],
        KUBERNETES_ALGORITHMS.to_vec(),
    );
    let check = |c: serde_json::Value, now| {
        check_claims(serde_json::from_value(c).unwrap(), &p, now).map(|v| v.subject)
    };
    let base = json!({"iss": "https://idp.example", "aud": "kubernetes", "exp": NOW + 60});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    // No azp/client_id check, sub optional (a string when present).
    assert_eq!(
        check(with("azp", json!("someone-else")), NOW),
        Ok(String::new())
    );
    assert_eq!(check(with("client_id", json!("x")), NOW), Ok(String::new()));
    assert_eq!(check(with("sub", json!("u")), NOW), Ok("u".to_owned()));
    assert!(check(with("sub", json!(7)), NOW).is_err());
    // exp without leeway (the current second is already past), nbf with a minute.
    assert!(matches!(
        check(base.clone(), NOW + 60),
        Err(VerifyError::Expired { .. })
    ));
    assert!(check(base.clone(), NOW + 59).is_ok());
    assert!(check(with("nbf", json!(NOW + 60)), NOW).is_ok());
    assert!(matches!(
        check(with("nbf", json!(NOW + 61)), NOW),
        Err(VerifyError::NotYetValid { .. })
    ));
    // iat is not compared with the clock, but must decode: a number, not null or a string.
    assert!(check(with("iat", json!(NOW + 3600)), NOW).is_ok());
    assert!(check(with("iat", json!(null)), NOW).is_err());
    assert!(check(with("iat", json!("1")), NOW).is_err());
    // nonce and at_hash decode into strings.
    assert!(check(with("nonce", json!("n")), NOW).is_ok());
    assert!(check(with("nonce", json!(1)), NOW).is_err());
    assert!(check(with("at_hash", json!(["x"])), NOW).is_err());
    // Distributed claims: names map to sources that exist.
    let mut ok = base.clone();
    ok["_claim_names"] = json!({"groups": "src1"});
    ok["_claim_sources"] = json!({"src1": {"endpoint": "https://x"}});
    assert!(check(ok.clone(), NOW).is_ok());
    for (names, sources) in [
        (json!("groups"), json!(null)),
        (json!({"groups": 1}), json!({"src1": {}})),
        (json!({"groups": ""}), json!({"": {}})),
        (json!({"groups": "missing"}), json!({"src1": {}})),
        (json!({"groups": "src1"}), json!({"src1": {"endpoint": 5}})),
        (
            json!({"groups": "src1"}),
            json!({"src1": {"Access_Token": []}}),
        ),
        (json!({"groups": "src1"}), json!({"src1": "x"})),
    ] {
        let mut c = base.clone();
        c["_claim_names"] = names.clone();
        c["_claim_sources"] = sources.clone();
        assert!(check(c, NOW).is_err(), "{names} {sources}");
    }
}
