// Over 600 lines: one hostile-protocol case table per section against one started binary and upstream; split, each file would repeat that harness.
//! Hostile protocol input against the real `gatehouse serve` binary, with a local upstream that
//! records every request it receives (method, path, every header, body) and tags every answer
//! it gives (`x-recording-upstream`), so a test asserts what reached the "kube-apiserver" and
//! can tell gatehouse's own answers (and its own 5xx) from the upstream's.
//!
//! Requests are written as raw bytes where a client library would refuse to send them (odd
//! header casing, conflicting framing, dot segments), and HTTP/2 uses the `h2` crate over
//! cleartext (prior knowledge), with hand-made frames where even `h2` refuses. Hermetic: only
//! 127.0.0.1, no test bed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support as support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::Gatehouse;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The header every answer of the recording upstream carries.
const TAG: &str = "x-recording-upstream";
const OWN_TOKEN: &str = "gatehouse-own-credential";
const KEY: &str = "0123456789abcdef0123456789abcdef";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Record = Arc<Mutex<Vec<Seen>>>;

/// Records the request; answers 200 `ok` (tagged), a tagged 503 for paths containing
/// `upstream-fails`, and waits 2 s first for paths containing `slow`.
async fn recording(
    req: Request<Incoming>,
    record: Record,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_else(|_| b"<body aborted>".to_vec());
    let path = parts
        .uri
        .path_and_query()
        .map_or("", |p| p.as_str())
        .to_owned();
    record.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    });
    if path.contains("slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let status = if path.contains("upstream-fails") {
        503
    } else {
        200
    };
    Ok(Response::builder()
        .status(status)
        .header(TAG, "1")
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap())
}

async fn start_upstream() -> (u16, Record) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record: Record = Arc::default();
    let r = Arc::clone(&record);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let r = Arc::clone(&r);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| recording(req, Arc::clone(&r)));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (port, record)
}

struct Setup {
    gh: Gatehouse,
    _kc: support::tempdir::TempDir,
    record: Record,
    port: u16,
    admin: String,
}

impl Setup {
    fn seen(&self) -> Vec<Seen> {
        self.record.lock().unwrap().clone()
    }
    fn clear(&self) {
        self.record.lock().unwrap().clear();
    }
}

/// gatehouse (admin account on, fall-through on) in front of a recording upstream.
async fn setup() -> Setup {
    let (upstream_port, record) = start_upstream().await;
    let dir = support::tempdir::TempDir::new("kc");
    let kc = dir.path().join("upstream.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://127.0.0.1:{upstream_port}'}}\nusers:\n- name: u\n  user: {{token: {OWN_TOKEN}}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash =
        HASH.get_or_init(|| bcrypt::hash("pw", gatehouse_core::admin::MIN_BCRYPT_COST).unwrap());
    let port = support::free_port();
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nkubernetes: {{ kubeconfig: '{}' }}\nadmin: {{ enabled: true, passwordHash: '{hash}', tokenSigningKey: '{KEY}' }}\n",
        kc.display()
    );
    let gh = Gatehouse::start(&cfg, "http", true);
    let port: u16 = gh.url.rsplit(':').next().unwrap().parse().unwrap();
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/admin/login", gh.url))
        .json(&serde_json::json!({"password": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = v["token"].as_str().unwrap().to_owned();
    Setup {
        gh,
        _kc: dir,
        record,
        port,
        admin,
    }
}

/// Writes `bytes` on a new connection and reads until the server closes it (at most `wait`).
async fn raw_wait(port: u16, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    out
}

async fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    raw_wait(port, bytes, Duration::from_secs(10)).await
}

/// The status codes of every response in `bytes`, and whether each came from the upstream.
fn responses(bytes: &[u8]) -> Vec<(u16, bool)> {
    let text = String::from_utf8_lossy(bytes);
    let re = regex::Regex::new(r"HTTP/1\.1 (\d{3}) ").unwrap();
    let starts: Vec<(usize, u16)> = re
        .captures_iter(&text)
        .map(|c| (c.get(0).unwrap().start(), c[1].parse().unwrap()))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, (at, code))| {
            let end = starts.get(i + 1).map_or(text.len(), |n| n.0);
            let head = text[*at..end].split("\r\n\r\n").next().unwrap_or("");
            (*code, head.to_ascii_lowercase().contains(TAG))
        })
        .collect()
}

fn status_of(bytes: &[u8]) -> u16 {
    responses(bytes).first().map_or(0, |r| r.0)
}

// ---------------------------------------------------------------------------------------
// Identity headers
// ---------------------------------------------------------------------------------------

