//! The token endpoint client against a scripted IdP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use secrecy::ExposeSecret as _;

use super::*;
use crate::test_idp::{Idp, Resp, Route};

fn form_has(req: &crate::test_idp::Req, k: &str, v: &str) -> bool {
    req.form().iter().any(|(a, b)| a == k && b == v)
}

#[tokio::test]
async fn an_oauth_error_answer_is_typed_with_its_code_and_description() {
    let idp = Idp::start(|_| {
        vec![Route::status(
            400,
            r#"{"error":"invalid_grant","error_description":"code reused"}"#,
        )]
    })
    .await;
    let http = reqwest::Client::new();
    let c = TokenClient::new(&http, ClientAuth::Public("cli"));
    let e = c
        .exchange_code(
            &format!("{}/token", idp.base),
            &AuthorizationCode::new("CODE-SECRET"),
            "http://127.0.0.1/cb",
            &PkceVerifier::new("VERIFIER"),
        )
        .await
        .unwrap_err();
    match &e {
        HttpError::Status { status, body, .. } => {
            assert_eq!(status.as_u16(), 400);
            assert_eq!(body.oauth_code(), Some("invalid_grant"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.oauth().unwrap().message(), "invalid_grant (code reused)");
    // What is shown names the error, never the code or the verifier sent.
    let text = format!("{e} {e:?}");
    assert!(text.contains("invalid_grant (code reused)"), "{text}");
    assert!(
        !text.contains("CODE-SECRET") && !text.contains("VERIFIER"),
        "{text}"
    );
    let req = &idp.seen()[0];
    assert!(form_has(req, "grant_type", "authorization_code"));
    assert!(form_has(req, "code_verifier", "VERIFIER"));
    assert!(form_has(req, "client_id", "cli"));
}

#[tokio::test]
async fn a_non_oauth_error_and_a_broken_answer_are_told_apart() {
    let idp = Idp::start(|_| vec![Route::status(502, "<html>bad gateway</html>")]).await;
    let http = reqwest::Client::new();
    let c = TokenClient::new(&http, ClientAuth::Public("cli"));
    let e = c
        .refresh(&format!("{}/token", idp.base), &RefreshToken::new("RT"))
        .await
        .unwrap_err();
    assert!(matches!(&e, HttpError::Status { status, .. } if status.as_u16() == 502));
    assert!(e.oauth().is_none());

    let idp = Idp::start(|_| vec![Route::status(200, r#"{"id_token": 5}"#)]).await;
    let e = c
        .refresh(&format!("{}/token", idp.base), &RefreshToken::new("RT"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Decode { .. }), "{e:?}");

    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/token", l.local_addr().unwrap().port())
    };
    let e = c
        .refresh(&dead, &RefreshToken::new("RT"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Transport { .. }), "{e:?}");
}

#[tokio::test]
async fn a_confidential_client_sends_its_secret_with_basic_auth_only() {
    let idp = Idp::start(|_| {
        vec![Route::ok(
            "/token",
            r#"{"id_token":"ID","refresh_token":"RT2","access_token":"AT"}"#,
        )]
    })
    .await;
    let http = reqwest::Client::new();
    let secret = SecretString::from("S3CRET");
    let c = TokenClient::new(
        &http,
        ClientAuth::Basic {
            client_id: "web",
            secret: &secret,
        },
    );
    let t = c
        .refresh(&format!("{}/token", idp.base), &RefreshToken::new("RT1"))
        .await
        .unwrap();
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "RT2");
    let req = &idp.seen()[0];
    // base64("web:S3CRET")
    assert_eq!(req.header("authorization"), Some("Basic d2ViOlMzQ1JFVA=="));
    assert!(form_has(req, "grant_type", "refresh_token"));
    assert!(form_has(req, "refresh_token", "RT1"));
    assert!(!req.body.contains("S3CRET") && !req.body.contains("client_id"));
}

#[tokio::test]
async fn revocation_sends_the_token_with_its_hint_and_reports_a_refusal() {
    let idp = Idp::handler(|_, req| {
        if req.form().iter().any(|(k, v)| k == "token" && v == "good") {
            Resp::json(200, "")
        } else {
            Resp::json(503, "{}")
        }
    })
    .await;
    let http = reqwest::Client::new();
    let c = TokenClient::new(&http, ClientAuth::Public("cli"));
    let url = format!("{}/revoke", idp.base);
    c.revoke_refresh_token(&url, &RefreshToken::new("good"))
        .await
        .unwrap();
    assert_eq!(idp.seen()[0].method, "POST");
    assert!(form_has(&idp.seen()[0], "token_type_hint", "refresh_token"));
    let e = c
        .revoke_refresh_token(&url, &RefreshToken::new("other"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Status { status, .. } if status.as_u16() == 503));
}

#[tokio::test]
async fn the_device_grant_polls_until_the_tokens_come() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let polls = std::sync::Arc::new(AtomicUsize::new(0));
    let p = std::sync::Arc::clone(&polls);
    let idp = Idp::handler(move |base, req| match req.path.as_str() {
        "/device" => Resp::json(
            200,
            serde_json::json!({"device_code": "DEV-SECRET", "user_code": "ABCD",
                "verification_uri": format!("{base}/activate"), "interval": 1})
            .to_string(),
        ),
        _ => {
            if p.fetch_add(1, Ordering::SeqCst) == 0 {
                Resp::json(400, r#"{"error":"authorization_pending"}"#)
            } else {
                Resp::json(200, r#"{"id_token":"ID"}"#)
            }
        }
    })
    .await;
    let http = reqwest::Client::new();
    let c = TokenClient::new(&http, ClientAuth::Public("cli"));
    let dev = c
        .device_authorization(&format!("{}/device", idp.base), &[("scope", "openid")])
        .await
        .unwrap();
    assert_eq!(dev.user_code, "ABCD");
    assert!(!format!("{dev:?}").contains("DEV-SECRET"));
    let token_endpoint = format!("{}/token", idp.base);
    let first = c
        .poll_device_once(&token_endpoint, &dev, &PkceVerifier::new("V"))
        .await
        .unwrap();
    assert!(
        matches!(&first, DevicePoll::Refused { status: 400, error, .. } if error == "authorization_pending"),
        "{first:?}"
    );
    let second = c
        .poll_device_once(&token_endpoint, &dev, &PkceVerifier::new("V"))
        .await
        .unwrap();
    assert!(matches!(second, DevicePoll::Done(_)));
    let req = &idp.seen()[1];
    assert!(form_has(req, "grant_type", DEVICE_CODE_GRANT));
    assert!(form_has(req, "device_code", "DEV-SECRET"));
}

fn refused(error: &str) -> DevicePoll<&'static str> {
    DevicePoll::Refused {
        status: 400,
        error: error.to_owned(),
        description: None,
    }
}

/// Runs `poll_device` (in paused tokio time) against scripted answers; returns the result and
/// the seconds between the start and each poll.
async fn script(
    answers: Vec<DevicePoll<&'static str>>,
    lifetime: u64,
) -> (Result<&'static str, PollEnd<()>>, Vec<u64>) {
    let start = tokio::time::Instant::now();
    let answers = std::cell::RefCell::new(answers.into_iter());
    let times = std::cell::RefCell::new(Vec::new());
    let result = poll_device(
        Duration::from_secs(5),
        Duration::from_secs(lifetime),
        || {
            times.borrow_mut().push(start.elapsed().as_secs());
            let next = answers.borrow_mut().next().expect("no poll after the end");
            async move { Ok(next) }
        },
    )
    .await;
    (result, times.into_inner())
}

#[tokio::test(start_paused = true)]
async fn device_polling_waits_the_interval_and_slows_down_for_good() {
    let (result, times) = script(
        vec![
            refused("authorization_pending"),
            refused("slow_down"),
            refused("authorization_pending"),
            refused("slow_down"),
            DevicePoll::Done("tokens"),
        ],
        600,
    )
    .await;
    assert_eq!(result.unwrap(), "tokens");
    assert_eq!(times, vec![5, 10, 20, 30, 45]);
}

#[tokio::test(start_paused = true)]
async fn device_polling_stops_on_another_error_and_before_the_deadline() {
    let (result, times) = script(vec![refused("access_denied")], 600).await;
    assert!(matches!(result, Err(PollEnd::Refused { error, .. }) if error == "access_denied"));
    assert_eq!(times, vec![5]);
    let (result, times) = script(
        vec![refused("authorization_pending"), refused("slow_down")],
        19,
    )
    .await;
    assert!(matches!(result, Err(PollEnd::Expired)));
    // The next poll (at 20 s) would be past the deadline (19 s): none is made.
    assert_eq!(times, vec![5, 10]);
}
