//! The unit that per-client limits count: one IPv4 address, or one IPv6
//! /64. An IPv6 subscriber usually holds a whole /64 (RFC 6177), so
//! counting its addresses one by one would let one client look like 2^64.

use std::net::{IpAddr, Ipv6Addr};

/// The limit key of `ip`: IPv4 (also IPv4-mapped IPv6) as is, IPv6 cut to
/// its /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_64_and_ipv4_by_address() {
        let k = |s: &str| source_key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("2001:db8:1:2::1").to_string(), "2001:db8:1:2::");
        assert_eq!(k("::ffff:192.0.2.7").to_string(), "192.0.2.7");
        assert_ne!(k("192.0.2.7"), k("192.0.2.8"));
    }
}
