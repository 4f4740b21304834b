//! The client's credential, read exactly as the kube-apiserver reads it, or refused; and the
//! headers a client may not send about who it is.
//!
//! Read once per request, by the authentication layer ([`crate::auth_layer`]), into one
//! [`Credential`]: the `Authorization` header, kubectl's WebSocket bearer subprotocol, or (on
//! gatehouse's own pages only) the token of the session cookie ([`Source::SessionCookie`],
//! opened by the session layer and handed over in the request's extensions, never written
//! back into a header).
//!
//! # Security
//! gatehouse and the kube-apiserver read the same request. Wherever their rules differ, a
//! client can show gatehouse one credential and the kube-apiserver another: a token gatehouse
//! refuses would then reach the cluster on a fall-through request. So gatehouse accepts only
//! the forms on which both readers agree, refuses every other form with 401, and on
//! fall-through rebuilds the forwarded credential from the one token it examined
//! ([`crate::proxy`] drops every other copy).
//!
//! The kube-apiserver (k8s.io/apiserver, `request/bearertoken` and `request/websocket`, tried
//! in that order by a union that moves on after an error) reads:
//! - `Authorization`: the *first* header value, trimmed, split on single spaces; `Bearer`
//!   (any case) and the *second* field is the token, whatever follows it. A second
//!   `Authorization` header, extra fields, and an empty second field (`Bearer  tok`) are
//!   therefore places where the two readers could disagree: gatehouse refuses them all, and
//!   any other scheme (kube ignores it and authenticates the request some other way).
//! - `Sec-WebSocket-Protocol`, on a WebSocket upgrade only: every comma-separated entry with
//!   the prefix `base64url.bearer.authorization.k8s.io.` is a token (unpadded base64url, UTF-8);
//!   two such entries, bad encoding, or no other subprotocol is an error. gatehouse refuses each
//!   of these, a bearer subprotocol on a request that is not a WebSocket upgrade (kube would
//!   ignore it), and a request that carries both forms (if the header one failed, kube would
//!   go on to the subprotocol, which gatehouse never examined).
//! - A token is refused when it holds whitespace or control characters: no reader should have
//!   to decide where it ends.
//! - Clients may not send `Impersonate-*` or `X-Remote-*` headers ([`refuse_identity_headers`]).
//!   Impersonation fails open (an extra header widens what the request may do), so these are
//!   refused with a `Status` rather than stripped silently; the user learns why.
//! - A `Connection` header that names a credential, identity or framing header is refused
//!   ([`refuse_connection_naming_protected`]): the hop-by-hop rule would otherwise delete that
//!   header (for example the client's `Authorization`, making a fall-through request anonymous)
//!   after gatehouse had read it.

use base64::Engine as _;
use gatehouse_core::token::BearerToken;
use http::HeaderMap;
use http::header;

/// The prefix of the `Sec-WebSocket-Protocol` entry that carries a bearer token.
pub const WS_BEARER_PROTOCOL: &str = "base64url.bearer.authorization.k8s.io.";

/// Where the credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: Bearer <token>`.
    Header,
    /// kubectl's WebSocket bearer subprotocol.
    WebSocketProtocol,
    /// The web UI's session cookie (gatehouse's own pages only).
    SessionCookie,
}

/// The one bearer token of a request.
#[derive(Debug)]
pub struct Credential {
    /// The token.
    pub token: BearerToken,
    /// Where it was found.
    pub source: Source,
}

