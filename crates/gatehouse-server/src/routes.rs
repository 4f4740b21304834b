//! The router: the one place routes are defined, and the handlers only it uses (`/healthz`,
//! `/readyz`, `/readyz/<name>`, `/metrics`). The one module that depends on every handler
//! module; none of them depends on it.
//!
//! The layers of [`crate::auth_layer`] are applied here: the session layer on every path (it
//! acts on gatehouse's own pages only), and the authentication layer on the routes that need to
//! know who the caller is, with their surface: the Kubernetes API proxy, `/v1/whoami`, and the
//! signed-in pages. Routes without it (health, `/v1/config`, `/v1/admin/login`, sign-in, the
//! CA, the stylesheet) authenticate nobody.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::app::App;
use crate::health::CheckResult;
use crate::status::ApiError;

/// The router.
pub fn router(app: Arc<App>) -> Router {
    use crate::auth_layer::{Surface, authenticate, session_layer};
    use crate::proxy::proxy;
    use crate::{browser, ui};
    let authenticated =
        |surface| axum::middleware::from_fn_with_state((Arc::clone(&app), surface), authenticate);
    // The pages that show who the caller is: authenticated by the layer (the session cookie
    // counts). The others (the CA, the admin form, the stylesheet, sign-in) ask nobody.
    let signed_in = Router::new()
        .route("/", get(ui::home))
        .route("/ui/whoami", get(ui::whoami))
        .route("/ui/access", get(ui::access))
        .route("/ui/cli", get(ui::cli))
        .route("/ui/kubeconfig", get(ui::kubeconfig))
        .route_layer(authenticated(Surface::Pages));
    let kubernetes = Router::new()
        .route("/version", any(proxy))
        .route("/api", any(proxy))
        .route("/api/{*rest}", any(proxy))
        .route("/apis", any(proxy))
        .route("/apis/{*rest}", any(proxy))
        .route("/openapi/{*rest}", any(proxy))
        .route_layer(authenticated(Surface::KubernetesApi));
    let own_api = Router::new()
        .route("/v1/whoami", get(crate::api::whoami))
        .route_layer(authenticated(Surface::OwnApi));
    let pages = Router::new()
        .merge(signed_in)
        .route("/ui/ca.pem", get(ui::ca))
        .route("/ui/admin-login", post(ui::admin_login))
        .route("/ui/static/style.css", get(ui::style))
        .route("/auth/login", get(browser::login))
        .route("/auth/callback", get(browser::callback))
        .route("/auth/logout", post(browser::logout))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            ui::security_headers,
        ));
    Router::new()
        .merge(pages)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/readyz/{*name}", get(readyz_check))
        .route("/metrics", get(metrics))
        .route("/v1/config", get(crate::api::public_config))
        .merge(own_api)
        .route("/v1/admin/login", post(crate::api::admin_login))
        .merge(kubernetes)
        .fallback(|| async {
            ApiError::NotFound("gatehouse serves /api, /apis, /version, /openapi, /v1/* and health endpoints; this path is none of them".to_owned())
        })
        // A method one of gatehouse's own routes does not take: a `Status` like every other
        // answer of gatehouse's (axum adds the route's `Allow` header).
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed {
                message: format!("this path of gatehouse does not take {method}; docs/api.md lists each path's methods"),
                allow: None,
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            session_layer,
        ))
        .with_state(app)
}

/// Every check by name: the readiness checks, then gatehouse's rights.
async fn all_checks(app: &App) -> Vec<CheckResult> {
    let mut checks = app.readiness_checks();
    checks.extend(app.rights.results().await.iter().cloned());
    checks
}

/// `GET /readyz`: 200 `ok`, or 503 with a `not ready: ...` line per reason. With `?verbose`
/// (any value, as the kube-apiserver reads it): every named check, `[+]name ok` or
/// `[-]name failed: reason`, then the verdict; the status is the same as without it
/// (`health.rs` says which checks decide).
async fn readyz(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let verbose = query
        .is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "verbose"));
    if verbose {
        let (ready, text) = crate::health::render_verbose(&all_checks(&app).await);
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return (status, text).into_response();
    }
    let reasons = app.not_ready_reasons();
    if reasons.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let text = reasons
            .iter()
            .map(|r| format!("not ready: {r}\n"))
            .collect::<String>();
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

/// `GET /readyz/<name>`: one named check: 200 `ok`, or 503 `<name> failed: reason`; 404 for a
/// name gatehouse does not check (with its configuration).
async fn readyz_check(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    // Only a rights check (`rbac/...`) asks the kube-apiserver; other names never start one.
    let checks = if name.starts_with("rbac/") {
        all_checks(&app).await
    } else {
        app.readiness_checks()
    };
    match checks.into_iter().find(|c| c.name == name) {
        Some(CheckResult { failure: None, .. }) => (StatusCode::OK, "ok\n").into_response(),
        Some(CheckResult {
            name,
            failure: Some(reason),
            ..
        }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name} failed: {reason}\n"),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such check; GET /readyz?verbose lists them\n",
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}
