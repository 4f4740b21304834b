//! `gatehouse serve`: authenticates every Kubernetes API request and proxies it to the
//! kube-apiserver as the identity it maps to. See `ARCHITECTURE.md` for the request path.

pub mod config;
pub mod oidc;
pub mod status;
pub mod serviceaccounts;
pub mod upstream;
pub mod authn;
pub mod access;
pub mod metrics;
pub mod proxy;
pub mod app;
pub mod api;
pub mod serve;
