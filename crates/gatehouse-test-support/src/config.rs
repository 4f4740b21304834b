//! gatehouse server configurations for the test bed, built from parts, so each test says only
//! what differs: the listener on `{{PORT}}` (filled in by [`crate::Gatehouse::start`]), TLS with
//! the test bed's serving certificate, the test bed's kubeconfig, an `oidc` section for one of
//! its issuers, and whatever the test adds.

use crate::testbed::Testbed;

/// A configuration being built; [`ServerConfig::build`] gives the YAML.
pub struct ServerConfig<'a> {
    tb: &'a Testbed,
    listen: String,
    public_url: Option<String>,
    kubeconfig: String,
    oidc: Option<String>,
    oidc_lines: Vec<String>,
    lines: Vec<String>,
    service_accounts: String,
    admin: bool,
}

impl<'a> ServerConfig<'a> {
    /// Listener, TLS and kubeconfig; no `oidc` section yet.
    pub fn new(tb: &'a Testbed) -> Self {
        Self {
            tb,
            listen: "127.0.0.1:{{PORT}}".to_owned(),
            public_url: None,
            kubeconfig: tb.var("GATEHOUSE_KUBECONFIG"),
            oidc: None,
            oidc_lines: Vec::new(),
            lines: Vec::new(),
            service_accounts: "{ allNamespaces: true }".to_owned(),
            admin: false,
        }
    }

    /// `oidc` for `issuer` with the server client `gatehouse`, the CLI client `cli_client`
    /// and the test bed's CA.
    pub fn oidc_client(mut self, issuer: &str, cli_client: &str) -> Self {
        self.oidc = Some(format!(
            "oidc:\n  issuerUrl: \"{issuer}\"\n  clientId: gatehouse\n  cliClientId: {cli_client}\n  caFile: \"{}\"\n",
            self.tb.var("TESTBED_CA_FILE")
        ));
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

    /// More of the `oidc` section: YAML at the section's level (indented here).
    pub fn oidc_yaml(mut self, yaml: &str) -> Self {
        self.oidc_lines
            .extend(yaml.lines().map(|l| format!("  {l}\n")));
        self
    }

    /// Top-level YAML after the `oidc` section.
    pub fn yaml(mut self, yaml: &str) -> Self {
        self.lines.push(format!("{}\n", yaml.trim_end()));
        self
    }

    /// The `serviceAccounts` section as a YAML flow mapping, instead of the test bed default
    /// `{ allNamespaces: true }` (tests create namespaces of their own at run time).
    pub fn service_accounts(mut self, flow: &str) -> Self {
        flow.clone_into(&mut self.service_accounts);
        self
    }

    /// A fixed port instead of `{{PORT}}`.
    pub fn port(mut self, port: u16) -> Self {
        self.listen = format!("127.0.0.1:{port}");
        self
    }

    /// `publicUrl`.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    /// Another kubeconfig for gatehouse's own Kubernetes client.
    pub fn kubeconfig(mut self, path: &str) -> Self {
        self.kubeconfig = path.to_owned();
        self
    }

    /// Admin sign-in with the test bed's password hash and signing key.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// The YAML.
    pub fn build(&self) -> String {
        let tb = self.tb;
        let mut y = format!("listen: {}\n", self.listen);
        if let Some(url) = &self.public_url {
            y.push_str(&format!("publicUrl: {url}\n"));
        }
        y.push_str(&format!(
            "tls: {{ certFile: \"{}\", keyFile: \"{}\" }}\nkubernetes: {{ kubeconfig: \"{}\" }}\n",
            tb.var("GATEHOUSE_TLS_CERT"),
            tb.var("GATEHOUSE_TLS_KEY"),
            self.kubeconfig
        ));
        if let Some(oidc) = &self.oidc {
            y.push_str(oidc);
            y.extend(self.oidc_lines.iter().map(String::as_str));
        }
        y.push_str(&format!("serviceAccounts: {}\n", self.service_accounts));
        y.extend(self.lines.iter().map(String::as_str));
        if self.admin {
            y.push_str(&format!(
                "admin:\n  enabled: true\n  passwordHash: '{}'\n  tokenSigningKey: '{}'\n",
                tb.var("GATEHOUSE_ADMIN_PASSWORD_HASH"),
                tb.var("GATEHOUSE_ADMIN_SIGNING_KEY")
            ));
        }
        y
    }
}
