//! The browser session: what the session cookie holds ([`Session`]), the cookie itself
//! ([`SessionCookies`]: written, read and recognised, sealed by [`crate::session`]), and
//! single-flight refreshes ([`RefreshFlights`]). Shared by the sign-in flow
//! ([`crate::browser`]), the session layer ([`crate::auth_layer`]), the pages that start an
//! admin session ([`crate::ui`]) and the state ([`crate::app`], which hands out
//! [`SessionCookies`]); it imports none of them.
//!
//! # Security
//! - Refresh is single-flight per session ([`RefreshFlights`], keyed by SHA-256 of the refresh
//!   token): parallel requests near expiry wait for one token request and share its result,
//!   and a request still holding the old cookie within [`REFRESH_REUSE`] after it gets the same
//!   fresh session. With rotating refresh tokens (Keycloak, node oidc-provider) a second use of
//!   the old token would otherwise make the IdP revoke the whole grant and sign the user out at
//!   random. This holds within one replica; across replicas see docs/browser-sign-in.md.
//! - [`Session`]'s `Debug` shows neither token.
//! - A session cookie is honoured only within `session.ttl` of the sign-in
//!   ([`SessionCookies::open`]), whatever the cookie's own `Max-Age` says: a copied cookie
//!   does not outlive the session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::token::TokenFingerprint;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::BrowserConfig;
use crate::session::{CodecError, CookieAttrs, CookieCodec, clear_cookie, read_cookie, set_cookie};

/// How long a finished refresh is shared with requests that still carry the old cookie.
pub const REFRESH_REUSE: Duration = Duration::from_secs(30);
/// The most refreshes remembered at once; beyond that a refresh runs unshared.
const MAX_FLIGHTS: usize = 10_000;
/// What the session cookie holds.
#[derive(Serialize, Deserialize, Clone)]
pub struct Session {
    /// The bearer token that authenticates requests (ID token, or admin token).
    pub token: String,
    /// The refresh token, when the IdP gave one.
    pub refresh_token: Option<String>,
    /// How the session was made: `oidc` or `admin`.
    pub kind: String,
    /// When the session started, unix seconds.
    pub created: i64,
    /// When `token` expires, unix seconds.
    pub expires: i64,
}

/// The attributes of gatehouse's cookies at `path` (`Secure` as configured).
pub fn cookie_attrs<'a>(b: &BrowserConfig, path: &'a str, max_age: u64) -> CookieAttrs<'a> {
    CookieAttrs {
        path,
        max_age,
        secure: b.secure_cookies,
    }
}

/// gatehouse's own origin (`scheme://host[:port]` of `publicUrl`), for same-origin checks.
pub fn public_origin(b: &BrowserConfig) -> String {
    b.public_url.origin().ascii_serialization()
}

/// True when the request carries gatehouse's session cookie (valid or not).
pub fn has_session_cookie(browser: Option<&BrowserConfig>, headers: &HeaderMap) -> bool {
    browser.is_some_and(|b| read_cookie(headers, &b.cookie_name).is_some())
}

/// Why a session could not be written into a cookie.
#[derive(Debug, thiserror::Error)]
pub enum SessionCookieError {
    /// The session could not be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    /// The session could not be sealed.
    #[error(transparent)]
    Seal(#[from] CodecError),
}

/// The session cookie, with browser sign-in configured: the settings and the codec that seals
/// it ([`crate::app::App::session_cookies`] hands one out).
#[derive(Debug, Clone, Copy)]
pub struct SessionCookies<'a> {
    browser: &'a BrowserConfig,
    codec: &'a CookieCodec,
}

impl<'a> SessionCookies<'a> {
    /// The session cookie of these settings, sealed with `codec`.
    pub fn new(browser: &'a BrowserConfig, codec: &'a CookieCodec) -> Self {
        Self { browser, codec }
    }

    /// `Set-Cookie` headers for a new or refreshed session, at `now` (unix seconds): the
    /// cookie lives until `session.ttl` after the session was created.
    pub fn set(&self, session: &Session, now: i64) -> Result<Vec<HeaderValue>, SessionCookieError> {
        let b = self.browser;
        let json = serde_json::to_vec(session)?;
        let sealed = self.codec.seal(&b.cookie_name, &json)?;
        let lifetime =
            (session.created + i64::try_from(b.session_ttl.as_secs()).unwrap_or(0) - now).max(0);
        Ok(set_cookie(
            &b.cookie_name,
            &sealed,
            cookie_attrs(b, "/", u64::try_from(lifetime).unwrap_or(0)),
        ))
    }

    /// The session from the request's cookie, when valid and within its lifetime at `now`.
    pub fn open(&self, headers: &HeaderMap, now: i64) -> Option<Session> {
        let b = self.browser;
        let sealed = read_cookie(headers, &b.cookie_name)?;
        let session: Session =
            serde_json::from_slice(&self.codec.open(&b.cookie_name, &sealed)?).ok()?;
        let ttl = i64::try_from(b.session_ttl.as_secs()).unwrap_or(0);
        (now < session.created + ttl).then_some(session)
    }

