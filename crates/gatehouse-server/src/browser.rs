//! Browser sign-in: the authorization-code flow with PKCE, run by the server
//! (backend-for-frontend): `/auth/login`, `/auth/callback` and `/auth/logout`. The session
//! cookie it sets ([`crate::browser_session::SessionCookies`]) authenticates gatehouse's own
//! pages only, through the session layer ([`crate::auth_layer`]); its calls to the IdP's token
//! and revocation endpoints are [`crate::token_endpoint`]'s.
//!
//! # Security
//! - `/auth/login` creates fresh `state`, `nonce` and PKCE verifier, seals them with the page to
//!   return to into a short-lived flow cookie (10 minutes), and sends the browser
//!   to the IdP with the static parameters and the user parameters that the configuration allows
//!   (any other parameter is refused with 400 naming it; patterns must match the whole value),
//!   by the one rule the CLI uses too ([`vet_user_parameters`]).
//! - `/auth/callback` requires the flow cookie, compares `state` in constant time, exchanges the
//!   code with the verifier and the client secret, verifies the ID token like any other token,
//!   and compares `nonce` in constant time. The flow cookie is cleared on every outcome, so a
//!   replayed callback finds no flow; a reused code is refused by the IdP. On success the
//!   browser is sent (303) to the page it came from, so `code` never stays in the URL or history.
//! - The return page must be a same-origin path ([`safe_return_path`]).
//! - An authorization code the IdP refuses as the client's fault (`invalid_grant`: forged,
//!   reused or expired; `invalid_request`) answers 400 with a page offering to start again;
//!   502 is kept for an IdP that cannot be reached, answers something that is not a token
//!   response, or refuses gatehouse's own client configuration. An attacker's forged codes
//!   therefore never look like an IdP outage in metrics and alerts.
//! - The session cookie holds the tokens sealed ([`crate::session`]); the session layer
//!   refreshes it with the refresh token shortly before the ID token expires, and it never
//!   outlives `session.ttl`.
//! - Cookie names: with secure cookies (the default) both cookies carry the `__Host-` prefix
//!   (`__Host-gatehouse_session`, `__Host-gatehouse_flow`; a configured `session.cookieName`
//!   gets the prefix added). Browsers accept a `__Host-` cookie only with `Secure`, `Path=/`
//!   and no `Domain`, so a sibling subdomain (`evil.example.com` beside
//!   `gatehouse.example.com`) cannot plant or overwrite one (session fixation, or a forced
//!   sign-in flow). The flow cookie therefore has `Path=/` too; only `/auth/callback` reads
//!   it, and the session layer passes `/auth/` by.
//! - Refresh is single-flight per session (why, and how: [`crate::browser_session`]), so a
//!   rotating refresh token is used once; the refreshed ID token must name the session's user
//!   ([`crate::token_endpoint`]).
//! - Logout revokes the refresh token (RFC 7009) when the IdP's discovery document has a
//!   `revocation_endpoint`, within [`REVOKE_TIMEOUT`]; a failure is logged (never the token)
//!   and does not stop the sign-out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::authorize::{
    FlowSecrets, ParameterError, authorization_url, safe_return_path, vet_user_parameters,
};
use gatehouse_core::protocol::{self, AuthorizationCode, RefreshToken};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::browser_session::{Session, SessionCookies, cookie_attrs, public_origin};
use crate::config::{BrowserConfig, FLOW_COOKIE};
use crate::page::{PageError, ParameterProblem};
use crate::session::{clear_cookie, read_cookie, same_origin, set_cookie};
use crate::token_endpoint::{Grant, revoke_refresh_token, token_request};

const FLOW_TTL: i64 = 600;
/// The longest logout waits for the IdP's revocation endpoint.
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(5);
pub use gatehouse_core::authorize::MAX_PARAMETER_LEN;

#[derive(Serialize, Deserialize)]
struct Flow {
    secrets: FlowSecrets,
    return_to: String,
    created: i64,
}

