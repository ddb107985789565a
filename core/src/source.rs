//! The unit that per-client limits count: one IPv4 address, or one IPv6
//! /64. An IPv6 subscriber usually holds a whole /64 (RFC 6177), so
//! counting its addresses one by one would let one client look like 2^64.
//! And whose address that is behind a proxy the operator trusts.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

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

/// The client's address: the connection's (`peer`), or — when the
/// connection comes from a trusted proxy — the rightmost hop of
/// `forwarded_for` (the `X-Forwarded-For` header values, in order) that is
/// not itself a trusted proxy. A hop that does not parse stops the walk.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut ip = peer.to_canonical();
    if !is_trusted(&ip) {
        return ip;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|s| s.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Ok(h) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        ip = h.to_canonical();
        if !is_trusted(&ip) {
            break;
        }
    }
    ip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let via = ["198.51.100.7, 10.1.1.1"];
        assert_eq!(client_ip(ip("10.0.0.1"), via, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_ip(ip("203.0.113.9"), via, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["junk"], &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), [], &trusted), ip("10.0.0.1"));
        // Two headers read as one list; the last untrusted hop wins.
        let two = ["192.0.2.1", "198.51.100.8"];
        assert_eq!(client_ip(ip("10.0.0.1"), two, &trusted), ip("198.51.100.8"));
    }

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
