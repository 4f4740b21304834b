//! What the cache holds: one [`Entry`] per sign-in (server, issuer, client and parameters), in a
//! versioned JSON document ([`CacheFile`]) that the file and the keyring store alike. Parse
//! errors name a position only: the document holds tokens.

use std::collections::BTreeMap;

use gatehouse_core::protocol::RefreshToken;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The format version written in the file.
pub(super) const VERSION: u32 = 1;

/// How a cached token was obtained; decides how it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// OIDC sign-in (browser or device); renewed with the refresh token.
    Oidc,
    /// gatehouse admin token; renewed by signing in again.
    Admin,
    /// A token taken from a kubeconfig context; renewed by running the login again.
    Kubeconfig,
}

/// Which token of the IdP's answer is handed to kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum TokenType {
    /// The ID token (the default; its `aud` holds the client and any peer audiences).
    #[default]
    IdToken,
    /// The access token, when the IdP issues it as a JWT for a resource (RFC 8707 resource
    /// indicators): its `aud` is the resource, for example the cluster.
    AccessToken,
}

/// One cached sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The gatehouse server URL, normalised (no trailing slash).
    pub server: String,
    /// The OIDC issuer, for OIDC entries.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The client ID the tokens were issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The authorization parameters (static and per-user) the sign-in used.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// How the token was obtained.
    pub kind: Kind,
    /// The bearer token handed to kubectl (the ID token for OIDC).
    pub token: String,
    /// The refresh token, when the IdP gave one.
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
    /// When `token` expires, unix seconds.
    pub expires_at: i64,
    /// The CA bundle (PEM) for the server and the IdP, when one was given at login.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// When this entry was written, unix seconds (the newest entry of a server wins).
    pub updated_at: i64,
    /// The login command that renews this entry, shown in hints.
    pub login_command: String,
    /// Which token `token` holds.
    #[serde(default)]
    pub token_type: TokenType,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("server", &self.server)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("parameters", &self.parameters)
            .field("kind", &self.kind)
            .field("token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// The cache key: server, issuer, client and parameters.
    pub fn key(&self) -> String {
        let material = serde_json::json!([
            self.server,
            self.issuer,
            self.client_id,
            self.parameters,
            self.kind
        ]);
        let digest = Sha256::digest(material.to_string().as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The whole file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// The format version.
    pub version: u32,
    /// Entries by key.
    pub entries: BTreeMap<String, Entry>,
}

impl CacheFile {
    /// The newest entry for `server`.
    pub fn for_server(&self, server: &str) -> Option<&Entry> {
        let server = normalize_server(server);
        self.entries
            .values()
            .filter(|e| e.server == server)
            .max_by_key(|e| e.updated_at)
    }

    /// The server of the newest entry, for commands run without a server.
    pub fn newest_server(&self) -> Option<&str> {
        self.entries
            .values()
            .max_by_key(|e| e.updated_at)
            .map(|e| e.server.as_str())
    }

    /// Inserts or replaces an entry.
    pub fn put(&mut self, mut entry: Entry) {
        entry.server = normalize_server(&entry.server);
        self.entries.insert(entry.key(), entry);
    }

    /// Removes every entry of `server`; returns them.
    pub fn remove_server(&mut self, server: &str) -> Vec<Entry> {
        let server = normalize_server(server);
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.server == server)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.entries.remove(k)).collect()
    }
}

/// A server URL without its trailing slashes.
pub fn normalize_server(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

/// Parses a cache document; the error names the problem's category and position only
/// (serde_json's messages may quote content, which may be a token).
pub(super) fn parse(bytes: &[u8]) -> Result<CacheFile, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let parsed: CacheFile = serde_json::from_str(text).map_err(|e| {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if parsed.version != VERSION {
        return Err(format!(
            "format version {} (expected {VERSION})",
            parsed.version
        ));
    }
    Ok(parsed)
}

#[derive(Serialize)]
pub(super) struct CacheFileRef<'a> {
    pub(super) version: u32,
    pub(super) entries: &'a BTreeMap<String, Entry>,
}
