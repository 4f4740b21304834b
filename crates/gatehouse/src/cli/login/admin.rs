//! `gatehouse login --admin`: gatehouse's admin account, with its password.

use std::collections::BTreeMap;
use std::io::Read as _;

use gatehouse_core::wire::{AdminLoginRequest, AdminLoginResponse};
use secrecy::SecretString;
use serde_json::Value;

use crate::cli::cache::{Entry, Kind};
use crate::cli::error::CliError;
use crate::cli::net::{self, Net, SERVER};

use super::SignIn;
use super::signin::Target;

/// Reads the admin password: from stdin (`--password-stdin`) or a prompt without echo.
pub fn read_password(from_stdin: bool) -> Result<String, CliError> {
    let password = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::io("cannot read the password from stdin", e))?;
        s.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password("gatehouse admin password: ").map_err(|e| CliError::Usage {
            reason: format!("cannot prompt for the password: {e}"),
            hint: "pipe the password in with --password-stdin".to_owned(),
        })?
    };
    if password.is_empty() {
        return Err(CliError::Usage {
            reason: "the password is empty".to_owned(),
            hint: String::new(),
        });
    }
    Ok(password)
}

/// The admin sign-in. Returns the entry to store.
pub async fn admin(net: &Net, target: &Target, password: String) -> Result<SignIn, CliError> {
    let url = format!("{}/v1/admin/login", target.server);
    let body = AdminLoginRequest {
        password: SecretString::from(password),
    };
    let resp = net
        .http()
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| CliError::Unreachable {
            what: SERVER,
            url: url.clone(),
            source: e.without_url(),
            hint: "check the server URL; with a private CA pass --certificate-authority FILE"
                .to_owned(),
        })?;
    drop(body);
    let status = resp.status();
    if !status.is_success() {
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        return Err(CliError::Refused {
            what: SERVER,
            url,
            status: status.as_u16(),
            message: v
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("refused")
                .to_owned(),
            hint: if status == reqwest::StatusCode::NOT_FOUND {
                "the admin sign-in is not enabled on this server".to_owned()
            } else {
                "check the password".to_owned()
            },
        });
    }
    let t: AdminLoginResponse = resp.json().await.map_err(|e| CliError::BadAnswer {
        what: SERVER,
        url: url.clone(),
        reason: e.without_url().to_string(),
    })?;
    let expires_at = humantime::parse_rfc3339(&t.expires_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| CliError::BadAnswer {
            what: SERVER,
            url,
            reason: "expiresAt is not an RFC 3339 time".to_owned(),
        })?;
    eprintln!(
        "Signed in to {} as admin; the token is valid until {}.",
        target.server,
        crate::cli::rfc3339(expires_at)
    );
    // The admin token's subject, read for display only (the server verified the password).
    let username = gatehouse_core::token::unverified_claims(t.token.expose_secret())
        .and_then(|c| c.get("sub").and_then(Value::as_str).map(str::to_owned));
    let entry = Entry {
        server: target.server.clone(),
        issuer: None,
        client_id: None,
        parameters: BTreeMap::new(),
        kind: Kind::Admin,
        token: t.token.expose_secret().to_owned(),
        refresh_token: None,
        expires_at,
        ca_pem: target.ca_pem.clone(),
        updated_at: net::unix_now(),
        login_command: target.command("--admin"),
        token_type: crate::cli::cache::TokenType::IdToken,
    };
    Ok(SignIn {
        entry,
        pin: None,
        username,
    })
}
