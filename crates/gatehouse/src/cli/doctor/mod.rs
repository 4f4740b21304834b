//! `gatehouse doctor`: checks a whole installation, step by step, and says how to fix each
//! failing step.
//!
//! The token checks read the token's claims **without verifying them** (a broken token is what
//! doctor is for); every verdict about the token comes from gatehouse (`/v1/whoami`) and from
//! the kube-apiserver (`SelfSubjectReview`), which do verify it. The token itself is never
//! printed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Args;
use gatehouse_core::wire::{PublicConfig, PublicOidc, WhoAmI};
use serde::{Deserialize as _, Serialize};
use serde_json::{Value, json};

use crate::cli::cache::Cache;
use crate::cli::error::CliError;
use crate::cli::{Common, Output, process_env, read_ca, resolve_server, runtime};

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

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Broken; `fix` says what to change.
    Fail,
    /// Not checked, and why is in `detail`.
    Skip,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was checked.
    pub name: Cow<'static, str>,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to change, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

struct Report {
    steps: Vec<Step>,
}

impl Report {
    fn pass(&mut self, name: impl Into<Cow<'static, str>>, detail: impl Into<String>) {
        self.steps.push(Step {
            name: name.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        });
    }
    fn fail(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.steps.push(Step {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
    fn skip(&mut self, name: impl Into<Cow<'static, str>>, detail: impl Into<String>) {
        self.steps.push(Step {
            name: name.into(),
            verdict: Verdict::Skip,
            detail: detail.into(),
            fix: None,
        });
    }
    fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.verdict == Verdict::Fail)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

fn connect_fix(e: &str, what: &str) -> String {
    if e.contains("certificate") || e.contains("UnknownIssuer") || e.contains("invalid peer") {
        format!(
            "{what}'s TLS certificate is not trusted: pass its CA with --certificate-authority FILE (or install it in the system trust store)"
        )
    } else {
        format!("check that {what} runs and that the URL is right (port, scheme)")
    }
}

/// Text from an error page, shortened: tags removed, whitespace collapsed.
fn page_text(body: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let text = words.join(" ");
    text.chars().take(200).collect()
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

fn print(report: &Report, server: &str, output: Output, took: Duration) -> Result<(), CliError> {
    use std::fmt::Write as _;
    let ok = !report.failed();
    let v =
        json!({"server": server, "ok": ok, "steps": report.steps, "seconds": took.as_secs_f64()});
    crate::cli::output::print_data(output, &v, || {
        let mut out = format!("gatehouse doctor {server}\n");
        let width = report.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &report.steps {
            let mark = match s.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            let _ = writeln!(out, "  {mark}  {:width$}  {}", s.name, s.detail);
            if let Some(fix) = &s.fix {
                let _ = writeln!(out, "        {:width$}  fix: {fix}", "");
            }
        }
        let failed = report
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Fail)
            .count();
        if ok {
            let _ = write!(out, "all checks passed ({:.1} s)", took.as_secs_f64());
        } else {
            let _ = write!(
                out,
                "{failed} check(s) failed ({:.1} s)",
                took.as_secs_f64()
            );
        }
        out
    })
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
    check_token_claims(&mut r, token, &client_ids, &audiences);
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
            if sas.is_empty() {
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

/// gatehouse's named checks as `/readyz?verbose` lists them: name and failure reason.
#[derive(Debug, Default)]
struct ServerChecks {
    checks: Vec<(String, Option<String>)>,
}

impl ServerChecks {
    /// The checks that say the ServiceAccount index cannot be trusted, as `name: reason`.
    fn watch_failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(name, _)| {
                matches!(
                    name.as_str(),
                    "serviceaccount-watch-synced"
                        | "serviceaccount-watch-fresh"
                        | "rbac/list-watch-serviceaccounts"
                )
            })
            .filter_map(|(name, failure)| failure.as_ref().map(|f| format!("{name}: {f}")))
            .collect()
    }

    fn watch_unhealthy(&self) -> bool {
        !self.watch_failures().is_empty()
    }
}

/// Reads `/readyz?verbose` lines (`[+]name ok`, `[-]name failed: reason`); `None` when there is
/// none (a gatehouse from before named checks answers as plain `/readyz` does).
fn parse_verbose(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let checks: Vec<(String, Option<String>)> = text
        .lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("[+]") {
                let name = rest.strip_suffix(" ok").unwrap_or(rest);
                Some((name.trim().to_owned(), None))
            } else if let Some(rest) = line.strip_prefix("[-]") {
                let (name, reason) = rest.split_once(" failed: ").unwrap_or((rest, "failed"));
                Some((name.trim().to_owned(), Some(reason.trim().to_owned())))
            } else {
                None
            }
        })
        .collect();
    (!checks.is_empty()).then_some(checks)
}

/// How to grant a right to gatehouse's own identity, cluster-wide or in each mapped namespace.
fn grant(cluster_wide: bool, verbs: &str, resource: &str, role: &str) -> String {
    if cluster_wide {
        format!(
            "install the Helm chart with rbac.create: true (its ClusterRole and ClusterRoleBinding grant it), or grant it yourself: kubectl create clusterrole {role} --verb={verbs} --resource={resource} && kubectl create clusterrolebinding {role} --clusterrole={role} --serviceaccount=NAMESPACE:NAME (gatehouse's ServiceAccount; for a kubeconfig identity, --user=NAME)"
        )
    } else {
        format!(
            "install the Helm chart with rbac.create: true (with rbac.serviceAccountScope: namespaces it makes a Role and RoleBinding in each namespace of serviceAccounts.namespaces and globalNamespaces), or grant it yourself in each of them: kubectl create role {role} -n NS --verb={verbs} --resource={resource} && kubectl create rolebinding {role} -n NS --role={role} --serviceaccount=NAMESPACE:NAME; gatehouse's log names the namespaces where it is missing"
        )
    }
}

/// The doctor step of one named server check: its name, and the fix when it fails with
/// `reason`.
fn server_check_step(name: &str, reason: &str) -> (Cow<'static, str>, String) {
    let cluster_wide = reason.contains("cluster-wide");
    let unchecked = reason.starts_with("could not be checked");
    let (step, fix): (&'static str, String) = match name {
        "oidc-keys" => (
            "gatehouse has the IdP's keys",
            "gatehouse cannot load the identity provider's discovery document and signing keys: check oidc.issuerUrl, oidc.caFile and that gatehouse reaches the IdP; gatehouse's log names the error".to_owned(),
        ),
        "serviceaccount-watch-synced" => (
            "gatehouse listed ServiceAccounts",
            "gatehouse has not listed ServiceAccounts, so it maps nobody: grant its identity list and watch on serviceaccounts (see the rights steps) and check that it reaches the kube-apiserver; gatehouse's log names the error".to_owned(),
        ),
        "serviceaccount-watch-fresh" => (
            "gatehouse's ServiceAccount watch is current",
            "the ServiceAccount watch has kept failing for longer than serviceAccounts.maxStaleness, so mapped requests get 503 until it recovers: check gatehouse's RBAC on serviceaccounts and its connection to the kube-apiserver; gatehouse's log names the error".to_owned(),
        ),
        "rbac/list-watch-serviceaccounts" => (
            "gatehouse may list and watch serviceaccounts",
            format!(
                "gatehouse's ServiceAccount cannot list and watch serviceaccounts {}, so it reads no mapping from them: {}",
                if cluster_wide { "cluster-wide" } else { "in every mapped namespace" },
                grant(cluster_wide, "get,list,watch", "serviceaccounts", "gatehouse-read-serviceaccounts")
            ),
        ),
        "rbac/impersonate-serviceaccounts" => (
            "gatehouse may impersonate serviceaccounts",
            format!(
                "gatehouse's ServiceAccount cannot impersonate serviceaccounts {}, so Kubernetes refuses every request of a mapped user: {}",
                if cluster_wide { "cluster-wide" } else { "in every mapped namespace" },
                grant(cluster_wide, "impersonate", "serviceaccounts", "gatehouse-impersonate-serviceaccounts")
            ),
        ),
        "rbac/create-subjectaccessreviews" => (
            "gatehouse may create subjectaccessreviews",
            format!(
                "gatehouse's ServiceAccount cannot create subjectaccessreviews, so it cannot choose among several mapped ServiceAccounts: {}",
                grant(true, "create", "subjectaccessreviews.authorization.k8s.io", "gatehouse-review")
            ),
        ),
        "rbac/impersonate-userextras" => (
            "gatehouse may impersonate user extras",
            "gatehouse's ServiceAccount cannot impersonate the user extras that name the real user, so Kubernetes refuses every impersonated request (mapped users and the admin): install the Helm chart with rbac.create: true, or grant a ClusterRole with apiGroups [authentication.k8s.io], resources [userextras/gatehouse.dev/subject, userextras/gatehouse.dev/username, userextras/gatehouse.dev/issuer], verbs [impersonate] (charts/gatehouse/templates/rbac.yaml)".to_owned(),
        ),
        "rbac/impersonate-admin" => (
            "gatehouse may impersonate the admin",
            "gatehouse's ServiceAccount cannot impersonate the user or groups of admin.impersonate, so Kubernetes refuses the admin's requests: install the Helm chart with rbac.create: true and admin.enabled: true (it grants impersonate on exactly those names), or grant a ClusterRole with resources [users] and [groups], verbs [impersonate] and those resourceNames".to_owned(),
        ),
        _ => (
            "",
            "see gatehouse's log for this check".to_owned(),
        ),
    };
    let step: Cow<'static, str> = if step.is_empty() {
        Cow::Owned(format!("gatehouse check {name}"))
    } else {
        Cow::Borrowed(step)
    };
    let fix = if unchecked {
        "gatehouse could not ask the kube-apiserver whether it has this right (SelfSubjectAccessReview): check that gatehouse reaches the kube-apiserver with its own credentials; gatehouse's log names the error".to_owned()
    } else {
        fix
    };
    (step, fix)
}

