//! The browser flow's loopback listener: it waits for the IdP's redirect with the code.
//!
//! # Security
//! - The loopback listener binds 127.0.0.1 only and answers one path; a request with a wrong
//!   `state` (compared in constant time) gets a failure page and does not end the wait (a local
//!   process cannot abort or hijack the sign-in by guessing).
//! - Connections to the listener are read concurrently, each with one deadline for its whole
//!   request head (10 s, not per read) and at most 64 at once: a local process that connects
//!   and sends nothing, or drips a byte at a time, cannot park the sign-in; the browser's
//!   redirect is served beside it. Accept errors (out of file descriptors) pause the loop
//!   instead of ending the sign-in.
//! - Mix-up defence (RFC 9207, RFC 9700 §4.4): an answer that carries `iss` is believed only
//!   when it names the issuer this sign-in went to, and when the IdP announces
//!   `authorization_response_iss_parameter_supported`, an answer without `iss` is not believed
//!   either ([`IssCheck`]). The check applies to error answers too.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_core::authorize::FlowSecrets;
pub use gatehouse_core::protocol::{AuthorizationCode, State};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::error::CliError;

const PAGE_OK: &str = "<!doctype html><html lang=en><head><meta charset=utf-8><title>gatehouse: signed in</title></head><body><h1>Signed in</h1><p>You are signed in to gatehouse. You can close this tab and return to the terminal.</p></body></html>";

fn page_failed(reason: &str) -> String {
    let escaped = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>gatehouse: sign-in failed</title></head><body><h1>Sign-in failed</h1><p>{escaped}</p><p>Return to the terminal for details.</p></body></html>"
    )
}

/// How long one connection to the loopback listener may take to send its whole request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long writing an answer page may take.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// Connections read at once; more are closed at once (each is bounded by
/// [`REQUEST_DEADLINE`], so the slots free up).
const MAX_CONNECTIONS: usize = 64;

async fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // A client that does not read its answer cannot hold the listener either.
    let _ = tokio::time::timeout(RESPONSE_DEADLINE, async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// The whole head did not arrive within the deadline.
    Timeout,
    /// Not an HTTP/1 `GET` request line (or the connection closed early, or sent too much).
    Bad,
}

/// Reads the request line's target (path and query) of one HTTP/1 `GET` request. The whole
/// head must arrive within `deadline` (one deadline for the request, not one per read, so a
/// client dripping a byte at a time is cut off), and be at most 16 KiB.
async fn read_target(stream: &mut TcpStream, deadline: Duration) -> Result<String, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Bad)?;
            if n == 0 || buf.len() > 16 * 1024 {
                return Err(ReadError::Bad);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(deadline, read_head)
        .await
        .map_err(|_| ReadError::Timeout)??;
    let line = buf.split(|b| *b == b'\n').next().ok_or(ReadError::Bad)?;
    let line = std::str::from_utf8(line)
        .map_err(|_| ReadError::Bad)?
        .trim_end();
    let mut parts = line.split(' ');
    if parts.next() != Some("GET") {
        return Err(ReadError::Bad);
    }
    parts.next().map(str::to_owned).ok_or(ReadError::Bad)
}

/// The `iss` rule of RFC 9207 for this sign-in's answer.
#[derive(Debug, Clone)]
pub struct IssCheck {
    issuer: String,
    required: bool,
}

impl IssCheck {
    /// `issuer` as discovery names it; `required` when discovery announces
    /// `authorization_response_iss_parameter_supported`.
    pub fn new(issuer: &str, required: bool) -> Self {
        Self {
            issuer: issuer.to_owned(),
            required,
        }
    }
}

/// What a connection to the loopback listener brought, once it proved it belongs to this
/// sign-in (its `state` matches).
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The authorization code.
    Code(AuthorizationCode),
    /// The IdP's error, as a sentence.
    Refused(String),
}

/// Why a request to the loopback listener is not this sign-in's answer. It is answered with a
/// failure page, and the wait goes on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotTheAnswer {
    /// The request target is not a path and query.
    #[error("bad request")]
    BadTarget,
    /// Another path than `/callback`.
    #[error("not found")]
    NotFound,
    /// A protocol parameter given more than once (RFC 6749 §3.1: parameters must not be
    /// included more than once), which a reader could resolve either way.
    #[error("the parameter {0:?} is repeated")]
    Repeated(String),
    /// No `state`, or another sign-in's.
    #[error(
        "This answer does not belong to the sign-in running in your terminal (state mismatch)."
    )]
    StateMismatch,
    /// The right `state`, but neither a (non-empty) code nor an error.
    #[error("no authorization code")]
    NoCode,
    /// The answer names another issuer in `iss` than the one this sign-in went to, or none
    /// although the IdP announces it always sends one (RFC 9207): a mix-up.
    #[error("This answer does not come from the identity provider this sign-in went to (iss).")]
    WrongIssuer,
}

