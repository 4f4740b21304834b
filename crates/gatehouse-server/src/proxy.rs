//! The kubectl-compatible proxy for `/api`, `/apis`, `/version` and `/openapi`.
//!
//! # Security
//! - Clients may not send `Impersonate-*` or `X-Remote-*` headers. Impersonation fails open (an
//!   extra header widens what the request may do), so these are refused with a `Status` rather
//!   than stripped silently; the user learns why.
//! - `X-Forwarded-*`, `Forwarded` and `X-Real-Ip` are dropped, so a client cannot forge what
//!   the kube-apiserver's audit log records about it.
//! - Mapped users and the admin are sent over the privileged pool with gatehouse's own
//!   credentials and `Impersonate-*` headers that gatehouse sets; the client's `Authorization`
//!   header (and any bearer token in `Sec-WebSocket-Protocol`) is removed first, so the
//!   kube-apiserver sees exactly one identity. `Impersonate-Extra-gatehouse.dev/*` carries the
//!   original user's subject, username and issuer for the audit log.
//! - Fall-through requests go over the anonymous pool ([`crate::upstream`]) with the client's
//!   headers, its token included, untouched, and no impersonation.
//! - Bodies stream both ways; nothing is buffered, so watches and logs flow as they come.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use gatehouse_core::identity::Principal;
use gatehouse_core::request_info;
use gatehouse_core::token::BearerToken;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;

use crate::app::App;
use crate::authn::{Authenticated, bearer_token};
use crate::metrics::{RequestLabels, code_class};
use crate::status::ApiError;
use crate::upstream::Identity;

/// The prefix of the `Sec-WebSocket-Protocol` entry that carries a bearer token.
pub(crate) const WS_BEARER_PROTOCOL: &str = "base64url.bearer.authorization.k8s.io.";
/// The prefix of the extra keys gatehouse sets on impersonated requests.
pub const EXTRA_PREFIX: &str = "gatehouse.dev";

/// The proxy handler.
pub async fn proxy(State(app): State<Arc<App>>, req: Request) -> Response {
    let (auth_label, resp) = match handle(&app, req).await {
        Ok((label, resp)) => (label, resp),
        Err(e) => ("refused", e.into_response()),
    };
    app.metrics
        .proxy_requests
        .get_or_create(&RequestLabels {
            auth: auth_label,
            code: code_class(resp.status()),
        })
        .inc();
    resp
}

/// How the upstream request is sent.
struct Plan {
    identity: Identity,
    label: &'static str,
    impersonate: Vec<(HeaderName, HeaderValue)>,
}

