//! EDNS Client Subnet arithmetic (RFC 7871).
//!
//! * [`ecs_subnet`]: validate an incoming option and give the subnet to locate by (locate by
//!   `subnet.addr()`, which is the address truncated to the source prefix).
//! * [`ecs_scope`]: the SCOPE PREFIX-LENGTH to echo.
//!
//! ## The scope rule
//!
//! ```text
//! scope = 0                                         if !decision.client_dependent
//!       = min(location.network.prefix_len(), source_prefix)   otherwise
//! ```
//!
//! `location.network` is the network that decided (see [`crate::locate`]): the whole block
//! is placed at one spot, so every address in it gets the same answer, and a resolver may cache
//! the answer for all of it. It is never longer than the source prefix we were given
//! (RFC 7871 §7.2.1 allows longer, but that only tells the resolver to send more bits, which it
//! cannot cache by; we answer for what we were asked). It is 0 when every client would get the
//! same answer (see [`crate::model::Decision::client_dependent`]). When the location came from
//! the network map or the default, the block also respects the map's more specific entries, so
//! a scope never spans two different answers.
//!
//! The router must call [`ecs_scope`] with the location it got from locating
//! `ecs_subnet(..).addr()` in the option's own family; an IPv4-mapped IPv6 ECS address is
//! located as IPv4, so pass its IPv4 source prefix (`source - 96`) and add 96 back.
//!
//! With the precompiled map ([`crate::table`]) the same rule applies to the block the map
//! reports instead of `location.network`: a block holds that network and only addresses that are
//! ranked the same way (so they get the same answer under any health state), and it is exactly
//! that network when a ranking has tie groups (the weighted spread is seeded by the network).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::EcsError;
use crate::model::{ClientLocation, Decision};

/// Validate an ECS ADDRESS/SOURCE PREFIX-LENGTH pair: rejects a prefix longer than the family
/// (32/128) and an address with bits set beyond the prefix (RFC 7871 §6: FORMERR).
pub fn ecs_subnet(addr: IpAddr, source_prefix: u8) -> Result<IpNet, EcsError> {
    let max = match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    if source_prefix > max {
        return Err(EcsError::PrefixTooLong {
            prefix: source_prefix,
            max,
        });
    }
    let net = IpNet::new(addr, source_prefix).map_err(|_| EcsError::PrefixTooLong {
        prefix: source_prefix,
        max,
    })?;
    if net.trunc().addr() != addr {
        return Err(EcsError::HostBits {
            addr,
            prefix: source_prefix,
        });
    }
    Ok(net)
}

/// The SCOPE PREFIX-LENGTH to return (rule in the module docs).
pub fn ecs_scope(location: &ClientLocation, decision: &Decision, source_prefix: u8) -> u8 {
    if !decision.client_dependent {
        return 0;
    }
    location.network.prefix_len().min(source_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LocationSource, Rule};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_validation() {
        assert_eq!(
            ecs_subnet(ip("192.0.2.0"), 24).unwrap(),
            "192.0.2.0/24".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            ecs_subnet(ip("0.0.0.0"), 0).unwrap(),
            "0.0.0.0/0".parse::<IpNet>().unwrap()
        );
        assert_eq!(ecs_subnet(ip("2001:db8::"), 56).unwrap().prefix_len(), 56);
        assert_eq!(ecs_subnet(ip("192.0.2.1"), 32).unwrap().prefix_len(), 32);
        assert!(matches!(
            ecs_subnet(ip("192.0.2.1"), 24),
            Err(EcsError::HostBits { .. })
        ));
        assert!(matches!(
            ecs_subnet(ip("1.0.0.0"), 0),
            Err(EcsError::HostBits { .. })
        ));
        assert!(matches!(
            ecs_subnet(ip("192.0.2.0"), 33),
            Err(EcsError::PrefixTooLong { max: 32, .. })
        ));
        assert!(matches!(
            ecs_subnet(ip("2001:db8::"), 129),
            Err(EcsError::PrefixTooLong { max: 128, .. })
        ));
        assert!(matches!(
            ecs_subnet(ip("2001:db8::1:0"), 100),
            Err(EcsError::HostBits { .. })
        ));
    }

    fn location(network: &str) -> ClientLocation {
        ClientLocation {
            lat: 0.0,
            lon: 0.0,
            country: None,
            continent: None,
            region: None,
            network: network.parse().unwrap(),
            source: LocationSource::GeoIp,
        }
    }

    fn decision(client_dependent: bool) -> Decision {
        Decision {
            chosen: vec![0],
            ranked: vec![],
            rule: Rule::Nearest,
            client_dependent,
        }
    }

    #[test]
    fn scope_rule() {
        assert_eq!(ecs_scope(&location("10.0.0.0/16"), &decision(true), 24), 16);
        assert_eq!(ecs_scope(&location("10.0.0.0/28"), &decision(true), 24), 24);
        assert_eq!(ecs_scope(&location("10.0.0.0/16"), &decision(false), 24), 0);
        assert_eq!(ecs_scope(&location("0.0.0.0/0"), &decision(true), 24), 0);
        assert_eq!(
            ecs_scope(&location("2001:db8::/32"), &decision(true), 56),
            32
        );
    }
}
