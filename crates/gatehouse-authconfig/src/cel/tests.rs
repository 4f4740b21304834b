#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::*;

fn env() -> Environment {
    Environment::new().unwrap()
}

fn eval(source: &str, claims: serde_json::Value) -> Result<Value, EvalError> {
    let env = env();
    let e = env.compile(source, Variable::Claims, false).unwrap();
    env.eval(&e, &value::from_json(&claims), value::size(&claims))
}

fn string(source: &str, claims: serde_json::Value) -> String {
    match eval(source, claims) {
        Ok(Value::String(s)) => s.as_ref().clone(),
        other => panic!("{source}: {other:?}"),
    }
}

fn boolean(source: &str, claims: serde_json::Value) -> bool {
    match eval(source, claims) {
        Ok(Value::Bool(b)) => b,
        other => panic!("{source}: {other:?}"),
    }
}

fn strings(source: &str, claims: serde_json::Value) -> Vec<String> {
    match eval(source, claims) {
        Ok(Value::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.as_ref().clone(),
                other => panic!("{source}: element {other:?}"),
            })
            .collect(),
        other => panic!("{source}: {other:?}"),
    }
}

#[test]
fn an_undeclared_identifier_is_refused_at_load() {
    let err = env()
        .compile("user.name", Variable::Claims, false)
        .unwrap_err();
    assert!(err.contains("undeclared reference to 'user'"), "{err}");
    let err = env()
        .compile("claims.sub", Variable::User, false)
        .unwrap_err();
    assert!(err.contains("undeclared reference to 'claims'"), "{err}");
    // A comprehension's variable is declared inside it, and only there.
    assert!(
        env()
            .compile(
                "dyn(claims.groups).map(g, g + '!')",
                Variable::Claims,
                false
            )
            .is_ok()
    );
    let err = env()
        .compile(
            "dyn(claims.groups).map(g, g) + [g]",
            Variable::Claims,
            false,
        )
        .unwrap_err();
    assert!(err.contains("undeclared reference to 'g'"), "{err}");
}

#[test]
fn a_claim_is_not_a_comprehension_range_as_cel_go_types_it() {
    // `claims` is map(string, any): a claim is `any`, which cel-go's checker does not take as
    // a comprehension's range (the kube-apiserver refused a file of the conformance corpus
    // with exactly this message); `dyn()` or a nested field (typed dyn) is the way.
    let env = env();
    for refused in [
        "claims.groups.map(g, g)",
        "claims.groups.exists(g, g == 'a')",
        "claims['groups'].all(g, g != '')",
        "claims.?groups.orValue([]).filter(g, g != '')",
        "(true ? claims.a : claims.b).map(x, x)",
    ] {
        let err = env.compile(refused, Variable::Claims, false).unwrap_err();
        assert!(
            err.contains("expression of type 'any' cannot be range of a comprehension (must be list, map, or dynamic)"),
            "{refused}: {err}"
        );
    }
    for accepted in [
        "dyn(claims.groups).map(g, g)",
        "dyn(claims.?groups.orValue([])).filter(g, g != '')",
        "claims.?org.teams.orValue([]).map(t, t.name)",
        "claims.org.teams.map(t, t.name)",
        "claims.roles.split(',').map(r, r)",
        "(claims.a.split(',') + claims.b.split(',')).map(r, r)",
    ] {
        assert!(
            env.compile(accepted, Variable::Claims, false).is_ok(),
            "{accepted}"
        );
    }
}

#[test]
fn a_function_the_kube_apiserver_lacks_is_refused_at_load() {
    let err = env()
        .compile("base64.encode(claims.sub)", Variable::Claims, false)
        .unwrap_err();
    assert!(
        err.contains("undeclared reference to 'base64.encode'"),
        "{err}"
    );
    let err = env()
        .compile("claims.sub.shout()", Variable::Claims, false)
        .unwrap_err();
    assert!(err.contains("'shout'"), "{err}");
}

