//! Tests of [`super`]: each type against the JSON the server sent before it existed.

use secrecy::ExposeSecret as _;
use serde_json::json;

use super::*;

/// The JSON of `value`, for comparison with what the server sent before these types: as a
/// `Value`, since member order is not part of the contract.
fn wire<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn oidc() -> PublicOidc {
    PublicOidc {
        issuer_url: "https://idp.example/dex".into(),
        client_id: Some("gatehouse".into()),
        cli_client_id: "gatehouse-cli".into(),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        audiences: vec!["kubernetes".into()],
        username_claim: Some("email".into()),
        token_type: Some("id_token".into()),
        additional_parameters: BTreeMap::from([("connector_id".into(), "local".into())]),
        user_parameters: BTreeMap::from([
            (
                "login_hint".into(),
                UserParameter {
                    pattern: Some(".+@example\\.com".into()),
                },
            ),
            ("prompt".into(), UserParameter { pattern: None }),
        ]),
    }
}

#[test]
fn public_config_is_the_json_the_server_sent_before() {
    let config = PublicConfig {
        issuers: Vec::new(),
        public_url: Some("https://gh.example/".into()),
        oidc: Some(oidc()),
        admin_enabled: true,
        fall_through: false,
    };
    // What api.rs built with json! before these types.
    let before = json!({
        "publicUrl": "https://gh.example/",
        "oidc": {
            "issuerUrl": "https://idp.example/dex",
            "clientId": "gatehouse",
            "cliClientId": "gatehouse-cli",
            "scopes": ["openid", "profile", "email"],
            "audiences": ["kubernetes"],
            "usernameClaim": "email",
            "tokenType": "id_token",
            "additionalParameters": {"connector_id": "local"},
            "userParameters": {
                "login_hint": {"pattern": ".+@example\\.com"},
                "prompt": {"pattern": null},
            },
        },
        "adminEnabled": true,
        "fallThrough": false,
    });
    assert_eq!(wire(&config), before);
    let back: PublicConfig = serde_json::from_value(before).unwrap();
    assert_eq!(back, config);
}

#[test]
fn public_config_without_oidc_or_public_url_sends_nulls() {
    let config = PublicConfig {
        issuers: Vec::new(),
        public_url: None,
        oidc: None,
        admin_enabled: false,
        fall_through: true,
    };
    // Sent as nulls, not left out.
    let sent = wire(&config);
    assert_eq!(
        sent,
        json!({"publicUrl": null, "oidc": null, "adminEnabled": false, "fallThrough": true})
    );
    assert!(sent["oidc"].is_null() && sent.get("oidc").is_some());
}

#[test]
fn public_config_reads_a_newer_server_and_an_older_one() {
    // A newer server: fields this CLI does not know are ignored.
    let newer: PublicConfig = serde_json::from_value(json!({
        "publicUrl": null,
        "oidc": {"issuerUrl": "https://idp", "cliClientId": "cli", "clientId": "web",
                 "somethingNew": {"x": 1}},
        "adminEnabled": true, "fallThrough": false, "issuers": []
    }))
    .unwrap();
    assert!(newer.admin_enabled);
    assert_eq!(newer.oidc.as_ref().unwrap().cli_client_id, "cli");
    // An older server: no tokenType, userParameters, usernameClaim, audiences.
    let older: PublicConfig = serde_json::from_value(json!({
        "oidc": {"issuerUrl": "https://idp", "cliClientId": "cli", "scopes": ["openid"],
                 "additionalParameters": {}},
    }))
    .unwrap();
    let o = older.oidc.unwrap();
    assert_eq!(o.token_type, None);
    assert!(o.user_parameters.is_empty() && o.audiences.is_empty());
    assert!(!older.admin_enabled && !older.fall_through);
}

#[test]
fn public_config_without_what_a_sign_in_needs_is_refused_naming_the_field() {
    let e = serde_json::from_value::<PublicConfig>(json!({"oidc": {"cliClientId": "cli"}}))
        .unwrap_err();
    assert!(e.to_string().contains("issuerUrl"), "{e}");
    let e = serde_json::from_value::<PublicConfig>(json!({"oidc": {"issuerUrl": "https://i"}}))
        .unwrap_err();
    assert!(e.to_string().contains("cliClientId"), "{e}");
}

fn admin() -> WhoAmI {
    WhoAmI::Admin(AdminWhoAmI {
        username: "admin".into(),
        issuer: "gatehouse-admin".into(),
        expires_at: "2026-01-01T00:00:00Z".into(),
        kubernetes: KubernetesAccess::Impersonation(Impersonation::User {
            username: Some("gatehouse:admin".into()),
            groups: Some(vec!["system:masters".into()]),
        }),
    })
}

