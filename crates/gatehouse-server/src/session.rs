//! Encrypted cookies for the browser flow (backend-for-frontend).
//!
//! # Security
//! - Tokens never reach JavaScript: the session cookie is `HttpOnly`, `Secure` (configurable
//!   for plain-HTTP development only), `SameSite=Lax`, `Path=/`, and its value is sealed with
//!   AES-256-GCM under a key derived from `session.key`. Replicas that share the key share
//!   sessions; nothing is stored server-side.
//! - With secure cookies, gatehouse's cookie names carry the `__Host-` prefix
//!   ([`crate::config::cookie_names`]), and every cookie line is written with `Path=/` and no
//!   `Domain`, as the prefix requires: browsers then refuse the cookie from any other host, so
//!   a sibling subdomain cannot plant a session (fixation) or a sign-in flow. Chunks keep the
//!   prefix (`__Host-gatehouse_session.1`).
//! - The cookie's purpose (its name) is the AEAD's associated data, so a sealed flow cookie can
//!   never be replayed as a session cookie, or the other way round.
//! - Each seal uses a fresh random 96-bit nonce.
//! - Values over ~3.8 KB are split into numbered chunks (`name`, `name.1`, ...) because
//!   browsers drop cookies over 4 KB; all chunks are rewritten or cleared together.
//! - Requests authenticated by the cookie that change state (`POST`, `PUT`, `PATCH`,
//!   `DELETE`) must come from gatehouse's own origin ([`same_origin`]), which stops cross-site
//!   request forgery on top of `SameSite=Lax`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, header};

/// The largest cookie value written in one piece.
const CHUNK: usize = 3800;
/// How many chunks are cleared when a cookie is rewritten or removed.
const MAX_CHUNKS: usize = 8;

/// Seals and opens cookie values.
pub struct CookieCodec {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieCodec(<key redacted>)")
    }
}

/// The cookie codec could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot initialise cookie encryption")]
pub struct CodecError;

impl CookieCodec {
    /// Derives the AES-256 key from the configured secret.
    pub fn new(secret: &[u8]) -> Result<Self, CodecError> {
        let mut material = b"gatehouse session cookie v1\0".to_vec();
        material.extend_from_slice(secret);
        let derived = digest(&SHA256, &material);
        let key = UnboundKey::new(&AES_256_GCM, derived.as_ref()).map_err(|_| CodecError)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// Fills `out` with random bytes.
    pub fn random(&self, out: &mut [u8]) -> Result<(), CodecError> {
        self.rng.fill(out).map_err(|_| CodecError)
    }

    /// Seals `plaintext` for the cookie named `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<String, CodecError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .map_err(|_| CodecError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed for `purpose`; `None` when it was tampered with, sealed for another
    /// purpose, or under another key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Reads a cookie (joining its chunks) from request headers.
///
/// A cookie (or one of its chunks) sent twice reads as absent: which copy a reader believes
/// would be a guess (RFC 6265 leaves the order to the browser), and only a cookie planted
/// beside gatehouse's own is ever sent twice, so the request is treated as signed out.
///
/// The header is read as bytes, pair by pair: another site's cookie with bytes outside visible
/// ASCII (browsers send UTF-8 cookie values) must not hide gatehouse's own, or a sibling host
/// could sign every user out. Only the values gatehouse reads must be text.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut jar: std::collections::HashMap<&[u8], Option<&[u8]>> = std::collections::HashMap::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if let Some(eq) = pair.iter().position(|b| *b == b'=') {
                let (k, v) = (&pair[..eq], &pair[eq + 1..]);
                jar.entry(k)
                    .and_modify(|seen| *seen = None)
                    .or_insert(Some(v));
            }
        }
    }
    let text = |v: &[u8]| std::str::from_utf8(v).ok().map(str::to_owned);
    let mut value = text(jar.remove(name.as_bytes())??)?;
    for i in 1..MAX_CHUNKS {
        match jar.remove(format!("{name}.{i}").as_bytes()) {
            Some(Some(part)) => value.push_str(&text(part)?),
            Some(None) => return None,
            None => break,
        }
    }
    Some(value)
}

/// Cookie attributes.
#[derive(Debug, Clone, Copy)]
pub struct CookieAttrs<'a> {
    /// `Path`.
    pub path: &'a str,
    /// `Max-Age` in seconds.
    pub max_age: u64,
    /// `Secure`.
    pub secure: bool,
}

