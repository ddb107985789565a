//! Lookups against generated databases in every schema: exact answers.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use geomesh_core::GeoPoint;
use geomesh_core::topology::GeoIpSettings;
use geomesh_geoip::{Database, GeoIp, GeoIpError, IpLocation, LookupError, Schema, Source};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pt(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint { lat, lon }
}

fn db_source(path: &Path, schema: Schema) -> Source {
    Source::Database {
        path: Arc::from(path),
        schema,
    }
}

fn centroid_source(path: &Path, schema: Schema) -> Source {
    Source::CountryCentroid {
        path: Arc::from(path),
        schema,
    }
}

fn loc(
    point: GeoPoint,
    country: Option<&str>,
    continent: Option<&str>,
    city: Option<&str>,
    radius: Option<u32>,
    source: Source,
) -> IpLocation {
    IpLocation {
        point,
        country: country.map(Into::into),
        continent: continent.map(Into::into),
        city: city.map(Into::into),
        accuracy_radius_km: radius,
        region: None,
        source,
    }
}

fn unknown(r: Result<IpLocation, LookupError>, want: &str) {
    match r {
        Err(LookupError::Unknown { ip: got }) => assert_eq!(got, ip(want)),
        other => panic!("expected Unknown for {want}, got {other:?}"),
    }
}

/// A GeoIP2-City database (IPv6 tree, no IPv4-mapped alias).
fn geoip2_city(dir: &Path) -> PathBuf {
    let mut w = writer_v6("GeoIP2-City");
    w.insert(
        net("81.2.69.0/24"),
        &g2_city("London", "GB", "EU", 51.5142, -0.0931, 10),
    )
    .unwrap();
    w.insert(
        net("81.2.69.128/25"),
        &g2_city("Croydon", "GB", "EU", 51.3762, -0.0982, 50),
    )
    .unwrap();
    w.insert(
        net("2001:db8:100::/48"),
        &g2_city("Amsterdam", "NL", "EU", 52.3759, 4.8975, 20),
    )
    .unwrap();
    w.insert(net("175.16.199.0/24"), &g2_country("CN", "AS"))
        .unwrap();
    // Continent only (no country): nothing to place it with.
    let mut continent_only = g2_country("XX", "EU");
    continent_only.country = None;
    continent_only.registered_country = None;
    w.insert(net("10.0.0.0/8"), &continent_only).unwrap();
    // MaxMind's continent-level pseudo-country.
    w.insert(net("198.51.100.0/24"), &g2_country("EU", "EU"))
        .unwrap();
    write(dir, "GeoIP2-City-Test.mmdb", &w)
}

#[test]
fn geoip2_city_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = geoip2_city(dir.path());
    let db = Database::open(&path).unwrap();
    assert_eq!(db.schema(), Schema::GeoIp2City);
    assert_eq!(db.database_type(), "GeoIP2-City");
    assert_eq!(db.path(), path);
    let g = GeoIp::new(vec![db], vec![], None);
    let src = db_source(&path, Schema::GeoIp2City);

    let london = loc(
        pt(51.5142, -0.0931),
        Some("GB"),
        Some("EU"),
        Some("London"),
        Some(10),
        src.clone(),
    );
    assert_eq!(g.lookup(ip("81.2.69.1")).unwrap(), london);
    assert_eq!(g.lookup(ip("81.2.69.127")).unwrap(), london);
    // The more specific network inserted later.
    assert_eq!(
        g.lookup(ip("81.2.69.200")).unwrap(),
        loc(
            pt(51.3762, -0.0982),
            Some("GB"),
            Some("EU"),
            Some("Croydon"),
            Some(50),
            src.clone()
        )
    );
    // IPv4-mapped IPv6: the tree has no alias, so this only works if the
    // address is looked up as IPv4.
    assert_eq!(g.lookup(ip("::ffff:81.2.69.1")).unwrap(), london);
    // IPv6.
    assert_eq!(
        g.lookup(ip("2001:db8:100:ffff::1")).unwrap(),
        loc(
            pt(52.3759, 4.8975),
            Some("NL"),
            Some("EU"),
            Some("Amsterdam"),
            Some(20),
            src.clone()
        )
    );
    // Country-only record in a city database: the country's point.
    assert_eq!(
        g.lookup(ip("175.16.199.7")).unwrap(),
        loc(
            pt(35.0, 105.0),
            Some("CN"),
            Some("AS"),
            None,
            None,
            centroid_source(&path, Schema::GeoIp2City)
        )
    );
    // Unknown addresses, and records that cannot place the address.
    unknown(g.lookup(ip("81.2.70.1")), "81.2.70.1");
    unknown(g.lookup(ip("2001:db8:101::1")), "2001:db8:101::1");
    unknown(g.lookup(ip("::ffff:81.2.70.1")), "81.2.70.1");
    unknown(g.lookup(ip("10.1.2.3")), "10.1.2.3");
    unknown(g.lookup(ip("198.51.100.1")), "198.51.100.1");
    unknown(g.lookup(ip("::")), "::");
    unknown(g.lookup(ip("255.255.255.255")), "255.255.255.255");
}

