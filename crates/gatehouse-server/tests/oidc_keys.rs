//! The issuer's key set against a local issuer that counts its fetches: unknown key IDs refetch
//! at most once per interval, a rotated key is picked up, and the periodic refresh (driven by a
//! clock the test steps, never by sleeping) replaces the key set, re-reads discovery, and keeps
//! what it had when the issuer fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_core::jwt::VerifyError;
use gatehouse_server::config::OidcConfig;
use gatehouse_server::oidc::{OidcError, OidcVerifier};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::{Semaphore, mpsc};

const PRIV: &str = include_str!("../../gatehouse-core/testdata/rsa_private.pem");
const JWK: &str = include_str!("../../gatehouse-core/testdata/rsa_jwk.json");

/// What the local issuer publishes; the test changes it between refreshes.
#[derive(Clone)]
struct Published {
    /// The key IDs the JWKS publishes the test key under.
    kids: Vec<String>,
    /// The JWKS response's `Cache-Control`.
    cache_control: Option<String>,
    /// The discovery document's `issuer`, when not the issuer's own URL.
    issuer_override: Option<String>,
    /// Answer 500 to everything.
    failing: bool,
}

struct Issuer {
    url: String,
    jwks_fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
    published: Arc<Mutex<Published>>,
}

impl Issuer {
    fn publish(&self, f: impl FnOnce(&mut Published)) {
        f(&mut self.published.lock().unwrap());
    }
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let discovery_fetches = Arc::new(AtomicUsize::new(0));
    let published = Arc::new(Mutex::new(Published {
        kids: vec!["k1".to_owned()],
        cache_control: None,
        issuer_override: None,
        failing: false,
    }));
    let (u, jf, df, p) = (
        url.clone(),
        Arc::clone(&jwks_fetches),
        Arc::clone(&discovery_fetches),
        Arc::clone(&published),
    );
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (u, jf, df, p) = (u.clone(), Arc::clone(&jf), Arc::clone(&df), Arc::clone(&p));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (u, jf, df, p) =
                        (u.clone(), Arc::clone(&jf), Arc::clone(&df), Arc::clone(&p));
                    async move {
                        let now = p.lock().unwrap().clone();
                        let mut resp = Response::builder();
                        let body = if now.failing {
                            resp = resp.status(500);
                            serde_json::json!({"error": "down"})
                        } else if req.uri().path() == "/.well-known/openid-configuration" {
                            df.fetch_add(1, Ordering::SeqCst);
                            serde_json::json!({
                                "issuer": now.issuer_override.clone().unwrap_or_else(|| u.clone()),
                                "authorization_endpoint": format!("{u}/auth"),
                                "token_endpoint": format!("{u}/token"), "jwks_uri": format!("{u}/keys"),
                                "id_token_signing_alg_values_supported": ["RS256", "HS256"],
                            })
                        } else {
                            jf.fetch_add(1, Ordering::SeqCst);
                            if let Some(cc) = &now.cache_control {
                                resp = resp.header("cache-control", cc);
                            }
                            let keys: Vec<serde_json::Value> = now
                                .kids
                                .iter()
                                .map(|kid| {
                                    let mut jwk: serde_json::Value =
                                        serde_json::from_str(JWK).unwrap();
                                    jwk["kid"] = kid.clone().into();
                                    jwk
                                })
                                .collect();
                            serde_json::json!({ "keys": keys })
                        };
                        Ok::<_, Infallible>(
                            resp.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
                        )
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
        jwks_fetches,
        discovery_fetches,
        published,
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
    let now = gatehouse_server::clock::unix_now();
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
    v.refresh().await.unwrap();
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 1);
    let now = gatehouse_server::clock::unix_now();
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
    // The smallest interval gatehouse accepts (A13: 0s is refused at start-up).
    let v = Arc::new(OidcVerifier::new(config(&is.url, 1)).unwrap());
    v.refresh().await.unwrap();
    // The issuer rotates: the same key is now published as k2.
    is.publish(|p| p.kids = vec!["k2".to_owned()]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let now = gatehouse_server::clock::unix_now();
    let verified = v.verify(&token(&is.url, "k2"), now).await.unwrap();
    assert_eq!(verified.subject, "u");
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 2);
    // Tokens of the old key ID are refused now, as of an unknown key (the IdP dropped it),
    // and asking for it costs no further fetch within the interval.
    let old = v.verify(&token(&is.url, "k1"), now).await;
    assert!(
        matches!(&old, Err(OidcError::Invalid(VerifyError::UnknownKey { kid: Some(k) })) if k == "k1"),
        "{old:?}"
    );
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 2);
}

