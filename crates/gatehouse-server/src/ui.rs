//! The web UI: server-rendered pages (askama templates compiled into the binary), no
//! JavaScript at all, a strict Content-Security-Policy, and plain forms and links, so every
//! page works with a keyboard, a screen reader and a phone.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Extension, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::identity::Principal;
use http_body_util::BodyExt as _;
use serde::Deserialize;

use crate::app::App;
use crate::authn::{Accepted, Authenticated, Authn};
use crate::browser_session::Session;
use crate::clock::rfc3339;
use crate::page::{PageError, render};
use crate::session::same_origin;

/// `Strict-Transport-Security` sent on UI and sign-in responses when `publicUrl` is https.
pub const HSTS: &str = "max-age=31536000";

/// Security headers for every UI and sign-in response.
///
/// `form-action` names gatehouse itself and the IdP's origins: browsers apply it to the
/// redirects that follow a form submission too, and the sign-in form (user parameters) and the
/// sign-out button end at the IdP's authorization and end-session endpoints.
pub async fn security_headers(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let mut form_action = vec!["'self'".to_owned()];
    if let Some(oidc) = &app.oidc {
        let discovery = oidc.discovery();
        let endpoints = [
            Some(oidc.config().issuer_url.clone()),
            discovery.as_ref().map(|d| d.authorization_endpoint.clone()),
            discovery.and_then(|d| d.end_session_endpoint),
        ];
        for e in endpoints.into_iter().flatten() {
            if let Ok(u) = url::Url::parse(&e) {
                let origin = u.origin().ascii_serialization();
                if origin != "null" && !form_action.contains(&origin) {
                    form_action.push(origin);
                }
            }
        }
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
        form_action.join(" ")
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with `no-referrer` browsers send `Origin: null` on form
    // posts, and the same-origin check of state-changing requests needs the real origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // HSTS when gatehouse is served over https: after one visit the browser never tries plain
    // http for this host (no SSL stripping of the sign-in). Not `includeSubDomains`: sibling
    // hosts are not gatehouse's to decide.
    if app
        .config
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https")
    {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    // Pages are private; a handler that sets its own (the stylesheet) keeps it.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    signed_in: bool,
    page: &'static str,
    signed_out: bool,
    error: Option<String>,
    sso: bool,
    admin: bool,
    issuer_host: String,
    return_to: String,
    return_to_encoded: String,
    user_parameters: Vec<(String, Option<String>)>,
}

fn signin(
    app: &App,
    return_to: &str,
    signed_out: bool,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let oidc = app.oidc.as_ref().filter(|_| app.config.browser.is_some());
    let return_to = gatehouse_core::authorize::safe_return_path(return_to)
        .unwrap_or("/ui/whoami")
        .to_owned();
    render(
        status,
        &SigninPage {
            signed_in: false,
            page: "signin",
            signed_out,
            error,
            sso: oidc.is_some(),
            admin: app.config.admin.is_some() && app.cookies.is_some(),
            issuer_host: oidc
                .and_then(|o| url::Url::parse(&o.config().issuer_url).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
            return_to_encoded: url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect(),
            return_to,
            user_parameters: oidc
                .map(|o| {
                    o.config()
                        .user_parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), v.pattern.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        },
    )
}

/// `GET /`: the sign-in page, or who-am-I when signed in.
pub async fn home(
    State(app): State<Arc<App>>,
    Extension(authn): Extension<Authn>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    // Signed in: who-am-I. Only when the token is accepted: a refused session token would
    // bounce between here and who-am-I's sign-in redirect forever.
    if let Authn::Accepted(_) = authn {
        return Redirect::to("/ui/whoami").into_response();
    }
    let return_to = q.get("return_to").map_or("/ui/whoami", String::as_str);
    signin(
        &app,
        return_to,
        q.contains_key("signed_out"),
        None,
        StatusCode::OK,
    )
}

/// The admin form.
#[derive(Deserialize)]
pub struct AdminForm {
    password: String,
}

impl std::fmt::Debug for AdminForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminForm { password: <redacted> }")
    }
}

/// `POST /ui/admin-login`: admin password to a session.
pub async fn admin_login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<AdminForm>,
) -> Response {
    let Some(b) = &app.config.browser else {
        return PageError::NoBrowserSessions.into_response();
    };
    if !same_origin(&headers, &b.public_url.origin().ascii_serialization()) {
        return PageError::CrossSiteSignIn.into_response();
    }
    let peer = match app
        .config
        .client_ip(crate::client::peer_ip(&extensions), &headers)
    {
        Ok(p) => p,
        Err(e) => return PageError::UnknownClient(e).into_response(),
    };
    match crate::api::admin_sign_in(&app, secrecy::SecretString::from(form.password), peer).await {
        Ok((token, claims)) => {
            let session = Session {
                token,
                refresh_token: None,
                kind: "admin".to_owned(),
                created: app.clock.unix_now(),
                expires: claims.exp,
            };
            // A session key is configured (checked above), so there is a session cookie.
            let set = match app.session_cookies() {
                Some(c) => c
                    .set(&session, app.clock.unix_now())
                    .map_err(|e| PageError::Internal(e.to_string())),
                None => Err(PageError::NoBrowserSessions),
            };
            match set {
                Ok(cookies) => {
                    let mut resp = Redirect::to("/ui/whoami").into_response();
                    for c in cookies {
                        resp.headers_mut().append(header::SET_COOKIE, c);
                    }
                    resp
                }
                Err(e) => e.into_response(),
            }
        }
        Err(e) => {
            let e = crate::status::ApiError::SignIn(e);
            let mut resp = signin(&app, "/ui/whoami", false, Some(e.to_string()), e.status());
            if let Some(secs) = e.retry_after() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
    }
}

/// The principal of a UI request (the authentication layer's, [`crate::auth_layer`]), or a
/// redirect to the sign-in page that returns `here`.
fn principal(authn: Authn, here: &str) -> Result<Arc<Accepted>, Redirect> {
    match authn {
        Authn::Accepted(a) => Ok(a),
        Authn::Refused(_) => Err(Redirect::to(&format!(
            "/?return_to={}",
            url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
        ))),
    }
}

#[derive(Template)]
#[template(path = "whoami.html")]
struct WhoamiPage {
    signed_in: bool,
    page: &'static str,
    username: String,
    authenticated_by: String,
    issuer: Option<String>,
    subject: Option<String>,
    groups: Vec<String>,
    expires_at: String,
    kubernetes: String,
    service_accounts: Vec<String>,
    fall_through: bool,
    claims: Vec<(String, String)>,
}

/// `GET /ui/whoami`.
pub async fn whoami(State(app): State<Arc<App>>, Extension(authn): Extension<Authn>) -> Response {
    let accepted = match principal(authn, "/ui/whoami") {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let page = match &accepted.outcome {
        Authenticated::Principal(p) => match &**p {
            Principal::Admin(c) => {
                let admin = app.config.admin.as_ref();
                WhoamiPage {
                    signed_in: true,
                    page: "whoami",
                    username: "admin".to_owned(),
                    authenticated_by: "gatehouse admin account".to_owned(),
                    issuer: Some(c.iss.clone()),
                    subject: None,
                    groups: Vec::new(),
                    expires_at: rfc3339(c.exp),
                    kubernetes: admin.map_or_else(String::new, |a| {
                        format!(
                            "{} (groups {})",
                            a.impersonate_user,
                            a.impersonate_groups.join(", ")
                        )
                    }),
                    service_accounts: Vec::new(),
                    fall_through: app.config.fall_through,
                    claims: Vec::new(),
                }
            }
            Principal::Oidc(u) => {
                let sas: Vec<String> = app
                    .index
                    .lookup(u.who())
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let unmapped = crate::plan::unmapped(u, app.config.fall_through);
                let kubernetes = match (sas.first(), unmapped) {
                    (Some(_), _) => format!(
                        "{} (per namespace)",
                        sas.iter()
                            .map(|s| {
                                let (ns, n) = s.split_once('/').unwrap_or(("", s));
                                format!("system:serviceaccount:{ns}:{n}")
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (None, crate::plan::Unmapped::FallThrough) => {
                        "yourself: your own token goes to Kubernetes (fall-through)".to_owned()
                    }
                    (None, crate::plan::Unmapped::Impersonated(k)) => {
                        match crate::plan::impersonate_user(u, k, crate::proxy::plan_settings(&app))
                        {
                            crate::plan::Plan::Deny(d) => format!("nobody: {d}"),
                            _ => format!(
                                "yourself: gatehouse impersonates {}{} (the user the cluster's claim mappings make of your token)",
                                u.username,
                                if u.groups.is_empty() {
                                    String::new()
                                } else {
                                    format!(" in groups {}", u.groups.join(", "))
                                }
                            ),
                        }
                    }
                    (
                        None,
                        crate::plan::Unmapped::Denied | crate::plan::Unmapped::FallThroughOff,
                    ) => "nobody: no ServiceAccount maps to you".to_owned(),
                };
                WhoamiPage {
                    signed_in: true,
                    page: "whoami",
                    username: u.username.clone(),
                    authenticated_by: match u.kube.as_ref().and_then(|k| k.issuer_name.as_ref()) {
                        Some(name) => format!("OpenID Connect ({name})"),
                        None => "OpenID Connect".to_owned(),
                    },
                    issuer: Some(u.issuer.clone()),
                    subject: Some(u.subject.clone()),
                    groups: u.groups.clone(),
                    expires_at: rfc3339(u.expires_at),
                    kubernetes,
                    service_accounts: sas,
                    fall_through: app.config.fall_through,
                    claims: u
                        .claims
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                }
            }
        },
        Authenticated::FallThrough => WhoamiPage {
            signed_in: true,
            page: "whoami",
            username: "(not verified by gatehouse)".to_owned(),
            authenticated_by: "Kubernetes (fall-through)".to_owned(),
            issuer: None,
            subject: None,
            groups: Vec::new(),
            expires_at: "unknown".to_owned(),
            kubernetes: "whoever Kubernetes authenticates your token as".to_owned(),
            service_accounts: Vec::new(),
            fall_through: true,
            claims: Vec::new(),
        },
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    signed_in: bool,
    page: &'static str,
    namespace: String,
    shown: bool,
    error: Option<String>,
    rules: Vec<(String, String, String, String)>,
    non_resource: Vec<(String, String)>,
    incomplete: bool,
}

/// `GET /ui/access?namespace=NS`: a SelfSubjectRulesReview sent through the proxy as the user.
pub async fn access(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Extension(authn): Extension<Authn>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let accepted = match principal(authn, "/ui/access") {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let namespace = q.get("namespace").cloned().unwrap_or_default();
    let mut page = AccessPage {
        signed_in: true,
        page: "access",
        namespace: namespace.clone(),
        shown: false,
        error: None,
        rules: Vec::new(),
        non_resource: Vec::new(),
        incomplete: false,
    };
    if namespace.is_empty() {
        return render(StatusCode::OK, &page);
    }
    let body = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": namespace}});
    let Ok(mut req) = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
    else {
        return PageError::Internal("cannot build the review".to_owned()).into_response();
    };
    // Already authenticated: the proxy acts on this outcome (as whom, and on fall-through the
    // token it forwards) instead of reading a credential again.
    req.extensions_mut().insert(Authn::Accepted(accepted));
    // The review runs as the user: the audit log gets the browser's address, as for kubectl.
    if let Some(axum::Extension(peer)) = peer {
        req.extensions_mut().insert(peer);
    }
    for v in headers.get_all("x-forwarded-for") {
        req.headers_mut().append("x-forwarded-for", v.clone());
    }
    let resp = crate::proxy::proxy(State(Arc::clone(&app)), req).await;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        page.error = Some(
            v["message"]
                .as_str()
                .map_or_else(|| format!("Kubernetes answered {status}"), str::to_owned),
        );
        return render(StatusCode::OK, &page);
    }
    let join = |x: &serde_json::Value| {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(|s| if s.is_empty() { "(core)" } else { s })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    page.shown = true;
    page.rules = v["status"]["resourceRules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                join(&r["verbs"]),
                join(&r["apiGroups"]),
                join(&r["resources"]),
                join(&r["resourceNames"]),
            )
        })
        .collect();
    page.non_resource = v["status"]["nonResourceRules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (join(&r["verbs"]), join(&r["nonResourceURLs"])))
        .collect();
    page.incomplete = v["status"]["incomplete"].as_bool().unwrap_or(false);
    render(StatusCode::OK, &page)
}

fn server_url(app: &App) -> String {
    app.config.public_url.as_ref().map_or_else(
        || "https://gatehouse.example.com".to_owned(),
        |u| u.as_str().trim_end_matches('/').to_owned(),
    )
}

/// A kubeconfig for gatehouse with `gatehouse token` as its exec credential plugin;
/// `ca_pem` (the `publicCaFile`) goes in as `certificate-authority-data`, so kubectl trusts a
/// private CA.
pub fn kubeconfig_text(server: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = ca_pem.map_or_else(String::new, |pem| {
        format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    });
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gatehouse\n  cluster:\n{ca}    server: {server}\nusers:\n- name: gatehouse\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: gatehouse\n      args: [token, --server, {server}]\n      interactiveMode: IfAvailable\n      provideClusterInfo: false\ncontexts:\n- name: gatehouse\n  context:\n    cluster: gatehouse\n    user: gatehouse\ncurrent-context: gatehouse\n"
    )
}

#[derive(Template)]
#[template(path = "cli.html")]
struct CliPage {
    signed_in: bool,
    page: &'static str,
    server: String,
    kubeconfig: String,
    /// ` --certificate-authority gatehouse-ca.pem` when gatehouse offers its CA, else empty.
    ca_flag: &'static str,
}

/// `GET /ui/cli`.
pub async fn cli(State(app): State<Arc<App>>, Extension(authn): Extension<Authn>) -> Response {
    if let Err(r) = principal(authn, "/ui/cli") {
        return r.into_response();
    }
    let server = server_url(&app);
    render(
        StatusCode::OK,
        &CliPage {
            signed_in: true,
            page: "cli",
            kubeconfig: kubeconfig_text(&server, app.config.public_ca.as_deref()),
            ca_flag: if app.config.public_ca.is_some() {
                " --certificate-authority gatehouse-ca.pem"
            } else {
                ""
            },
            server,
        },
    )
}

/// `GET /ui/ca.pem`: the CA certificate(s) clients need to trust gatehouse (`publicCaFile`);
/// public information, so no sign-in is needed.
pub async fn ca(State(app): State<Arc<App>>) -> Response {
    match &app.config.public_ca {
        Some(pem) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"gatehouse-ca.pem\"",
                ),
            ],
            pem.clone(),
        )
            .into_response(),
        None => PageError::NoCa.into_response(),
    }
}

/// `GET /ui/kubeconfig`: the kubeconfig as a download.
pub async fn kubeconfig(
    State(app): State<Arc<App>>,
    Extension(authn): Extension<Authn>,
) -> Response {
    if let Err(r) = principal(authn, "/ui/cli") {
        return r.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/yaml"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"gatehouse.kubeconfig\"",
            ),
        ],
        kubeconfig_text(&server_url(&app), app.config.public_ca.as_deref()),
    )
        .into_response()
}

/// `GET /ui/static/style.css`.
pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
        .into_response()
}
