//! Conformance: the same `AuthenticationConfiguration`, the same tokens, the same answer from
//! the kube-apiserver and from gatehouse.
//!
//! The test bed's kube-apiserver reads `testbed/.state/kube/authentication-config.yaml`: its
//! Dex, Keycloak and node issuers plus the static issuers of `testbed/conformance/issuers.yaml`
//! (served over HTTPS by `testbed/static-issuers/server.py`). This test reads that same file
//! with gatehouse's code (`gatehouse-authconfig`: parse, validate, compile the CEL), signs the
//! tokens of `testbed/conformance/tokens.yaml` with the static issuers' keys (and fetches real
//! ones from Dex and Keycloak), and for each token compares:
//! - the kube-apiserver's answer: `SelfSubjectReview` with the token, straight to it (its user
//!   info, or 401);
//! - gatehouse's: the token routed by its unverified `iss`, verified by that issuer's key set
//!   and the kube-apiserver's claim rules (`gatehouse_core::jwt::Policy::kubernetes`), and its
//!   claims mapped (`Authenticator::user`).
//!
//! Every difference is reported at once, naming the token, the field and both values. The
//! `accept` of each case is checked on both sides too, so a corpus whose issuers one side never
//! loaded cannot pass by both refusing everything. `system:authenticated` is left out of the
//! kube-apiserver's groups: it adds that group to every authenticated user, and does so to the
//! users gatehouse impersonates as well.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use gatehouse_authconfig::{Authenticator, Environment, Options, UserInfo};
use gatehouse_core::jwt::{self, Policy};
use gatehouse_core::token::{BearerToken, TokenShape};
use gatehouse_test_support as support;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use support::Testbed;

#[derive(Deserialize)]
struct IssuersFile {
    issuers: Vec<StaticIssuer>,
}

#[derive(Deserialize)]
struct StaticIssuer {
    name: String,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
struct Corpus {
    tokens: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    issuer: String,
    accept: bool,
    #[serde(default)]
    claims: Map<String, Value>,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "signedBy")]
    signed_by: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default, rename = "knownDifference")]
    known_difference: Option<String>,
}

fn conformance_dir() -> PathBuf {
    support::process::workspace_root().join("testbed/conformance")
}

/// `"@now+60"`/`"@now-120"`: a time; `"@200"`: that many generated strings; else as written.
fn expand(v: &Value, now: i64) -> Value {
    match v {
        Value::String(s) if s.starts_with("@now") => {
            let offset: i64 = s["@now".len()..].parse().unwrap_or(0);
            json!(now + offset)
        }
        Value::String(s) if s.starts_with('@') && s[1..].chars().all(|c| c.is_ascii_digit()) => {
            let n: usize = s[1..].parse().unwrap();
            Value::Array((0..n).map(|i| json!(format!("group-{i}"))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| expand(i, now)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), expand(v, now))).collect())
        }
        other => other.clone(),
    }
}