/// One step per named check of `/readyz?verbose`.
async fn check_server_checks(r: &mut Report, http: &reqwest::Client, server: &str) -> ServerChecks {
    let url = format!("{server}/readyz?verbose");
    let text = match http.get(&url).send().await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(e) => {
            r.fail(
                "gatehouse's own checks",
                format!("cannot read {url}: {}", chain(&e)),
                "check the server URL",
            );
            return ServerChecks::default();
        }
    };
    let Some(checks) = parse_verbose(&text) else {
        r.skip(
            "gatehouse's own checks",
            format!("{url} lists no named checks (a gatehouse from before they were added): its own rights are not checked"),
        );
        return ServerChecks::default();
    };
    for (name, failure) in &checks {
        let (step, fix) = server_check_step(name, failure.as_deref().unwrap_or_default());
        match failure {
            None => r.pass(step, format!("{name} ok")),
            Some(reason) => r.fail(step, format!("{name}: {reason}"), fix),
        }
    }
    ServerChecks { checks }
}

async fn check_idp(
    r: &mut Report,
    http: &reqwest::Client,
    o: &PublicOidc,
    public_url: Option<&str>,
) {
    let issuer = o.issuer_url.as_str();
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let discovery: Value = match http.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json().await {
            Ok(v) => v,
            Err(e) => {
                r.fail(
                    "IdP discovery",
                    format!("{url} is not JSON: {e}"),
                    "oidc.issuerUrl must be the issuer itself (without /.well-known/...)",
                );
                return;
            }
        },
        Ok(resp) => {
            r.fail(
                "IdP discovery",
                format!("{url} answered {}", resp.status()),
                "oidc.issuerUrl must be the issuer's exact URL",
            );
            return;
        }
        Err(e) => {
            let e = chain(&e);
            r.fail(
                "IdP discovery",
                format!("cannot reach {url}: {e}"),
                connect_fix(&e, "the identity provider"),
            );
            return;
        }
    };
    if discovery["issuer"].as_str() != Some(issuer) {
        r.fail(
            "IdP discovery",
            format!(
                "the IdP calls itself {:?}, gatehouse is configured with {issuer:?}",
                discovery["issuer"]
            ),
            "set oidc.issuerUrl to exactly the IdP's issuer value",
        );
        return;
    }
    r.pass(
        "IdP discovery",
        format!(
            "{issuer} (authorization, token{} endpoints)",
            if discovery["device_authorization_endpoint"].is_string() {
                ", device"
            } else {
                ""
            }
        ),
    );
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap_or_default();
    match http.get(jwks_uri).send().await {
        Ok(resp) if resp.status().is_success() => {
            let keys: Value = resp.json().await.unwrap_or_default();
            let n = keys["keys"].as_array().map_or(0, Vec::len);
            if n > 0 {
                r.pass("IdP keys (JWKS)", format!("{n} key(s) at {jwks_uri}"));
            } else {
                r.fail(
                    "IdP keys (JWKS)",
                    format!("no keys at {jwks_uri}"),
                    "the IdP publishes no signing keys; check its configuration",
                );
            }
        }
        Ok(resp) => r.fail(
            "IdP keys (JWKS)",
            format!("{jwks_uri} answered {}", resp.status()),
            "check the IdP",
        ),
        Err(e) => r.fail(
            "IdP keys (JWKS)",
            chain(&e),
            "check that the IdP's jwks_uri is reachable from here and from gatehouse",
        ),
    }

    // Client IDs: an authorization request per client must not be an error.
    let Some(endpoint) = discovery["authorization_endpoint"].as_str() else {
        r.fail(
            "client IDs known to the IdP",
            "discovery has no authorization_endpoint",
            "check the IdP",
        );
        return;
    };
    let cli = o.cli_client_id.clone();
    let web = o.client_id.clone().unwrap_or_default();
    let mut probes: Vec<(String, String)> =
        vec![(cli.clone(), "http://127.0.0.1:8000/callback".to_owned())];
    if web != cli {
        let redirect = public_url.map_or_else(
            || "http://127.0.0.1:8000/callback".to_owned(),
            |p| format!("{}/auth/callback", p.trim_end_matches('/')),
        );
        probes.push((web, redirect));
    }
    // Probe each client with the static parameters (an IdP may only validate the client after
    // a parameter such as Dex's connector_id picked the login page); tell a client problem from
    // a parameter problem by what the IdP says, and by a probe without the parameters.
    let statics = &o.additional_parameters;
    let listed: Vec<String> = statics.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut client_errors = Vec::new();
    let mut param_errors = Vec::new();
    for (client, redirect) in &probes {
        let Err(with) = authorize_probe(http, endpoint, client, redirect, statics).await else {
            continue;
        };
        let without = if statics.is_empty() {
            Err(with.clone())
        } else {
            authorize_probe(http, endpoint, client, redirect, &BTreeMap::new()).await
        };
        if with.to_lowercase().contains("client") || without.is_err() {
            client_errors.push(format!("{client}: {}", without.err().unwrap_or(with)));
        } else {
            param_errors.push(format!("{client}: {with}"));
        }
    }
    let names: Vec<&str> = probes.iter().map(|p| p.0.as_str()).collect();
    if !client_errors.is_empty() {
        r.fail("client IDs known to the IdP", client_errors.join("; "), "register the client at the IdP (with gatehouse's redirect URI), or fix oidc.clientId / oidc.cliClientId");
        r.skip(
            "static parameters accepted",
            "the client check failed first",
        );
        return;
    }
    r.pass("client IDs known to the IdP", names.join(", "));
    if statics.is_empty() {
        r.pass("static parameters accepted", "none configured");
    } else if param_errors.is_empty() {
        r.pass("static parameters accepted", listed.join(", "));
    } else {
        r.fail("static parameters accepted", format!("with {}: {}", listed.join(", "), param_errors.join("; ")), "the IdP refuses the authorization request once these parameters are added: fix or remove them in oidc.additionalParameters");
    }
}