/// Why a request's credential was refused. Every variant is the client's fault (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// More than one `Authorization` header.
    #[error("the request has more than one Authorization header; send exactly one")]
    RepeatedHeader,
    /// `Authorization` is not valid header text.
    #[error("the Authorization header is not valid text")]
    NotText,
    /// A scheme other than `Bearer`.
    #[error("gatehouse accepts only `Authorization: Bearer <token>`")]
    NotBearer,
    /// `Bearer` with nothing after it, or two spaces before the token.
    #[error("the bearer token is empty (or preceded by more than one space)")]
    Empty,
    /// `Bearer <token> <more>`.
    #[error("the Authorization header has text after the token; send `Bearer <token>` only")]
    ExtraFields,
    /// Whitespace or control characters inside the token.
    #[error("the bearer token holds whitespace or control characters")]
    BadCharacters,
    /// Both `Authorization` and a WebSocket bearer subprotocol.
    #[error(
        "the request carries a token both in Authorization and in Sec-WebSocket-Protocol; send one"
    )]
    Both,
    /// Two WebSocket bearer subprotocols.
    #[error("Sec-WebSocket-Protocol carries more than one bearer token")]
    RepeatedWebSocket,
    /// A bearer subprotocol on a request that is not a WebSocket upgrade.
    #[error("a bearer token in Sec-WebSocket-Protocol is only read on a WebSocket upgrade")]
    NotWebSocket,
    /// The subprotocol's token is not unpadded base64url of UTF-8 text.
    #[error("the bearer token in Sec-WebSocket-Protocol is not unpadded base64url of UTF-8 text")]
    BadWebSocketEncoding,
    /// Only the bearer subprotocol was offered.
    #[error(
        "a WebSocket bearer token needs at least one other subprotocol (for example v5.channel.k8s.io)"
    )]
    NoOtherSubprotocol,
}

/// True when the kube-apiserver would treat the request as a WebSocket request. Its rule
/// (`wsstream.IsWebSocketRequest`): some `Connection` value *contains* `upgrade`, and the first
/// `Upgrade` value is `websocket` (both case-insensitive). gatehouse asks for a `Connection`
/// *token* `upgrade`, which is stricter: whenever gatehouse says yes, so does the
/// kube-apiserver, and a bearer subprotocol that gatehouse does not read is refused.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// The tokens listed in every `Connection` header.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Reads the request's credential: `Ok(None)` when it carries none.
pub fn read(headers: &HeaderMap) -> Result<Option<Credential>, CredentialError> {
    let from_header = authorization(headers)?;
    let from_protocol = websocket_protocol(headers)?;
    match (from_header, from_protocol) {
        (Some(_), Some(_)) => Err(CredentialError::Both),
        (Some(token), None) => Ok(Some(Credential {
            token,
            source: Source::Header,
        })),
        (None, Some(token)) => Ok(Some(Credential {
            token,
            source: Source::WebSocketProtocol,
        })),
        (None, None) => Ok(None),
    }
}

/// The credential of a request to one of gatehouse's own pages that carries a valid session
/// cookie holding `session_token` (and no `Authorization` header): the session's token, unless
/// the request also carries a WebSocket bearer subprotocol, which makes it ambiguous
/// ([`CredentialError::Both`]), as every request with two credentials is.
pub fn with_session(
    headers: &HeaderMap,
    session_token: &str,
) -> Result<Credential, CredentialError> {
    if websocket_protocol(headers)?.is_some() {
        return Err(CredentialError::Both);
    }
    Ok(Credential {
        token: checked(session_token)?,
        source: Source::SessionCookie,
    })
}

/// A client-sent identity header, refused (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "gatehouse does not accept the {name} header: it decides which identity reaches the kube-apiserver; remove --as/--as-group (or the header) and sign in as the user you want to act as"
)]
pub struct IdentityHeader {
    /// The header's name, as sent (lower case).
    pub name: String,
}

/// A `Connection` header naming a protected header, refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Connection header names {token:?}, a credential, identity or framing header that gatehouse will not drop as hop-by-hop; remove it from Connection"
)]
pub struct ConnectionNamesProtected {
    /// The `Connection` token, as sent.
    pub token: String,
}