/// `Impersonate-*` and `X-Remote-*` in any casing, once or repeated, next to a valid admin
/// token or a fall-through token: 403 every time, nothing reaches the upstream.
#[tokio::test]
async fn identity_headers_in_any_case_and_repeated_are_refused_over_http1() {
    let s = setup().await;
    let names = [
        "Impersonate-User",
        "IMPERSONATE-USER",
        "impersonate-group",
        "iMpErSoNaTe-GrOuP",
        "Impersonate-Uid",
        "Impersonate-Extra-scopes",
        "IMPERSONATE-EXTRA-gatehouse.dev%2fusername",
        "X-Remote-User",
        "X-REMOTE-GROUP",
        "x-remote-extra-scopes",
        "X-rEmOtE-uSeR",
    ];
    for token in [s.admin.as_str(), "opaque-user-token"] {
        for name in names {
            for repeat in [1, 2] {
                let mut req = format!(
                    "GET /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {token}\r\n"
                );
                for i in 0..repeat {
                    req.push_str(&format!("{name}: system:admin{i}\r\n"));
                }
                req.push_str("Connection: close\r\n\r\n");
                let got = raw(s.port, req.as_bytes()).await;
                assert_eq!(
                    status_of(&got),
                    403,
                    "{name} x{repeat}: {}",
                    String::from_utf8_lossy(&got)
                );
            }
        }
    }
    assert!(s.seen().is_empty(), "{:?}", s.seen());
}

/// Over HTTP/2 (names are lower case there): refused the same way, nothing upstream.
#[tokio::test]
async fn identity_headers_over_http2_are_refused() {
    let s = setup().await;
    let mut client = h2_client(s.port).await;
    for name in [
        "impersonate-user",
        "impersonate-group",
        "impersonate-extra-scopes",
        "impersonate-uid",
        "x-remote-user",
        "x-remote-group",
    ] {
        for token in [s.admin.as_str(), "opaque-user-token"] {
            let req = http::Request::builder()
                .uri(format!(
                    "http://127.0.0.1:{}/api/v1/namespaces/x/pods",
                    s.port
                ))
                .header("authorization", format!("Bearer {token}"))
                .header(name, "system:admin")
                .header(name, "system:masters")
                .body(())
                .unwrap();
            let (status, _) = h2_send(&mut client, req, Bytes::new()).await;
            assert_eq!(status, 403, "{name}");
        }
    }
    assert!(s.seen().is_empty(), "{:?}", s.seen());
}

/// HTTP/2 forbids upper-case header names; `h2` will not send them, so the HEADERS frame is
/// written by hand (HPACK literals, no Huffman). gatehouse's HTTP/2 stack resets the stream or
/// refuses the request; it never reaches the upstream.
#[tokio::test]
async fn upper_case_identity_header_over_http2_never_reaches_upstream() {
    let s = setup().await;
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    out.extend_from_slice(&frame(0x4, 0, 0, &[])); // SETTINGS
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    hpack_literal_indexed_name(&mut block, 4, b"/api/v1/namespaces/x/pods"); // :path
    hpack_literal_indexed_name(&mut block, 1, b"gh"); // :authority
    hpack_literal(&mut block, b"authorization", b"Bearer opaque-user-token");
    hpack_literal(&mut block, b"Impersonate-User", b"system:admin");
    out.extend_from_slice(&frame(0x1, 0x5, 1, &block)); // HEADERS, END_STREAM|END_HEADERS
    conn.write_all(&out).await.unwrap();
    // Read frames until stream 1 is answered (HEADERS) or reset (RST_STREAM), or GOAWAY.
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answered = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        if n == 0 {
            break "closed";
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(kind) = frames(&buf).into_iter().find_map(|(t, id)| match (t, id) {
            (0x1, 1) => Some("headers"),
            (0x3, 1) => Some("reset"),
            (0x7, _) => Some("goaway"),
            _ => None,
        }) {
            break kind;
        }
        assert!(Instant::now() < deadline, "no answer");
    };
    assert!(["headers", "reset", "goaway", "closed"].contains(&answered));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.seen().is_empty(), "{answered}: {:?}", s.seen());
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn hpack_len(out: &mut Vec<u8>, len: usize) {
    assert!(len < 127);
    out.push(u8::try_from(len).unwrap());
}

/// Literal header field without indexing, indexed name.
fn hpack_literal_indexed_name(out: &mut Vec<u8>, index: u8, value: &[u8]) {
    out.push(index);
    hpack_len(out, value.len());
    out.extend_from_slice(value);
}

/// Literal header field without indexing, new name.
fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    hpack_len(out, name.len());
    out.extend_from_slice(name);
    hpack_len(out, value.len());
    out.extend_from_slice(value);
}

/// (type, stream id) of every complete frame in `buf`.
fn frames(buf: &[u8]) -> Vec<(u8, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() >= at + 9 {
        let len = (usize::from(buf[at]) << 16)
            | (usize::from(buf[at + 1]) << 8)
            | usize::from(buf[at + 2]);
        let id =
            u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]]) & 0x7fff_ffff;
        out.push((buf[at + 3], id));
        at += 9 + len;
    }
    out
}

