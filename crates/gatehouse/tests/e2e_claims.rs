//! End-to-end: which claims gatehouse trusts (A2, `email_verified`), against the test bed's
//! real Keycloak and kube-apiserver. The Keycloak user whose address is not verified is created
//! at test time through Keycloak's admin REST API (and removed afterwards), so the test bed
//! needs no fixture change; names carry the process ID, so parallel runs do not collide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_test_support as support;

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use support::config::ServerConfig;
use support::{Gatehouse, Testbed, kubectl_admin};

/// Keycloak's admin REST API, signed in as the test bed's admin.
struct KeycloakAdmin {
    http: reqwest::Client,
    base: String,
}

impl KeycloakAdmin {
    fn new(tb: &Testbed) -> Self {
        Self {
            http: tb.http(),
            base: tb.var("KEYCLOAK_ADMIN_URL"),
        }
    }

    /// A fresh admin access token (the master realm's tokens live a minute).
    async fn token(&self, tb: &Testbed) -> String {
        let resp = self
            .http
            .post(format!(
                "{}/realms/master/protocol/openid-connect/token",
                self.base
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", tb.var("KEYCLOAK_ADMIN_USERNAME").as_str()),
                ("password", tb.var("KEYCLOAK_ADMIN_PASSWORD").as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "Keycloak admin sign-in: {}",
            resp.status()
        );
        let v: serde_json::Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    fn users(&self) -> String {
        format!("{}/admin/realms/gatehouse/users", self.base)
    }

    /// Creates a user of realm `gatehouse` and returns its ID.
    async fn create_user(
        &self,
        tb: &Testbed,
        username: &str,
        email: &str,
        password: &str,
    ) -> String {
        let resp = self
            .http
            .post(self.users())
            .bearer_auth(self.token(tb).await)
            .json(&serde_json::json!({
                "username": username, "email": email, "emailVerified": false, "enabled": true,
                "firstName": "Eve", "lastName": "Unverified",
                "credentials": [{"type": "password", "value": password, "temporary": false}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "Keycloak did not create {username}");
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        location.rsplit('/').next().unwrap().to_owned()
    }

    async fn set_email_verified(&self, tb: &Testbed, id: &str, verified: bool) {
        let resp = self
            .http
            .put(format!("{}/{id}", self.users()))
            .bearer_auth(self.token(tb).await)
            .json(&serde_json::json!({ "emailVerified": verified }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    async fn delete_user(&self, tb: &Testbed, id: &str) {
        let _ = self
            .http
            .delete(format!("{}/{id}", self.users()))
            .bearer_auth(self.token(tb).await)
            .send()
            .await;
    }
}

fn payload(token: &str) -> serde_json::Value {
    serde_json::Value::Object(gatehouse_core::token::unverified_claims(token).unwrap())
}

async fn get(tb: &Testbed, url: String, token: &str) -> (u16, String) {
    let r = tb.http().get(url).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The names this test creates.
struct Names {
    user: String,
    email: String,
    password: String,
    prefix: String,
    sa: String,
}

/// A Keycloak user sets an address (here: one a ServiceAccount annotation maps) without
/// verifying it. gatehouse must not map it, and must say why: with the default username claim
/// (`email`) the token is refused with 401, as the kube-apiserver refuses it; with another
/// username claim the user is signed in but the address is withheld from mapping (403, with
/// the reason). Once Keycloak marks the address verified, the same mapping works.
#[tokio::test]
#[ignore = "needs testbed"]
async fn unverified_keycloak_email_maps_nothing_and_is_refused_with_reason() {
    let tb = Testbed::load();
    tb.require_keycloak();
    let pid = std::process::id();
    let n = Names {
        user: format!("e2e-unverified-{pid}"),
        email: format!("e2e-unverified-{pid}@example.com"),
        password: format!("pw-{pid}-Unverified!"),
        prefix: format!("e2e-ev-{pid}.gatehouse.dev"),
        sa: format!("e2e-ev-{pid}"),
    };
    let kc = KeycloakAdmin::new(&tb);
    let id = kc.create_user(&tb, &n.user, &n.email, &n.password).await;
    let result = AssertUnwindSafe(scenario(&tb, &kc, &id, &n))
        .catch_unwind()
        .await;
    kc.delete_user(&tb, &id).await;
    let _ = kubectl_admin(&tb, &["delete", "rolebinding", &n.sa, "-n", "team-b"]);
    let _ = kubectl_admin(&tb, &["delete", "serviceaccount", &n.sa, "-n", "team-b"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(tb: &Testbed, kc: &KeycloakAdmin, id: &str, n: &Names) {
    // A ServiceAccount that maps the address, allowed to read team-b's configmaps.
    assert!(
        kubectl_admin(tb, &["create", "serviceaccount", &n.sa, "-n", "team-b"])
            .status
            .success()
    );
    assert!(
        kubectl_admin(
            tb,
            &[
                "annotate",
                "serviceaccount",
                &n.sa,
                "-n",
                "team-b",
                &format!("{}/claim.email={}", n.prefix, n.email),
            ]
        )
        .status
        .success()
    );
    assert!(
        kubectl_admin(
            tb,
            &[
                "create",
                "rolebinding",
                &n.sa,
                "-n",
                "team-b",
                "--role=configmap-reader",
                &format!("--serviceaccount=team-b:{}", n.sa),
            ]
        )
        .status
        .success()
    );
    let config = |username_claim: Option<&str>, fall_through: bool| {
        let mut c = ServerConfig::new(tb).keycloak();
        if let Some(claim) = username_claim {
            c = c.oidc_yaml(&format!("usernameClaim: {claim}"));
        }
        c.service_accounts(&format!(
            "{{ annotationPrefix: {}, namespaces: [team-b] }}",
            n.prefix
        ))
        .yaml(&format!("fallThrough: {{ enabled: {fall_through} }}"))
        .build()
    };
    // The default username claim (email), fall-through on: refused by gatehouse, and never
    // forwarded.
    let by_email = Gatehouse::start(&config(None, true), "https", true);
    // Username from `sub`, fall-through off: signed in, but the address maps nothing.
    let by_sub = Gatehouse::start(&config(Some("sub"), false), "https", true);
    let configmaps = |gh: &Gatehouse| format!("{}/api/v1/namespaces/team-b/configmaps", gh.url);

    let token = tb.keycloak_password_grant(&n.user, &n.password).await;
    let claims = payload(&token);
    assert_eq!(claims["email"], n.email.as_str());
    assert_eq!(claims["email_verified"], false, "{claims}");

    let (code, body) = get(tb, configmaps(&by_email), &token).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body.contains("has not verified this address (email_verified is false)"),
        "{body}"
    );
    let (code, body) = get(tb, format!("{}/v1/whoami", by_email.url), &token).await;
    assert_eq!(code, 401, "{body}");
    // The kube-apiserver (username claim `email`) refuses the same token on its own.
    let (code, _) = get(tb, format!("{}/api", tb.var("KUBE_APISERVER_URL")), &token).await;
    assert_eq!(
        code, 401,
        "the kube-apiserver refuses an unverified email too"
    );

    let (code, body) = get(tb, configmaps(&by_sub), &token).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("maps to no ServiceAccount")
            && body.contains("email claim is not used for mapping")
            && body.contains("email_verified is false"),
        "{body}"
    );
    let (code, body) = get(tb, format!("{}/v1/whoami", by_sub.url), &token).await;
    assert_eq!(code, 200, "{body}");
    let who: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(who["serviceAccounts"], serde_json::json!([]), "{who}");
    assert!(who["claims"].get("email").is_none(), "{who}");
    assert!(
        who["emailWithheld"]
            .as_str()
            .is_some_and(|s| s.contains("email_verified is false")),
        "{who}"
    );

    // Keycloak verifies the address: the same mapping now works, through both.
    kc.set_email_verified(tb, id, true).await;
    let token = tb.keycloak_password_grant(&n.user, &n.password).await;
    assert_eq!(payload(&token)["email_verified"], true);
    for gh in [&by_email, &by_sub] {
        let (code, body) = get(tb, configmaps(gh), &token).await;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"hello\""), "{body}");
    }
}
