//! Tests of loading: every section, environment aliases, secret files, and problems reported
//! at once.

use jsonwebtoken::Algorithm;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const HASH: &str = "$2b$10$abcdefghijklmnopqrstuu5ZkS0yq8M8W8xHk3M4Q4QmWQm0u1u2a";
const KEY: &str = "0123456789abcdef0123456789abcdef";

fn admin_problems(extra: &str) -> Vec<Problem> {
    let yaml = format!(
        "admin: {{ enabled: true, passwordHash: '{HASH}', tokenSigningKey: '{KEY}', {extra} }}"
    );
    match parse(&yaml, &env(&[])) {
        Err(ConfigError::Invalid(p)) => p,
        Ok(_) => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

fn admin(extra: &str) -> AdminConfig {
    let yaml = format!(
        "admin: {{ enabled: true, passwordHash: '{HASH}', tokenSigningKey: '{KEY}', {extra} }}"
    );
    parse(&yaml, &env(&[])).unwrap().admin.unwrap()
}

#[test]
fn a_bcrypt_cost_below_10_is_refused_with_how_to_make_a_new_hash() {
    let weak = HASH.replace("$10$", "$04$");
    let yaml =
        format!("admin: {{ enabled: true, passwordHash: '{weak}', tokenSigningKey: '{KEY}' }}");
    let Err(ConfigError::Invalid(problems)) = parse(&yaml, &env(&[])) else {
        panic!("a cost-4 hash must be refused")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "admin.passwordHash");
    assert!(
        problems[0].message.contains("cost 4"),
        "{}",
        problems[0].message
    );
    assert!(problems[0].message.contains("htpasswd -nbBC 12"));
    assert!(
        !problems[0].message.contains(&weak),
        "the hash is never echoed"
    );
    assert!(admin_problems("").is_empty(), "cost 10 is accepted");
}

#[test]
fn admin_token_ttl_defaults_to_8h_and_is_capped_at_24h() {
    assert_eq!(admin("").token_ttl, Duration::from_secs(8 * 3600));
    assert_eq!(
        admin("tokenTtl: 24h").token_ttl,
        Duration::from_secs(24 * 3600)
    );
    let p = admin_problems("tokenTtl: 25h");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "admin.tokenTtl");
    assert!(p[0].message.contains("at most 24h"));
    assert_eq!(admin_problems("tokenTtl: 0s")[0].key, "admin.tokenTtl");
}

#[test]
fn tokens_not_before_and_previous_key_are_read() {
    let a = admin(
        "tokensNotBefore: '2026-01-31T09:00:00Z', previousTokenSigningKey: 'fedcba9876543210fedcba9876543210'",
    );
    assert_eq!(a.tokens_not_before, Some(1_769_850_000));
    assert!(a.previous_token_signing_key.is_some());
    let p = admin_problems("tokensNotBefore: yesterday");
    assert_eq!(p[0].key, "admin.tokensNotBefore");
    let p = admin_problems("tokensNotBefore: '2999-01-01T00:00:00Z'");
    assert!(p[0].message.contains("in the future"), "{p:?}");
    let p = admin_problems("previousTokenSigningKey: short");
    assert_eq!(p[0].key, "admin.previousTokenSigningKey");
}

#[test]
fn system_impersonation_is_refused_unless_explicitly_allowed() {
    let p = admin_problems("impersonate: { user: 'admin', groups: ['system:masters'] }");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "admin.impersonate");
    assert!(p[0].message.contains("system:masters"));
    assert!(p[0].message.contains("admin.allowSystemImpersonation"));
    let p = admin_problems("impersonate: { user: 'admin', groups: [' system:masters'] }");
    assert!(
        p.iter()
            .any(|p| p.message.contains("surrounding whitespace")),
        "{p:?}"
    );
    let p = admin_problems("impersonate: { user: 'system:admin' }");
    assert_eq!(p[0].key, "admin.impersonate");
    let a = admin(
        "allowSystemImpersonation: true, impersonate: { user: 'admin', groups: ['system:masters'] }",
    );
    assert_eq!(a.impersonate_groups, vec!["system:masters"]);
    // The defaults are not system names.
    assert!(admin_problems("").is_empty());
}

