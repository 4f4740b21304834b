//! The issuer's key set against a local issuer that counts its JWKS fetches: unknown key IDs
//! refetch at most once per interval, and a rotated key is picked up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_server::config::OidcConfig;
use gatehouse_server::oidc::{OidcError, OidcVerifier};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const PRIV: &str = include_str!("../../gatehouse-core/testdata/rsa_private.pem");
const JWK: &str = include_str!("../../gatehouse-core/testdata/rsa_jwk.json");

struct Issuer {
    url: String,
    jwks_fetches: Arc<AtomicUsize>,
    /// The `kid` the JWKS publishes the test key under.
    kid: Arc<std::sync::Mutex<String>>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let fetches = Arc::new(AtomicUsize::new(0));
    let kid = Arc::new(std::sync::Mutex::new("k1".to_owned()));
    let (u, f, k) = (url.clone(), Arc::clone(&fetches), Arc::clone(&kid));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (u, f, k) = (u.clone(), Arc::clone(&f), Arc::clone(&k));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (u, f, k) = (u.clone(), Arc::clone(&f), Arc::clone(&k));
                    async move {
                        let body = if req.uri().path() == "/.well-known/openid-configuration" {
                            serde_json::json!({
                                "issuer": u, "authorization_endpoint": format!("{u}/auth"),
                                "token_endpoint": format!("{u}/token"), "jwks_uri": format!("{u}/keys"),
                                "id_token_signing_alg_values_supported": ["RS256", "HS256"],
                            })
                        } else {
                            f.fetch_add(1, Ordering::SeqCst);
                            let mut jwk: serde_json::Value = serde_json::from_str(JWK).unwrap();
                            jwk["kid"] = k.lock().unwrap().clone().into();
                            serde_json::json!({ "keys": [jwk] })
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Issuer {
        url,
        jwks_fetches: fetches,
        kid,
    }
}

fn config(issuer: &str, interval_secs: u64) -> OidcConfig {
    let text = format!(
        "oidc: {{ issuerUrl: '{issuer}', clientId: gatehouse, jwksMinRefreshInterval: {interval_secs}s }}"
    );
    gatehouse_server::config::parse(&text, &std::collections::HashMap::new())
        .unwrap()
        .oidc
        .unwrap()
}

fn token(issuer: &str, kid: &str) -> String {
    let now = gatehouse_server::app::unix_now();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &h,
        &serde_json::json!({"iss": issuer, "sub": "u", "aud": "gatehouse", "exp": now + 300, "iat": now}),
        &EncodingKey::from_rsa_pem(PRIV.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let is = issuer().await;
    let v = Arc::new(OidcVerifier::new(config(&is.url, 3600)).unwrap());
    Arc::clone(&v).run().await;
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 1);
    let now = gatehouse_server::app::unix_now();
    assert!(v.verify(&token(&is.url, "k1"), now).await.is_ok());
    // A flood of made-up key IDs: the interval counts from the initial load, so no refetch at
    // all happens within the hour.
    for i in 0..20 {
        let r = v
            .verify(&token(&is.url, &format!("made-up-{i}")), now)
            .await;
        assert!(matches!(r, Err(OidcError::Invalid(_))));
    }
    assert_eq!(
        is.jwks_fetches.load(Ordering::SeqCst),
        1,
        "no refetch within the interval"
    );
}

#[tokio::test]
async fn rotated_keys_are_picked_up_with_one_refetch() {
    let is = issuer().await;
    let v = Arc::new(OidcVerifier::new(config(&is.url, 0)).unwrap());
    Arc::clone(&v).run().await;
    // The issuer rotates: the same key is now published as k2.
    *is.kid.lock().unwrap() = "k2".to_owned();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = gatehouse_server::app::unix_now();
    let verified = v.verify(&token(&is.url, "k2"), now).await.unwrap();
    assert_eq!(verified.subject, "u");
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 2);
    // Tokens of the old key ID are refused now.
    assert!(v.verify(&token(&is.url, "k1"), now).await.is_err());
}
