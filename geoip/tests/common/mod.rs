//! Builders for test MMDB files, written with `mmdb-writer`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use mmdb_writer::{IpVersion, Ipv4Aliasing, Writer};
use serde::Serialize;

/// A GeoIP2/GeoLite2-City record, with the field types MaxMind uses.
#[derive(Serialize, Default, Clone)]
pub struct G2City {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continent: Option<Continent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Country>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_country: Option<Country>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subdivisions: Vec<Named>,
}

#[derive(Serialize, Clone)]
pub struct Named {
    pub geoname_id: u32,
    pub names: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Clone)]
pub struct Continent {
    pub code: String,
    pub geoname_id: u32,
}

#[derive(Serialize, Clone)]
pub struct Country {
    pub geoname_id: u32,
    pub iso_code: String,
    pub is_in_european_union: bool,
}

#[derive(Serialize, Clone)]
pub struct Location {
    pub accuracy_radius: u16,
    pub latitude: f64,
    pub longitude: f64,
    pub time_zone: String,
}

fn names(en: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("en".to_string(), en.to_string()),
        ("de".to_string(), format!("{en} (de)")),
    ]
    .into()
}

/// A full city record.
pub fn g2_city(
    city: &str,
    country: &str,
    continent: &str,
    lat: f64,
    lon: f64,
    radius: u16,
) -> G2City {
    G2City {
        city: Some(Named {
            geoname_id: 1,
            names: names(city),
        }),
        continent: Some(Continent {
            code: continent.into(),
            geoname_id: 2,
        }),
        country: Some(Country {
            geoname_id: 3,
            iso_code: country.into(),
            is_in_european_union: continent == "EU",
        }),
        registered_country: Some(Country {
            geoname_id: 3,
            iso_code: country.into(),
            is_in_european_union: false,
        }),
        location: Some(Location {
            accuracy_radius: radius,
            latitude: lat,
            longitude: lon,
            time_zone: "Etc/UTC".into(),
        }),
        subdivisions: vec![Named {
            geoname_id: 4,
            names: names("Some State"),
        }],
    }
}

/// A country-only GeoIP2 record (as in GeoIP2/GeoLite2-Country).
pub fn g2_country(country: &str, continent: &str) -> G2City {
    G2City {
        continent: Some(Continent {
            code: continent.into(),
            geoname_id: 2,
        }),
        country: Some(Country {
            geoname_id: 3,
            iso_code: country.into(),
            is_in_european_union: continent == "EU",
        }),
        registered_country: Some(Country {
            geoname_id: 3,
            iso_code: country.into(),
            is_in_european_union: false,
        }),
        ..G2City::default()
    }
}

/// A flat record as ip-location-db writes it.
#[derive(Serialize, Default, Clone)]
pub struct Flat {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

pub fn flat_city(city: &str, country: &str, lat: f64, lon: f64) -> Flat {
    Flat {
        country_code: Some(country.into()),
        state1: Some("Some State".into()),
        state2: None,
        city: Some(city.into()),
        postcode: Some("1000".into()),
        latitude: Some(lat),
        longitude: Some(lon),
        timezone: Some("Etc/UTC".into()),
    }
}

pub fn flat_country(country: &str) -> Flat {
    Flat {
        country_code: Some(country.into()),
        ..Flat::default()
    }
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// An IPv6 tree without the IPv4-mapped alias, so that a lookup of
/// `::ffff:a.b.c.d` only finds IPv4 data if the caller canonicalises it.
pub fn writer_v6(database_type: &str) -> Writer {
    Writer::builder(database_type)
        .ip_version(IpVersion::V6)
        .ipv4_aliasing(Ipv4Aliasing::Disabled)
        .build()
}

/// An IPv4-only tree.
pub fn writer_v4(database_type: &str) -> Writer {
    Writer::builder(database_type)
        .ip_version(IpVersion::V4)
        .build()
}

pub fn write(dir: &Path, name: &str, w: &Writer) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// SplitMix64: a small deterministic generator for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
