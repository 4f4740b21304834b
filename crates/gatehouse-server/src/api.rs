//! gatehouse's own endpoints under `/v1`. Their bodies are the shared types of
//! [`gatehouse_core::wire`], which the CLI reads too.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use gatehouse_core::identity::Principal;
use gatehouse_core::token::BearerToken;
use gatehouse_core::wire::{
    self, AdminLoginRequest, AdminLoginResponse, AdminWhoAmI, FallThroughWhoAmI, Impersonation,
    KubernetesAccess, OidcWhoAmI, PublicConfig, PublicOidc, Review, UserInfo, WhoAmI,
};
use http_body_util::BodyExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize as _;
use serde_json::Value;

use crate::app::App;
use crate::authn::{Authenticated, Authn};
use crate::clock::rfc3339;
use crate::login_guard::SignInError;
use crate::status::ApiError;
use crate::upstream::Identity;

/// `GET /v1/config`: what a CLI or UI needs to sign in. Public; holds no secret.
pub async fn public_config(State(app): State<Arc<App>>) -> Json<PublicConfig> {
    let c = &app.config;
    let oidc = c.oidc.as_ref().map(|o| PublicOidc {
        issuer_url: o.issuer_url.clone(),
        client_id: Some(o.client_id.clone()),
        cli_client_id: o
            .cli_client_id
            .clone()
            .unwrap_or_else(|| o.client_id.clone()),
        scopes: o.scopes(),
        audiences: o.audiences.clone(),
        username_claim: Some(o.username_claim.clone()),
        token_type: Some(o.token_type.clone()),
        additional_parameters: o.additional_parameters.clone(),
        user_parameters: o
            .user_parameters
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    wire::UserParameter {
                        pattern: v.pattern.clone(),
                    },
                )
            })
            .collect(),
    });
    let issuers = app
        .authn
        .issuers()
        .map(|i| {
            i.current()
                .issuers()
                .map(|k| wire::PublicIssuer {
                    url: k.authenticator.issuer.clone(),
                    name: k.settings.name.clone(),
                    audiences: k.authenticator.audiences.clone(),
                    when_unmapped: k.settings.when_unmapped.as_str().to_owned(),
                    ready: k.not_ready_reason().is_none(),
                })
                .collect()
        })
        .unwrap_or_default();
    Json(PublicConfig {
        public_url: c.public_url.as_ref().map(|u| u.as_str().to_owned()),
        oidc,
        admin_enabled: c.admin.is_some(),
        fall_through: c.fall_through,
        issuers,
    })
}

