//! `gatehouse kubeconfig` (write or print a context using the exec plugin), and the reading of
//! kubeconfig files that `gatehouse login --kubeconfig` ([`crate::cli::login::kubeconfig`])
//! shares.
//!
//! The context has the same shape as the one the web UI offers (`ui.rs`, `kubeconfig_text`):
//! cluster `gatehouse` with the server URL, user `gatehouse` running
//! `gatehouse token --server URL` with `client.authentication.k8s.io/v1`.
//!
//! # Security
//! - The kubeconfig is written through [`crate::cli::files::write_private`]: a create-new
//!   (`O_EXCL`) 0600 temporary file with a random name in the kubeconfig's folder, renamed into
//!   place, so a symlink planted at a predictable temporary name is never followed.
//! - The exec plugin of a context gets `--insecure-http` only when the server is plain
//!   `http://` to a host that is not loopback, which `resolve_server` allows only with that
//!   flag.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use serde_json::{Value, json};

use crate::cli::cache::{Backend, Cache};
use crate::cli::error::CliError;
use crate::cli::files::write_private;
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
pub(crate) fn kubeconfig_paths(explicit: Option<&Path>) -> Result<Vec<PathBuf>, CliError> {
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

pub(crate) fn read_yaml(path: &Path) -> Result<Option<Value>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::io(format!("cannot read {}", path.display()), e)),
    };
    parse_yaml(&text, path).map(Some)
}

/// A kubeconfig's text as a document; empty text is an empty document. `path` names the file
/// in the error.
pub fn parse_yaml(text: &str, path: &Path) -> Result<Value, CliError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    // No source snippet in the error: the lines around a syntax error may hold a token or a
    // client key.
    serde_saphyr::from_str_with_options::<Value>(
        text,
        serde_saphyr::options! { with_snippet: false },
    )
    .map_err(|e| CliError::Usage {
        reason: format!("{} is not a valid kubeconfig: {e}", path.display()),
        hint: "fix the file, or write elsewhere with --kubeconfig FILE, or use --print".to_owned(),
    })
}

/// A kubeconfig document as YAML text, ending with a newline.
pub fn to_yaml(doc: &Value) -> Result<String, CliError> {
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
