//! The kube-apiserver's validation rules, each broken once: the problem, at its path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_authconfig::{Environment, Options, Problem, compile, parse};

fn problems(yaml: &str) -> Vec<Problem> {
    problems_with(yaml, &Options::default())
}

fn problems_with(yaml: &str, options: &Options) -> Vec<Problem> {
    let config = parse(yaml).unwrap();
    match compile(&config, options, &Environment::new().unwrap()) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    }
}

/// A file with one issuer whose `jwt[0]` body is `body` (indented by the caller).
fn one(body: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- {}\n",
        body.trim_start()
    )
}

const ISSUER: &str = "issuer:\n    url: https://issuer.example\n    audiences: [kubernetes]\n";

fn has(problems: &[Problem], path: &str, message_part: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.path == path && p.message.contains(message_part)),
        "no problem at {path} containing {message_part:?} in {problems:#?}"
    );
}

#[test]
fn a_complete_file_is_accepted() {
    let yaml = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://dex.example
    discoveryURL: https://dex.internal/.well-known/openid-configuration
    audiences: [kubernetes, gatehouse]
    audienceMatchPolicy: MatchAny
    egressSelectorType: controlplane
  claimValidationRules:
  - claim: hd
    requiredValue: example.com
  - expression: "claims.?email_verified.orValue(true) == true"
    message: the email must be verified
  claimMappings:
    username:
      expression: "'dex:' + claims.email"
    groups:
      claim: groups
      prefix: "dex:"
    uid:
      claim: sub
    extra:
    - key: example.com/team
      valueExpression: "claims.?team.orValue('')"
  userValidationRules:
  - expression: "!user.username.startsWith('system:')"
    message: no system names
- issuer:
    url: https://token.actions.githubusercontent.com
    audiences: [gatehouse]
  claimMappings:
    username:
      expression: "'ci:' + claims.repository"
anonymous:
  enabled: true
  conditions:
  - path: /livez
"#;
    let config = parse(yaml).unwrap();
    let authenticators =
        compile(&config, &Options::default(), &Environment::new().unwrap()).unwrap();
    assert_eq!(authenticators.len(), 2);
    assert_eq!(
        authenticators[1].issuer,
        "https://token.actions.githubusercontent.com"
    );
}

#[test]
fn unknown_and_misspelled_fields_are_refused_as_strict_decoding_refuses_them() {
    let err = parse(&one(&format!(
        "{ISSUER}  claimMappings:\n    username: {{claim: sub, prefix: ''}}\n  claimMapping: {{}}"
    )))
    .unwrap_err();
    assert!(err.to_string().contains("claimMapping"), "{err}");
    // Field names are case-sensitive, as in the kube-apiserver's decoder.
    let err = parse(&one("issuer:\n    URL: https://issuer.example\n    audiences: [k]\n  claimMappings:\n    username: {claim: sub, prefix: ''}")).unwrap_err();
    assert!(err.to_string().contains("URL"), "{err}");
    let err = parse(&one("issuer:\n    url: https://a.example\n    url: https://b.example\n    audiences: [k]\n  claimMappings:\n    username: {claim: sub, prefix: ''}")).unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("duplicate"),
        "{err}"
    );
}

#[test]
fn the_api_version_and_kind_must_be_the_kube_apiservers() {
    let p =
        problems("apiVersion: apiserver.config.k8s.io/v2\nkind: AuthenticationConfig\njwt: []\n");
    has(&p, "apiVersion", "must be one of");
    has(&p, "kind", "must be AuthenticationConfiguration");
    for version in ["v1", "v1beta1", "v1alpha1"] {
        assert!(
            problems(&format!(
                "apiVersion: apiserver.config.k8s.io/{version}\nkind: AuthenticationConfiguration\n"
            ))
            .is_empty()
        );
    }
}

#[test]
fn at_most_64_issuers() {
    let mut yaml =
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n"
            .to_owned();
    for i in 0..65 {
        yaml.push_str(&format!("- issuer: {{url: 'https://i{i}.example', audiences: [k]}}\n  claimMappings: {{username: {{claim: sub, prefix: ''}}}}\n"));
    }
    let p = problems(&yaml);
    has(&p, "jwt", "Too many: 65: must have at most 64 items");
}

