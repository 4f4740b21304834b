//! `gatehouse token` (the kubectl credential plugin), refresh, `whoami` and `logout`.
//!
//! # Refresh
//! A token counts as valid while it has more than [`MIN_REMAINING_SECS`] left, so kubectl is
//! never handed a token that expires in flight. An expired token is refreshed under the
//! cache's exclusive lock, after re-reading the cache: of many kubectl processes that find it
//! expired at once, the first refreshes and the rest read its result.
//!
//! `GATEHOUSE_CLI_TRACE=FILE` appends one line per refresh request sent to the IdP (no token in
//! it); the end-to-end tests count those lines.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::wire::{Impersonation, KubernetesAccess, WhoAmI};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::cli::cache::{Cache, Entry, Kind};
use crate::cli::error::CliError;
use crate::cli::net::{self, IDP, Net, SERVER, TokenResponse};
use crate::cli::{Common, Output, process_env, resolve_server, rfc3339, runtime};

/// A token with less than this left is refreshed first.
pub const MIN_REMAINING_SECS: i64 = 10;

fn valid(entry: &Entry, now: i64) -> bool {
    entry.expires_at - MIN_REMAINING_SECS > now
}

fn not_logged_in(server: &str) -> CliError {
    CliError::NotLoggedIn {
        server: server.to_owned(),
        hint: format!(
            "sign in first: gatehouse login --sso {server}{}",
            if crate::cli::insecure_http(server) {
                " --insecure-http"
            } else {
                ""
            }
        ),
    }
}

/// A valid token for `server`: from the cache, refreshed when needed (under the lock).
pub fn current(cache: &Cache, server: &str) -> Result<Entry, CliError> {
    let file = cache.read()?;
    let entry = file
        .for_server(server)
        .cloned()
        .ok_or_else(|| not_logged_in(server))?;
    if valid(&entry, net::unix_now()) {
        return Ok(entry);
    }
    let lock = cache.lock()?;
    let mut file = lock.read()?;
    let entry = file
        .for_server(server)
        .cloned()
        .ok_or_else(|| not_logged_in(server))?;
    if valid(&entry, net::unix_now()) {
        // Another process refreshed it while we waited for the lock.
        return Ok(entry);
    }
    let fresh = refresh(&entry).map_err(|e| CliError::RefreshFailed {
        server: server.to_owned(),
        source: Box::new(e),
        hint: format!("sign in again: {}", entry.login_command),
    })?;
    file.put(fresh.clone());
    lock.write(&file)?;
    Ok(fresh)
}

fn trace(line: &str) {
    if let Some(path) = process_env("GATEHOUSE_CLI_TRACE")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line} pid={}", std::process::id());
    }
}

fn refresh(entry: &Entry) -> Result<Entry, CliError> {
    let (Kind::Oidc, Some(refresh_token), Some(issuer), Some(client_id)) = (
        entry.kind,
        entry.refresh_token.as_deref(),
        entry.issuer.as_deref(),
        entry.client_id.as_deref(),
    ) else {
        return Err(CliError::Login {
            reason: match entry.kind {
                Kind::Oidc => {
                    "the identity provider gave no refresh token (it may not offer offline_access)"
                }
                Kind::Admin => "admin tokens cannot be refreshed",
                Kind::Kubeconfig => "tokens taken from a kubeconfig cannot be refreshed",
            }
            .to_owned(),
            hint: String::new(),
        });
    };
    let net = Net::new(entry.ca_pem.as_deref(), "(the CA stored at login)")?;
    let rt = runtime()?;
    rt.block_on(async {
        let d = net.discovery(issuer).await?;
        trace("refresh");
        let tokens: TokenResponse = net
            .post_form(
                IDP,
                &d.token_endpoint,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                    ("client_id", client_id),
                ],
            )
            .await?;
        let signed_in =
            crate::cli::login::signed_in(&net, &d, client_id, entry.token_type, tokens, None)
                .await?;
        Ok(Entry {
            token: signed_in.token,
            // IdPs that rotate refresh tokens send a new one; others keep the old valid.
            refresh_token: signed_in
                .refresh_token
                .or_else(|| entry.refresh_token.clone()),
            expires_at: signed_in.expires_at,
            updated_at: net::unix_now(),
            ..entry.clone()
        })
    })
}