/// Signs a static issuer's token.
fn sign(
    tb: &Testbed,
    case: &Case,
    issuers: &IssuersFile,
    authenticators: &[Authenticator],
    now: i64,
) -> String {
    let issuer = issuers
        .issuers
        .iter()
        .find(|i| i.name == case.issuer)
        .unwrap_or_else(|| panic!("{}: no static issuer {}", case.name, case.issuer));
    let url = format!("{}/{}", tb.var("STATIC_ISSUERS_URL"), issuer.name);
    let audience = authenticators
        .iter()
        .find(|a| a.issuer == url)
        .unwrap_or_else(|| {
            panic!("{url} is not in the kube-apiserver's AuthenticationConfiguration")
        })
        .audiences[0]
        .clone();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(url));
    claims.insert("aud".into(), json!(audience));
    claims.insert("sub".into(), json!(case.name));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + 600));
    for d in &case.drop {
        claims.remove(d);
    }
    for (k, v) in &case.claims {
        claims.insert(k.clone(), expand(v, now));
    }
    let default_alg = if issuer.key.as_deref() == Some("ec") {
        "ES256"
    } else {
        "RS256"
    };
    let alg = case.alg.as_deref().unwrap_or(default_alg);
    let signer = case.signed_by.as_deref().unwrap_or(&issuer.name);
    let pki = tb.var("STATIC_ISSUERS_PKI");
    let (algorithm, key, kid_suffix) = match alg {
        "RS256" => {
            let pem = std::fs::read(format!("{pki}/static-{signer}-rsa.key")).unwrap();
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(&pem).unwrap(),
                "rsa",
            )
        }
        "ES256" => {
            let pem = std::fs::read(format!("{pki}/static-{signer}-ec.key")).unwrap();
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(&pem).unwrap(),
                "ec",
            )
        }
        other => panic!(
            "{}: alg {other} is not one the corpus signs with",
            case.name
        ),
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(
        case.kid
            .clone()
            .unwrap_or_else(|| format!("{signer}-{kid_suffix}")),
    );
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// The kube-apiserver's answer: its user info for the token, or `None` for 401.
async fn kube_user(tb: &Testbed, http: &reqwest::Client, token: &str) -> Option<UserInfo> {
    let resp = http
        .post(format!(
            "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            tb.var("KUBE_APISERVER_URL")
        ))
        .bearer_auth(token)
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    match resp.status().as_u16() {
        401 => None,
        201 | 200 => {
            let v: Value = resp.json().await.unwrap();
            let info = &v["status"]["userInfo"];
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            Some(UserInfo {
                username: info["username"].as_str().unwrap_or_default().to_owned(),
                uid: info["uid"].as_str().unwrap_or_default().to_owned(),
                groups: strings(&info["groups"])
                    .into_iter()
                    .filter(|g| g != "system:authenticated")
                    .collect(),
                extra: info["extra"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                    .unwrap_or_default(),
            })
        }
        other => panic!(
            "SelfSubjectReview answered {other}: {}",
            resp.text().await.unwrap_or_default()
        ),
    }
}

/// gatehouse's answer: routed by `iss`, verified by that issuer only, claims mapped.
fn gatehouse_user(
    authenticators: &[Authenticator],
    keys: &BTreeMap<String, JwkSet>,
    env: &Environment,
    token: &str,
    now: i64,
) -> Result<UserInfo, String> {
    let issuer = match BearerToken::new(token).shape() {
        TokenShape::Jwt { issuer: Some(iss) } => iss,
        other => return Err(format!("not routed: {other:?}")),
    };
    let a = authenticators
        .iter()
        .find(|a| a.issuer == issuer)
        .ok_or_else(|| format!("no issuer {issuer}"))?;
    let policy = Policy::kubernetes(
        a.issuer.clone(),
        a.audiences.clone(),
        jwt::KUBERNETES_ALGORITHMS.to_vec(),
    );
    let verified = jwt::verify(token, &keys[&a.issuer], &policy, now).map_err(|e| e.to_string())?;
    let mut user = a.user(env, &verified.claims).map_err(|e| e.to_string())?;
    user.groups.retain(|g| g != "system:authenticated");
    Ok(user)
}

/// Each issuer's key set, read as gatehouse reads it: discovery (or `discoveryURL`), then
/// `jwks_uri`.
async fn key_sets(
    http: &reqwest::Client,
    config: &gatehouse_authconfig::AuthenticationConfiguration,
) -> BTreeMap<String, JwkSet> {
    let mut out = BTreeMap::new();
    for a in &config.jwt {
        let discovery_url = a
            .issuer
            .discovery_url
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "{}/.well-known/openid-configuration",
                    a.issuer.url.trim_end_matches('/')
                )
            });
        let Ok(resp) = http.get(&discovery_url).send().await else {
            continue;
        };
        let Ok(d) = resp.json::<Value>().await else {
            continue;
        };
        let jwks_uri = d["jwks_uri"].as_str().unwrap().to_owned();
        let set: JwkSet = http
            .get(&jwks_uri)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.insert(a.issuer.url.clone(), set);
    }
    out
}