fn oidc_user(kubernetes: KubernetesAccess, mapped: Vec<String>) -> WhoAmI {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!("alice-sub"));
    claims.insert("groups".into(), json!(["devs"]));
    WhoAmI::Oidc(Box::new(OidcWhoAmI {
        username: "alice@example.com".into(),
        subject: "alice-sub".into(),
        issuer: "https://idp".into(),
        groups: vec!["devs".into()],
        audiences: vec!["gatehouse".into(), "kubernetes".into()],
        authorized_party: None,
        expires_at: "2026-01-01T00:00:00Z".into(),
        claims,
        email_withheld: Some("its email claim is not used".into()),
        service_accounts: mapped,
        kubernetes,
        issuer_name: None,
        uid: None,
        extra: Default::default(),
    }))
}

/// What api.rs built with json! for an OIDC user, with `kubernetes` and `mapped` as given.
fn oidc_before(kubernetes: Value, mapped: Value) -> Value {
    json!({
        "authenticatedBy": "oidc",
        "username": "alice@example.com",
        "subject": "alice-sub",
        "issuer": "https://idp",
        "groups": ["devs"],
        "audiences": ["gatehouse", "kubernetes"],
        "authorizedParty": null,
        "expiresAt": "2026-01-01T00:00:00Z",
        "claims": {"sub": "alice-sub", "groups": ["devs"]},
        "emailWithheld": "its email claim is not used",
        "serviceAccounts": mapped,
        "kubernetes": kubernetes,
    })
}

#[test]
fn whoami_of_the_admin_is_the_json_the_server_sent_before() {
    let before = json!({
        "authenticatedBy": "admin",
        "username": "admin",
        "issuer": "gatehouse-admin",
        "expiresAt": "2026-01-01T00:00:00Z",
        "kubernetes": {
            "username": "gatehouse:admin",
            "groups": ["system:masters"],
            "via": "impersonation",
        },
    });
    assert_eq!(wire(&admin()), before);
    assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), admin());
    // Without admin settings (not reachable: no admin token verifies then) the server sent
    // nulls, and still does.
    let bare = KubernetesAccess::Impersonation(Impersonation::User {
        username: None,
        groups: None,
    });
    assert_eq!(
        wire(&bare),
        json!({"username": null, "groups": null, "via": "impersonation"})
    );
}

#[test]
fn whoami_of_a_mapped_user_is_the_json_the_server_sent_before() {
    let mapped = vec!["team-a/deployer".to_owned(), "team-b/viewer".to_owned()];
    let who = oidc_user(
        KubernetesAccess::Impersonation(Impersonation::ServiceAccounts {
            service_accounts: mapped.clone(),
        }),
        mapped,
    );
    let before = oidc_before(
        json!({"via": "impersonation", "serviceAccounts": ["team-a/deployer", "team-b/viewer"]}),
        json!(["team-a/deployer", "team-b/viewer"]),
    );
    assert_eq!(wire(&who), before);
    assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), who);
    assert_eq!(who.service_accounts().len(), 2);
    assert_eq!(who.kubernetes_username(), Some("alice@example.com"));
}

#[test]
fn whoami_of_an_unmapped_user_is_the_json_the_server_sent_before() {
    let none = KubernetesAccess::Unmapped {
        message: "maps to no ServiceAccount and fall-through is disabled".into(),
    };
    let before = oidc_before(
        json!({"via": "none", "message": "maps to no ServiceAccount and fall-through is disabled"}),
        json!([]),
    );
    let who = oidc_user(none, vec![]);
    assert_eq!(wire(&who), before);
    assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), who);
}

#[test]
fn whoami_by_fall_through_is_the_json_the_server_sent_before() {
    let user = UserInfo {
        username: Some("bob".into()),
        uid: None,
        groups: Some(vec!["system:authenticated".into()]),
        extra: None,
    };
    // Each review the server could send: the userInfo as the kube-apiserver wrote it, an
    // error, or null.
    for (review, review_before) in [
        (
            Some(Review::User(user.clone())),
            json!({"username": "bob", "groups": ["system:authenticated"]}),
        ),
        (
            Some(Review::Error {
                error: "cannot reach the kube-apiserver: refused".into(),
            }),
            json!({"error": "cannot reach the kube-apiserver: refused"}),
        ),
        (None, Value::Null),
    ] {
        let kubernetes = KubernetesAccess::FallThrough {
            review: review.clone(),
        };
        let before = json!({
            "authenticatedBy": "fallThrough",
            "serviceAccounts": [],
            "kubernetes": { "via": "fallThrough", "review": review_before.clone() },
        });
        let who = WhoAmI::FallThrough(FallThroughWhoAmI {
            service_accounts: vec![],
            kubernetes: kubernetes.clone(),
        });
        assert_eq!(wire(&who), before);
        assert_eq!(serde_json::from_value::<WhoAmI>(before).unwrap(), who);
        // An OIDC user who maps to nothing falls through with the same view.
        let mapped_to_nothing = oidc_user(kubernetes, vec![]);
        assert_eq!(
            wire(&mapped_to_nothing),
            oidc_before(
                json!({"via": "fallThrough", "review": review_before}),
                json!([])
            )
        );
    }
    let who = WhoAmI::FallThrough(FallThroughWhoAmI {
        service_accounts: vec![],
        kubernetes: KubernetesAccess::FallThrough {
            review: Some(Review::User(user)),
        },
    });
    assert_eq!(who.username(), None);
    assert_eq!(who.kubernetes_username(), Some("bob"));
}

