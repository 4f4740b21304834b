//! `gatehouse login`: browser (authorization code + PKCE on a loopback redirect), device
//! authorization grant (RFC 8628), admin password, or a kubeconfig's credential.
//!
//! # Security
//! - `state`, `nonce` and the PKCE verifier come from core's `FlowSecrets` (96 bytes from the
//!   OS's CSPRNG via aws-lc-rs); the challenge is S256; `state` and `nonce` are compared in
//!   constant time.
//! - The loopback listener binds 127.0.0.1 only and answers one path; a request with a wrong
//!   `state` gets a failure page and does not end the wait (a local process cannot abort or
//!   hijack the sign-in by guessing).
//! - Connections to the listener are read concurrently, each with one deadline for its whole
//!   request head (10 s, not per read) and at most 64 at once: a local process that connects
//!   and sends nothing, or drips a byte at a time, cannot park the sign-in; the browser's
//!   redirect is served beside it. Accept errors (out of file descriptors) pause the loop
//!   instead of ending the sign-in.
//! - Before the IdP is contacted, the server's `/v1/config` is checked against what it said at
//!   the first sign-in ([`crate::cli::pin`]): a change is asked about, or refused without a
//!   terminal, and the audiences the scopes and parameters add are shown.
//! - The ID token is verified (signature against the IdP's JWKS, `iss`, `aud`, `azp`, expiry,
//!   `nonce`) before it is stored.
//! - User parameters are checked against the server's list and patterns before the browser is
//!   opened; reserved protocol names are refused by core's `authorization_url`.
//! - No token, code or password is ever printed.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use gatehouse_core::authorize::{FlowSecrets, RESERVED_PARAMETERS, authorization_url};
use gatehouse_core::jwt::Verified;
use gatehouse_core::wire::{AdminLoginRequest, AdminLoginResponse};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::cache::{Entry, Kind, TokenType};
use crate::cli::error::CliError;
use crate::cli::net::{self, Discovery, IDP, Net, PublicOidc, SERVER, TokenResponse};
use crate::cli::pin::ServerPin;
use crate::cli::spinner::Spinner;

/// What the login needs besides the flow.
#[derive(Debug)]
pub struct Target {
    /// The normalised server URL.
    pub server: String,
    /// The CA PEM for server and IdP.
    pub ca_pem: Option<String>,
    /// The CA file path, for messages and the renewal command.
    pub ca_path: Option<String>,
    /// `--param` values.
    pub params: Vec<(String, String)>,
    /// Ask for `offline_access` when the IdP lists it (`--no-offline-access` turns it off).
    pub offline_access: bool,
    /// Which token to hand to kubectl (`--token-type`; else the server's `tokenType`).
    pub token_type: Option<crate::cli::cache::TokenType>,
    /// The server's settings pinned at the first sign-in (see [`crate::cli::pin`]).
    pub pinned: Option<ServerPin>,
    /// `--accept-config-change`: a change from `pinned` is accepted without asking.
    pub accept_config_change: bool,
}

impl Target {
    fn ca_flag(&self) -> String {
        self.ca_path
            .as_deref()
            .map(|p| format!(" --certificate-authority {}", shell_quote(p)))
            .unwrap_or_default()
    }

