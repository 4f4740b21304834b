//! The authorization-code request with PKCE, shared by the browser flow and the CLI.
//!
//! # Security
//! - `state`, `nonce` and the PKCE verifier are 256 random bits each (the caller supplies the
//!   randomness, so this module stays pure); the challenge is always S256.
//! - Protocol parameters ([`RESERVED_PARAMETERS`]) are written by this module only; extra
//!   parameters (static from the server, or per-user) can never override them, because any
//!   reserved name among them is refused before the URL is built.
//! - [`safe_return_path`] accepts only same-origin absolute paths, which closes open redirects
//!   through `//host`, `/\host`, schemes and control characters.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

/// The longest value a user may give an authorization-request parameter, in bytes.
pub const MAX_PARAMETER_LEN: usize = 512;

/// Compares two secrets (`state`, `nonce`) in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// Parameters that belong to the protocol and can never be configured or set by a user.
///
/// The one definition: the Helm chart's copy (`gatehouse.reservedParameters` in
/// `charts/gatehouse/templates/_helpers.tpl`, which `scripts/helm-test` reads) and the list
/// shown in `docs/helm.md` are checked against it by `tests/reserved_parameters_copies.rs`.
pub const RESERVED_PARAMETERS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
];

/// The per-flow secrets.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowSecrets {
    /// `state`.
    pub state: String,
    /// `nonce`.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
}

impl std::fmt::Debug for FlowSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowSecrets(<redacted>)")
    }
}

impl FlowSecrets {
    /// Builds the secrets from 96 random bytes.
    pub fn from_random(bytes: &[u8; 96]) -> Self {
        Self {
            state: URL_SAFE_NO_PAD.encode(&bytes[..32]),
            nonce: URL_SAFE_NO_PAD.encode(&bytes[32..64]),
            verifier: URL_SAFE_NO_PAD.encode(&bytes[64..]),
        }
    }

    /// The S256 code challenge of the verifier.
    pub fn code_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

/// Why an authorization URL could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The IdP's authorization endpoint is not a URL.
    #[error("the authorization endpoint {0:?} is not a valid URL")]
    Endpoint(String),
    /// An extra parameter uses a reserved name.
    #[error("{0:?} is a reserved protocol parameter and cannot be set")]
    Reserved(String),
}

/// Builds the authorization URL. `extra` holds static and user parameters, already vetted.
pub fn authorization_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    secrets: &FlowSecrets,
    extra: &BTreeMap<String, String>,
) -> Result<Url, AuthorizeError> {
    if let Some(name) = extra
        .keys()
        .find(|k| RESERVED_PARAMETERS.contains(&k.as_str()))
    {
        return Err(AuthorizeError::Reserved(name.clone()));
    }
    let mut url =
        Url::parse(endpoint).map_err(|_| AuthorizeError::Endpoint(endpoint.to_owned()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &secrets.state)
            .append_pair("nonce", &secrets.nonce)
            .append_pair("code_challenge", &secrets.code_challenge())
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// Returns `path` when it is a safe same-origin path to send the browser back to.
pub fn safe_return_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
        && path.len() <= 2048;
    ok.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        let s = FlowSecrets {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            s.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn url_carries_protocol_then_extra_parameters() {
        let s = FlowSecrets::from_random(&[7; 96]);
        let extra = BTreeMap::from([
            ("connector_id".to_owned(), "local".to_owned()),
            ("audience".to_owned(), "a b,c=d".to_owned()),
        ]);
        let url = authorization_url(
            "https://idp/auth?tenant=x",
            "c",
            "https://gh/auth/callback",
            &["openid".into(), "email".into()],
            &s,
            &extra,
        )
        .unwrap();
        let pairs: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["tenant"], "x");
        assert_eq!(pairs["scope"], "openid email");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["state"], s.state);
        assert_eq!(pairs["audience"], "a b,c=d");
        assert_eq!(pairs["connector_id"], "local");
    }

    #[test]
    fn reserved_extra_is_refused() {
        let s = FlowSecrets::from_random(&[1; 96]);
        let extra = BTreeMap::from([("state".to_owned(), "evil".to_owned())]);
        assert_eq!(
            authorization_url("https://idp/auth", "c", "r", &[], &s, &extra),
            Err(AuthorizeError::Reserved("state".into()))
        );
    }

    #[test]
    fn return_paths() {
        for ok in ["/", "/ui/whoami?ns=a", "/ui/access#x"] {
            assert_eq!(safe_return_path(ok), Some(ok));
        }
        // Percent-encoded text is inert in a Location path (no header splitting, no second
        // slash): it is kept as it is, not refused.
        for inert in ["/%0d%0aSet-Cookie:x", "/%2f%2fevil.example"] {
            assert_eq!(safe_return_path(inert), Some(inert), "{inert}");
        }
        let too_long = format!("/{}", "a".repeat(2048));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "",
            "/a\nb",
            "/a\rb",
            "/a\tb",
            "/a b",
            "/a\u{85}b",
            too_long.as_str(),
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_distinct_and_redacted() {
        let mut bytes = [0u8; 96];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap();
        }
        let s = FlowSecrets::from_random(&bytes);
        assert_ne!(s.state, s.nonce);
        assert_eq!(s.verifier.len(), 43);
        assert!(!format!("{s:?}").contains(&s.state));
    }
}
