//! The request's authentication, run once as two layers before the handler:
//!
//! 1. [`session_layer`] (every path): on gatehouse's own pages ([`cookie_authenticates`]),
//!    without an `Authorization` header, a valid session cookie is opened (and refreshed when
//!    due); its token is handed to the next layer in the request's extensions. It is never
//!    written back into a header to be parsed again.
//! 2. [`authenticate`] (the routes that need to know who the caller is, each with its
//!    [`Surface`]): reads the one credential ([`crate::credentials`]), authenticates it
//!    ([`crate::authn::Authenticator`]) and puts the outcome, [`Authn`] (accepted with the
//!    credential, or refused with why), in the request's extensions. It never answers: each
//!    handler turns a refusal into its own surface's answer (a `Status`, or the sign-in page),
//!    so the proxy's refusals are counted and sandboxed like its other answers.
//!
//! The checks run in this order, and stop at the first refusal (every refusal is counted in
//! `gatehouse_authentication_refusals_total` by its [`Refusal::reason`], but a page visited
//! without any credential, which is no refusal but the way to the sign-in page):
//! - Every surface: a token in the query string (`access_token`, 401): tokens in URLs end
//!   up in logs, browser histories and `Referer` headers, and are never read.
//! - Kubernetes API ([`Surface::KubernetesApi`]): identity headers (403), a `Connection`
//!   naming a protected header (400), the credential's form (401), the session cookie
//!   without a credential (401: it is no credential here), the token.
//! - gatehouse's own API ([`Surface::OwnApi`], `/v1/whoami`): identity headers (403), the
//!   credential's form (401), the token. The session cookie is ignored (so "no credentials").
//! - The web UI ([`Surface::Pages`]): the session's token or the credential, the token.
//!
//! # Security
//! - State-changing requests authenticated by the session cookie must come from gatehouse's
//!   own origin (no cross-site request forgery with the cookie); a WebSocket upgrade counts as
//!   state-changing. Refused with 403 before any handler runs.
//! - A session whose refresh fails is signed out (its cookie cleared) and the request goes on
//!   without a credential.
//! - The cookie authenticates gatehouse's own pages only ([`cookie_authenticates`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::token::BearerToken;

use crate::app::App;
use crate::authn::{Accepted, Authn, AuthnError, Refusal};
use crate::browser_session::{has_session_cookie, public_origin};
use crate::credentials::{self, refuse_connection_naming_protected, refuse_identity_headers};
use crate::session::same_origin;
use crate::status::ApiError;
use crate::token_endpoint::refresh_shared;

/// True for the paths that the session cookie authenticates: gatehouse's own pages (`/` and
/// `/ui/*`, the stylesheet excepted). Everything else, the Kubernetes API proxy and `/v1/*`
/// included, ignores the cookie.
///
/// # Security
/// The proxy serves content that gatehouse does not control (a pod's or Service's `proxy`
/// subresource, an aggregated API server) on gatehouse's own origin. If the cookie
/// authenticated it, a link to such a page would run the attacker's script with the victim's
/// rights, and its same-origin requests would pass every cross-site check. The web UI itself
/// never needs the proxy from the browser: its pages call Kubernetes on the server side
/// (`/ui/access` sends the SelfSubjectRulesReview in-process).
pub fn cookie_authenticates(path: &str) -> bool {
    path == "/" || (path.starts_with("/ui/") && !path.starts_with("/ui/static/"))
}

/// The session's token, from the session layer to [`authenticate`].
#[derive(Debug, Clone)]
struct SessionToken(Arc<BearerToken>);