/// Sends an authorization request without following redirects. An error page, or a redirect
/// carrying `error=`, is a failure.
async fn authorize_probe(
    http: &reqwest::Client,
    endpoint: &str,
    client: &str,
    redirect: &str,
    extra: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut url = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "openid")
            .append_pair("state", "gatehouse-doctor")
            .append_pair("nonce", "gatehouse-doctor")
            .append_pair(
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            )
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    // Follow the IdP's own redirects (a connector, a login page) up to a few hops; stop at a
    // page, or at a redirect that leaves the IdP (to the redirect URI).
    let idp_origin = url.origin();
    let mut next = url;
    for _ in 0..5 {
        let resp = http.get(next.clone()).send().await.map_err(|e| chain(&e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let Ok(loc) = next.join(&location) else {
                return Err(format!(
                    "the IdP redirected to an invalid location {location:?}"
                ));
            };
            let pairs: BTreeMap<String, String> = loc.query_pairs().into_owned().collect();
            if let Some(err) = pairs.get("error") {
                return Err(format!(
                    "the IdP redirected with error {err:?} {}",
                    pairs.get("error_description").cloned().unwrap_or_default()
                ));
            }
            if loc.origin() != idp_origin {
                return Ok(());
            }
            next = loc;
            continue;
        }
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        return Err(format!(
            "the IdP answered {}: {}",
            status.as_u16(),
            page_text(&body)
        ));
    }
    Ok(())
}

