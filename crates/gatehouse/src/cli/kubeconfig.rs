//! `gatehouse kubeconfig` (write or print a context using the exec plugin) and
//! `gatehouse login --kubeconfig` (take the credential of a kubeconfig context).
//!
//! The context has the same shape as the one the web UI offers (`ui.rs`, `kubeconfig_text`):
//! cluster `gatehouse` with the server URL, user `gatehouse` running
//! `gatehouse token --server URL` with `client.authentication.k8s.io/v1`.
//!
//! # Security
//! - The kubeconfig is written through [`crate::cli::files::write_private`]: a create-new
//!   (`O_EXCL`) 0600 temporary file with a random name in the kubeconfig's folder, renamed into
//!   place, so a symlink planted at a predictable temporary name is never followed.
//! - `login --kubeconfig` sends a kubeconfig credential to the gatehouse server. It never
//!   picks the current context silently (that credential may belong to another cluster): it
//!   needs `--context`, or, on a terminal, the user's yes to the current context (its name and
//!   cluster are shown). The renewal command always names the context.
//! - The exec plugin of a context gets `--insecure-http` only when the server is plain
//!   `http://` to a host that is not loopback, which `resolve_server` allows only with that
//!   flag.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use gatehouse_core::wire::WhoAmI;
use serde_json::{Value, json};

use crate::cli::cache::{Backend, Cache, Entry, Kind};
use crate::cli::error::CliError;
use crate::cli::files::write_private;
use crate::cli::login::{SignIn, Target};
use crate::cli::net::{self, Net, SERVER};
use crate::cli::{Common, Output, process_env, resolve_server};

/// `gatehouse kubeconfig`.
#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// The gatehouse server URL (default: the server signed in to last).
    #[arg(env = "GATEHOUSE_SERVER")]
    pub server: Option<String>,
    /// PEM file with the CA of the gatehouse server, embedded as certificate-authority-data.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Print the kubeconfig on stdout instead of merging it into a file.
    #[arg(long)]
    pub print: bool,
    /// Also add a context `gatehouse-direct` straight to the kube-apiserver, with the same
    /// plugin (for tokens whose audience the kube-apiserver accepts too).
    #[arg(long, requires = "apiserver")]
    pub direct: bool,
    /// The kube-apiserver URL for --direct.
    #[arg(long, value_name = "URL")]
    pub apiserver: Option<String>,
    /// PEM file with the kube-apiserver's CA for --direct.
    #[arg(long, value_name = "FILE")]
    pub apiserver_certificate_authority: Option<PathBuf>,
    /// The kubeconfig file to merge into (default: the first of $KUBECONFIG, else
    /// ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Make `gatehouse` the current context (it is made current anyway when the file has none).
    #[arg(long)]
    pub set_current: bool,
    /// Output format. With --print: the kubeconfig itself as YAML (`text`, `yaml`) or JSON
    /// (`json`). Without: `text` prints a message on stderr only; `json` and `yaml` print the
    /// file written, its contexts and current context on stdout (see docs/cli.md).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(flatten)]
    pub common: Common,
}

