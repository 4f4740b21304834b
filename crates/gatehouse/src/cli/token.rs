//! `gatehouse token` (the kubectl credential plugin) and the refresh of a cached token, which
//! `whoami` uses too.
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

use serde_json::json;

use crate::cli::cache::{Cache, Entry, Kind};
use crate::cli::error::CliError;
use crate::cli::net::{self, IDP, Net};
use crate::cli::{Common, process_env, resolve_server, rfc3339, runtime};

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
        entry.refresh_token.as_ref(),
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
        let tokens = net
            .token_client(client_id)
            .refresh(&d.token_endpoint, refresh_token)
            .await
            .map_err(|e| Net::error(IDP, e))?;
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
}