/// `GET /auth/login?return_to=/path&<user parameters>`.
pub async fn login(
    State(app): State<Arc<App>>,
    Query(mut query): Query<Vec<(String, String)>>,
) -> Response {
    let (Some(b), Some(oidc), Some(codec)) = (&app.config.browser, &app.oidc, &app.cookies) else {
        return PageError::SignInOff.into_response();
    };
    // Every parameter as sent, repeats included (a map would keep one of them silently).
    let mut return_paths: Vec<String> = Vec::new();
    query.retain(|(k, v)| {
        let is_return = k == "return_to";
        if is_return {
            return_paths.push(v.clone());
        }
        !is_return
    });
    let return_to = match return_paths.as_slice() {
        [] => "/ui/whoami".to_owned(),
        [one] => one.clone(),
        _ => return PageError::UnsafeReturn.into_response(),
    };
    let Some(return_to) = safe_return_path(&return_to).map(str::to_owned) else {
        return PageError::UnsafeReturn.into_response();
    };
    let config = oidc.config();
    let params = match vet_user_parameters(
        &config.additional_parameters,
        &config.user_parameters,
        query,
    ) {
        Ok(params) => params,
        Err(e) => return parameter_page(e, &config.user_parameters).into_response(),
    };
    let Some(discovery) = oidc.discovery() else {
        return PageError::IdpNotLoaded(oidc.not_ready_reason().unwrap_or_default())
            .into_response();
    };
    let mut random = [0u8; 96];
    if codec.random(&mut random).is_err() {
        return PageError::Internal("no randomness".to_owned()).into_response();
    }
    let secrets = FlowSecrets::from_random(&random);
    let url = match authorization_url(
        &discovery.authorization_endpoint,
        &config.client_id,
        &b.redirect_uri(),
        &config.scopes(),
        &secrets,
        &params,
    ) {
        Ok(u) => u,
        Err(e) => return PageError::CannotStart(e).into_response(),
    };
    let flow = Flow {
        secrets,
        return_to,
        created: app.clock.unix_now(),
    };
    let Ok(json) = serde_json::to_vec(&flow) else {
        return PageError::Internal("cannot encode the flow".to_owned()).into_response();
    };
    let Ok(sealed) = codec.seal(&b.flow_cookie_name, &json) else {
        return PageError::Internal("cannot seal the flow".to_owned()).into_response();
    };
    let mut resp = Redirect::to(url.as_str()).into_response();
    for c in set_cookie(
        &b.flow_cookie_name,
        &sealed,
        cookie_attrs(b, "/", u64::try_from(FLOW_TTL).unwrap_or(600)),
    ) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// The error page for a refused sign-in parameter, in the browser flow's words.
fn parameter_page(
    e: ParameterError,
    allowed: &BTreeMap<String, crate::config::UserParameter>,
) -> PageError {
    let (name, problem) = match e {
        ParameterError::Reserved { name } => (name, ParameterProblem::Reserved),
        ParameterError::NotAllowed { name } => (
            name,
            ParameterProblem::NotAllowed(list_or_none(allowed.keys())),
        ),
        ParameterError::TooLong { name } => (name, ParameterProblem::TooLong),
        ParameterError::Repeated { name } => (name, ParameterProblem::Repeated),
        ParameterError::Mismatch { name, pattern } => (name, ParameterProblem::Mismatch(pattern)),
        // The server's patterns are compiled when the configuration loads, so its rule never
        // reports one it cannot use.
        ParameterError::BadPattern { reason, .. } => return PageError::Internal(reason),
    };
    PageError::Parameter { name, problem }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// The callback's query. `code` and `state` are secret types: `Debug` is redacted.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<AuthorizationCode>,
    state: Option<protocol::State>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`.
pub async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let (Some(b), Some(oidc), Some(codec)) = (&app.config.browser, &app.oidc, &app.cookies) else {
        return PageError::CallbackOff.into_response();
    };
    let clear_flow = clear_cookie(&b.flow_cookie_name, cookie_attrs(b, "/", 0));
    let with_cleared = |e: PageError| {
        let mut resp = e.into_response();
        for c in &clear_flow {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        resp
    };
    let flow: Option<Flow> = read_cookie(&headers, &b.flow_cookie_name)
        .and_then(|sealed| codec.open(&b.flow_cookie_name, &sealed))
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(flow) = flow else {
        return with_cleared(PageError::FlowNotFound);
    };
    let start_again = format!(
        "/auth/login?return_to={}",
        url::form_urlencoded::byte_serialize(flow.return_to.as_bytes()).collect::<String>()
    );
    if app.clock.unix_now() > flow.created + FLOW_TTL {
        return with_cleared(PageError::FlowExpired { retry: start_again });
    }
    // `State`'s equality is constant-time.
    let state_ok = cb.state.as_ref() == Some(&flow.secrets.state);
    // `state` first, and a mismatch keeps the flow: a forged callback link (with an `error`,
    // or anything else) cannot abort the sign-in this browser has in progress.
    if !state_ok {
        return PageError::StateMismatch { retry: start_again }.into_response();
    }
    if let Some(error) = cb.error {
        return with_cleared(PageError::IdpRefused {
            error,
            description: cb.error_description.unwrap_or_default(),
            retry: start_again,
        });
    }
    let Some(code) = cb.code else {
        return with_cleared(PageError::NoCode { retry: start_again });
    };
    let redirect_uri = b.redirect_uri();
    let tokens = match token_request(
        &app,
        Grant::Code {
            code: &code,
            redirect_uri: &redirect_uri,
            verifier: &flow.secrets.verifier,
        },
    )
    .await
    {
        Ok(t) => t,
        Err(e) if e.client_fault() => {
            tracing::info!(reason = %e, "browser sign-in: the IdP refused the authorization code");
            return with_cleared(PageError::Exchange {
                reason: e,
                retry: start_again,
            });
        }
        Err(e) => {
            tracing::warn!(reason = %e, "browser sign-in: the code exchange failed");
            return with_cleared(PageError::Exchange {
                reason: e,
                retry: start_again,
            });
        }
    };
    let Some(id_token) = tokens
        .id_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
    else {
        return with_cleared(PageError::NoIdToken { retry: start_again });
    };
    let verified = match oidc.verify(&id_token, app.clock.unix_now()).await {
        Ok(v) => v,
        Err(e) => {
            return with_cleared(PageError::IdTokenRefused {
                reason: e,
                retry: start_again,
            });
        }
    };
    if gatehouse_oidc::id_token::check_nonce(&verified, &flow.secrets.nonce).is_err() {
        return with_cleared(PageError::NonceMismatch { retry: start_again });
    }
    // A2: a token whose claims make no user (an unverified email as username) would be
    // refused on every request; say why now instead of signing in.
    if let Err(e) = gatehouse_core::identity::OidcUser::from_verified(
        verified.clone(),
        &oidc.config().claim_rules(),
    ) {
        return with_cleared(PageError::NoUser {
            reason: e,
            retry: start_again,
        });
    }
    let session = Session {
        token: id_token,
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        kind: "oidc".to_owned(),
        created: app.clock.unix_now(),
        expires: verified.expires_at,
    };
    let cookies = match SessionCookies::new(b, codec).set(&session, app.clock.unix_now()) {
        Ok(c) => c,
        Err(e) => return with_cleared(PageError::Internal(e.to_string())),
    };
    tracing::info!(subject = %verified.subject, "browser sign-in");
    let mut resp = Redirect::to(&flow.return_to).into_response();
    for c in &clear_flow {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    for c in cookies.into_iter().chain(legacy_cookie_removal(b)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `Set-Cookie` lines that remove the cookies of versions before the `__Host-` names
/// (`gatehouse_session` and its chunks at `Path=/`, `gatehouse_flow` at `Path=/auth`), so a
/// browser that signs in again holds no stale sealed session under the old name.
fn legacy_cookie_removal(b: &BrowserConfig) -> Vec<HeaderValue> {
    if !b.cookie_name.starts_with(crate::config::HOST_PREFIX) {
        return Vec::new();
    }
    let legacy_session = &b.cookie_name[crate::config::HOST_PREFIX.len()..];
    let mut out = clear_cookie(legacy_session, cookie_attrs(b, "/", 0));
    out.extend(
        clear_cookie(FLOW_COOKIE, cookie_attrs(b, "/auth", 0))
            .into_iter()
            .take(1),
    );
    out
}

/// `POST /auth/logout`: clears the session, then uses the IdP's end-session endpoint when it has one.
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(b) = &app.config.browser else {
        return Redirect::to("/").into_response();
    };
    if !same_origin(&headers, &public_origin(b)) {
        return PageError::CrossSiteSignOut.into_response();
    }
    let session = app
        .session_cookies()
        .and_then(|c| c.open(&headers, app.clock.unix_now()));
    if let Some(rt) = session.as_ref().and_then(|s| s.refresh_token.as_deref()) {
        app.refreshes.forget(rt);
    }
    if let (Some(s), Some(d)) = (&session, app.oidc.as_ref().and_then(|o| o.discovery()))
        && s.kind == "oidc"
        && let Some(rt) = s.refresh_token.as_deref()
    {
        match d.revocation_endpoint.as_deref() {
            Some(endpoint) => {
                match tokio::time::timeout(
                    REVOKE_TIMEOUT,
                    revoke_refresh_token(&app, endpoint, &RefreshToken::new(rt)),
                )
                .await
                {
                    Ok(Ok(())) => tracing::info!("sign-out: refresh token revoked at the IdP"),
                    Ok(Err(e)) => {
                        tracing::warn!(reason = %e, "sign-out: the refresh token could not be revoked; signing out anyway");
                    }
                    Err(_) => tracing::warn!(
                        "sign-out: the IdP's revocation endpoint did not answer in time; signing out anyway"
                    ),
                }
            }
            None => tracing::debug!(
                "sign-out: the IdP has no revocation_endpoint; the refresh token stays valid at the IdP until it expires"
            ),
        }
    }
    let signed_out = format!(
        "{}/?signed_out=1",
        b.public_url.as_str().trim_end_matches('/')
    );
    let target = match (&session, app.oidc.as_ref().and_then(|o| o.discovery())) {
        (Some(s), Some(d)) if s.kind == "oidc" => match d
            .end_session_endpoint
            .as_deref()
            .and_then(|e| url::Url::parse(e).ok())
        {
            Some(mut url) => {
                url.query_pairs_mut()
                    .append_pair("id_token_hint", &s.token)
                    .append_pair("post_logout_redirect_uri", &signed_out)
                    .append_pair(
                        "client_id",
                        &app.oidc
                            .as_ref()
                            .map(|o| o.config().client_id.clone())
                            .unwrap_or_default(),
                    );
                url.to_string()
            }
            None => "/?signed_out=1".to_owned(),
        },
        _ => "/?signed_out=1".to_owned(),
    };
    let mut resp = Redirect::to(&target).into_response();
    for c in clear_cookie(&b.cookie_name, cookie_attrs(b, "/", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_removes_the_cookies_of_the_unprefixed_names() {
        let b = BrowserConfig {
            client_secret: secrecy::SecretString::from("s".to_owned()),
            session_key: secrecy::SecretSlice::from(vec![0u8; 32]),
            session_ttl: Duration::from_secs(60),
            cookie_name: "__Host-gatehouse_session".to_owned(),
            flow_cookie_name: "__Host-gatehouse_flow".to_owned(),
            secure_cookies: true,
            public_url: url::Url::parse("https://gh.example").unwrap(),
        };
        let lines: Vec<String> = legacy_cookie_removal(&b)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("gatehouse_session=; Path=/; Max-Age=0"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("gatehouse_flow=; Path=/auth; Max-Age=0"))
        );
        assert!(lines.iter().all(|l| l.contains("Max-Age=0")));
        let plain = BrowserConfig {
            cookie_name: "gatehouse_session".to_owned(),
            ..b
        };
        assert!(legacy_cookie_removal(&plain).is_empty());
    }
}