async fn h2_client(port: u16) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn h2_send(
    client: &mut h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    body: Bytes,
) -> (u16, http::HeaderMap) {
    let ready = client.clone().ready().await.unwrap();
    *client = ready;
    let end = body.is_empty();
    let (resp, mut send) = client.send_request(req, end).unwrap();
    if !end {
        send.send_data(body, true).unwrap();
    }
    let resp = resp.await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

// ---------------------------------------------------------------------------------------
// Forwarding headers
// ---------------------------------------------------------------------------------------

/// A client's `X-Forwarded-*` (any of them, any case, repeated), `Forwarded` and `X-Real-Ip`
/// never reach the upstream; the only forwarding header there is gatehouse's own
/// `X-Forwarded-For` with the real peer. For the admin (impersonated) and fall-through alike.
#[tokio::test]
async fn client_forwarding_headers_never_reach_upstream() {
    let s = setup().await;
    let forged = "X-Forwarded-For: 6.6.6.6\r\nx-forwarded-for: 7.7.7.7\r\nX-FORWARDED-HOST: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Uri: /evil\r\nX-Forwarded-Client-Cert: Hash=1\r\nForwarded: for=6.6.6.6;host=evil.example;proto=https\r\nFORWARDED: for=7.7.7.7\r\nX-Real-IP: 6.6.6.6\r\n";
    for token in [s.admin.as_str(), "opaque-user-token"] {
        s.clear();
        let req = format!(
            "GET /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {token}\r\n{forged}Connection: close\r\n\r\n"
        );
        let got = raw(s.port, req.as_bytes()).await;
        assert_eq!(
            responses(&got),
            vec![(200, true)],
            "{}",
            String::from_utf8_lossy(&got)
        );
        let seen = s.seen();
        assert_eq!(seen.len(), 1);
        let h = &seen[0];
        assert_eq!(h.all("x-forwarded-for"), vec!["127.0.0.1"]);
        for (k, _) in &h.headers {
            assert!(
                !(k.starts_with("x-forwarded-") && k != "x-forwarded-for")
                    && k != "forwarded"
                    && k != "x-real-ip",
                "{k} reached the upstream: {h:?}"
            );
        }
    }
    // Over HTTP/2 too.
    s.clear();
    let mut client = h2_client(s.port).await;
    let req = http::Request::builder()
        .uri(format!(
            "http://127.0.0.1:{}/api/v1/namespaces/x/pods",
            s.port
        ))
        .header("authorization", "Bearer opaque-user-token")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .body(())
        .unwrap();
    assert_eq!(h2_send(&mut client, req, Bytes::new()).await.0, 200);
    let seen = s.seen();
    assert_eq!(seen[0].all("x-forwarded-for"), vec!["127.0.0.1"]);
    for gone in [
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(seen[0].all(gone).is_empty(), "{gone}: {:?}", seen[0]);
    }
}

/// `Connection` naming a forwarding header (any case) is refused before anything is sent:
/// the hop-by-hop rule may not decide which forwarding headers the upstream sees.
#[tokio::test]
async fn connection_naming_a_forwarding_header_is_refused() {
    let s = setup().await;
    for named in [
        "X-Forwarded-For",
        "x-forwarded-host",
        "Forwarded",
        "X-REAL-IP",
        "close, X-Forwarded-Proto",
    ] {
        let req = format!(
            "GET /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer opaque-user-token\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: {named}\r\nConnection: close\r\n\r\n"
        );
        let got = raw(s.port, req.as_bytes()).await;
        assert_eq!(responses(&got), vec![(400, false)], "{named}");
    }
    assert!(s.seen().is_empty(), "{:?}", s.seen());
}

// ---------------------------------------------------------------------------------------
// Framing: Content-Length, Transfer-Encoding, keep-alive smuggling
// ---------------------------------------------------------------------------------------

/// No hidden request reached the upstream as a request of its own, and every request that
/// did arrive carries exactly the body its framing says.
fn assert_nothing_smuggled(s: &Setup, case: &str) {
    for seen in s.seen() {
        assert!(
            !seen.path.contains("smuggled") && seen.method != "SMUGGLED",
            "{case}: a hidden request reached the upstream as its own: {seen:?}"
        );
        assert!(
            seen.all("content-length").len() <= 1,
            "{case}: more than one Content-Length went upstream: {seen:?}"
        );
        assert!(
            seen.all("content-length").is_empty() || seen.all("transfer-encoding").is_empty(),
            "{case}: both Content-Length and Transfer-Encoding went upstream: {seen:?}"
        );
    }
}

/// Conflicting framing (Content-Length with Transfer-Encoding, two Content-Lengths, obfuscated
/// Transfer-Encoding) hiding a second request in the body: refused with 400, or read one
/// consistent way; the hidden request never reaches the upstream as its own.
#[tokio::test]
async fn conflicting_framing_never_smuggles_a_second_request() {
    let s = setup().await;
    let hidden = format!(
        "GET /api/v1/smuggled HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {}\r\n\r\n",
        s.admin
    );
    let chunked_hidden = format!("0\r\n\r\n{hidden}");
    let cases: Vec<(&str, String)> = vec![
        (
            "CL then TE",
            format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_hidden}",
                chunked_hidden.len()
            ),
        ),
        (
            "TE then CL",
            format!(
                "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{chunked_hidden}",
                chunked_hidden.len()
            ),
        ),
        (
            "TE chunked, identity",
            format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked, identity\r\n\r\n{chunked_hidden}",
                chunked_hidden.len()
            ),
        ),
        (
            "TE xchunked",
            format!("Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"),
        ),
        (
            "TE with a tab",
            format!("Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"),
        ),
        (
            "space before colon",
            format!("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"),
        ),
        (
            "obs-fold TE",
            format!(
                "X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "two TE headers",
            format!(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "Content-Length: 5\r\nContent-Length: {}\r\n\r\nhello{hidden}",
                hidden.len() + 5
            ),
        ),
        (
            "Content-Length list",
            format!(
                "Content-Length: 5, {}\r\n\r\nhello{hidden}",
                hidden.len() + 5
            ),
        ),
        (
            "negative Content-Length",
            format!("Content-Length: -1\r\n\r\n{hidden}"),
        ),
        (
            "Content-Length with plus",
            format!("Content-Length: +5\r\n\r\nhello{hidden}"),
        ),
        (
            "Content-Length hex",
            format!("Content-Length: 0x5\r\n\r\nhello{hidden}"),
        ),
        (
            "chunk size with extension and garbage",
            format!("Transfer-Encoding: chunked\r\n\r\n5;x=\"\r\n\"\r\nhello\r\n0\r\n\r\n{hidden}"),
        ),
        (
            "huge chunk size",
            format!(
                "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "LF-only line endings in chunk",
            format!("Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n{hidden}"),
        ),
    ];
    for (case, rest) in &cases {
        s.clear();
        let req = format!(
            "POST /api/v1/namespaces/x/configmaps HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer opaque-user-token\r\n{rest}"
        );
        let got = raw_wait(s.port, req.as_bytes(), Duration::from_secs(3)).await;
        let codes = responses(&got);
        assert_nothing_smuggled(&s, case);
        // At most one request of ours was forwarded, and it was the first (the configmaps POST).
        let seen = s.seen();
        assert!(seen.len() <= 1, "{case}: {seen:?}");
        if let Some(first) = seen.first() {
            assert_eq!(first.path, "/api/v1/namespaces/x/configmaps", "{case}");
            assert_eq!(
                first.all("authorization"),
                vec!["Bearer opaque-user-token"],
                "{case}"
            );
        }
        // Any second response on this connection came from parsing the leftovers, never from
        // the upstream.
        assert!(codes.iter().skip(1).all(|(_, up)| !up), "{case}: {codes:?}");
        assert!(
            !codes.is_empty() || seen.is_empty(),
            "{case}: no answer but forwarded"
        );
    }
}

