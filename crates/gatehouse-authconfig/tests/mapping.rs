//! Claims made into users, the kube-apiserver's way: each rule of `authenticator.rs`'s
//! Security section, for the token that passes it and the token it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_authconfig::{
    Authenticator, Environment, MappingError, Options, UserInfo, compile, parse,
};
use serde_json::{Map, Value, json};

fn authenticator(body: &str) -> (Authenticator, Environment) {
    let yaml = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: 'https://issuer.example', audiences: [k]}}\n{body}"
    );
    let env = Environment::new().unwrap();
    let mut a = compile(&parse(&yaml).unwrap(), &Options::default(), &env).unwrap();
    (a.remove(0), env)
}

fn claims(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn user(body: &str, c: Value) -> Result<UserInfo, MappingError> {
    let (a, env) = authenticator(body);
    a.user(&env, &claims(c))
}

#[test]
fn a_username_claim_must_be_a_string_and_gets_its_prefix() {
    let m = "  claimMappings: {username: {claim: sub, prefix: 'oidc:'}}\n";
    assert_eq!(
        user(m, json!({"sub": "alice"})).unwrap().username,
        "oidc:alice"
    );
    assert!(matches!(
        user(m, json!({})),
        Err(MappingError::Claim { .. })
    ));
    assert!(matches!(
        user(m, json!({"sub": 7})),
        Err(MappingError::Claim { .. })
    ));
    assert!(matches!(
        user(m, json!({"sub": ["a"]})),
        Err(MappingError::Claim { .. })
    ));
    // Go decodes null into an empty string.
    assert_eq!(user(m, json!({"sub": null})).unwrap().username, "oidc:");
    let bare = "  claimMappings: {username: {claim: sub, prefix: ''}}\n";
    assert_eq!(
        user(bare, json!({"sub": "alice"})).unwrap().username,
        "alice"
    );
}

#[test]
fn the_email_claim_needs_email_verified_true_when_present() {
    let m = "  claimMappings: {username: {claim: email, prefix: ''}}\n";
    assert_eq!(user(m, json!({"email": "a@x"})).unwrap().username, "a@x");
    assert_eq!(
        user(m, json!({"email": "a@x", "email_verified": true}))
            .unwrap()
            .username,
        "a@x"
    );
    for refused in [json!(false), json!(null)] {
        assert_eq!(
            user(m, json!({"email": "a@x", "email_verified": refused})),
            Err(MappingError::EmailNotVerified)
        );
    }
    assert!(matches!(
        user(m, json!({"email": "a@x", "email_verified": "true"})),
        Err(MappingError::Claim { .. })
    ));
}

#[test]
fn a_username_expression_must_give_a_non_empty_string() {
    let m = "  claimMappings: {username: {expression: 'claims.?name.orValue(\"\")'}}\n";
    assert_eq!(user(m, json!({"name": "n"})).unwrap().username, "n");
    assert!(matches!(
        user(m, json!({})),
        Err(MappingError::Expression { .. })
    ));
    let m = "  claimMappings: {username: {expression: 'claims.n'}}\n";
    assert!(matches!(
        user(m, json!({"n": 1})),
        Err(MappingError::Expression { .. })
    ));
}

#[test]
fn groups_by_claim_are_a_string_or_strings_each_prefixed() {
    let m = "  claimMappings: {username: {claim: sub, prefix: ''}, groups: {claim: groups, prefix: 'g:'}}\n";
    let g = |c: Value| user(m, c).map(|u| u.groups);
    assert_eq!(
        g(json!({"sub": "a", "groups": ["x", "y"]})).unwrap(),
        ["g:x", "g:y"]
    );
    assert_eq!(g(json!({"sub": "a", "groups": "x"})).unwrap(), ["g:x"]);
    assert_eq!(
        g(json!({"sub": "a", "groups": null})).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(g(json!({"sub": "a"})).unwrap(), Vec::<String>::new());
    assert!(matches!(
        g(json!({"sub": "a", "groups": [1]})),
        Err(MappingError::Claim { .. })
    ));
    assert!(matches!(
        g(json!({"sub": "a", "groups": {"a": 1}})),
        Err(MappingError::Claim { .. })
    ));
    // Only a distributed claim: refused, not mapped to no groups.
    assert_eq!(
        g(
            json!({"sub": "a", "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://x"}}})
        ),
        Err(MappingError::DistributedClaim("groups".to_owned()))
    );
}