#[test]
fn issuer_urls_follow_the_kube_apiservers_rules() {
    let mapping = "\n  claimMappings:\n    username: {claim: sub, prefix: ''}";
    let cases = [
        ("http://issuer.example", "URL scheme must be https"),
        ("https://issuer.example?x=1", "URL must not contain a query"),
        (
            "https://issuer.example#f",
            "URL must not contain a fragment",
        ),
        (
            "https://u:p@issuer.example",
            "URL must not contain a username or password",
        ),
    ];
    for (url, message) in cases {
        let p = problems(&one(&format!(
            "issuer: {{url: '{url}', audiences: [k]}}{mapping}"
        )));
        has(&p, "jwt[0].issuer.url", message);
    }
    let p = problems(&one(&format!("issuer: {{audiences: [k]}}{mapping}")));
    has(&p, "jwt[0].issuer.url", "Required value");
    let p = problems(&one(&format!(
        "issuer: {{url: 'https://a.example', discoveryURL: 'https://a.example/', audiences: [k]}}{mapping}"
    )));
    has(
        &p,
        "jwt[0].issuer.discoveryURL",
        "discoveryURL must be different from URL",
    );
    let p = problems_with(
        &one(&format!(
            "issuer: {{url: 'https://sa.example', audiences: [k]}}{mapping}"
        )),
        &Options {
            disallowed_issuers: vec!["https://sa.example".to_owned()],
        },
    );
    has(
        &p,
        "jwt[0].issuer.url",
        "URL must not overlap with disallowed issuers",
    );
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: 'https://a.example', discoveryURL: 'https://d.example/x', audiences: [k]}}{mapping}\n- issuer: {{url: 'https://a.example', discoveryURL: 'https://d.example/x', audiences: [k]}}{mapping}\n"
    );
    let p = problems(&yaml);
    has(&p, "jwt[1].issuer.url", "Duplicate value");
    has(&p, "jwt[1].issuer.discoveryURL", "Duplicate value");
}

#[test]
fn audiences_follow_the_kube_apiservers_rules() {
    let mapping = "\n  claimMappings:\n    username: {claim: sub, prefix: ''}";
    let p = problems(&one(&format!(
        "issuer: {{url: 'https://a.example'}}{mapping}"
    )));
    has(
        &p,
        "jwt[0].issuer.audiences",
        "at least one jwt[0].issuer.audiences is required",
    );
    let p = problems(&one(&format!(
        "issuer: {{url: 'https://a.example', audiences: [a, '', a]}}{mapping}"
    )));
    has(&p, "jwt[0].issuer.audiences[1]", "Required value");
    has(&p, "jwt[0].issuer.audiences[2]", "Duplicate value");
    has(
        &p,
        "jwt[0].issuer.audienceMatchPolicy",
        "must be MatchAny for multiple audiences",
    );
    let p = problems(&one(&format!(
        "issuer: {{url: 'https://a.example', audiences: [a], audienceMatchPolicy: MatchAll}}{mapping}"
    )));
    has(
        &p,
        "jwt[0].issuer.audienceMatchPolicy",
        "must be empty or MatchAny for single audience",
    );
    let p = problems(&one(&format!(
        "issuer: {{url: 'https://a.example', audiences: [a], certificateAuthority: 'not pem', egressSelectorType: proxy}}{mapping}"
    )));
    has(
        &p,
        "jwt[0].issuer.certificateAuthority",
        "does not contain any valid",
    );
    has(
        &p,
        "jwt[0].issuer.egressSelectorType",
        "must be either controlplane or cluster",
    );
}

#[test]
fn claim_validation_rules_follow_the_kube_apiservers_rules() {
    let yaml = one(&format!(
        "{ISSUER}  claimMappings:\n    username: {{claim: sub, prefix: ''}}\n  claimValidationRules:\n  - {{claim: a, expression: 'true'}}\n  - {{message: m}}\n  - {{claim: b, message: m}}\n  - {{expression: 'claims.x == 1', requiredValue: v}}\n  - {{claim: b}}\n  - {{expression: 'claims.x == 1'}}\n  - {{expression: 'claims.x'}}\n  - {{expression: 'claims.x =='}}\n"
    ));
    let p = problems(&yaml);
    let r = "jwt[0].claimValidationRules";
    has(
        &p,
        &format!("{r}[0]"),
        "claim and expression can't both be set",
    );
    has(&p, &format!("{r}[1]"), "claim or expression is required");
    has(
        &p,
        &format!("{r}[2].message"),
        "may not be specified when claim is set",
    );
    has(
        &p,
        &format!("{r}[3].requiredValue"),
        "may not be specified when expression is set",
    );
    has(&p, &format!("{r}[4].claim"), "Duplicate value");
    has(&p, &format!("{r}[5].expression"), "Duplicate value");
    has(&p, &format!("{r}[6].expression"), "must evaluate to bool");
    has(&p, &format!("{r}[7].expression"), "compilation failed");
}

#[test]
fn claim_mappings_follow_the_kube_apiservers_rules() {
    let m = "jwt[0].claimMappings";
    let p = problems(&one(&format!(
        "{ISSUER}  claimMappings: {{username: {{}}}}"
    )));
    has(
        &p,
        &format!("{m}.username"),
        "claim or expression is required",
    );
    let p = problems(&one(&format!(
        "{ISSUER}  claimMappings: {{username: {{claim: sub}}}}"
    )));
    has(
        &p,
        &format!("{m}.username.prefix"),
        "prefix is required when claim is set",
    );
    let p = problems(&one(&format!(
        "{ISSUER}  claimMappings: {{username: {{expression: 'claims.sub', prefix: x}}, groups: {{claim: g, expression: 'claims.g'}}, uid: {{claim: sub, expression: 'claims.sub'}}}}"
    )));
    has(
        &p,
        &format!("{m}.username.prefix"),
        "may not be specified when expression is set",
    );
    has(
        &p,
        &format!("{m}.groups"),
        "claim and expression can't both be set",
    );
    has(
        &p,
        &format!("{m}.uid"),
        "claim and expression can't both be set",
    );
    let p = problems(&one(&format!(
        "{ISSUER}  claimMappings: {{username: {{claim: sub, prefix: ''}}, groups: {{claim: groups}}}}"
    )));
    has(
        &p,
        &format!("{m}.groups.prefix"),
        "prefix is required when claim is set",
    );
}