#[test]
fn login_allowed_cidrs_are_parsed_and_matched() {
    let a = admin("loginAllowedCidrs: ['10.0.0.0/8', '192.0.2.7', 'fd00::/8']");
    assert_eq!(a.login_allowed_cidrs.len(), 3);
    assert!(a.login_allowed_from("10.1.2.3".parse().unwrap()));
    assert!(a.login_allowed_from("192.0.2.7".parse().unwrap()));
    assert!(!a.login_allowed_from("192.0.2.8".parse().unwrap()));
    assert!(a.login_allowed_from("fd12::1".parse().unwrap()));
    // IPv4-mapped IPv6 peers (a dual-stack listener) match the IPv4 network.
    assert!(a.login_allowed_from("::ffff:10.0.0.1".parse().unwrap()));
    assert!(!a.login_allowed_from("2001:db8::1".parse().unwrap()));
    assert!(admin("").login_allowed_from("203.0.113.1".parse().unwrap()));
    let p = admin_problems("loginAllowedCidrs: ['10.0.0.0/33', 'nope']");
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["admin.loginAllowedCidrs[0]", "admin.loginAllowedCidrs[1]"]
    );
}

fn browser(session: &str) -> Result<BrowserConfig, Vec<Problem>> {
    let yaml = format!(
        "publicUrl: https://gh.example\noidc: {{ issuerUrl: https://idp.example, clientId: c, clientSecret: s }}\nsession: {{ key: '{KEY}', {session} }}\n"
    );
    match parse(&yaml, &env(&[])) {
        Ok(c) => Ok(c.browser.unwrap()),
        Err(ConfigError::Invalid(p)) => Err(p),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn secure_cookies_get_host_prefixed_names() {
    let b = browser("").unwrap();
    assert_eq!(b.cookie_name, "__Host-gatehouse_session");
    assert_eq!(b.flow_cookie_name, "__Host-gatehouse_flow");
    // A configured name gets the prefix, once.
    assert_eq!(browser("cookieName: gh").unwrap().cookie_name, "__Host-gh");
    assert_eq!(
        browser("cookieName: __Host-gh").unwrap().cookie_name,
        "__Host-gh"
    );
    // Plain-HTTP development keeps plain names, and refuses prefixed ones.
    let b = browser("secureCookies: false").unwrap();
    assert_eq!(
        (b.cookie_name.as_str(), b.flow_cookie_name.as_str()),
        ("gatehouse_session", "gatehouse_flow")
    );
    let p = browser("secureCookies: false, cookieName: __Host-gh").unwrap_err();
    assert_eq!(p[0].key, "session.cookieName");
    let p = browser("cookieName: gatehouse_flow").unwrap_err();
    assert!(p[0].message.contains("flow cookie"));
}

#[test]
fn full_file_parses() {
    let yaml = format!(
        r#"
listen: 127.0.0.1:9443
publicUrl: https://gatehouse.example
kubernetes: {{ kubeconfig: /k, context: c }}
oidc:
  issuerUrl: https://idp.example/dex
  clientId: gatehouse
  cliClientId: gatehouse-cli
  additionalScopes: [groups, offline_access]
  audiences: [kubernetes]
  algorithms: [RS256, ES256]
  clockSkew: 30s
serviceAccounts:
  annotationPrefix: rbac.kargo.akuity.io
  namespaces: [team-a]
  globalNamespaces: [shared]
fallThrough: {{ enabled: false }}
admin:
  enabled: true
  passwordHash: "{HASH}"
  tokenSigningKey: "0123456789abcdef0123456789abcdef"
  tokenTtl: 1h
"#
    );
    let c = parse(&yaml, &env(&[])).unwrap();
    let o = c.oidc.unwrap();
    assert_eq!(o.client_ids(), vec!["gatehouse", "gatehouse-cli"]);
    assert_eq!(
        o.scopes(),
        vec!["openid", "profile", "email", "groups", "offline_access"]
    );
    assert_eq!(o.clock_skew, Duration::from_secs(30));
    assert_eq!(o.algorithms, Some(vec![Algorithm::RS256, Algorithm::ES256]));
    assert!(!c.fall_through);
    assert_eq!(
        c.service_accounts.watched_namespaces(),
        Some(vec!["shared".to_owned(), "team-a".to_owned()])
    );
    let a = c.admin.unwrap();
    assert_eq!(a.token_ttl, Duration::from_secs(3600));
    assert_eq!(a.impersonate_groups, vec!["gatehouse:admins"]);
}

#[test]
fn every_problem_is_listed_at_once() {
    let yaml = r#"
listen: not-an-address
oidc:
  issuerUrl: http://idp.example
  clientSecrets: x
  clockSkew: 5m
  algorithms: [HS256]
serviceAccounts: { globalNamespaces: shared }
admin: { enabled: true, passwordHash: plain }
unknownTop: 1
"#;
    let Err(ConfigError::Invalid(problems)) = parse(yaml, &env(&[])) else {
        panic!("expected problems")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for expected in [
        "listen",
        "oidc.issuerUrl",
        "oidc.clientId",
        "oidc.clientSecrets",
        "oidc.clockSkew",
        "oidc.algorithms",
        "serviceAccounts.globalNamespaces",
        "admin.passwordHash",
        "unknownTop",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
    let text = ConfigError::Invalid(problems).to_string();
    assert!(!text.contains("plain"), "secret values must not be echoed");
}

#[test]
fn origin_env_aliases_win_over_file() {
    let c = parse(
        "oidc: { issuerUrl: https://file.example, clientId: from-file }",
        &env(&[
            ("OIDC_ISSUER_URL", "https://env.example/"),
            ("OIDC_CLIENT_ID", "from-env"),
            ("OIDC_CLI_CLIENT_ID", "cli"),
            ("OIDC_ADDITIONAL_SCOPES", "groups, offline_access"),
            ("OIDC_USERNAME_CLAIM", "preferred_username"),
            ("GLOBAL_SERVICE_ACCOUNT_NAMESPACES", "shared,ops"),
            ("ADMIN_ACCOUNT_ENABLED", "true"),
            ("ADMIN_ACCOUNT_PASSWORD_HASH", HASH),
            (
                "ADMIN_ACCOUNT_TOKEN_SIGNING_KEY",
                "0123456789abcdef0123456789abcdef",
            ),
            ("ADMIN_ACCOUNT_TOKEN_TTL", "2h"),
        ]),
    )
    .unwrap();
    let o = c.oidc.unwrap();
    assert_eq!(o.issuer_url, "https://env.example/");
    assert_eq!(o.client_id, "from-env");
    assert_eq!(o.cli_client_id.as_deref(), Some("cli"));
    assert_eq!(o.additional_scopes, vec!["groups", "offline_access"]);
    assert_eq!(o.username_claim, "preferred_username");
    assert_eq!(c.service_accounts.global_namespaces, vec!["shared", "ops"]);
    assert_eq!(c.admin.unwrap().token_ttl, Duration::from_secs(7200));
}

#[test]
fn mapping_every_namespace_is_an_explicit_opt_in_and_never_covers_protected_namespaces() {
    let oidc = "oidc: { issuerUrl: https://idp.example, clientId: c }\n";
    // Neither namespaces nor allNamespaces: nothing is mappable, nothing is watched.
    let sa = parse(oidc, &env(&[])).unwrap().service_accounts;
    assert!(sa.maps_nothing());
    assert_eq!(sa.watched_namespaces(), Some(vec![]));
    assert!(!sa.scope().allows("team-a") && !sa.scope().allows("kube-system"));
    assert_eq!(sa.max_staleness, Duration::from_secs(300));

    // allNamespaces: every namespace but the protected ones and gatehouse's own (from the
    // setting and from POD_NAMESPACE alike).
    let c = parse(
        &format!("{oidc}serviceAccounts: {{ allNamespaces: true, gatehouseNamespace: gh-config }}"),
        &env(&[("POD_NAMESPACE", "gh-pod")]),
    )
    .unwrap();
    let sa = c.service_accounts;
    assert_eq!(sa.watched_namespaces(), None);
    let scope = sa.scope();
    assert!(scope.allows("team-a"));
    for ns in [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "gh-config",
        "gh-pod",
    ] {
        assert!(!scope.allows(ns), "{ns}");
    }

    // Listed by name, a protected namespace is mappable (and watched).
    let sa = parse(
        &format!("{oidc}serviceAccounts: {{ namespaces: [team-a, kube-system] }}"),
        &env(&[]),
    )
    .unwrap()
    .service_accounts;
    assert!(sa.scope().allows("kube-system") && !sa.scope().allows("team-b"));
    assert_eq!(
        sa.watched_namespaces(),
        Some(vec!["kube-system".to_owned(), "team-a".to_owned()])
    );

    let Err(ConfigError::Invalid(problems)) = parse(
        "serviceAccounts: { maxStaleness: 0s, allNamespaces: maybe }",
        &env(&[]),
    ) else {
        panic!("expected problems")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"serviceAccounts.maxStaleness"), "{keys:?}");
    assert!(keys.contains(&"serviceAccounts.allNamespaces"), "{keys:?}");
}

#[test]
fn secrets_from_files() {
    let dir = std::env::temp_dir().join(format!("gh-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hash_file = dir.join("hash");
    std::fs::write(&hash_file, format!("{HASH}\n")).unwrap();
    let yaml = format!(
        "admin: {{ enabled: true, passwordHashFile: {}, tokenSigningKeyFile: {} }}",
        hash_file.display(),
        dir.join("missing").display()
    );
    let Err(ConfigError::Invalid(problems)) = parse(&yaml, &env(&[])) else {
        panic!("expected a problem")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "admin.tokenSigningKeyFile");
}

#[test]
fn empty_config_is_fall_through_only() {
    let c = parse("", &env(&[])).unwrap();
    assert!(c.oidc.is_none() && c.admin.is_none() && c.fall_through);
    assert!(parse("fallThrough: {enabled: false}", &env(&[])).is_err());
}

#[test]
fn additional_parameters_from_file_and_env() {
    let yaml = r#"
oidc:
  issuerUrl: https://idp.example
  clientId: c
  additionalParameters: { connector_id: ldap, prompt: login, max_age: 0, "audience": "a=b, c" }
  userParameters:
    login_hint: { pattern: '[^@]+@example\.com' }
    kc_idp_hint: {}
"#;
    let o = parse(yaml, &env(&[])).unwrap().oidc.unwrap();
    assert_eq!(o.additional_parameters["connector_id"], "ldap");
    assert_eq!(o.additional_parameters["max_age"], "0");
    assert_eq!(o.additional_parameters["audience"], "a=b, c");
    let hint = &o.user_parameters["login_hint"];
    assert!(hint.accepts("alice@example.com"));
    assert!(
        !hint.accepts("alice@example.com.evil"),
        "the pattern must match the whole value"
    );
    assert!(o.user_parameters["kc_idp_hint"].accepts("anything"));

    let o = parse(
        "oidc: { issuerUrl: https://idp.example, clientId: c }",
        &env(&[(
            "OIDC_ADDITIONAL_PARAMETERS",
            r"resource=https://k8s?x=1,domain_hint=a\,b, prompt=",
        )]),
    )
    .unwrap()
    .oidc
    .unwrap();
    assert_eq!(o.additional_parameters["resource"], "https://k8s?x=1");
    assert_eq!(o.additional_parameters["domain_hint"], "a,b");
    assert_eq!(o.additional_parameters["prompt"], "");
}

#[test]
fn reserved_and_malformed_parameters_are_refused() {
    for (yaml, envs, key) in [
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, additionalParameters: { state: x } }",
            vec![],
            "oidc.additionalParameters.state",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, additionalParameters: { '': x } }",
            vec![],
            "oidc.additionalParameters.",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c }",
            vec![("OIDC_ADDITIONAL_PARAMETERS", "a=1,broken")],
            "OIDC_ADDITIONAL_PARAMETERS",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c }",
            vec![("OIDC_ADDITIONAL_PARAMETERS", "code_challenge=x")],
            "OIDC_ADDITIONAL_PARAMETERS.code_challenge",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, userParameters: { redirect_uri: {} } }",
            vec![],
            "oidc.userParameters.redirect_uri",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, additionalParameters: { prompt: login }, userParameters: { prompt: {} } }",
            vec![],
            "oidc.userParameters.prompt",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, userParameters: { login_hint: { pattern: '(' } } }",
            vec![],
            "oidc.userParameters.login_hint.pattern",
        ),
        // Compiles only inside the anchoring wrapper, whose `^(?:` and `)$` it would escape
        // (`^(?:x)|(.*)$` accepts any value).
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, userParameters: { login_hint: { pattern: 'x)|(.*' } } }",
            vec![],
            "oidc.userParameters.login_hint.pattern",
        ),
        (
            "oidc: { issuerUrl: https://i.example, clientId: c, userParameters: { login_hint: { pattern: 'a)|(?:' } } }",
            vec![],
            "oidc.userParameters.login_hint.pattern",
        ),
    ] {
        let Err(ConfigError::Invalid(problems)) = parse(yaml, &env(&envs)) else {
            panic!("{yaml} {envs:?} should fail")
        };
        assert!(
            problems.iter().any(|p| p.key == key),
            "{key} not in {problems:?}"
        );
    }
    let Err(ConfigError::Invalid(problems)) = parse(
        "oidc: { issuerUrl: https://i.example, clientId: c }",
        &env(&[("OIDC_ADDITIONAL_PARAMETERS", "a=1,broken")]),
    ) else {
        panic!()
    };
    assert!(
        problems[0].message.contains("\"broken\" has no `=`"),
        "{problems:?}"
    );
}

