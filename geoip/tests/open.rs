//! Opening databases: schema detection, refusals, corrupt files.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::*;
use geomesh_geoip::{Database, GeoIpError, Layout, Schema};
use serde_json::json;

fn open_err(path: &Path) -> GeoIpError {
    Database::open(path).expect_err("open should fail")
}

fn db_with(dir: &Path, ty: &str, records: &[(&str, serde_json::Value)]) -> PathBuf {
    let mut w = writer_v6(ty);
    for (n, v) in records {
        w.insert(net(n), v).unwrap();
    }
    let name = format!(
        "{}.mmdb",
        ty.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    write(dir, &name, &w)
}

fn nested() -> serde_json::Value {
    json!({
        "continent": {"code": "EU"},
        "country": {"iso_code": "NL"},
        "city": {"names": {"en": "Amsterdam"}},
        "location": {"latitude": 52.37, "longitude": 4.89, "accuracy_radius": 20u16},
    })
}

fn flat() -> serde_json::Value {
    json!({"country_code": "NL", "city": "Amsterdam", "latitude": 52.37, "longitude": 4.89, "state1": "North Holland", "postcode": "1012", "timezone": "Europe/Amsterdam"})
}

#[test]
fn schema_from_database_type() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, serde_json::Value, Schema)] = &[
        ("GeoIP2-City", nested(), Schema::GeoIp2City),
        ("GeoLite2-City", nested(), Schema::GeoIp2City),
        ("GeoIP2-Enterprise", nested(), Schema::GeoIp2City),
        (
            "GeoIP2-Country",
            json!({"country": {"iso_code": "NL"}}),
            Schema::GeoIp2Country,
        ),
        (
            "GeoLite2-Country",
            json!({"country": {"iso_code": "NL"}}),
            Schema::GeoIp2Country,
        ),
        ("city ipv6", flat(), Schema::FlatCity),
        (
            "country ipv6",
            json!({"country_code": "NL"}),
            Schema::FlatCountry,
        ),
        // DB-IP: the type says city/country, the records say the layout.
        ("DBIP-City-Lite", nested(), Schema::GeoIp2City),
        ("DBIP-City-Lite", flat(), Schema::FlatCity),
        (
            "DBIP-Country-Lite",
            json!({"country": {"iso_code": "NL"}, "continent": {"code": "EU"}}),
            Schema::GeoIp2Country,
        ),
        (
            "DBIP-Country-Lite",
            json!({"country_code": "NL"}),
            Schema::FlatCountry,
        ),
    ];
    for (i, (ty, record, want)) in cases.iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir(&sub).unwrap();
        let path = db_with(&sub, ty, &[("192.0.2.0/24", record.clone())]);
        let db = Database::open(&path).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(db.schema(), *want, "{ty}");
        assert_eq!(db.database_type(), *ty);
    }
}

#[test]
fn schema_from_record_shape_when_type_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(serde_json::Value, Schema)] = &[
        (nested(), Schema::GeoIp2City),
        (
            json!({"country": {"iso_code": "NL"}, "registered_country": {"iso_code": "NL"}}),
            Schema::GeoIp2Country,
        ),
        (flat(), Schema::FlatCity),
        (json!({"country_code": "NL"}), Schema::FlatCountry),
    ];
    for (i, (record, want)) in cases.iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir(&sub).unwrap();
        let path = db_with(&sub, "Acme-Geo-DB", &[("192.0.2.0/24", record.clone())]);
        assert_eq!(Database::open(&path).unwrap().schema(), *want);
    }
    // The sample spans several records: a first country-only record does not
    // hide that the database has coordinates.
    let path = db_with(
        dir.path(),
        "Acme-Geo-DB-2",
        &[
            ("1.0.0.0/24", json!({"country_code": "AU"})),
            ("2.0.0.0/24", flat()),
        ],
    );
    assert_eq!(Database::open(&path).unwrap().schema(), Schema::FlatCity);
}

#[test]
fn refusals() {
    let dir = tempfile::tempdir().unwrap();
    let asn =
        json!({"autonomous_system_number": 3333u32, "autonomous_system_organization": "RIPE NCC"});

    let p = db_with(dir.path(), "GeoLite2-ASN", &[("193.0.0.0/21", asn.clone())]);
    match open_err(&p) {
        GeoIpError::NotLocationDatabase { database_type, .. } => {
            assert_eq!(database_type, "GeoLite2-ASN")
        }
        e => panic!("{e:?}"),
    }

    let p = db_with(dir.path(), "Acme-ASN", &[("193.0.0.0/21", asn)]);
    match open_err(&p) {
        GeoIpError::UnrecognisedSchema {
            database_type,
            keys,
            path,
        } => {
            assert_eq!(database_type, "Acme-ASN");
            assert_eq!(
                keys,
                ["autonomous_system_number", "autonomous_system_organization"]
            );
            assert_eq!(path, p);
        }
        e => panic!("{e:?}"),
    }

    // Both layouts at once, with a type that does not decide.
    let p = db_with(
        dir.path(),
        "Acme-Mixed",
        &[("1.0.0.0/24", nested()), ("2.0.0.0/24", flat())],
    );
    assert!(matches!(
        open_err(&p),
        GeoIpError::UnrecognisedSchema { .. }
    ));

    // The type says GeoIP2, the records are flat.
    let p = db_with(dir.path(), "GeoIP2-City", &[("1.0.0.0/24", flat())]);
    match open_err(&p) {
        GeoIpError::SchemaMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, Schema::GeoIp2City);
            assert_eq!(found, Layout::Flat);
        }
        e => panic!("{e:?}"),
    }
    // ...and the other way round.
    let p = db_with(dir.path(), "city ipv4", &[("1.0.0.0/24", nested())]);
    assert!(matches!(open_err(&p), GeoIpError::SchemaMismatch { .. }));

    // Right keys, wrong types.
    let p = db_with(
        dir.path(),
        "GeoLite2-Country",
        &[("1.0.0.0/24", json!({"country": "NL"}))],
    );
    assert!(matches!(open_err(&p), GeoIpError::SampleRecord { .. }));
    // Records that are not maps.
    let p = db_with(
        dir.path(),
        "Acme-Strings",
        &[("1.0.0.0/24", json!("Amsterdam"))],
    );
    assert!(matches!(open_err(&p), GeoIpError::SampleRecord { .. }));
}