/// `Set-Cookie` headers that write `value` (chunked) and clear unused chunks.
pub fn set_cookie(name: &str, value: &str, attrs: CookieAttrs<'_>) -> Vec<HeaderValue> {
    let chunks: Vec<&str> = value
        .as_bytes()
        .chunks(CHUNK)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let mut out = Vec::new();
    for i in 0..MAX_CHUNKS {
        let chunk_name = if i == 0 {
            name.to_owned()
        } else {
            format!("{name}.{i}")
        };
        let line = match chunks.get(i) {
            Some(chunk) => cookie_line(&chunk_name, chunk, attrs),
            None => cookie_line(
                &chunk_name,
                "",
                CookieAttrs {
                    max_age: 0,
                    ..attrs
                },
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&line) {
            out.push(v);
        }
    }
    out
}

/// `Set-Cookie` headers that remove a cookie and its chunks.
pub fn clear_cookie(name: &str, attrs: CookieAttrs<'_>) -> Vec<HeaderValue> {
    set_cookie(
        name,
        "",
        CookieAttrs {
            max_age: 0,
            ..attrs
        },
    )
}

fn cookie_line(name: &str, value: &str, attrs: CookieAttrs<'_>) -> String {
    let secure = if attrs.secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        attrs.path, attrs.max_age
    )
}

/// True when a state-changing request comes from `public_origin` (scheme://host[:port]),
/// judged by `Origin`, or, when the browser sends none or an opaque `null` (as Chromium does
/// for some form posts), by Fetch Metadata (`Sec-Fetch-Site: same-origin`).
pub fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != "null"
    {
        return origin == public_origin;
    }
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "same-origin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let c = CookieCodec::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let sealed = c.seal("gatehouse_session", b"secret tokens").unwrap();
        assert_eq!(
            c.open("gatehouse_session", &sealed).unwrap(),
            b"secret tokens"
        );
        assert!(
            c.open("gatehouse_flow", &sealed).is_none(),
            "purpose is bound"
        );
        let other = CookieCodec::new(b"another key, another key, another").unwrap();
        assert!(
            other.open("gatehouse_session", &sealed).is_none(),
            "key is bound"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            c.open("gatehouse_session", std::str::from_utf8(&tampered).unwrap())
                .is_none()
        );
        assert_ne!(
            c.seal("p", b"x").unwrap(),
            c.seal("p", b"x").unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn a_cookie_or_chunk_sent_twice_reads_as_absent() {
        let read = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(header::COOKIE, HeaderValue::from_str(l).unwrap());
            }
            read_cookie(&h, "s")
        };
        assert_eq!(read(&["s=a; s.1=b"]), Some("ab".to_owned()));
        assert_eq!(read(&["s=a; s=planted"]), None);
        assert_eq!(
            read(&["s=a", "s=planted"]),
            None,
            "across Cookie headers too"
        );
        assert_eq!(read(&["s=a; s.1=b; s.1=planted"]), None);
        assert_eq!(read(&["other=1; other=2; s=a"]), Some("a".to_owned()));
        // Another cookie's UTF-8 value does not hide ours.
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes("junk=\u{e9}t\u{e9}; s=a; s.1=b".as_bytes()).unwrap(),
        );
        assert_eq!(read_cookie(&h, "s"), Some("ab".to_owned()));
    }

    #[test]
    fn big_values_are_chunked_and_joined() {
        let value = "v".repeat(9000);
        let attrs = CookieAttrs {
            path: "/",
            max_age: 60,
            secure: true,
        };
        let lines = set_cookie("s", &value, attrs);
        let mut headers = HeaderMap::new();
        let jar: Vec<String> = lines
            .iter()
            .map(|l| l.to_str().unwrap().split(';').next().unwrap().to_owned())
            .filter(|kv| !kv.ends_with('='))
            .collect();
        assert_eq!(jar.len(), 3);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&jar.join("; ")).unwrap(),
        );
        assert_eq!(read_cookie(&headers, "s").unwrap(), value);
        assert!(lines.iter().all(|l| {
            l.to_str()
                .unwrap()
                .contains("HttpOnly; SameSite=Lax; Secure")
        }));
        assert!(
            lines[5].to_str().unwrap().contains("Max-Age=0"),
            "unused chunks are cleared"
        );
    }

    #[test]
    fn host_prefixed_cookie_lines_have_secure_root_path_and_no_domain() {
        let attrs = CookieAttrs {
            path: "/",
            max_age: 60,
            secure: true,
        };
        for line in set_cookie("__Host-gatehouse_session", &"v".repeat(5000), attrs) {
            let line = line.to_str().unwrap().to_owned();
            assert!(line.starts_with("__Host-gatehouse_session"), "{line}");
            assert!(
                line.contains("; Path=/;") && line.ends_with("; Secure"),
                "{line}"
            );
            assert!(!line.to_ascii_lowercase().contains("domain"), "{line}");
        }
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        assert!(!same_origin(&h, "https://gh"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, "https://gh"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil"));
        assert!(!same_origin(&h, "https://gh"));
        // An opaque origin falls back to Sec-Fetch-Site.
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h, "https://gh"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, "https://gh"));
    }
}
