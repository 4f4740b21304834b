//! The leak search of `e2e_secrets`: a [`Collection`] of everything gatehouse said during a
//! run (its log, every response with its status line and headers, every CLI and kubectl
//! output), a set of [`Secrets`] the run saw, and [`find_leaks`], which looks for every secret
//! in every spelling it could take on the way out:
//!
//! - the secret itself and its percent-encoding (`%XX` for every byte that is not unreserved,
//!   and the form encoding, `+` for a space);
//! - standard and URL-safe base64 of it, with and without padding;
//! - base64 of any text that contains it (an HTTP Basic `client:secret` header, a JSON object
//!   that holds a token): in base64 the secret's bytes turn into the same characters whenever
//!   they start at the same offset modulo 3, so each of the three offsets gives one run of
//!   characters that any such encoding contains (the characters that depend on the secret's
//!   bytes alone), in both alphabets;
//! - for a JWT, its signature segment alone (a token cut up, or logged without its payload).
//!
//! A finding names the secret's kind and label and the collected item, with a short context in
//! which every secret spelling is masked and any other long token-like run of characters is
//! cut out: a failure message never prints a secret.
//!
//! Some items carry a secret by design (the body of a successful admin login holds the admin
//! token; `gatehouse token` prints the ExecCredential; a `Set-Cookie` header carries the sealed
//! cookie it sets): [`Secrets::allow`] names the item where one secret may appear, and nowhere
//! else.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Shorter spellings than this are not searched (a base64 run of a few characters would match
/// by chance); every secret of the test bed is far longer.
const MIN_NEEDLE: usize = 12;

/// Everything collected, item by item.
#[derive(Default)]
pub struct Collection {
    items: Vec<Item>,
}

/// One collected text: where it came from and what it said.
pub struct Item {
    /// A name that says where (`response 12: GET /ui/whoami`, `gatehouse log`); never a secret.
    pub name: String,
    /// What it said.
    pub text: String,
}

impl Collection {
    /// Adds one item.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.items.push(Item {
            name: name.into(),
            text: text.into(),
        });
    }

    /// Adds a response: `name`, then its status line, every header and the body.
    pub fn add_response(
        &mut self,
        name: impl Into<String>,
        status: u16,
        headers: &http::HeaderMap,
        body: &str,
    ) {
        self.add(name, response_text(status, headers, body));
    }

    /// The items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// How many items have a name starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.items
            .iter()
            .filter(|i| i.name.starts_with(prefix))
            .count()
    }

    /// All text collected, in bytes.
    pub fn bytes(&self) -> usize {
        self.items.iter().map(|i| i.text.len()).sum()
    }
}

/// A response as text: `HTTP <status>`, one `name: value` line per header (repeated headers on
/// lines of their own, values that are not text lossily), a blank line, the body.
pub fn response_text(status: u16, headers: &http::HeaderMap, body: &str) -> String {
    let mut out = format!("HTTP {status}\n");
    for (name, value) in headers {
        out.push_str(name.as_str());
        out.push_str(": ");
        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(body);
    out
}

/// Reads a response whole and adds it to `collection` as `name`; returns its status and body.
pub async fn record(
    collection: &mut Collection,
    name: impl Into<String>,
    resp: reqwest::Response,
) -> (u16, String) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    collection.add_response(name, status, &headers, &body);
    (status, body)
}

/// One secret the run saw.
pub struct Secret {
    /// Its kind (`Dex ID token`, `authorization code`, `password`, ...), for the report.
    pub kind: String,
    /// Which one (`alice's CLI token`, `ALICE_PASSWORD`); never the value.
    pub label: String,
    value: String,
    /// Names of the items where it may appear (by design).
    allowed_in: Vec<String>,
}

/// The secrets of a run, deduplicated by value (the first kind and label win).
#[derive(Default)]
pub struct Secrets {
    items: Vec<Secret>,
}

impl Secrets {
    /// Adds a secret. Empty values are the test's mistake (a secret it failed to gather).
    pub fn add(&mut self, kind: &str, label: &str, value: &str) {
        assert!(
            value.len() >= MIN_NEEDLE,
            "the {kind} {label} is empty or too short to search for ({} characters)",
            value.len()
        );
        if self.items.iter().any(|s| s.value == value) {
            return;
        }
        self.items.push(Secret {
            kind: kind.to_owned(),
            label: label.to_owned(),
            value: value.to_owned(),
            allowed_in: Vec::new(),
        });
    }

