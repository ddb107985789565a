//! CIDR overrides from the topology: most specific prefix wins.

use std::collections::HashMap;
use std::net::IpAddr;

use geomesh_core::topology::GeoIpOverride;
use ipnet::{IpNet, Ipv4Net};

/// A longest-prefix-match table over the topology's GeoIP overrides.
///
/// One hash map per prefix length that occurs, probed from the longest
/// prefix down: a lookup costs at most one probe per distinct prefix length
/// (≤ 33 for IPv4, ≤ 129 for IPv6), whatever the number of overrides.
///
/// Overrides written as IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`)
/// are stored as the IPv4 network they cover, and addresses are looked up in
/// their canonical form, so `::ffff:10.1.2.3` matches `10.0.0.0/8`. If two
/// overrides have the same network, the first one wins.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// (prefix length, network address bits → index), longest prefix first.
    v4: Vec<(u8, HashMap<u32, usize>)>,
    v6: Vec<(u8, HashMap<u128, usize>)>,
    entries: Vec<GeoIpOverride>,
}

fn v4_mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn v6_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// An override's network in canonical form (IPv4-mapped → IPv4), truncated.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net
        && n.prefix_len() >= 96
        && let Some(v4) = n.network().to_ipv4_mapped()
        && let Ok(v4net) = Ipv4Net::new(v4, n.prefix_len() - 96)
    {
        return IpNet::V4(v4net.trunc());
    }
    net.trunc()
}

impl Overrides {
    /// Builds the table. Order matters only between duplicates (first wins).
    pub fn new(overrides: Vec<GeoIpOverride>) -> Overrides {
        let mut v4: HashMap<u8, HashMap<u32, usize>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, usize>> = HashMap::new();
        let mut entries = Vec::with_capacity(overrides.len());
        for (i, mut o) in overrides.into_iter().enumerate() {
            o.cidr = canonical_net(o.cidr);
            match o.cidr {
                IpNet::V4(n) => {
                    v4.entry(n.prefix_len())
                        .or_default()
                        .entry(u32::from(n.network()))
                        .or_insert(i);
                }
                IpNet::V6(n) => {
                    v6.entry(n.prefix_len())
                        .or_default()
                        .entry(u128::from(n.network()))
                        .or_insert(i);
                }
            }
            entries.push(o);
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut v6: Vec<_> = v6.into_iter().collect();
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        Overrides { v4, v6, entries }
    }

    /// The most specific override containing `ip` (taken in canonical form).
    pub fn lookup(&self, ip: IpAddr) -> Option<&GeoIpOverride> {
        let i = match ip.to_canonical() {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(len, map)| map.get(&(bits & v4_mask(*len))))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(len, map)| map.get(&(bits & v6_mask(*len))))
            }
        }?;
        self.entries.get(*i)
    }

    /// Number of overrides.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The overrides, in canonical form, in the order given.
    pub fn entries(&self) -> &[GeoIpOverride] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geomesh_core::{GeoPoint, RegionId};

    fn ov(cidr: &str, lat: f64) -> GeoIpOverride {
        GeoIpOverride {
            cidr: cidr.parse().unwrap(),
            location: GeoPoint { lat, lon: 0.0 },
            region: None,
        }
    }

    fn lat(t: &Overrides, ip: &str) -> Option<f64> {
        t.lookup(ip.parse().unwrap()).map(|o| o.location.lat)
    }

    #[test]
    fn most_specific_wins_in_any_order() {
        let t = Overrides::new(vec![
            ov("10.1.2.0/24", 24.0),
            ov("10.0.0.0/8", 8.0),
            ov("10.1.0.0/16", 16.0),
            ov("0.0.0.0/0", 0.5),
            ov("10.1.2.3/32", 32.0),
        ]);
        assert_eq!(lat(&t, "10.1.2.3"), Some(32.0));
        assert_eq!(lat(&t, "10.1.2.4"), Some(24.0));
        assert_eq!(lat(&t, "10.1.3.1"), Some(16.0));
        assert_eq!(lat(&t, "10.2.0.1"), Some(8.0));
        assert_eq!(lat(&t, "11.0.0.1"), Some(0.5));
        assert_eq!(lat(&t, "2001:db8::1"), None);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn ipv6_and_mapped() {
        let t = Overrides::new(vec![
            ov("2001:db8::/32", 32.0),
            ov("2001:db8:1::/48", 48.0),
            ov("192.168.0.0/16", 16.0),
            ov("::ffff:172.16.0.0/108", 12.0),
        ]);
        assert_eq!(lat(&t, "2001:db8:1::5"), Some(48.0));
        assert_eq!(lat(&t, "2001:db8:2::5"), Some(32.0));
        assert_eq!(lat(&t, "2001:db9::5"), None);
        assert_eq!(lat(&t, "::ffff:192.168.1.1"), Some(16.0));
        assert_eq!(lat(&t, "172.16.5.5"), Some(12.0));
        assert_eq!(lat(&t, "::ffff:172.16.5.5"), Some(12.0));
        assert_eq!(
            t.entries()[3].cidr,
            "172.16.0.0/12".parse::<IpNet>().unwrap()
        );
        // IPv4-compatible (::a.b.c.d) is not IPv4-mapped.
        assert_eq!(lat(&t, "::192.168.1.1"), None);
    }

    #[test]
    fn duplicates_first_wins_and_region_kept() {
        let mut a = ov("10.0.0.0/8", 1.0);
        a.region = Some(RegionId::new("eu-west").unwrap());
        let t = Overrides::new(vec![a, ov("10.0.0.0/8", 2.0)]);
        let hit = t.lookup("10.9.9.9".parse().unwrap()).unwrap();
        assert_eq!(hit.location.lat, 1.0);
        assert_eq!(hit.region.as_ref().unwrap().as_str(), "eu-west");
    }

    #[test]
    fn empty() {
        let t = Overrides::default();
        assert!(t.is_empty());
        assert_eq!(lat(&t, "10.0.0.1"), None);
    }
}