fn ca_data(path: Option<&PathBuf>) -> Result<Option<String>, CliError> {
    path.map(|p| {
        let pem = std::fs::read(p).map_err(|e| CliError::Ca {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(CliError::Ca {
                path: p.display().to_string(),
                reason: "no PEM certificate in it".to_owned(),
            });
        }
        Ok(STANDARD.encode(pem))
    })
    .transpose()
}

fn cluster(name: &str, server: &str, ca: Option<&str>) -> Value {
    let mut c = json!({ "server": server });
    if let Some(ca) = ca {
        c["certificate-authority-data"] = json!(ca);
    }
    json!({ "name": name, "cluster": c })
}

/// The entries gatehouse adds: clusters, users, contexts.
///
/// An explicit `--token-cache file|keyring` is carried into the plugin's arguments, so kubectl's
/// `gatehouse token` reads the cache that `gatehouse login` wrote; `auto` is left out.
pub fn entries(
    server: &str,
    ca: Option<&str>,
    direct: Option<(&str, Option<&str>)>,
    token_cache: Backend,
) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut clusters = vec![cluster("gatehouse", server, ca)];
    let mut args = vec!["token", "--server", server];
    match token_cache {
        Backend::Auto => {}
        Backend::File => args.extend(["--token-cache", "file"]),
        Backend::Keyring => args.extend(["--token-cache", "keyring"]),
    }
    // Only reached with --insecure-http (see `resolve_server`): the plugin needs it too.
    if crate::cli::insecure_http(server) {
        args.push("--insecure-http");
    }
    let users = vec![json!({
        "name": "gatehouse",
        "user": { "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "gatehouse",
            "args": args,
            "interactiveMode": "IfAvailable",
            "provideClusterInfo": false,
        }},
    })];
    let mut contexts = vec![json!({
        "name": "gatehouse",
        "context": { "cluster": "gatehouse", "user": "gatehouse" },
    })];
    if let Some((url, ca)) = direct {
        clusters.push(cluster("gatehouse-direct", url, ca));
        contexts.push(json!({
            "name": "gatehouse-direct",
            "context": { "cluster": "gatehouse-direct", "user": "gatehouse" },
        }));
    }
    (clusters, users, contexts)
}

/// Inserts or replaces `items` (by `name`) in the list `doc[key]`.
fn upsert(doc: &mut Value, key: &str, items: Vec<Value>) {
    if !doc.get(key).is_some_and(Value::is_array) {
        doc[key] = json!([]);
    }
    if let Some(list) = doc.get_mut(key).and_then(Value::as_array_mut) {
        for item in items {
            let name = item.get("name").cloned();
            match list.iter_mut().find(|x| x.get("name") == name.as_ref()) {
                Some(slot) => *slot = item,
                None => list.push(item),
            }
        }
    }
}

/// Merges gatehouse's entries into a kubeconfig document.
pub fn merge(doc: &mut Value, parts: (Vec<Value>, Vec<Value>, Vec<Value>), set_current: bool) {
    if !doc.is_object() {
        *doc = json!({});
    }
    if doc.get("apiVersion").is_none() {
        doc["apiVersion"] = json!("v1");
    }
    if doc.get("kind").is_none() {
        doc["kind"] = json!("Config");
    }
    let (clusters, users, contexts) = parts;
    upsert(doc, "clusters", clusters);
    upsert(doc, "users", users);
    upsert(doc, "contexts", contexts);
    let has_current = doc
        .get("current-context")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty());
    if set_current || !has_current {
        doc["current-context"] = json!("gatehouse");
    }
}

/// The kubeconfig files from `$KUBECONFIG`, else `~/.kube/config`.
fn kubeconfig_paths(explicit: Option<&Path>) -> Result<Vec<PathBuf>, CliError> {
    if let Some(p) = explicit {
        return Ok(vec![p.to_owned()]);
    }
    if let Some(list) = process_env("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return Ok(paths);
        }
    }
    process_env("HOME")
        .map(|h| vec![PathBuf::from(h).join(".kube").join("config")])
        .ok_or_else(|| CliError::Usage {
            reason: "cannot find the kubeconfig: neither KUBECONFIG nor HOME is set".to_owned(),
            hint: "pass --kubeconfig FILE".to_owned(),
        })
}

fn read_yaml(path: &Path) -> Result<Option<Value>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::io(format!("cannot read {}", path.display()), e)),
    };
    if text.trim().is_empty() {
        return Ok(Some(json!({})));
    }
    // No source snippet in the error: the lines around a syntax error may hold a token or a
    // client key.
    serde_saphyr::from_str_with_options::<Value>(
        &text,
        serde_saphyr::options! { with_snippet: false },
    )
    .map(Some)
    .map_err(|e| CliError::Usage {
        reason: format!("{} is not a valid kubeconfig: {e}", path.display()),
        hint: "fix the file, or write elsewhere with --kubeconfig FILE, or use --print".to_owned(),
    })
}