fn compare(
    name: &str,
    kube: &Option<UserInfo>,
    gatehouse: &Result<UserInfo, String>,
    out: &mut Vec<String>,
) {
    match (kube, gatehouse) {
        (None, Err(_)) => {}
        (Some(k), Err(e)) => out.push(format!(
            "{name}: the kube-apiserver accepts it as {k:?}, gatehouse refuses it: {e}"
        )),
        (None, Ok(g)) => out.push(format!(
            "{name}: the kube-apiserver refuses it, gatehouse accepts it as {g:?}"
        )),
        (Some(k), Ok(g)) => {
            if k.username != g.username {
                out.push(format!(
                    "{name}: username: kube-apiserver {:?}, gatehouse {:?}",
                    k.username, g.username
                ));
            }
            if k.uid != g.uid {
                out.push(format!(
                    "{name}: uid: kube-apiserver {:?}, gatehouse {:?}",
                    k.uid, g.uid
                ));
            }
            if k.groups != g.groups {
                out.push(format!(
                    "{name}: groups: kube-apiserver {:?}, gatehouse {:?}",
                    k.groups, g.groups
                ));
            }
            if k.extra != g.extra {
                out.push(format!(
                    "{name}: extra: kube-apiserver {:?}, gatehouse {:?}",
                    k.extra, g.extra
                ));
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn the_kube_apiserver_and_gatehouse_make_the_same_user_from_the_same_file() {
    let tb = Testbed::load();
    let http = tb.http();
    let file = std::fs::read_to_string(tb.var("KUBE_AUTHENTICATION_CONFIG")).unwrap();
    let config = gatehouse_authconfig::parse(&file).unwrap();
    let env = Environment::new().unwrap();
    let options = Options {
        disallowed_issuers: vec![tb.var("KUBE_SA_ISSUER")],
    };
    let authenticators = gatehouse_authconfig::compile(&config, &options, &env)
        .unwrap_or_else(|p| panic!("gatehouse refuses the kube-apiserver's file: {p:#?}"));
    let keys = key_sets(&http, &config).await;
    let issuers: IssuersFile = serde_saphyr::from_str(
        &std::fs::read_to_string(conformance_dir().join("issuers.yaml")).unwrap(),
    )
    .unwrap();
    let corpus: Corpus = serde_saphyr::from_str(
        &std::fs::read_to_string(conformance_dir().join("tokens.yaml")).unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let mut differences = Vec::new();
    let mut accepted = 0;
    let mut refused = 0;
    let mut known = 0;
    let mut issuers_seen = BTreeSet::new();
    for case in &corpus.tokens {
        let token = match case.issuer.as_str() {
            "dex" => tb.id_token(case.user.as_deref().unwrap(), "").await,
            "keycloak" => {
                tb.require_keycloak();
                tb.keycloak_id_token(case.user.as_deref().unwrap()).await
            }
            _ => sign(&tb, case, &issuers, &authenticators, now),
        };
        issuers_seen.insert(case.issuer.clone());
        let kube = kube_user(&tb, &http, &token).await;
        let gatehouse = gatehouse_user(&authenticators, &keys, &env, &token, now);
        if let Some(why) = &case.known_difference {
            // Documented: gatehouse refuses what the kube-apiserver accepts, and nothing else.
            if kube.is_none() || gatehouse.is_ok() || !case.accept {
                differences.push(format!(
                    "{}: marked as a known difference ({why}): the kube-apiserver must accept it and gatehouse refuse it, but the kube-apiserver says {kube:?} and gatehouse {gatehouse:?}; if the difference is gone, remove the mark",
                    case.name
                ));
            }
            known += 1;
            issuers_seen.insert(case.issuer.clone());
            continue;
        }
        compare(&case.name, &kube, &gatehouse, &mut differences);
        if kube.is_some() != case.accept {
            differences.push(format!(
                "{}: written to be {}, the kube-apiserver {} it ({kube:?})",
                case.name,
                if case.accept { "accepted" } else { "refused" },
                if kube.is_some() { "accepts" } else { "refuses" },
            ));
        }
        if gatehouse.is_ok() != case.accept {
            differences.push(format!(
                "{}: written to be {}, gatehouse {} it ({gatehouse:?})",
                case.name,
                if case.accept { "accepted" } else { "refused" },
                if gatehouse.is_ok() {
                    "accepts"
                } else {
                    "refuses"
                },
            ));
        }
        match (&kube, &gatehouse) {
            (Some(_), Ok(_)) => accepted += 1,
            (None, Err(_)) => refused += 1,
            _ => {}
        }
    }
    println!(
        "conformance: {} tokens over {} issuers: {accepted} accepted by both, {refused} refused by both, {known} known (documented) differences, {} unexpected differences",
        corpus.tokens.len(),
        issuers_seen.len(),
        differences.len()
    );
    assert!(
        differences.is_empty(),
        "the kube-apiserver and gatehouse disagree:\n{}",
        differences.join("\n")
    );
    assert!(corpus.tokens.len() >= 60 && issuers_seen.len() >= 8);
    // The corpus proves something only if most of it agrees outright.
    assert!(
        accepted >= 25 && refused >= 25 && known <= 5,
        "{accepted} {refused} {known}"
    );
}
