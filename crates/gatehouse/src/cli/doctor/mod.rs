//! `gatehouse doctor`: checks a whole installation, step by step, and says how to fix each
//! failing step.
//!
//! The token checks read the token's claims **without verifying them** (a broken token is what
//! doctor is for); every verdict about the token comes from gatehouse (`/v1/whoami`) and from
//! the kube-apiserver (`SelfSubjectReview`), which do verify it. The token itself is never
//! printed.
//!
//! - [`report`]: the steps' verdicts and how the report is printed.
//! - [`server`]: gatehouse's own checks (`/readyz?verbose`) and the rights each one needs.
//! - [`idp`]: the identity provider: discovery, keys, the clients and parameters.
//! - [`token`]: the token's claims, and what gatehouse and the kube-apiserver make of it.
//! - This file: the arguments, and the steps in order ([`run`]).

pub mod idp;
pub mod report;
pub mod server;
pub mod token;

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use gatehouse_core::wire::{PublicConfig, WhoAmI};
use serde::Deserialize as _;
use serde_json::Value;

use crate::cli::cache::Cache;
use crate::cli::error::CliError;
use crate::cli::{Common, Output, process_env, read_ca, resolve_server, runtime};

use self::idp::check_idp;
use self::report::{Report, chain, connect_fix, print};
use self::server::check_server_checks;
use self::token::{check_review, check_token_claims, check_whoami};

pub use report::{Step, Verdict};

/// `gatehouse doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The gatehouse server URL (default: the server signed in to last).
    #[arg(long, env = "GATEHOUSE_SERVER")]
    pub server: Option<String>,
    /// PEM file with the CA certificate(s) of the server and the identity provider.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Check this token (a file holding it) instead of the cached one.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The kube-apiserver, to check what it makes of the token directly.
    #[arg(long, value_name = "URL")]
    pub apiserver: Option<String>,
    /// PEM file with the kube-apiserver's CA.
    #[arg(long, value_name = "FILE", requires = "apiserver")]
    pub apiserver_certificate_authority: Option<PathBuf>,
    /// Output format (text or json).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub common: Common,
}

/// Runs doctor. Exit status: failure when any step fails.
pub fn run(args: DoctorArgs) -> Result<bool, CliError> {
    let cache = Cache::open(args.common.token_cache, &process_env)?;
    let server = resolve_server(args.server.clone(), &cache, &args.common, false)?;
    let (ca_pem, ca_path) = read_ca(args.certificate_authority.as_ref())?;
    let entry_ca = cache
        .read()
        .ok()
        .and_then(|f| f.for_server(&server).and_then(|e| e.ca_pem.clone()));
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    CliError::io(format!("cannot read the token file {}", path.display()), e)
                })?
                .trim()
                .to_owned(),
        ),
        None => cache
            .read()
            .ok()
            .and_then(|f| f.for_server(&server).map(|e| e.token.clone())),
    };
    let net = crate::cli::net::Net::new(
        ca_pem.as_deref().or(entry_ca.as_deref()),
        ca_path.as_deref().unwrap_or(""),
    )?;
    let (api_pem, api_path) = read_ca(args.apiserver_certificate_authority.as_ref())?;
    let api_net = match &args.apiserver {
        Some(_) => Some(crate::cli::net::Net::new(
            api_pem.as_deref(),
            api_path.as_deref().unwrap_or(""),
        )?),
        None => None,
    };
    let started = Instant::now();
    let rt = runtime()?;
    let report = rt.block_on(check(
        &net,
        api_net.as_ref(),
        &server,
        args.apiserver.as_deref(),
        token.as_deref(),
    ));
    print(&report, &server, args.output, started.elapsed())?;
    Ok(!report.failed())
}