/// Reads the redirect's request target (`/callback?code=...&state=...`) against this sign-in's
/// `state` (compared in constant time). Pure, so the rules are tested (and fuzzed) without a
/// socket: only `/callback`; `state`, `code`, `error`, `error_description` and `iss` at most
/// once each; the `state` must match before anything else of the answer is believed, then
/// `iss` ([`IssCheck`]).
pub fn read_callback(target: &str, state: &State, iss: &IssCheck) -> Result<Arrival, NotTheAnswer> {
    if !target.starts_with('/') {
        return Err(NotTheAnswer::BadTarget);
    }
    let url = url::Url::parse(&format!("http://127.0.0.1{target}"))
        .map_err(|_| NotTheAnswer::BadTarget)?;
    if url.path() != "/callback" {
        return Err(NotTheAnswer::NotFound);
    }
    let mut q: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in url.query_pairs() {
        let protocol = matches!(
            &*k,
            "state" | "code" | "error" | "error_description" | "iss"
        );
        if q.insert(k.clone().into_owned(), v.into_owned()).is_some() && protocol {
            return Err(NotTheAnswer::Repeated(k.into_owned()));
        }
    }
    if !q.get("state").is_some_and(|s| state.matches(s)) {
        return Err(NotTheAnswer::StateMismatch);
    }
    match q.get("iss") {
        Some(named) if *named != iss.issuer => return Err(NotTheAnswer::WrongIssuer),
        None if iss.required => return Err(NotTheAnswer::WrongIssuer),
        _ => {}
    }
    if let Some(error) = q.get("error") {
        let description = q.get("error_description").cloned().unwrap_or_default();
        let reason = if description.is_empty() {
            format!("the identity provider refused the sign-in: {error}")
        } else {
            format!("the identity provider refused the sign-in: {error} ({description})")
        };
        return Ok(Arrival::Refused(reason));
    }
    q.remove("code")
        .filter(|code| !code.is_empty())
        .map(|code| Arrival::Code(AuthorizationCode::new(code)))
        .ok_or(NotTheAnswer::NoCode)
}

/// Reads and checks one connection. Anything that is not this sign-in's answer is answered
/// here (400, 404, 408) and yields `None`; the answer of this sign-in is handed back with its
/// connection, to be answered after the code exchange.
async fn examine(
    mut stream: TcpStream,
    state: State,
    iss: IssCheck,
    deadline: Duration,
) -> Option<(TcpStream, Arrival)> {
    let target = match read_target(&mut stream, deadline).await {
        Ok(t) => t,
        Err(ReadError::Timeout) => {
            respond(&mut stream, "408 Request Timeout", &page_failed("too slow")).await;
            return None;
        }
        Err(ReadError::Bad) => {
            respond(&mut stream, "400 Bad Request", &page_failed("bad request")).await;
            return None;
        }
    };
    match read_callback(&target, &state, &iss) {
        Ok(arrival) => Some((stream, arrival)),
        Err(e) => {
            let status = if e == NotTheAnswer::NotFound {
                "404 Not Found"
            } else {
                "400 Bad Request"
            };
            respond(&mut stream, status, &page_failed(&e.to_string())).await;
            None
        }
    }
}

