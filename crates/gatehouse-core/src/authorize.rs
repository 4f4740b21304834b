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

use crate::protocol::{Nonce, PkceVerifier, State};

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

/// The per-flow secrets. Each field is a secret type ([`crate::protocol`]): `Debug` is
/// redacted and equality constant-time. The JSON shape (`{"state", "nonce", "verifier"}`, bare
/// strings) is what the server seals into its flow cookie.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowSecrets {
    /// `state`.
    pub state: State,
    /// `nonce`.
    pub nonce: Nonce,
    /// The PKCE code verifier.
    pub verifier: PkceVerifier,
}

impl FlowSecrets {
    /// Builds the secrets from 96 random bytes.
    pub fn from_random(bytes: &[u8; 96]) -> Self {
        Self {
            state: State::new(URL_SAFE_NO_PAD.encode(&bytes[..32])),
            nonce: Nonce::new(URL_SAFE_NO_PAD.encode(&bytes[32..64])),
            verifier: PkceVerifier::new(URL_SAFE_NO_PAD.encode(&bytes[64..])),
        }
    }

    /// The S256 code challenge of the verifier.
    pub fn code_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.expose_secret().as_bytes()))
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
            .append_pair("state", secrets.state.expose_secret())
            .append_pair("nonce", secrets.nonce.expose_secret())
            .append_pair("code_challenge", &secrets.code_challenge())
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// What a user-settable sign-in parameter accepts, as the server configured it. The server
/// holds a compiled pattern; the CLI compiles the one the server's public config names.
pub trait ParameterRule {
    /// The pattern as configured (unanchored), when there is one.
    fn pattern(&self) -> Option<&str>;
    /// Whether the whole `value` matches; `Err` when the pattern cannot be used here.
    fn accepts(&self, value: &str) -> Result<bool, String>;
}