/// `gatehouse token`: the ExecCredential on stdout.
pub fn token(server: Option<String>, common: &Common) -> Result<(), CliError> {
    let cache = Cache::open(common.token_cache, &process_env)?;
    let server = resolve_server(server, &cache, common, true)?;
    let entry = current(&cache, &server)?;
    let credential = json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {
            "token": entry.token,
            "expirationTimestamp": rfc3339(entry.expires_at),
        },
    });
    // The one place a token is printed: kubectl reads it from stdout.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{credential}").map_err(|e| CliError::io("cannot write to stdout", e))?;
    Ok(())
}

/// The token's claims, decoded **without verification** (for display only).
pub fn unverified_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Prints data as text, JSON or YAML.
pub fn print_data(
    output: Output,
    value: &Value,
    text: impl FnOnce() -> String,
) -> Result<(), CliError> {
    let rendered = match output {
        Output::Text => text(),
        Output::Json => format!("{value:#}"),
        Output::Yaml => serde_saphyr::to_string(value).map_err(|e| CliError::Usage {
            reason: format!("cannot render YAML: {e}"),
            hint: "use --output json".to_owned(),
        })?,
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", rendered.trim_end())
        .and_then(|()| writeln!(out))
        .map_err(|e| CliError::io("cannot write to stdout", e))
}

/// `gatehouse whoami`.
pub fn whoami(server: Option<String>, output: Output, common: &Common) -> Result<(), CliError> {
    let cache = Cache::open(common.token_cache, &process_env)?;
    let server = resolve_server(server, &cache, common, false)?;
    let entry = current(&cache, &server)?;
    let net = Net::new(entry.ca_pem.as_deref(), "(the CA stored at login)")?;
    let url = format!("{server}/v1/whoami");
    // Kept as sent for --output json|yaml (docs/cli.md: `gatehouse` is the server's answer,
    // with what a newer server adds); read as the shared type for the text.
    let remote: Value = runtime()?
        .block_on(net.get_json(SERVER, &url, Some(&entry.token)))
        .map_err(|e| e.refusal_hint(format!("sign in again: {}", entry.login_command)))?;
    let who = WhoAmI::deserialize(&remote).map_err(|e| CliError::BadAnswer {
        what: SERVER,
        url: url.clone(),
        reason: format!("it is not gatehouse's /v1/whoami answer: {e}"),
    })?;
    let claims = unverified_claims(&entry.token).unwrap_or_default();
    let local = json!({
        "kind": entry.kind,
        "issuer": claims.get("iss"),
        "audiences": claims.get("aud"),
        "authorizedParty": claims.get("azp"),
        "expiresAt": rfc3339(entry.expires_at),
        "refreshable": entry.refresh_token.is_some(),
    });
    let location = cache.location();
    let value = json!({ "server": server, "token": local, "cache": location, "gatehouse": remote });
    print_data(output, &value, || {
        let s = |v: Option<&Value>| match v {
            None | Some(Value::Null) => "-".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            Some(v) => v.to_string(),
        };
        let list = |l: &[String]| l.join(", ");
        let kube = match who.kubernetes() {
            Some(KubernetesAccess::Impersonation(i)) => format!(
                "as {} (impersonation)",
                match i {
                    Impersonation::ServiceAccounts { service_accounts } => list(service_accounts),
                    Impersonation::User { username, .. } =>
                        username.clone().unwrap_or_else(|| "-".to_owned()),
                }
            ),
            Some(k @ KubernetesAccess::FallThrough { .. }) => format!(
                "with your own token (fall-through){}",
                k.reviewed_username()
                    .map(|u| format!(": {u}"))
                    .unwrap_or_default()
            ),
            Some(KubernetesAccess::Unmapped { .. }) => "none".to_owned(),
            Some(KubernetesAccess::Unknown) | None => "-".to_owned(),
        };
        format!(
            "Server:            {server}\nAuthenticated by:  {}\nUsername:          {}\nGroups:            {}\nKubernetes access: {kube}\nToken audiences:   {}\nToken azp:         {}\nToken expires:     {}{}\nToken cache:       {location}\n",
            who.authenticated_by().unwrap_or("-"),
            who.username().unwrap_or("-"),
            who.groups().map_or_else(|| "-".to_owned(), list),
            s(claims.get("aud")),
            s(claims.get("azp")),
            rfc3339(entry.expires_at),
            if entry.refresh_token.is_some() {
                " (refreshable)"
            } else {
                ""
            },
        )
    })
}

/// What happened to a removed sign-in's refresh token at `gatehouse logout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Revocation {
    /// There was none (admin and kubeconfig sign-ins, or an IdP that gave none).
    NoRefreshToken,
    /// Revoked at the IdP (RFC 7009).
    Revoked,
    /// The IdP offers no revocation: the refresh token stays valid there until it expires.
    NotOffered,
    /// The revocation failed (a warning says why); the token is forgotten here all the same.
    Failed,
}

