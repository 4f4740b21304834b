//! `gatehouse login --kubeconfig`: take the credential of a kubeconfig context (token, token
//! file or exec plugin) and sign in to gatehouse with it.
//!
//! # Security
//! - `login --kubeconfig` sends a kubeconfig credential to the gatehouse server. It never
//!   picks the current context silently (that credential may belong to another cluster): it
//!   needs `--context`, or, on a terminal, the user's yes to the current context (its name and
//!   cluster are shown). The renewal command always names the context.

use std::collections::BTreeMap;
use std::path::Path;

use gatehouse_core::wire::WhoAmI;
use serde_json::{Value, json};

use crate::cli::cache::{Entry, Kind};
use crate::cli::error::CliError;
use crate::cli::kubeconfig::{kubeconfig_paths, read_yaml};
use crate::cli::login::{SignIn, Target};
use crate::cli::net::{self, Net, SERVER};

/// A credential taken from a kubeconfig context.
struct Credential {
    token: String,
    expires_at: Option<i64>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

fn find_named<'a>(docs: &'a [Value], key: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .filter_map(|d| d.get(key).and_then(Value::as_array))
        .flatten()
        .find(|x| x.get("name").and_then(Value::as_str) == Some(name))
}

/// The context whose credential `login --kubeconfig` sends to `server`: the one given, else,
/// on a terminal, the current context once the user confirms it; without a terminal a missing
/// `--context` is an error (the current context's credential may belong to another cluster,
/// and would be sent to a server that did not need it).
fn pick_context(
    docs: &[Value],
    given: Option<&str>,
    server: &str,
    ask: &mut dyn FnMut(&str) -> Option<bool>,
) -> Result<String, CliError> {
    if let Some(c) = given {
        return Ok(c.to_owned());
    }
    let current = docs
        .iter()
        .find_map(|d| d.get("current-context").and_then(Value::as_str))
        .filter(|c| !c.is_empty());
    let Some(current) = current else {
        return Err(CliError::Usage {
            reason:
                "login --kubeconfig needs the context whose credential to use, and none was given"
                    .to_owned(),
            hint: "pick a context with --context NAME (see `kubectl config get-contexts`)"
                .to_owned(),
        });
    };
    let cluster_server = find_named(docs, "contexts", current)
        .and_then(|c| c.pointer("/context/cluster"))
        .and_then(Value::as_str)
        .and_then(|cl| find_named(docs, "clusters", cl))
        .and_then(|c| c.pointer("/cluster/server"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match ask(&format!(
        "No --context given: send the credential of the current context {current:?} (cluster {cluster_server}) to {server}?"
    )) {
        Some(true) => Ok(current.to_owned()),
        Some(false) => Err(CliError::Usage {
            reason: "the current context's credential was not sent".to_owned(),
            hint: "pick a context with --context NAME (see `kubectl config get-contexts`)"
                .to_owned(),
        }),
        None => Err(CliError::Usage {
            reason: format!(
                "login --kubeconfig without --context would send the credential of the current context {current:?} (cluster {cluster_server}) to {server}; without a terminal to confirm, nothing was sent"
            ),
            hint: format!(
                "name the context explicitly: --context {} (see `kubectl config get-contexts`)",
                crate::cli::login::shell_quote(current)
            ),
        }),
    }
}

/// The credential of a kubeconfig context, and the context's name.
fn kubeconfig_credential(
    file: Option<&Path>,
    context: Option<&str>,
    server: &str,
    ask: &mut dyn FnMut(&str) -> Option<bool>,
) -> Result<(Credential, String), CliError> {
    let paths = kubeconfig_paths(file)?;
    let mut docs = Vec::new();
    for p in &paths {
        if let Some(d) = read_yaml(p)? {
            docs.push(d);
        }
    }
    let usage = |reason: String| CliError::Usage {
        reason,
        hint: "pick a context with --context NAME (see `kubectl config get-contexts`)".to_owned(),
    };
    let context = pick_context(&docs, context, server, ask)?;
    let user_name = find_named(&docs, "contexts", &context)
        .and_then(|c| c.pointer("/context/user"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            usage(format!(
                "no context {context:?} with a user in the kubeconfig"
            ))
        })?;
    let user = find_named(&docs, "users", user_name)
        .and_then(|u| u.get("user"))
        .ok_or_else(|| usage(format!("no user {user_name:?} in the kubeconfig")))?;
    if let Some(t) = user.get("token").and_then(Value::as_str) {
        return Ok((
            Credential {
                token: t.to_owned(),
                expires_at: None,
            },
            context,
        ));
    }
    if let Some(f) = user.get("tokenFile").and_then(Value::as_str) {
        let t = std::fs::read_to_string(f)
            .map_err(|e| CliError::io(format!("cannot read the token file {f}"), e))?;
        return Ok((
            Credential {
                token: t.trim().to_owned(),
                expires_at: None,
            },
            context,
        ));
    }
    if let Some(exec) = user.get("exec") {
        return run_exec_plugin(exec, user_name).map(|c| (c, context));
    }
    Err(usage(format!(
        "user {user_name:?} has no token, tokenFile or exec plugin (client certificates cannot be used with gatehouse)"
    )))
}

fn run_exec_plugin(exec: &Value, user: &str) -> Result<Credential, CliError> {
    let command = exec
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Usage {
            reason: format!("the exec plugin of user {user:?} names no command"),
            hint: String::new(),
        })?;
    let args: Vec<&str> = exec
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let api_version = exec
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("client.authentication.k8s.io/v1");
    let mut cmd = std::process::Command::new(command);
    cmd.args(&args).env(
        "KUBERNETES_EXEC_INFO",
        json!({"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": false}})
            .to_string(),
    );
    for e in exec
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(n), Some(v)) = (
            e.get("name").and_then(Value::as_str),
            e.get("value").and_then(Value::as_str),
        ) {
            cmd.env(n, v);
        }
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| CliError::io(format!("cannot run the exec plugin {command:?}"), e))?;
    if !out.status.success() {
        return Err(CliError::Usage {
            reason: format!("the exec plugin {command:?} failed ({})", out.status),
            hint: "run kubectl with that context once to see the plugin's own message".to_owned(),
        });
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| CliError::Usage {
        reason: format!(
            "the exec plugin {command:?} printed no ExecCredential ({:?} error)",
            e.classify()
        ),
        hint: String::new(),
    })?;
    let token = v
        .pointer("/status/token")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Usage {
            reason: format!("the ExecCredential of {command:?} has no status.token"),
            hint: "client certificates cannot be used with gatehouse".to_owned(),
        })?;
    let expires_at = v
        .pointer("/status/expirationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    Ok(Credential {
        token: token.to_owned(),
        expires_at,
    })
}

