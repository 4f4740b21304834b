//! The client side of `gatehouse`: `login`, `logout`, `whoami`, `token`, `kubeconfig`,
//! `doctor`, `completion`.
//!
//! One module per command: [`login`], [`logout`], [`whoami`], [`token`], [`kubeconfig`],
//! [`doctor`] (`completion` is [`run`]'s own). Beside them what they share: the token
//! [`cache`] (and its [`keyring`] store), the servers' pinned settings ([`pin`]), HTTP
//! ([`net`]), private files ([`files`]), [`output`], [`error`] and the [`spinner`]. A token's claims for display
//! are read with `gatehouse_core::token::unverified_claims`, the one unverified decoder. Each command's arguments are its module's (`LoginArgs`, `LogoutArgs`,
//! `WhoamiArgs`, ...), except `token`'s, kept here beside its one-subcommand fast-path parser.
//! This file holds the command list, the options the commands share, and resolves the server.
//!
//! `gatehouse token` is on kubectl's path for every request, so its common case (a valid cached
//! token) reads one file and prints; no async runtime, TLS configuration or network is set up
//! unless the token must be refreshed.

pub mod cache;
pub mod doctor;
pub mod error;
pub mod files;
pub mod keyring;
pub mod kubeconfig;
pub mod login;
pub mod logout;
pub mod net;
pub mod output;
pub mod pin;
pub mod spinner;
pub mod token;
pub mod whoami;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cli::cache::{Backend, Cache};
use crate::cli::error::CliError;
pub use crate::cli::output::{Output, print_result};

/// Options every client command shares.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Where tokens are kept: `auto` (the OS keyring when reachable, else the file), `file`
    /// (0600 file under $XDG_CONFIG_HOME/gatehouse or ~/.config/gatehouse), `keyring`.
    #[arg(long, value_enum, default_value_t = Backend::Auto, env = "GATEHOUSE_TOKEN_CACHE", global = true)]
    pub token_cache: Backend,
    /// Allow an `http://` server URL that is not loopback (127.0.0.0/8, ::1, localhost):
    /// tokens and passwords then cross the network in clear text, and anyone on the path can
    /// change what the server says. A warning is printed.
    #[arg(long, global = true)]
    pub insecure_http: bool,
}

