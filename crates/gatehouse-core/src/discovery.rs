//! The parts of an OpenID Provider's discovery document (`/.well-known/openid-configuration`)
//! that gatehouse uses, shared by the server and the CLI.

use serde::{Deserialize, Serialize};

/// An issuer's discovery document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Discovery {
    /// `issuer`: must equal the configured issuer exactly.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `end_session_endpoint` (RP-initiated logout).
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// `device_authorization_endpoint` (RFC 8628).
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// `revocation_endpoint` (RFC 7009).
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// `scopes_supported`.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// `id_token_signing_alg_values_supported`.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207): the IdP puts `iss` in every
    /// authorization response, so a client must require it.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}
