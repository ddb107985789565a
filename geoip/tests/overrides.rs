//! CIDR overrides in front of a database.

mod common;

use std::net::IpAddr;

use common::*;
use geomesh_core::topology::GeoIpOverride;
use geomesh_core::{GeoPoint, RegionId};
use geomesh_geoip::{Database, GeoIp, LookupError, Source};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ov(cidr: &str, lat: f64, lon: f64, region: Option<&str>) -> GeoIpOverride {
    GeoIpOverride {
        cidr: cidr.parse().unwrap(),
        location: GeoPoint { lat, lon },
        region: region.map(|r| RegionId::new(r).unwrap()),
    }
}

fn fixture(dir: &std::path::Path) -> GeoIp {
    let mut w = writer_v6("GeoLite2-City");
    w.insert(
        net("81.2.69.0/24"),
        &g2_city("London", "GB", "EU", 51.5142, -0.0931, 10),
    )
    .unwrap();
    w.insert(
        net("2001:db8:100::/48"),
        &g2_city("Amsterdam", "NL", "EU", 52.3759, 4.8975, 20),
    )
    .unwrap();
    let path = write(dir, "city.mmdb", &w);
    GeoIp::new(
        vec![Database::open(&path).unwrap()],
        vec![
            ov("10.0.0.0/8", 50.11, 8.68, Some("eu-central")),
            ov("10.20.0.0/16", 40.71, -74.0, Some("us-east")),
            ov("10.20.30.0/24", 35.68, 139.69, None),
            ov("81.2.69.128/25", 48.85, 2.35, Some("eu-west")),
            ov("2001:db8:100:1::/64", 1.29, 103.85, Some("ap-southeast")),
            ov("::ffff:172.16.0.0/108", -33.87, 151.21, Some("ap-sydney")),
        ],
        Some(GeoPoint { lat: 0.0, lon: 0.0 }),
    )
}

fn hit(g: &GeoIp, addr: &str) -> (f64, Option<String>, String) {
    let l = g.lookup(ip(addr)).unwrap();
    let Source::Override { cidr } = l.source else {
        panic!("{addr}: not an override: {l:?}");
    };
    assert_eq!(
        (
            l.country.as_deref(),
            l.city.as_deref(),
            l.accuracy_radius_km
        ),
        (None, None, None)
    );
    (
        l.point.lat,
        l.region.map(|r| r.as_str().to_owned()),
        cidr.to_string(),
    )
}

#[test]
fn most_specific_prefix_wins() {
    let dir = tempfile::tempdir().unwrap();
    let g = fixture(dir.path());
    assert_eq!(
        hit(&g, "10.1.1.1"),
        (50.11, Some("eu-central".into()), "10.0.0.0/8".into())
    );
    assert_eq!(
        hit(&g, "10.20.1.1"),
        (40.71, Some("us-east".into()), "10.20.0.0/16".into())
    );
    assert_eq!(
        hit(&g, "10.20.30.40"),
        (35.68, None, "10.20.30.0/24".into())
    );
    assert_eq!(g.overrides().len(), 6);
}

#[test]
fn override_beats_database() {
    let dir = tempfile::tempdir().unwrap();
    let g = fixture(dir.path());
    // Inside the database's 81.2.69.0/24 but also inside an override.
    assert_eq!(
        hit(&g, "81.2.69.200"),
        (48.85, Some("eu-west".into()), "81.2.69.128/25".into())
    );
    // The rest of the /24 still comes from the database.
    let l = g.lookup(ip("81.2.69.5")).unwrap();
    assert_eq!(l.city.as_deref(), Some("London"));
    assert!(matches!(l.source, Source::Database { .. }));
    // IPv6 override inside a database network.
    assert_eq!(
        hit(&g, "2001:db8:100:1::9"),
        (
            1.29,
            Some("ap-southeast".into()),
            "2001:db8:100:1::/64".into()
        )
    );
    let l = g.lookup(ip("2001:db8:100:2::9")).unwrap();
    assert_eq!(l.city.as_deref(), Some("Amsterdam"));
}

#[test]
fn ipv4_mapped_addresses_match_ipv4_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let g = fixture(dir.path());
    assert_eq!(
        hit(&g, "::ffff:10.20.30.40"),
        (35.68, None, "10.20.30.0/24".into())
    );
    assert_eq!(
        hit(&g, "::ffff:81.2.69.129"),
        (48.85, Some("eu-west".into()), "81.2.69.128/25".into())
    );
    // An override written as an IPv4-mapped network is an IPv4 override.
    assert_eq!(
        hit(&g, "172.16.9.9"),
        (-33.87, Some("ap-sydney".into()), "172.16.0.0/12".into())
    );
    assert_eq!(
        hit(&g, "::ffff:172.31.255.255"),
        (-33.87, Some("ap-sydney".into()), "172.16.0.0/12".into())
    );
}

#[test]
fn nothing_matches() {
    let dir = tempfile::tempdir().unwrap();
    let g = fixture(dir.path());
    match g.lookup(ip("192.0.2.1")) {
        Err(LookupError::Unknown { ip: got }) => assert_eq!(got, ip("192.0.2.1")),
        other => panic!("{other:?}"),
    }
    match g.lookup(ip("::ffff:192.0.2.1")) {
        Err(LookupError::Unknown { ip: got }) => assert_eq!(got, ip("192.0.2.1")),
        other => panic!("{other:?}"),
    }
    assert_eq!(g.default_location(), Some(GeoPoint { lat: 0.0, lon: 0.0 }));
}