/// `gatehouse token`'s help (shared by the full CLI and the fast path in `main`).
pub const TOKEN_ABOUT: &str = "kubectl credential plugin: print an ExecCredential (client.authentication.k8s.io/v1) with the cached token";
/// `gatehouse token --help`'s description.
pub const TOKEN_LONG_ABOUT: &str = "kubectl credential plugin: print an ExecCredential (client.authentication.k8s.io/v1) with the cached token, refreshing it first when it has expired.";
/// `gatehouse token --help`'s closing text.
pub const TOKEN_HELP: &str = "Used from a kubeconfig (see `gatehouse kubeconfig`):
  users:
  - name: gatehouse
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1
        command: gatehouse
        args: [token, --server, https://gatehouse.example.com]
        interactiveMode: IfAvailable

With a valid cached token this touches no network. The ExecCredential on stdout is the only
place gatehouse ever prints a token.";

/// `gatehouse token` alone: kubectl runs it before every request, so `main` parses it with this
/// one-subcommand parser and never builds the full CLI (and the server's) on that path.
#[derive(clap::Parser, Debug)]
#[command(name = "gatehouse", version)]
pub struct TokenCli {
    #[command(subcommand)]
    command: TokenOnly,
}

#[derive(Subcommand, Debug)]
enum TokenOnly {
    #[command(about = TOKEN_ABOUT, long_about = TOKEN_LONG_ABOUT, after_help = TOKEN_HELP)]
    Token(TokenArgs),
}

impl TokenCli {
    /// Runs `gatehouse token`.
    pub fn run(self) -> std::process::ExitCode {
        let TokenOnly::Token(args) = self.command;
        run(Command::Token(args))
    }
}

/// The arguments of `gatehouse token`.
#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// The gatehouse server URL (default: the server signed in to last).
    #[arg(long, env = "GATEHOUSE_SERVER")]
    pub server: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// The client commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sign in to a gatehouse server and cache the token.
    #[command(after_help = "Examples:
  gatehouse login --sso https://gatehouse.example.com
  gatehouse login --sso https://gatehouse.example.com --param login_hint=me@example.com
  gatehouse login --device https://gatehouse.example.com        # over SSH, no browser here
  gatehouse login --sso https://127.0.0.1:8443 --certificate-authority ca.crt --no-browser
  echo \"$PASSWORD\" | gatehouse login --admin https://gatehouse.example.com --password-stdin
  gatehouse login --kubeconfig https://gatehouse.example.com --context my-cluster
  gatehouse login --sso https://gatehouse.example.com --accept-config-change  # after the operator changed scopes
  gatehouse login --device https://gatehouse.example.com -o json   # for scripts: the result on stdout

The first OIDC sign-in to a server pins its settings (issuer, clients, scopes, parameters); a
later change is asked about on a terminal and refused without one (see docs/cli.md).")]
    Login(login::LoginArgs),
    /// Revoke the refresh token at the identity provider (when it offers revocation) and
    /// forget the cached tokens of a server and its pinned sign-in settings.
    #[command(
        after_help = "Examples:\n  gatehouse logout https://gatehouse.example.com\n  gatehouse logout --output json   # for scripts: what was removed, on stdout"
    )]
    Logout(logout::LogoutArgs),
    /// Show who you are to gatehouse (its /v1/whoami) and what your cached token says.
    #[command(
        after_help = "Examples:\n  gatehouse whoami\n  gatehouse whoami https://gatehouse.example.com --output json"
    )]
    Whoami(whoami::WhoamiArgs),
    #[command(about = TOKEN_ABOUT, long_about = TOKEN_LONG_ABOUT, after_help = TOKEN_HELP)]
    Token(TokenArgs),
    /// Add a `gatehouse` context (cluster, exec-plugin user) to your kubeconfig, or print it.
    #[command(after_help = "Examples:
  gatehouse kubeconfig https://gatehouse.example.com
  gatehouse kubeconfig https://127.0.0.1:8443 --certificate-authority ca.crt --print
  gatehouse kubeconfig https://gatehouse.example.com --direct \\
      --apiserver https://k8s.example.com:6443 --apiserver-certificate-authority k8s-ca.crt
  gatehouse kubeconfig https://gatehouse.example.com --print -o json   # the kubeconfig as JSON
  gatehouse kubeconfig https://gatehouse.example.com -o json          # the file and contexts written
  kubectl --context gatehouse get namespaces")]
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Check a whole installation step by step (server, IdP, clients, parameters, your token,
    /// what gatehouse and Kubernetes make of it) and say how to fix each failing step.
    #[command(after_help = "Examples:
  gatehouse doctor
  gatehouse doctor --server https://gatehouse.example.com --apiserver https://k8s.example.com:6443
  gatehouse doctor --server https://127.0.0.1:8443 --certificate-authority ca.crt --output json

Exit status: 0 when every step passes or is skipped, 1 when one fails.")]
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  gatehouse completion bash > /etc/bash_completion.d/gatehouse\n  gatehouse completion zsh > \"${fpath[1]}/_gatehouse\"\n  gatehouse completion fish > ~/.config/fish/completions/gatehouse.fish"
    )]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Reads the process environment (the one place the CLI does).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub use gatehouse_server::clock::rfc3339;

/// A current-thread runtime for the commands that talk to the network.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))
}

/// The server to use: given, else the one signed in to last. `http://` is refused unless the
/// host is loopback or `--insecure-http` is given (then a warning is printed, unless `quiet`:
/// `gatehouse token` never talks to the server and runs before every kubectl request).
pub fn resolve_server(
    given: Option<String>,
    cache: &Cache,
    common: &Common,
    quiet: bool,
) -> Result<String, CliError> {
    let server = match given {
        Some(s) => {
            let url = url::Url::parse(&s).map_err(|e| CliError::Usage {
                reason: format!("{s:?} is not a URL: {e}"),
                hint: "give the server as https://host[:port]".to_owned(),
            })?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err(CliError::Usage {
                    reason: format!("{s:?} is not an http(s) URL"),
                    hint: "give the server as https://host[:port]".to_owned(),
                });
            }
            cache::normalize_server(&s)
        }
        None => cache
            .read()?
            .newest_server()
            .map(str::to_owned)
            .ok_or_else(|| CliError::Usage {
                reason: "no server given and none signed in to yet".to_owned(),
                hint: "gatehouse login --sso https://gatehouse.example.com".to_owned(),
            })?,
    };
    check_scheme(&server, common.insecure_http, quiet)?;
    Ok(server)
}

/// Whether a URL is plain `http://` to a host other than loopback.
pub fn insecure_http(server: &str) -> bool {
    let Ok(url) = url::Url::parse(server) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        // Only the exact name: `localhost.` (a trailing dot) may be looked up through DNS.
        Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        None => true,
    }
}

