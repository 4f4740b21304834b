//! The steps every sign-in shares: the [`Target`] and the command that signs in again the same
//! way, the server's `/v1/config` checked against its pin, the sign-in parameters and scopes,
//! and the end of an OIDC sign-in (or refresh): the ID token verified, the entry built.
//!
//! # Security
//! - `state`, `nonce` and the PKCE verifier come from core's `FlowSecrets` (96 bytes from the
//!   OS's CSPRNG via aws-lc-rs); the challenge is S256; `state` and `nonce` are compared in
//!   constant time.
//! - Before the IdP is contacted, the server's `/v1/config` is checked against what it said at
//!   the first sign-in ([`crate::cli::pin`]): a change is asked about, or refused without a
//!   terminal, and the audiences the scopes and parameters add are shown.
//! - The ID token is verified (signature against the IdP's JWKS, `iss`, `aud`, `azp`, expiry,
//!   `nonce`) before it is stored.
//! - User parameters are checked against the server's list and patterns before the browser is
//!   opened; reserved protocol names are refused by core's `authorization_url`.

use std::collections::BTreeMap;

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use gatehouse_core::authorize::{
    FlowSecrets, MAX_PARAMETER_LEN, ParameterError, ParameterRule, vet_user_parameters,
};
use gatehouse_core::jwt::Verified;
use gatehouse_core::protocol::{Nonce, RefreshToken};
use gatehouse_core::wire::UserParameter;
use secrecy::ExposeSecret as _;

use crate::cli::cache::{Entry, Kind, TokenType};
use crate::cli::error::CliError;
use crate::cli::net::{self, Discovery, IDP, Net, PublicOidc, TokenResponse};
use crate::cli::pin::ServerPin;

use super::SignIn;

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
    let rules: BTreeMap<String, Rule<'_>> = oidc
        .user_parameters
        .iter()
        .map(|(k, v)| (k.clone(), Rule(v)))
        .collect();
    vet_user_parameters(&oidc.additional_parameters, &rules, user.iter().cloned()).map_err(|e| {
        let (name, reason, hint) = match e {
            ParameterError::Reserved { name } => (
                name,
                "is a reserved protocol parameter and cannot be set".to_owned(),
                allowed(),
            ),
            ParameterError::NotAllowed { name } => (
                name,
                "is not a parameter the server lets users set".to_owned(),
                allowed(),
            ),
            ParameterError::Repeated { name } => (
                name,
                "is given more than once, or is one the server sets itself".to_owned(),
                allowed(),
            ),
            ParameterError::TooLong { name } => (
                name,
                format!("the value is longer than {MAX_PARAMETER_LEN} bytes"),
                allowed(),
            ),
            ParameterError::Mismatch { name, pattern } => {
                let value = user
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let reason =
                    format!("the value {value:?} does not match the server's pattern {pattern}");
                (name, reason, allowed())
            }
            ParameterError::BadPattern { name, reason } => (
                name,
                format!("the server's pattern does not compile here: {reason}"),
                String::new(),
            ),
        };
        CliError::Parameter { name, reason, hint }
    })
}

/// The server's pattern for one parameter, compiled here (anchored: the whole value).
struct Rule<'a>(&'a UserParameter);

impl ParameterRule for Rule<'_> {
    fn pattern(&self) -> Option<&str> {
        self.0.pattern.as_deref()
    }

    fn accepts(&self, value: &str) -> Result<bool, String> {
        match &self.0.pattern {
            None => Ok(true),
            Some(p) => regex::Regex::new(&format!("^(?:{p})$"))
                .map(|re| re.is_match(value))
                .map_err(|e| e.to_string()),
        }
    }
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

pub(super) fn random_secrets() -> Result<FlowSecrets, CliError> {
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
    pub refresh_token: Option<RefreshToken>,
    pub verified: Verified,
    pub expires_at: i64,
}

/// Says who signed in, and builds the sign-in result of an OIDC sign-in.
pub(super) fn oidc_entry(
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
    nonce: Option<&Nonce>,
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
        refresh_token: tokens.refresh_token.clone().map(RefreshToken::from),
        verified,
        expires_at,
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use gatehouse_core::wire::UserParameter;

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
}