    /// Lets the secret `value` appear in the item named `item` (where it is delivered by design).
    pub fn allow(&mut self, value: &str, item: &str) {
        let s = self
            .items
            .iter_mut()
            .find(|s| s.value == value)
            .unwrap_or_else(|| panic!("allow: not a gathered secret (for item {item})"));
        s.allowed_in.push(item.to_owned());
    }

    /// The secrets.
    pub fn items(&self) -> &[Secret] {
        &self.items
    }

    /// How many secrets of `kind` were gathered.
    pub fn count(&self, kind: &str) -> usize {
        self.items.iter().filter(|s| s.kind == kind).count()
    }

    /// Whether `value` is one of them.
    pub fn contains(&self, value: &str) -> bool {
        self.items.iter().any(|s| s.value == value)
    }

    /// The number of spellings searched for, all secrets together.
    pub fn needles(&self) -> usize {
        self.items.iter().map(|s| spellings(&s.value).len()).sum()
    }
}

/// The spellings searched for: `(what, text)`, each at least [`MIN_NEEDLE`] long, distinct.
pub fn spellings(secret: &str) -> Vec<(&'static str, String)> {
    let bytes = secret.as_bytes();
    let mut out: Vec<(&'static str, String)> = vec![
        ("as is", secret.to_owned()),
        (
            "percent-encoded",
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        ),
        (
            "form-encoded",
            url::form_urlencoded::byte_serialize(bytes).collect(),
        ),
        ("base64", STANDARD.encode(bytes)),
        ("base64 without padding", STANDARD_NO_PAD.encode(bytes)),
        ("URL-safe base64", URL_SAFE.encode(bytes)),
        (
            "URL-safe base64 without padding",
            URL_SAFE_NO_PAD.encode(bytes),
        ),
    ];
    for offset in 0..3 {
        out.push(("inside base64", embedded_base64(bytes, offset, &STANDARD)));
        out.push((
            "inside URL-safe base64",
            embedded_base64(bytes, offset, &URL_SAFE),
        ));
    }
    if let [_, _, signature] = secret.split('.').collect::<Vec<_>>()[..] {
        out.push(("JWT signature", signature.to_owned()));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(_, s)| s.len() >= MIN_NEEDLE && seen.insert(s.clone()));
    out
}

/// The base64 characters that depend only on `secret` when it starts `offset` bytes (0 to 2)
/// into the encoded text: the same in every encoding of every text holding it there.
fn embedded_base64(secret: &[u8], offset: usize, engine: &impl base64::Engine) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(secret);
    let encoded = engine.encode(&padded);
    // Character i holds bits [6i, 6i + 6) of the padded text; the secret is bits
    // [8 offset, 8 (offset + n)).
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + secret.len())) / 6;
    encoded.get(first..end).unwrap_or_default().to_owned()
}

/// One secret found where it must not be.
pub struct Finding {
    pub kind: String,
    pub label: String,
    pub spelling: &'static str,
    pub item: String,
    /// Text around it, every secret spelling masked.
    pub context: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} {} ({}) is in {}: …{}…",
            self.kind, self.label, self.spelling, self.item, self.context
        )
    }
}