/// A clock for [`OidcVerifier::run_with`]: each wait the loop asks for is reported on
/// `asked`, and ends only when the test calls [`Clock::step`].
struct Clock {
    asked: mpsc::UnboundedReceiver<Duration>,
    steps: Arc<Semaphore>,
}

impl Clock {
    fn start(v: &Arc<OidcVerifier>) -> Self {
        let (tx, asked) = mpsc::unbounded_channel();
        let steps = Arc::new(Semaphore::new(0));
        let s = Arc::clone(&steps);
        tokio::spawn(Arc::clone(v).run_with(move |d| {
            let (tx, s) = (tx.clone(), Arc::clone(&s));
            async move {
                let _ = tx.send(d);
                s.acquire().await.unwrap().forget();
            }
        }));
        Self { asked, steps }
    }

    /// The next wait the loop asks for (it has finished the work before it).
    async fn next_wait(&mut self) -> Duration {
        tokio::time::timeout(Duration::from_secs(10), self.asked.recv())
            .await
            .expect("the refresh loop did not ask to wait within 10 s")
            .unwrap()
    }

    /// Lets the current wait end.
    fn step(&self) {
        self.steps.add_permits(1);
    }
}

#[tokio::test]
async fn periodic_refresh_replaces_the_key_set_so_removed_keys_stop_verifying() {
    let is = issuer().await;
    is.publish(|p| p.cache_control = Some("public, max-age=120".to_owned()));
    // An hour between refetches for unknown kids: only the periodic refresh can change keys.
    let v = Arc::new(OidcVerifier::new(config(&is.url, 3600)).unwrap());
    let mut clock = Clock::start(&v);
    assert_eq!(clock.next_wait().await, Duration::from_secs(120), "max-age");
    let now = gatehouse_server::clock::unix_now();
    assert!(v.verify(&token(&is.url, "k1"), now).await.is_ok());
    assert_eq!(is.discovery_fetches.load(Ordering::SeqCst), 1);
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 1);

    // The IdP removes k1 and publishes k2; its response no longer names a max-age.
    is.publish(|p| {
        p.kids = vec!["k2".to_owned()];
        p.cache_control = None;
    });
    clock.step();
    assert_eq!(
        clock.next_wait().await,
        Duration::from_secs(300),
        "oidc.jwksRefreshInterval's default when there is no max-age"
    );
    assert_eq!(
        is.discovery_fetches.load(Ordering::SeqCst),
        2,
        "discovery is re-read"
    );
    assert_eq!(is.jwks_fetches.load(Ordering::SeqCst), 2);
    assert!(
        v.verify(&token(&is.url, "k2"), now).await.is_ok(),
        "the new key verifies"
    );
    assert!(
        matches!(
            v.verify(&token(&is.url, "k1"), now).await,
            Err(OidcError::Invalid(VerifyError::UnknownKey { .. }))
        ),
        "the removed key is no longer trusted"
    );
    assert_eq!(
        is.jwks_fetches.load(Ordering::SeqCst),
        2,
        "no fetch outside the schedule"
    );

    // max-age beyond the ceiling is cut to an hour.
    is.publish(|p| p.cache_control = Some("max-age=604800".to_owned()));
    clock.step();
    assert_eq!(clock.next_wait().await, Duration::from_secs(3600));
}

