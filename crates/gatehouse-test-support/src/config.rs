//! gatehouse server configurations for the test bed, built from parts, so each test says only
//! what differs: the listener on a port the builder owns ([`ServerConfig::port`] to fix one, a
//! free port otherwise, exposed by [`ServerConfig::listen_port`] and read back from the YAML by
//! [`crate::Gatehouse::start`]), TLS with
//! the test bed's serving certificate, the test bed's kubeconfig, an `oidc` section for one of
//! its issuers, and whatever the test adds.
//!
//! The builder holds the configuration as a document (a JSON value tree, the shape
//! `gatehouse serve` reads) and writes it as YAML with `serde-saphyr` only in
//! [`ServerConfig::build`]. Tests change what they vary through typed setters
//! ([`ServerConfig::issuer`], [`ServerConfig::audiences`], [`ServerConfig::fall_through`], ...)
//! or [`ServerConfig::set`] for one key path, never by editing the YAML text afterwards.
//! [`ServerConfig::oidc_yaml`] and [`ServerConfig::yaml`] take a YAML fragment, parse it and
//! merge it into the document (mappings key by key; a later value wins).

use serde_json::{Map, Value, json};

use crate::testbed::Testbed;

/// A configuration being built; [`ServerConfig::build`] gives the YAML.
pub struct ServerConfig<'a> {
    tb: &'a Testbed,
    doc: Value,
    admin: bool,
    port: u16,
}

impl<'a> ServerConfig<'a> {
    /// Listener, TLS and kubeconfig, `serviceAccounts: { allNamespaces: true }` (tests create
    /// namespaces of their own at run time); no `oidc` section yet.
    pub fn new(tb: &'a Testbed) -> Self {
        let doc = json!({
            "tls": {
                "certFile": tb.var("GATEHOUSE_TLS_CERT"),
                "keyFile": tb.var("GATEHOUSE_TLS_KEY"),
            },
            "kubernetes": { "kubeconfig": tb.var("GATEHOUSE_KUBECONFIG") },
            "serviceAccounts": { "allNamespaces": true },
        });
        Self {
            tb,
            doc,
            admin: false,
            port: crate::process::free_port(),
        }
    }

    /// `oidc` for `issuer` with the server client `gatehouse`, the CLI client `cli_client`
    /// and the test bed's CA (replacing any `oidc` section set before).
    pub fn oidc_client(mut self, issuer: &str, cli_client: &str) -> Self {
        self.doc["oidc"] = json!({
            "issuerUrl": issuer,
            "clientId": "gatehouse",
            "cliClientId": cli_client,
            "caFile": self.tb.var("TESTBED_CA_FILE"),
        });
        self
    }

    /// `oidc` for the test bed's Dex (`gatehouse`, `gatehouse-cli`).
    pub fn dex(self) -> Self {
        let issuer = self.tb.var("DEX_ISSUER");
        self.oidc_client(&issuer, "gatehouse-cli")
    }

    /// `oidc` for the test bed's Keycloak realm `gatehouse` (`gatehouse`, `gatehouse-cli`).
    pub fn keycloak(self) -> Self {
        let issuer = self.tb.var("KEYCLOAK_ISSUER");
        self.oidc_client(&issuer, "gatehouse-cli")
    }

    /// `oidc.issuerUrl` (for example an issuer where nothing listens).
    pub fn issuer(self, url: &str) -> Self {
        self.set("oidc.issuerUrl", json!(url))
    }

    /// `oidc.cliClientId`, or no CLI client at all (`None`: only the web client is accepted).
    pub fn cli_client(mut self, client: Option<&str>) -> Self {
        match client {
            Some(c) => self.set("oidc.cliClientId", json!(c)),
            None => {
                if let Some(oidc) = self.doc["oidc"].as_object_mut() {
                    oidc.remove("cliClientId");
                }
                self
            }
        }
    }

    /// `oidc.audiences`: audiences accepted besides the client IDs.
    pub fn audiences(self, audiences: &[&str]) -> Self {
        self.set("oidc.audiences", json!(audiences))
    }