/// `gatehouse login --kubeconfig`: the context's token, checked against the server's
/// `/v1/whoami` before it is cached.
pub async fn login_with_kubeconfig(
    net: &Net,
    target: &Target,
    file: Option<&Path>,
    context: Option<&str>,
) -> Result<SignIn, CliError> {
    let (cred, context) = kubeconfig_credential(
        file,
        context,
        &target.server,
        &mut crate::cli::files::confirm,
    )?;
    let url = format!("{}/v1/whoami", target.server);
    let who: WhoAmI = net
        .get_json(SERVER, &url, Some(&cred.token))
        .await
        .map_err(|e| {
            e.refusal_hint(
                "gatehouse does not accept this kubeconfig's token; check the context with --context",
            )
        })?;
    let now = net::unix_now();
    let expires_at = cred
        .expires_at
        .or_else(|| {
            gatehouse_core::token::unverified_claims(&cred.token)
                .and_then(|c| c.get("exp").and_then(Value::as_i64))
        })
        // A static token without a known expiry: re-check it once a day.
        .unwrap_or(now + 86_400);
    eprintln!(
        "Signed in to {} with the kubeconfig's credential ({}).",
        target.server,
        who.authenticated_by().unwrap_or("?")
    );
    let mut flow = "--kubeconfig".to_owned();
    if let Some(f) = file {
        flow.push_str(&format!(
            " --kubeconfig-file {}",
            crate::cli::login::shell_quote(&f.display().to_string())
        ));
    }
    // The context is always named in the renewal command, so it never depends on which
    // context is current later.
    flow.push_str(&format!(
        " --context {}",
        crate::cli::login::shell_quote(&context)
    ));
    let login_command = target.command(&flow);
    // gatehouse's username for a mapped or admin token; Kubernetes' for a fall-through one.
    let username = who.kubernetes_username().map(str::to_owned);
    let entry = Entry {
        server: target.server.clone(),
        issuer: None,
        client_id: None,
        parameters: BTreeMap::from([("context".to_owned(), context)]),
        kind: Kind::Kubeconfig,
        token: cred.token,
        refresh_token: None,
        expires_at,
        ca_pem: target.ca_pem.clone(),
        updated_at: now,
        login_command,
        token_type: crate::cli::cache::TokenType::IdToken,
    };
    Ok(SignIn {
        entry,
        pin: None,
        username,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn login_with_kubeconfig_without_context_needs_a_terminal_or_the_flag() {
        let docs = vec![json!({
            "current-context": "prod",
            "clusters": [{"name": "prod-cluster", "cluster": {"server": "https://prod:6443"}}],
            "contexts": [{"name": "prod", "context": {"cluster": "prod-cluster", "user": "admin"}}],
        })];
        let err = pick_context(&docs, None, "https://gh", &mut |_| None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"prod\"")
                && text.contains("https://prod:6443")
                && text.contains("https://gh"),
            "{text}"
        );
        assert!(
            err.hint().unwrap().contains("--context prod"),
            "{:?}",
            err.hint()
        );
        let mut asked = Vec::new();
        let got = pick_context(&docs, None, "https://gh", &mut |q| {
            asked.push(q.to_owned());
            Some(true)
        })
        .unwrap();
        assert_eq!(got, "prod");
        assert!(
            asked[0].contains("https://gh") && asked[0].contains("prod"),
            "{asked:?}"
        );
        assert!(pick_context(&docs, None, "https://gh", &mut |_| Some(false)).is_err());
        // An explicit context needs no question.
        let got = pick_context(&docs, Some("dev"), "https://gh", &mut |_| {
            panic!("no question with --context")
        })
        .unwrap();
        assert_eq!(got, "dev");
    }
}
