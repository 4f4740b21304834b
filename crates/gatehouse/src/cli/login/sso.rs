//! `gatehouse login --sso` (the default): authorization code with PKCE, the browser sent back
//! to a loopback port ([`super::callback`]).

use std::time::Duration;

use gatehouse_core::authorize::authorization_url;
use tokio::net::TcpListener;

use crate::cli::error::CliError;
use crate::cli::net::{IDP, Net};

use super::SignIn;
use super::callback::{IssCheck, wait_for_callback};
use super::signin::{
    Target, oidc_context, oidc_entry, parameters, random_secrets, scopes, signed_in, token_type,
};

/// Options of the browser flow.
#[derive(Debug)]
pub struct SsoOptions {
    /// The loopback port (0: any free port).
    pub callback_port: u16,
    /// Print the URL instead of opening a browser.
    pub no_browser: bool,
    /// How long to wait for the browser.
    pub timeout: Duration,
}

/// The browser flow. Returns the entry and the server's settings to store.
pub async fn sso(net: &Net, target: &Target, opts: &SsoOptions) -> Result<SignIn, CliError> {
    let (oidc, d, pin) = oidc_context(net, target).await?;
    let params = parameters(&oidc, &target.params)?;
    let scopes = scopes(&oidc, &d, target.offline_access);
    let listener = TcpListener::bind(("127.0.0.1", opts.callback_port))
        .await
        .map_err(|e| CliError::Usage {
            reason: format!(
                "cannot listen on 127.0.0.1:{} for the browser's redirect: {e}",
                opts.callback_port
            ),
            hint: "pick another port with --callback-port, or leave it out for a free one"
                .to_owned(),
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::io("cannot read the loopback address", e))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let secrets = random_secrets()?;
    let url = authorization_url(
        &d.authorization_endpoint,
        &oidc.cli_client_id,
        &redirect_uri,
        &scopes,
        &secrets,
        &params,
    )
    .map_err(|e| CliError::Usage {
        reason: e.to_string(),
        hint: "check the server's oidc.additionalParameters".to_owned(),
    })?;
    eprintln!("Sign in to {} in your browser:", target.server);
    eprintln!("  {url}");
    if !opts.no_browser && !open_browser(url.as_str()) {
        eprintln!("(could not open a browser; open the URL above yourself)");
    }
    eprintln!(
        "Waiting for the browser on {redirect_uri} (up to {})...",
        humantime::format_duration(opts.timeout)
    );
    let command = target.command("--sso");
    let iss = IssCheck::new(&d.issuer, d.authorization_response_iss_parameter_supported);
    let wait = wait_for_callback(&listener, &secrets, &iss, |code| {
        let net = net.clone();
        let d = d.clone();
        let client = oidc.cli_client_id.clone();
        let kind = token_type(target, &oidc);
        let redirect_uri = redirect_uri.clone();
        let verifier = secrets.verifier.clone();
        let nonce = secrets.nonce.clone();
        async move {
            let tokens = net
                .token_client(&client)
                .exchange_code(&d.token_endpoint, &code, &redirect_uri, &verifier)
                .await
                .map_err(|e| offline_hint(Net::error(IDP, e)))?;
            signed_in(&net, &d, &client, kind, tokens, Some(&nonce)).await
        }
    });
    let signed_in = match tokio::time::timeout(opts.timeout, wait).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(CliError::Login {
                reason: format!(
                    "no answer from the browser within {}",
                    humantime::format_duration(opts.timeout)
                ),
                hint: format!(
                    "run `{command}` again and finish the sign-in in the browser, or use --timeout, or --device on a machine without a browser"
                ),
            });
        }
    };
    Ok(oidc_entry(target, &oidc, params, signed_in, command, pin))
}

/// Adds a hint to an IdP refusal caused by `offline_access` (Keycloak refuses it for users
/// without the `offline_access` role even though its discovery lists the scope).
fn offline_hint(e: CliError) -> CliError {
    match e {
        CliError::Refused {
            what,
            url,
            status,
            message,
            hint,
        } if message.to_ascii_lowercase().contains("offline") => CliError::Refused {
            what,
            url,
            status,
            message,
            hint: format!(
                "the identity provider does not allow offline_access for you: sign in again with --no-offline-access{}",
                if hint.is_empty() {
                    String::new()
                } else {
                    format!("; {hint}")
                }
            ),
        },
        other => other,
    }
}

fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn offline_access_refusal_gets_a_hint() {
        let e = offline_hint(CliError::Refused {
            what: IDP,
            url: "https://idp/token".into(),
            status: 400,
            message: "not_allowed (Offline tokens not allowed for the user or client)".into(),
            hint: String::new(),
        });
        assert!(e.hint().unwrap().contains("--no-offline-access"));
    }
}
