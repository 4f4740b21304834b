//! gatehouse's OpenID Connect client: the one place where the server, the CLI and doctor talk
//! to an identity provider. It does I/O, so it is not the core; what can be pure stays in
//! [`gatehouse_core`] (JWT verification with the time as an argument, the wire types).
//!
//! - [`http`]: the HTTP client that trusts the system roots plus an issuer's CA bundle, and
//!   JSON GET / form POST with typed errors (the OAuth error body read, never a token echoed).
//! - [`discovery`]: `/.well-known/openid-configuration`, typed, its `issuer` checked exactly,
//!   and the signing algorithms it allows.
//! - [`keys`]: the issuer's key set behind [`keys::KeySource`]; [`keys::RemoteKeys`] refetches
//!   on an unknown key ID (rate-limited) and refreshes periodically after `Cache-Control`.
//! - [`token`]: the token endpoint: authorization code with PKCE, refresh, the device grant
//!   (RFC 8628) with its polling, and revocation (RFC 7009).
//! - [`id_token`]: an ID token's signature, issuer, audience (the client) and `nonce`.

pub mod discovery;
pub mod http;
pub mod id_token;
pub mod keys;
pub mod token;

pub use gatehouse_core::discovery::Discovery;
pub use gatehouse_core::wire::oauth::{OAuthError, TokenResponse};

#[cfg(test)]
mod test_idp;
