//! The pure core of gatehouse.
//!
//! Everything here is free of sockets, files and clocks: token verification takes the key set
//! and the current time as arguments, identity resolution takes the claim index as data. The
//! server crate owns I/O (fetching JWKS, watching ServiceAccounts, proxying) and calls into this
//! crate for every decision that matters for security, so those decisions can be tested
//! exhaustively without a network.

pub mod admin;
pub mod authorize;
pub mod discovery;
pub mod identity;
pub mod jwt;
pub mod mapping;
pub mod protocol;
pub mod request_info;
pub mod token;
pub mod wire;
