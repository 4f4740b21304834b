//! `gatehouse serve`: authenticates every Kubernetes API request and proxies it to the
//! kube-apiserver as the identity it maps to. See `ARCHITECTURE.md` for the request path.
//!
//! # Module dependencies
//! Imports go one way, down this list: a module imports only modules on lines below its own,
//! or the ones named beside it on its line (`tests/module_graph.rs` fails on any cycle):
//! 1. [`routes`]: the router; imports every handler module and the layers, none imports it.
//! 2. Handlers: [`ui`] (imports [`api`] and [`proxy`]), [`api`] (imports [`proxy`]),
//!    [`proxy`], [`browser`]. They read who the caller is from the request's extensions.
//! 3. The request's layers and the sign-in flow's IdP calls: [`auth_layer`] (the session
//!    layer and the authentication layer; imports [`token_endpoint`]), [`token_endpoint`].
//! 4. [`app`]: the shared state and start-up; imports no handler module.
//! 5. The answers and the proxy's decision: [`page`] (imports [`status`]), [`status`] (the
//!    Kubernetes `Status` of every API error; imports [`plan`]), [`plan`] (pure).
//! 6. The parts the state is built from: [`authn`] (imports [`oidc`]), [`health`] (imports
//!    [`upstream`]), [`access`], [`oidc`], [`serviceaccounts`], [`upstream`], [`login_guard`],
//!    [`metrics`]; and [`serve`] (the listener, given the router by the binary).
//! 7. [`browser_session`] (the session and its cookie; imports [`config`] and [`session`]).
//! 8. [`config`] (imports only [`clock`]).
//! 9. Leaves, importing no module of this crate: [`session`], [`credentials`], [`clock`],
//!    [`client`].

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
