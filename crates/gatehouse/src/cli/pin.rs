//! Pinning what a gatehouse server told the CLI at the first sign-in (trust on first use).
//!
//! `gatehouse login --sso|--device` signs in with what the server's `GET /v1/config` says:
//! the issuer, the CLI's client ID, the scopes and the static authorization parameters. A
//! server that lies there (compromised, impersonated, or simply the wrong URL) can make the
//! user's CLI ask the *real* identity provider for a token another cluster accepts (Dex's
//! cross-client scope `audience:server:client_id:other-cluster`, an `audience=` or
//! `resource=` parameter), and then receive that token.
//!
//! # Security
//! - The first successful OIDC sign-in to a server stores its settings ([`ServerPin`]) in
//!   `servers.json` beside the token cache (0600, written atomically through
//!   [`crate::cli::files::write_private`], under the cache's lock). The file holds no secret;
//!   it stays on disk when the tokens live in the OS keyring.
//! - Every later sign-in compares the server's answer with the pin *before* the browser opens
//!   or a device code is requested. A change is listed field by field; on a terminal the user
//!   is asked (`[y/N]`, default no); without one the login is refused with an error naming the
//!   change and the flag that accepts it (`--accept-config-change`). An accepted change
//!   replaces the pin once the sign-in succeeds.
//! - Every sign-in lists the audiences that the scopes and parameters add to the token (the
//!   first one too), so the user sees which services will accept it.
//! - `gatehouse logout SERVER` forgets the server's pin along with its tokens.
//! - Per-user parameters (`--param`) are the user's own choice and not pinned; the list of
//!   parameters the server *allows* users to set is not pinned either (it sends nothing by
//!   itself).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::error::CliError;
use crate::cli::net::PublicOidc;

/// The format version of `servers.json`.
const VERSION: u32 = 1;

/// What a server said at the first sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPin {
    /// `oidc.issuerUrl`.
    pub issuer_url: String,
    /// `oidc.cliClientId`: the client the CLI signs in as.
    pub cli_client_id: String,
    /// `oidc.clientId`: the server's own client.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `oidc.scopes`, sorted, without duplicates.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `oidc.additionalParameters`.
    #[serde(default)]
    pub additional_parameters: BTreeMap<String, String>,
    /// `oidc.tokenType` (`None`: the ID token).
    #[serde(default)]
    pub token_type: Option<String>,
}

impl ServerPin {
    /// The settings to pin from a server's answer.
    pub fn from_settings(oidc: &PublicOidc) -> Self {
        let scopes: BTreeSet<String> = oidc.scopes.iter().cloned().collect();
        Self {
            issuer_url: oidc.issuer_url.clone(),
            cli_client_id: oidc.cli_client_id.clone(),
            client_id: oidc.client_id.clone(),
            scopes: scopes.into_iter().collect(),
            additional_parameters: oidc.additional_parameters.clone(),
            token_type: oidc.token_type.clone(),
        }
    }

    /// What differs from `old`, one line per change, for people.
    pub fn changes_from(&self, old: &ServerPin) -> Vec<String> {
        let mut out = Vec::new();
        let field = |out: &mut Vec<String>, name: &str, old: &str, new: &str| {
            if old != new {
                out.push(format!("{name}: {old:?} -> {new:?}"));
            }
        };
        field(&mut out, "issuer", &old.issuer_url, &self.issuer_url);
        field(
            &mut out,
            "CLI client ID",
            &old.cli_client_id,
            &self.cli_client_id,
        );
        let none = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.into());
        field(
            &mut out,
            "server client ID",
            &none(&old.client_id, "(none)"),
            &none(&self.client_id, "(none)"),
        );
        let old_scopes: BTreeSet<&String> = old.scopes.iter().collect();
        let new_scopes: BTreeSet<&String> = self.scopes.iter().collect();
        for s in new_scopes.difference(&old_scopes) {
            out.push(format!("scope added: {s:?}"));
        }
        for s in old_scopes.difference(&new_scopes) {
            out.push(format!("scope removed: {s:?}"));
        }
        for (k, v) in &self.additional_parameters {
            match old.additional_parameters.get(k) {
                None => out.push(format!("parameter added: {k}={v:?}")),
                Some(o) if o != v => out.push(format!("parameter {k}: {o:?} -> {v:?}")),
                Some(_) => {}
            }
        }
        for (k, v) in &old.additional_parameters {
            if !self.additional_parameters.contains_key(k) {
                out.push(format!("parameter removed: {k}={v:?}"));
            }
        }
        field(
            &mut out,
            "token type",
            &none(&old.token_type, "id_token"),
            &none(&self.token_type, "id_token"),
        );
        out
    }
}

