// Over 600 lines: the case table is the suite; split, the cases would lose their one harness and their one count of refusals.
//! The negative token suite (issue 14), in-process: hostile tokens through the whole router
//! with the shared test support (a local issuer publishing the test RSA key under `KID`, a
//! recording fake kube-apiserver, a fixed clock). Every case gets a 401 Kubernetes `Status`
//! with the refusal's reason in its message, reaches nothing upstream (not even a
//! SubjectAccessReview), and counts one in `gatehouse_authentication_refusals_total` with its
//! reason label, read from `/metrics`. The cases run with fall-through on and off: a refused
//! token of the configured issuer never falls through. The skew boundaries are shown on both
//! sides with the fixed clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_server::clock::{Clock, unix_now};
use gatehouse_test_support::in_process as support;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::*;

const PODS: &str = "/api/v1/namespaces/team-a/pods";
const PRIV: &str = include_str!("../../gatehouse-core/testdata/rsa_private.pem");
const PUB: &str = include_str!("../../gatehouse-core/testdata/rsa_public.pem");
const JWK: &str = include_str!("../../gatehouse-core/testdata/rsa_jwk.json");
/// A key of the attacker's own, which the issuer never published.
const OTHER_PRIV: &str = include_str!("../../gatehouse-core/testdata/other_rsa_private.pem");
const OTHER_JWK: &str = include_str!("../../gatehouse-core/testdata/other_rsa_jwk.json");
/// `oidc.clockSkew`'s default, which the in-process configuration keeps.
const SKEW: i64 = 60;

fn issuer_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(PRIV.as_bytes()).unwrap()
}

fn other_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(OTHER_PRIV.as_bytes()).unwrap()
}

/// An RS256 header naming `kid`.
fn header(kid: Option<&str>) -> Header {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(str::to_owned);
    h
}

fn sign_with(h: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(h, claims, key).unwrap()
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A compact JWS of exactly these header and payload texts, signed with RS256 by `key`
/// (for JSON that serde would never write: repeated names, deep nesting).
fn sign_raw(header: &str, payload: &str, key: &EncodingKey) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, Algorithm::RS256).unwrap();
    format!("{message}.{sig}")
}

/// The suite's app: fall-through on or off, the clock fixed at `now`.
async fn app(fall_through: bool, now: i64) -> Harness {
    Setup {
        fall_through,
        clock: Clock::Fixed(now),
        ..Setup::default()
    }
    .build()
    .await
}