#[test]
fn extra_keys_follow_the_kube_apiservers_rules() {
    let extra = "\n    - {key: team, valueExpression: \"'a'\"}\n    - {key: Example.com/team, valueExpression: \"'a'\"}\n    - {key: k8s.io/team, valueExpression: \"'a'\"}\n    - {key: authentication.kubernetes.io/x, valueExpression: \"'a'\"}\n    - {key: example.com/team, valueExpression: \"'a'\"}\n    - {key: example.com/team, valueExpression: \"'b'\"}\n    - {key: example.com/empty}\n    - {key: 'example.com/a b', valueExpression: \"'a'\"}\n    - {key: -bad.example/a, valueExpression: \"'a'\"}\n    - {key: gatehouse.dev/username, valueExpression: \"'a'\"}";
    let yaml = one(&format!(
        "{ISSUER}  claimMappings:\n    username: {{claim: sub, prefix: ''}}\n    extra:{extra}"
    ));
    let p = problems(&yaml);
    let e = "jwt[0].claimMappings.extra";
    has(&p, &format!("{e}[0].key"), "must be a domain-prefixed path");
    has(&p, &format!("{e}[1].key"), "must be lowercase");
    has(&p, &format!("{e}[2].key"), "reserved for Kubernetes use");
    has(&p, &format!("{e}[3].key"), "reserved for Kubernetes use");
    has(&p, &format!("{e}[5].key"), "Duplicate value");
    has(&p, &format!("{e}[6].valueExpression"), "Required value");
    has(&p, &format!("{e}[7].key"), "Invalid path");
    has(&p, &format!("{e}[8].key"), "RFC 1123 subdomain");
    has(&p, &format!("{e}[9].key"), "gatehouse.dev/ is reserved");
    assert!(!p.iter().any(|p| p.path == format!("{e}[4].key")), "{p:#?}");
}

#[test]
fn a_username_from_claims_email_needs_email_verified_somewhere() {
    let refused = one(&format!(
        "{ISSUER}  claimMappings: {{username: {{expression: 'claims.email'}}}}"
    ));
    has(
        &problems(&refused),
        "jwt[0].claimMappings.username.expression",
        "claims.email_verified must be used",
    );
    for accepted in [
        format!(
            "{ISSUER}  claimMappings: {{username: {{expression: 'claims.email_verified ? claims.email : claims.sub'}}}}"
        ),
        format!(
            "{ISSUER}  claimValidationRules: [{{expression: 'claims.?email_verified.orValue(true) == true'}}]\n  claimMappings: {{username: {{expression: 'claims.email'}}}}"
        ),
        format!(
            "{ISSUER}  claimMappings:\n    username: {{expression: 'claims.email'}}\n    extra: [{{key: example.com/v, valueExpression: 'string(claims.email_verified)'}}]"
        ),
    ] {
        let p = problems(&one(&accepted));
        assert!(p.is_empty(), "{accepted}: {p:#?}");
    }
}

#[test]
fn user_validation_rules_follow_the_kube_apiservers_rules() {
    let yaml = one(&format!(
        "{ISSUER}  claimMappings: {{username: {{claim: sub, prefix: ''}}}}\n  userValidationRules:\n  - {{message: m}}\n  - {{expression: \"user.username != ''\"}}\n  - {{expression: \"user.username != ''\"}}\n  - {{expression: 'user.username'}}\n  - {{expression: 'claims.sub == \"\"'}}"
    ));
    let p = problems(&yaml);
    let u = "jwt[0].userValidationRules";
    has(&p, &format!("{u}[0].expression"), "Required value");
    has(&p, &format!("{u}[2].expression"), "Duplicate value");
    has(&p, &format!("{u}[3].expression"), "must evaluate to bool");
    has(
        &p,
        &format!("{u}[4].expression"),
        "undeclared reference to 'claims'",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {url: 'http://a.example'}\n  claimMappings: {username: {claim: sub}}\n- issuer: {url: 'https://b.example', audiences: [k]}\n  claimMappings: {username: {expression: 'nope.x'}}\n";
    let p = problems(yaml);
    has(&p, "jwt[0].issuer.url", "https");
    has(&p, "jwt[0].issuer.audiences", "Required value");
    has(&p, "jwt[0].claimMappings.username.prefix", "Required value");
    has(
        &p,
        "jwt[1].claimMappings.username.expression",
        "undeclared reference to 'nope'",
    );
}