/// Waits for this sign-in's redirect on the loopback listener. Connections are read
/// concurrently, each within [`REQUEST_DEADLINE`], so a local process that connects and sends
/// nothing, or drips bytes, never delays the browser's redirect.
pub(super) async fn wait_for_callback<F, Fut, T>(
    listener: &TcpListener,
    secrets: &FlowSecrets,
    iss: &IssCheck,
    exchange: F,
) -> Result<T, CliError>
where
    F: FnOnce(AuthorizationCode) -> Fut,
    Fut: std::future::Future<Output = Result<T, CliError>>,
{
    let mut pending = tokio::task::JoinSet::new();
    let mut oldest_first = std::collections::VecDeque::new();
    let (mut stream, arrival) = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Full: the oldest open connection gives way, never the newest. A
                    // browser's redirect arrives in one packet and is read at once, so a
                    // flood of connections that drip bytes cannot keep it out (closing the
                    // newest instead would let the flood refill every freed slot first).
                    if pending.len() >= MAX_CONNECTIONS {
                        while let Some(handle) = oldest_first.pop_front() {
                            let handle: tokio::task::AbortHandle = handle;
                            if !handle.is_finished() {
                                handle.abort();
                                break;
                            }
                        }
                    }
                    if oldest_first.len() > 2 * MAX_CONNECTIONS {
                        oldest_first.retain(|h: &tokio::task::AbortHandle| !h.is_finished());
                    }
                    oldest_first.push_back(pending.spawn(examine(
                        stream,
                        secrets.state.clone(),
                        iss.clone(),
                        REQUEST_DEADLINE,
                    )));
                }
                // Out of file descriptors and the like: pause instead of ending the sign-in
                // (the caller's timeout bounds the wait).
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                if let Ok(Some(found)) = done {
                    break found;
                }
            }
        }
    };
    // The other connections are dropped (their tasks aborted) with `pending`.
    drop(pending);
    match arrival {
        Arrival::Refused(reason) => {
            respond(&mut stream, "200 OK", &page_failed(&reason)).await;
            Err(CliError::Login {
                reason,
                hint: "check the parameters the server sends (`gatehouse doctor`), or sign in with another account".to_owned(),
            })
        }
        Arrival::Code(code) => match exchange(code).await {
            Ok(v) => {
                respond(&mut stream, "200 OK", PAGE_OK).await;
                Ok(v)
            }
            Err(e) => {
                respond(&mut stream, "200 OK", &page_failed(&e.to_string())).await;
                Err(e)
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::cli::login::signin::random_secrets;

    /// A local process that opens a connection to the loopback listener and drips one byte at
    /// a time must not park the sign-in: the browser's real redirect, arriving while the
    /// dripping connection is open, is served and the login completes.
    #[tokio::test]
    async fn a_dripping_connection_does_not_block_the_real_callback() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secrets = random_secrets().unwrap();
        let state = secrets.state.clone();
        let dripper = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for b in b"GET /callback?state=x&code=y".iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // The dripping connection is first in the listener's queue.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let browser = tokio::spawn(browser_redirect(addr, state));
        let got = callback_within(&listener, &secrets, Duration::from_secs(5))
            .await
            .expect("the real callback is served while the dripping connection is open");
        assert_eq!(got, "the-code");
        let page = browser.await.unwrap();
        assert!(page.contains("Signed in"), "{page}");
        dripper.abort();
    }

    /// The browser's redirect to the loopback listener at `addr`; returns the page it got.
    async fn browser_redirect(addr: std::net::SocketAddr, state: State) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "GET /callback?code=the-code&state={} HTTP/1.1\r\nhost: x\r\n\r\n",
                state.expose_secret()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).await.unwrap();
        page
    }

    /// The code of the first valid callback, or `None` when none arrives within `limit`.
    async fn callback_within(
        listener: &TcpListener,
        secrets: &FlowSecrets,
        limit: Duration,
    ) -> Option<String> {
        tokio::time::timeout(
            limit,
            wait_for_callback(
                listener,
                secrets,
                &IssCheck::new(ISSUER, false),
                |code| async move { Ok::<_, CliError>(code.expose_secret().to_owned()) },
            ),
        )
        .await
        .ok()
        .map(Result::unwrap)
    }

    /// More dripping connections than the listener reads at once, and more arriving all the
    /// time: the oldest give way, so the browser's redirect is still read.
    #[tokio::test]
    async fn a_flood_of_dripping_connections_beyond_the_limit_does_not_block_the_callback() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secrets = random_secrets().unwrap();
        let state = secrets.state.clone();
        let flood = tokio::spawn(async move {
            let mut open = Vec::new();
            loop {
                if let Ok(mut s) = TcpStream::connect(addr).await {
                    let _ = s.write_all(b"G").await;
                    open.push(s);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        // The flood has filled every slot before the browser arrives.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let browser = tokio::spawn(browser_redirect(addr, state));
        let got = callback_within(&listener, &secrets, Duration::from_secs(5))
            .await
            .expect("the real callback is served during the flood");
        assert_eq!(got, "the-code");
        assert!(browser.await.unwrap().contains("Signed in"));
        flood.abort();
    }

    /// The request head has one deadline for the whole request: a client that drips a byte
    /// every 50 ms (each read succeeding) is cut off when the deadline passes.
    #[tokio::test]
    async fn a_request_head_must_arrive_within_one_deadline() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dripper = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for b in b"GET /callback?state=x".iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let t0 = std::time::Instant::now();
        let got = read_target(&mut stream, Duration::from_millis(500)).await;
        assert_eq!(got, Err(ReadError::Timeout));
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        dripper.abort();
    }

    #[test]
    fn the_callback_is_believed_only_with_this_sign_ins_state_and_no_repeats() {
        let ok = read_callback("/callback?code=abc&state=s1", &State::new("s1"), &any_iss());
        assert_eq!(ok, Ok(Arrival::Code(AuthorizationCode::new("abc"))));
        assert_eq!(
            read_callback("/callback?code=abc&state=s2", &State::new("s1"), &any_iss()),
            Err(NotTheAnswer::StateMismatch)
        );
        assert_eq!(
            read_callback("/callback?code=abc", &State::new("s1"), &any_iss()),
            Err(NotTheAnswer::StateMismatch)
        );
        for repeated in [
            "/callback?code=abc&state=s1&state=s1",
            "/callback?code=abc&code=evil&state=s1",
            "/callback?state=s1&error=x&error=y",
        ] {
            assert!(
                matches!(
                    read_callback(repeated, &State::new("s1"), &any_iss()),
                    Err(NotTheAnswer::Repeated(_))
                ),
                "{repeated}"
            );
        }
        assert_eq!(
            read_callback("/other?state=s1&code=a", &State::new("s1"), &any_iss()),
            Err(NotTheAnswer::NotFound)
        );
        assert_eq!(
            read_callback(
                "@evil/callback?state=s1&code=a",
                &State::new("s1"),
                &any_iss()
            ),
            Err(NotTheAnswer::BadTarget)
        );
        for no_code in ["/callback?state=s1", "/callback?state=s1&code="] {
            assert_eq!(
                read_callback(no_code, &State::new("s1"), &any_iss()),
                Err(NotTheAnswer::NoCode),
                "{no_code}"
            );
        }
        assert_eq!(
            read_callback(
                "/callback?state=s1&error=access_denied&error_description=no+way",
                &State::new("s1"),
                &any_iss()
            ),
            Ok(Arrival::Refused(
                "the identity provider refused the sign-in: access_denied (no way)".to_owned()
            ))
        );
        // Other parameters (an IdP's session_state) may come along, even twice.
        assert_eq!(
            read_callback(
                "/callback?session_state=a&session_state=b&state=s1&code=c",
                &State::new("s1"),
                &any_iss()
            ),
            Ok(Arrival::Code(AuthorizationCode::new("c")))
        );
    }

    const ISSUER: &str = "https://idp.example.com";

    /// An IdP that does not announce RFC 9207's `iss` (it may still send one).
    fn any_iss() -> IssCheck {
        IssCheck::new(ISSUER, false)
    }

    /// RFC 9207: an `iss` must name this sign-in's issuer (error answers too), and is required
    /// when the IdP announces it; before this, any `iss` was ignored.
    #[test]
    fn an_answer_naming_another_issuer_or_lacking_an_announced_iss_is_not_believed() {
        let s = State::new("s1");
        let announced = IssCheck::new(ISSUER, true);
        let ok = format!(
            "/callback?state=s1&code=c&iss={}",
            "https%3A%2F%2Fidp.example.com"
        );
        for check in [&any_iss(), &announced] {
            assert_eq!(
                read_callback(&ok, &s, check),
                Ok(Arrival::Code(AuthorizationCode::new("c")))
            );
            for wrong in [
                "/callback?state=s1&code=c&iss=https%3A%2F%2Fevil.example.com",
                "/callback?state=s1&code=c&iss=https%3A%2F%2Fidp.example.com%2F",
                "/callback?state=s1&code=c&iss=",
                "/callback?state=s1&error=access_denied&iss=https%3A%2F%2Fevil.example.com",
            ] {
                assert_eq!(
                    read_callback(wrong, &s, check),
                    Err(NotTheAnswer::WrongIssuer),
                    "{wrong}"
                );
            }
            assert!(matches!(
                read_callback(&format!("{ok}&iss=x"), &s, check),
                Err(NotTheAnswer::Repeated(_))
            ));
        }
        assert_eq!(
            read_callback("/callback?state=s1&code=c", &s, &announced),
            Err(NotTheAnswer::WrongIssuer),
            "announced, so required"
        );
        assert_eq!(
            read_callback("/callback?state=s1&code=c", &s, &any_iss()),
            Ok(Arrival::Code(AuthorizationCode::new("c"))),
            "not announced: optional"
        );
    }

    #[test]
    fn failure_page_escapes_html() {
        let p = page_failed("<script>x</script>");
        assert!(!p.contains("<script>"));
    }
}
