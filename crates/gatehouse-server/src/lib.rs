//! `gatehouse serve`: authenticates every Kubernetes API request and proxies it to the
//! kube-apiserver as the identity it maps to. See `ARCHITECTURE.md` for the request path.

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