/// The result of `gatehouse logout` for scripts (`--output json|yaml`): the server, whether a
/// sign-in was removed, each removed sign-in (kind, issuer, client, what happened to its
/// refresh token), whether the server's pinned settings were forgotten, and the cache. No
/// token in it.
pub fn logout_summary(
    server: &str,
    removed: &[(Entry, Revocation)],
    pin_forgotten: bool,
    cache: &str,
) -> Value {
    json!({
        "server": server,
        "signedOut": !removed.is_empty(),
        "removed": removed
            .iter()
            .map(|(e, revocation)| json!({
                "kind": e.kind,
                "issuer": e.issuer,
                "clientId": e.client_id,
                "revocation": revocation,
            }))
            .collect::<Vec<_>>(),
        "pinForgotten": pin_forgotten,
        "cache": cache,
    })
}

/// `gatehouse logout`.
pub fn logout(server: Option<String>, output: Output, common: &Common) -> Result<(), CliError> {
    let cache = Cache::open(common.token_cache, &process_env)?;
    let server = resolve_server(server, &cache, common, false)?;
    let lock = cache.lock()?;
    let mut file = lock.read()?;
    let removed = file.remove_server(&server);
    // The server's pinned sign-in settings go too: the next sign-in pins afresh.
    let pins = crate::cli::pin::PinStore::new(cache.dir());
    let mut pinned = pins.read()?;
    let forgot = pinned.servers.remove(&server).is_some();
    if forgot {
        pins.write(&pinned)?;
        eprintln!("Forgot the pinned sign-in settings of {server}.");
    }
    if removed.is_empty() {
        eprintln!("Not signed in to {server}; no tokens to remove.");
        return crate::cli::print_result(
            output,
            &logout_summary(&server, &[], forgot, &cache.location()),
        );
    }
    let removed: Vec<(Entry, Revocation)> = removed
        .into_iter()
        .map(|e| {
            let revocation = revoke(&e).unwrap_or_else(|err| {
                eprintln!("gatehouse: warning: could not revoke the refresh token: {err}");
                Revocation::Failed
            });
            (e, revocation)
        })
        .collect();
    lock.write(&file)?;
    eprintln!("Signed out of {server}; cached tokens removed.");
    crate::cli::print_result(
        output,
        &logout_summary(&server, &removed, forgot, &cache.location()),
    )
}