#[test]
fn groups_and_extra_by_expression_drop_empty_strings() {
    let m = "  claimMappings:\n    username: {claim: sub, prefix: ''}\n    groups: {expression: 'dyn(claims.roles).map(r, r.lowerAscii())'}\n    extra:\n    - {key: example.com/team, valueExpression: 'claims.teams'}\n    - {key: example.com/none, valueExpression: \"''\"}\n    - {key: example.com/one, valueExpression: \"'x'\"}\n";
    let u = user(
        m,
        json!({"sub": "a", "roles": ["Dev", "", "Ops"], "teams": ["t1", "", "t2"], "jti": "id-1"}),
    )
    .unwrap();
    assert_eq!(u.groups, ["dev", "ops"]);
    assert_eq!(u.extra["example.com/team"], ["t1", "t2"]);
    assert_eq!(u.extra["example.com/one"], ["x"]);
    assert!(!u.extra.contains_key("example.com/none"));
    assert_eq!(
        u.extra["authentication.kubernetes.io/credential-id"],
        ["JTI=id-1"]
    );
    assert!(matches!(
        user(m, json!({"sub": "a", "roles": [1], "teams": []})),
        Err(MappingError::Expression { .. })
    ));
}

#[test]
fn a_uid_claim_is_required_when_configured() {
    let m = "  claimMappings: {username: {claim: sub, prefix: ''}, uid: {claim: oid}}\n";
    assert_eq!(user(m, json!({"sub": "a", "oid": "1"})).unwrap().uid, "1");
    assert!(matches!(
        user(m, json!({"sub": "a"})),
        Err(MappingError::Claim { .. })
    ));
    let m = "  claimMappings: {username: {claim: sub, prefix: ''}, uid: {expression: 'claims.sub + \"-uid\"'}}\n";
    assert_eq!(user(m, json!({"sub": "a"})).unwrap().uid, "a-uid");
}

#[test]
fn claim_validation_rules_refuse_with_their_message() {
    let m = "  claimValidationRules:\n  - {claim: hd, requiredValue: example.com}\n  - {expression: 'claims.aud.size() <= 2', message: too many audiences}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n";
    assert!(user(m, json!({"sub": "a", "hd": "example.com", "aud": ["k"]})).is_ok());
    assert_eq!(
        user(m, json!({"sub": "a", "hd": "other.com", "aud": ["k"]})),
        Err(MappingError::RequiredClaim {
            claim: "hd".to_owned()
        })
    );
    assert!(matches!(
        user(m, json!({"sub": "a", "aud": ["k"]})),
        Err(MappingError::Claim { .. })
    ));
    assert_eq!(
        user(
            m,
            json!({"sub": "a", "hd": "example.com", "aud": ["k", "l", "m"]})
        ),
        Err(MappingError::RuleFailed {
            expression: "claims.aud.size() <= 2".to_owned(),
            message: "too many audiences".to_owned()
        })
    );
}

#[test]
fn user_validation_rules_see_the_mapped_user() {
    let m = "  claimMappings: {username: {claim: sub, prefix: ''}, groups: {claim: groups, prefix: ''}}\n  userValidationRules:\n  - {expression: \"!user.username.startsWith('system:')\", message: no system names}\n  - {expression: \"!('system:masters' in user.groups)\", message: no masters}\n";
    assert!(user(m, json!({"sub": "alice", "groups": ["dev"]})).is_ok());
    assert!(matches!(
        user(m, json!({"sub": "system:admin"})),
        Err(MappingError::RuleFailed { ref message, .. }) if message == "no system names"
    ));
    assert!(matches!(
        user(m, json!({"sub": "bob", "groups": ["system:masters"]})),
        Err(MappingError::RuleFailed { ref message, .. }) if message == "no masters"
    ));
}

#[test]
fn a_ci_identity_maps_by_cel_to_a_username_and_a_group() {
    let m = "  claimValidationRules:\n  - {expression: \"claims.ref.startsWith('refs/heads/')\", message: only branches}\n  claimMappings:\n    username: {expression: \"'ci:' + claims.repository + ':' + claims.ref.split('/')[2]\"}\n    groups: {expression: \"['ci:' + claims.repository.split('/')[0]]\"}\n";
    let u = user(m, json!({"sub": "repo:acme/site:ref:refs/heads/main", "repository": "acme/site", "ref": "refs/heads/main"})).unwrap();
    assert_eq!(u.username, "ci:acme/site:main");
    assert_eq!(u.groups, ["ci:acme"]);
    assert!(matches!(
        user(m, json!({"repository": "acme/site", "ref": "refs/tags/v1"})),
        Err(MappingError::RuleFailed { .. })
    ));
}

