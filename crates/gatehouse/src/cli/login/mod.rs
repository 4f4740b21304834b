//! `gatehouse login`: browser (authorization code + PKCE on a loopback redirect), device
//! authorization grant (RFC 8628), admin password, or a kubeconfig's credential.
//!
//! - [`signin`]: what every sign-in shares: the target and its renewal command, the server's
//!   config checked against its pin, parameters and scopes, the ID token verified, the entry.
//! - [`sso`]: the browser flow; [`callback`]: its loopback listener.
//! - [`device`]: the device authorization grant.
//! - [`admin`]: gatehouse's admin password.
//! - `--kubeconfig` is [`crate::cli::kubeconfig::login_with_kubeconfig`].
//!
//! # Security
//! Each file states the rules it enforces. Across all of them: no token, code or password is
//! ever printed.

pub mod admin;
pub mod callback;
pub mod device;
pub mod signin;
pub mod sso;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::cache::{Entry, Kind};
use crate::cli::pin::ServerPin;

pub use admin::{admin, read_password};
pub use device::device;
pub(crate) use signin::signed_in;
pub use signin::{Target, oidc_context, parameters, scopes, shell_quote, token_type};
pub use sso::{SsoOptions, sso};

/// How a sign-in was made (`mode` in `gatehouse login --output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `--sso`, the browser flow (the default).
    Sso,
    /// `--device`, the device authorization grant.
    Device,
    /// `--admin`, gatehouse's admin account.
    Admin,
    /// `--kubeconfig`, a kubeconfig context's credential.
    Kubeconfig,
}

/// What a sign-in ends with: the cache entry, the server's settings to pin (OIDC sign-ins),
/// and who signed in (for people and scripts; never a token).
#[derive(Debug)]
pub struct SignIn {
    /// The entry to cache.
    pub entry: Entry,
    /// The server's sign-in settings to pin ([`crate::cli::pin`]), for `--sso` and `--device`.
    pub pin: Option<ServerPin>,
    /// Who signed in: the ID token's `email`, `preferred_username`, `name` or `sub`; the admin
    /// token's subject; gatehouse's (or Kubernetes') username for a kubeconfig credential.
    pub username: Option<String>,
}

/// The result of `gatehouse login` for scripts (`--output json|yaml`): who signed in to which
/// server and how, until when, where the token is kept (`cache`, as `whoami` names it) and the
/// command that signs in again the same way. Every key is always there (`null` when it does not
/// apply). No token, refresh token, code or password is ever in it.
pub fn summary(mode: Mode, signed_in: &SignIn, cache: &str) -> Value {
    let e = &signed_in.entry;
    json!({
        "server": e.server,
        "mode": mode,
        "username": signed_in.username,
        "issuer": e.issuer,
        "clientId": e.client_id,
        "tokenType": (e.kind == Kind::Oidc).then_some(e.token_type),
        "expiresAt": crate::cli::rfc3339(e.expires_at),
        "refreshable": e.refresh_token.is_some(),
        "context": if e.kind == Kind::Kubeconfig {
            e.parameters.get("context")
        } else {
            None
        },
        "cache": cache,
        "loginCommand": e.login_command,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::cli::cache::TokenType;

    fn entry(kind: Kind) -> Entry {
        Entry {
            server: "https://gh.example".into(),
            issuer: (kind == Kind::Oidc).then(|| "https://idp".to_owned()),
            client_id: (kind == Kind::Oidc).then(|| "cli".to_owned()),
            parameters: if kind == Kind::Kubeconfig {
                BTreeMap::from([("context".into(), "dev".into())])
            } else {
                BTreeMap::from([("login_hint".into(), "a@example.com".into())])
            },
            kind,
            token: "SECRET-ACCESS-TOKEN-VALUE".into(),
            refresh_token: (kind == Kind::Oidc).then(|| "SECRET-REFRESH-TOKEN-VALUE".to_owned()),
            expires_at: 1_900_000_000,
            ca_pem: None,
            updated_at: 0,
            login_command: "gatehouse login --sso https://gh.example".into(),
            token_type: TokenType::AccessToken,
        }
    }

    /// The JSON result of each kind of sign-in: every key always present, `null` where it does
    /// not apply, and never the token or the refresh token.
    #[test]
    fn login_summary_has_a_stable_shape_and_no_token() {
        let keys = [
            "cache",
            "clientId",
            "context",
            "expiresAt",
            "issuer",
            "loginCommand",
            "mode",
            "refreshable",
            "server",
            "tokenType",
            "username",
        ];
        let oidc = summary(
            Mode::Device,
            &SignIn {
                entry: entry(Kind::Oidc),
                pin: None,
                username: Some("alice@example.com".into()),
            },
            "/home/me/.config/gatehouse/tokens.json",
        );
        assert_eq!(
            oidc,
            json!({
                "server": "https://gh.example",
                "mode": "device",
                "username": "alice@example.com",
                "issuer": "https://idp",
                "clientId": "cli",
                "tokenType": "accessToken",
                "expiresAt": "2030-03-17T17:46:40Z",
                "refreshable": true,
                "context": null,
                "cache": "/home/me/.config/gatehouse/tokens.json",
                "loginCommand": "gatehouse login --sso https://gh.example",
            })
        );
        let kc = summary(
            Mode::Kubeconfig,
            &SignIn {
                entry: entry(Kind::Kubeconfig),
                pin: None,
                username: None,
            },
            "c",
        );
        assert_eq!(kc["context"], "dev");
        assert_eq!(
            kc["tokenType"],
            Value::Null,
            "only OIDC sign-ins pick a token"
        );
        assert_eq!(kc["refreshable"], false);
        let admin = summary(
            Mode::Admin,
            &SignIn {
                entry: entry(Kind::Admin),
                pin: None,
                username: Some("admin".into()),
            },
            "c",
        );
        assert_eq!(admin["mode"], "admin");
        assert_eq!(admin["context"], Value::Null);
        for v in [&oidc, &kc, &admin] {
            let mut got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            got.sort_unstable();
            assert_eq!(got, keys);
            let text = v.to_string();
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}