    /// `Set-Cookie` headers that remove the session cookie (and its chunks).
    pub fn clear(&self) -> Vec<HeaderValue> {
        clear_cookie(
            &self.browser.cookie_name,
            cookie_attrs(self.browser, "/", 0),
        )
    }
}

type RefreshResult = Result<Session, String>;

struct FlightEntry {
    cell: Arc<tokio::sync::OnceCell<RefreshResult>>,
    started: Instant,
}

/// Refreshes in progress or just finished, by SHA-256 of the refresh token, so that one
/// session refreshes once however many requests arrive at once (see the module docs).
#[derive(Default)]
pub struct RefreshFlights {
    inner: std::sync::Mutex<HashMap<TokenFingerprint, FlightEntry>>,
}

impl std::fmt::Debug for RefreshFlights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshFlights")
    }
}

impl RefreshFlights {
    /// The shared cell for `key`, created when there is none; `None` when too many are
    /// remembered (the caller then refreshes on its own).
    fn flight(
        &self,
        key: TokenFingerprint,
        now: Instant,
    ) -> Option<Arc<tokio::sync::OnceCell<RefreshResult>>> {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget finished refreshes after REFRESH_REUSE, and failed ones at once (a later
        // request may try again; the ones that waited share the failure).
        map.retain(|_, f| match f.cell.get() {
            None => true,
            Some(Err(_)) => false,
            Some(Ok(_)) => now.saturating_duration_since(f.started) < REFRESH_REUSE,
        });
        if !map.contains_key(&key) && map.len() >= MAX_FLIGHTS {
            return None;
        }
        let entry = map.entry(key).or_insert_with(|| FlightEntry {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            started: now,
        });
        Some(Arc::clone(&entry.cell))
    }

    /// Forgets every refresh of the session that holds `refresh_token` (before or after its
    /// refresh), so that after sign-out a copy of the old cookie gets no refreshed session.
    pub fn forget(&self, refresh_token: &str) {
        let key = gatehouse_core::token::BearerToken::new(refresh_token).fingerprint();
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|k, f| {
            *k != key
                && !matches!(f.cell.get(), Some(Ok(s)) if s.refresh_token.as_deref() == Some(refresh_token))
        });
    }

    /// Runs `refresh` once for `refresh_token`: concurrent and late callers with the same
    /// token wait for, and share, the one result.
    pub async fn run<F, Fut>(&self, refresh_token: &str, refresh: F) -> RefreshResult
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = RefreshResult>,
    {
        let key = gatehouse_core::token::BearerToken::new(refresh_token).fingerprint();
        match self.flight(key, Instant::now()) {
            Some(cell) => cell.get_or_init(refresh).await.clone(),
            None => refresh().await,
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.kind)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(crate) fn session(token: &str, refresh_token: &str) -> Session {
        Session {
            token: token.to_owned(),
            refresh_token: Some(refresh_token.to_owned()),
            kind: "oidc".to_owned(),
            created: 1000,
            expires: 2000,
        }
    }

    #[tokio::test]
    async fn parallel_refreshes_of_one_session_make_one_token_request() {
        let flights = Arc::new(RefreshFlights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (flights, calls, gate) =
                (Arc::clone(&flights), Arc::clone(&calls), Arc::clone(&gate));
            tasks.push(tokio::spawn(async move {
                flights
                    .run("rt-1", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok(session("fresh", "rt-2"))
                    })
                    .await
            }));
        }
        // Let every task reach the flight, then finish the one refresh.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        gate.notify_one();
        for t in tasks {
            let s = t.await.unwrap().unwrap();
            assert_eq!(s.token, "fresh");
            assert_eq!(s.refresh_token.as_deref(), Some("rt-2"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one token request");
        // A late request still holding the old cookie shares the result, without a request.
        let late = flights
            .run("rt-1", || async { Err("must not be called".to_owned()) })
            .await
            .unwrap();
        assert_eq!(late.token, "fresh");
        // Another session refreshes on its own.
        let other = flights
            .run("rt-other", || async { Ok(session("other", "rt-3")) })
            .await
            .unwrap();
        assert_eq!(other.token, "other");
    }

    #[tokio::test]
    async fn after_sign_out_an_old_cookie_gets_no_shared_refresh() {
        let flights = RefreshFlights::default();
        let first = flights
            .run("rt-old", || async { Ok(session("fresh", "rt-new")) })
            .await;
        assert_eq!(first.unwrap().token, "fresh");
        // Signing out with the refreshed cookie (it holds rt-new) forgets the shared result.
        flights.forget("rt-new");
        let replay = flights
            .run("rt-old", || async {
                Err("the IdP refused: revoked".to_owned())
            })
            .await;
        assert!(
            replay.is_err(),
            "the old cookie refreshes anew (and the IdP refuses)"
        );
    }

    #[tokio::test]
    async fn a_failed_refresh_is_not_reused_by_later_requests() {
        let flights = RefreshFlights::default();
        let failed = flights
            .run("rt-x", || async { Err("the IdP refused".to_owned()) })
            .await;
        assert!(failed.is_err());
        let retried = flights
            .run("rt-x", || async { Ok(session("fresh", "rt-y")) })
            .await;
        assert_eq!(retried.unwrap().token, "fresh");
    }
}