#[test]
fn a_split_or_find_all_list_is_not_a_list_of_strings_as_the_kube_apiserver_reads_it() {
    // The kube-apiserver's string-list conversion refuses cel-go's native string lists (the
    // conformance test found it): split's or findAll's own list, even empty, in the result
    // position; through map, filter, + or a literal the same strings pass.
    let refused = [
        "claims.csv.split(',')",
        "claims.sub.findAll('[a-z]')",
        "true ? claims.csv.split(',') : []",
        "claims.?missing.orValue('').split(',')",
        "dyn(claims.csv.split(','))",
        "[claims.csv.split(',')][0]",
        "optional.of(claims.csv.split(',')).value()",
        "optional.of(claims.csv.split(',')).orValue([])",
    ];
    for expression in refused {
        let m = format!(
            "  claimMappings:\n    username: {{claim: sub, prefix: ''}}\n    groups: {{expression: \"{expression}\"}}\n"
        );
        match user(&m, json!({"sub": "a", "csv": "x,y"})) {
            Err(MappingError::Expression { problem, .. }) => {
                assert!(
                    problem.contains("must return a string or a list of strings"),
                    "{expression}: {problem}"
                );
            }
            other => panic!("{expression}: {other:?}"),
        }
    }
    let accepted = [
        ("claims.csv.split(',').map(c, c)", vec!["x", "y"]),
        ("claims.csv.split(',') + []", vec!["x", "y"]),
        ("false ? claims.csv.split(',') : ['z']", vec!["z"]),
        (
            "claims.?csv.orValue('') == '' ? [] : claims.csv.split(',').filter(c, c != 'y')",
            vec!["x"],
        ),
        ("claims.csv.split(',')[0]", vec!["x"]),
        ("[['q'], claims.csv.split(',')][0]", vec!["q"]),
        ("optional.none().orValue(['w'])", vec!["w"]),
    ];
    for (expression, want) in accepted {
        let m = format!(
            "  claimMappings:\n    username: {{claim: sub, prefix: ''}}\n    groups: {{expression: \"{expression}\"}}\n"
        );
        assert_eq!(
            user(&m, json!({"sub": "a", "csv": "x,y"})).unwrap().groups,
            want,
            "{expression}"
        );
    }
}

#[test]
fn an_empty_jti_gives_no_credential_id() {
    let m = "  claimMappings: {username: {claim: sub, prefix: ''}}\n";
    assert!(
        user(m, json!({"sub": "a", "jti": ""}))
            .unwrap()
            .extra
            .is_empty()
    );
    assert_eq!(
        user(m, json!({"sub": "a", "jti": "j"})).unwrap().extra["authentication.kubernetes.io/credential-id"],
        ["JTI=j"]
    );
}

#[test]
fn claim_names_the_kube_apiserver_would_unescape_are_refused() {
    // With CEL, the kube-apiserver reads `claims.tenant__dash__id` as claims['tenant-id']:
    // gatehouse refuses the expression at load, and tokens whose keys are such names.
    let with_cel = "  claimMappings:\n    username: {claim: sub, prefix: ''}\n    extra: [{key: example.com/t, valueExpression: \"claims.?team.orValue('')\"}]\n";
    assert_eq!(
        user(with_cel, json!({"sub": "a", "tenant__dash__id": "b"})),
        Err(MappingError::EscapedClaimName)
    );
    assert_eq!(
        user(with_cel, json!({"sub": "a", "org": {"x__dot__y": 1}})),
        Err(MappingError::EscapedClaimName)
    );
    // Not escapes: an unknown __word__, a keyword inside a longer name, single underscores.
    for fine in ["a__b__c", "x__if__", "snake_case_name", "__", "___"] {
        assert!(
            user(with_cel, json!({"sub": "a", fine: 1})).is_ok(),
            "{fine}"
        );
    }
    // Without CEL nothing is unescaped, on either side.
    let plain = "  claimMappings: {username: {claim: sub, prefix: ''}}\n";
    assert!(user(plain, json!({"sub": "a", "tenant__dash__id": "b"})).is_ok());
}