/// The documented example is a valid configuration (secret files aside).
#[test]
fn documented_example_parses() {
    let text = include_str!("../../../../docs/examples/config.yaml");
    let dir = std::env::temp_dir().join(format!("gh-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hash = dir.join("hash");
    let key = dir.join("key");
    std::fs::write(&hash, HASH).unwrap();
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let text = text
        .replace(
            "/etc/gatehouse/secret/admin-password-hash",
            hash.to_str().unwrap(),
        )
        .replace(
            "/etc/gatehouse/secret/admin-signing-key",
            key.to_str().unwrap(),
        )
        .replace(
            "/etc/gatehouse/secret/oidc-client-secret",
            key.to_str().unwrap(),
        )
        .replace("/etc/gatehouse/secret/session-key", key.to_str().unwrap());
    let c = parse(&text, &env(&[])).unwrap();
    let b = c.browser.as_ref().unwrap();
    assert_eq!(
        b.redirect_uri(),
        "https://gatehouse.example.com/auth/callback"
    );
    assert_eq!(
        c.oidc.unwrap().additional_parameters["connector_id"],
        "ldap"
    );
    assert_eq!(
        c.service_accounts.global_namespaces,
        vec!["platform-shared"]
    );
}

#[test]
fn yaml_syntax_error_is_reported() {
    assert!(matches!(
        parse("oidc: [", &env(&[])),
        Err(ConfigError::Syntax { .. })
    ));
    // The message names the place, never the text around it (it may be a secret).
    let err = parse(
        "oidc:\n  clientSecret: SECRET-CLIENT-VALUE\n  bad: [unclosed\n",
        &env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("SECRET-CLIENT-VALUE"), "{err}");
}

fn oidc_problems(extra: &str) -> Vec<String> {
    match parse(
        &format!("oidc: {{ issuerUrl: https://i.example, clientId: c, {extra} }}"),
        &env(&[]),
    ) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn jwks_min_refresh_interval_below_one_second_is_refused() {
    for bad in ["0s", "0", "500ms"] {
        assert_eq!(
            oidc_problems(&format!("jwksMinRefreshInterval: {bad}")),
            vec!["oidc.jwksMinRefreshInterval"],
            "{bad}"
        );
    }
    assert!(oidc_problems("jwksMinRefreshInterval: 1s").is_empty());
    let o = parse(
        "oidc: { issuerUrl: https://i.example, clientId: c }",
        &env(&[]),
    )
    .unwrap()
    .oidc
    .unwrap();
    assert_eq!(o.jwks_min_refresh_interval, Duration::from_secs(10));
}

#[test]
fn jwks_refresh_interval_defaults_to_five_minutes_within_bounds() {
    let o = parse(
        "oidc: { issuerUrl: https://i.example, clientId: c }",
        &env(&[]),
    )
    .unwrap()
    .oidc
    .unwrap();
    assert_eq!(o.jwks_refresh_interval, Duration::from_secs(300));
    for bad in ["59s", "0s", "2h"] {
        assert_eq!(
            oidc_problems(&format!("jwksRefreshInterval: {bad}")),
            vec!["oidc.jwksRefreshInterval"],
            "{bad}"
        );
    }
    assert!(oidc_problems("jwksRefreshInterval: 1m").is_empty());
    assert!(oidc_problems("jwksRefreshInterval: 1h").is_empty());
}

#[test]
fn email_verified_when_absent_defaults_to_untrusted() {
    let read = |extra: &str| {
        parse(
            &format!("oidc: {{ issuerUrl: https://i.example, clientId: c{extra} }}"),
            &env(&[]),
        )
        .unwrap()
        .oidc
        .unwrap()
    };
    let o = read("");
    assert!(!o.email_verified_when_absent);
    assert_eq!(o.claim_rules().username_claim, "email");
    assert!(!o.claim_rules().email_verified_when_absent);
    assert!(
        read(", emailVerifiedWhenAbsent: true")
            .claim_rules()
            .email_verified_when_absent
    );
    assert!(!o.accepts_access_tokens());
    assert!(read(", tokenType: access_token").accepts_access_tokens());
}

#[test]
fn kubernetes_pool_limits_default_to_100_and_must_be_at_least_one() {
    let c = parse("", &env(&[])).unwrap();
    assert_eq!(c.kubernetes.max_streams_per_connection, 100);
    assert_eq!(c.kubernetes.max_connections, 100);
    let described = c.describe();
    assert_eq!(described["kubernetes"]["maxStreamsPerConnection"], 100);
    assert_eq!(described["kubernetes"]["maxConnections"], 100);
    let c = parse(
        "kubernetes: { maxStreamsPerConnection: 50, maxConnections: 3 }",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.kubernetes.max_streams_per_connection, 50);
    assert_eq!(c.kubernetes.max_connections, 3);
    let Err(ConfigError::Invalid(problems)) = parse(
        "kubernetes: { maxStreamsPerConnection: 0, maxConnections: -1 }",
        &env(&[]),
    ) else {
        panic!("0 and -1 accepted");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "kubernetes.maxStreamsPerConnection",
            "kubernetes.maxConnections"
        ]
    );
    assert!(
        problems
            .iter()
            .all(|p| p.message.starts_with("must be at least 1")),
        "{problems:?}"
    );
    let Err(ConfigError::Invalid(problems)) =
        parse("kubernetes: { maxConnections: lots }", &env(&[]))
    else {
        panic!("a string accepted");
    };
    assert_eq!(problems[0].key, "kubernetes.maxConnections");
}

const AUTHN: &str = r#"
authentication:
  config:
    apiVersion: apiserver.config.k8s.io/v1
    kind: AuthenticationConfiguration
    jwt:
      - issuer:
          url: https://ci.example
          audiences: [gatehouse]
        claimMappings:
          username:
            expression: "'ci:' + claims.repository"
          groups:
            expression: "['ci:' + claims.repository_owner]"
      - issuer:
          url: https://idp.example
          audiences: [gatehouse]
        claimMappings:
          username: {claim: sub, prefix: "idp:"}
"#;

fn problems_of(yaml: &str) -> Vec<Problem> {
    match parse(yaml, &env(&[])) {
        Err(ConfigError::Invalid(p)) => p,
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_inline_authentication_configuration_is_compiled_at_load_with_issuer_settings() {
    let yaml = format!(
        "{AUTHN}  issuers:\n    - url: https://ci.example\n      name: CI\n      whenUnmapped: impersonate\n"
    );
    let c = parse(&yaml, &env(&[])).unwrap();
    let a = c.authentication.as_ref().unwrap();
    assert_eq!(a.source, AuthenticationSource::Inline);
    assert_eq!(a.initial.authenticators.len(), 2);
    let ci = a.settings("https://ci.example");
    assert_eq!(ci.when_unmapped.as_str(), "impersonate");
    assert_eq!(ci.name.as_deref(), Some("CI"));
    assert!(!ci.allow_system_names);
    // An issuer not named gets the defaults: fallThrough, no system names.
    assert_eq!(
        a.settings("https://idp.example").when_unmapped.as_str(),
        "fallThrough"
    );
    let d = c.describe();
    assert_eq!(d["authentication"]["jwt"][0]["whenUnmapped"], "impersonate");
    assert_eq!(
        d["authentication"]["jwt"][1]["issuer"],
        "https://idp.example"
    );
}

#[test]
fn every_problem_of_the_authentication_section_is_reported_with_its_path() {
    let bad = AUTHN
        .replace("url: https://idp.example", "url: http://idp.example")
        .replace("claims.repository_owner", "claims.repository_owner.nope(")
        + "  issuers:\n    - url: https://elsewhere.example\n    - url: https://ci.example\n      whenUnmapped: always\n    - {url: https://ci.example, colour: red}\n";
    let p = problems_of(&bad);
    let text: Vec<String> = p.iter().map(ToString::to_string).collect();
    let has = |needle: &str| {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "no problem says {needle:?}: {text:#?}"
        );
    };
    has(
        "authentication.config: jwt[1].issuer.url: Invalid value: \"http://idp.example\": URL scheme must be https",
    );
    has("authentication.config: jwt[0].claimMappings.groups.expression");
    has(
        "authentication.issuers[1].whenUnmapped: \"always\" is not fallThrough, impersonate or deny",
    );
    has("authentication.issuers[2]: unknown field `colour`");
    // The issuer URL check needs a file that compiles: it is reported then.
    let p = problems_of(&format!(
        "{AUTHN}  issuers:\n    - url: https://elsewhere.example\n"
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "authentication.issuers[0].url");
    assert!(
        p[0].message.contains("not the issuer.url of any jwt entry"),
        "{p:?}"
    );
}

#[test]
fn the_authentication_file_is_read_and_its_problems_name_it() {
    let dir = std::env::temp_dir().join(format!("gatehouse-authn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("authn.yaml");
    let inline = AUTHN.split_once("  config:\n").unwrap().1;
    let text: String = inline
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, &text).unwrap();
    let yaml = format!("authentication:\n  configFile: {}\n", file.display());
    let c = parse(&yaml, &env(&[])).unwrap();
    assert_eq!(
        c.authentication.unwrap().source,
        AuthenticationSource::File(file.clone())
    );
    std::fs::write(
        &file,
        text.replace("audiences: [gatehouse]", "audiences: []"),
    )
    .unwrap();
    let p = problems_of(&yaml);
    assert!(
        p.iter()
            .all(|p| p.key.starts_with("authentication.configFile (")
                && p.message.contains(".issuer.audiences")),
        "{p:?}"
    );
    assert_eq!(p.len(), 2, "{p:?}");
    let p = problems_of(&format!(
        "authentication:\n  configFile: {}\n  config: {{}}\n",
        file.display()
    ));
    assert!(p[0].message.contains("not both"), "{p:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
