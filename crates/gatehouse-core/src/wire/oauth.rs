//! The OAuth 2.0 token endpoint's answers (RFC 6749 §5.1 and §5.2), as the server's browser
//! sign-in and the CLI (code, device and refresh grants) read them from the IdP.
//!
//! Reading is tolerant: every field is optional and unknown fields (`token_type`,
//! `expires_in`, `scope`, IdP extensions) are ignored; what a grant cannot do without is
//! checked by the caller, with its own message.
//!
//! # Security
//! The tokens are [`SecretString`]s: `Debug` never prints them, and reading one takes
//! `expose_secret()`. An error body holds no secret, and is what callers may show.

use secrecy::SecretString;
use serde::Deserialize;

/// A successful token endpoint answer. `Debug` is redacted.
#[derive(Debug, Default, Deserialize)]
pub struct TokenResponse {
    /// `id_token`.
    #[serde(default, deserialize_with = "secret")]
    pub id_token: Option<SecretString>,
    /// `refresh_token`.
    #[serde(default, deserialize_with = "secret")]
    pub refresh_token: Option<SecretString>,
    /// `access_token`.
    #[serde(default, deserialize_with = "secret")]
    pub access_token: Option<SecretString>,
}

/// An OAuth error answer: `{"error": "invalid_grant", "error_description": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OAuthError {
    /// `error`: the error code. `None` when absent or `null` (then the body is no OAuth error).
    #[serde(default)]
    pub error: Option<String>,
    /// `error_description`.
    #[serde(default)]
    pub error_description: Option<String>,
}

impl OAuthError {
    /// The error code, when the body has a non-empty one.
    pub fn code(&self) -> Option<&str> {
        self.error.as_deref().filter(|e| !e.is_empty())
    }

    /// `error (error_description)`, or the code alone without a description.
    pub fn message(&self) -> String {
        let code = self.error.as_deref().unwrap_or_default();
        match &self.error_description {
            Some(d) if !d.is_empty() => format!("{code} ({d})"),
            _ => code.to_owned(),
        }
    }
}

/// An optional string as an optional [`SecretString`] (secrecy's own `Deserialize` needs its
/// `serde` feature; this is the whole of what it would do here).
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(SecretString::from))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn a_token_response_reads_what_idps_send_and_never_prints_a_token() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"at-secret","token_type":"Bearer","expires_in":3600,
                "refresh_token":"rt-secret","id_token":"id-secret","scope":"openid"}"#,
        )
        .unwrap();
        assert_eq!(t.id_token.as_ref().unwrap().expose_secret(), "id-secret");
        assert_eq!(
            t.refresh_token.as_ref().unwrap().expose_secret(),
            "rt-secret"
        );
        assert_eq!(
            t.access_token.as_ref().unwrap().expose_secret(),
            "at-secret"
        );
        let printed = format!("{t:?}");
        for token in ["id-secret", "rt-secret", "at-secret"] {
            assert!(!printed.contains(token), "{printed}");
        }
        // Only an access token (no openid scope), or nulls: read, the caller decides.
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","id_token":null}"#).unwrap();
        assert!(t.id_token.is_none() && t.refresh_token.is_none());
    }

    #[test]
    fn an_oauth_error_reads_with_or_without_its_parts() {
        let e: OAuthError = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"code reused","error_uri":"x"}"#,
        )
        .unwrap();
        assert_eq!(e.code(), Some("invalid_grant"));
        assert_eq!(e.message(), "invalid_grant (code reused)");
        let e: OAuthError = serde_json::from_str(r#"{"error":"slow_down"}"#).unwrap();
        assert_eq!(e.message(), "slow_down");
        for not_oauth in [
            r#"{}"#,
            r#"{"error":null}"#,
            r#"{"error":""}"#,
            r#"{"message":"x"}"#,
        ] {
            let e: OAuthError = serde_json::from_str(not_oauth).unwrap();
            assert_eq!(e.code(), None, "{not_oauth}");
        }
    }
}
