//! The request path's hot spots, each through the crate's own API (issue 13):
//!
//! - `decision_cached`: a mapped user's repeat request, from the bearer token to the plan:
//!   [`Authenticator::authenticate`] with the principal cached (SHA-256 of the token, a cache
//!   probe, expiry rechecked), then [`proxy::plan_for`] (the index lookup, the ServiceAccount
//!   choice, [`gatehouse_server::plan::decide`] and its impersonation headers). With one
//!   candidate ServiceAccount, and with two whose SubjectAccessReview answers are cached.
//!   `authn/cache_hit` is the first half alone.
//! - `index_lookup`: [`ServiceAccountIndex::lookup_fresh`] over 1,000, 10,000 and 100,000
//!   ServiceAccounts, for claims that match one and claims that match none.
//! - `review_cache/hit`: [`AccessResolver::choose`] between two candidates whose review
//!   answers are cached (the first refused, the second allowed: two cache probes).
//! - `session_cookie`: the sealed session cookie written ([`SessionCookies::set`]) and read
//!   back from the request's `Cookie` header ([`SessionCookies::open`]).
//!
//! The app is the in-process one of `gatehouse_test_support::in_process` (a local issuer, a
//! recording fake kube-apiserver); after each measurement the bench checks that the fake
//! kube-apiserver got no review, so every iteration was served from the caches.
//! `bench/micro` runs it and writes the table into docs/benchmarks.md.
//!
//! [`Authenticator::authenticate`]: gatehouse_server::authn::Authenticator::authenticate
//! [`AccessResolver::choose`]: gatehouse_server::access::AccessResolver::choose
//! [`SessionCookies::set`]: gatehouse_server::browser_session::SessionCookies::set
//! [`SessionCookies::open`]: gatehouse_server::browser_session::SessionCookies::open
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_core::mapping::Who;
use gatehouse_core::request_info::{self, RequestInfo};
use gatehouse_core::token::BearerToken;
use gatehouse_server::app::App;
use gatehouse_server::browser_session::Session;
use gatehouse_server::clock::unix_now;
use gatehouse_server::plan::Plan;
use gatehouse_server::proxy;
use gatehouse_server::serviceaccounts::{ListedForTests, ServiceAccountIndex};
use gatehouse_test_support::in_process::{DEVS, Harness, Seen, Setup};
use serde_json::{Map, Value, json};

const PODS: &str = "/api/v1/namespaces/team-a/pods";
const VIEWER: &str = "system:serviceaccount:team-a:viewer";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn pods() -> RequestInfo {
    request_info::parse("GET", PODS, None).unwrap()
}

/// Groups of a user in eight groups, `devs` among them when `mapped`.
fn groups(mapped: bool) -> Value {
    json!([
        if mapped { "devs" } else { "qa" },
        "team-a",
        "team-a-oncall",
        "platform-readers",
        "eu-staff",
        "vpn-users",
        "cn=engineering,ou=groups,dc=example,dc=com",
        "all-staff"
    ])
}

fn reviews(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|s| s.path.contains("subjectaccessreviews"))
        .count()
}

/// The harness: one ServiceAccount mapped by `devs`, or two (`dev`, refused by review, and
/// `viewer`, allowed). Review answers stay cached for an hour, longer than any run.
fn harness(rt: &tokio::runtime::Runtime, two: bool) -> Harness {
    let accounts = if two {
        vec![("team-a", "dev", DEVS), ("team-a", "viewer", DEVS)]
    } else {
        vec![("team-a", "dev", DEVS)]
    };
    let h = rt.block_on(
        Setup {
            accounts: Some(accounts),
            review_cache_ttl: Some("1h"),
            ..Setup::default()
        }
        .build(),
    );
    h.kube.allow_only(&[VIEWER]);
    h
}

/// A mapped user's ID token (about 1 KB, like Keycloak's or Dex's).
fn user_token(h: &Harness) -> BearerToken {
    BearerToken::new(h.token(json!({
        "name": "Alice Example", "preferred_username": "alice",
        "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "groups": groups(true),
    })))
}