    /// `fallThrough.enabled`.
    pub fn fall_through(self, enabled: bool) -> Self {
        self.set("fallThrough.enabled", json!(enabled))
    }

    /// `serviceAccounts.annotationPrefix`.
    pub fn annotation_prefix(self, prefix: &str) -> Self {
        self.set("serviceAccounts.annotationPrefix", json!(prefix))
    }

    /// More of the `oidc` section: a YAML mapping at the section's level, merged in.
    pub fn oidc_yaml(mut self, yaml: &str) -> Self {
        let fragment = parse_fragment(yaml);
        merge(&mut self.doc["oidc"], fragment);
        self
    }

    /// Top-level settings: a YAML mapping merged into the document.
    pub fn yaml(mut self, yaml: &str) -> Self {
        let fragment = parse_fragment(yaml);
        merge(&mut self.doc, fragment);
        self
    }

    /// The `serviceAccounts` section as a YAML flow mapping, instead of the test bed default
    /// `{ allNamespaces: true }` (the whole section is replaced).
    pub fn service_accounts(mut self, flow: &str) -> Self {
        self.doc["serviceAccounts"] = parse_fragment(flow);
        self
    }

    /// A fixed port instead of the free port picked by [`ServerConfig::new`].
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The port `listen` names (on 127.0.0.1).
    pub fn listen_port(&self) -> u16 {
        self.port
    }

    /// `publicUrl`.
    pub fn public_url(self, url: &str) -> Self {
        self.set("publicUrl", json!(url))
    }

    /// No `tls` section: plain HTTP (on loopback only, for an origin an IdP client allows).
    pub fn plain_http(mut self) -> Self {
        if let Some(doc) = self.doc.as_object_mut() {
            doc.remove("tls");
        }
        self
    }

    /// Another kubeconfig for gatehouse's own Kubernetes client.
    pub fn kubeconfig(self, path: &str) -> Self {
        self.set("kubernetes.kubeconfig", json!(path))
    }

    /// Admin sign-in with the test bed's password hash and signing key.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// Sets the value at a dotted key path (`oidc.clockSkew`), creating mappings on the way.
    pub fn set(mut self, path: &str, value: Value) -> Self {
        let mut at = &mut self.doc;
        for key in path.split('.') {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            at = &mut at[key];
        }
        *at = value;
        self
    }

    /// The document as it stands (`listen` and admin sign-in added by [`ServerConfig::build`]).
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// The YAML.
    pub fn build(&self) -> String {
        let mut doc = self.doc.clone();
        doc["listen"] = json!(format!("127.0.0.1:{}", self.port));
        if self.admin {
            doc["admin"] = json!({
                "enabled": true,
                "passwordHash": self.tb.var("GATEHOUSE_ADMIN_PASSWORD_HASH"),
                "tokenSigningKey": self.tb.var("GATEHOUSE_ADMIN_SIGNING_KEY"),
            });
        }
        serde_saphyr::to_string(&doc).unwrap()
    }
}

/// A YAML fragment as a value; panics (the test's mistake) when it is not a mapping.
fn parse_fragment(yaml: &str) -> Value {
    let v: Value = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"));
    assert!(v.is_object(), "expected a YAML mapping:\n{yaml}");
    v
}