/// `GET /v1/whoami`: who the caller is, how they were authenticated, and as whom gatehouse
/// sends their requests. The caller was authenticated by the layer ([`crate::auth_layer`],
/// [`crate::auth_layer::Surface::OwnApi`]): identity headers and refused credentials never
/// get here.
pub async fn whoami(
    State(app): State<Arc<App>>,
    Extension(authn): Extension<Authn>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Result<Json<WhoAmI>, ApiError> {
    let accepted = match authn {
        Authn::Accepted(a) => a,
        Authn::Refused(r) => return Err(ApiError::Refused(r)),
    };
    // The review below runs as the caller: the audit log gets the caller's address, as for the
    // proxy (a client's own X-Forwarded-For counts only behind a trusted proxy).
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let chain = crate::proxy::forwarded_for(&headers);
    let forwarded_for = app.config.forwarded_for(peer, chain.as_deref());
    let token = &accepted.credential.token;
    match &accepted.outcome {
        Authenticated::Principal(p) => match &**p {
            Principal::Admin(c) => {
                let admin = app.config.admin.as_ref();
                Ok(Json(WhoAmI::Admin(AdminWhoAmI {
                    username: c.sub.clone(),
                    issuer: c.iss.clone(),
                    expires_at: rfc3339(c.exp),
                    kubernetes: KubernetesAccess::Impersonation(Impersonation::User {
                        username: admin.map(|a| a.impersonate_user.clone()),
                        groups: admin.map(|a| a.impersonate_groups.clone()),
                    }),
                })))
            }
            Principal::Oidc(u) => {
                let mapped: Vec<String> = app
                    .index
                    .lookup(u.who())
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let kubernetes = if mapped.is_empty() {
                    match crate::plan::unmapped(u, app.config.fall_through) {
                        crate::plan::Unmapped::FallThrough => {
                            let review =
                                self_subject_review(&app, token, forwarded_for.clone()).await;
                            KubernetesAccess::FallThrough { review }
                        }
                        crate::plan::Unmapped::Impersonated(k) => {
                            match crate::plan::impersonate_user(
                                u,
                                k,
                                crate::proxy::plan_settings(&app),
                            ) {
                                crate::plan::Plan::Deny(d) => KubernetesAccess::Unmapped {
                                    message: d.to_string(),
                                },
                                _ => KubernetesAccess::Impersonation(Impersonation::User {
                                    username: Some(u.username.clone()),
                                    groups: Some(u.groups.clone()),
                                }),
                            }
                        }
                        crate::plan::Unmapped::Denied => KubernetesAccess::Unmapped {
                            message: "maps to no ServiceAccount, and gatehouse refuses such users of this issuer (whenUnmapped: deny)".to_owned(),
                        },
                        crate::plan::Unmapped::FallThroughOff => KubernetesAccess::Unmapped {
                            message: "maps to no ServiceAccount and fall-through is disabled"
                                .to_owned(),
                        },
                    }
                } else {
                    KubernetesAccess::Impersonation(Impersonation::ServiceAccounts {
                        service_accounts: mapped.clone(),
                    })
                };
                Ok(Json(WhoAmI::Oidc(Box::new(OidcWhoAmI {
                    username: u.username.clone(),
                    subject: u.subject.clone(),
                    issuer: u.issuer.clone(),
                    groups: u.groups.clone(),
                    audiences: u.audiences.clone(),
                    authorized_party: u.authorized_party.clone(),
                    expires_at: rfc3339(u.expires_at),
                    claims: u.claims.clone(),
                    email_withheld: u.withheld_note(),
                    service_accounts: mapped,
                    kubernetes,
                    issuer_name: u.kube.as_ref().and_then(|k| k.issuer_name.clone()),
                    uid: u
                        .kube
                        .as_ref()
                        .map(|k| k.uid.clone())
                        .filter(|x| !x.is_empty()),
                    extra: u.kube.as_ref().map(|k| k.extra.clone()).unwrap_or_default(),
                }))))
            }
        },
        Authenticated::FallThrough => {
            let review = self_subject_review(&app, token, forwarded_for.clone()).await;
            Ok(Json(WhoAmI::FallThrough(FallThroughWhoAmI {
                service_accounts: Vec::new(),
                kubernetes: KubernetesAccess::FallThrough { review },
            })))
        }
    }
}

/// Asks the kube-apiserver who the token is (`SelfSubjectReview`), with the user's own token
/// over the anonymous pool. Returns the user info (`None` when the answer has none), or the
/// error message.
async fn self_subject_review(
    app: &App,
    token: &BearerToken,
    forwarded_for: Option<http::HeaderValue>,
) -> Option<Review> {
    let error = |e: String| Some(Review::Error { error: e });
    let Ok(uri) = app
        .upstream
        .uri_for("/apis/authentication.k8s.io/v1/selfsubjectreviews")
    else {
        return error("cannot build the review URL".to_owned());
    };
    let body = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    let Ok(mut req) = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
    else {
        return error("cannot build the review request".to_owned());
    };
    let Ok(mut auth) = http::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
    else {
        return error("the token cannot be sent in a header".to_owned());
    };
    auth.set_sensitive(true);
    req.headers_mut().insert(http::header::AUTHORIZATION, auth);
    if let Some(v) = forwarded_for {
        req.headers_mut().insert("x-forwarded-for", v);
    }
    let resp = match app.upstream.send(Identity::Anonymous, false, req).await {
        Ok(r) => r,
        Err(e) => return error(format!("cannot reach the kube-apiserver: {e}")),
    };
    let status = resp.status();
    let bytes = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(format!("cannot read the review: {e}")),
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        v.pointer("/status/userInfo")
            .and_then(|u| UserInfo::deserialize(u).ok())
            .map(Review::User)
    } else {
        // A Kubernetes Status: its message (always a string from a kube-apiserver), else the
        // HTTP status.
        error(match v.get("message") {
            Some(Value::String(m)) => m.clone(),
            Some(other) => other.to_string(),
            None => status.to_string(),
        })
    }
}

