//! Support code for gatehouse's tests, shared by every test binary of `gatehouse` and
//! `gatehouse-server` (a dev-dependency of both; never published).
//!
//! # Modules
//! - [`in_process`]: the server built in-process ([`gatehouse_server::app::App::from_parts`])
//!   with a local issuer and a recording fake kube-apiserver; requests go through the router
//!   with `oneshot`. Hermetic (127.0.0.1, ephemeral ports).
//! - [`jwt`]: token spellings (the lenient-base64 respelling a kube-apiserver accepts).
//! - [`leak`]: what a run collected, the secrets it saw, and the search for every secret in
//!   every spelling (`e2e_secrets`).
//! - [`process`]: `gatehouse serve` started from the built binary and stopped on drop, free
//!   ports, probes of our own server, a line reader for a child's output.
//! - [`config`]: server configurations for the test bed, built as a document with typed setters
//!   (no YAML text edited after building).
//! - [`testbed`]: the shared test bed's environment, its Dex tokens, kubectl, the audit log, the
//!   admin's sign-ins.
//! - [`browser`]: a cookie-jar browser with manual redirects and the IdPs' login forms.
//! - [`machine`]: one user's machine for the CLI tests (home, token cache, kubeconfig) and the
//!   shared sign-in steps.
//! - [`hostile`]: a hostile web server behind a Kubernetes Service (needs root).
//! - [`secret_service`]: a private D-Bus session bus with a Secret Service, for keyring tests.
//! - [`faults`]: test bed components killed and restored, fds and memory of a process, a
//!   recording load generator (the fault and soak tests).
//! - [`tempdir`]: temporary folders removed on drop.
//!
//! The test bed parts are used only by tests marked `#[ignore = "needs testbed"]`.
//!
//! Test support fails loudly: a helper that cannot do its job panics with what went wrong, so
//! the test using it fails (never passes vacuously).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_debug_implementations,
    reason = "test support: a failed step panics so that the calling test fails"
)]

pub mod browser;
pub mod config;
pub mod faults;
pub mod hostile;
pub mod in_process;
pub mod jwt;
pub mod leak;
pub mod machine;
pub mod process;
pub mod secret_service;
pub mod tempdir;
pub mod testbed;

pub use browser::{Browser, Page, form_action, with_local_connector};
pub use process::{
    Gatehouse, LineReader, free_port, gatehouse_bin, get_own_server, text, unique, workspace_root,
};
pub use testbed::{
    AuditLog, Testbed, admin_token, kubeconfig, kubectl, kubectl_admin, self_subject_review,
    ui_admin_session,
};