/// Every secret found in an item that is not allowed to hold it.
pub fn find_leaks(collection: &Collection, secrets: &Secrets) -> Vec<Finding> {
    let all: Vec<(String, String)> = secrets
        .items
        .iter()
        .flat_map(|s| {
            spellings(&s.value)
                .into_iter()
                .map(|(_, sp)| (sp, format!("<{}>", s.kind)))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut found = Vec::new();
    for item in &collection.items {
        for s in &secrets.items {
            if s.allowed_in.iter().any(|a| a == &item.name) {
                continue;
            }
            for (spelling, needle) in spellings(&s.value) {
                if let Some(at) = item.text.find(&needle) {
                    found.push(Finding {
                        kind: s.kind.clone(),
                        label: s.label.clone(),
                        spelling,
                        item: item.name.clone(),
                        context: masked_context(&item.text, at, needle.len(), &all),
                    });
                    break;
                }
            }
        }
    }
    found
}

/// About 60 characters either side of `text[at..at + len]`, with every secret spelling masked
/// and any other run of 16 or more token-like characters (a piece of a secret cut at the edge)
/// replaced.
fn masked_context(text: &str, at: usize, len: usize, all: &[(String, String)]) -> String {
    let start = floor_char(text, at.saturating_sub(60));
    let end = floor_char(text, (at + len + 60).min(text.len()));
    let mut ctx = text[start..end].to_owned();
    let mut by_length: Vec<&(String, String)> = all.iter().collect();
    by_length.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    for (needle, mask) in by_length {
        ctx = ctx.replace(needle.as_str(), mask);
    }
    let long_run = regex::Regex::new(r"[A-Za-z0-9_\-+/=.%]{16,}").unwrap();
    long_run
        .replace_all(&ctx, "<token-like text cut>")
        .replace('\n', "⏎")
}

/// Every string in `v` (at any depth) under a key that contains `token` in any case (`token`,
/// `refreshToken`, `id_token`, ...; not `token_type`): `(key, value)`.
pub fn token_fields(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match x {
                    serde_json::Value::String(s)
                        if k.to_ascii_lowercase().contains("token")
                            && !k.to_ascii_lowercase().contains("type") =>
                    {
                        out.push((k.clone(), s.clone()));
                    }
                    _ => out.extend(token_fields(x)),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| out.extend(token_fields(x))),
        _ => {}
    }
    out
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";

    fn secrets() -> Secrets {
        let mut s = Secrets::default();
        s.add(
            "client secret",
            "DEX_WEB_CLIENT_SECRET",
            "0a1b2c3d4e5f60718293a4b5c",
        );
        s.add("Dex ID token", "alice's", JWT);
        s
    }

    fn leaks_in(text: &str) -> Vec<Finding> {
        let mut c = Collection::default();
        c.add("item", text);
        find_leaks(&c, &secrets())
    }

    #[test]
    fn every_spelling_is_found_and_named() {
        let secret = "0a1b2c3d4e5f60718293a4b5c";
        let basic = STANDARD.encode(format!("gatehouse:{secret}"));
        let json_b64 = URL_SAFE_NO_PAD.encode(format!(r#"{{"x":1,"client_secret":"{secret}"}}"#));
        for (text, spelling) in [
            (format!("secret={secret}"), "as is"),
            (
                format!("b64={}", STANDARD_NO_PAD.encode(secret)),
                "base64 without padding",
            ),
            (format!("authorization: Basic {basic}"), "inside base64"),
            // (this secret's base64 has neither `+` nor `/`: both alphabets spell it alike)
            (format!("state={json_b64}"), "inside base64"),
        ] {
            let found = leaks_in(&text);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].kind, "client secret");
            assert_eq!(found[0].spelling, spelling, "{text}");
            assert!(!found[0].to_string().contains(secret), "{}", found[0]);
        }
        let sig = JWT.rsplit('.').next().unwrap();
        let found = leaks_in(&format!("bad signature {sig} end"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].spelling, "JWT signature");
        let found = leaks_in(&format!("q=%3F{}", STANDARD.encode(JWT)));
        assert_eq!(found[0].kind, "Dex ID token");
    }

    #[test]
    fn the_three_base64_offsets_all_match_text_that_holds_the_secret() {
        let secret = b"0a1b2c3d4e5f60718293a4b5";
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            let mut text = prefix.as_bytes().to_vec();
            text.extend_from_slice(secret);
            text.extend_from_slice(b"tail");
            let enc = STANDARD.encode(&text);
            assert!(
                (0..3).any(|o| enc.contains(&embedded_base64(secret, o, &STANDARD))),
                "prefix {prefix:?}"
            );
        }
    }

    #[test]
    fn clean_text_and_allowed_items_find_nothing_and_context_is_masked() {
        assert!(
            leaks_in("HTTP 401\n\n{\"kind\":\"Status\",\"reason\":\"Unauthorized\"}").is_empty()
        );
        let mut s = secrets();
        let mut c = Collection::default();
        c.add("admin login body", format!("{{\"token\":\"{JWT}\"}}"));
        c.add("log", format!("token {JWT} and 0a1b2c3d4e5f60718293a4b5c"));
        s.allow(JWT, "admin login body");
        let found = find_leaks(&c, &s);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.item == "log"));
        for f in &found {
            let shown = f.to_string();
            assert!(
                !shown.contains("0a1b2c3d4e5f") && !shown.contains("c2lnbmF0dXJl"),
                "{shown}"
            );
        }
    }
}