#[test]
fn geoip2_country_centroids() {
    let dir = tempfile::tempdir().unwrap();
    for ty in ["GeoIP2-Country", "GeoLite2-Country"] {
        let mut w = writer_v6(ty);
        w.insert(net("2.16.0.0/13"), &g2_country("FR", "EU"))
            .unwrap();
        w.insert(net("2a02:8108::/32"), &g2_country("DE", "EU"))
            .unwrap();
        w.insert(net("1.0.0.0/24"), &g2_country("AU", "OC"))
            .unwrap();
        let path = write(dir.path(), &format!("{ty}.mmdb"), &w);
        let db = Database::open(&path).unwrap();
        assert_eq!(db.schema(), Schema::GeoIp2Country);
        let g = GeoIp::new(vec![db], vec![], None);
        let src = centroid_source(&path, Schema::GeoIp2Country);
        assert_eq!(
            g.lookup(ip("2.17.1.1")).unwrap(),
            loc(
                pt(46.0, 2.0),
                Some("FR"),
                Some("EU"),
                None,
                None,
                src.clone()
            )
        );
        assert_eq!(
            g.lookup(ip("::ffff:1.0.0.1")).unwrap(),
            loc(
                pt(-27.0, 133.0),
                Some("AU"),
                Some("OC"),
                None,
                None,
                src.clone()
            )
        );
        assert_eq!(
            g.lookup(ip("2a02:8108:1::1")).unwrap(),
            loc(
                pt(51.0, 9.0),
                Some("DE"),
                Some("EU"),
                None,
                None,
                src.clone()
            )
        );
        unknown(g.lookup(ip("3.0.0.1")), "3.0.0.1");
    }
}

#[test]
fn flat_city_ipv4_and_ipv6_files() {
    // ip-location-db ships one file per address family.
    let dir = tempfile::tempdir().unwrap();
    let mut w4 = writer_v4("city ipv4");
    w4.insert(
        net("193.0.0.0/21"),
        &flat_city("Amsterdam", "NL", 52.3740, 4.8897),
    )
    .unwrap();
    w4.insert(net("203.0.113.0/24"), &flat_country("JP"))
        .unwrap();
    let p4 = write(dir.path(), "geolite2-city-ipv4.mmdb", &w4);
    let mut w6 = writer_v6("city ipv6");
    w6.insert(
        net("2001:67c:2e8::/48"),
        &flat_city("Amsterdam", "NL", 52.3740, 4.8897),
    )
    .unwrap();
    w6.insert(
        net("2400:cb00::/32"),
        &Flat {
            city: Some(String::new()),
            ..flat_city("", "SE", 59.3293, 18.0686)
        },
    )
    .unwrap();
    let p6 = write(dir.path(), "geolite2-city-ipv6.mmdb", &w6);

    let d4 = Database::open(&p4).unwrap();
    let d6 = Database::open(&p6).unwrap();
    assert_eq!(d4.schema(), Schema::FlatCity);
    assert_eq!(d6.schema(), Schema::FlatCity);
    // An IPv6 address in the IPv4-only file is simply not there.
    assert_eq!(d4.lookup(ip("2001:67c:2e8::1")).unwrap(), None);
    let g = GeoIp::new(vec![d4, d6], vec![], None);

    let ams4 = loc(
        pt(52.3740, 4.8897),
        Some("NL"),
        None,
        Some("Amsterdam"),
        None,
        db_source(&p4, Schema::FlatCity),
    );
    assert_eq!(g.lookup(ip("193.0.6.139")).unwrap(), ams4);
    assert_eq!(g.lookup(ip("::ffff:193.0.6.139")).unwrap(), ams4);
    assert_eq!(
        g.lookup(ip("2001:67c:2e8:22::c100:68b")).unwrap(),
        loc(
            pt(52.3740, 4.8897),
            Some("NL"),
            None,
            Some("Amsterdam"),
            None,
            db_source(&p6, Schema::FlatCity)
        )
    );
    // Empty city string is "not known".
    assert_eq!(
        g.lookup(ip("2400:cb00::1")).unwrap(),
        loc(
            pt(59.3293, 18.0686),
            Some("SE"),
            None,
            None,
            None,
            db_source(&p6, Schema::FlatCity)
        )
    );
    // Flat record with only a country.
    assert_eq!(
        g.lookup(ip("203.0.113.9")).unwrap(),
        loc(
            pt(36.0, 138.0),
            Some("JP"),
            None,
            None,
            None,
            centroid_source(&p4, Schema::FlatCity)
        )
    );
    unknown(g.lookup(ip("8.8.8.8")), "8.8.8.8");
    unknown(g.lookup(ip("2001:4860::8888")), "2001:4860::8888");
}

