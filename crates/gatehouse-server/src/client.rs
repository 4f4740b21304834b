//! The client's address as the listener recorded it (the TCP peer). Which addresses trusted
//! proxies may add before it is [`crate::config::Config::forwarded_for`]'s and
//! [`crate::config::Config::client_ip`]'s business.

use std::net::{IpAddr, SocketAddr};

/// The client's address (the TCP peer), when the listener recorded it.
pub fn peer_addr<B>(req: &http::Request<B>) -> Option<SocketAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The client's IP address as the listener saw it (the TCP peer, IPv4-mapped IPv6 as IPv4),
/// when known.
pub fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}
