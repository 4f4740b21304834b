//! The kubectl-compatible proxy for `/api`, `/apis`, `/version` and `/openapi`.
//!
//! The request arrives authenticated ([`crate::auth_layer`], which also applies the header
//! rules: no identity headers, no `Connection` naming a protected header); what is sent is
//! [`crate::plan::decide`]'s decision; this module carries it out.
//!
//! # Security
//! - Client-sent `Impersonate-*` / `X-Remote-*` headers and a `Connection` header naming a
//!   credential, identity or framing header never get here: the authentication layer refuses
//!   them first ([`crate::credentials`] holds the rules and why).
//! - `X-Forwarded-*`, `Forwarded` and `X-Real-Ip` are dropped, so a client cannot forge what
//!   the kube-apiserver's audit log records about it.
//! - Mapped users and the admin are sent over the privileged pool with gatehouse's own
//!   credentials and the `Impersonate-*` headers of the plan ([`crate::plan`]); the client's
//!   `Authorization` header (and any bearer token in `Sec-WebSocket-Protocol`) is removed
//!   first, so the kube-apiserver sees exactly one identity.
//! - The credential is read by [`crate::credentials`], exactly as the kube-apiserver reads it;
//!   every ambiguous form is refused. Fall-through requests go over the anonymous pool
//!   ([`crate::upstream`]) with no impersonation, and their credential is rebuilt from the one
//!   token gatehouse examined (`Authorization: Bearer <token>`): every other copy (a second
//!   header, a WebSocket bearer subprotocol) is dropped, so the kube-apiserver can only judge the
//!   token that gatehouse judged.
//! - `Cookie` never goes upstream: every cookie on gatehouse's origin is gatehouse's own
//!   (upstream `Set-Cookie` and `Clear-Site-Data` are dropped), and Kubernetes passes request
//!   headers on to pods, Services and aggregated API servers, which must never receive the
//!   sealed, refreshable session.
//! - Every response on a proxy path carries `Content-Security-Policy: sandbox`,
//!   `X-Content-Type-Options: nosniff` and `Cross-Origin-Resource-Policy: same-origin`: a
//!   page served by a pod or Service through the proxy runs no script on gatehouse's origin,
//!   and no other site can embed it.
//! - A client's `Audit-ID` is dropped (audit entries could be spoofed or made to collide), and
//!   `X-Forwarded-For` is set to the client's address, which the kube-apiserver records in the
//!   audit event's `sourceIPs`; only a peer in `trustedProxies` may add addresses before it.
//! - `CONNECT` is answered 405 (as the kube-apiserver does) and never forwarded: a tunnel
//!   request is not a Kubernetes API request, and a 2xx to it would turn the upstream
//!   connection into a raw tunnel.
//! - Bodies stream both ways; nothing is buffered, so watches and logs flow as they come.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use gatehouse_core::identity::Principal;
use gatehouse_core::request_info::{self, RequestInfo};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;

use crate::app::App;
use crate::authn::{Authenticated, Authn};
use crate::credentials::{connection_tokens, strip_websocket_bearer};
use crate::metrics::{Held, HeldBody, RequestLabels, code_class};
use crate::plan::{self, Mapping, Plan, Settings};
use crate::status::ApiError;
use crate::upstream::{Identity, SendError};

/// The proxy handler.
pub async fn proxy(State(app): State<Arc<App>>, req: Request) -> Response {
    let (auth_label, mut resp) = match handle(&app, req).await {
        Ok((label, resp)) => (label, resp),
        Err(e) => ("refused", e.into_response()),
    };
    secure_response_headers(resp.headers_mut());
    app.metrics
        .proxy_requests
        .get_or_create(&RequestLabels {
            auth: auth_label,
            code: code_class(resp.status()),
        })
        .inc();
    resp
}