#[test]
fn a_validation_rule_must_be_typed_bool_as_cel_go_types_it() {
    let env = env();
    for refused in [
        "claims.admin",
        "claims.?email_verified.orValue(true)",
        "claims.x ? claims.y : true",
        "'true'",
    ] {
        assert_eq!(
            env.compile(refused, Variable::Claims, true).unwrap_err(),
            "must evaluate to bool",
            "{refused}"
        );
    }
    for accepted in [
        "claims.admin == true",
        "claims.?email_verified.orValue(true) == true",
        "has(claims.groups)",
        "dyn(claims.groups).exists(g, g == 'a')",
        "dyn(claims.groups).all(g, g.startsWith('a'))",
        "dyn(claims.groups).exists_one(g, g == 'a')",
        "'a' in claims.groups",
        "!(claims.sub == 'x')",
        "claims.sub.matches('^[a-z]+$')",
        "sets.equivalent(claims.aud, ['a', 'b'])",
        "claims.x ? true : false",
        "size(claims.groups) > 0",
    ] {
        assert!(
            env.compile(accepted, Variable::Claims, true).is_ok(),
            "{accepted}"
        );
    }
    // The user's fields are typed.
    assert!(
        env.compile("user.username.startsWith('system:')", Variable::User, true)
            .is_ok()
    );
    let err = env
        .compile("user.name == 'x'", Variable::User, true)
        .unwrap_err();
    assert!(err.contains("undefined field 'name'"), "{err}");
}

#[test]
fn the_expressions_people_write_give_what_kubernetes_gives() {
    let claims = json!({
        "sub": "User@Example.com",
        "email": "u@example.com",
        "email_verified": true,
        "groups": ["dev", "ops", ""],
        "n": 1,
        "nested": {"team": {"name": "core"}},
        "repository": "acme/site",
        "ref": "refs/heads/main",
    });
    assert_eq!(
        string("claims.sub.lowerAscii()", claims.clone()),
        "user@example.com"
    );
    assert_eq!(string("claims.sub.split('@')[0]", claims.clone()), "User");
    assert_eq!(
        string("'ci:' + claims.repository", claims.clone()),
        "ci:acme/site"
    );
    assert_eq!(string("claims.nested.team.name", claims.clone()), "core");
    assert_eq!(
        strings("dyn(claims.groups).map(g, 'oidc:' + g)", claims.clone()),
        ["oidc:dev", "oidc:ops", "oidc:"]
    );
    assert_eq!(
        strings("dyn(claims.groups).filter(g, g != '')", claims.clone()),
        ["dev", "ops"]
    );
    assert_eq!(
        string("claims.repository.split('/').join('-')", claims.clone()),
        "acme-site"
    );
    assert!(boolean(
        "claims.?email_verified.orValue(false) == true",
        claims.clone()
    ));
    assert!(!boolean(
        "claims.?missing.orValue(false) == true",
        claims.clone()
    ));
    assert!(boolean("has(claims.nested.team)", claims.clone()));
    assert!(!boolean("has(claims.nested.other)", claims.clone()));
    assert!(boolean(
        "claims.ref.startsWith('refs/heads/')",
        claims.clone()
    ));
    // JSON numbers are doubles, and compare equal to ints (cel-go's heterogeneous equality).
    assert!(boolean("claims.n == 1", claims.clone()));
    assert!(boolean("claims.n == 1.0", claims.clone()));
    assert!(boolean("claims.n < 2", claims.clone()));
    assert_eq!(
        string("claims.sub.upperAscii()", claims.clone()),
        "USER@EXAMPLE.COM"
    );
    // A missing claim is an evaluation error, not a default.
    assert!(matches!(
        eval("claims.missing", claims.clone()),
        Err(EvalError::Failed(_))
    ));
}

#[test]
fn the_kubernetes_library_functions_behave_as_kubernetes_documents_them() {
    let claims =
        json!({"aud": ["b", "a"], "roles": ["x", "y"], "s": "a1b22c333", "nums": [3, 1, 2]});
    assert!(boolean(
        "sets.equivalent(claims.aud, ['a', 'b'])",
        claims.clone()
    ));
    assert!(!boolean(
        "sets.equivalent(claims.aud, ['a'])",
        claims.clone()
    ));
    assert!(boolean("sets.contains(claims.aud, ['a'])", claims.clone()));
    assert!(!boolean("sets.contains(claims.aud, ['c'])", claims.clone()));
    assert!(boolean(
        "sets.intersects(claims.aud, ['c', 'a'])",
        claims.clone()
    ));
    assert!(!boolean(
        "sets.intersects(claims.roles, claims.aud)",
        claims.clone()
    ));
    assert_eq!(string("claims.s.find('[0-9]+')", claims.clone()), "1");
    assert_eq!(string("claims.s.find('z')", claims.clone()), "");
    assert_eq!(
        strings("claims.s.findAll('[0-9]+')", claims.clone()),
        ["1", "22", "333"]
    );
    assert_eq!(
        strings("claims.s.findAll('[0-9]+', 2)", claims.clone()),
        ["1", "22"]
    );
    assert!(!boolean("claims.nums.isSorted()", claims.clone()));
    assert!(boolean("claims.nums.sort().isSorted()", claims.clone()));
    assert!(boolean("claims.nums.sum() == 6", claims.clone()));
    assert!(boolean("claims.nums.min() == 1", claims.clone()));
    assert!(boolean("claims.nums.max() == 3", claims.clone()));
    assert!(boolean(
        "claims.roles.distinct() == ['x', 'y']",
        claims.clone()
    ));
}

