//! The issuer's discovery document (`/.well-known/openid-configuration`, OpenID Connect
//! Discovery 1.0), typed as [`Discovery`], and the signing algorithms it allows.
//!
//! # Security
//! - The document's `issuer` must equal the configured issuer exactly (Discovery §4.3): a
//!   document naming another issuer is refused ([`DiscoveryError::IssuerMismatch`]), so tokens
//!   of that other issuer are never checked against our configuration.
//! - [`signing_algorithms`] keeps only asymmetric algorithms (never `none`, never HMAC, whose
//!   "secret" would be the issuer's public key), and RS256 when the document names none.

use jsonwebtoken::Algorithm;

pub use gatehouse_core::discovery::Discovery;
use gatehouse_core::jwt;

use crate::http::{self, HttpError};

/// Why the discovery document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The request failed, or the answer is no discovery document.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The document names another issuer.
    #[error(
        "discovery document names issuer {found:?}, but gatehouse is configured with {expected:?}; set oidc.issuerUrl to exactly the issuer's value"
    )]
    IssuerMismatch {
        /// The document's URL.
        url: String,
        /// Configured.
        expected: String,
        /// Found.
        found: String,
    },
}

/// The discovery document's URL for `issuer`.
pub fn url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches `issuer`'s discovery document; its `issuer` must equal `issuer` exactly.
pub async fn fetch(http: &reqwest::Client, issuer: &str) -> Result<Discovery, DiscoveryError> {
    let url = url(issuer);
    let d: Discovery = http::get_json(http, &url, None).await?;
    check_issuer(d, issuer, url)
}

/// Fetches a discovery document from `url` (not derived from the issuer); its `issuer` must
/// equal `issuer` exactly, as the kube-apiserver requires for a `discoveryURL`.
pub async fn fetch_from(
    http: &reqwest::Client,
    url: &str,
    issuer: &str,
) -> Result<Discovery, DiscoveryError> {
    let d: Discovery = http::get_json(http, url, None).await?;
    check_issuer(d, issuer, url.to_owned())
}

/// `d` when its `issuer` is exactly `expected`.
pub fn check_issuer(
    d: Discovery,
    expected: &str,
    url: String,
) -> Result<Discovery, DiscoveryError> {
    if d.issuer != expected {
        return Err(DiscoveryError::IssuerMismatch {
            url,
            expected: expected.to_owned(),
            found: d.issuer,
        });
    }
    Ok(d)
}

/// The asymmetric algorithms of `id_token_signing_alg_values_supported`, or RS256 when it names
/// none.
pub fn signing_algorithms(d: &Discovery) -> Vec<Algorithm> {
    let mut algs: Vec<Algorithm> = d
        .id_token_signing_alg_values_supported
        .iter()
        .filter_map(|a| a.parse::<Algorithm>().ok())
        .filter(|a| jwt::is_asymmetric(*a))
        .collect();
    if algs.is_empty() {
        algs.push(Algorithm::RS256);
    }
    algs
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::test_idp::{Idp, Route};

    fn doc(issuer: &str, base: &str) -> String {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/keys"),
            "id_token_signing_alg_values_supported": ["HS256", "ES256", "none"],
        })
        .to_string()
    }

    #[tokio::test]
    async fn the_issuer_must_equal_the_configured_one_exactly() {
        let idp = Idp::start(|base| {
            vec![Route::ok(
                "/.well-known/openid-configuration",
                doc(&format!("{base}/"), base),
            )]
        })
        .await;
        let http = reqwest::Client::new();
        // The document says "<base>/"; configured without the slash: refused, not normalised.
        match fetch(&http, &idp.base).await {
            Err(DiscoveryError::IssuerMismatch {
                expected, found, ..
            }) => {
                assert_eq!(expected, idp.base);
                assert_eq!(found, format!("{}/", idp.base));
            }
            other => panic!("{other:?}"),
        }
        let d = fetch(&http, &format!("{}/", idp.base)).await.unwrap();
        assert_eq!(d.token_endpoint, format!("{}/token", idp.base));
    }

    #[tokio::test]
    async fn a_discovery_url_elsewhere_must_still_name_the_issuer() {
        let idp = Idp::start(|base| {
            vec![Route::ok(
                "/elsewhere/openid-configuration",
                doc("https://issuer.example", base),
            )]
        })
        .await;
        let http = reqwest::Client::new();
        let url = format!("{}/elsewhere/openid-configuration", idp.base);
        let d = fetch_from(&http, &url, "https://issuer.example")
            .await
            .unwrap();
        assert_eq!(d.jwks_uri, format!("{}/keys", idp.base));
        match fetch_from(&http, &url, "https://other.example").await {
            Err(DiscoveryError::IssuerMismatch { found, .. }) => {
                assert_eq!(found, "https://issuer.example");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_or_broken_document_is_an_http_error() {
        let idp = Idp::start(|_| vec![Route::status(404, r#"{"error":"not_found"}"#)]).await;
        let http = reqwest::Client::new();
        match fetch(&http, &idp.base).await {
            Err(DiscoveryError::Http(HttpError::Status { status, body, .. })) => {
                assert_eq!(status.as_u16(), 404);
                assert_eq!(body.oauth_code(), Some("not_found"));
            }
            other => panic!("{other:?}"),
        }
        let idp = Idp::start(|_| vec![Route::ok("/.well-known/openid-configuration", "{}")]).await;
        assert!(matches!(
            fetch(&http, &idp.base).await,
            Err(DiscoveryError::Http(HttpError::Decode { .. }))
        ));
    }

    #[test]
    fn only_asymmetric_algorithms_are_taken_from_discovery() {
        let mut d = Discovery {
            id_token_signing_alg_values_supported: vec![
                "HS256".into(),
                "ES256".into(),
                "none".into(),
            ],
            ..Discovery::default()
        };
        assert_eq!(signing_algorithms(&d), vec![Algorithm::ES256]);
        d.id_token_signing_alg_values_supported = vec!["HS512".into()];
        assert_eq!(signing_algorithms(&d), vec![Algorithm::RS256]);
    }
}
