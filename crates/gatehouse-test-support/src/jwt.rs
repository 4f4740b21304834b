//! Token spellings for tests of what gatehouse and the kube-apiserver accept.

/// The same signed token spelled differently: the payload's last base64url character with its
/// unused low bit flipped (a lenient decoder, such as Go's, reads the same bytes). `None` when
/// the payload's length leaves no unused bits.
pub fn respell(token: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let parts: Vec<&str> = token.split('.').collect();
    let payload = parts[1];
    if payload.len().is_multiple_of(4) {
        return None;
    }
    let last = *payload.as_bytes().last()?;
    let v = ALPHABET.iter().position(|c| *c == last)?;
    Some(format!(
        "{}.{}{}.{}",
        parts[0],
        &payload[..payload.len() - 1],
        ALPHABET[v ^ 1] as char,
        parts[2]
    ))
}

/// The WebSocket bearer subprotocol (`base64url.bearer.authorization.k8s.io.<token>`) for
/// `token`, as kubectl sends it.
pub fn ws_bearer(token: &str) -> String {
    use base64::Engine as _;
    format!(
        "base64url.bearer.authorization.k8s.io.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
    )
}