/// What the authentication layer and the proxy do for one request, up to the plan.
async fn resolve(app: &App, token: &BearerToken, info: &RequestInfo, now: i64) -> Plan {
    let outcome = app.authn.authenticate(Some(token), now).await.unwrap();
    proxy::plan_for(app, &outcome, info).await.unwrap()
}

fn impersonated(plan: &Plan) -> String {
    match plan {
        Plan::Impersonate { headers, .. } => headers
            .iter()
            .find(|(k, _)| k == "impersonate-user")
            .map(|(_, v)| v.to_str().unwrap().to_owned())
            .unwrap(),
        other => panic!("not impersonated: {other:?}"),
    }
}

fn decision_cached(c: &mut Criterion) {
    let rt = runtime();
    let info = pods();
    let mut g = c.benchmark_group("decision_cached");
    for (name, two, user) in [
        ("one_candidate", false, "system:serviceaccount:team-a:dev"),
        ("two_candidates_reviewed", true, VIEWER),
    ] {
        let h = harness(&rt, two);
        let token = user_token(&h);
        let now = unix_now();
        // The first request verifies the token (and, with two candidates, asks the reviews);
        // every one after it is served from the caches.
        let first = rt.block_on(resolve(&h.app, &token, &info, now));
        assert_eq!(impersonated(&first), user);
        let asked = reviews(&h.kube.seen());
        assert_eq!(asked, if two { 2 } else { 0 });
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| resolve(&h.app, black_box(&token), &info, now));
        });
        assert_eq!(reviews(&h.kube.seen()), asked, "a review was not cached");
    }
    g.finish();

    let h = harness(&rt, false);
    let token = user_token(&h);
    let now = unix_now();
    rt.block_on(h.app.authn.authenticate(Some(&token), now))
        .unwrap();
    c.bench_function("authn/cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| h.app.authn.authenticate(Some(black_box(&token)), now));
    });
}

/// A ServiceAccount to list: namespace, name, annotations.
type Account = (String, String, Vec<(&'static str, String)>);

/// `n` ServiceAccounts, 50 to a namespace, each with the annotations a Helm release gives it;
/// 15% carry gatehouse's: a group list (`gatehouse.dev/claim.groups`), an email
/// (`gatehouse.dev/claim.email`), or an LDAP group in the JSON form (`gatehouse.dev/claims`),
/// each naming values of that ServiceAccount alone.
fn service_accounts(n: usize) -> Vec<Account> {
    (0..n)
        .map(|i| {
            let namespace = format!("team-{:05}", i / 50);
            let mut annotations = vec![
                ("meta.helm.sh/release-name", format!("app-{i}")),
                ("meta.helm.sh/release-namespace", namespace.clone()),
            ];
            match i % 20 {
                0 => annotations.push((
                    "gatehouse.dev/claim.groups",
                    format!("grp-{i}, grp-{i}-oncall"),
                )),
                1 => {
                    annotations.push(("gatehouse.dev/claim.email", format!("user-{i}@example.com")))
                }
                2 => annotations.push((
                    "gatehouse.dev/claims",
                    format!(r#"{{"groups": ["cn=grp-{i},ou=groups,dc=example,dc=com"]}}"#),
                )),
                _ => {}
            }
            (namespace, format!("sa-{:02}", i % 50), annotations)
        })
        .collect()
}

/// A user's claims (an ID token's payload): eight groups, one of them `grp-<group>`.
fn claims(group: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "iss": "https://idp.example/realms/platform", "sub": "f3b1c2d4-5e6f-4a7b-8c9d",
        "aud": "gatehouse", "azp": "gatehouse", "exp": 1_800_000_300, "iat": 1_800_000_000,
        "email": "alice@example.com", "email_verified": true, "name": "Alice Example",
        "preferred_username": "alice",
        "groups": [group, "team-a", "team-a-oncall", "platform-readers", "eu-staff",
                   "vpn-users", "cn=engineering,ou=groups,dc=example,dc=com", "all-staff"],
    }) else {
        unreachable!()
    };
    m
}

fn index_lookup(c: &mut Criterion) {
    let config = gatehouse_server::config::parse(
        "serviceAccounts:\n  allNamespaces: true\nfallThrough:\n  enabled: true\n",
        &HashMap::<String, String>::new(),
    )
    .unwrap();
    let mut g = c.benchmark_group("index_lookup");
    for n in [1_000, 10_000, 100_000] {
        let accounts = service_accounts(n);
        let annotations: Vec<Vec<(&str, &str)>> = accounts
            .iter()
            .map(|(_, _, a)| a.iter().map(|(k, v)| (*k, v.as_str())).collect())
            .collect();
        let listed: Vec<ListedForTests<'_>> = accounts
            .iter()
            .zip(&annotations)
            .map(|((ns, name, _), a)| (ns.as_str(), name.as_str(), a.as_slice()))
            .collect();
        let index = ServiceAccountIndex::new(&config.service_accounts);
        index.list_for_tests(&listed);
        // A group of a ServiceAccount half-way through the list.
        let k = n / 2 / 20 * 20;
        let one = claims(&format!("grp-{k}"));
        let none = claims("grp-unmapped");
        let found = index.lookup_fresh(Who::claims(&one), false).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            index
                .lookup_fresh(Who::claims(&none), false)
                .unwrap()
                .is_empty()
        );
        g.bench_with_input(BenchmarkId::new("match_one", n), &one, |b, claims| {
            b.iter(|| index.lookup_fresh(Who::claims(black_box(claims)), false));
        });
        g.bench_with_input(BenchmarkId::new("match_none", n), &none, |b, claims| {
            b.iter(|| index.lookup_fresh(Who::claims(black_box(claims)), false));
        });
    }
    g.finish();
}

