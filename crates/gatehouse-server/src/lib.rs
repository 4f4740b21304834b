//! `gatehouse serve`: authenticates every Kubernetes API request and proxies it to the
//! kube-apiserver as the identity it maps to. See `ARCHITECTURE.md` for the request path.
//!
//! # Module dependencies
//! Imports go one way, down this list: a module imports only modules on lines below its own,
//! or the ones named beside it on its line (`tests/module_graph.rs` fails on any cycle):
//! 1. [`routes`]: the router; imports every handler module, none imports it.
//! 2. Handlers: [`ui`] (imports [`api`] and [`proxy`]), [`api`] (imports [`proxy`]),
//!    [`proxy`], [`browser`]. browser also holds `impl App` methods for the session cookie
//!    (`session_cookies`, `session_from`, `has_session_cookie`) that ui and proxy call, which
//!    is why browser comes below them.
//! 3. [`app`]: the shared state and start-up; imports no handler module.
//! 4. The parts the state is built from: [`authn`] (imports [`oidc`]), [`health`] (imports
//!    [`upstream`]), [`access`], [`oidc`], [`serviceaccounts`], [`upstream`], [`login_guard`],
//!    [`metrics`]; and [`serve`] (the listener, given the router by the binary).
//! 5. [`config`] (imports only [`clock`]).
//! 6. Leaves, importing no module of this crate: [`browser_session`], [`session`],
//!    [`credentials`], [`page`] (imports only [`status`]), [`status`], [`clock`], [`client`].

pub mod access;
pub mod api;
pub mod app;
pub mod authn;
pub mod browser;
pub mod browser_session;
pub mod client;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod health;
pub mod login_guard;
pub mod metrics;
pub mod oidc;
pub mod page;
pub mod proxy;
pub mod routes;
pub mod serve;
pub mod serviceaccounts;
pub mod session;
pub mod status;
pub mod ui;
pub mod upstream;
