//! `gatehouse logout`: revoke the refresh token at the IdP where it offers revocation (RFC 7009),
//! then forget the server's cached tokens and its pinned sign-in settings.

use clap::Args;
use gatehouse_oidc::http::HttpError;
use serde_json::{Value, json};

use crate::cli::cache::{Cache, Entry};
use crate::cli::error::CliError;
use crate::cli::net::{IDP, Net};
use crate::cli::{Common, Output, process_env, resolve_server, runtime};

/// `gatehouse logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The gatehouse server URL (default: the server signed in to last).
    #[arg(env = "GATEHOUSE_SERVER")]
    pub server: Option<String>,
    /// Output format: `text` prints messages on stderr only; `json` and `yaml` print what
    /// was removed on stdout (see docs/cli.md).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `gatehouse logout`.
pub fn run(args: LogoutArgs) -> Result<(), CliError> {
    logout(args.server, args.output, &args.common)
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
        entry.refresh_token.as_ref(),
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
        match net
            .token_client(client_id)
            .revoke_refresh_token(&endpoint, refresh_token)
            .await
        {
            Ok(()) => {
                eprintln!("Refresh token revoked at the identity provider.");
                Ok(Revocation::Revoked)
            }
            Err(HttpError::Status { status, .. }) => Err(CliError::Refused {
                what: IDP,
                url: endpoint,
                status: status.as_u16(),
                message: "revocation refused".to_owned(),
                hint: String::new(),
            }),
            Err(HttpError::Transport { source, .. }) => Err(CliError::Unreachable {
                what: IDP,
                url: endpoint,
                source: source.without_url(),
                hint: String::new(),
            }),
            // The body of a 2xx is not read: not reached.
            Err(e) => Err(Net::error(IDP, e)),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::cli::cache::Kind;
    use gatehouse_core::protocol::RefreshToken;

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
            refresh_token: refresh.map(RefreshToken::new),
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
}