/// Refuses client-sent identity headers (`Impersonate-*`, `X-Remote-*`).
pub fn refuse_identity_headers(headers: &HeaderMap) -> Result<(), IdentityHeader> {
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("impersonate-") || n.starts_with("x-remote-") {
            return Err(IdentityHeader { name: n.to_owned() });
        }
    }
    Ok(())
}

/// Headers a `Connection` token may not name: removing them as hop-by-hop would change who the
/// request is, or how its body is framed, after gatehouse has read them.
fn is_protected(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "host"
            | "content-length"
            | "content-type"
            | "content-encoding"
            | "transfer-encoding"
            | "sec-websocket-protocol"
            | "sec-websocket-key"
            | "sec-websocket-version"
            | "audit-id"
            | "forwarded"
            | "x-real-ip"
    ) || name.starts_with("impersonate-")
        || name.starts_with("x-remote-")
        || name.starts_with("x-forwarded-")
}

/// Refuses a `Connection` header that names a credential, identity or framing header.
pub fn refuse_connection_naming_protected(
    headers: &HeaderMap,
) -> Result<(), ConnectionNamesProtected> {
    match connection_tokens(headers).find(|t| is_protected(&t.to_ascii_lowercase())) {
        Some(t) => Err(ConnectionNamesProtected {
            token: t.to_owned(),
        }),
        None => Ok(()),
    }
}

fn authorization(headers: &HeaderMap) -> Result<Option<BearerToken>, CredentialError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CredentialError::RepeatedHeader);
    }
    let text = value.to_str().map_err(|_| CredentialError::NotText)?.trim();
    let mut parts = text.splitn(3, ' ');
    let scheme = parts.next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(CredentialError::NotBearer);
    }
    let token = parts.next().unwrap_or_default();
    if token.is_empty() {
        return Err(CredentialError::Empty);
    }
    if parts.next().is_some() {
        return Err(CredentialError::ExtraFields);
    }
    checked(token).map(Some)
}

fn websocket_protocol(headers: &HeaderMap) -> Result<Option<BearerToken>, CredentialError> {
    let mut token = None;
    let mut others = 0usize;
    for entry in headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        let Some(encoded) = entry.strip_prefix(WS_BEARER_PROTOCOL) else {
            others += 1;
            continue;
        };
        if token.is_some() {
            return Err(CredentialError::RepeatedWebSocket);
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| CredentialError::BadWebSocketEncoding)?;
        let text = String::from_utf8(raw).map_err(|_| CredentialError::BadWebSocketEncoding)?;
        token = Some(text);
    }
    let Some(token) = token else {
        return Ok(None);
    };
    if !is_websocket(headers) {
        return Err(CredentialError::NotWebSocket);
    }
    if token.is_empty() {
        return Err(CredentialError::Empty);
    }
    if others == 0 {
        return Err(CredentialError::NoOtherSubprotocol);
    }
    checked(&token).map(Some)
}

fn checked(token: &str) -> Result<BearerToken, CredentialError> {
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CredentialError::BadCharacters);
    }
    Ok(BearerToken::new(token))
}