fn check_token_claims(r: &mut Report, token: &str, client_ids: &[String], audiences: &[String]) {
    let claims: Option<Value> = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(claims) = claims else {
        r.skip(
            "token audiences",
            "the token is not a JWT (an opaque token: only Kubernetes can judge it)",
        );
        r.skip("token expiry and clock", "the token is not a JWT");
        return;
    };
    let aud: Vec<String> = match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let azp = claims["azp"].as_str();
    let accepted: BTreeSet<&String> = client_ids.iter().chain(audiences).collect();
    let detail = format!(
        "aud {aud:?}{}",
        azp.map(|a| format!(", azp {a:?}")).unwrap_or_default()
    );
    if client_ids.is_empty() {
        r.pass(
            "token audiences",
            format!("{detail} (admin or non-OIDC server)"),
        );
    } else if !aud.iter().any(|a| accepted.contains(a)) {
        r.fail("token audiences", detail, format!("gatehouse accepts tokens for {:?}: sign in through gatehouse (gatehouse login --sso), or add the audience to oidc.audiences", accepted.iter().collect::<Vec<_>>()));
    } else if azp.is_some_and(|a| !client_ids.iter().any(|c| c == a)) {
        r.fail("token audiences", detail, format!("the token was requested by another client; gatehouse accepts azp {client_ids:?}: sign in through gatehouse"));
    } else {
        r.pass("token audiences", detail);
    }
    let now = crate::cli::net::unix_now();
    let exp = claims["exp"].as_i64();
    let iat = claims["iat"].as_i64();
    match (exp, iat) {
        (Some(exp), _) if exp <= now => r.fail("token expiry and clock", format!("expired {} s ago", now - exp), "sign in again: gatehouse login --sso SERVER"),
        (_, Some(iat)) if iat > now + 60 => r.fail("token expiry and clock", format!("issued {} s in the future: the clocks of this machine and the IdP disagree by more than the 60 s gatehouse allows", iat - now), "synchronise the clocks (NTP) of this machine, gatehouse and the IdP"),
        (Some(exp), _) => r.pass("token expiry and clock", format!("valid for {} more", humantime::format_duration(Duration::from_secs(u64::try_from(exp - now).unwrap_or(0))))),
        (None, _) => r.fail("token expiry and clock", "the token has no exp claim", "gatehouse refuses tokens without exp; check the IdP"),
    }
}