/// Valid claims of a mapped user at `now` (expiring in five minutes), with `extra` over them
/// (`null` removes a claim).
fn claims(h: &Harness, now: i64, extra: Value) -> Value {
    let mut c = json!({
        "iss": h.issuer, "sub": "alice-sub", "aud": CLIENT_ID,
        "exp": now + 300, "iat": now,
        "email": "alice@example.com", "email_verified": true, "groups": ["devs"],
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A token the issuer signed, with these claims over the valid ones.
fn issued(h: &Harness, now: i64, extra: Value) -> String {
    sign_with(&header(Some(KID)), &claims(h, now, extra), &issuer_key())
}

/// `gatehouse_authentication_refusals_total{reason}` as `/metrics` shows it now.
async fn refusals(h: &Harness, reason: &str) -> u64 {
    let m = h.get("/metrics", &[]).await;
    assert_eq!(m.status, 200);
    let series = format!("gatehouse_authentication_refusals_total{{reason=\"{reason}\"}} ");
    m.body
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// One hostile request: its name, the path (with query), its `Authorization` header (if any),
/// the reason label and a part of the message the refusal must carry.
struct Case {
    name: &'static str,
    path: String,
    token: Option<String>,
    reason: &'static str,
    message: &'static str,
}

fn case(name: &'static str, token: String, reason: &'static str, message: &'static str) -> Case {
    Case {
        name,
        path: PODS.to_owned(),
        token: Some(token),
        reason,
        message,
    }
}

/// Sends each case: 401 `Status` with the message, nothing upstream, the reason counted once.
async fn refused(h: &Harness, cases: &[Case], mode: &str) {
    for c in cases {
        let before = refusals(h, c.reason).await;
        let auth = c.token.as_deref().map(bearer);
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let a = h.get(&c.path, &headers).await;
        assert_eq!(a.status, 401, "{mode}, {}: {}", c.name, a.body);
        let s = a.json();
        assert_eq!(s["kind"], "Status", "{mode}, {}: {s}", c.name);
        assert_eq!(s["code"], 401, "{mode}, {}: {s}", c.name);
        let m = s["message"].as_str().unwrap_or("");
        assert!(
            m.contains(c.message),
            "{mode}, {}: {:?} not in {m:?}",
            c.name,
            c.message
        );
        h.kube.assert_untouched(&format!("{mode}, {}", c.name));
        assert_eq!(
            refusals(h, c.reason).await,
            before + 1,
            "{mode}, {}: not counted as {}",
            c.name,
            c.reason
        );
    }
}

/// The cases that are refused the same way with fall-through on and off: every token that
/// names the configured issuer (or a near miss of it), and tokens gatehouse reads no further.
fn cases(h: &Harness, now: i64) -> Vec<Case> {
    let valid = claims(h, now, json!({}));
    let payload = valid.to_string();
    let mut v = Vec::new();

    // alg: none, with an empty signature (not a canonical JWS) and with one.
    let none = b64(r#"{"alg":"none","kid":"rsa1"}"#);
    v.push(case(
        "alg none, empty signature",
        format!("{none}.{}.", b64(&payload)),
        "malformed",
        "not a canonical one",
    ));
    v.push(case(
        "alg none, some signature",
        format!("{none}.{}.c2ln", b64(&payload)),
        "algorithm",
        r#"signing algorithm "none" is not allowed"#,
    ));
    v.push(case(
        "alg None",
        format!("{}.{}.c2ln", b64(r#"{"alg":"None"}"#), b64(&payload)),
        "algorithm",
        r#"signing algorithm "None" is not allowed"#,
    ));

    // HS256 keyed with the issuer's public key, in each form a confused verifier might use.
    let der = STANDARD
        .decode(
            PUB.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let jwk: Value = serde_json::from_str(JWK).unwrap();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for (name, secret) in [
        (
            "HS256 keyed with the public key in PEM",
            PUB.as_bytes().to_vec(),
        ),
        ("HS256 keyed with the public key in DER", der),
        (
            "HS256 keyed with the public key as JWK",
            JWK.as_bytes().to_vec(),
        ),
        ("HS256 keyed with the JWK's modulus", n),
    ] {
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(KID.to_owned());
        v.push(case(
            name,
            sign_with(&hs, &valid, &EncodingKey::from_secret(&secret).unwrap()),
            "algorithm",
            "signing algorithm HS256 is not allowed",
        ));
    }

    // A key of one's own.
    v.push(case(
        "own key, unknown kid",
        sign_with(&header(Some("attacker")), &valid, &other_key()),
        "unknown_key",
        r#"no key with id Some("attacker") in the issuer's key set"#,
    ));
    v.push(case(
        "own key, the issuer's kid",
        sign_with(&header(Some(KID)), &valid, &other_key()),
        "bad_signature",
        "the signature does not verify",
    ));
    v.push(case(
        "own key, no kid",
        sign_with(&header(None), &valid, &other_key()),
        "bad_signature",
        "the signature does not verify",
    ));

    // Keys embedded in the header, each signed with one's own key.
    let other_jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(OTHER_JWK).unwrap();
    let mut jwk_own_kid = header(Some("attacker"));
    jwk_own_kid.jwk = Some(other_jwk.clone());
    v.push(case(
        "jwk header with its own kid",
        sign_with(&jwk_own_kid, &valid, &other_key()),
        "unknown_key",
        r#"no key with id Some("attacker") in the issuer's key set"#,
    ));
    let mut jwk_known_kid = header(Some(KID));
    jwk_known_kid.jwk = Some(other_jwk);
    v.push(case(
        "jwk header under the issuer's kid",
        sign_with(&jwk_known_kid, &valid, &other_key()),
        "bad_signature",
        "the signature does not verify",
    ));
    let mut jku = header(Some(KID));
    jku.jku = Some("https://attacker.example/keys".to_owned());
    v.push(case(
        "jku header",
        sign_with(&jku, &valid, &other_key()),
        "bad_signature",
        "the signature does not verify",
    ));
    let mut x5u = header(Some(KID));
    x5u.x5u = Some("https://attacker.example/cert.pem".to_owned());
    v.push(case(
        "x5u header",
        sign_with(&x5u, &valid, &other_key()),
        "bad_signature",
        "the signature does not verify",
    ));
    let mut x5c = header(None);
    x5c.x5c = Some(vec![STANDARD.encode(b"a certificate of one's own")]);
    v.push(case(
        "x5c header",
        sign_with(&x5c, &valid, &other_key()),
        "bad_signature",
        "the signature does not verify",
    ));

    // crit, signed by the issuer's key: an extension gatehouse does not understand, and the
    // one jsonwebtoken lets through.
    let mut crit = header(Some(KID));
    crit.crit = Some(vec!["exp".to_owned()]);
    v.push(case(
        "crit header naming an unknown extension",
        sign_with(&crit, &valid, &issuer_key()),
        "critical_header",
        "critical extensions (crit)",
    ));
    let mut b64_crit = header(Some(KID));
    b64_crit.crit = Some(vec!["b64".to_owned()]);
    b64_crit.extras.insert("b64", true);
    v.push(case(
        "crit header naming b64",
        sign_with(&b64_crit, &valid, &issuer_key()),
        "critical_header",
        "critical extensions (crit)",
    ));

    // Near misses of the configured issuer (the in-process issuer is http://127.0.0.1:port,
    // so its scheme is what has letters).
    let slash = format!("{}/", h.issuer);
    let upper = h.issuer.replacen("http://", "HTTP://", 1);
    for (name, iss) in [
        ("iss with a trailing slash", slash),
        ("iss in upper case", upper),
    ] {
        v.push(case(
            name,
            issued(h, now, json!({ "iss": iss })),
            "wrong_issuer",
            "differs from it only by a trailing slash or letter case",
        ));
    }

    // The claims.
    v.push(case(
        "aud without an accepted client",
        issued(h, now, json!({"aud": ["kubernetes", "someone-else"]})),
        "audience",
        "contains no accepted client ID or audience",
    ));
    v.push(case(
        "azp not an accepted client",
        issued(h, now, json!({"azp": "someone-else"})),
        "authorized_party",
        r#"authorized party (azp) "someone-else" is not an accepted client"#,
    ));
    v.push(case(
        "client_id not an accepted client",
        issued(h, now, json!({"client_id": "someone-else"})),
        "client",
        r#"client (client_id) "someone-else""#,
    ));
    v.push(case(
        "expired one second beyond the skew",
        issued(h, now, json!({"exp": now - SKEW - 1})),
        "expired",
        "the token expired at",
    ));
    v.push(case(
        "nbf one second beyond the skew",
        issued(h, now, json!({"nbf": now + SKEW + 1})),
        "not_yet_valid",
        "the token is not valid before",
    ));
    v.push(case(
        "iat one second beyond the skew",
        issued(h, now, json!({"iat": now + SKEW + 1})),
        "issued_in_future",
        "the token was issued in the future",
    ));
    v.push(case(
        "iat a day in the future",
        issued(h, now, json!({"iat": now + 86_400})),
        "issued_in_future",
        "the token was issued in the future",
    ));
    v.push(case(
        "no exp",
        issued(h, now, json!({"exp": null})),
        "missing_claim",
        r#"claim "exp" is missing"#,
    ));
    v.push(case(
        "exp a string",
        issued(h, now, json!({"exp": (now + 300).to_string()})),
        "missing_claim",
        r#"claim "exp" is missing or has the wrong type"#,
    ));
    let mut logout = header(Some(KID));
    logout.typ = Some("logout+jwt".to_owned());
    v.push(case(
        "a logout token",
        sign_with(&logout, &valid, &issuer_key()),
        "type",
        "typ header",
    ));

    // Encodings and shapes.
    let good = issued(h, now, json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    v.push(case(
        "broken base64 in the payload",
        format!("{}.{}*.{}", parts[0], parts[1], parts[2]),
        "malformed",
        "not a canonical one",
    ));
    v.push(case(
        "padded base64",
        format!("{}.{}==.{}", parts[0], parts[1], parts[2]),
        "malformed",
        "not a canonical one",
    ));
    if let Some(respelled) = respell(&good) {
        v.push(case(
            "the payload's unused bits changed",
            respelled,
            "malformed",
            "not a canonical one",
        ));
    }
    v.push(case(
        "two segments",
        format!("{}.{}", parts[0], parts[1]),
        "malformed",
        "has 2 parts instead of three",
    ));
    v.push(case(
        "four segments",
        format!("{good}.{}", parts[2]),
        "malformed",
        "has 4 parts instead of three",
    ));
    v.push(case(
        "a JWE",
        format!(
            "{}.a2V5.aXY.Y2lwaGVydGV4dA.dGFn",
            b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa1"}"#)
        ),
        "encrypted",
        "the token is encrypted (a JWE)",
    ));

    // Repeated JSON names, each signed by the issuer's key.
    let h_kid = r#"{"alg":"RS256","kid":"rsa1"}"#;
    let body = &payload[1..payload.len() - 1];
    v.push(case(
        "a repeated name in the header",
        sign_raw(
            r#"{"alg":"RS256","kid":"rsa1","kid":"attacker"}"#,
            &payload,
            &issuer_key(),
        ),
        "duplicate_keys",
        "repeats a JSON member name",
    ));
    v.push(case(
        "a repeated sub in the payload",
        sign_raw(
            h_kid,
            &format!(r#"{{{body},"sub":"admin"}}"#),
            &issuer_key(),
        ),
        "duplicate_keys",
        "repeats a JSON member name",
    ));
    v.push(case(
        "a repeated name, escaped, in the payload",
        sign_raw(
            h_kid,
            &format!(r#"{{{body},"\u0073ub":"admin"}}"#),
            &issuer_key(),
        ),
        "duplicate_keys",
        "repeats a JSON member name",
    ));
    v.push(case(
        "a repeated name deep in a claim",
        sign_raw(
            h_kid,
            &format!(r#"{{{body},"x":[{{"a":{{"b":1,"b":2}}}}]}}"#),
            &issuer_key(),
        ),
        "duplicate_keys",
        "repeats a JSON member name",
    ));

    // Top-level claim names equal under Go's case folding: encoding/json gives a struct field
    // (go-oidc's `iss`, `sub`, `aud`, `exp`, ...) the last of them, gatehouse reads the exact
    // one. Each signed by the issuer's key.
    for (what, extra) in [
        ("SUB after sub", r#""SUB":"admin""#),
        ("Exp after exp", r#""Exp":99999999999"#),
        ("sub with a long s (U+017F)", r#""\u017fub":"admin""#),
        (
            "a kelvin sign (U+212A) in a claim",
            r#""\u212aid":1,"kid":2"#,
        ),
    ] {
        v.push(case(
            what,
            sign_raw(h_kid, &format!("{{{body},{extra}}}"), &issuer_key()),
            "case_colliding_claims",
            "differ only in case",
        ));
    }

    // Deep and huge claims, signed by the issuer's key.
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    v.push(case(
        "a claim nested 200 deep",
        sign_raw(
            h_kid,
            &format!(r#"{{{body},"deep":{deep}}}"#),
            &issuer_key(),
        ),
        "malformed",
        "not a canonical one",
    ));
    let groups: Vec<String> = (0..2000).map(|i| format!("group-{i}")).collect();
    v.push(case(
        "huge claims (2000 groups)",
        issued(h, now, json!({ "groups": groups })),
        "too_large",
        "longer than 16384 bytes",
    ));
    v.push(case(
        "an opaque token over 16 KiB",
        "x".repeat(16 * 1024 + 1),
        "too_large",
        "longer than 16384 bytes",
    ));

    // Tokens in the query string: never read, whether the header has one or not.
    let mut query = case(
        "a valid token in ?access_token=",
        String::new(),
        "token_in_query",
        "tokens in URLs are not accepted",
    );
    query.path = format!("{PODS}?access_token={good}");
    query.token = None;
    v.push(query);
    let mut beside = case(
        "?access_token= beside a valid header",
        good.clone(),
        "token_in_query",
        "tokens in URLs are not accepted",
    );
    beside.path = format!("{PODS}?watch=1&%61ccess_token={good}");
    v.push(beside);
    v
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_their_reason_with_fall_through_off() {
    let now = unix_now();
    let h = app(false, now).await;
    let mut cases = cases(&h, now);
    // With fall-through off, a token of another issuer is refused too.
    cases.push(case(
        "another issuer",
        issued(&h, now, json!({"iss": "https://someone-else.example"})),
        "unknown_issuer",
        "fall-through to Kubernetes authentication is disabled",
    ));
    cases.push(case(
        "an opaque token",
        "opaque-token".to_owned(),
        "unknown_issuer",
        "fall-through to Kubernetes authentication is disabled",
    ));
    refused(&h, &cases, "fall-through off").await;
}

#[tokio::test]
async fn hostile_tokens_of_the_configured_issuer_never_fall_through() {
    let now = unix_now();
    let h = app(true, now).await;
    refused(&h, &cases(&h, now), "fall-through on").await;
    // The same app forwards a valid token of another issuer untouched (so the refusals above
    // are gatehouse's, not a broken fall-through).
    let other = issued(&h, now, json!({"iss": "https://someone-else.example"}));
    let a = h.get(PODS, &[("authorization", &bearer(&other))]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        h.kube.one().header("authorization"),
        Some(bearer(&other).as_str())
    );
}

/// `exp`, `nbf` and `iat` at the skew's edge, by the app's fixed clock: one second inside is
/// accepted (and acts upstream as the mapped ServiceAccount), one second outside is refused
/// for that reason.
#[tokio::test]
async fn time_claims_are_accepted_up_to_the_skew_and_refused_one_second_beyond() {
    let now = unix_now();
    let h = app(false, now).await;
    for (claim, inside, outside, reason) in [
        ("exp", now - SKEW, now - SKEW - 1, "expired"),
        ("nbf", now + SKEW, now + SKEW + 1, "not_yet_valid"),
        ("iat", now + SKEW, now + SKEW + 1, "issued_in_future"),
    ] {
        let before = h.kube.proxied().len();
        let ok = issued(&h, now, json!({ claim: inside }));
        let a = h.get(PODS, &[("authorization", &bearer(&ok))]).await;
        assert_eq!(
            a.status,
            200,
            "{claim} = now {:+}: {}",
            inside - now,
            a.body
        );
        let proxied = h.kube.proxied();
        assert_eq!(proxied.len(), before + 1, "{claim}: one request upstream");
        assert_eq!(
            proxied[before].header("impersonate-user"),
            Some("system:serviceaccount:team-a:dev")
        );

        let counted = refusals(&h, reason).await;
        let bad = issued(&h, now, json!({ claim: outside }));
        let a = h.get(PODS, &[("authorization", &bearer(&bad))]).await;
        assert_eq!(
            a.status,
            401,
            "{claim} = now {:+}: {}",
            outside - now,
            a.body
        );
        assert_eq!(a.json()["kind"], "Status");
        assert_eq!(h.kube.proxied().len(), before + 1, "{claim}: nothing more");
        assert_eq!(refusals(&h, reason).await, counted + 1, "{claim}");
    }
}

/// The metric's labels are the fixed reasons, never the token, the issuer or the claims.
#[tokio::test]
async fn the_refusal_metric_carries_no_user_data() {
    let now = unix_now();
    let h = app(true, now).await;
    let t = issued(
        &h,
        now,
        json!({"aud": "secret-audience", "sub": "secret-sub"}),
    );
    let a = h.get(PODS, &[("authorization", &bearer(&t))]).await;
    assert_eq!(a.status, 401);
    let m = h.get("/metrics", &[]).await.body;
    assert!(
        m.contains("gatehouse_authentication_refusals_total{reason=\"audience\"} 1"),
        "{m}"
    );
    for secret in [
        t.as_str(),
        "secret-audience",
        "secret-sub",
        h.issuer.as_str(),
    ] {
        assert!(!m.contains(secret), "{secret} in /metrics");
    }
}