/// `POST /v1/admin/login` with `{"password": "..."}`: an admin token.
pub async fn admin_login(
    State(app): State<Arc<App>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<AdminLoginResponse>, ApiError> {
    let peer = app
        .config
        .client_ip(crate::client::peer_ip(&extensions), &headers)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "{e}: gatehouse cannot tell which client this is, so it does not check the password; check the proxy's X-Forwarded-For"
            ))
        })?;
    let login: AdminLoginRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest(r#"expected a JSON body {"password": "..."}"#.to_owned())
    })?;
    let (token, claims) = admin_sign_in(&app, login.password, peer)
        .await
        .map_err(ApiError::SignIn)?;
    Ok(Json(AdminLoginResponse {
        token: BearerToken::new(token),
        expires_at: rfc3339(claims.exp),
    }))
}

/// The peer for logs: the address, or `unknown`.
fn peer_label(peer: Option<std::net::IpAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
}

/// Checks the admin password and issues an admin token, for the API and the UI alike.
///
/// In order: the admin account must be enabled (404); the client address must be in
/// `admin.loginAllowedCidrs` when set (403); the address and the whole server must not be in
/// backoff (429 with `Retry-After`, before any bcrypt work); a password-check slot must be free
/// or one of the few waiting places (429); then bcrypt, off the async threads. See
/// [`crate::login_guard`].
pub async fn admin_sign_in(
    app: &App,
    password: SecretString,
    peer: Option<std::net::IpAddr>,
) -> Result<(String, gatehouse_core::admin::AdminClaims), SignInError> {
    let (Some(admin), Some(tokens)) = (app.config.admin.as_ref(), app.authn.admin()) else {
        return Err(SignInError::Disabled);
    };
    if !admin.login_allowed_cidrs.is_empty() && !peer.is_some_and(|p| admin.login_allowed_from(p)) {
        app.metrics.admin_login_refused.inc();
        tracing::warn!(peer = %peer_label(peer), "admin sign-in refused: the client address is not in admin.loginAllowedCidrs");
        return Err(SignInError::AddressNotAllowed);
    }
    let throttled = |t: crate::login_guard::Throttled| {
        app.metrics.admin_login_refused.inc();
        tracing::warn!(peer = %peer_label(peer), reason = ?t, "admin sign-in throttled");
        SignInError::Throttled(t)
    };
    let guard = &app.login_guard;
    guard
        .check(peer, std::time::Instant::now())
        .map_err(throttled)?;
    let _permit = guard.permit().await.map_err(throttled)?;
    // Checked again: the address may have been put in backoff while this attempt waited.
    guard
        .check(peer, std::time::Instant::now())
        .map_err(throttled)?;
    let hash = admin.password_hash.expose_secret().to_owned();
    let ok = tokio::task::spawn_blocking(move || {
        gatehouse_core::admin::verify_password(password.expose_secret(), &hash)
    })
    .await
    .unwrap_or(false);
    if !ok {
        guard.failed(peer, std::time::Instant::now());
        app.metrics.admin_login_failures.inc();
        tracing::warn!(peer = %peer_label(peer), "admin sign-in with a wrong password");
        return Err(SignInError::WrongPassword);
    }
    guard.succeeded(peer);
    tracing::info!(peer = %peer_label(peer), "admin signed in");
    tokens
        .issue(app.clock.unix_now())
        .map_err(SignInError::Issue)
}