async fn handle(app: &App, mut req: Request) -> Result<(&'static str, Response), ApiError> {
    // From here until the response body is sent or the client goes away (then the body is
    // dropped, and with it the upstream stream). A stream whose first bytes are late (`logs -f`
    // of a quiet container) is in flight while its headers are awaited too.
    let in_flight = Held::hold(&app.metrics.proxy_in_flight);
    let accepted = match req.extensions().get::<Authn>() {
        Some(Authn::Accepted(a)) => Arc::clone(a),
        Some(Authn::Refused(r)) => return Err(ApiError::Refused(Arc::clone(r))),
        None => {
            return Err(ApiError::Internal(
                "the request reached the proxy without passing the authentication layer".to_owned(),
            ));
        }
    };
    // CONNECT asks for a tunnel to an authority, not for a resource: HTTP/1.1 CONNECT names no
    // path, HTTP/2 CONNECT carries none, so it cannot be forwarded as the request it claims to
    // be. The kube-apiserver registers no route for the method (its connect subresources are
    // GET and POST) and answers 405 after authentication; so does gatehouse, before anything
    // is sent upstream.
    if req.method() == http::Method::CONNECT {
        return Err(ApiError::MethodNotAllowed {
            message: "the Kubernetes API does not serve the CONNECT method; exec, attach and port-forward use GET or POST with an upgrade".to_owned(),
            allow: Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        });
    }
    // A request gatehouse cannot be sure to read as the kube-apiserver does is refused
    // before any review or ServiceAccount choice (see `request_info`).
    let info = request_info::parse(req.method().as_str(), req.uri().path(), req.uri().query())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let plan = plan_for(app, &accepted.outcome, &info).await?;
    let label = plan.label();
    let (identity, impersonate) = match plan {
        Plan::Impersonate { headers, .. } => (Identity::Privileged, headers),
        Plan::FallThrough => (Identity::Anonymous, Vec::new()),
        Plan::Deny(denial) => return Err(ApiError::Denied(denial)),
    };

    let peer = crate::client::peer_addr(&req);
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = app
        .upstream
        .uri_for(path_and_query)
        .map_err(|e| ApiError::BadRequest(format!("cannot forward this path: {e}")))?;
    let (mut parts, body) = req.into_parts();
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers, upgrade);
    let client_forwarded_for = forwarded_for(&headers);
    strip_forwarding(&mut headers);
    headers.remove(header::COOKIE);
    headers.remove("audit-id");
    if let Some(v) = app
        .config
        .forwarded_for(peer, client_forwarded_for.as_deref())
    {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    headers.remove(header::AUTHORIZATION);
    strip_websocket_bearer(&mut headers);
    if identity == Identity::Privileged {
        for (name, value) in impersonate {
            headers.append(name, value);
        }
    } else {
        // Fall-through: exactly the token gatehouse examined, in the one form both read alike.
        let token = &accepted.credential.token;
        let mut v =
            HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
                ApiError::Unauthorized("the bearer token is not valid header text".to_owned())
            })?;
        v.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, v);
    }
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(uri)
        .body(body)
        .map_err(|e| ApiError::Internal(format!("cannot build the upstream request: {e}")))?;
    *out.headers_mut() = headers;

    let started = Instant::now();
    let mut resp = app
        .upstream
        .send(identity, upgrade, out)
        .await
        .map_err(|e| match e {
            SendError::PoolFull(full) => ApiError::UpstreamBusy(full),
            SendError::Unavailable(source) => ApiError::UpstreamUnavailable {
                base: app.upstream.base().to_string(),
                source,
            },
        })?;
    app.metrics
        .upstream_seconds
        .observe(started.elapsed().as_secs_f64());

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::Internal(
                "the kube-apiserver switched protocols on a request that did not ask to".to_owned(),
            ));
        };
        let tunnel = Held::hold(&app.metrics.proxy_open_tunnels);
        tokio::spawn(async move {
            // Counted from the 101 until either side closes; both ends close together.
            let _tunnel = tunnel;
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(error = %e, "upgraded connection closed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "upgrade failed"),
            }
        });
        let (mut parts, _) = resp.into_parts();
        strip_upstream_state(&mut parts.headers);
        return Ok((label, Response::from_parts(parts, Body::empty())));
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    strip_upstream_state(&mut parts.headers);
    let body = HeldBody::new(body, in_flight);
    Ok((label, Response::from_parts(parts, Body::new(body))))
}