/// Refuses plain `http://` to a host other than loopback without `--insecure-http`.
fn check_scheme(server: &str, allowed: bool, quiet: bool) -> Result<(), CliError> {
    if !insecure_http(server) {
        return Ok(());
    }
    if !allowed {
        return Err(CliError::Usage {
            reason: format!(
                "{server} is plain http:// to a host that is not this machine: tokens and passwords would cross the network in clear text, and anyone on the way could change what the server says"
            ),
            hint: format!(
                "use https://{}; only if you accept the risk (a lab network), add --insecure-http",
                server.trim_start_matches("http://")
            ),
        });
    }
    if !quiet {
        eprintln!(
            "gatehouse: warning: {server} is plain http:// (--insecure-http): tokens and passwords cross the network in clear text"
        );
    }
    Ok(())
}

/// Makes aws-lc-rs rustls's process-wide crypto provider (idempotent). Called before any TLS
/// client is built; the `token` fast path calls it only when it refreshes.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is what is wanted.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Runs a client command; prints the error with its causes and hint.
pub fn run(command: Command) -> std::process::ExitCode {
    match dispatch(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<(), CliError> {
    match command {
        Command::Token(TokenArgs { server, common }) => token::token(server, &common),
        Command::Login(args) => login::run(args),
        Command::Logout(args) => logout::run(args),
        Command::Whoami(args) => whoami::run(args),
        Command::Kubeconfig(args) => kubeconfig::run(args),
        Command::Doctor(args) => {
            if doctor::run(args)? {
                Ok(())
            } else {
                Err(CliError::Usage {
                    reason: "some checks failed".to_owned(),
                    hint: "see the fix under each failed step".to_owned(),
                })
            }
        }
        Command::Completion { shell } => {
            let mut cmd = <crate::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "gatehouse", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Reads a CA file for `--certificate-authority`; returns its PEM and absolute path.
pub fn read_ca(path: Option<&PathBuf>) -> Result<(Option<String>, Option<String>), CliError> {
    let Some(path) = path else {
        return Ok((None, None));
    };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let pem = std::fs::read_to_string(&abs).map_err(|e| CliError::Ca {
        path: abs.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((Some(pem), Some(abs.display().to_string())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn common(insecure_http: bool) -> Common {
        Common {
            token_cache: Backend::File,
            insecure_http,
        }
    }

    fn cache() -> Cache {
        Cache::in_dir(
            std::env::temp_dir().join(format!("gatehouse-resolve-{}", std::process::id())),
        )
    }

    /// `main` parses `gatehouse token` with [`TokenCli`] alone, never building the full parser:
    /// the two must accept the same arguments and print the same help and the same errors.
    #[test]
    fn the_token_fast_path_parses_and_speaks_as_the_full_cli() {
        use clap::Parser as _;
        let full = |args: &[&str]| crate::Cli::try_parse_from(args);
        let fast = |args: &[&str]| TokenCli::try_parse_from(args);
        let args = [
            "gatehouse",
            "token",
            "--server",
            "https://gatehouse.example.com",
            "--token-cache",
            "file",
            "--insecure-http",
        ];
        let crate::Command::Client(Command::Token(by_full)) = full(&args).unwrap().command else {
            panic!("the full parser did not read a token command");
        };
        let TokenOnly::Token(by_fast) = fast(&args).unwrap().command;
        assert_eq!(format!("{by_full:?}"), format!("{by_fast:?}"));
        for args in [
            &["gatehouse", "token", "--help"][..],
            &["gatehouse", "token", "-h"],
            &["gatehouse", "token", "--bogus"],
            &["gatehouse", "token", "--server"],
            &["gatehouse", "token", "--token-cache", "nowhere"],
        ] {
            let (full, fast) = (full(args).unwrap_err(), fast(args).unwrap_err());
            assert_eq!(full.kind(), fast.kind(), "{args:?}");
            assert_eq!(full.to_string(), fast.to_string(), "{args:?}");
        }
    }

    /// Plain http:// to another host is refused with the fix (https, or the explicit flag);
    /// loopback is fine; the flag allows it.
    #[test]
    fn http_server_urls_are_refused_unless_loopback_or_insecure_http() {
        let c = cache();
        for url in [
            "http://gatehouse.example.com",
            "http://10.0.0.5:8080",
            "http://[2001:db8::1]:80",
            "http://localhost.evil.example",
            "http://LOCALHOST.",
        ] {
            let err = resolve_server(Some(url.to_owned()), &c, &common(false), false).unwrap_err();
            assert!(err.to_string().contains("clear text"), "{url}: {err}");
            let hint = err.hint().unwrap();
            assert!(
                hint.contains("--insecure-http") && hint.contains("https://"),
                "{hint}"
            );
            assert_eq!(
                resolve_server(Some(url.to_owned()), &c, &common(true), true).unwrap(),
                url
            );
        }
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://LOCALHOST",
            "https://gatehouse.example.com",
        ] {
            assert!(
                resolve_server(Some(url.to_owned()), &c, &common(false), false).is_ok(),
                "{url}"
            );
        }
    }
}