#[test]
fn flat_country_db() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer_v6("country ipv6");
    w.insert(net("2800::/12"), &flat_country("BR")).unwrap();
    w.insert(net("45.0.0.0/8"), &flat_country("br")).unwrap();
    let path = write(dir.path(), "country.mmdb", &w);
    let db = Database::open(&path).unwrap();
    assert_eq!(db.schema(), Schema::FlatCountry);
    let g = GeoIp::new(vec![db], vec![], None);
    let src = centroid_source(&path, Schema::FlatCountry);
    assert_eq!(
        g.lookup(ip("2801::1")).unwrap(),
        loc(pt(-10.0, -55.0), Some("BR"), None, None, None, src.clone())
    );
    // The code is reported as stored; the centroid lookup ignores case.
    assert_eq!(
        g.lookup(ip("45.1.1.1")).unwrap(),
        loc(pt(-10.0, -55.0), Some("br"), None, None, None, src)
    );
}

#[test]
fn coordinates_beat_centroids_then_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut wc = writer_v6("GeoLite2-Country");
    wc.insert(net("81.2.69.0/24"), &g2_country("GB", "EU"))
        .unwrap();
    wc.insert(net("100.64.0.0/10"), &g2_country("SE", "EU"))
        .unwrap();
    let pc = write(dir.path(), "country.mmdb", &wc);
    let mut wa = writer_v4("city ipv4");
    wa.insert(net("81.2.69.0/24"), &flat_city("London", "GB", 51.5, -0.1))
        .unwrap();
    wa.insert(net("100.64.0.0/10"), &flat_country("DE"))
        .unwrap();
    let pa = write(dir.path(), "a.mmdb", &wa);
    let mut wb = writer_v4("city ipv4");
    wb.insert(net("81.2.69.0/24"), &flat_city("Leeds", "GB", 53.8, -1.5))
        .unwrap();
    let pb = write(dir.path(), "b.mmdb", &wb);

    let g = GeoIp::from_settings(&GeoIpSettings {
        databases: vec![pc.clone(), pa.clone(), pb],
        overrides: vec![],
        default_location: None,
    })
    .unwrap();
    let dbs: Vec<_> = g.databases().iter().map(|d| d.schema()).collect();
    assert_eq!(
        dbs,
        [Schema::GeoIp2Country, Schema::FlatCity, Schema::FlatCity]
    );
    // The country database comes first, but a later database has coordinates;
    // of the two with coordinates, the first listed wins.
    assert_eq!(
        g.lookup(ip("81.2.69.1")).unwrap(),
        loc(
            pt(51.5, -0.1),
            Some("GB"),
            None,
            Some("London"),
            None,
            db_source(&pa, Schema::FlatCity)
        )
    );
    // Only centroids: the first database's.
    assert_eq!(
        g.lookup(ip("100.64.0.1")).unwrap(),
        loc(
            pt(62.0, 15.0),
            Some("SE"),
            Some("EU"),
            None,
            None,
            centroid_source(&pc, Schema::GeoIp2Country)
        )
    );
}

#[test]
fn default_location_is_exposed() {
    let g = GeoIp::new(vec![], vec![], Some(pt(50.11, 8.68)));
    unknown(g.lookup(ip("8.8.8.8")), "8.8.8.8");
    assert_eq!(g.default_location(), Some(pt(50.11, 8.68)));
    assert_eq!(GeoIp::new(vec![], vec![], None).default_location(), None);
}