/// The plan for a request about `info` authenticated as `outcome`: for an OIDC user, the
/// ServiceAccount index and the access choice (reviews only when several ServiceAccounts
/// qualify and their answers are not cached), then [`plan::decide`]. Nothing is sent
/// upstream but those reviews; public so that `benches/hot_paths.rs` measures this path.
pub async fn plan_for(
    app: &App,
    outcome: &Authenticated,
    info: &RequestInfo,
) -> Result<Plan, ApiError> {
    let mapping = match outcome {
        Authenticated::Principal(p) => match &**p {
            Principal::Oidc(user) => Some(
                match app.index.lookup_fresh(
                    user.who(),
                    !plan::unmapped_falls_through(user, app.config.fall_through),
                ) {
                    Err(stale) => Mapping::Stale(stale),
                    Ok(mapped) => Mapping::Chosen(
                        app.access
                            .choose(&mapped, info)
                            .await
                            .map_err(ApiError::Review)?,
                    ),
                },
            ),
            Principal::Admin(_) => None,
        },
        Authenticated::FallThrough => None,
    };
    plan::decide(outcome, mapping, plan_settings(app)).map_err(ApiError::Plan)
}

/// The settings the proxy's decision reads, from the configuration (also for `/v1/whoami` and
/// the UI, so they say what the proxy does).
pub fn plan_settings(app: &App) -> Settings<'_> {
    Settings {
        admin: app.config.admin.as_ref(),
        fall_through: app.config.fall_through,
        impersonate_groups: app
            .config
            .authentication
            .as_ref()
            .map_or(&[], |a| a.impersonate_groups.as_slice()),
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// The client's `X-Forwarded-For` chain, joined (only used when the peer is a trusted proxy).
pub(crate) fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Drops what an upstream could use to set or clear state in the browser for gatehouse's whole
/// origin: cookies, site data, HSTS (`max-age=0` would erase gatehouse's own), reporting
/// endpoints (they could collect gatehouse URLs such as `/auth/callback?code=...`), alternative
/// services, service-worker scope, client hints, preload links and agent clustering.
fn strip_upstream_state(headers: &mut HeaderMap) {
    for name in [
        "set-cookie",
        "set-cookie2",
        "clear-site-data",
        "strict-transport-security",
        "nel",
        "report-to",
        "reporting-endpoints",
        "alt-svc",
        "service-worker-allowed",
        "origin-agent-cluster",
        "accept-ch",
        "critical-ch",
        "link",
    ] {
        headers.remove(name);
    }
}

/// Headers on every response of a proxy path: whatever a pod, Service or aggregated API server
/// serves, it runs no script on gatehouse's origin, is not MIME-sniffed into HTML, and cannot be
/// embedded by another site.
fn secure_response_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.remove("content-security-policy-report-only");
}

fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::HOST,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

fn strip_forwarding(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
    headers.remove(header::FORWARDED);
    headers.remove("x-real-ip");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_forwarding_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h, false);
        strip_forwarding(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn upgrade_headers_kept_for_upgrades() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "Upgrade");
    }

    #[test]
    fn upstream_cannot_set_or_clear_browser_state_and_responses_are_sandboxed() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("gatehouse_session=planted"),
        );
        h.append(header::SET_COOKIE, HeaderValue::from_static("other=1"));
        h.insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
        h.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=0"),
        );
        h.insert("report-to", HeaderValue::from_static("{}"));
        h.insert("nel", HeaderValue::from_static("{}"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("script-src *"),
        );
        strip_upstream_state(&mut h);
        secure_response_headers(&mut h);
        assert!(!h.contains_key(header::SET_COOKIE));
        for gone in [
            "clear-site-data",
            "strict-transport-security",
            "report-to",
            "nel",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h.get(header::CONTENT_SECURITY_POLICY).unwrap(), "sandbox");
        assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(
            h.get("cross-origin-resource-policy").unwrap(),
            "same-origin"
        );
    }
}