    fn param_flags(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!(" --param {}", shell_quote(&format!("{k}={v}"))))
            .collect()
    }

    /// The command that signs in again the same way: `flow` is `--sso`, `--device`,
    /// `--admin` or `--kubeconfig` with that flow's own flags.
    pub fn command(&self, flow: &str) -> String {
        let oidc = flow == "--sso" || flow == "--device";
        let token_type = match self.token_type {
            Some(crate::cli::cache::TokenType::AccessToken) if oidc => " --token-type access-token",
            Some(crate::cli::cache::TokenType::IdToken) if oidc => " --token-type id-token",
            _ => "",
        };
        let insecure = if crate::cli::insecure_http(&self.server) {
            " --insecure-http"
        } else {
            ""
        };
        format!(
            "gatehouse login {flow} {}{insecure}{}{}{}{token_type}",
            shell_quote(&self.server),
            self.ca_flag(),
            if oidc {
                self.param_flags()
            } else {
                String::new()
            },
            if oidc && !self.offline_access {
                " --no-offline-access"
            } else {
                ""
            }
        )
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The sign-in parameters: the server's static ones plus vetted `--param`s.
pub fn parameters(
    oidc: &PublicOidc,
    user: &[(String, String)],
) -> Result<BTreeMap<String, String>, CliError> {
    let allowed = || {
        if oidc.user_parameters.is_empty() {
            "this server allows no per-user parameters".to_owned()
        } else {
            format!(
                "this server allows: {}",
                oidc.user_parameters
                    .iter()
                    .map(|(k, v)| match &v.pattern {
                        Some(p) => format!("{k} (matching {p})"),
                        None => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let mut out = oidc.additional_parameters.clone();
    for (name, value) in user {
        if RESERVED_PARAMETERS.contains(&name.as_str()) {
            return Err(CliError::Parameter {
                name: name.clone(),
                reason: "is a reserved protocol parameter and cannot be set".to_owned(),
                hint: allowed(),
            });
        }
        let Some(spec) = oidc.user_parameters.get(name) else {
            return Err(CliError::Parameter {
                name: name.clone(),
                reason: "is not a parameter the server lets users set".to_owned(),
                hint: allowed(),
            });
        };
        if value.len() > gatehouse_core::authorize::MAX_PARAMETER_LEN {
            return Err(CliError::Parameter {
                name: name.clone(),
                reason: format!(
                    "the value is longer than {} bytes",
                    gatehouse_core::authorize::MAX_PARAMETER_LEN
                ),
                hint: allowed(),
            });
        }
        if let Some(p) = &spec.pattern {
            let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| CliError::Parameter {
                name: name.clone(),
                reason: format!("the server's pattern does not compile here: {e}"),
                hint: String::new(),
            })?;
            if !re.is_match(value) {
                return Err(CliError::Parameter {
                    name: name.clone(),
                    reason: format!("the value {value:?} does not match the server's pattern {p}"),
                    hint: allowed(),
                });
            }
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// The scopes to ask for: the server's, plus `offline_access` when the IdP offers it.
pub fn scopes(oidc: &PublicOidc, d: &Discovery, offline_access: bool) -> Vec<String> {
    let mut scopes = oidc.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    if offline_access
        && d.scopes_supported.iter().any(|s| s == "offline_access")
        && !scopes.iter().any(|s| s == "offline_access")
    {
        scopes.push("offline_access".to_owned());
    }
    scopes
}

fn random_secrets() -> Result<FlowSecrets, CliError> {
    let mut bytes = [0u8; 96];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CliError::Login {
            reason: "the system's random number generator failed".to_owned(),
            hint: String::new(),
        })?;
    Ok(FlowSecrets::from_random(&bytes))
}

/// The server config and discovery, with OIDC required. The config is checked against the
/// server's pin first (see [`crate::cli::pin`]): a change is asked about, or refused without a
/// terminal, before the IdP is contacted. Returns the settings to pin after the sign-in.
pub async fn oidc_context(
    net: &Net,
    target: &Target,
) -> Result<(PublicOidc, Discovery, ServerPin), CliError> {
    let config = net.server_config(&target.server).await?;
    let Some(oidc) = config.oidc else {
        return Err(CliError::Usage {
            reason: format!("{} has no OpenID Connect sign-in configured", target.server),
            hint: if config.admin_enabled {
                format!("sign in as admin: {}", target.command("--admin"))
            } else {
                "ask the operator to configure oidc on the server".to_owned()
            },
        });
    };
    let pin = ServerPin::from_settings(&oidc);
    let user: BTreeMap<String, String> = target.params.iter().cloned().collect();
    crate::cli::pin::check(
        &target.server,
        target.pinned.as_ref(),
        &pin,
        &user,
        target.accept_config_change,
        &mut crate::cli::files::confirm,
    )?;
    let d = net.discovery(&oidc.issuer_url).await?;
    Ok((oidc, d, pin))
}

/// The token type for a sign-in: the flag, else the server's setting, else the ID token.
pub fn token_type(target: &Target, oidc: &PublicOidc) -> crate::cli::cache::TokenType {
    target
        .token_type
        .unwrap_or(match oidc.token_type.as_deref() {
            Some("access_token") => crate::cli::cache::TokenType::AccessToken,
            _ => crate::cli::cache::TokenType::IdToken,
        })
}

/// What an OIDC sign-in (browser or device) or refresh ends with.
pub(crate) struct SignedIn {
    /// The token kubectl gets.
    pub token: String,
    pub refresh_token: Option<String>,
    pub verified: Verified,
    pub expires_at: i64,
}

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

/// Says who signed in, and builds the sign-in result of an OIDC sign-in.
fn oidc_entry(
    target: &Target,
    oidc: &PublicOidc,
    params: BTreeMap<String, String>,
    signed_in: SignedIn,
    command: String,
    pin: ServerPin,
) -> SignIn {
    let username = report_identity(
        &target.server,
        &signed_in.verified.claims,
        signed_in.expires_at,
    );
    let entry = Entry {
        token_type: token_type(target, oidc),
        server: target.server.clone(),
        issuer: Some(oidc.issuer_url.clone()),
        client_id: Some(oidc.cli_client_id.clone()),
        parameters: params,
        kind: Kind::Oidc,
        token: signed_in.token,
        refresh_token: signed_in.refresh_token,
        expires_at: signed_in.expires_at,
        ca_pem: target.ca_pem.clone(),
        updated_at: net::unix_now(),
        login_command: command,
    };
    SignIn {
        entry,
        pin: Some(pin),
        username,
    }
}

/// The end of an OIDC sign-in (browser or device) or refresh: the ID token verified (with the
/// browser flow's `nonce`), the token kubectl will get picked.
pub(crate) async fn signed_in(
    net: &Net,
    d: &Discovery,
    client: &str,
    kind: TokenType,
    tokens: TokenResponse,
    nonce: Option<&str>,
) -> Result<SignedIn, CliError> {
    let id_token = tokens
        .id_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .ok_or_else(|| CliError::BadAnswer {
            what: IDP,
            url: d.token_endpoint.clone(),
            reason: "no id_token in the token response (is `openid` among the scopes?)".to_owned(),
        })?;
    let verified = net
        .verify_id_token(d, client, &id_token, nonce, net::unix_now())
        .await?;
    let (token, expires_at) =
        net::pick_token(kind, &tokens, &id_token, &verified, &d.token_endpoint)?;
    Ok(SignedIn {
        token,
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        verified,
        expires_at,
    })
}

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
    let wait = wait_for_callback(&listener, &secrets, |code| {
        let net = net.clone();
        let d = d.clone();
        let client = oidc.cli_client_id.clone();
        let kind = token_type(target, &oidc);
        let redirect_uri = redirect_uri.clone();
        let verifier = secrets.verifier.clone();
        let nonce = secrets.nonce.clone();
        async move {
            let tokens: TokenResponse = net
                .post_form(
                    IDP,
                    &d.token_endpoint,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", &redirect_uri),
                        ("client_id", &client),
                        ("code_verifier", &verifier),
                    ],
                )
                .await
                .map_err(offline_hint)?;
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

/// Prints who signed in (no token) and returns it.
fn report_identity(
    server: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
    exp: i64,
) -> Option<String> {
    let who = ["email", "preferred_username", "name", "sub"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(|v| v.as_str()))
        .map(str::to_owned);
    eprintln!(
        "Signed in to {server} as {}; the token is valid until {}.",
        who.as_deref().unwrap_or("?"),
        crate::cli::rfc3339(exp)
    );
    who
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

const PAGE_OK: &str = "<!doctype html><html lang=en><head><meta charset=utf-8><title>gatehouse: signed in</title></head><body><h1>Signed in</h1><p>You are signed in to gatehouse. You can close this tab and return to the terminal.</p></body></html>";

fn page_failed(reason: &str) -> String {
    let escaped = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>gatehouse: sign-in failed</title></head><body><h1>Sign-in failed</h1><p>{escaped}</p><p>Return to the terminal for details.</p></body></html>"
    )
}

/// How long one connection to the loopback listener may take to send its whole request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long writing an answer page may take.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// Connections read at once; more are closed at once (each is bounded by
/// [`REQUEST_DEADLINE`], so the slots free up).
const MAX_CONNECTIONS: usize = 64;

async fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // A client that does not read its answer cannot hold the listener either.
    let _ = tokio::time::timeout(RESPONSE_DEADLINE, async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// The whole head did not arrive within the deadline.
    Timeout,
    /// Not an HTTP/1 `GET` request line (or the connection closed early, or sent too much).
    Bad,
}

/// Reads the request line's target (path and query) of one HTTP/1 `GET` request. The whole
/// head must arrive within `deadline` (one deadline for the request, not one per read, so a
/// client dripping a byte at a time is cut off), and be at most 16 KiB.
async fn read_target(stream: &mut TcpStream, deadline: Duration) -> Result<String, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Bad)?;
            if n == 0 || buf.len() > 16 * 1024 {
                return Err(ReadError::Bad);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(deadline, read_head)
        .await
        .map_err(|_| ReadError::Timeout)??;
    let line = buf.split(|b| *b == b'\n').next().ok_or(ReadError::Bad)?;
    let line = std::str::from_utf8(line)
        .map_err(|_| ReadError::Bad)?
        .trim_end();
    let mut parts = line.split(' ');
    if parts.next() != Some("GET") {
        return Err(ReadError::Bad);
    }
    parts.next().map(str::to_owned).ok_or(ReadError::Bad)
}

/// What a connection to the loopback listener brought, once it proved it belongs to this
/// sign-in (its `state` matches).
enum Arrival {
    /// The authorization code.
    Code(String),
    /// The IdP's error, as a sentence.
    Refused(String),
}

/// Reads and checks one connection. Anything that is not this sign-in's answer is answered
/// here (400, 404, 408) and yields `None`; the answer of this sign-in is handed back with its
/// connection, to be answered after the code exchange.
async fn examine(
    mut stream: TcpStream,
    state: String,
    deadline: Duration,
) -> Option<(TcpStream, Arrival)> {
    let target = match read_target(&mut stream, deadline).await {
        Ok(t) => t,
        Err(ReadError::Timeout) => {
            respond(&mut stream, "408 Request Timeout", &page_failed("too slow")).await;
            return None;
        }
        Err(ReadError::Bad) => {
            respond(&mut stream, "400 Bad Request", &page_failed("bad request")).await;
            return None;
        }
    };
    let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
        respond(&mut stream, "400 Bad Request", &page_failed("bad request")).await;
        return None;
    };
    if url.path() != "/callback" {
        respond(&mut stream, "404 Not Found", &page_failed("not found")).await;
        return None;
    }
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let state_ok = q
        .get("state")
        .is_some_and(|s| net::secrets_equal(s, &state));
    if !state_ok {
        // Not this sign-in's answer: refuse it and keep waiting for the real one.
        respond(
            &mut stream,
            "400 Bad Request",
            &page_failed("This answer does not belong to the sign-in running in your terminal (state mismatch)."),
        )
        .await;
        return None;
    }
    if let Some(error) = q.get("error") {
        let description = q.get("error_description").cloned().unwrap_or_default();
        let reason = if description.is_empty() {
            format!("the identity provider refused the sign-in: {error}")
        } else {
            format!("the identity provider refused the sign-in: {error} ({description})")
        };
        return Some((stream, Arrival::Refused(reason)));
    }
    let Some(code) = q.get("code").cloned() else {
        respond(
            &mut stream,
            "400 Bad Request",
            &page_failed("no authorization code"),
        )
        .await;
        return None;
    };
    Some((stream, Arrival::Code(code)))
}

/// Waits for this sign-in's redirect on the loopback listener. Connections are read
/// concurrently, each within [`REQUEST_DEADLINE`], so a local process that connects and sends
/// nothing, or drips bytes, never delays the browser's redirect.
async fn wait_for_callback<F, Fut, T>(
    listener: &TcpListener,
    secrets: &FlowSecrets,
    exchange: F,
) -> Result<T, CliError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, CliError>>,
{
    let mut pending = tokio::task::JoinSet::new();
    let mut oldest_first = std::collections::VecDeque::new();
    let (mut stream, arrival) = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Full: the oldest open connection gives way, never the newest. A
                    // browser's redirect arrives in one packet and is read at once, so a
                    // flood of connections that drip bytes cannot keep it out (closing the
                    // newest instead would let the flood refill every freed slot first).
                    if pending.len() >= MAX_CONNECTIONS {
                        while let Some(handle) = oldest_first.pop_front() {
                            let handle: tokio::task::AbortHandle = handle;
                            if !handle.is_finished() {
                                handle.abort();
                                break;
                            }
                        }
                    }
                    if oldest_first.len() > 2 * MAX_CONNECTIONS {
                        oldest_first.retain(|h: &tokio::task::AbortHandle| !h.is_finished());
                    }
                    oldest_first.push_back(pending.spawn(examine(
                        stream,
                        secrets.state.clone(),
                        REQUEST_DEADLINE,
                    )));
                }
                // Out of file descriptors and the like: pause instead of ending the sign-in
                // (the caller's timeout bounds the wait).
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                if let Ok(Some(found)) = done {
                    break found;
                }
            }
        }
    };
    // The other connections are dropped (their tasks aborted) with `pending`.
    drop(pending);
    match arrival {
        Arrival::Refused(reason) => {
            respond(&mut stream, "200 OK", &page_failed(&reason)).await;
            Err(CliError::Login {
                reason,
                hint: "check the parameters the server sends (`gatehouse doctor`), or sign in with another account".to_owned(),
            })
        }
        Arrival::Code(code) => match exchange(code).await {
            Ok(v) => {
                respond(&mut stream, "200 OK", PAGE_OK).await;
                Ok(v)
            }
            Err(e) => {
                respond(&mut stream, "200 OK", &page_failed(&e.to_string())).await;
                Err(e)
            }
        },
    }
}

#[derive(Deserialize)]
struct DeviceCode {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    interval: Option<u64>,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCode(<redacted>)")
    }
}

/// The device authorization grant (RFC 8628). Returns the entry and the server's settings
/// to store.
pub async fn device(net: &Net, target: &Target, timeout: Duration) -> Result<SignIn, CliError> {
    let (oidc, d, pin) = oidc_context(net, target).await?;
    let params = parameters(&oidc, &target.params)?;
    let scopes = scopes(&oidc, &d, target.offline_access).join(" ");
    let Some(endpoint) = d.device_authorization_endpoint.clone() else {
        return Err(CliError::Usage {
            reason: format!("the identity provider {} offers no device flow", d.issuer),
            hint: format!("sign in with the browser: {}", target.command("--sso")),
        });
    };
    let secrets = random_secrets()?;
    let challenge = secrets.code_challenge();
    let mut form: Vec<(&str, &str)> = vec![
        ("client_id", &oidc.cli_client_id),
        ("scope", &scopes),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let dc: DeviceCode = net.post_form(IDP, &endpoint, &form).await?;
    eprintln!("To sign in to {}, open", target.server);
    eprintln!(
        "  {}",
        dc.verification_uri_complete
            .as_deref()
            .unwrap_or(&dc.verification_uri)
    );
    eprintln!("and enter the code {}", dc.user_code);
    let lifetime = Duration::from_secs(dc.expires_in.unwrap_or(600)).min(timeout);
    let interval = Duration::from_secs(dc.interval.unwrap_or(5).max(1));
    let command = target.command("--device");
    let spinner = Spinner::start("waiting for the sign-in on the other device...".to_owned());
    let tokens = poll_device(interval, lifetime, &command, || async {
        let resp = net
            .http()
            .post(&d.token_endpoint)
            .header("accept", "application/json")
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &dc.device_code),
                ("client_id", &oidc.cli_client_id),
                ("code_verifier", &secrets.verifier),
            ])
            .send()
            .await
            .map_err(|e| CliError::Unreachable {
                what: IDP,
                url: d.token_endpoint.clone(),
                source: e.without_url(),
                hint: "check the network, then run the login again".to_owned(),
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CliError::Unreachable {
            what: IDP,
            url: d.token_endpoint.clone(),
            source: e,
            hint: String::new(),
        })?;
        if status.is_success() {
            let tokens: TokenResponse =
                serde_json::from_slice(&bytes).map_err(|e| CliError::BadAnswer {
                    what: IDP,
                    url: d.token_endpoint.clone(),
                    reason: format!("{:?} error", e.classify()),
                })?;
            return Ok(DevicePoll::Done(tokens));
        }
        let err: net::OAuthError = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(DevicePoll::Refused {
            status: status.as_u16(),
            error: err.error.unwrap_or_default(),
            description: err.error_description,
        })
    })
    .await?;
    let signed_in = signed_in(
        net,
        &d,
        &oidc.cli_client_id,
        token_type(target, &oidc),
        tokens,
        None,
    )
    .await?;
    drop(spinner);
    Ok(oidc_entry(target, &oidc, params, signed_in, command, pin))
}

/// One answer of the token endpoint to a device-code poll.
#[derive(Debug)]
enum DevicePoll<T> {
    /// The tokens.
    Done(T),
    /// An OAuth error (`authorization_pending`, `slow_down`, `access_denied`...).
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
    },
}