/// Why a user's sign-in parameter was refused. Each surface (the browser's error page, the
/// CLI's message) words it its own way; the rule is this one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// A protocol parameter ([`RESERVED_PARAMETERS`]).
    #[error("{name:?} is a reserved protocol parameter")]
    Reserved {
        /// The parameter.
        name: String,
    },
    /// Given more than once, or also set by the server itself: which value the IdP would read
    /// is a guess, so neither is sent.
    #[error("{name:?} is given more than once")]
    Repeated {
        /// The parameter.
        name: String,
    },
    /// Not among the parameters the server lets users set.
    #[error("{name:?} is not a parameter users may set")]
    NotAllowed {
        /// The parameter.
        name: String,
    },
    /// Longer than [`MAX_PARAMETER_LEN`] bytes.
    #[error("the value of {name:?} is longer than {MAX_PARAMETER_LEN} bytes")]
    TooLong {
        /// The parameter.
        name: String,
    },
    /// The value does not match the server's pattern.
    #[error("the value of {name:?} does not match the pattern {pattern}")]
    Mismatch {
        /// The parameter.
        name: String,
        /// The pattern, as configured.
        pattern: String,
    },
    /// The pattern cannot be used (the CLI could not compile the server's pattern).
    #[error("the pattern for {name:?} cannot be used: {reason}")]
    BadPattern {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The authorization request's extra parameters: the server's static ones, then each of the
/// user's, vetted in order: not reserved, allowed by the server, at most
/// [`MAX_PARAMETER_LEN`] bytes, matching the server's pattern; no name twice, none the server
/// sets itself; reserved names compared without regard to ASCII case or surrounding space.
/// The first refusal is returned.
/// The browser flow and the CLI both use this one rule.
pub fn vet_user_parameters<R: ParameterRule>(
    static_parameters: &BTreeMap<String, String>,
    allowed: &BTreeMap<String, R>,
    user: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ParameterError> {
    let mut out = static_parameters.clone();
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in user {
        // An IdP may read names without regard to case or surrounding space.
        if RESERVED_PARAMETERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name.trim()))
        {
            return Err(ParameterError::Reserved { name });
        }
        if !seen.insert(name.clone()) {
            return Err(ParameterError::Repeated { name });
        }
        let Some(rule) = allowed.get(&name) else {
            return Err(ParameterError::NotAllowed { name });
        };
        if static_parameters.contains_key(&name) {
            return Err(ParameterError::Repeated { name });
        }
        if value.len() > MAX_PARAMETER_LEN {
            return Err(ParameterError::TooLong { name });
        }
        match rule.accepts(&value) {
            Ok(true) => {}
            Ok(false) => {
                let pattern = rule.pattern().unwrap_or_default().to_owned();
                return Err(ParameterError::Mismatch { name, pattern });
            }
            Err(reason) => return Err(ParameterError::BadPattern { name, reason }),
        }
        out.insert(name, value);
    }
    Ok(out)
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

    struct Prefix(Option<&'static str>);
    impl ParameterRule for Prefix {
        fn pattern(&self) -> Option<&str> {
            self.0
        }
        fn accepts(&self, value: &str) -> Result<bool, String> {
            match self.0 {
                Some("!") => Err("broken".to_owned()),
                Some(p) => Ok(value.starts_with(p)),
                None => Ok(true),
            }
        }
    }

    #[test]
    fn user_parameters_are_vetted_in_one_order() {
        let fixed: BTreeMap<String, String> = [("prompt".to_owned(), "login".to_owned())].into();
        let allowed: BTreeMap<String, Prefix> = [
            ("login_hint".to_owned(), Prefix(None)),
            ("acr_values".to_owned(), Prefix(Some("urn:"))),
            ("broken".to_owned(), Prefix(Some("!"))),
            ("state".to_owned(), Prefix(None)),
        ]
        .into();
        let vet = |pairs: &[(&str, &str)]| {
            vet_user_parameters(
                &fixed,
                &allowed,
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
        };
        let ok = vet(&[("login_hint", "alice"), ("acr_values", "urn:x")]).unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok["prompt"], "login");
        // Reserved wins even when an operator allowed the name.
        assert!(matches!(
            vet(&[("state", "x")]),
            Err(ParameterError::Reserved { .. })
        ));
        assert!(matches!(
            vet(&[("prompt", "none")]),
            Err(ParameterError::NotAllowed { .. })
        ));
        let long = "a".repeat(MAX_PARAMETER_LEN + 1);
        assert!(matches!(
            vet(&[("login_hint", &long)]),
            Err(ParameterError::TooLong { .. })
        ));
        assert_eq!(
            vet(&[("acr_values", "x")]),
            Err(ParameterError::Mismatch {
                name: "acr_values".to_owned(),
                pattern: "urn:".to_owned()
            })
        );
        assert!(matches!(
            vet(&[("broken", "x")]),
            Err(ParameterError::BadPattern { .. })
        ));
    }

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        let s = FlowSecrets {
            state: State::new(""),
            nonce: Nonce::new(""),
            verifier: PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
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
        assert_eq!(pairs["state"], s.state.expose_secret());
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

    /// The server seals this JSON into its flow cookie: the shape stays three bare strings.
    #[test]
    fn flow_secrets_json_shape_is_unchanged() {
        let s = FlowSecrets::from_random(&[0; 96]);
        let json = serde_json::to_value(&s).unwrap();
        let a = "A".repeat(43);
        assert_eq!(
            json,
            serde_json::json!({"state": a, "nonce": a, "verifier": a})
        );
        let back: FlowSecrets = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
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
        assert_ne!(s.state.expose_secret(), s.nonce.expose_secret());
        assert_eq!(s.verifier.expose_secret().len(), 43);
        let printed = format!("{s:?}");
        for secret in [
            s.state.expose_secret(),
            s.nonce.expose_secret(),
            s.verifier.expose_secret(),
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