/// The audiences that scopes and parameters ask the IdP to add to the token, one line each,
/// for people: Dex's cross-client scope `audience:server:client_id:X`, resource-style scopes
/// (`api://X/...`, `https://X/...`), and `audience` / `resource` parameters.
pub fn added_audiences(scopes: &[String], parameters: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for s in scopes {
        if let Some(client) = s.strip_prefix("audience:server:client_id:") {
            out.push(format!("{client:?} (scope {s})"));
        } else if s.contains("://") {
            out.push(format!("{s:?} (a resource scope)"));
        }
    }
    for (k, v) in parameters {
        if k.eq_ignore_ascii_case("audience") || k.eq_ignore_ascii_case("resource") {
            out.push(format!("{v:?} (parameter {k})"));
        }
    }
    out
}

/// How a server's answer compares with its pin.
#[derive(Debug, PartialEq, Eq)]
pub enum Comparison {
    /// No pin: the first sign-in.
    First,
    /// The same as pinned.
    Same,
    /// Changed: the changes, for people.
    Changed(Vec<String>),
}

/// Compares a server's answer with its pin.
pub fn compare(old: Option<&ServerPin>, new: &ServerPin) -> Comparison {
    match old {
        None => Comparison::First,
        Some(old) => {
            let changes = new.changes_from(old);
            if changes.is_empty() {
                Comparison::Same
            } else {
                Comparison::Changed(changes)
            }
        }
    }
}

/// Decides whether a sign-in may go on with `new`, printing what the user must see: the
/// audiences the token will carry (always, when there are any), the changes since the pin.
/// `accept` is `--accept-config-change`; `ask` asks the user (`None`: no terminal).
pub fn check(
    server: &str,
    old: Option<&ServerPin>,
    new: &ServerPin,
    user_parameters: &BTreeMap<String, String>,
    accept: bool,
    ask: &mut dyn FnMut(&str) -> Option<bool>,
) -> Result<(), CliError> {
    let mut parameters = new.additional_parameters.clone();
    parameters.extend(user_parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
    let audiences = added_audiences(&new.scopes, &parameters);
    if !audiences.is_empty() {
        eprintln!(
            "gatehouse: warning: {server} has the identity provider add these audiences to your token; every service listed will accept it:"
        );
        for a in &audiences {
            eprintln!("  {a}");
        }
    }
    let changes = match compare(old, new) {
        Comparison::Same => return Ok(()),
        Comparison::First => {
            eprintln!(
                "First sign-in to {server}: its sign-in settings (issuer {}, client {}) are remembered; a change will be asked about (`gatehouse logout` forgets them).",
                new.issuer_url, new.cli_client_id
            );
            return Ok(());
        }
        Comparison::Changed(changes) => changes,
    };
    eprintln!(
        "gatehouse: warning: the sign-in settings of {server} changed since they were pinned:"
    );
    for c in &changes {
        eprintln!("  {c}");
    }
    if accept {
        eprintln!(
            "Accepted with --accept-config-change; the new settings are pinned once you are signed in."
        );
        return Ok(());
    }
    match ask(&format!(
        "Sign in to {server} with the new settings (only if its operator changed them)?"
    )) {
        Some(true) => Ok(()),
        Some(false) => Err(CliError::Login {
            reason: "the change of the server's sign-in settings was not accepted".to_owned(),
            hint: "ask the server's operator whether they changed it; `gatehouse logout SERVER` forgets the pinned settings".to_owned(),
        }),
        None => Err(CliError::ConfigChanged {
            server: server.to_owned(),
            changes: changes.join("; "),
            hint: "if the server's operator changed them on purpose, run the login again with --accept-config-change (or forget the pin with `gatehouse logout SERVER`); otherwise someone may be impersonating the server: do not sign in".to_owned(),
        }),
    }
}

/// `servers.json`: the pins, by normalised server URL.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinFile {
    /// The format version.
    pub version: u32,
    /// Pins by server.
    pub servers: BTreeMap<String, ServerPin>,
}