#[tokio::test]
async fn failed_refresh_keeps_the_loaded_keys_and_retries_sooner() {
    let is = issuer().await;
    let v = Arc::new(OidcVerifier::new(config(&is.url, 3600)).unwrap());
    let mut clock = Clock::start(&v);
    assert_eq!(clock.next_wait().await, Duration::from_secs(300));
    let now = gatehouse_server::clock::unix_now();

    // The IdP is down: the keys loaded before stay, the retry comes sooner.
    is.publish(|p| p.failing = true);
    clock.step();
    assert_eq!(clock.next_wait().await, Duration::from_secs(10));
    assert!(v.verify(&token(&is.url, "k1"), now).await.is_ok());
    assert!(v.not_ready_reason().is_none());

    // The IdP is back, but its discovery document names another issuer: refused, kept.
    is.publish(|p| {
        p.failing = false;
        p.kids = vec!["k2".to_owned()];
        p.issuer_override = Some("https://someone-else.example".to_owned());
    });
    clock.step();
    assert_eq!(clock.next_wait().await, Duration::from_secs(20), "backoff");
    assert!(v.verify(&token(&is.url, "k1"), now).await.is_ok());
    assert_eq!(
        v.discovery().unwrap().issuer,
        is.url,
        "the discovery document of another issuer is not taken"
    );
    assert_eq!(
        is.jwks_fetches.load(Ordering::SeqCst),
        1,
        "keys are not fetched from another issuer's document"
    );

    // Healthy again: replaced, and the schedule is back to normal.
    is.publish(|p| p.issuer_override = None);
    clock.step();
    assert_eq!(clock.next_wait().await, Duration::from_secs(300));
    assert!(v.verify(&token(&is.url, "k2"), now).await.is_ok());
    assert!(v.verify(&token(&is.url, "k1"), now).await.is_err());
}

fn signed(issuer: &str, typ: Option<&str>, extra: serde_json::Value) -> String {
    let now = gatehouse_server::clock::unix_now();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("k1".to_owned());
    h.typ = typ.map(str::to_owned);
    let mut claims = serde_json::json!({"iss": issuer, "sub": "u", "aud": "gatehouse", "exp": now + 300, "iat": now});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    jsonwebtoken::encode(
        &h,
        &claims,
        &EncodingKey::from_rsa_pem(PRIV.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The authenticator's answers for tokens of the configured issuer that verify but must not
/// sign anyone in (A2: an unverified email as username; A12: a token of another type or for
/// another client): 401 with the reason, and never a fall-through to the kube-apiserver, even
/// with fall-through on.
#[tokio::test]
async fn refused_claims_and_types_give_401_and_never_fall_through() {
    use gatehouse_core::identity::Principal;
    use gatehouse_core::token::BearerToken;
    use gatehouse_server::authn::{Authenticated, Authenticator, Refusal};
    use gatehouse_server::status::ApiError;

    let is = issuer().await;
    let v = Arc::new(OidcVerifier::new(config(&is.url, 3600)).unwrap());
    v.refresh().await.unwrap();
    let authn = Authenticator::new(None, Some(Arc::clone(&v)), true, 100);
    let now = gatehouse_server::clock::unix_now();
    let refused = |t: String| {
        let authn = &authn;
        async move {
            match authn.authenticate(Some(&BearerToken::new(t)), now).await {
                Err(e) => {
                    let m = e.to_string();
                    let status = ApiError::Refused(Arc::new(Refusal::Token(e))).status();
                    assert_eq!(status, 401, "expected 401, got {status} for {m}");
                    m
                }
                Ok(Authenticated::FallThrough) => panic!("fell through to the kube-apiserver"),
                other => panic!("expected 401, got {other:?}"),
            }
        }
    };
    for ev in [
        serde_json::json!(false),
        serde_json::json!("true"),
        serde_json::Value::Null,
    ] {
        let mut extra = serde_json::json!({"email": "boss@example.com"});
        if !ev.is_null() {
            extra["email_verified"] = ev.clone();
        }
        let m = refused(signed(&is.url, None, extra)).await;
        assert!(m.contains("has not verified this address"), "{ev}: {m}");
    }
    for typ in ["logout+jwt", "dpop+jwt", "secevent+jwt", "at+jwt"] {
        let m = refused(signed(&is.url, Some(typ), serde_json::json!({}))).await;
        assert!(m.contains("typ header"), "{typ}: {m}");
    }
    let m = refused(signed(
        &is.url,
        None,
        serde_json::json!({"client_id": "someone-else"}),
    ))
    .await;
    assert!(m.contains("client_id"), "{m}");
    // A verified address signs in, with the address as username.
    let ok = authn
        .authenticate(
            Some(&BearerToken::new(signed(
                &is.url,
                Some("JWT"),
                serde_json::json!({"email": "a@example.com", "email_verified": true}),
            ))),
            now,
        )
        .await
        .unwrap();
    let Authenticated::Principal(p) = ok else {
        panic!("not signed in")
    };
    let Principal::Oidc(u) = &*p else {
        panic!("not an OIDC user")
    };
    assert_eq!(u.username, "a@example.com");
}
