//! Fuzz body: the return path after sign-in ([`authorize::safe_return_path`]) and the
//! authorization URL with extra parameters ([`authorize::authorization_url`]).
//!
//! Properties (a panic is a finding):
//! - nothing panics;
//! - an accepted return path, resolved by a WHATWG URL parser (the `url` crate, as a browser
//!   resolves a `Location`) against gatehouse's origin, stays on that origin: no open
//!   redirect through `//host`, `/\host`, tabs or newlines, schemes or encodings;
//! - whatever extra parameters are asked for, the URL carries each protocol parameter exactly
//!   once with gatehouse's value (a reserved name among the extras is refused), and every extra
//!   parameter arrives with its value unchanged.
//!
//! Input: the return path, then `\0`, then extra parameters as `name\0value\n` records.

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use std::collections::BTreeMap;

use gatehouse_core::authorize::{
    self, AuthorizeError, FlowSecrets, RESERVED_PARAMETERS, safe_return_path,
};
use url::Url;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, extras) = text.split_once('\0').unwrap_or((text, ""));
    check_return_path(path);
    let extra: BTreeMap<String, String> = extras
        .split('\n')
        .filter_map(|r| r.split_once('\0'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    check_authorization_url(&extra);
}

fn check_return_path(path: &str) {
    let Some(accepted) = safe_return_path(path) else {
        return;
    };
    assert_eq!(accepted, path);
    let base = match Url::parse("https://gatehouse.example:8443/ui/") {
        Ok(u) => u,
        Err(e) => panic!("base URL: {e}"),
    };
    // A path the parser cannot resolve is one the browser would not follow at all.
    if let Ok(target) = base.join(path) {
        assert_eq!(
            target.origin(),
            base.origin(),
            "return path {path:?} leaves the origin: {target}"
        );
    }
}

fn check_authorization_url(extra: &BTreeMap<String, String>) {
    let secrets = FlowSecrets::from_random(&[7u8; 96]);
    let scopes = vec!["openid".to_owned(), "groups".to_owned()];
    let result = authorize::authorization_url(
        "https://idp.example/auth?tenant=a",
        "gatehouse",
        "https://gatehouse.example/auth/callback",
        &scopes,
        &secrets,
        extra,
    );
    let url = match result {
        Ok(url) => url,
        Err(AuthorizeError::Reserved(name)) => {
            assert!(RESERVED_PARAMETERS.contains(&name.as_str()) && extra.contains_key(&name));
            return;
        }
        Err(e) => panic!("the fixed endpoint was refused: {e}"),
    };
    assert!(
        !extra
            .keys()
            .any(|k| RESERVED_PARAMETERS.contains(&k.as_str())),
        "a reserved extra parameter was accepted"
    );
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let expected = [
        ("response_type", "code".to_owned()),
        ("client_id", "gatehouse".to_owned()),
        (
            "redirect_uri",
            "https://gatehouse.example/auth/callback".to_owned(),
        ),
        ("scope", "openid groups".to_owned()),
        ("state", secrets.state.expose_secret().to_owned()),
        ("nonce", secrets.nonce.expose_secret().to_owned()),
        ("code_challenge", secrets.code_challenge()),
        ("code_challenge_method", "S256".to_owned()),
    ];
    for (name, value) in &expected {
        let found: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found, vec![value], "{name} in {url}");
    }
    for (name, value) in extra {
        let found: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        let mut want = vec![value];
        let tenant = "a".to_owned();
        if name == "tenant" {
            want.insert(0, &tenant);
        }
        assert_eq!(found, want, "extra {name:?} in {url}");
    }
}