async fn handle(app: &App, mut req: Request) -> Result<(&'static str, Response), ApiError> {
    refuse_identity_headers(req.headers())?;
    let token = bearer_token(req.headers()).or_else(|| websocket_bearer(req.headers()));
    let now = crate::app::unix_now();
    let authenticated = app.authn.authenticate(token.as_ref(), now).await?;
    let info = request_info::parse(req.method().as_str(), req.uri().path(), req.uri().query());
    let plan = match authenticated {
        Authenticated::FallThrough => fall_through(),
        Authenticated::Principal(p) => match &*p {
            Principal::Admin(claims) => {
                let admin = app.config.admin.as_ref().ok_or_else(|| {
                    ApiError::Internal(
                        "admin token accepted while the admin account is off".to_owned(),
                    )
                })?;
                let mut h = vec![header_pair("impersonate-user", &admin.impersonate_user)?];
                for g in &admin.impersonate_groups {
                    h.push(header_pair("impersonate-group", g)?);
                }
                h.extend(extras(&claims.sub, &claims.sub, &claims.iss));
                Plan {
                    identity: Identity::Privileged,
                    label: "admin",
                    impersonate: h,
                }
            }
            Principal::Oidc(user) => {
                let mapped = app
                    .index
                    .lookup_fresh(&user.claims, !app.config.fall_through)
                    .map_err(ApiError::NotReady)?;
                match app.access.choose(&mapped, &info).await {
                    Some(sa) => {
                        let mut h = vec![header_pair("impersonate-user", &sa.username())?];
                        h.extend(extras(&user.subject, &user.username, &user.issuer));
                        Plan {
                            identity: Identity::Privileged,
                            label: "oidc",
                            impersonate: h,
                        }
                    }
                    None if app.config.fall_through => fall_through(),
                    None => {
                        return Err(ApiError::Forbidden(format!(
                            "{} is signed in, but maps to no ServiceAccount and fall-through to Kubernetes authentication is disabled; ask your platform team to annotate a ServiceAccount with one of your claims",
                            user.username
                        )));
                    }
                }
            }
        },
    };

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
    strip_forwarding(&mut headers);
    if plan.identity == Identity::Privileged {
        headers.remove(header::AUTHORIZATION);
        strip_websocket_bearer(&mut headers);
        for (name, value) in plan.impersonate {
            headers.append(name, value);
        }
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
        .send(plan.identity, upgrade, out)
        .await
        .map_err(|e| {
            ApiError::UpstreamUnavailable(format!(
                "gatehouse cannot reach the kube-apiserver at {}: {}; check that it is running and that gatehouse's kubernetes settings point at it",
                app.upstream.base(),
                error_chain(&e)
            ))
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
        tokio::spawn(async move {
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
        let (parts, _) = resp.into_parts();
        return Ok((plan.label, Response::from_parts(parts, Body::empty())));
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    Ok((plan.label, Response::from_parts(parts, Body::new(body))))
}

fn fall_through() -> Plan {
    Plan {
        identity: Identity::Anonymous,
        label: "fallthrough",
        impersonate: Vec::new(),
    }
}

fn header_pair(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), ApiError> {
    let value = HeaderValue::from_str(value).map_err(|_| {
        ApiError::BadRequest(format!(
            "the identity value for {name} cannot be sent in an HTTP header"
        ))
    })?;
    Ok((HeaderName::from_static(name), value))
}

/// `Impersonate-Extra-*` headers naming the original user. Keys are percent-encoded as the
/// kube-apiserver expects (`/` becomes `%2F`); values that are not valid header text are left
/// out rather than mangled.
fn extras(subject: &str, username: &str, issuer: &str) -> Vec<(HeaderName, HeaderValue)> {
    [
        ("subject", subject),
        ("username", username),
        ("issuer", issuer),
    ]
    .into_iter()
    .filter_map(|(key, value)| {
        let name =
            HeaderName::from_bytes(format!("impersonate-extra-{EXTRA_PREFIX}%2f{key}").as_bytes())
                .ok()?;
        match HeaderValue::from_str(value) {
            Ok(v) => Some((name, v)),
            Err(_) => {
                tracing::warn!(
                    key,
                    "identity value is not valid header text; not sent as an extra"
                );
                None
            }
        }
    })
    .collect()
}

/// Refuses client-sent identity headers.
pub fn refuse_identity_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("impersonate-") || n.starts_with("x-remote-") {
            return Err(ApiError::Forbidden(format!(
                "gatehouse does not accept the {n} header: it decides which identity reaches the kube-apiserver; remove --as/--as-group (or the header) and sign in as the user you want to act as"
            )));
        }
    }
    Ok(())
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
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

/// A bearer token sent as a WebSocket subprotocol (browsers cannot set `Authorization`).
fn websocket_bearer(headers: &HeaderMap) -> Option<BearerToken> {
    use base64::Engine as _;
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_BEARER_PROTOCOL).map(str::to_owned))
        .and_then(|enc| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(enc.trim_end_matches('='))
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .map(BearerToken::new)
}

fn strip_websocket_bearer(headers: &mut HeaderMap) {
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
        && let Ok(v) = HeaderValue::from_str(&kept.join(", "))
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
            assert!(refuse_identity_headers(&h).is_err(), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-impersonate", HeaderValue::from_static("harmless"));
        assert!(refuse_identity_headers(&h).is_ok());
    }

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
    fn websocket_bearer_is_read_and_stripped() {
        use base64::Engine as _;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("tok");
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&format!("{WS_BEARER_PROTOCOL}{enc}, v4.channel.k8s.io"))
                .unwrap(),
        );
        assert_eq!(websocket_bearer(&h).unwrap().expose_secret(), "tok");
        strip_websocket_bearer(&mut h);
        assert_eq!(
            h.get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
            "v4.channel.k8s.io"
        );
    }

    #[test]
    fn extras_use_escaped_keys() {
        let e = extras("s", "u@x", "https://idp");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].0.as_str(), "impersonate-extra-gatehouse.dev%2fsubject");
        assert!(extras("s\n", "u", "i").len() == 2);
    }
}