#[test]
fn the_cost_bound_grows_with_nesting_and_refuses_what_would_run_too_long() {
    let env = env();
    let flat = env
        .compile("claims.sub == 'a'", Variable::Claims, true)
        .unwrap();
    let one = env
        .compile(
            "dyn(claims.groups).exists(g, g == 'a')",
            Variable::Claims,
            true,
        )
        .unwrap();
    let two = env
        .compile(
            "dyn(claims.groups).exists(g, dyn(claims.roles).exists(r, r == g))",
            Variable::Claims,
            true,
        )
        .unwrap();
    // String equality is linear in the strings' length.
    assert!(flat.cost_bound(1_000) < 5_000);
    assert!(one.cost_bound(1_000) < one.cost_bound(10_000));
    assert!(two.cost_bound(1_000) > COST_LIMIT);
    assert!(two.cost_bound(50) < COST_LIMIT);
    // With a token whose lists are long, the nested expression is not run.
    let many: Vec<String> = (0..2_000).map(|i| format!("g{i}")).collect();
    let claims = json!({"groups": many, "roles": many});
    let r = env.eval(&two, &value::from_json(&claims), value::size(&claims));
    assert!(matches!(r, Err(EvalError::CostLimit { .. })), "{r:?}");
    // With short ones it is.
    let claims = json!({"groups": ["a", "b"], "roles": ["b"]});
    let r = env.eval(&two, &value::from_json(&claims), value::size(&claims));
    assert_eq!(r, Ok(Value::Bool(true)));
}

#[test]
fn selects_finds_the_claims_the_email_rule_looks_for() {
    let env = env();
    let e = env
        .compile(
            "claims.?email_verified.orValue(true) == true && claims.email != ''",
            Variable::Claims,
            true,
        )
        .unwrap();
    assert!(e.selects("email_verified"));
    assert!(e.selects("email"));
    assert!(!e.selects("sub"));
    let shadowed = env
        .compile(
            "[claims].exists(claims, has(claims.email))",
            Variable::Claims,
            true,
        )
        .unwrap();
    assert!(!shadowed.selects("email"));
}

#[test]
fn escaped_names_and_unbounded_ranges_are_refused_at_load() {
    let env = env();
    for refused in [
        "claims.tenant__dash__id",
        "claims.?a__dot__b.orValue('')",
        "has(claims.x__slash__y)",
        "claims['__in__']",
    ] {
        let err = env.compile(refused, Variable::Claims, false).unwrap_err();
        assert!(err.contains("escaped name"), "{refused}: {err}");
    }
    assert!(
        env.compile("claims['tenant-id']", Variable::Claims, false)
            .is_ok()
    );
    let err = env
        .compile(
            "lists.range(size(claims.sub)).size() > 0",
            Variable::Claims,
            true,
        )
        .unwrap_err();
    assert!(err.contains("lists.range"), "{err}");
    // A literal range counts as a size: it is not smaller than the input.
    let e = env
        .compile(
            "lists.range(3000).all(i, dyn(claims.groups).all(g, g != ''))",
            Variable::Claims,
            true,
        )
        .unwrap();
    assert!(e.cost_bound(150) > COST_LIMIT, "{}", e.cost_bound(150));
    // replace can square a string's length: it costs two levels.
    let r = env
        .compile(
            "claims.a.replace('a', claims.a).replace('a', claims.a) != ''",
            Variable::Claims,
            true,
        )
        .unwrap();
    assert!(r.cost_bound(1_000) > COST_LIMIT);
}