/// Merges `from` into `into`: mappings key by key (recursively), anything else replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The port of a configuration's `listen` (`host:port`), read from the YAML document; panics
/// (the test's mistake) when there is none.
pub fn listen_port(yaml: &str) -> u16 {
    let doc: Value =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("config is not YAML: {e}\n{yaml}"));
    let listen = doc["listen"]
        .as_str()
        .unwrap_or_else(|| panic!("config has no `listen`:\n{yaml}"));
    let addr: std::net::SocketAddr = listen
        .parse()
        .unwrap_or_else(|e| panic!("`listen: {listen}` is not host:port: {e}"));
    addr.port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_merge_key_by_key_and_set_creates_paths() {
        let mut doc = json!({"oidc": {"issuerUrl": "a", "clientId": "c"}});
        merge(
            &mut doc["oidc"],
            parse_fragment("additionalScopes: [groups]\nissuerUrl: b"),
        );
        assert_eq!(
            doc,
            json!({"oidc": {"issuerUrl": "b", "clientId": "c", "additionalScopes": ["groups"]}})
        );
        let mut top = Value::Null;
        merge(&mut top, parse_fragment("fallThrough: { enabled: true }"));
        assert_eq!(top, json!({"fallThrough": {"enabled": true}}));
    }

    #[test]
    fn a_built_configuration_is_read_by_the_real_loader_with_what_the_setters_say() {
        let tb = Testbed::from_vars(&[
            ("GATEHOUSE_TLS_CERT", "/tb/tls.crt"),
            ("GATEHOUSE_TLS_KEY", "/tb/tls.key"),
            ("GATEHOUSE_KUBECONFIG", "/tb/kubeconfig"),
            ("DEX_ISSUER", "https://127.0.0.1:5556/dex"),
            ("TESTBED_CA_FILE", "/tb/ca.crt"),
            (
                "GATEHOUSE_ADMIN_PASSWORD_HASH",
                "$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a",
            ),
            (
                "GATEHOUSE_ADMIN_SIGNING_KEY",
                "0123456789abcdef0123456789abcdef",
            ),
        ]);
        let yaml = ServerConfig::new(&tb)
            .port(18443)
            .dex()
            .oidc_yaml("additionalScopes: [groups, offline_access]")
            .issuer("https://127.0.0.1:1/dex")
            .audiences(&["kubernetes"])
            .cli_client(None)
            .annotation_prefix("e2e.gatehouse.dev")
            .fall_through(false)
            .admin()
            .build();
        let c = gatehouse_server::config::parse(
            &yaml,
            &std::collections::HashMap::<String, String>::new(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:18443");
        assert_eq!(listen_port(&yaml), 18443);
        let o = c.oidc.as_ref().unwrap();
        assert_eq!(o.issuer_url, "https://127.0.0.1:1/dex");
        assert_eq!(o.audiences, ["kubernetes"]);
        assert_eq!(o.cli_client_id, None);
        assert!(o.scopes().iter().any(|s| s == "offline_access"), "{yaml}");
        assert_eq!(c.service_accounts.annotation_prefix, "e2e.gatehouse.dev");
        assert!(c.service_accounts.all_namespaces);
        assert!(!c.fall_through);
        assert!(c.admin.is_some());
        assert_eq!(
            c.kubernetes.kubeconfig.as_deref(),
            Some(std::path::Path::new("/tb/kubeconfig"))
        );
    }

    #[test]
    fn the_builder_owns_the_port_and_start_reads_it_back() {
        let tb = Testbed::from_vars(&[
            ("GATEHOUSE_TLS_CERT", "/tb/tls.crt"),
            ("GATEHOUSE_TLS_KEY", "/tb/tls.key"),
            ("GATEHOUSE_KUBECONFIG", "/tb/kubeconfig"),
        ]);
        let free = ServerConfig::new(&tb);
        let port = free.listen_port();
        assert_ne!(port, 0);
        let yaml = free.build();
        assert!(!yaml.contains("PORT"), "{yaml}");
        assert_eq!(listen_port(&yaml), port);
        let fixed = ServerConfig::new(&tb).port(18444);
        assert_eq!(fixed.listen_port(), 18444);
        assert_eq!(listen_port(&fixed.build()), 18444);
    }

    #[test]
    fn the_yaml_written_reads_back_as_the_document() {
        let doc = json!({
            "listen": "127.0.0.1:18443",
            "oidc": {"issuerUrl": "https://127.0.0.1:5556/dex", "audiences": ["kubernetes"]},
            "admin": {"passwordHash": "$2b$10$abc/def"},
            "userParameters": {"login_hint": {"pattern": "[a-z]+@example\\.com"}},
        });
        let text = serde_saphyr::to_string(&doc).unwrap();
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, doc, "{text}");
    }
}