/// Polls the token endpoint as RFC 8628 section 3.5 asks: wait `interval` before each poll,
/// keep waiting on `authorization_pending`, add 5 seconds to the interval for good on every
/// `slow_down`, stop on any other error or when the next poll would come after `lifetime`.
async fn poll_device<T, F, Fut>(
    mut interval: Duration,
    lifetime: Duration,
    command: &str,
    mut poll: F,
) -> Result<T, CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<DevicePoll<T>, CliError>>,
{
    let deadline = tokio::time::Instant::now() + lifetime;
    loop {
        if tokio::time::Instant::now() + interval > deadline {
            return Err(CliError::Login {
                reason: "the device code expired before the sign-in was completed".to_owned(),
                hint: format!("run `{command}` again and finish in time"),
            });
        }
        tokio::time::sleep(interval).await;
        let (status, error, description) = match poll().await? {
            DevicePoll::Done(tokens) => return Ok(tokens),
            DevicePoll::Refused {
                status,
                error,
                description,
            } => (status, error, description),
        };
        match error.as_str() {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(5),
            other => {
                return Err(CliError::Login {
                    reason: match other {
                        "access_denied" => "the sign-in was denied".to_owned(),
                        "expired_token" => "the device code expired".to_owned(),
                        "" => format!("the identity provider answered HTTP {status}"),
                        o => format!(
                            "the identity provider answered {o}{}",
                            description
                                .as_deref()
                                .map(|d| format!(" ({d})"))
                                .unwrap_or_default()
                        ),
                    },
                    hint: format!("run `{command}` again"),
                });
            }
        }
    }
}

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
    let username = crate::cli::claims::unverified_claims(t.token.expose_secret())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use gatehouse_core::wire::UserParameter;

    fn refused(error: &str) -> DevicePoll<&'static str> {
        DevicePoll::Refused {
            status: 400,
            error: error.to_owned(),
            description: None,
        }
    }

    /// Runs `poll_device` (in paused tokio time) against a scripted token endpoint; returns
    /// the result and the seconds between the start and each poll.
    async fn device_script(
        answers: Vec<DevicePoll<&'static str>>,
        lifetime: u64,
    ) -> (Result<&'static str, CliError>, Vec<u64>) {
        let start = tokio::time::Instant::now();
        let answers = std::cell::RefCell::new(answers.into_iter());
        let times = std::cell::RefCell::new(Vec::new());
        let result = poll_device(
            Duration::from_secs(5),
            Duration::from_secs(lifetime),
            "gatehouse login --device https://gh",
            || {
                times.borrow_mut().push(start.elapsed().as_secs());
                let next = answers.borrow_mut().next().expect("no poll after the end");
                async move { Ok(next) }
            },
        )
        .await;
        (result, times.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn device_polling_waits_the_interval_and_slows_down_for_good() {
        let (result, times) = device_script(
            vec![
                refused("authorization_pending"),
                refused("slow_down"),
                refused("authorization_pending"),
                refused("slow_down"),
                DevicePoll::Done("tokens"),
            ],
            600,
        )
        .await;
        assert_eq!(result.unwrap(), "tokens");
        // 5 s, then 5 s; slow_down: 10 s from then on; another: 15 s.
        assert_eq!(times, vec![5, 10, 20, 30, 45]);
    }

    #[tokio::test(start_paused = true)]
    async fn device_polling_stops_on_denial_and_at_the_deadline() {
        let (result, times) = device_script(vec![refused("access_denied")], 600).await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("the sign-in was denied"), "{err}");
        assert_eq!(times, vec![5]);

        let (result, times) = device_script(
            vec![refused("authorization_pending"), refused("slow_down")],
            19,
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains("the device code expired before"),
            "{err}"
        );
        // The next poll (at 20 s, after slow_down's 10 s interval) would be past the
        // deadline (19 s): none is made.
        assert_eq!(times, vec![5, 10]);

        let (result, _) = device_script(
            vec![DevicePoll::Refused {
                status: 400,
                error: "invalid_grant".to_owned(),
                description: Some("bad code".to_owned()),
            }],
            600,
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            err.to_string()
                .contains("the identity provider answered invalid_grant (bad code)"),
            "{err}"
        );
    }

    fn settings() -> PublicOidc {
        PublicOidc {
            token_type: None,
            issuer_url: "https://idp".into(),
            cli_client_id: "cli".into(),
            client_id: None,
            scopes: vec!["openid".into(), "email".into()],
            audiences: Vec::new(),
            username_claim: None,
            additional_parameters: BTreeMap::from([("connector_id".into(), "local".into())]),
            user_parameters: BTreeMap::from([
                (
                    "login_hint".into(),
                    UserParameter {
                        pattern: Some(r"[a-z]+@example\.com".into()),
                    },
                ),
                ("prompt".into(), UserParameter { pattern: None }),
            ]),
        }
    }

    #[test]
    fn user_parameters_are_vetted() {
        let s = settings();
        let ok = parameters(&s, &[("login_hint".into(), "alice@example.com".into())]).unwrap();
        assert_eq!(ok["connector_id"], "local");
        assert_eq!(ok["login_hint"], "alice@example.com");

        let e = parameters(
            &s,
            &[("login_hint".into(), "alice@example.com.evil".into())],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("login_hint") && e.to_string().contains("pattern"),
            "{e}"
        );
        let e = parameters(&s, &[("domain_hint".into(), "x".into())]).unwrap_err();
        assert!(e.to_string().contains("domain_hint"), "{e}");
        assert!(e.hint().unwrap().contains("login_hint"), "{:?}", e.hint());
        let e = parameters(&s, &[("state".into(), "x".into())]).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        assert!(parameters(&s, &[("prompt".into(), "login".into())]).is_ok());
    }

    #[test]
    fn offline_access_only_when_supported() {
        let s = settings();
        let mut d = Discovery {
            issuer: "https://idp".into(),
            authorization_endpoint: "https://idp/auth".into(),
            token_endpoint: "https://idp/token".into(),
            jwks_uri: "https://idp/keys".into(),
            ..Discovery::default()
        };
        assert!(!scopes(&s, &d, true).contains(&"offline_access".to_owned()));
        d.scopes_supported = vec!["openid".into(), "offline_access".into()];
        assert_eq!(scopes(&s, &d, true), ["openid", "email", "offline_access"]);
        assert_eq!(scopes(&s, &d, false), ["openid", "email"]);
    }

    #[test]
    fn renewal_command_quotes_words() {
        let t = Target {
            server: "https://gh.example".into(),
            token_type: None,
            ca_pem: None,
            ca_path: Some("/tmp/my ca.pem".into()),
            params: vec![("login_hint".into(), "a@example.com".into())],
            offline_access: true,
            pinned: None,
            accept_config_change: false,
        };
        assert_eq!(
            t.command("--sso"),
            "gatehouse login --sso https://gh.example --certificate-authority '/tmp/my ca.pem' --param login_hint=a@example.com"
        );
        assert_eq!(
            t.command("--admin"),
            "gatehouse login --admin https://gh.example --certificate-authority '/tmp/my ca.pem'"
        );
        // The CA for every flow; an explicit token type for the OIDC flows only.
        assert_eq!(
            t.command("--kubeconfig --context dev"),
            "gatehouse login --kubeconfig --context dev https://gh.example --certificate-authority '/tmp/my ca.pem'"
        );
        let t = Target {
            token_type: Some(crate::cli::cache::TokenType::AccessToken),
            offline_access: false,
            params: vec![],
            ..t
        };
        assert_eq!(
            t.command("--device"),
            "gatehouse login --device https://gh.example --certificate-authority '/tmp/my ca.pem' --no-offline-access --token-type access-token"
        );
    }

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

    /// A local process that opens a connection to the loopback listener and drips one byte at
    /// a time must not park the sign-in: the browser's real redirect, arriving while the
    /// dripping connection is open, is served and the login completes.
    #[tokio::test]
    async fn a_dripping_connection_does_not_block_the_real_callback() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secrets = random_secrets().unwrap();
        let state = secrets.state.clone();
        let dripper = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for b in b"GET /callback?state=x&code=y".iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // The dripping connection is first in the listener's queue.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let browser = tokio::spawn(browser_redirect(addr, state));
        let got = callback_within(&listener, &secrets, Duration::from_secs(5))
            .await
            .expect("the real callback is served while the dripping connection is open");
        assert_eq!(got, "the-code");
        let page = browser.await.unwrap();
        assert!(page.contains("Signed in"), "{page}");
        dripper.abort();
    }

    /// The browser's redirect to the loopback listener at `addr`; returns the page it got.
    async fn browser_redirect(addr: std::net::SocketAddr, state: String) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET /callback?code=the-code&state={state} HTTP/1.1\r\nhost: x\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).await.unwrap();
        page
    }

    /// The code of the first valid callback, or `None` when none arrives within `limit`.
    async fn callback_within(
        listener: &TcpListener,
        secrets: &FlowSecrets,
        limit: Duration,
    ) -> Option<String> {
        tokio::time::timeout(
            limit,
            wait_for_callback(
                listener,
                secrets,
                |code| async move { Ok::<_, CliError>(code) },
            ),
        )
        .await
        .ok()
        .map(Result::unwrap)
    }

    /// More dripping connections than the listener reads at once, and more arriving all the
    /// time: the oldest give way, so the browser's redirect is still read.
    #[tokio::test]
    async fn a_flood_of_dripping_connections_beyond_the_limit_does_not_block_the_callback() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secrets = random_secrets().unwrap();
        let state = secrets.state.clone();
        let flood = tokio::spawn(async move {
            let mut open = Vec::new();
            loop {
                if let Ok(mut s) = TcpStream::connect(addr).await {
                    let _ = s.write_all(b"G").await;
                    open.push(s);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        // The flood has filled every slot before the browser arrives.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let browser = tokio::spawn(browser_redirect(addr, state));
        let got = callback_within(&listener, &secrets, Duration::from_secs(5))
            .await
            .expect("the real callback is served during the flood");
        assert_eq!(got, "the-code");
        assert!(browser.await.unwrap().contains("Signed in"));
        flood.abort();
    }

    /// The request head has one deadline for the whole request: a client that drips a byte
    /// every 50 ms (each read succeeding) is cut off when the deadline passes.
    #[tokio::test]
    async fn a_request_head_must_arrive_within_one_deadline() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dripper = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for b in b"GET /callback?state=x".iter().cycle() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let t0 = std::time::Instant::now();
        let got = read_target(&mut stream, Duration::from_millis(500)).await;
        assert_eq!(got, Err(ReadError::Timeout));
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        dripper.abort();
    }

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

    #[test]
    fn failure_page_escapes_html() {
        let p = page_failed("<script>x</script>");
        assert!(!p.contains("<script>"));
    }
}