#[test]
fn a_review_user_info_keeps_the_fields_kubernetes_sent() {
    let sent = json!({"username": "system:serviceaccount:a:b", "uid": "u-1",
                      "groups": ["system:serviceaccounts"],
                      "extra": {"authentication.kubernetes.io/pod-name": ["p"]}});
    let review: Review = serde_json::from_value(sent.clone()).unwrap();
    assert!(matches!(&review, Review::User(u) if u.uid.as_deref() == Some("u-1")));
    assert_eq!(wire(&review), sent);
}

#[test]
fn whoami_reads_a_newer_server() {
    // Unknown fields are ignored; an unknown kind or `via` reads as Unknown.
    let who: WhoAmI = serde_json::from_value(json!({
        "authenticatedBy": "oidc", "username": "alice", "sessionId": "x",
        "kubernetes": {"via": "impersonation", "serviceAccounts": ["a/b"], "cluster": "c"}
    }))
    .unwrap();
    assert_eq!(who.username(), Some("alice"));
    assert!(matches!(
        who.kubernetes(),
        Some(KubernetesAccess::Impersonation(Impersonation::ServiceAccounts { service_accounts })) if service_accounts == &["a/b"]
    ));
    let who: WhoAmI =
        serde_json::from_value(json!({"authenticatedBy": "clientCertificate", "username": "x"}))
            .unwrap();
    assert_eq!(who, WhoAmI::Unknown);
    assert_eq!(who.authenticated_by(), None);
    let who: WhoAmI = serde_json::from_value(json!({
        "authenticatedBy": "oidc", "username": "alice",
        "kubernetes": {"via": "anotherCluster", "name": "c"}
    }))
    .unwrap();
    assert_eq!(who.kubernetes(), Some(&KubernetesAccess::Unknown));
    // Without `kubernetes` at all.
    let who: WhoAmI =
        serde_json::from_value(json!({"authenticatedBy": "admin", "username": "admin"})).unwrap();
    assert_eq!(who.kubernetes(), Some(&KubernetesAccess::Unknown));
}

#[test]
fn the_documented_examples_read() {
    // docs/cli.md, `gatehouse whoami --output json`: the `gatehouse` member.
    let who: WhoAmI = serde_json::from_value(json!(
        { "authenticatedBy": "oidc", "username": "...", "groups": ["..."],
          "kubernetes": { "via": "impersonation", "...": "..." } }
    ))
    .unwrap();
    assert_eq!(who.authenticated_by(), Some("oidc"));
    assert_eq!(who.groups(), Some(&["...".to_owned()][..]));
    // docs/api.md, `POST /v1/admin/login`.
    let request: AdminLoginRequest = serde_json::from_str(r#"{"password": "..."}"#).unwrap();
    assert_eq!(request.password.expose_secret(), "...");
    let answer: AdminLoginResponse =
        serde_json::from_str(r#"{"token": "...", "expiresAt": "..."}"#).unwrap();
    assert_eq!(answer.token.expose_secret(), "...");
    assert_eq!(answer.expires_at, "...");
}

#[test]
fn admin_login_bodies_are_the_json_sent_before_and_never_print_their_secrets() {
    let request = AdminLoginRequest {
        password: SecretString::from("hunter2-password".to_owned()),
    };
    assert_eq!(wire(&request), json!({"password": "hunter2-password"}));
    let answer = AdminLoginResponse {
        token: BearerToken::new("eyJ.secret-token.sig"),
        expires_at: "2026-01-01T00:00:00Z".into(),
    };
    assert_eq!(
        wire(&answer),
        json!({"token": "eyJ.secret-token.sig", "expiresAt": "2026-01-01T00:00:00Z"})
    );
    let printed = format!("{request:?} {answer:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("secret-token"),
        "{printed}"
    );
    assert!(printed.contains("2026-01-01T00:00:00Z"), "{printed}");
}
