//! Doctor's checks of the token: its claims read **without verification** (a broken token is
//! what doctor is for), then what gatehouse (`/v1/whoami`) and the kube-apiserver
//! (`SelfSubjectReview`) make of it, which do verify it. The token is never printed.

use std::collections::BTreeSet;
use std::time::Duration;

use gatehouse_core::wire::WhoAmI;
use serde::Deserialize as _;
use serde_json::{Value, json};

use super::report::{Report, chain, connect_fix};

pub(super) fn check_token_claims(
    r: &mut Report,
    token: &str,
    client_ids: &[String],
    audiences: &[String],
) {
    let claims: Option<Value> = gatehouse_core::token::unverified_claims(token).map(Value::Object);
    let Some(claims) = claims else {
        r.skip(
            "token audiences",
            "the token is not a JWT (an opaque token: only Kubernetes can judge it)",
        );
        r.skip("token expiry and clock", "the token is not a JWT");
        return;
    };
    let aud: Vec<String> = match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let azp = claims["azp"].as_str();
    let accepted: BTreeSet<&String> = client_ids.iter().chain(audiences).collect();
    let detail = format!(
        "aud {aud:?}{}",
        azp.map(|a| format!(", azp {a:?}")).unwrap_or_default()
    );
    if client_ids.is_empty() && !audiences.is_empty() {
        // An issuer of the AuthenticationConfiguration: any of its audiences, no azp rule.
        if aud.iter().any(|a| audiences.contains(a)) {
            r.pass("token audiences", detail);
        } else {
            r.fail("token audiences", detail, format!("this issuer's tokens must name one of {audiences:?} (issuer.audiences in the AuthenticationConfiguration): ask the identity provider for a token with that audience"));
        }
    } else if client_ids.is_empty() {
        r.pass(
            "token audiences",
            format!("{detail} (admin or non-OIDC server)"),
        );
    } else if !aud.iter().any(|a| accepted.contains(a)) {
        r.fail("token audiences", detail, format!("gatehouse accepts tokens for {:?}: sign in through gatehouse (gatehouse login --sso), or add the audience to oidc.audiences", accepted.iter().collect::<Vec<_>>()));
    } else if azp.is_some_and(|a| !client_ids.iter().any(|c| c == a)) {
        r.fail("token audiences", detail, format!("the token was requested by another client; gatehouse accepts azp {client_ids:?}: sign in through gatehouse"));
    } else {
        r.pass("token audiences", detail);
    }
    let now = crate::cli::net::unix_now();
    let exp = claims["exp"].as_i64();
    let iat = claims["iat"].as_i64();
    match (exp, iat) {
        (Some(exp), _) if exp <= now => r.fail("token expiry and clock", format!("expired {} s ago", now - exp), "sign in again: gatehouse login --sso SERVER"),
        (_, Some(iat)) if iat > now + 60 => r.fail("token expiry and clock", format!("issued {} s in the future: the clocks of this machine and the IdP disagree by more than the 60 s gatehouse allows", iat - now), "synchronise the clocks (NTP) of this machine, gatehouse and the IdP"),
        (Some(exp), _) => r.pass("token expiry and clock", format!("valid for {} more", humantime::format_duration(Duration::from_secs(u64::try_from(exp - now).unwrap_or(0))))),
        (None, _) => r.fail("token expiry and clock", "the token has no exp claim", "gatehouse refuses tokens without exp; check the IdP"),
    }
}

pub(super) async fn check_whoami(
    r: &mut Report,
    http: &reqwest::Client,
    server: &str,
    token: &str,
) -> Option<WhoAmI> {
    let resp = match http
        .get(format!("{server}/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            r.fail("gatehouse's view", chain(&e), "check the server");
            return None;
        }
    };
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        // Whatever gatehouse accepted is judged by the steps after, so an answer this doctor
        // cannot read (a newer gatehouse's kind) is still a pass here.
        let who = WhoAmI::deserialize(&v).unwrap_or(WhoAmI::Unknown);
        r.pass(
            "gatehouse's view",
            format!(
                "{} as {}",
                who.authenticated_by().unwrap_or("?"),
                who.kubernetes_username().unwrap_or("(unknown)")
            ),
        );
        Some(who)
    } else {
        r.fail("gatehouse's view", format!("/v1/whoami answered {}: {}", status.as_u16(), v["message"].as_str().unwrap_or("")), "sign in again (gatehouse login --sso SERVER); if it persists, compare the token's issuer and audiences with gatehouse's oidc settings");
        None
    }
}

pub(super) async fn check_review(
    r: &mut Report,
    http: &reqwest::Client,
    url: &str,
    token: &str,
    name: &'static str,
    who: &str,
) {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let resp = match http.post(url).bearer_auth(token).json(&body).send().await {
        Ok(resp) => resp,
        Err(e) => {
            let e = chain(&e);
            r.fail(
                name,
                format!("cannot reach {url}: {e}"),
                connect_fix(&e, who),
            );
            return;
        }
    };
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        let u = &v["status"]["userInfo"];
        let groups: Vec<&str> = u["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        r.pass(
            name,
            format!(
                "{} (groups {})",
                u["username"].as_str().unwrap_or("?"),
                groups.join(", ")
            ),
        );
    } else if status.as_u16() == 401 {
        r.fail(name, format!("{who} answered 401: {}", v["message"].as_str().unwrap_or("Unauthorized")), "the kube-apiserver does not accept this token: its AuthenticationConfiguration must list the issuer, trust its CA, and name one of the token's audiences (audienceMatchPolicy: MatchAny for several); see docs/multi-audience.md");
    } else {
        let message = v["message"].as_str().unwrap_or("");
        let fix = if status.as_u16() == 403 && message.contains("cannot impersonate") {
            "gatehouse's own identity may not impersonate whom you map to: see the steps \"gatehouse may impersonate ...\" above for what to grant (charts/gatehouse/templates/rbac.yaml)"
        } else {
            "see the message; check gatehouse's RBAC (create selfsubjectreviews is allowed to every authenticated user by default)"
        };
        r.fail(
            name,
            format!("{who} answered {}: {message}", status.as_u16()),
            fix,
        );
    }
}
