//! `gatehouse login`: browser (authorization code + PKCE on a loopback redirect), device
//! authorization grant (RFC 8628), admin password, or a kubeconfig's credential.
//!
//! - [`signin`]: what every sign-in shares: the target and its renewal command, the server's
//!   config checked against its pin, parameters and scopes, the ID token verified, the entry.
//! - [`sso`](mod@sso): the browser flow; [`callback`]: its loopback listener.
//! - [`device`](mod@device): the device authorization grant.
//! - [`admin`](mod@admin): gatehouse's admin password.
//! - [`kubeconfig`]: a kubeconfig context's credential.
//!
//! # Security
//! Each file states the rules it enforces. Across all of them: no token, code or password is
//! ever printed.

pub mod admin;
pub mod callback;
pub mod device;
pub mod kubeconfig;
pub mod signin;
pub mod sso;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::cache::Cache;
use crate::cli::cache::{Entry, Kind};
use crate::cli::error::CliError;
use crate::cli::pin::ServerPin;
use crate::cli::{
    Common, Output, net, pin, print_result, process_env, read_ca, resolve_server, runtime,
};

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

/// `gatehouse login`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("flow").args(["sso", "device", "admin", "kubeconfig"])))]
pub struct LoginArgs {
    /// The gatehouse server URL (default: the server signed in to last).
    #[arg(env = "GATEHOUSE_SERVER")]
    pub server: Option<String>,
    /// Sign in with the browser: authorization code with PKCE, redirect to a loopback port
    /// (the default).
    #[arg(long)]
    pub sso: bool,
    /// Sign in with the device flow (RFC 8628): open the URL shown on any device, enter the
    /// code.
    #[arg(long)]
    pub device: bool,
    /// Sign in as gatehouse's admin with its password.
    #[arg(long)]
    pub admin: bool,
    /// Use the credential of a kubeconfig context (token, token file or exec plugin).
    #[arg(long)]
    pub kubeconfig: bool,
    /// The kubeconfig file for --kubeconfig (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE", requires = "kubeconfig")]
    pub kubeconfig_file: Option<PathBuf>,
    /// The context for --kubeconfig (required without a terminal; on a terminal, the current
    /// context after you confirm).
    #[arg(long, requires = "kubeconfig")]
    pub context: Option<String>,
    /// PEM file with the CA certificate(s) of the server and the identity provider.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// A sign-in parameter the server lets users set (see `allowed` in the error otherwise),
    /// as NAME=VALUE; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Do not ask for `offline_access` even when the identity provider lists it (for IdPs
    /// that refuse it to some users; most still give a refresh token bound to the session).
    #[arg(long)]
    pub no_offline_access: bool,
    /// Which token to hand to kubectl: the ID token, or the IdP's JWT access token (for an
    /// audience requested with a resource indicator). Default: the server's `oidc.tokenType`.
    #[arg(long, value_enum)]
    pub token_type: Option<crate::cli::cache::TokenType>,
    /// The loopback port for the browser's redirect (default: a free port).
    #[arg(long, default_value_t = 0)]
    pub callback_port: u16,
    /// Print the sign-in URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// How long to wait for the browser or the device sign-in.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Read the admin password from stdin instead of prompting.
    #[arg(long, requires = "admin")]
    pub password_stdin: bool,
    /// Accept a change of the server's sign-in settings (issuer, client, scopes, parameters)
    /// since they were pinned at the first sign-in, without asking.
    #[arg(long)]
    pub accept_config_change: bool,
    /// Output format: `text` prints messages on stderr only; `json` and `yaml` also print the
    /// result (server, mode, username, expiry, cache; never a token) on stdout, while sign-in
    /// URLs, device codes and questions stay on stderr (see docs/cli.md).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub common: Common,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

/// Runs `gatehouse login`: signs in with the flow chosen, caches the token, pins the server's
/// settings (OIDC sign-ins) and prints the result.
pub fn run(args: LoginArgs) -> Result<(), CliError> {
    let cache = Cache::open(args.common.token_cache, &process_env)?;
    let server = resolve_server(args.server.clone(), &cache, &args.common, false)?;
    let (ca_pem, ca_path) = read_ca(args.certificate_authority.as_ref())?;
    let pins = pin::PinStore::new(cache.dir());
    let pinned = pins.read()?.servers.get(&server).cloned();
    let target = Target {
        server,
        ca_pem,
        ca_path,
        params: args.params.clone(),
        offline_access: !args.no_offline_access,
        token_type: args.token_type,
        pinned,
        accept_config_change: args.accept_config_change,
    };
    // Read the password before anything else, so a prompt is not interleaved with messages.
    let password = if args.admin {
        Some(read_password(args.password_stdin)?)
    } else {
        None
    };
    // Fail early on a corrupted cache, before the user signs in for nothing.
    cache.read()?;
    let net = net::Net::new(
        target.ca_pem.as_deref(),
        target.ca_path.as_deref().unwrap_or(""),
    )?;
    let mode = if password.is_some() {
        Mode::Admin
    } else if args.device {
        Mode::Device
    } else if args.kubeconfig {
        Mode::Kubeconfig
    } else {
        Mode::Sso
    };
    let rt = runtime()?;
    let signed_in = rt.block_on(async {
        if let Some(password) = password {
            admin(&net, &target, password).await
        } else {
            match mode {
                Mode::Device => device(&net, &target, args.timeout).await,
                Mode::Kubeconfig => {
                    kubeconfig::login_with_kubeconfig(
                        &net,
                        &target,
                        args.kubeconfig_file.as_deref(),
                        args.context.as_deref(),
                    )
                    .await
                }
                // `Admin` always comes with its password, above.
                Mode::Sso | Mode::Admin => {
                    sso(
                        &net,
                        &target,
                        &SsoOptions {
                            callback_port: args.callback_port,
                            no_browser: args.no_browser,
                            timeout: args.timeout,
                        },
                    )
                    .await
                }
            }
        }
    })?;
    let lock = cache.lock()?;
    let mut file = lock.read()?;
    let server = signed_in.entry.server.clone();
    file.put(signed_in.entry.clone());
    let location = lock.write(&file)?;
    if let Some(pin) = &signed_in.pin {
        let mut pinned = pins.read()?;
        if pinned.servers.get(&server) != Some(pin) {
            pinned.servers.insert(server, pin.clone());
            pins.write(&pinned)?;
        }
    }
    eprintln!("Token cached in {location}.");
    print_result(args.output, &summary(mode, &signed_in, &cache.location()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::cli::cache::TokenType;
    use gatehouse_core::protocol::RefreshToken;

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
            refresh_token: (kind == Kind::Oidc)
                .then(|| RefreshToken::new("SECRET-REFRESH-TOKEN-VALUE")),
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