async fn check(
    net: &crate::cli::net::Net,
    api: Option<&crate::cli::net::Net>,
    server: &str,
    apiserver: Option<&str>,
    token: Option<&str>,
) -> Report {
    let mut r = Report { steps: Vec::new() };
    let http = net.http();

    // 1. The server, and its TLS.
    let healthz = format!("{server}/healthz");
    match http.get(&healthz).send().await {
        Ok(resp) if resp.status().is_success() => r.pass(
            "server reachable",
            format!(
                "{healthz} answered {}{}",
                resp.status().as_u16(),
                if server.starts_with("https") {
                    " over verified TLS"
                } else {
                    " (plain HTTP)"
                }
            ),
        ),
        Ok(resp) => r.fail(
            "server reachable",
            format!("{healthz} answered {}", resp.status()),
            "is this a gatehouse server? Check the URL",
        ),
        Err(e) => {
            let e = chain(&e);
            r.fail(
                "server reachable",
                format!("cannot connect to {server}: {e}"),
                connect_fix(&e, "the gatehouse server"),
            );
            return r;
        }
    }

    // 1b. Readiness: gatehouse's own dependencies (IdP keys, the ServiceAccount watch and its
    // RBAC), which otherwise show only as refused tokens or missing mappings further down.
    let readyz = format!("{server}/readyz");
    match http.get(&readyz).send().await {
        Ok(resp) if resp.status().is_success() => {
            r.pass("server ready", format!("{readyz} answered 200"));
        }
        Ok(resp) => {
            let status = resp.status();
            let reasons = resp
                .text()
                .await
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim_start_matches("not ready: ").to_owned())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            r.fail(
                "server ready",
                format!("{readyz} answered {status}: {reasons}"),
                "fix what gatehouse names: for the IdP, `oidc.issuerUrl`, `oidc.caFile` and the network; for ServiceAccounts, gatehouse's RBAC (list and watch serviceaccounts in the mapped namespaces, docs/configuration.md \"Kubernetes connection\") and the kube-apiserver; gatehouse's log has the details",
            );
        }
        Err(e) => r.fail(
            "server ready",
            format!("cannot read {readyz}: {}", chain(&e)),
            "check the server URL",
        ),
    }

    // 1c. gatehouse's named checks (`/readyz?verbose`): one step each, so a missing right of
    // gatehouse's own says what to grant, instead of showing up as a user's problem below.
    let checks = check_server_checks(&mut r, http, server).await;

    // 2. Public config.
    let config: PublicConfig = match http.get(format!("{server}/v1/config")).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<Value>().await {
            Ok(v) => match PublicConfig::deserialize(&v) {
                Ok(c) => c,
                Err(e) => {
                    r.fail(
                        "public config",
                        format!("/v1/config is not gatehouse's public config: {e}"),
                        "is this a gatehouse server? Check the URL",
                    );
                    return r;
                }
            },
            Err(e) => {
                r.fail(
                    "public config",
                    format!("/v1/config is not JSON: {e}"),
                    "is this a gatehouse server? Check the URL",
                );
                return r;
            }
        },
        Ok(resp) => {
            r.fail(
                "public config",
                format!("/v1/config answered {}", resp.status()),
                "is this a gatehouse server? Check the URL",
            );
            return r;
        }
        Err(e) => {
            r.fail("public config", chain(&e), "check the server URL");
            return r;
        }
    };
    match &config.oidc {
        Some(o) => r.pass(
            "public config",
            format!(
                "issuer {}, clients {} / {}, {} static parameter(s)",
                o.issuer_url,
                o.client_id.as_deref().unwrap_or("?"),
                o.cli_client_id,
                o.additional_parameters.len()
            ),
        ),
        None => r.pass(
            "public config",
            format!(
                "no OIDC configured; admin {}",
                if config.admin_enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            ),
        ),
    }

    // 2b. The issuers of the AuthenticationConfiguration: gatehouse's own view of each (it
    // reaches them from where it runs, not from here).
    if !config.issuers.is_empty() {
        let describe = |i: &gatehouse_core::wire::PublicIssuer| {
            format!(
                "{} ({}, audiences {:?}, unmapped users: {})",
                i.display_name(),
                i.url,
                i.audiences,
                i.when_unmapped
            )
        };
        let missing: Vec<String> = config
            .issuers
            .iter()
            .filter(|i| !i.ready)
            .map(describe)
            .collect();
        if missing.is_empty() {
            r.pass(
                "issuers",
                format!(
                    "gatehouse has the keys of every issuer of the AuthenticationConfiguration: {}",
                    config
                        .issuers
                        .iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
        } else {
            r.fail(
                "issuers",
                format!("gatehouse has not loaded the discovery document and keys of {}", missing.join("; ")),
                "check issuer.url, discoveryURL and certificateAuthority of these issuers in the AuthenticationConfiguration, and that gatehouse can reach them; gatehouse's log says why",
            );
        }
    }

    // 3-6. The IdP.
    let mut client_ids: Vec<String> = Vec::new();
    let mut audiences: Vec<String> = Vec::new();
    if let Some(o) = &config.oidc {
        for id in [o.client_id.as_deref(), Some(o.cli_client_id.as_str())]
            .into_iter()
            .flatten()
        {
            if !client_ids.iter().any(|c| c == id) {
                client_ids.push(id.to_owned());
            }
        }
        audiences.clone_from(&o.audiences);
        check_idp(&mut r, http, o, config.public_url.as_deref()).await;
    }

    // 7. The token.
    let Some(token) = token else {
        for name in [
            "token issuer",
            "token audiences",
            "token expiry and clock",
            "gatehouse's view",
            "Kubernetes through gatehouse",
            "Kubernetes directly",
            "mapped ServiceAccounts",
        ] {
            r.skip(
                name,
                "no token: sign in first (gatehouse login --sso SERVER), or pass --token-file",
            );
        }
        return r;
    };
    // Which issuer the token is from decides what it is checked against.
    let iss = gatehouse_core::token::unverified_claims(token)
        .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_owned));
    let file_issuer = iss
        .as_deref()
        .and_then(|iss| config.issuers.iter().find(|i| i.url == iss));
    match (&iss, file_issuer) {
        (Some(_), Some(i)) => r.pass(
            "token issuer",
            format!(
                "{} ({}), an issuer of the AuthenticationConfiguration: its claim mappings make the user; unmapped users: {}",
                i.display_name(),
                i.url,
                i.when_unmapped
            ),
        ),
        (Some(iss), None) if config.oidc.as_ref().is_some_and(|o| &o.issuer_url == iss) => {
            r.pass("token issuer", format!("{iss}, gatehouse's OIDC issuer (oidc.issuerUrl)"));
        }
        (Some(iss), None) if config.fall_through => r.pass(
            "token issuer",
            format!("{iss}: not an issuer gatehouse verifies; the kube-apiserver judges the token (fall-through)"),
        ),
        (Some(iss), None) => r.fail(
            "token issuer",
            format!("{iss}: not an issuer gatehouse verifies, and fall-through is off, so gatehouse refuses the token"),
            "sign in with gatehouse's issuer (gatehouse login), or ask your platform team to add this issuer (oidc.issuerUrl, or the AuthenticationConfiguration) or to enable fall-through",
        ),
        (None, _) => r.skip("token issuer", "the token is not a JWT with an iss claim"),
    }
    match file_issuer {
        Some(i) => check_token_claims(&mut r, token, &[], &i.audiences),
        None => check_token_claims(&mut r, token, &client_ids, &audiences),
    }
    let who = check_whoami(&mut r, http, server, token).await;
    check_review(
        &mut r,
        http,
        &format!("{server}/apis/authentication.k8s.io/v1/selfsubjectreviews"),
        token,
        "Kubernetes through gatehouse",
        "gatehouse forwarded the request",
    )
    .await;
    match (api, apiserver) {
        (Some(api), Some(url)) => check_review(&mut r, api.http(), &format!("{}/apis/authentication.k8s.io/v1/selfsubjectreviews", url.trim_end_matches('/')), token, "Kubernetes directly", "the kube-apiserver").await,
        _ => r.skip("Kubernetes directly", "pass --apiserver URL (and --apiserver-certificate-authority) to check what the kube-apiserver itself makes of the token"),
    }
    match who {
        // gatehouse's index of ServiceAccounts is not current (not listed, its watch failing,
        // or gatehouse may not read them): what it says you map to says nothing about your
        // claims, so they are not blamed.
        Some(w) if !matches!(w, WhoAmI::Admin(_)) && checks.watch_unhealthy() => {
            r.skip(
                "mapped ServiceAccounts",
                format!(
                    "not judged: gatehouse's ServiceAccount watch is not healthy ({}), so which ServiceAccounts your claims map to cannot be told; fix the failing gatehouse steps above first",
                    checks.watch_failures().join("; ")
                ),
            );
        }
        Some(w) => {
            let sas = w.service_accounts();
            let impersonated = match &w {
                WhoAmI::Oidc(u) => match &u.kubernetes {
                    gatehouse_core::wire::KubernetesAccess::Impersonation(
                        gatehouse_core::wire::Impersonation::User { username, .. },
                    ) => username.clone(),
                    _ => None,
                },
                _ => None,
            };
            if let (true, Some(user)) = (sas.is_empty(), impersonated) {
                r.pass(
                    "mapped ServiceAccounts",
                    format!("none: gatehouse impersonates you as {user}, the user the claim mappings make (whenUnmapped: impersonate)"),
                );
            } else if sas.is_empty() {
                let how = if config.fall_through {
                    "none: requests reach Kubernetes with your own token (fall-through)"
                } else {
                    "none, and fall-through is off: Kubernetes requests will be refused"
                };
                if config.fall_through || matches!(w, WhoAmI::Admin(_)) {
                    r.pass("mapped ServiceAccounts", how);
                } else {
                    r.fail("mapped ServiceAccounts", how, "annotate a ServiceAccount with one of your claims (see docs/serviceaccount-mapping.md), or enable fall-through");
                }
            } else {
                r.pass("mapped ServiceAccounts", sas.join(", "));
            }
        }
        None => r.skip(
            "mapped ServiceAccounts",
            "gatehouse did not accept the token",
        ),
    }
    r
}
