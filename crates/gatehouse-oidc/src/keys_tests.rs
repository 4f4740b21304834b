//! The key set against a scripted issuer that counts its fetches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;
use crate::test_idp::{Idp, Resp};

pub(crate) const PRIV: &str = include_str!("../../gatehouse-core/testdata/rsa_private.pem");
pub(crate) const JWK: &str = include_str!("../../gatehouse-core/testdata/rsa_jwk.json");
const NOW: i64 = 1_700_000_000;

pub(crate) fn sign(issuer: &str, kid: &str, claims: serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    let mut c = serde_json::json!({"iss": issuer, "sub": "u", "aud": "gatehouse", "exp": NOW + 300, "iat": NOW});
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    jsonwebtoken::encode(&h, &c, &EncodingKey::from_rsa_pem(PRIV.as_bytes()).unwrap()).unwrap()
}

pub(crate) fn jwks(kids: &[&str]) -> String {
    let keys: Vec<serde_json::Value> = kids
        .iter()
        .map(|kid| {
            let mut jwk: serde_json::Value = serde_json::from_str(JWK).unwrap();
            jwk["kid"] = (*kid).into();
            jwk
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

pub(crate) fn discovery_doc(base: &str) -> String {
    serde_json::json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/keys"),
        "revocation_endpoint": format!("{base}/revoke"),
        "device_authorization_endpoint": format!("{base}/device"),
    })
    .to_string()
}

struct Counting {
    idp: Idp,
    jwks_fetches: Arc<AtomicUsize>,
    kids: Arc<Mutex<Vec<&'static str>>>,
}

async fn counting_issuer(cache_control: Option<&'static str>) -> Counting {
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let kids = Arc::new(Mutex::new(vec!["k1"]));
    let (jf, k) = (Arc::clone(&jwks_fetches), Arc::clone(&kids));
    let idp = Idp::handler(move |base, req| match req.path.as_str() {
        "/.well-known/openid-configuration" => Resp::json(200, discovery_doc(base)),
        "/keys" => {
            jf.fetch_add(1, Ordering::SeqCst);
            let r = Resp::json(200, jwks(&k.lock().unwrap()));
            match cache_control {
                Some(cc) => r.with_header("cache-control", cc),
                None => r,
            }
        }
        _ => Resp::json(404, "{}"),
    })
    .await;
    Counting {
        idp,
        jwks_fetches,
        kids,
    }
}

fn remote(issuer: &str, min_refetch: Duration) -> RemoteKeys {
    let settings = RemoteSettings {
        discovery_url: None,
        issuer: issuer.to_owned(),
        min_refetch_interval: min_refetch,
        refresh_interval: Duration::from_secs(300),
        refresh_bounds: (Duration::from_secs(60), Duration::from_secs(3600)),
    };
    RemoteKeys::new(settings, reqwest::Client::new(), |d| {
        Policy::new(
            d.issuer.clone(),
            vec!["gatehouse".to_owned()],
            vec!["gatehouse".to_owned()],
            crate::discovery::signing_algorithms(d),
            0,
        )
    })
}

#[tokio::test]
async fn before_the_first_load_tokens_are_not_ready_and_the_reason_is_said() {
    let is = counting_issuer(None).await;
    let keys = remote(&is.idp.base, Duration::from_secs(10));
    let t = sign(&is.idp.base, "k1", serde_json::json!({}));
    assert!(matches!(
        verify(&keys, &t, NOW).await,
        Err(TokenRefused::NotReady(_))
    ));
    assert!(keys.not_ready_reason().unwrap().contains(&is.idp.base));
    keys.refresh().await.unwrap();
    assert!(keys.not_ready_reason().is_none());
    assert_eq!(verify(&keys, &t, NOW).await.unwrap().subject, "u");
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let is = counting_issuer(None).await;
    let keys = remote(&is.idp.base, Duration::from_secs(3600));
    keys.refresh().await.unwrap();
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 1);
    // The refresh above counts as the last fetch: unknown kids within the interval refetch
    // nothing, however many arrive.
    for i in 0..20 {
        let t = sign(&is.idp.base, &format!("made-up-{i}"), serde_json::json!({}));
        assert!(matches!(
            verify(&keys, &t, NOW).await,
            Err(TokenRefused::Invalid(VerifyError::UnknownKey { .. }))
        ));
    }
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unknown_kid_after_the_interval_refetches_once_and_finds_a_rotated_key() {
    let is = counting_issuer(None).await;
    let keys = remote(&is.idp.base, Duration::from_millis(50));
    keys.refresh().await.unwrap();
    is.kids.lock().unwrap().push("k2");
    tokio::time::sleep(Duration::from_millis(80)).await;
    let t = sign(&is.idp.base, "k2", serde_json::json!({}));
    assert!(verify(&keys, &t, NOW).await.is_ok());
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 2);
    // Straight after: another unknown kid is not refetched.
    let t = sign(&is.idp.base, "k3", serde_json::json!({}));
    assert!(verify(&keys, &t, NOW).await.is_err());
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refresh_returns_the_cache_control_delay_within_bounds() {
    let is = counting_issuer(Some("public, max-age=900")).await;
    let keys = remote(&is.idp.base, Duration::from_secs(10));
    assert_eq!(keys.refresh().await.unwrap(), Duration::from_secs(900));
    let is = counting_issuer(Some("no-store")).await;
    let keys = remote(&is.idp.base, Duration::from_secs(10));
    assert_eq!(keys.refresh().await.unwrap(), Duration::from_secs(60));
}

#[tokio::test]
async fn a_static_key_set_never_refetches() {
    let is = counting_issuer(None).await;
    let keys = remote(&is.idp.base, Duration::from_millis(1));
    keys.refresh().await.unwrap();
    let fixed = StaticKeys(keys.current().unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = sign(&is.idp.base, "k9", serde_json::json!({}));
    assert!(verify(&fixed, &t, NOW).await.is_err());
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn refresh_delay_honours_max_age_within_bounds() {
    let b = (Duration::from_secs(60), Duration::from_secs(3600));
    let d = Duration::from_secs(300);
    assert_eq!(refresh_delay(None, d, b), d);
    assert_eq!(refresh_delay(Some("public"), d, b), d);
    assert_eq!(
        refresh_delay(Some("public, max-age=900, must-revalidate"), d, b),
        Duration::from_secs(900)
    );
    assert_eq!(
        refresh_delay(Some("Max-Age=120"), d, b),
        Duration::from_secs(120)
    );
    // Bounded: at least a minute, at most an hour.
    assert_eq!(
        refresh_delay(Some("max-age=0"), d, b),
        Duration::from_secs(60)
    );
    assert_eq!(
        refresh_delay(Some("max-age=5"), d, b),
        Duration::from_secs(60)
    );
    assert_eq!(
        refresh_delay(Some("max-age=86400"), d, b),
        Duration::from_secs(3600)
    );
    assert_eq!(
        refresh_delay(Some("max-age=99999999999999999999999"), d, b),
        Duration::from_secs(3600)
    );
    assert_eq!(
        refresh_delay(Some("no-store"), d, b),
        Duration::from_secs(60)
    );
    assert_eq!(
        refresh_delay(Some("max-age=600, no-cache"), d, b),
        Duration::from_secs(60)
    );
    // Garbage is ignored.
    assert_eq!(refresh_delay(Some("max-age=soon"), d, b), d);
}
