//! `gatehouse serve`: authenticates every Kubernetes API request and proxies it to the
//! kube-apiserver as the identity it maps to. See `ARCHITECTURE.md` for the request path.
//!
//! # Module dependencies
//! Imports go one way, down this list: a module imports only modules on lines below its own,
//! or the ones named beside it on its line (`tests/module_graph.rs` fails on any cycle):
//! 1. [`routes`]: the router; imports every handler module and the layers, none imports it.
//! 2. Handlers: [`ui`] (imports [`api`] and [`proxy`]), [`api`] (imports [`proxy`]),
//!    [`proxy`], [`browser`]. They read who the caller is from the request's extensions.
//! 3. [`auth_layer`]: the session layer and the authentication layer.
//! 4. [`page`]: rendering, and the UI surface's error page ([`page::PageError`]).
//! 5. [`token_endpoint`]: the sign-in flow's calls to the IdP (imports [`app`]).
//! 6. [`app`]: the shared state and start-up; imports no handler module.
//! 7. The API surface's answers and the proxy's decision: [`status`] (the Kubernetes `Status`
//!    of every API error; imports [`plan`]), [`plan`] (pure).
//! 8. The parts the state is built from: [`authn`] (imports [`oidc`]), [`health`] (imports
//!    [`upstream`]), [`access`], [`oidc`], [`serviceaccounts`], [`upstream`], [`login_guard`],
//!    [`metrics`] (imports [`upstream`], whose pool metrics it registers); and [`serve`] (the listener, given the router by the binary).
//! 9. [`browser_session`] (the session and its cookie; imports [`config`] and [`session`]).
//! 10. [`config`] (imports only [`clock`]).
//! 11. Leaves, importing no module of this crate: [`session`], [`credentials`], [`clock`],
//!     [`client`].

pub mod access;
pub mod api;
pub mod app;
pub mod auth_layer;
pub mod authn;
pub mod browser;
pub mod browser_session;
pub mod client;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod health;
pub mod issuers;
pub mod login_guard;
pub mod metrics;
pub mod oidc;
pub mod page;
pub mod plan;
pub mod proxy;
pub mod routes;
pub mod serve;
pub mod serviceaccounts;
pub mod session;
pub mod status;
pub mod token_endpoint;
pub mod ui;
pub mod upstream;
