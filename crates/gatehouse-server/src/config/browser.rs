//! Browser sign-in (`oidc.clientSecret`, `session.*`): the session key, cookie names (the
//! `__Host-` prefix with secure cookies) and the checks that tie them to `publicUrl`.

use std::time::Duration;

use secrecy::{SecretSlice, SecretString};
use url::Url;

use super::Reader;

/// Browser sign-in (backend-for-frontend) and the web UI.
#[derive(Debug)]
pub struct BrowserConfig {
    /// The web client's secret (`oidc.clientSecret`, `oidc.clientSecretFile`, env `OIDC_CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// The key that encrypts session cookies (`session.key`, `session.keyFile`,
    /// env `GATEHOUSE_SESSION_KEY`); replicas that share it share sessions.
    pub session_key: SecretSlice<u8>,
    /// The longest a session lives, refreshes included (`session.ttl`, default 12h).
    pub session_ttl: Duration,
    /// Session cookie name as sent: `session.cookieName` (default `gatehouse_session`), with
    /// the `__Host-` prefix added when cookies are secure.
    pub cookie_name: String,
    /// The sign-in flow cookie's name: `__Host-gatehouse_flow` with secure cookies, else
    /// `gatehouse_flow`.
    pub flow_cookie_name: String,
    /// Mark cookies `Secure` (`session.secureCookies`, default true).
    pub secure_cookies: bool,
    /// The public URL; the redirect URI is `<publicUrl>/auth/callback`.
    pub public_url: Url,
}

impl BrowserConfig {
    /// The OAuth redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/auth/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// The prefix that binds a cookie to gatehouse's own host (`Secure`, `Path=/`, no `Domain`).
pub const HOST_PREFIX: &str = "__Host-";

/// The flow cookie's base name (with secure cookies it is sent as `__Host-gatehouse_flow`; see
/// [`BrowserConfig::flow_cookie_name`]). Only [`crate::browser`] reads and writes it.
pub const FLOW_COOKIE: &str = "gatehouse_flow";

/// The session and flow cookie names for a configured session cookie name: with secure
/// cookies both carry the `__Host-` prefix (added when the configured name lacks it), so a
/// sibling subdomain cannot plant them.
pub fn cookie_names(configured: &str, secure: bool) -> (String, String) {
    if secure {
        let session = if configured.starts_with(HOST_PREFIX) {
            configured.to_owned()
        } else {
            format!("{HOST_PREFIX}{configured}")
        };
        (session, format!("{HOST_PREFIX}{}", FLOW_COOKIE))
    } else {
        (configured.to_owned(), FLOW_COOKIE.to_owned())
    }
}

pub(super) fn read_browser(
    r: &mut Reader<'_>,
    oidc: bool,
    public_url: Option<&Url>,
) -> Option<BrowserConfig> {
    let before = r.problems.len();
    let secret = r.secret("oidc.clientSecret", Some("OIDC_CLIENT_SECRET"));
    let key = r.secret("session.key", Some("GATEHOUSE_SESSION_KEY"));
    let failed = r.problems.len() > before;
    let session_ttl = r
        .duration("session.ttl", None)
        .unwrap_or(Duration::from_secs(12 * 3600));
    let configured_name = r
        .string("session.cookieName", None)
        .unwrap_or_else(|| "gatehouse_session".to_owned());
    let secure_cookies = r.bool("session.secureCookies", None).unwrap_or(true);
    if !configured_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || configured_name.is_empty()
    {
        r.problem(
            "session.cookieName",
            "use letters, digits, `_` and `-` only",
        );
    }
    let (cookie_name, flow_cookie_name) = cookie_names(&configured_name, secure_cookies);
    if !secure_cookies
        && (configured_name.starts_with(HOST_PREFIX) || configured_name.starts_with("__Secure-"))
    {
        r.problem(
            "session.cookieName",
            "a `__Host-` or `__Secure-` name needs session.secureCookies: true (browsers drop such cookies without Secure); drop the prefix for plain-HTTP development",
        );
    }
    if cookie_name == flow_cookie_name {
        r.problem(
            "session.cookieName",
            "is the name of gatehouse's sign-in flow cookie; choose another",
        );
    }
    if failed {
        return None;
    }
    match (secret, key) {
        (None, None) => None,
        (Some(_), None) => {
            r.problem("session.key", "required for browser sign-in (oidc.clientSecret is set); make one with `openssl rand -hex 32`");
            None
        }
        (None, Some(_)) => {
            r.problem(
                "oidc.clientSecret",
                "required for browser sign-in (session.key is set)",
            );
            None
        }
        (Some(secret), Some(key)) => {
            if key.trim().len() < 32 {
                r.problem(
                    "session.key",
                    "must be at least 32 bytes; make one with `openssl rand -hex 32`",
                );
                return None;
            }
            if !oidc {
                r.problem(
                    "oidc",
                    "browser sign-in needs oidc.issuerUrl and oidc.clientId",
                );
                return None;
            }
            let Some(public_url) = public_url.cloned() else {
                r.problem(
                    "publicUrl",
                    "required for browser sign-in: the redirect URI is <publicUrl>/auth/callback",
                );
                return None;
            };
            Some(BrowserConfig {
                client_secret: SecretString::from(secret),
                session_key: SecretSlice::from(key.trim().as_bytes().to_vec()),
                session_ttl,
                cookie_name,
                flow_cookie_name,
                secure_cookies,
                public_url,
            })
        }
    }
}