/// Revokes the refresh token of an entry where the IdP offers RFC 7009 revocation.
fn revoke(entry: &Entry) -> Result<Revocation, CliError> {
    let (Some(refresh_token), Some(issuer), Some(client_id)) = (
        entry.refresh_token.as_deref(),
        entry.issuer.as_deref(),
        entry.client_id.as_deref(),
    ) else {
        return Ok(Revocation::NoRefreshToken);
    };
    let net = Net::new(entry.ca_pem.as_deref(), "(the CA stored at login)")?;
    runtime()?.block_on(async {
        let d = net.discovery(issuer).await?;
        let Some(endpoint) = d.revocation_endpoint else {
            eprintln!(
                "(the identity provider offers no token revocation; the refresh token stays valid there until it expires)"
            );
            return Ok(Revocation::NotOffered);
        };
        let resp = net
            .http()
            .post(&endpoint)
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
                ("client_id", client_id),
            ])
            .send()
            .await
            .map_err(|e| CliError::Unreachable {
                what: IDP,
                url: endpoint.clone(),
                source: e.without_url(),
                hint: String::new(),
            })?;
        if resp.status().is_success() {
            eprintln!("Refresh token revoked at the identity provider.");
            Ok(Revocation::Revoked)
        } else {
            Err(CliError::Refused {
                what: IDP,
                url: endpoint,
                status: resp.status().as_u16(),
                message: "revocation refused".to_owned(),
                hint: String::new(),
            })
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validity_keeps_a_margin() {
        let mut e = Entry {
            token_type: crate::cli::cache::TokenType::IdToken,
            server: "s".into(),
            issuer: None,
            client_id: None,
            parameters: Default::default(),
            kind: Kind::Admin,
            token: "t".into(),
            refresh_token: None,
            expires_at: 1000,
            ca_pem: None,
            updated_at: 0,
            login_command: String::new(),
        };
        assert!(valid(&e, 989));
        assert!(!valid(&e, 990));
        e.expires_at = 0;
        assert!(!valid(&e, 0));
    }

    #[test]
    fn logout_summary_names_what_was_removed_and_no_token() {
        let entry = |kind, refresh: Option<&str>| Entry {
            token_type: crate::cli::cache::TokenType::IdToken,
            server: "https://gh".into(),
            issuer: refresh.map(|_| "https://idp".to_owned()),
            client_id: refresh.map(|_| "cli".to_owned()),
            parameters: Default::default(),
            kind,
            token: "SECRET-TOKEN-VALUE".into(),
            refresh_token: refresh.map(str::to_owned),
            expires_at: 1000,
            ca_pem: None,
            updated_at: 0,
            login_command: String::new(),
        };
        let v = logout_summary(
            "https://gh",
            &[
                (
                    entry(Kind::Oidc, Some("SECRET-REFRESH-VALUE")),
                    Revocation::NotOffered,
                ),
                (entry(Kind::Admin, None), Revocation::NoRefreshToken),
            ],
            true,
            "/c/tokens.json",
        );
        assert_eq!(
            v,
            json!({
                "server": "https://gh",
                "signedOut": true,
                "removed": [
                    {"kind": "oidc", "issuer": "https://idp", "clientId": "cli", "revocation": "notOffered"},
                    {"kind": "admin", "issuer": null, "clientId": null, "revocation": "noRefreshToken"},
                ],
                "pinForgotten": true,
                "cache": "/c/tokens.json",
            })
        );
        assert!(!v.to_string().contains("SECRET"), "{v}");
        let none = logout_summary("https://gh", &[], false, "c");
        assert_eq!(none["signedOut"], false);
        assert_eq!(none["removed"], json!([]));
        for r in [Revocation::Revoked, Revocation::Failed] {
            assert!(serde_json::to_value(r).unwrap().is_string());
        }
    }

    #[test]
    fn claims_decode_without_padding() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"aud":["a","b"],"azp":"a"}"#);
        let c = unverified_claims(&format!("x.{payload}.y")).unwrap();
        assert_eq!(c["azp"], "a");
        assert!(unverified_claims("opaque").is_none());
    }
}