/// Where the pins are kept: `servers.json` in the cache's folder.
#[derive(Debug)]
pub struct PinStore {
    path: PathBuf,
}

impl PinStore {
    /// The store in the cache folder `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("servers.json"),
        }
    }

    /// Reads the pins; a missing file is empty.
    pub fn read(&self) -> Result<PinFile, CliError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PinFile::default()),
            Err(e) => {
                return Err(CliError::io(
                    format!("cannot read {}", self.path.display()),
                    e,
                ));
            }
        };
        let bad = |reason: String| CliError::Usage {
            reason: format!(
                "{} is not a gatehouse server list ({reason})",
                self.path.display()
            ),
            hint: format!(
                "move it away (`mv {0} {0}.bad`): the next sign-in to each server pins its settings again",
                self.path.display()
            ),
        };
        let file: PinFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("{:?} error at line {}", e.classify(), e.line())))?;
        if file.version != VERSION {
            return Err(bad(format!("format version {}", file.version)));
        }
        Ok(file)
    }

    /// Writes the pins (0600, atomically). Call under the cache's lock.
    pub fn write(&self, file: &PinFile) -> Result<(), CliError> {
        let body = serde_json::to_vec_pretty(&PinFile {
            version: VERSION,
            servers: file.servers.clone(),
        })
        .map_err(|e| CliError::io("cannot encode the server list", std::io::Error::other(e)))?;
        crate::cli::files::write_private(&self.path, &body)
    }

    /// The file.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn pin() -> ServerPin {
        ServerPin {
            issuer_url: "https://idp".into(),
            cli_client_id: "gatehouse-cli".into(),
            client_id: Some("gatehouse".into()),
            scopes: vec![
                "groups".into(),
                "audience:server:client_id:kubernetes".into(),
            ],
            additional_parameters: BTreeMap::from([("connector_id".into(), "local".into())]),
            token_type: None,
        }
    }

    #[test]
    fn the_same_settings_pass_silently_and_the_first_sign_in_pins() {
        let mut asked = false;
        let mut ask = |_: &str| -> Option<bool> {
            asked = true;
            None
        };
        check(
            "https://gh",
            None,
            &pin(),
            &BTreeMap::new(),
            false,
            &mut ask,
        )
        .unwrap();
        check(
            "https://gh",
            Some(&pin()),
            &pin(),
            &BTreeMap::new(),
            false,
            &mut ask,
        )
        .unwrap();
        assert!(!asked);
        assert_eq!(compare(Some(&pin()), &pin()), Comparison::Same);
        assert_eq!(compare(None, &pin()), Comparison::First);
    }

    /// A hostile server that adds another cluster's audience (or changes the issuer) is
    /// refused without a terminal; the error names each change and the flag that accepts it.
    #[test]
    fn a_changed_server_config_is_refused_without_a_terminal_and_names_the_flag() {
        let mut hostile = pin();
        hostile
            .scopes
            .push("audience:server:client_id:other-cluster".into());
        hostile
            .additional_parameters
            .insert("resource".into(), "https://other".into());
        hostile.issuer_url = "https://evil-idp".into();
        let err = check(
            "https://gh",
            Some(&pin()),
            &hostile,
            &BTreeMap::new(),
            false,
            &mut |_| None,
        )
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "https://gh",
            "audience:server:client_id:other-cluster",
            "resource=\"https://other\"",
            "https://evil-idp",
        ] {
            assert!(text.contains(want), "{want:?} missing in {text}");
        }
        assert!(
            err.hint().unwrap().contains("--accept-config-change"),
            "{:?}",
            err.hint()
        );
        // The flag accepts it without asking.
        check(
            "https://gh",
            Some(&pin()),
            &hostile,
            &BTreeMap::new(),
            true,
            &mut |_| panic!("no question with --accept-config-change"),
        )
        .unwrap();
    }

    #[test]
    fn a_changed_server_config_is_asked_about_on_a_terminal() {
        let mut changed = pin();
        changed.cli_client_id = "other-cli".into();
        let mut questions = Vec::new();
        let r = check(
            "https://gh",
            Some(&pin()),
            &changed,
            &BTreeMap::new(),
            false,
            &mut |q| {
                questions.push(q.to_owned());
                Some(false)
            },
        );
        assert!(r.unwrap_err().to_string().contains("not accepted"));
        assert_eq!(questions.len(), 1);
        assert!(questions[0].contains("https://gh"), "{questions:?}");
        check(
            "https://gh",
            Some(&pin()),
            &changed,
            &BTreeMap::new(),
            false,
            &mut |_| Some(true),
        )
        .unwrap();
    }

    #[test]
    fn changes_are_listed_field_by_field() {
        let mut new = pin();
        new.scopes = vec!["groups".into()];
        new.additional_parameters
            .insert("connector_id".into(), "ldap".into());
        new.token_type = Some("access_token".into());
        new.client_id = None;
        let changes = new.changes_from(&pin());
        assert_eq!(
            changes,
            vec![
                "server client ID: \"gatehouse\" -> \"(none)\"",
                "scope removed: \"audience:server:client_id:kubernetes\"",
                "parameter connector_id: \"local\" -> \"ldap\"",
                "token type: \"id_token\" -> \"access_token\"",
            ]
        );
        // Scope order is not a change.
        let mut reordered = pin();
        reordered.scopes.reverse();
        let settings = |p: &ServerPin| PublicOidc {
            issuer_url: p.issuer_url.clone(),
            cli_client_id: p.cli_client_id.clone(),
            client_id: p.client_id.clone(),
            scopes: p.scopes.clone(),
            additional_parameters: p.additional_parameters.clone(),
            user_parameters: BTreeMap::new(),
            token_type: None,
            audiences: Vec::new(),
            username_claim: None,
        };
        assert_eq!(
            ServerPin::from_settings(&settings(&reordered)),
            ServerPin::from_settings(&settings(&pin()))
        );
    }

    #[test]
    fn audiences_added_by_scopes_and_parameters_are_listed() {
        let scopes = vec![
            "openid".to_owned(),
            "audience:server:client_id:kubernetes".to_owned(),
            "api://cluster-b/.default".to_owned(),
        ];
        let params = BTreeMap::from([
            ("resource".to_owned(), "https://k8s.example".to_owned()),
            ("audience".to_owned(), "prod".to_owned()),
            ("connector_id".to_owned(), "local".to_owned()),
        ]);
        let a = added_audiences(&scopes, &params);
        assert_eq!(
            a,
            vec![
                "\"kubernetes\" (scope audience:server:client_id:kubernetes)",
                "\"api://cluster-b/.default\" (a resource scope)",
                "\"prod\" (parameter audience)",
                "\"https://k8s.example\" (parameter resource)",
            ]
        );
        assert!(added_audiences(&["openid".into()], &BTreeMap::new()).is_empty());
    }

    #[test]
    fn pins_round_trip_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("gatehouse-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = PinStore::new(&dir);
        assert!(store.read().unwrap().servers.is_empty());
        let mut f = PinFile::default();
        f.servers.insert("https://gh".into(), pin());
        store.write(&f).unwrap();
        assert_eq!(store.read().unwrap().servers["https://gh"], pin());
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(store.path(), "{garbage").unwrap();
        let err = store.read().unwrap_err();
        assert!(err.hint().unwrap().contains("mv "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