fn to_yaml(doc: &Value) -> Result<String, CliError> {
    let mut text = serde_saphyr::to_string(doc).map_err(|e| CliError::Usage {
        reason: format!("cannot render YAML: {e}"),
        hint: String::new(),
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `gatehouse kubeconfig`.
pub fn run(args: KubeconfigArgs) -> Result<(), CliError> {
    let cache = Cache::open(args.common.token_cache, &process_env)?;
    let server = resolve_server(args.server.clone(), &cache, &args.common, false)?;
    let ca = ca_data(args.certificate_authority.as_ref())?;
    let direct_ca = ca_data(args.apiserver_certificate_authority.as_ref())?;
    let direct = if args.direct {
        args.apiserver.as_deref().map(|u| (u, direct_ca.as_deref()))
    } else {
        None
    };
    let parts = entries(&server, ca.as_deref(), direct, args.common.token_cache);
    if args.print {
        let mut doc = json!({});
        merge(&mut doc, parts, true);
        let text = match args.output {
            Output::Json => format!("{doc:#}\n"),
            Output::Text | Output::Yaml => to_yaml(&doc)?,
        };
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .map_err(|e| CliError::io("cannot write to stdout", e));
    }
    let path = kubeconfig_paths(args.kubeconfig.as_deref())?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Usage {
            reason: "no kubeconfig file".to_owned(),
            hint: "pass --kubeconfig FILE".to_owned(),
        })?;
    let mut doc = read_yaml(&path)?.unwrap_or_else(|| json!({}));
    let contexts: Vec<String> = parts
        .2
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    merge(&mut doc, parts, args.set_current);
    write_private(&path, to_yaml(&doc)?.as_bytes())?;
    eprintln!(
        "Wrote context \"gatehouse\"{} to {}.\nTry: kubectl --context gatehouse get namespaces",
        if direct.is_some() {
            " and \"gatehouse-direct\""
        } else {
            ""
        },
        path.display()
    );
    crate::cli::print_result(
        args.output,
        &written_summary(&path, &server, &contexts, &doc),
    )
}

/// The result of `gatehouse kubeconfig` (without `--print`) for scripts: the file written
/// (absolute), the server, the contexts gatehouse wrote and the file's current context after
/// the write. The kubeconfig itself holds the exec plugin's command, never a token.
pub fn written_summary(path: &Path, server: &str, contexts: &[String], doc: &Value) -> Value {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    json!({
        "kubeconfig": path.display().to_string(),
        "server": server,
        "contexts": contexts,
        "currentContext": doc.get("current-context"),
    })
}

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
            crate::cli::claims::unverified_claims(&cred.token)
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
    fn merge_replaces_own_entries_and_keeps_others() {
        let mut doc: Value = serde_saphyr::from_str(
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster: {server: https://o}\n- name: gatehouse\n  cluster: {server: https://old}\nusers:\n- name: other\n  user: {token: x}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\n",
        )
        .unwrap();
        merge(
            &mut doc,
            entries(
                "https://gh",
                Some("Q0E="),
                Some(("https://k8s:6443", None)),
                Backend::Auto,
            ),
            false,
        );
        assert_eq!(doc["current-context"], "other");
        let clusters = doc["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 3);
        assert_eq!(clusters[1]["cluster"]["server"], "https://gh");
        assert_eq!(clusters[1]["cluster"]["certificate-authority-data"], "Q0E=");
        assert_eq!(clusters[2]["name"], "gatehouse-direct");
        let user = &doc["users"].as_array().unwrap()[1];
        assert_eq!(
            user["user"]["exec"]["args"],
            json!(["token", "--server", "https://gh"])
        );
        assert_eq!(doc["contexts"].as_array().unwrap().len(), 3);
        // An explicit cache back-end reaches kubectl's `gatehouse token`.
        let (_, users, _) = entries("https://gh", None, None, Backend::File);
        assert_eq!(
            users[0]["user"]["exec"]["args"],
            json!(["token", "--server", "https://gh", "--token-cache", "file"])
        );
        // Round trip through YAML.
        let text = to_yaml(&doc).unwrap();
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn written_summary_names_the_file_and_contexts() {
        let mut doc = json!({"current-context": "other"});
        merge(
            &mut doc,
            entries(
                "https://gh",
                None,
                Some(("https://k8s", None)),
                Backend::Auto,
            ),
            false,
        );
        let v = written_summary(
            Path::new("kube/config"),
            "https://gh",
            &["gatehouse".to_owned(), "gatehouse-direct".to_owned()],
            &doc,
        );
        let path = v["kubeconfig"].as_str().unwrap();
        assert!(
            Path::new(path).is_absolute() && path.ends_with("kube/config"),
            "{path}"
        );
        assert_eq!(v["server"], "https://gh");
        assert_eq!(v["contexts"], json!(["gatehouse", "gatehouse-direct"]));
        assert_eq!(v["currentContext"], "other");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn a_broken_kubeconfig_is_refused_without_echoing_it() {
        let path = std::env::temp_dir().join(format!("gatehouse-kc-{}", std::process::id()));
        std::fs::write(
            &path,
            "users:\n- name: x\n  user:\n    token: SECRET-TOKEN-VALUE\n    bad: [unclosed\n",
        )
        .unwrap();
        let err = read_yaml(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("is not a valid kubeconfig"), "{err}");
        assert!(!err.contains("SECRET-TOKEN-VALUE"), "{err}");
    }

    /// A symlink planted at the temporary name the kubeconfig write used to take (predictable:
    /// `<name>.gatehouse-<pid>.tmp`) is not followed: its target is not written, and the
    /// kubeconfig itself ends up a regular 0600 file with the new content.
    #[test]
    fn kubeconfig_write_does_not_follow_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("gatehouse-kc-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let predictable = path.with_extension(format!("gatehouse-{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();
        write_private(&path, b"apiVersion: v1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "{meta:?}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "apiVersion: v1\n");
        // The planted link is left alone (it is not ours to remove).
        assert!(
            std::fs::symlink_metadata(&predictable)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Without --context and without a terminal, nothing is sent: the error names the current
    /// context (and its cluster) and the flag; on a terminal the user is asked first.
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

    #[test]
    fn the_plugin_keeps_insecure_http_for_a_remote_http_server() {
        let (_, users, _) = entries("http://gh.lab:8080", None, None, Backend::Auto);
        assert_eq!(
            users[0]["user"]["exec"]["args"],
            json!(["token", "--server", "http://gh.lab:8080", "--insecure-http"])
        );
        let (_, users, _) = entries("http://127.0.0.1:8080", None, None, Backend::Auto);
        assert_eq!(
            users[0]["user"]["exec"]["args"],
            json!(["token", "--server", "http://127.0.0.1:8080"])
        );
    }

    #[test]
    fn matches_the_ui_kubeconfig() {
        let mut doc = json!({});
        merge(
            &mut doc,
            entries("https://gh:8443", None, None, Backend::Auto),
            true,
        );
        let ui: Value = serde_saphyr::from_str(&gatehouse_server::ui::kubeconfig_text(
            "https://gh:8443",
            None,
        ))
        .unwrap();
        assert_eq!(doc, ui);
        // With a CA: the same certificate-authority-data (base64 of the PEM) in both.
        use base64::Engine as _;
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        let mut doc = json!({});
        merge(
            &mut doc,
            entries("https://gh:8443", Some(&data), None, Backend::Auto),
            true,
        );
        let ui: Value = serde_saphyr::from_str(&gatehouse_server::ui::kubeconfig_text(
            "https://gh:8443",
            Some(pem),
        ))
        .unwrap();
        assert_eq!(doc, ui);
    }
}