/// Over one keep-alive connection: a request with a second request inside its body, then a
/// real second request. The hidden one never reaches the upstream as its own request, and each
/// request has only its own identity (the admin's impersonation does not carry over to the
/// next request on the connection).
#[tokio::test]
async fn keep_alive_requests_keep_their_own_identity_and_bodies_hide_nothing() {
    let s = setup().await;
    let hidden = format!(
        "GET /api/v1/smuggled HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {}\r\n\r\n",
        s.admin
    );
    let stream = format!(
        "POST /api/v1/namespaces/x/configmaps HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {admin}\r\nContent-Length: {len}\r\n\r\n{hidden}\
         GET /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer opaque-user-token\r\n\r\n\
         GET /api/v1/namespaces/x/secrets HTTP/1.1\r\nHost: gh\r\nConnection: close\r\n\r\n",
        admin = s.admin,
        len = hidden.len(),
    );
    let got = raw(s.port, stream.as_bytes()).await;
    let codes = responses(&got);
    assert_eq!(
        codes,
        vec![(200, true), (200, true), (401, false)],
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_nothing_smuggled(&s, "keep-alive");
    let seen = s.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].body,
        hidden.as_bytes(),
        "the hidden request is only body bytes"
    );
    assert_eq!(seen[0].all("impersonate-user"), vec!["gatehouse:admin"]);
    assert_eq!(seen[1].path, "/api/v1/namespaces/x/pods");
    assert_eq!(
        seen[1].all("authorization"),
        vec!["Bearer opaque-user-token"]
    );
    assert!(
        !seen[1]
            .headers
            .iter()
            .any(|(k, _)| k.starts_with("impersonate-")),
        "the admin's identity carried over: {:?}",
        seen[1]
    );
}

/// A pipelined request whose `Content-Length` is shorter than the bytes sent: the rest is read
/// as the next request, with its own (missing) credential: 401 from gatehouse, not forwarded.
#[tokio::test]
async fn bytes_after_a_short_body_are_a_new_request_without_the_first_ones_credential() {
    let s = setup().await;
    let stream = format!(
        "POST /api/v1/namespaces/x/configmaps HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {}\r\nContent-Length: 2\r\n\r\n{{}}GET /api/v1/smuggled HTTP/1.1\r\nHost: gh\r\nConnection: close\r\n\r\n",
        s.admin
    );
    let got = raw(s.port, stream.as_bytes()).await;
    assert_eq!(responses(&got), vec![(200, true), (401, false)]);
    assert_nothing_smuggled(&s, "short body");
    assert_eq!(s.seen().len(), 1);
    assert_eq!(s.seen()[0].body, b"{}");
}

