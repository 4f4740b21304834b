//! The client's address: `trustedProxies` and `X-Forwarded-For`, read right to left (the
//! security reasoning is on [`Config::client_ip`]), and the chain gatehouse forwards upstream.

use super::Config;

/// An address as proxies write it in `X-Forwarded-For`: `ip`, `[v6]`, `ip:port`, `[v6]:port`.
fn parse_forwarded_address(text: &str) -> Option<std::net::IpAddr> {
    let ip = text
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(std::net::IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

impl Config {
    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the one the
    /// outermost trusted proxy saw). Used for admin sign-in throttling and its allow-list, so
    /// that behind an ingress each client has its own budget.
    ///
    /// # Security
    /// The chain is read from the raw bytes, right to left, and every entry up to the answer
    /// must be an address (`ip`, `[v6]`, `ip:port`, `[v6]:port`): a client could otherwise
    /// make the whole header unreadable (a byte that is not text, which the proxy then appends
    /// to) or slip an entry in front of one gatehouse cannot parse, and be counted as the
    /// proxy or as an address of its choice. A chain that cannot be read that far is an
    /// error: the caller refuses the sign-in instead of guessing.
    pub fn client_ip(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: &http::HeaderMap,
    ) -> Result<Option<std::net::IpAddr>, String> {
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return Ok(None);
        };
        let trusted = |ip: &std::net::IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return Ok(Some(peer));
        }
        let raw: Vec<u8> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b","[..]);
        for entry in raw.split(|b| *b == b',').rev() {
            let text = std::str::from_utf8(entry)
                .map_err(|_| {
                    "the X-Forwarded-For header from the trusted proxy is not text".to_owned()
                })?
                .trim();
            if text.is_empty() {
                continue;
            }
            let ip = parse_forwarded_address(text).ok_or_else(|| {
                format!("the X-Forwarded-For header from the trusted proxy holds {text:?}, which is not an address")
            })?;
            if !trusted(&ip) {
                return Ok(Some(ip));
            }
        }
        Ok(Some(peer))
    }

    /// The `X-Forwarded-For` value to send upstream for a request from `peer` that carried
    /// `client_chain`: the peer's address, after the client's chain only when the peer is a
    /// trusted proxy. The kube-apiserver records these addresses in the audit event's
    /// `sourceIPs` (and then its own peer, gatehouse).
    pub fn forwarded_for(
        &self,
        peer: Option<std::net::SocketAddr>,
        client_chain: Option<&str>,
    ) -> Option<http::HeaderValue> {
        let ip = peer?.ip().to_canonical();
        let trusted = self.trusted_proxies.iter().any(|n| n.contains(&ip));
        let value = match client_chain {
            Some(chain) if trusted => format!("{chain}, {ip}"),
            _ => ip.to_string(),
        };
        http::HeaderValue::from_str(&value).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::parse;

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_address() {
        let c = parse(
            "trustedProxies: [10.0.0.0/8]\n",
            &HashMap::<String, String>::new(),
        )
        .unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.1.1.1".parse().unwrap(),
        );
        let ingress = Some("10.0.0.5".parse().unwrap());
        // The client may prepend anything: the ingress appended what it saw (203.0.113.7).
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("203.0.113.7".parse().unwrap()))
        );
        // A peer that is not trusted is the client, whatever it claims.
        let direct = Some("198.51.100.9".parse().unwrap());
        assert_eq!(c.client_ip(direct, &h), Ok(direct));
        // A trusted peer without a header: the peer.
        assert_eq!(c.client_ip(ingress, &http::HeaderMap::new()), Ok(ingress));
        // Proxies that append ip:port or [v6]:port.
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7:51234".parse().unwrap(),
        );
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("203.0.113.7".parse().unwrap()))
        );
        h.insert("x-forwarded-for", "[2001:db8::7]:443".parse().unwrap());
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("2001:db8::7".parse().unwrap()))
        );
    }

    #[test]
    fn an_unreadable_chain_behind_a_trusted_proxy_is_an_error_not_the_proxy() {
        let c = parse(
            "trustedProxies: [10.0.0.0/8]\n",
            &HashMap::<String, String>::new(),
        )
        .unwrap();
        let ingress = Some("10.0.0.5".parse().unwrap());
        // A byte that is not text in front of what the proxy appended: the header as a whole
        // is not text, but the proxy's entry is still read.
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\x80x, 203.0.113.7").unwrap(),
        );
        assert_eq!(
            c.client_ip(ingress, &h),
            Ok(Some("203.0.113.7".parse().unwrap()))
        );
        // Not text where the proxy's entry should be: an error, never the proxy's address.
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"203.0.113.7, \x80x").unwrap(),
        );
        assert!(c.client_ip(ingress, &h).is_err());
        // An entry gatehouse cannot parse to the right of the client's: an error, never the
        // address in front of it.
        h.insert("x-forwarded-for", "198.51.100.2, unknown".parse().unwrap());
        assert!(c.client_ip(ingress, &h).is_err());
    }
}