/// Middleware: a request to one of gatehouse's own pages ([`cookie_authenticates`]) without
/// `Authorization` but with a valid session cookie carries the session's token (refreshed when
/// due) on to [`authenticate`]. State-changing requests authenticated this way must come from
/// gatehouse's own origin (no cross-site request forgery with the cookie).
pub async fn session_layer(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let Some(b) = app.config.browser.as_ref() else {
        return next.run(req).await;
    };
    let Some(cookies) = app.session_cookies() else {
        return next.run(req).await;
    };
    if req.headers().contains_key(header::AUTHORIZATION) || !cookie_authenticates(req.uri().path())
    {
        return next.run(req).await;
    }
    let Some(mut session) = cookies.open(req.headers(), app.clock.unix_now()) else {
        return next.run(req).await;
    };
    // A WebSocket upgrade is a GET that browsers send cross-site without CORS: it counts as
    // state-changing (no UI page is one, but the rule stays if one ever is).
    let state_changing = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.headers().contains_key(header::UPGRADE);
    if state_changing && !same_origin(req.headers(), &public_origin(b)) {
        return ApiError::CrossSite.into_response();
    }
    let mut new_cookies = Vec::new();
    if session.expires - 60 <= app.clock.unix_now() {
        match refresh_shared(&app, &session).await {
            Ok(fresh) => {
                new_cookies = cookies
                    .set(&fresh, app.clock.unix_now())
                    .unwrap_or_default();
                session = fresh;
            }
            Err(e) => {
                tracing::info!(reason = %e, "session could not be refreshed; signed out");
                let mut resp = next.run(req).await;
                for c in cookies.clear() {
                    resp.headers_mut().append(header::SET_COOKIE, c);
                }
                return resp;
            }
        }
    }
    req.extensions_mut()
        .insert(SessionToken(Arc::new(BearerToken::new(session.token))));
    let mut resp = next.run(req).await;
    for c in new_cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Which surface a route belongs to: what its credential may be, and which header rules
/// apply before it is read (see the module docs for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The Kubernetes API proxy.
    KubernetesApi,
    /// gatehouse's own API (`/v1/whoami`).
    OwnApi,
    /// The web UI's pages (the session cookie counts).
    Pages,
}

/// Middleware: authenticates the request once and puts the [`Authn`] in its extensions.
pub async fn authenticate(
    State((app, surface)): State<(Arc<App>, Surface)>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = req.extensions().get::<SessionToken>().cloned();
    let authn = match accepted(&app, surface, req.uri().query(), req.headers(), session).await {
        Ok(a) => Authn::Accepted(Arc::new(a)),
        Err(r) => {
            if !(surface == Surface::Pages
                && matches!(r, Refusal::Token(AuthnError::NoCredentials)))
            {
                app.metrics.refused(r.reason());
            }
            Authn::Refused(Arc::new(r))
        }
    };
    req.extensions_mut().insert(authn);
    next.run(req).await
}

/// True when the query string has an `access_token` parameter (RFC 6750 §2.3), its name
/// percent-decoded and compared without regard to case.
pub fn query_names_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(name, _)| name.eq_ignore_ascii_case("access_token"))
    })
}

async fn accepted(
    app: &App,
    surface: Surface,
    query: Option<&str>,
    headers: &HeaderMap,
    session: Option<SessionToken>,
) -> Result<Accepted, Refusal> {
    if query_names_token(query) {
        return Err(Refusal::TokenInQuery);
    }
    let credential = match surface {
        Surface::KubernetesApi => {
            refuse_identity_headers(headers)?;
            refuse_connection_naming_protected(headers)?;
            let credential = credentials::read(headers).map_err(Refusal::KubernetesCredential)?;
            if credential.is_none() && has_session_cookie(app.config.browser.as_ref(), headers) {
                return Err(Refusal::SessionCookieOnApi);
            }
            credential
        }
        Surface::OwnApi => {
            refuse_identity_headers(headers)?;
            credentials::read(headers).map_err(Refusal::Credential)?
        }
        Surface::Pages => match session {
            Some(SessionToken(token)) => Some(
                credentials::with_session(headers, token.expose_secret())
                    .map_err(Refusal::Credential)?,
            ),
            None => credentials::read(headers).map_err(Refusal::Credential)?,
        },
    };
    let Some(credential) = credential else {
        return Err(AuthnError::NoCredentials.into());
    };
    let outcome = app
        .authn
        .authenticate(Some(&credential.token), app.clock.unix_now())
        .await?;
    Ok(Accepted {
        credential,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_in_the_query_is_recognised_in_every_spelling() {
        for q in [
            "access_token=x",
            "watch=1&access_token=",
            "ACCESS_TOKEN=x",
            "%61ccess_token=x",
            "access%5Ftoken=x",
            "access_token",
        ] {
            assert!(query_names_token(Some(q)), "{q}");
        }
        for q in [
            "",
            "watch=1",
            "x=access_token",
            "access_tokens=1",
            "token=x",
        ] {
            assert!(!query_names_token(Some(q)), "{q}");
        }
        assert!(!query_names_token(None));
    }
}
