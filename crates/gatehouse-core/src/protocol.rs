//! Protocol strings as types: the per-flow secrets and grant inputs of OAuth 2.0 / OpenID
//! Connect, and the two plain identifiers, so a function's signature says which string it
//! takes and a secret cannot be printed, logged or compared by accident.
//!
//! # Security
//! - The secrets ([`State`], [`Nonce`], [`PkceVerifier`], [`AuthorizationCode`],
//!   [`RefreshToken`]) wrap a [`SecretString`]: `Debug` prints `Name(<redacted>)`, there is no
//!   `Display`, and reading one takes `expose_secret()`. Equality ([`PartialEq`] and
//!   `matches`) is constant-time ([`crate::authorize::secrets_equal`]), because `state` and
//!   `nonce` are compared against what an attacker sends.
//! - Serde reads and writes each as the bare JSON string (the sealed flow cookie and the CLI
//!   cache keep their shape); serialising exposes the value by design, so only sealed or
//!   owner-only stores serialise them.
//! - The identifiers ([`Issuer`], [`ClientId`]) are public: `Display` and `Debug` print them,
//!   and they compare exactly (an issuer is matched byte for byte, OIDC Discovery §4.3).

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps `value`.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The value. Never log or print it.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }

            /// Whether `other` is this value, compared in constant time.
            pub fn matches(&self, other: &str) -> bool {
                crate::authorize::secrets_equal(self.expose_secret(), other)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.matches(other.expose_secret())
            }
        }

        impl Eq for $name {}

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(SecretString::from(value))
            }
        }

        impl From<SecretString> for $name {
            fn from(value: SecretString) -> Self {
                Self(value)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose_secret())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::from)
            }
        }
    };
}

secret_string!(
    /// The authorization request's `state` (RFC 6749 §10.12): binds the callback to the
    /// browser or CLI that started the sign-in.
    State
);
secret_string!(
    /// The authentication request's `nonce` (OIDC Core §3.1.2.1): the ID token must carry it.
    Nonce
);
secret_string!(
    /// The PKCE code verifier (RFC 7636 §4.1); only its S256 challenge leaves before the code
    /// exchange.
    PkceVerifier
);
secret_string!(
    /// An authorization code (RFC 6749 §4.1.2), exchanged once at the token endpoint.
    AuthorizationCode
);
secret_string!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps `value` as it is (no normalisation: comparison is exact).
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

identifier!(
    /// An OpenID Provider's issuer identifier (OIDC Discovery §3), compared exactly.
    Issuer
);
identifier!(
    /// An OAuth client identifier (RFC 6749 §2.2).
    ClientId
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_serialise_as_bare_strings() {
        let s = State::new("the-state-value");
        assert_eq!(format!("{s:?}"), "State(<redacted>)");
        assert_eq!(
            format!("{:?}", RefreshToken::new("rt-secret")),
            "RefreshToken(<redacted>)"
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"the-state-value\"");
        let back: State = serde_json::from_str("\"the-state-value\"").unwrap();
        assert_eq!(back, s);
        assert_eq!(back.expose_secret(), "the-state-value");
    }

    #[test]
    fn secrets_compare_by_value() {
        let n = Nonce::new("n1");
        assert!(n.matches("n1"));
        assert!(!n.matches("n2"));
        assert!(!n.matches("n1 "));
        assert!(!n.matches(""));
        assert_ne!(n, Nonce::new("n2"));
        assert_eq!(n, Nonce::new("n1"));
    }

    #[test]
    fn identifiers_print_compare_exactly_and_are_transparent() {
        let i = Issuer::new("https://idp.example/");
        assert_eq!(i.to_string(), "https://idp.example/");
        assert_ne!(i, Issuer::new("https://idp.example"));
        assert_eq!(i, "https://idp.example/");
        assert_eq!(
            serde_json::to_string(&ClientId::new("kubectl")).unwrap(),
            "\"kubectl\""
        );
        let c: ClientId = serde_json::from_str("\"kubectl\"").unwrap();
        assert_eq!(c.as_str(), "kubectl");
    }
}
