//! The client's address for rate limits, geo rules and the access log: the socket's peer,
//! or — when the peer is a trusted proxy (`http.trusted_proxies`) — the right-most address
//! of `X-Forwarded-For` that is not itself a trusted proxy (the standard way to read the
//! header: entries left of the last untrusted hop can be forged by the client).

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// `X-Forwarded-For` entries read at most (a longer header is read from the right).
const MAX_HOPS: usize = 32;

/// The client address of a request from `peer` with headers `h`.
pub fn client_ip(peer: IpAddr, h: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    // Several X-Forwarded-For fields are one list, in order. A field that is not text is
    // garbled like a bad entry (the walk stops there), not skipped.
    let fields: Vec<&[u8]> = h.get_all("x-forwarded-for").map(|v| v.as_bytes()).collect();
    for hop in fields
        .iter()
        .rev()
        .flat_map(|f| f.rsplit(|&b| b == b','))
        .take(MAX_HOPS)
    {
        let Some(ip) = std::str::from_utf8(hop)
            .ok()
            .and_then(|hop| parse_hop(hop.trim()))
        else {
            // A garbled entry: stop at the last address we could trust.
            break;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// An `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                "x-forwarded-for".parse().unwrap(),
                HeaderValue::from_static(v),
            );
        }
        h
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let h = xff(&["1.2.3.4"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
        let t: Vec<IpNet> = vec!["192.168.0.0/16".parse().unwrap()];
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_peers_give_the_rightmost_untrusted_hop() {
        let t: Vec<IpNet> = vec![
            "192.168.0.0/16".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ];
        let h = xff(&["6.6.6.6, 1.2.3.4, 192.168.1.9"]);
        assert_eq!(client_ip(ip("192.168.1.1"), &h, &t), ip("1.2.3.4"));
        let h = xff(&["6.6.6.6", "1.2.3.4:5555"]);
        assert_eq!(client_ip(ip("::1"), &h, &t), ip("1.2.3.4"));
        let h = xff(&["[2001:db8::7]:443"]);
        assert_eq!(client_ip(ip("192.168.0.1"), &h, &t), ip("2001:db8::7"));
        // Garbage stops the walk at the last good hop; no header → the peer.
        let h = xff(&["1.2.3.4, junk, 192.168.3.3"]);
        assert_eq!(client_ip(ip("192.168.1.1"), &h, &t), ip("192.168.3.3"));
        assert_eq!(
            client_ip(ip("192.168.1.1"), &HeaderMap::new(), &t),
            ip("192.168.1.1")
        );
        assert_eq!(
            client_ip(ip("::ffff:192.168.1.1"), &xff(&["9.9.9.9"]), &t),
            ip("9.9.9.9")
        );
        // A field that is not text stops the walk like a bad entry: the forged field left of
        // it is never read.
        let mut h = xff(&["6.6.6.6"]);
        h.append(
            "x-forwarded-for".parse().unwrap(),
            HeaderValue::from_bytes(b"\xff\xfe, 192.168.7.7").unwrap(),
        );
        assert_eq!(client_ip(ip("192.168.1.1"), &h, &t), ip("192.168.7.7"));
    }
}