/// Over HTTP/2 a `Content-Length` that disagrees with the DATA sent, or a `Transfer-Encoding`
/// header, is a malformed request: never forwarded as such.
#[tokio::test]
async fn http2_framing_headers_cannot_mislead_the_upstream() {
    let s = setup().await;
    let mut client = h2_client(s.port).await;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://127.0.0.1:{}/api/v1/namespaces/x/configmaps",
            s.port
        ))
        .header("authorization", "Bearer opaque-user-token")
        .header("content-length", "2")
        .body(())
        .unwrap();
    let ready = client.clone().ready().await.unwrap();
    client = ready;
    let (resp, mut send) = client.send_request(req, false).unwrap();
    send.send_data(Bytes::from_static(b"{}GET /api/v1/smuggled"), true)
        .unwrap();
    let outcome = resp.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_nothing_smuggled(&s, "h2 content-length");
    for seen in s.seen() {
        assert!(
            seen.body.len() <= 2,
            "more body than Content-Length went up: {seen:?}"
        );
    }
    if let Ok(r) = outcome {
        assert!(
            r.status().as_u16() < 500 || r.headers().contains_key(TAG),
            "{r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/2 limits
// ---------------------------------------------------------------------------------------

/// gatehouse announces an explicit stream limit (1000, the kube-apiserver's own), and a client
/// that opens more streams than that waits: at no time does the upstream have more of one
/// connection's requests in progress than the limit.
#[tokio::test]
async fn http2_announces_its_stream_limit() {
    let s = setup().await;
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let (client, mut conn) = h2::client::handshake(tcp).await.unwrap();
    // The server's SETTINGS arrive with the first poll of the connection.
    let client = client.ready();
    let client = tokio::select! {
        c = client => c.unwrap(),
        _ = &mut conn => panic!("connection ended"),
    };
    let _ = tokio::time::timeout(Duration::from_millis(300), &mut conn).await;
    assert_eq!(conn.max_concurrent_send_streams(), 1000);
    drop(client);
}

/// A flood of streams on one connection, each a slow request: served in turn up to the limit,
/// and gatehouse keeps answering other clients meanwhile.
#[tokio::test]
async fn http2_stream_flood_is_bounded_and_others_are_served() {
    let s = setup().await;
    let client = h2_client(s.port).await;
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let mut c = client.clone();
        let port = s.port;
        tasks.push(tokio::spawn(async move {
            let req = http::Request::builder()
                .uri(format!("http://127.0.0.1:{port}/api/v1/slow"))
                .header("authorization", "Bearer opaque-user-token")
                .body(())
                .unwrap();
            h2_send(&mut c, req, Bytes::new()).await.0
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let other = reqwest::get(format!("{}/healthz", s.gh.url)).await.unwrap();
    assert_eq!(other.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "another client waited"
    );
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}

/// Rapid reset (CVE-2023-44487): thousands of streams opened and cancelled at once. gatehouse
/// ends that connection (GOAWAY) rather than doing the work, and keeps serving.
#[tokio::test]
async fn http2_rapid_reset_is_cut_off_and_gatehouse_keeps_serving() {
    let s = setup().await;
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let (mut client, conn) = h2::client::Builder::new()
        .max_concurrent_reset_streams(100_000)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut sent = 0;
    for _ in 0..5000 {
        let Ok(ready) = client.clone().ready().await else {
            break;
        };
        client = ready;
        let req = http::Request::builder()
            .uri(format!("http://127.0.0.1:{}/api/v1/slow-reset", s.port))
            .header("authorization", "Bearer opaque-user-token")
            .body(())
            .unwrap();
        let Ok((resp, mut send)) = client.send_request(req, false) else {
            break;
        };
        send.send_reset(h2::Reason::CANCEL);
        drop(resp);
        sent += 1;
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    let upstream = s.seen().len();
    assert!(
        upstream < 1000,
        "{upstream} of {sent} reset streams were forwarded upstream"
    );
    // Another connection is served at once.
    let ok = reqwest::get(format!("{}/healthz", s.gh.url)).await.unwrap();
    assert_eq!(ok.status(), 200, "{ended:?}");
}

/// A header list larger than `limits.maxHeaderBytes` (64 KiB by default) is refused over
/// HTTP/2 as over HTTP/1.1, and never forwarded.
#[tokio::test]
async fn oversized_headers_are_refused_on_both_protocols() {
    let s = setup().await;
    let big = "a".repeat(70 * 1024);
    let req = format!(
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer opaque-user-token\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let got = raw(s.port, req.as_bytes()).await;
    assert_eq!(
        status_of(&got),
        431,
        "{}",
        String::from_utf8_lossy(&got[..got.len().min(300)])
    );
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let (mut client, conn) = h2::client::Builder::new()
        .max_send_buffer_size(1 << 20)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://127.0.0.1:{}/api/v1/namespaces", s.port))
        .header("authorization", "Bearer opaque-user-token")
        .header("x-big", big.as_str())
        .body(())
        .unwrap();
    client = client.ready().await.unwrap();
    let outcome = match client.send_request(req, true) {
        Ok((resp, _)) => resp.await.map(|r| r.status().as_u16()),
        Err(e) => Err(e),
    };
    assert!(
        matches!(outcome, Ok(431) | Err(_)),
        "an oversized HTTP/2 header list was answered: {outcome:?}"
    );
    assert!(s.seen().is_empty(), "{:?}", s.seen());
}

// ---------------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------------

/// Reads until the server closes the connection; the time it took, or `None` after `limit`.
async fn closed_within(
    mut s: TcpStream,
    limit: Duration,
    drip: Option<&'static [u8]>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        if started.elapsed() > limit {
            return None;
        }
        if let Some(bytes) = drip
            && s.write_all(bytes).await.is_err()
        {
            return Some(started.elapsed());
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
}

/// A connection that sends nothing, one that sends half of the HTTP/2 preface, and one that
/// drips a request head a byte a second are all closed once the 30 s header timeout has
/// passed; none is held open.
#[tokio::test]
async fn slow_and_silent_connections_are_closed_after_the_header_timeout() {
    let s = setup().await;
    let silent = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let mut half_preface = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut dripping = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    dripping
        .write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: gh\r\n")
        .await
        .unwrap();
    let limit = Duration::from_secs(40);
    let (a, b, c) = tokio::join!(
        closed_within(silent, limit, None),
        closed_within(half_preface, limit, None),
        closed_within(dripping, limit, Some(b"X")),
    );
    for (what, took) in [("silent", a), ("half preface", b), ("dripping head", c)] {
        let took = took.unwrap_or_else(|| panic!("{what}: still open after {limit:?}"));
        assert!(
            took >= Duration::from_secs(25),
            "{what}: closed early ({took:?})"
        );
    }
    assert!(s.seen().is_empty());
}

// ---------------------------------------------------------------------------------------
// Path tricks
// ---------------------------------------------------------------------------------------

/// Paths the kube-apiserver could read as one of its own (after decoding or cleaning) are never
/// served by a gatehouse route, and paths that name gatehouse's routes are only served when
/// they name them exactly: every request either reaches the upstream with the very path sent
/// (gatehouse does not rewrite what the kube-apiserver will interpret), or is answered by
/// gatehouse without reaching it.
#[tokio::test]
async fn path_tricks_never_reach_a_route_they_should_not() {
    let s = setup().await;
    let login = r#"{"password":"pw"}"#;
    // (method, path): must not be served by gatehouse's admin sign-in (no token issued).
    let not_login = [
        "/v1/./admin/login",
        "/v1//admin/login",
        "//v1/admin/login",
        "/v1/admin/login/",
        "/v1/admin/login/.",
        "/v1/admin/%6cogin",
        "/v1%2fadmin%2flogin",
        "/%761/admin/login",
        "/api/../v1/admin/login",
        "/apis/%2e%2e/v1/admin/login",
        "/x/../v1/admin/login",
        "/v1/admin/login;x",
        "/V1/admin/login",
    ];
    for path in not_login {
        s.clear();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: gh\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{login}",
            login.len()
        );
        let got = raw(s.port, req.as_bytes()).await;
        let text = String::from_utf8_lossy(&got);
        assert!(!text.contains("\"token\""), "{path} signed in: {text}");
        for seen in s.seen() {
            assert_eq!(seen.path, path, "gatehouse rewrote the path");
            assert!(
                !seen
                    .headers
                    .iter()
                    .any(|(k, _)| k.starts_with("impersonate-"))
            );
        }
    }
    // Paths that leave the API prefix by dot segments or encodings: whatever gatehouse does,
    // it never sends them with the admin's impersonation to anything but the exact path sent,
    // and never serves a gatehouse page or health endpoint for them.
    let tricky = [
        "/api/../v1/whoami",
        "/api/v1/../../ui/whoami",
        "/v1/../api/v1/namespaces/x/secrets",
        "/ui/../api/v1/namespaces/x/secrets",
        "/metrics/../api/v1/namespaces/x/secrets",
        "/readyz/../api/v1/namespaces/x/secrets",
        "/version/../api/v1/namespaces/x/secrets",
        "/auth/../api/v1/namespaces/x/secrets",
        "/%61pi/v1/namespaces/x/secrets",
        "/api%2fv1/namespaces/x/secrets",
        "//api/v1/namespaces/x/secrets",
        "/./api/v1/namespaces/x/secrets",
        "/api/v1/namespaces/x/pods/%2e%2e/secrets",
        "/api/v1/namespaces/x%2fpods",
        "/api/v1/namespaces/x/pods/%2E%2E%2F%2E%2E%2Fsecrets",
        "/apis/../metrics",
        "/api/%2e%2e/readyz",
    ];
    for path in tricky {
        s.clear();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            s.admin
        );
        let got = raw(s.port, req.as_bytes()).await;
        let codes = responses(&got);
        let text = String::from_utf8_lossy(&got);
        assert_eq!(codes.len(), 1, "{path}: {text}");
        let (code, from_upstream) = codes[0];
        let seen = s.seen();
        if from_upstream {
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].path, path, "gatehouse rewrote the path");
            let raw_path = path;
            assert!(
                ["/api/", "/apis/", "/version/", "/openapi/"]
                    .iter()
                    .any(|p| raw_path.starts_with(p)),
                "{path}: a path outside the API prefixes was forwarded"
            );
        } else {
            assert!(seen.is_empty(), "{path}: {seen:?}");
            assert!(
                code == 404 || code == 400,
                "{path}: answered {code} by gatehouse: {text}"
            );
            assert!(
                !text.contains("gatehouse_proxy_requests_total"),
                "{path}: metrics served"
            );
            assert!(
                !text.contains("<html") && !text.contains("<!doctype"),
                "{path}: a page served"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Methods the proxy cannot forward
// ---------------------------------------------------------------------------------------

/// `CONNECT` on a proxy path: the kube-apiserver registers no route for the CONNECT method
/// (go-restful answers 405), and gatehouse cannot forward it (HTTP/1.1 CONNECT takes an
/// authority, HTTP/2 CONNECT has no path). gatehouse answers 405 with a `Status`, not 503 as if
/// the kube-apiserver were down, and sends nothing upstream. Unauthenticated it is 401 first,
/// as on the kube-apiserver.
#[tokio::test]
async fn connect_on_a_proxy_path_is_405_not_503() {
    let s = setup().await;
    for token in [s.admin.as_str(), "opaque-user-token"] {
        let req = format!(
            "CONNECT /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let got = raw(s.port, req.as_bytes()).await;
        let text = String::from_utf8_lossy(&got);
        assert_eq!(status_of(&got), 405, "{text}");
        assert!(text.contains("\"reason\":\"MethodNotAllowed\""), "{text}");
    }
    let got = raw(
        s.port,
        b"CONNECT /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&got), 401);
    assert!(s.seen().is_empty(), "{:?}", s.seen());
}

/// TRACE and unknown (but valid) method tokens are forwarded as they are (the kube-apiserver
/// decides; it answers 405), with gatehouse's header rules; invalid tokens are refused by
/// gatehouse's HTTP parser with 400.
#[tokio::test]
async fn trace_and_unknown_methods_are_forwarded_and_invalid_ones_are_400() {
    let s = setup().await;
    for method in ["TRACE", "PROPFIND", "FOO", "get", "M-SEARCH"] {
        s.clear();
        let req = format!(
            "{method} /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer opaque-user-token\r\nCookie: a=b\r\nConnection: close\r\n\r\n"
        );
        let got = raw(s.port, req.as_bytes()).await;
        assert_eq!(responses(&got), vec![(200, true)], "{method}");
        let seen = s.seen();
        assert_eq!(seen[0].method, method);
        assert!(seen[0].all("cookie").is_empty());
    }
    for method in ["G(T", "GE\x01T", "GET/", "\"GET\"", "GÉT"] {
        s.clear();
        let req = format!(
            "{method} /api/v1/namespaces/x/pods HTTP/1.1\r\nHost: gh\r\nAuthorization: Bearer opaque-user-token\r\nConnection: close\r\n\r\n"
        );
        let got = raw(s.port, req.as_bytes()).await;
        let code = status_of(&got);
        assert!(code == 400 || got.is_empty(), "{method:?}: {code}");
        assert!(s.seen().is_empty(), "{method:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The storm
// ---------------------------------------------------------------------------------------

/// splitmix64: a seeded, dependency-free generator (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

/// One random request, as bytes (always ends with `Connection: close` and a body that matches
/// its framing, so the server never waits for bytes that will not come).
fn random_request(rng: &mut Rng, admin: &str) -> Vec<u8> {
    const METHODS: &[&str] = &[
        "GET", "GET", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT",
        "TRACE", "PROPFIND", "FOO", "get", "G(T", "GET/", "\x7fGET", "", "BREW",
    ];
    const PREFIXES: &[&str] = &[
        "/api",
        "/apis",
        "/api/v1/namespaces/x/pods",
        "/apis/apps/v1/deployments",
        "/version",
        "/openapi/v2",
        "/v1/whoami",
        "/v1/config",
        "/v1/admin/login",
        "/ui/whoami",
        "/ui/ca.pem",
        "/",
        "/healthz",
        "/readyz",
        "/readyz/x",
        "/metrics",
        "/auth/login",
        "/auth/callback",
        "*",
        "//",
        "/api/v1/upstream-fails",
        "http://evil.example/api/v1/pods",
        "127.0.0.1:1",
    ];
    const SEGMENTS: &[&str] = &[
        "..", ".", "%2e%2e", "%2E", "%2f", "%2F", "", "%00", "%zz", "%", "x", "pods", "exec",
        "%c0%af", "~", ";a=b", "?watch=1", "?a=%", "#frag", "%20", "\\", "%5c", "..;", "a:b",
    ];
    const HEADERS: &[&str] = &[
        "Impersonate-User: system:admin",
        "IMPERSONATE-GROUP: system:masters",
        "X-Remote-User: root",
        "x-REMOTE-group: g",
        "X-Forwarded-Host: evil",
        "X-Forwarded-For: 6.6.6.6",
        "Forwarded: for=6.6.6.6",
        "X-Real-Ip: 6.6.6.6",
        "Connection: upgrade",
        "Connection: keep-alive, x-foo",
        "Connection: te",
        "Connection: Authorization",
        "Connection: cookie",
        "Upgrade: websocket",
        "Upgrade: h2c",
        "Upgrade: SPDY/3.1",
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        "TE: trailers",
        "TE: gzip",
        "Expect: 100-continue",
        "Expect: nonsense",
        "Trailer: Authorization",
        "Cookie: gatehouse_session=x",
        "Audit-ID: spoofed",
        "Sec-WebSocket-Protocol: base64url.bearer.authorization.k8s.io.b3BhcXVl, v5.channel.k8s.io",
        "Sec-WebSocket-Protocol: base64url.bearer.authorization.k8s.io.!!!",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Host: evil.example",
        "Host: ",
        "Proxy-Authorization: Basic eDp5",
        "Accept: application/json;as=Table;v=v1;g=meta.k8s.io",
        "Content-Type: application/apply-patch+yaml",
        "Authorization: Basic YWRtaW46cHc=",
        "Authorization: Bearer  two-spaces",
        "Authorization: Bearer",
        "Authorization: Bearer a b",
        "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Keep-Alive: timeout=5",
        "Content-Encoding: gzip",
        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    const TOKEN_CHARS: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=";
    let mut req = Vec::new();
    req.extend_from_slice(rng.pick(METHODS).as_bytes());
    req.push(b' ');
    let mut path = rng.pick(PREFIXES).to_owned();
    for _ in 0..rng.below(4) {
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(rng.pick(SEGMENTS));
    }
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\n");
    if rng.chance(90) {
        req.extend_from_slice(b"Host: gh\r\n");
    }
    match rng.below(5) {
        0 => {}
        1 => req.extend_from_slice(format!("Authorization: Bearer {admin}\r\n").as_bytes()),
        _ => {
            let n = 1 + rng.below(60);
            let token = rng.bytes(n, TOKEN_CHARS);
            req.extend_from_slice(b"Authorization: Bearer ");
            req.extend_from_slice(&token);
            req.extend_from_slice(b"\r\n");
        }
    }
    for _ in 0..rng.below(5) {
        let h = rng.pick(HEADERS).to_owned();
        // Random casing of the name.
        let (name, value) = h.split_once(':').unwrap();
        let name: String = name
            .chars()
            .map(|c| {
                if rng.chance(50) {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        req.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    if rng.chance(20) {
        // A random header name and value (printable and obs-text bytes).
        let n = 1 + rng.below(20);
        req.extend_from_slice(
            &rng.bytes(n, b"abcdefghijklmnopqrstuvwxyz-_0123456789!#$%&'*+.^`|~"),
        );
        req.extend_from_slice(b": ");
        let n = rng.below(40);
        let mut value = rng.bytes(n, b"abc xyz\t!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
        if rng.chance(20) {
            value.push(0x80 + u8::try_from(rng.below(127)).unwrap());
        }
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
    }
    let body_len = if rng.chance(40) { rng.below(2000) } else { 0 };
    let body = rng.bytes(body_len, b"{}[]\":,abc0123 \r\n\0");
    match rng.below(4) {
        0 if body_len > 0 => {
            req.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            req.extend_from_slice(format!("{body_len:x}\r\n").as_bytes());
            req.extend_from_slice(&body);
            req.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        _ => {
            if body_len > 0 || rng.chance(30) {
                req.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
            }
            req.extend_from_slice(b"Connection: close\r\n\r\n");
            if body_len > 0
                && !req
                    .windows(15)
                    .any(|w| w.eq_ignore_ascii_case(b"content-length:"))
            {
                // No framing was sent for the body: send none (it would be the next request).
            } else {
                req.extend_from_slice(&body);
            }
        }
    }
    req
}

/// Several thousand random requests (every method, CONNECT, TRACE and invalid tokens
/// included; odd path encodings; random headers, tokens and bodies): no 5xx that gatehouse
/// itself produced (the upstream's own 503s, which are tagged, pass through), no hang, and
/// gatehouse still healthy afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_request_storm_gets_no_5xx_of_gatehouses_own() {
    let s = setup().await;
    let seed: u64 = std::env::var("STORM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6a7e_4008_5e5e);
    let count: usize = std::env::var("STORM_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut rng = Rng(seed);
    let requests: Vec<Vec<u8>> = (0..count)
        .map(|_| random_request(&mut rng, &s.admin))
        .collect();
    let requests = Arc::new(requests);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let codes: Arc<Mutex<std::collections::BTreeMap<(u16, bool), usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (requests, next, failures) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&failures),
        );
        let codes = Arc::clone(&codes);
        let port = s.port;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(req) = requests.get(i) else { break };
                let started = Instant::now();
                let got = raw(port, req).await;
                let show = || String::from_utf8_lossy(&req[..req.len().min(600)]).into_owned();
                if started.elapsed() >= Duration::from_secs(10) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("#{i} hung:\n{}", show()));
                    continue;
                }
                for (code, from_upstream) in responses(&got) {
                    *codes
                        .lock()
                        .unwrap()
                        .entry((code, from_upstream))
                        .or_default() += 1;
                    if code >= 500 && !from_upstream {
                        let answer =
                            String::from_utf8_lossy(&got[..got.len().min(600)]).into_owned();
                        failures.lock().unwrap().push(format!(
                            "#{i} got gatehouse's own {code}:\n{}\n--- answer:\n{answer}",
                            show()
                        ));
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} of {count} requests failed; the first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n=====\n")
    );
    let ok = reqwest::get(format!("{}/healthz", s.gh.url)).await.unwrap();
    assert_eq!(ok.status(), 200);
    // Every upstream request carried gatehouse's rules.
    for seen in s.seen() {
        for (k, _) in &seen.headers {
            assert!(
                !k.starts_with("x-remote-") && k != "forwarded" && k != "cookie" && k != "audit-id",
                "{k} reached the upstream: {seen:?}"
            );
        }
        assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"], "{seen:?}");
        let impersonated = seen
            .headers
            .iter()
            .any(|(k, _)| k.starts_with("impersonate-"));
        let own = seen.all("authorization") == vec![format!("Bearer {OWN_TOKEN}")];
        assert_eq!(
            impersonated, own,
            "gatehouse's credential only with its impersonation: {seen:?}"
        );
    }
    eprintln!(
        "storm: seed {seed:#x}, {count} requests, {} forwarded; (status, from upstream): {:?}",
        s.seen().len(),
        codes.lock().unwrap()
    );
}