fn review_cache(c: &mut Criterion) {
    let rt = runtime();
    let h = harness(&rt, true);
    let info = pods();
    let Value::Object(user) = json!({ "groups": groups(true) }) else {
        unreachable!()
    };
    let mapped = h.app.index.lookup_fresh(Who::claims(&user), false).unwrap();
    assert_eq!(mapped.len(), 2);
    let chosen = rt.block_on(h.app.access.choose(&mapped, &info)).unwrap();
    assert_eq!(chosen.unwrap().username(), VIEWER);
    let asked = reviews(&h.kube.seen());
    assert_eq!(asked, 2);
    c.bench_function("review_cache/hit", |b| {
        b.to_async(&rt)
            .iter(|| h.app.access.choose(black_box(&mapped), &info));
    });
    assert_eq!(reviews(&h.kube.seen()), asked, "a review was not cached");
}

fn session_cookie(c: &mut Criterion) {
    let rt = runtime();
    let h = harness(&rt, false);
    let cookies = h.app.session_cookies().unwrap();
    let now = unix_now();
    let session = Session {
        token: user_token(&h).expose_secret().to_owned(),
        refresh_token: Some(
            "ChlzZGZnaGprbDEyMzQ1Njc4OTBxd2VydHkSGWFsaWNlLWNvbm5lY3Rvci1sb2NhbA".into(),
        ),
        kind: "oidc".to_owned(),
        created: now,
        expires: now + 300,
    };
    let set = cookies.set(&session, now).unwrap();
    let mut headers = http::HeaderMap::new();
    let cookie = set
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    headers.insert(
        http::header::COOKIE,
        format!("_ga=GA1.2.123456789.1700000000; theme=dark; {cookie}")
            .parse()
            .unwrap(),
    );
    assert_eq!(cookies.open(&headers, now).unwrap().token, session.token);
    let mut g = c.benchmark_group("session_cookie");
    g.bench_function("seal", |b| {
        b.iter(|| cookies.set(black_box(&session), now));
    });
    g.bench_function("open", |b| {
        b.iter(|| cookies.open(black_box(&headers), now));
    });
    g.finish();
}

criterion_group!(
    benches,
    decision_cached,
    index_lookup,
    review_cache,
    session_cookie
);
criterion_main!(benches);
