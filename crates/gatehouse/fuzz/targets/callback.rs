//! Fuzz body: the loopback redirect of `gatehouse login` ([`callback::read_callback`]), the
//! request a local process or a hostile page can also send.
//!
//! Properties (a panic is a finding):
//! - nothing panics, whatever the request target;
//! - a code or an IdP error is believed only from `/callback` with exactly one `state`, equal
//!   to this sign-in's (as `url` decodes it), and at most one `code`, `error`,
//!   `error_description` and `iss`;
//! - an `iss`, when present, names the issuer exactly (RFC 9207; the IdP here does not
//!   announce it, so it may be absent);
//! - the code handed to the token exchange is the one `code` parameter, unchanged.
//!
//! Input: the request target (`/callback?...`).

// A fuzz body reports a broken property by panicking: that is its whole job.
#![allow(clippy::panic)]

use gatehouse::cli::login::callback::{Arrival, IssCheck, State, read_callback};

const STATE: &str = "Zm9yLWZ1enppbmctb25seS1ub3QtYS1zZWNyZXQ";
const ISSUER: &str = "https://idp.example.com";

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(arrival) = read_callback(target, &State::new(STATE), &IssCheck::new(ISSUER, false))
    else {
        return;
    };
    let url = url::Url::parse(&format!("http://127.0.0.1{target}"))
        .unwrap_or_else(|e| panic!("believed a target that does not parse: {e}"));
    assert_eq!(url.path(), "/callback");
    assert_eq!(url.host_str(), Some("127.0.0.1"), "{target:?}");
    let values = |name: &str| -> Vec<String> {
        url.query_pairs()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    };
    assert_eq!(values("state"), vec![STATE.to_owned()], "{target:?}");
    for name in ["code", "error", "error_description", "iss"] {
        assert!(values(name).len() <= 1, "{name} repeated in {target:?}");
    }
    assert!(values("iss").iter().all(|v| v == ISSUER), "{target:?}");
    match arrival {
        Arrival::Code(code) => {
            assert_eq!(values("code"), vec![code.expose_secret().to_owned()]);
            assert!(values("error").is_empty());
        }
        Arrival::Refused(_) => assert_eq!(values("error").len(), 1),
    }
}
