//! The kube-apiserver's structured authentication configuration
//! (`AuthenticationConfiguration`, `apiserver.config.k8s.io/v1`), read the way the
//! kube-apiserver reads it, so that one file describes identity for the cluster and for
//! gatehouse.
//!
//! - [`parse`]: the file (YAML or JSON), decoded strictly ([`model`]).
//! - [`compile`]: the kube-apiserver's validation rules, every problem with its path
//!   ([`validate`]), and every CEL expression compiled once ([`cel`]).
//! - [`Authenticator::user`]: verified claims made into the user the kube-apiserver would make
//!   ([`authenticator`]), or the reason it would refuse the token.
//!
//! Pure: no network, no files, no clock. Verifying a token's signature, issuer, audience and
//! lifetime is the caller's (gatehouse-core's `jwt` and the server's issuer), before its claims
//! come here.

pub mod authenticator;
pub mod cel;
pub mod model;
pub mod validate;

pub use authenticator::{Authenticator, MappingError, UserInfo};
pub use cel::Environment;
pub use model::AuthenticationConfiguration;
pub use validate::{Options, Problem};

/// Why the file could not be read as an `AuthenticationConfiguration`.
#[derive(Debug, thiserror::Error)]
#[error("the file is not an AuthenticationConfiguration: {0}")]
pub struct ParseError(String);

/// Reads the file's text (YAML, of which JSON is a part), refusing unknown and duplicated
/// fields as the kube-apiserver's strict decoding does.
pub fn parse(text: &str) -> Result<AuthenticationConfiguration, ParseError> {
    serde_saphyr::from_str(text).map_err(|e| ParseError(e.to_string()))
}

/// Validates `config` and compiles its authenticators (see [`validate`]).
pub fn compile(
    config: &AuthenticationConfiguration,
    options: &Options,
    env: &Environment,
) -> Result<Vec<Authenticator>, Vec<Problem>> {
    validate::compile(config, options, env)
}