#[test]
fn from_settings_reports_the_failing_database() {
    let dir = tempfile::tempdir().unwrap();
    let good = geoip2_city(dir.path());
    let bad = dir.path().join("bad.mmdb");
    std::fs::write(&bad, b"not an mmdb file at all").unwrap();
    let err = GeoIp::from_settings(&GeoIpSettings {
        databases: vec![good, bad.clone()],
        overrides: vec![],
        default_location: None,
    })
    .unwrap_err();
    match err {
        GeoIpError::Invalid { path, .. } => assert_eq!(path, bad),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_records_are_lookup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer_v4("city ipv4");
    // Enough good records first that the bad one is outside the open-time sample.
    for i in 0..40u32 {
        w.insert(
            net(&format!("1.0.{i}.0/24")),
            &flat_city(&format!("C{i}"), "AU", -27.0 - f64::from(i), 133.0),
        )
        .unwrap();
    }
    w.insert(
        net("9.9.9.0/24"),
        &serde_json::json!({"country_code": "US", "latitude": "north", "longitude": 1.0}),
    )
    .unwrap();
    w.insert(net("9.9.8.0/24"), &flat_city("Nowhere", "US", 123.0, 1.0))
        .unwrap();
    w.insert(
        net("9.9.7.0/24"),
        &Flat {
            longitude: None,
            ..flat_city("Half", "US", 12.0, 1.0)
        },
    )
    .unwrap();
    let path = write(dir.path(), "bad-records.mmdb", &w);
    let g = GeoIp::new(vec![Database::open(&path).unwrap()], vec![], None);
    assert_eq!(g.lookup(ip("1.0.3.1")).unwrap().city.as_deref(), Some("C3"));
    match g.lookup(ip("9.9.9.9")) {
        Err(LookupError::Decode {
            ip: got, path: p, ..
        }) => {
            assert_eq!(got, ip("9.9.9.9"));
            assert_eq!(p, path);
        }
        other => panic!("{other:?}"),
    }
    match g.lookup(ip("9.9.8.1")) {
        Err(LookupError::BadCoordinates { lat, lon, .. }) => {
            assert_eq!((lat, lon), (Some(123.0), Some(1.0)));
        }
        other => panic!("{other:?}"),
    }
    match g.lookup(ip("9.9.7.1")) {
        Err(LookupError::BadCoordinates { lat, lon, .. }) => {
            assert_eq!((lat, lon), (Some(12.0), None));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn location_serializes_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = geoip2_city(dir.path());
    let g = GeoIp::new(vec![Database::open(&path).unwrap()], vec![], None);
    let v = serde_json::to_value(g.lookup(ip("81.2.69.1")).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "point": {"lat": 51.5142, "lon": -0.0931},
            "country": "GB",
            "continent": "EU",
            "city": "London",
            "accuracy_radius_km": 10,
            "region": null,
            "source": {"kind": "database", "path": path.display().to_string(), "schema": "geoip2_city"},
        })
    );
    let v = serde_json::to_value(g.lookup(ip("175.16.199.1")).unwrap()).unwrap();
    assert_eq!(v["source"]["kind"], "country_centroid");
}

#[test]
fn numeric_widths_from_other_writers() {
    // MaxMind writes accuracy_radius as uint16 and coordinates as double;
    // other writers use uint32 / float. Both read the same.
    use mmdb_writer::Value;
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer_v6("GeoIP2-City");
    let record = |lat: Value, lon: Value, radius: Value| {
        Value::map([
            ("country", Value::map([("iso_code", Value::from("NL"))])),
            (
                "location",
                Value::map([
                    ("latitude", lat),
                    ("longitude", lon),
                    ("accuracy_radius", radius),
                ]),
            ),
        ])
    };
    w.insert_value(
        net("192.0.2.0/24"),
        record(Value::Float(52.3824), Value::Float(4.8995), Value::U32(200)),
    )
    .unwrap();
    w.insert_value(
        net("198.51.100.0/24"),
        record(Value::U16(52), Value::I32(-4), Value::U64(7)),
    )
    .unwrap();
    let path = write(dir.path(), "widths.mmdb", &w);
    let g = GeoIp::new(vec![Database::open(&path).unwrap()], vec![], None);
    let a = g.lookup(ip("192.0.2.1")).unwrap();
    assert_eq!(
        (a.point, a.accuracy_radius_km),
        (pt(52.3824, 4.8995), Some(200))
    );
    let b = g.lookup(ip("198.51.100.1")).unwrap();
    assert_eq!((b.point, b.accuracy_radius_km), (pt(52.0, -4.0), Some(7)));
}