async fn check_whoami(
    r: &mut Report,
    http: &reqwest::Client,
    server: &str,
    token: &str,
) -> Option<WhoAmI> {
    let resp = match http
        .get(format!("{server}/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            r.fail("gatehouse's view", chain(&e), "check the server");
            return None;
        }
    };
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        // Whatever gatehouse accepted is judged by the steps after, so an answer this doctor
        // cannot read (a newer gatehouse's kind) is still a pass here.
        let who = WhoAmI::deserialize(&v).unwrap_or(WhoAmI::Unknown);
        r.pass(
            "gatehouse's view",
            format!(
                "{} as {}",
                who.authenticated_by().unwrap_or("?"),
                who.kubernetes_username().unwrap_or("(unknown)")
            ),
        );
        Some(who)
    } else {
        r.fail("gatehouse's view", format!("/v1/whoami answered {}: {}", status.as_u16(), v["message"].as_str().unwrap_or("")), "sign in again (gatehouse login --sso SERVER); if it persists, compare the token's issuer and audiences with gatehouse's oidc settings");
        None
    }
}

async fn check_review(
    r: &mut Report,
    http: &reqwest::Client,
    url: &str,
    token: &str,
    name: &'static str,
    who: &str,
) {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let resp = match http.post(url).bearer_auth(token).json(&body).send().await {
        Ok(resp) => resp,
        Err(e) => {
            let e = chain(&e);
            r.fail(
                name,
                format!("cannot reach {url}: {e}"),
                connect_fix(&e, who),
            );
            return;
        }
    };
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        let u = &v["status"]["userInfo"];
        let groups: Vec<&str> = u["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        r.pass(
            name,
            format!(
                "{} (groups {})",
                u["username"].as_str().unwrap_or("?"),
                groups.join(", ")
            ),
        );
    } else if status.as_u16() == 401 {
        r.fail(name, format!("{who} answered 401: {}", v["message"].as_str().unwrap_or("Unauthorized")), "the kube-apiserver does not accept this token: its AuthenticationConfiguration must list the issuer, trust its CA, and name one of the token's audiences (audienceMatchPolicy: MatchAny for several); see docs/multi-audience.md");
    } else {
        let message = v["message"].as_str().unwrap_or("");
        let fix = if status.as_u16() == 403 && message.contains("cannot impersonate") {
            "gatehouse's own identity may not impersonate whom you map to: see the steps \"gatehouse may impersonate ...\" above for what to grant (charts/gatehouse/templates/rbac.yaml)"
        } else {
            "see the message; check gatehouse's RBAC (create selfsubjectreviews is allowed to every authenticated user by default)"
        };
        r.fail(
            name,
            format!("{who} answered {}: {message}", status.as_u16()),
            fix,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn verbose_lines_are_read_and_plain_answers_are_not_checks() {
        let text = "[+]oidc-keys ok\n[-]rbac/impersonate-serviceaccounts failed: gatehouse may not impersonate serviceaccounts cluster-wide\nreadyz check passed\n";
        assert_eq!(
            parse_verbose(text).unwrap(),
            [
                ("oidc-keys".to_owned(), None),
                (
                    "rbac/impersonate-serviceaccounts".to_owned(),
                    Some("gatehouse may not impersonate serviceaccounts cluster-wide".to_owned())
                ),
            ]
        );
        // A gatehouse without named checks answers `?verbose` as plain /readyz.
        assert!(parse_verbose("ok\n").is_none());
        assert!(parse_verbose("not ready: OIDC issuer x: y\n").is_none());
    }

    #[test]
    fn each_right_gets_its_step_and_what_to_grant() {
        let (step, fix) = server_check_step(
            "rbac/list-watch-serviceaccounts",
            "gatehouse may not list and watch serviceaccounts cluster-wide",
        );
        assert_eq!(step, "gatehouse may list and watch serviceaccounts");
        assert!(
            fix.contains("cannot list and watch serviceaccounts cluster-wide")
                && fix.contains("ClusterRole")
                && fix.contains("--verb=get,list,watch --resource=serviceaccounts"),
            "{fix}"
        );
        let (_, fix) = server_check_step(
            "rbac/impersonate-serviceaccounts",
            "gatehouse may not impersonate serviceaccounts in every mapped namespace",
        );
        assert!(
            fix.contains("in every mapped namespace")
                && fix.contains("kubectl create role")
                && fix.contains("--verb=impersonate"),
            "{fix}"
        );
        let (_, fix) = server_check_step(
            "rbac/impersonate-admin",
            gatehouse_server::health::UNCHECKED,
        );
        assert!(fix.contains("could not ask the kube-apiserver"), "{fix}");
        let (step, _) = server_check_step("something-new", "x");
        assert_eq!(step, "gatehouse check something-new");
        // Every known check has a step of its own.
        let mut names = BTreeSet::new();
        for name in [
            "oidc-keys",
            "serviceaccount-watch-synced",
            "serviceaccount-watch-fresh",
            "rbac/list-watch-serviceaccounts",
            "rbac/impersonate-serviceaccounts",
            "rbac/create-subjectaccessreviews",
            "rbac/impersonate-userextras",
            "rbac/impersonate-admin",
        ] {
            let (step, _) = server_check_step(name, "r");
            assert!(!step.starts_with("gatehouse check "), "{name}");
            names.insert(step);
        }
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn an_unhealthy_watch_is_told_from_other_failures() {
        let checks = ServerChecks {
            checks: vec![
                ("oidc-keys".into(), None),
                ("rbac/create-subjectaccessreviews".into(), Some("x".into())),
            ],
        };
        assert!(!checks.watch_unhealthy());
        let checks = ServerChecks {
            checks: vec![(
                "rbac/list-watch-serviceaccounts".into(),
                Some("gatehouse may not list".into()),
            )],
        };
        assert!(checks.watch_unhealthy());
        assert_eq!(
            checks.watch_failures(),
            ["rbac/list-watch-serviceaccounts: gatehouse may not list"]
        );
    }
}
