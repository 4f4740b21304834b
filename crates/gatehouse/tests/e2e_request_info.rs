//! gatehouse reads a request (namespace, resource, name, subresource, verb) the way the
//! kube-apiserver does: hostile and odd paths are sent raw (`curl --path-as-is`, no client-side
//! normalisation) through the real `gatehouse` binary to the test bed's real kube-apiserver,
//! and what the kube-apiserver read is taken from its audit log (`verb`, `objectRef`) and
//! compared with `gatehouse_core::request_info::parse` of the same request. A disagreement
//! would let gatehouse choose a ServiceAccount for (and review) another request than the one
//! the cluster serves. A path that gatehouse refuses itself must not reach the cluster at all.
//!
//! Every test is `#[ignore = "needs testbed"]`; `scripts/test` runs them with `--ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use gatehouse_core::request_info::{RequestInfo, parse};
use gatehouse_test_support as support;
use serde_json::Value;
use support::config::ServerConfig;
use support::{AuditLog, Gatehouse, Testbed, unique};

/// Requests as a client could send them: method and raw path (before the tag's query).
const REQUESTS: &[(&str, &str)] = &[
    ("GET", "/api/v1/namespaces/team-a/configmaps"),
    ("GET", "/api/v1/namespaces/te%61m-a/configmaps"),
    ("GET", "/api/v1/namespaces/team-a%2Fconfigmaps"),
    ("GET", "//api//v1/namespaces/team-a/configmaps"),
    ("GET", "/api/v1//namespaces/team-a/configmaps"),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps/../../team-b/configmaps",
    ),
    ("GET", "/api/v1/namespaces/team-a/configmaps/%2e%2e/secrets"),
    ("GET", "/api/./v1/namespaces/team-a/configmaps"),
    ("GET", "/api/v1/namespaces/team-a/configmaps/x/y/z"),
    (
        "GET",
        "/apis/apps/v1/namespaces/team-a/deployments/web/scale",
    ),
    ("GET", "/api/v1/namespaces/team-a/status"),
    ("PUT", "/api/v1/namespaces/team-a/finalize"),
    ("GET", "/api/v1/namespaces/team-a/pods/shell/proxy/a/b"),
    ("GET", "/api/v1/proxy/namespaces/team-a/pods/shell"),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?watch=t&timeoutSeconds=1",
    ),
    ("GET", "/api/v1/namespaces/team-a/configmaps?watch=0"),
    (
        "GET",
        "/api/v1/watch/namespaces/team-a/configmaps?timeoutSeconds=1",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3D%3Dx,a%3Db",
    ),
    ("HEAD", "/api/v1/namespaces/team-a/configmaps"),
    ("DELETE", "/api/v1/namespaces/team-a/configmaps"),
    ("OPTIONS", "/api/v1/namespaces/team-a/configmaps"),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?labelSelector=a&labelSelector=b",
    ),
    // Query values kept as bytes; `watch` folded as Go's EqualFold folds it (U+017F).
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?watch=%FF&timeoutSeconds=1",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?watch=fal%C5%BFe",
    ),
    // Two name terms: the one sorting first names the object.
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Db,metadata.name%3Da",
    ),
    // List options that do not decode: the kube-apiserver's fallback (no name, ASCII folding).
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Dx&limit=x",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Dx&timeoutSeconds=1.5",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Dx,bad",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?watch=fal%C5%BFe&limit=x",
    ),
    // Refused by gatehouse (see REFUSED_BY_GATEHOUSE).
    ("GET", "/api/v1/namespaces/team-%FF/configmaps"),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3D%FF",
    ),
    (
        "GET",
        "/api/v1/namespaces/team-a/configmaps?watch=fal%C5%BFe&labelSelector=a+in+(b)",
    ),
    ("GET", "/api"),
    ("TRACE", "/apis"),
    ("GET", "/apis/apps"),
];

/// The requests gatehouse answers itself (its router matches raw paths: `//api` is no API
/// path, 404; `request_info::Unreadable` ones, 400): they must reach nothing. Every other
/// request must reach the kube-apiserver and be compared. A query of more than 10,000
/// parameters is added to these in the test.
const REFUSED_BY_GATEHOUSE: &[&str] = &[
    "//api//v1/namespaces/team-a/configmaps",
    "/api/v1/namespaces/team-%FF/configmaps",
    "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3D%FF",
    "/api/v1/namespaces/team-a/configmaps?watch=fal%C5%BFe&labelSelector=a+in+(b)",
];

