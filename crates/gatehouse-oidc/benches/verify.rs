//! Verification of an uncached ID token, RS256 and ES256, each beside the raw signature check
//! of the same token, so the cost of gatehouse's own checks shows as a ratio (issue 13's goal:
//! uncached verification within 1.3x of the signature check alone).
//!
//! - `verify/uncached/<alg>`: [`gatehouse_oidc::keys::verify`] with a key set, as the server's
//!   `OidcVerifier::verify` calls it on a cache miss: the header read, the `crit`, algorithm
//!   and `typ` checks, key selection by `kid` among three keys, the key built from its JWK,
//!   the signature checked by jsonwebtoken (aws-lc-rs), and the claims checked
//!   ([`gatehouse_core::jwt::verify`]).
//! - `verify/signature/<alg>`: [`jsonwebtoken::crypto::verify`] of the same token's signature
//!   over its first two parts, with the key already built: the work no verifier can skip.
//!
//! `bench/micro` runs it and writes the table into docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_core::discovery::Discovery;
use gatehouse_core::jwt::Policy;
use gatehouse_oidc::keys::{self, KeySet, StaticKeys};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

const RSA_PRIV: &str = include_str!("../../gatehouse-core/testdata/rsa_private.pem");
const RSA_JWK: &str = include_str!("../../gatehouse-core/testdata/rsa_jwk.json");
const EC_PRIV: &str = include_str!("../../gatehouse-core/testdata/ec_private.pem");
const EC_JWK: &str = include_str!("../../gatehouse-core/testdata/ec_jwk.json");
const OTHER_RSA_JWK: &str = include_str!("../../gatehouse-core/testdata/other_rsa_jwk.json");

const ISSUER: &str = "https://idp.example/realms/platform";
const CLIENT: &str = "gatehouse";
const NOW: i64 = 1_800_000_000;

/// The issuer's key set as an IdP publishes it during a rotation: the RSA key, the EC key and
/// a second RSA key, each with its `kid`.
fn key_set() -> StaticKeys {
    let mut other: serde_json::Value = serde_json::from_str(OTHER_RSA_JWK).unwrap();
    other["kid"] = "rsa-previous".into();
    let keys = [
        serde_json::from_str::<serde_json::Value>(RSA_JWK).unwrap(),
        other,
        serde_json::from_str(EC_JWK).unwrap(),
    ];
    let jwks: JwkSet = serde_json::from_value(serde_json::json!({ "keys": keys })).unwrap();
    let discovery = Discovery {
        issuer: ISSUER.to_owned(),
        ..Discovery::default()
    };
    let policy = Policy::new(
        ISSUER,
        vec![CLIENT.to_owned()],
        vec![CLIENT.to_owned()],
        vec![Algorithm::RS256, Algorithm::ES256],
        30,
    );
    StaticKeys(Arc::new(KeySet {
        discovery,
        jwks,
        policy,
    }))
}

/// An ID token like Keycloak's or Dex's for a user in eight groups (about 1 KB).
fn token(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "aud": CLIENT,
        "azp": CLIENT, "exp": NOW + 300, "iat": NOW - 10, "auth_time": NOW - 60,
        "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "email": "alice@example.com", "email_verified": true, "name": "Alice Example",
        "preferred_username": "alice",
        "groups": ["devs", "team-a", "team-a-oncall", "platform-readers", "eu-staff",
                   "vpn-users", "cn=engineering,ou=groups,dc=example,dc=com", "all-staff"],
    });
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

fn bench_alg(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    alg: Algorithm,
    kid: &str,
    token: &str,
) {
    let keys = key_set();
    // The real path accepts the token (so nothing below measures a refusal).
    let verified = rt.block_on(keys::verify(&keys, token, NOW)).unwrap();
    assert_eq!(verified.subject, "f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d");

    let key = DecodingKey::from_jwk(keys.0.jwks.find(kid).unwrap()).unwrap();
    let (message, signature) = token.rsplit_once('.').unwrap();
    assert!(jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, alg).unwrap());

    g.bench_function(BenchmarkId::new("uncached", name), |b| {
        b.to_async(rt)
            .iter(|| keys::verify(&keys, black_box(token), NOW));
    });
    g.bench_function(BenchmarkId::new("signature", name), |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(black_box(signature), message.as_bytes(), &key, alg)
        });
    });
}

fn verification(c: &mut Criterion) {
    let rs = token(
        Algorithm::RS256,
        "rsa1",
        &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
    );
    let es = token(
        Algorithm::ES256,
        "ec1",
        &EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("verify");
    bench_alg(&mut g, &rt, "rs256", Algorithm::RS256, "rsa1", &rs);
    bench_alg(&mut g, &rt, "es256", Algorithm::ES256, "ec1", &es);
    g.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