#[test]
fn empty_databases() {
    let dir = tempfile::tempdir().unwrap();
    // A known type with no records opens (and finds nothing).
    let p = db_with(dir.path(), "GeoLite2-City", &[]);
    let db = Database::open(&p).unwrap();
    assert_eq!(db.schema(), Schema::GeoIp2City);
    assert_eq!(db.lookup("1.2.3.4".parse().unwrap()).unwrap(), None);
    // An unknown type with no records has no shape to go by.
    let p = db_with(dir.path(), "Acme-Empty", &[]);
    match open_err(&p) {
        GeoIpError::UnrecognisedSchema { keys, .. } => assert!(keys.is_empty()),
        e => panic!("{e:?}"),
    }
}

#[test]
fn missing_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        open_err(&dir.path().join("nope.mmdb")),
        GeoIpError::Io { .. }
    ));
    // A directory.
    let e = open_err(dir.path());
    assert!(
        matches!(e, GeoIpError::Io { .. } | GeoIpError::Invalid { .. }),
        "{e:?}"
    );
    // An empty file.
    let p = dir.path().join("empty.mmdb");
    std::fs::write(&p, b"").unwrap();
    let e = open_err(&p);
    assert!(
        matches!(e, GeoIpError::Io { .. } | GeoIpError::Invalid { .. }),
        "{e:?}"
    );
}

fn real_ish(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut w = writer_v6("GeoIP2-City");
    let mut rng = Rng(7);
    for i in 0..500u32 {
        let a = 1 + rng.below(220) as u8;
        let b = rng.below(256) as u8;
        w.insert(
            net(&format!("{a}.{b}.{}.0/24", i % 256)),
            &g2_city(&format!("City {i}"), "DE", "EU", 50.0, 8.0, 100),
        )
        .unwrap();
    }
    w.insert(
        net("2001:db8::/32"),
        &g2_city("V6", "NL", "EU", 52.0, 5.0, 5),
    )
    .unwrap();
    let path = write(dir, "good.mmdb", &w);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(42);
    for (i, len) in [1usize, 16, 100, 4096, 100_000].into_iter().enumerate() {
        let p = dir.path().join(format!("random-{i}.mmdb"));
        std::fs::write(&p, rng.bytes(len)).unwrap();
        assert!(
            matches!(open_err(&p), GeoIpError::Invalid { .. }),
            "len {len}"
        );
    }
}

#[test]
fn truncated_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = real_ish(dir.path());
    // The metadata is at the end of the file: any proper prefix loses it.
    for cut in [
        1,
        bytes.len() / 4,
        bytes.len() / 2,
        bytes.len() - 100,
        bytes.len() - 1,
    ] {
        let p = dir.path().join(format!("cut-{cut}.mmdb"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(
            matches!(open_err(&p), GeoIpError::Invalid { .. }),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
    // The tail alone (metadata present, search tree missing).
    let p = dir.path().join("tail.mmdb");
    std::fs::write(&p, &bytes[bytes.len() - 300..]).unwrap();
    assert!(matches!(
        open_err(&p),
        GeoIpError::Invalid { .. } | GeoIpError::SampleRecord { .. }
    ));
}

/// Flip random bytes of a valid file: opening and looking up must give
/// values or typed errors, never a panic.
#[test]
fn corrupted_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = real_ish(dir.path());
    let mut rng = Rng(99);
    let mut opened = 0;
    for round in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(16) {
            let at = rng.below(b.len() as u64) as usize;
            b[at] = rng.next_u64() as u8;
        }
        let p = dir.path().join(format!("corrupt-{round}.mmdb"));
        std::fs::write(&p, &b).unwrap();
        let Ok(db) = Database::open(&p) else {
            continue;
        };
        opened += 1;
        for _ in 0..50 {
            let ip: IpAddr = if rng.below(2) == 0 {
                IpAddr::from((rng.next_u64() as u32).to_be_bytes())
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(
                    u128::from(rng.next_u64()) | (0x2001_0db8_u128 << 96),
                ))
            };
            let _ = db.lookup(ip);
        }
    }
    // Most single-byte flips land in the tree or data and still open.
    assert!(opened > 0);
}