/// Sends `method path` raw with `token`; the HTTP status.
fn send(gh: &Gatehouse, tb: &Testbed, token: &str, method: &str, path: &str) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--path-as-is",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .args(["--max-time", "20", "--cacert", &tb.var("TESTBED_CA_FILE")])
    .args(["-H", &format!("Authorization: Bearer {token}")]);
    if method == "HEAD" {
        cmd.arg("--head");
    } else {
        cmd.args(["-X", method]);
    }
    let out = cmd.arg(format!("{}{path}", gh.url)).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// What the kube-apiserver's audit event says it read, in `RequestInfo`'s terms (only the
/// fields the audit log carries).
fn from_audit(event: &Value) -> (String, Option<[String; 6]>) {
    let verb = event["verb"].as_str().unwrap_or_default().to_owned();
    let object = event.get("objectRef").map(|o| {
        let s = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
        [
            s("apiGroup"),
            s("apiVersion"),
            s("resource"),
            s("subresource"),
            s("name"),
            s("namespace"),
        ]
    });
    (verb, object)
}

fn ours(info: &RequestInfo) -> (String, Option<[String; 6]>) {
    let object = info.is_resource_request.then(|| {
        [
            info.api_group.clone(),
            info.api_version.clone(),
            info.resource.clone(),
            info.subresource.clone(),
            info.name.clone(),
            info.namespace.clone().unwrap_or_default(),
        ]
    });
    (info.verb.clone(), object)
}

#[tokio::test]
#[ignore = "needs testbed"]
async fn gatehouse_reads_each_request_as_the_kube_apiserver_does() {
    let tb = Testbed::load();
    let cfg = ServerConfig::new(&tb).dex().admin().build();
    let gh = Gatehouse::start(&cfg, "https", true);
    let token = support::admin_token(&tb, &gh.url).await;
    let audit = AuditLog::mark(&tb);
    let mut sent = Vec::new();
    // More than 10,000 parameters: Go reads none of them (or, before 1.24.12, all): refused.
    let many = format!(
        "/api/v1/namespaces/team-a/configmaps?watch=1{}",
        "&".repeat(10_000)
    );
    let requests: Vec<(&str, &str)> = REQUESTS
        .iter()
        .copied()
        .chain([("GET", many.as_str())])
        .collect();
    for &(method, path) in &requests {
        let tag = unique("ri");
        let sep = if path.contains('?') { '&' } else { '?' };
        // The tag is a label selector that matches nothing: the DELETE of a collection
        // (deletecollection) deletes nothing, and a list lists nothing.
        let full = format!("{path}{sep}labelSelector=probe%3D{tag}");
        let status = send(&gh, &tb, &token, method, &full);
        let refused_here = REFUSED_BY_GATEHOUSE.contains(&path) || path == many;
        sent.push((method, full, tag, status, refused_here));
    }
    let events = audit.events("probe%3Dri-", Duration::from_secs(3));
    let mut compared = 0;
    for (method, full, tag, status, refused_here) in &sent {
        let (path, query) = full.split_once('?').unwrap();
        let seen: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["requestURI"]
                    .as_str()
                    .is_some_and(|u| u.contains(tag.as_str()))
            })
            .filter(|e| e["stage"] == "ResponseComplete" || e["stage"] == "Panic")
            .collect();
        if *refused_here || seen.is_empty() {
            assert!(
                *refused_here && seen.is_empty() && (400..500).contains(status),
                "{method} {full}: gatehouse answered {status}, audit events {seen:?} (expected {})",
                if *refused_here {
                    "a 4xx of gatehouse's own and no event"
                } else {
                    "one event"
                }
            );
            continue;
        }
        assert_eq!(seen.len(), 1, "{method} {full}: {seen:?}");
        let theirs = from_audit(seen[0]);
        let mine = ours(&parse(method, path, Some(query)).expect("a request gatehouse reads"));
        assert_eq!(
            mine, theirs,
            "{method} {full}: gatehouse (left) and the kube-apiserver (right)"
        );
        compared += 1;
    }
    assert_eq!(compared, requests.len() - REFUSED_BY_GATEHOUSE.len() - 1);
}
