//! Fuzz body: the browser session's cookies, from a `Cookie` header to the opened value
//! ([`session::read_cookie`], [`session::CookieCodec`]).
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the header holds;
//! - a cookie is read only when its name (and each of its chunks) appears exactly once, and the
//!   value read is its chunks joined in order, whatever bytes other cookies hold;
//! - nothing opens that gatehouse did not seal: any bytes, under the session's purpose, open to
//!   nothing (AES-256-GCM under a key no input knows);
//! - what gatehouse seals opens to itself, under its own purpose only, and no single changed
//!   character of the sealed text opens;
//! - a sealed value written with `set_cookie` (chunked) and sent back by a browser reads as the
//!   same sealed value.
//!
//! Input: the `Cookie` header's bytes.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use gatehouse_server::session::{CookieAttrs, CookieCodec, read_cookie, set_cookie};
use http::{HeaderMap, HeaderValue, header};

const NAME: &str = "__Host-gatehouse_session";

/// Runs one input.
pub fn run(data: &[u8]) {
    let codec = CookieCodec::new(b"a session key only this fuzz target knows, 32+ bytes")
        .unwrap_or_else(|e| panic!("{e}"));
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, value);
        check_read(&headers, data);
        if let Some(v) = read_cookie(&headers, NAME) {
            assert!(
                codec.open(NAME, &v).is_none(),
                "opened a cookie nobody sealed"
            );
        }
    }
    let sealed = codec.seal(NAME, data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(codec.open(NAME, &sealed).as_deref(), Some(data));
    assert!(
        codec.open("__Host-gatehouse_flow", &sealed).is_none(),
        "purpose not bound"
    );
    let i = data.first().map_or(0, |b| usize::from(*b)) % sealed.len();
    let mut changed = sealed.clone().into_bytes();
    changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
    if let Ok(changed) = String::from_utf8(changed) {
        assert!(
            codec.open(NAME, &changed).is_none(),
            "a changed seal opened (at {i})"
        );
    }
    let attrs = CookieAttrs {
        path: "/",
        max_age: 60,
        secure: true,
    };
    let lines = set_cookie(NAME, &sealed, attrs);
    let sent: Vec<String> = lines
        .iter()
        .filter_map(|l| l.to_str().ok())
        .filter(|l| !l.contains("Max-Age=0"))
        .filter_map(|l| l.split(';').next().map(str::to_owned))
        .collect();
    let mut headers = HeaderMap::new();
    let header_value = HeaderValue::from_str(&sent.join("; ")).unwrap_or_else(|e| panic!("{e}"));
    headers.insert(header::COOKIE, header_value);
    assert_eq!(
        read_cookie(&headers, NAME).as_deref(),
        Some(sealed.as_str())
    );
}

/// The reading rule, written from its promise: every `name=value` pair of the header's bytes;
/// our name and each chunk at most once; other pairs (any bytes) do not matter.
fn check_read(headers: &HeaderMap, data: &[u8]) {
    let Some(read) = read_cookie(headers, NAME) else {
        return;
    };
    let pairs: Vec<(&[u8], &[u8])> = data
        .split(|b| *b == b';')
        .filter_map(|p| {
            let p = p.trim_ascii();
            let eq = p.iter().position(|b| *b == b'=')?;
            Some((&p[..eq], &p[eq + 1..]))
        })
        .collect();
    let once = |name: &str| -> Option<&[u8]> {
        let found: Vec<&[u8]> = pairs
            .iter()
            .filter(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| *v)
            .collect();
        match found.as_slice() {
            [v] => Some(v),
            [] => None,
            _ => panic!("{name} appears {} times, yet a value was read", found.len()),
        }
    };
    let mut expected = once(NAME)
        .unwrap_or_else(|| panic!("read a cookie that is not there"))
        .to_vec();
    for i in 1..8 {
        match once(&format!("{NAME}.{i}")) {
            Some(v) => expected.extend_from_slice(v),
            None => break,
        }
    }
    assert_eq!(read.as_bytes(), expected.as_slice());
}