/// Removes every bearer subprotocol from `Sec-WebSocket-Protocol`, keeping the others.
pub fn strip_websocket_bearer(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with(WS_BEARER_PROTOCOL))
        .map(str::to_owned)
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if !kept.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&kept.join(", "))
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ws(protocols: &str, upgrade: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocols).unwrap(),
        );
        if upgrade {
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        h
    }

    fn enc(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn reads_the_forms_kubernetes_reads_the_same_way() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "Bearer abc ",
            " Bearer abc",
        ] {
            let c = read(&auth(&[v])).unwrap().unwrap();
            assert_eq!(c.token.expose_secret(), "abc", "{v:?}");
            assert_eq!(c.source, Source::Header);
        }
        let c = read(&ws(
            &format!("{WS_BEARER_PROTOCOL}{}, v5.channel.k8s.io", enc("tok")),
            true,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.token.expose_secret(), "tok");
        assert_eq!(c.source, Source::WebSocketProtocol);
        assert!(read(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn refuses_every_form_on_which_the_readers_could_disagree() {
        let cases: &[(&[&str], CredentialError)] = &[
            (&["Bearer a.b.c x"], CredentialError::ExtraFields),
            (&["Bearer a.b.c junk junk"], CredentialError::ExtraFields),
            (&["Bearer  a.b.c"], CredentialError::Empty),
            (&["Bearer"], CredentialError::Empty),
            (&["Bearer "], CredentialError::Empty),
            (&["Basic YTpi"], CredentialError::NotBearer),
            (&["Bearer-x tok"], CredentialError::NotBearer),
            (&["Bearer a\tb"], CredentialError::BadCharacters),
            (
                &["Bearer one", "Bearer two"],
                CredentialError::RepeatedHeader,
            ),
        ];
        for (values, want) in cases {
            assert_eq!(read(&auth(values)).unwrap_err(), *want, "{values:?}");
        }
    }

    #[test]
    fn refuses_ambiguous_websocket_bearers() {
        let one = format!("{WS_BEARER_PROTOCOL}{}", enc("tok"));
        let cases = [
            (
                ws(&format!("{one}, {one}, v5.channel.k8s.io"), true),
                CredentialError::RepeatedWebSocket,
            ),
            (
                ws(&format!("{one}, v5.channel.k8s.io"), false),
                CredentialError::NotWebSocket,
            ),
            (ws(&one, true), CredentialError::NoOtherSubprotocol),
            (
                ws(
                    &format!("{WS_BEARER_PROTOCOL}{}=, v5.channel.k8s.io", enc("to")),
                    true,
                ),
                CredentialError::BadWebSocketEncoding,
            ),
            (
                ws(&format!("{WS_BEARER_PROTOCOL}, v5.channel.k8s.io"), true),
                CredentialError::Empty,
            ),
        ];
        for (h, want) in cases {
            assert_eq!(read(&h).unwrap_err(), want, "{h:?}");
        }
        // `Upgrade: h2c, websocket` is not a WebSocket request to the kube-apiserver.
        let mut h = ws(&format!("{one}, v5.channel.k8s.io"), true);
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c, websocket"));
        assert_eq!(read(&h).unwrap_err(), CredentialError::NotWebSocket);
        // A junk Authorization header plus a subprotocol token: kube would try both.
        let mut h = ws(&format!("{one}, v5.channel.k8s.io"), true);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer junk"),
        );
        assert_eq!(read(&h).unwrap_err(), CredentialError::Both);
    }

    #[test]
    fn websocket_bearer_is_stripped_and_others_kept() {
        let mut h = ws(
            &format!("{WS_BEARER_PROTOCOL}{}, v4.channel.k8s.io", enc("tok")),
            true,
        );
        strip_websocket_bearer(&mut h);
        assert_eq!(
            h.get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
            "v4.channel.k8s.io"
        );
    }

    #[test]
    fn identity_headers_are_refused() {
        for name in [
            "impersonate-user",
            "Impersonate-Group",
            "impersonate-extra-x",
            "x-remote-user",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
            assert!(refuse_identity_headers(&h).is_err(), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-impersonate", HeaderValue::from_static("harmless"));
        assert!(refuse_identity_headers(&h).is_ok());
    }

    #[test]
    fn connection_may_not_name_credential_identity_or_framing_headers() {
        for token in [
            "authorization",
            "Authorization",
            "keep-alive, authorization",
            "cookie",
            "Impersonate-User",
            "x-remote-group",
            "content-length",
            "transfer-encoding",
            "sec-websocket-protocol",
            "host",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_str(token).unwrap());
            assert!(refuse_connection_naming_protected(&h).is_err(), "{token}");
        }
        for token in ["keep-alive", "close", "Upgrade", "te", "x-custom-hop"] {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_str(token).unwrap());
            assert!(refuse_connection_naming_protected(&h).is_ok(), "{token}");
        }
    }
}
