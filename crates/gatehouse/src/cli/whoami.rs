//! `gatehouse whoami`: the server's /v1/whoami and what the cached token says.

use clap::Args;
use gatehouse_core::wire::{Impersonation, KubernetesAccess, WhoAmI};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::cli::cache::Cache;
use crate::cli::error::CliError;
use crate::cli::net::{Net, SERVER};
use crate::cli::output::print_data;
use crate::cli::token::current;
use crate::cli::{Common, Output, process_env, resolve_server, rfc3339, runtime};
use gatehouse_core::token::unverified_claims;

/// `gatehouse whoami`.
#[derive(Args, Debug)]
pub struct WhoamiArgs {
    /// The gatehouse server URL (default: the server signed in to last).
    #[arg(env = "GATEHOUSE_SERVER")]
    pub server: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `gatehouse whoami`.
pub fn run(args: WhoamiArgs) -> Result<(), CliError> {
    whoami(args.server, args.output, &args.common)
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
