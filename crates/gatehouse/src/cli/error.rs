//! The CLI's errors: each kind says what failed, keeps its cause, and carries a hint that names
//! the command to run next. Nothing here ever holds a token, a code or a password.

use std::error::Error as _;

/// A CLI failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The token cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] crate::cli::cache::CacheError),
    /// An HTTP request failed (connection, TLS, timeout).
    #[error("cannot reach {what} at {url}")]
    Unreachable {
        /// What was being contacted ("the gatehouse server", "the identity provider").
        what: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
        /// What to do about it.
        hint: String,
    },
    /// A server or IdP answered with an error.
    #[error("{what} at {url} answered {status}: {message}")]
    Refused {
        /// What answered.
        what: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error text from the answer (never a token).
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// An answer could not be understood.
    #[error("{what} at {url} sent an answer that cannot be read: {reason}")]
    BadAnswer {
        /// What answered.
        what: &'static str,
        /// The URL.
        url: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The CA file is unusable.
    #[error("cannot use the certificate authority file {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Nothing is cached for a server.
    #[error("not logged in to {server}")]
    NotLoggedIn {
        /// The server.
        server: String,
        /// The login command to run.
        hint: String,
    },
    /// The cached token expired and cannot be refreshed.
    #[error("the token for {server} has expired and could not be refreshed")]
    RefreshFailed {
        /// The server.
        server: String,
        /// Why the refresh failed.
        #[source]
        source: Box<CliError>,
        /// The login command to run.
        hint: String,
    },
    /// The ID token from the IdP did not verify.
    #[error("the ID token from {issuer} did not verify")]
    Verify {
        /// The issuer.
        issuer: String,
        /// The reason.
        #[source]
        source: gatehouse_core::jwt::VerifyError,
    },
    /// The sign-in itself failed (state mismatch, IdP error, timeout...).
    #[error("sign-in failed: {reason}")]
    Login {
        /// Why.
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// A `--param` is not allowed by the server or does not match its pattern.
    #[error("parameter {name:?}: {reason}")]
    Parameter {
        /// The parameter name.
        name: String,
        /// Why it is refused.
        reason: String,
        /// The parameters the server allows.
        hint: String,
    },
    /// A server's sign-in settings differ from those pinned at the first sign-in, and there
    /// is no terminal to ask on.
    #[error(
        "the sign-in settings of {server} changed since they were pinned at your first sign-in: {changes}"
    )]
    ConfigChanged {
        /// The server.
        server: String,
        /// The changes, for people.
        changes: String,
        /// What to do about it.
        hint: String,
    },
    /// The command line or the environment is not usable.
    #[error("{reason}")]
    Usage {
        /// Why.
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// A local I/O failure (kubeconfig, listener, terminal).
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// Sets the hint of a refusal (`Refused`); other errors are returned unchanged.
    pub fn refusal_hint(self, hint: impl Into<String>) -> Self {
        match self {
            CliError::Refused {
                what,
                url,
                status,
                message,
                ..
            } => CliError::Refused {
                what,
                url,
                status,
                message,
                hint: hint.into(),
            },
            other => other,
        }
    }

    /// A hint for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Cache(e) => Some(e.hint()),
            CliError::Unreachable { hint, .. }
            | CliError::Refused { hint, .. }
            | CliError::NotLoggedIn { hint, .. }
            | CliError::RefreshFailed { hint, .. }
            | CliError::Login { hint, .. }
            | CliError::Parameter { hint, .. }
            | CliError::ConfigChanged { hint, .. }
            | CliError::Usage { hint, .. } => Some(hint.clone()).filter(|h| !h.is_empty()),
            CliError::Ca { .. } => Some(
                "pass a PEM file holding the CA certificate(s) with --certificate-authority"
                    .to_owned(),
            ),
            CliError::Verify { .. } => Some(
                "check the clock of this machine, and that the server's issuer and client IDs match the IdP (`gatehouse doctor`)"
                    .to_owned(),
            ),
            CliError::BadAnswer { .. } | CliError::Io { .. } => None,
        }
    }

    /// Builds an [`CliError::Io`].
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            source,
        }
    }

    /// Prints the error, its causes and the hint on stderr.
    pub fn report(&self) {
        eprintln!("gatehouse: error: {self}");
        let mut cause = self.source();
        while let Some(c) = cause {
            eprintln!("  caused by: {c}");
            cause = c.source();
        }
        if let Some(h) = self.hint() {
            eprintln!("hint: {h}");
        }
    }
}
