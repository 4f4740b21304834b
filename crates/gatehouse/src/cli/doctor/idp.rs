//! Doctor's checks of the identity provider: discovery, keys, the clients, the parameters and
//! a probe of the authorization endpoint. Discovery (with its issuer check) and the key set are
//! read with the shared OIDC client ([`gatehouse_oidc`]), typed as the server reads them, so
//! doctor fails exactly where gatehouse would.

use std::collections::BTreeMap;

use gatehouse_core::wire::PublicOidc;
use gatehouse_oidc::discovery::DiscoveryError;
use gatehouse_oidc::http::{HttpError, decode_reason};

use super::report::{Report, chain, connect_fix, page_text};

pub(super) async fn check_idp(
    r: &mut Report,
    http: &reqwest::Client,
    o: &PublicOidc,
    public_url: Option<&str>,
) {
    let issuer = o.issuer_url.as_str();
    let discovery = match gatehouse_oidc::discovery::fetch(http, issuer).await {
        Ok(d) => d,
        Err(DiscoveryError::Http(HttpError::Decode { url, source })) => {
            r.fail(
                "IdP discovery",
                format!(
                    "{url} is not a discovery document: {}",
                    decode_reason(&source)
                ),
                "oidc.issuerUrl must be the issuer itself (without /.well-known/...)",
            );
            return;
        }
        Err(DiscoveryError::Http(HttpError::Status { url, status, .. })) => {
            r.fail(
                "IdP discovery",
                format!("{url} answered {status}"),
                "oidc.issuerUrl must be the issuer's exact URL",
            );
            return;
        }
        Err(DiscoveryError::Http(HttpError::Transport { url, source })) => {
            let e = chain(&source);
            r.fail(
                "IdP discovery",
                format!("cannot reach {url}: {e}"),
                connect_fix(&e, "the identity provider"),
            );
            return;
        }
        Err(DiscoveryError::IssuerMismatch { found, .. }) => {
            r.fail(
                "IdP discovery",
                format!("the IdP calls itself {found:?}, gatehouse is configured with {issuer:?}"),
                "set oidc.issuerUrl to exactly the IdP's issuer value",
            );
            return;
        }
    };
    r.pass(
        "IdP discovery",
        format!(
            "{issuer} (authorization, token{} endpoints)",
            if discovery.device_authorization_endpoint.is_some() {
                ", device"
            } else {
                ""
            }
        ),
    );
    let jwks_uri = discovery.jwks_uri.as_str();
    match gatehouse_oidc::keys::fetch(http, &discovery).await {
        Ok(keys) if !keys.keys.is_empty() => {
            r.pass(
                "IdP keys (JWKS)",
                format!("{} key(s) at {jwks_uri}", keys.keys.len()),
            );
        }
        Ok(_) => r.fail(
            "IdP keys (JWKS)",
            format!("no keys at {jwks_uri}"),
            "the IdP publishes no signing keys; check its configuration",
        ),
        Err(HttpError::Decode { source, .. }) => r.fail(
            "IdP keys (JWKS)",
            format!(
                "{jwks_uri} is not a key set gatehouse can read: {}",
                decode_reason(&source)
            ),
            "the IdP publishes no signing keys; check its configuration",
        ),
        Err(HttpError::Status { status, .. }) => r.fail(
            "IdP keys (JWKS)",
            format!("{jwks_uri} answered {status}"),
            "check the IdP",
        ),
        Err(HttpError::Transport { source, .. }) => r.fail(
            "IdP keys (JWKS)",
            chain(&source),
            "check that the IdP's jwks_uri is reachable from here and from gatehouse",
        ),
    }

    // Client IDs: an authorization request per client must not be an error.
    let endpoint = discovery.authorization_endpoint.as_str();
    if endpoint.is_empty() {
        r.fail(
            "client IDs known to the IdP",
            "discovery has no authorization_endpoint",
            "check the IdP",
        );
        return;
    }
    let cli = o.cli_client_id.clone();
    let web = o.client_id.clone().unwrap_or_default();
    let mut probes: Vec<(String, String)> =
        vec![(cli.clone(), "http://127.0.0.1:8000/callback".to_owned())];
    if web != cli {
        let redirect = public_url.map_or_else(
            || "http://127.0.0.1:8000/callback".to_owned(),
            |p| format!("{}/auth/callback", p.trim_end_matches('/')),
        );
        probes.push((web, redirect));
    }
    // Probe each client with the static parameters (an IdP may only validate the client after
    // a parameter such as Dex's connector_id picked the login page); tell a client problem from
    // a parameter problem by what the IdP says, and by a probe without the parameters.
    let statics = &o.additional_parameters;
    let listed: Vec<String> = statics.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut client_errors = Vec::new();
    let mut param_errors = Vec::new();
    for (client, redirect) in &probes {
        let Err(with) = authorize_probe(http, endpoint, client, redirect, statics).await else {
            continue;
        };
        let without = if statics.is_empty() {
            Err(with.clone())
        } else {
            authorize_probe(http, endpoint, client, redirect, &BTreeMap::new()).await
        };
        if with.to_lowercase().contains("client") || without.is_err() {
            client_errors.push(format!("{client}: {}", without.err().unwrap_or(with)));
        } else {
            param_errors.push(format!("{client}: {with}"));
        }
    }
    let names: Vec<&str> = probes.iter().map(|p| p.0.as_str()).collect();
    if !client_errors.is_empty() {
        r.fail("client IDs known to the IdP", client_errors.join("; "), "register the client at the IdP (with gatehouse's redirect URI), or fix oidc.clientId / oidc.cliClientId");
        r.skip(
            "static parameters accepted",
            "the client check failed first",
        );
        return;
    }
    r.pass("client IDs known to the IdP", names.join(", "));
    if statics.is_empty() {
        r.pass("static parameters accepted", "none configured");
    } else if param_errors.is_empty() {
        r.pass("static parameters accepted", listed.join(", "));
    } else {
        r.fail("static parameters accepted", format!("with {}: {}", listed.join(", "), param_errors.join("; ")), "the IdP refuses the authorization request once these parameters are added: fix or remove them in oidc.additionalParameters");
    }
}

/// Sends an authorization request without following redirects. An error page, or a redirect
/// carrying `error=`, is a failure.
async fn authorize_probe(
    http: &reqwest::Client,
    endpoint: &str,
    client: &str,
    redirect: &str,
    extra: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut url = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "openid")
            .append_pair("state", "gatehouse-doctor")
            .append_pair("nonce", "gatehouse-doctor")
            .append_pair(
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            )
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    // Follow the IdP's own redirects (a connector, a login page) up to a few hops; stop at a
    // page, or at a redirect that leaves the IdP (to the redirect URI).
    let idp_origin = url.origin();
    let mut next = url;
    for _ in 0..5 {
        let resp = http.get(next.clone()).send().await.map_err(|e| chain(&e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let Ok(loc) = next.join(&location) else {
                return Err(format!(
                    "the IdP redirected to an invalid location {location:?}"
                ));
            };
            let pairs: BTreeMap<String, String> = loc.query_pairs().into_owned().collect();
            if let Some(err) = pairs.get("error") {
                return Err(format!(
                    "the IdP redirected with error {err:?} {}",
                    pairs.get("error_description").cloned().unwrap_or_default()
                ));
            }
            if loc.origin() != idp_origin {
                return Ok(());
            }
            next = loc;
            continue;
        }
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        return Err(format!(
            "the IdP answered {}: {}",
            status.as_u16(),
            page_text(&body)
        ));
    }
    Ok(())
}
