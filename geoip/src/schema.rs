//! Which record schema a database uses, and how we tell.
//!
//! Two record layouts exist in the wild:
//!
//! - **GeoIP2** (MaxMind GeoIP2/GeoLite2 City and Country, and DB-IP's own
//!   MMDB downloads): nested maps, `country.iso_code`, `continent.code`,
//!   `city.names.en`, `location.{latitude,longitude,accuracy_radius}`.
//! - **flat** (ip-location-db, and DB-IP lite as repackaged there):
//!   top-level `country_code`, `latitude`, `longitude`, `city`, `state1`,
//!   `postcode`, `timezone`, ...
//!
//! The schema is taken from the metadata's `database_type` when that is one
//! we know ([`schema_for_type`]), and is then confirmed against the shape of
//! the first records; otherwise it is read from that shape alone
//! ([`Shape`]). A database that fits neither is refused when it is opened.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// The record schema of a location database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schema {
    /// GeoIP2/GeoLite2-City layout (nested maps, with coordinates).
    #[serde(rename = "geoip2_city")]
    GeoIp2City,
    /// GeoIP2/GeoLite2-Country layout (nested maps, country only).
    #[serde(rename = "geoip2_country")]
    GeoIp2Country,
    /// Flat layout with coordinates (ip-location-db city, DB-IP city lite).
    FlatCity,
    /// Flat layout with `country_code` only.
    FlatCountry,
}

impl Schema {
    /// The record layout this schema uses.
    pub fn layout(self) -> Layout {
        match self {
            Schema::GeoIp2City | Schema::GeoIp2Country => Layout::GeoIp2,
            Schema::FlatCity | Schema::FlatCountry => Layout::Flat,
        }
    }

    /// Whether records carry coordinates (otherwise the country centroid is used).
    pub fn has_coordinates(self) -> bool {
        matches!(self, Schema::GeoIp2City | Schema::FlatCity)
    }

    fn from_parts(layout: Layout, city: bool) -> Schema {
        match (layout, city) {
            (Layout::GeoIp2, true) => Schema::GeoIp2City,
            (Layout::GeoIp2, false) => Schema::GeoIp2Country,
            (Layout::Flat, true) => Schema::FlatCity,
            (Layout::Flat, false) => Schema::FlatCountry,
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schema::GeoIp2City => "geoip2-city",
            Schema::GeoIp2Country => "geoip2-country",
            Schema::FlatCity => "flat-city",
            Schema::FlatCountry => "flat-country",
        })
    }
}

/// How a record is laid out, independent of how much it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Nested maps (`country.iso_code`, `location.latitude`).
    #[serde(rename = "geoip2")]
    GeoIp2,
    /// Top-level keys (`country_code`, `latitude`).
    Flat,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::GeoIp2 => "geoip2 (nested)",
            Layout::Flat => "flat",
        })
    }
}

/// What the metadata's `database_type` tells us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeHint {
    /// A type we know: the schema is fixed (and checked against the records).
    Known(Schema),
    /// A vendor whose downloads come in either layout (DB-IP): the type fixes
    /// city vs country, the records fix the layout.
    Granularity {
        /// City-level (coordinates) rather than country-only.
        city: bool,
    },
    /// A known type that holds no locations (ASN, ISP, ...).
    NotLocation,
    /// Not a type we know: the records decide.
    Unknown,
}

/// Maps a `database_type` to what it tells us (case-insensitive).
///
/// - `GeoIP2-City*`, `GeoLite2-City*`, `GeoIP2-Enterprise*`,
///   `GeoIP2-Precision-City*` → GeoIP2 city; `GeoIP2-Country*`,
///   `GeoLite2-Country*` → GeoIP2 country; other `GeoIP2-*`/`GeoLite2-*`
///   (ASN, ISP, Anonymous-IP, Domain, Connection-Type, ...) hold no locations.
/// - `DBIP-City*`, `DBIP-Location*` → city, `DBIP-Country*` → country, with
///   the layout read from the records (DB-IP's own files use the GeoIP2
///   layout, repackaged ones the flat layout); `DBIP-ASN*`/`DBIP-ISP*` hold
///   no locations.
/// - ip-location-db: `city ipv4`, `city ipv6` → flat city; `country ipv4`,
///   `country ipv6` → flat country; `asn ipv4`, `asn ipv6` hold no locations.
pub(crate) fn schema_for_type(database_type: &str) -> TypeHint {
    let t = database_type.trim().to_ascii_lowercase();
    if let Some(rest) = t
        .strip_prefix("geoip2-")
        .or_else(|| t.strip_prefix("geolite2-"))
    {
        if rest.starts_with("city")
            || rest.starts_with("enterprise")
            || rest.starts_with("precision-city")
        {
            return TypeHint::Known(Schema::GeoIp2City);
        }
        if rest.starts_with("country") || rest.starts_with("precision-country") {
            return TypeHint::Known(Schema::GeoIp2Country);
        }
        return TypeHint::NotLocation;
    }
    if let Some(rest) = t.strip_prefix("dbip-") {
        if rest.starts_with("city") || rest.starts_with("location") {
            return TypeHint::Granularity { city: true };
        }
        if rest.starts_with("country") {
            return TypeHint::Granularity { city: false };
        }
        if rest.starts_with("asn") || rest.starts_with("isp") {
            return TypeHint::NotLocation;
        }
        return TypeHint::Unknown;
    }
    match t.as_str() {
        "city ipv4" | "city ipv6" => TypeHint::Known(Schema::FlatCity),
        "country ipv4" | "country ipv6" => TypeHint::Known(Schema::FlatCountry),
        "asn ipv4" | "asn ipv6" => TypeHint::NotLocation,
        _ => TypeHint::Unknown,
    }
}

/// Keys that only GeoIP2-layout records have at the top level.
const GEOIP2_KEYS: &[&str] = &[
    "city",
    "continent",
    "country",
    "location",
    "postal",
    "registered_country",
    "represented_country",
    "subdivisions",
];
/// Keys that only flat records have at the top level.
const FLAT_KEYS: &[&str] = &["country_code", "latitude", "longitude"];

/// The union of top-level keys over a few sample records.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    keys: BTreeSet<String>,
}

impl Shape {
    /// Adds one record's top-level keys.
    pub(crate) fn add<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        // Bounded: a decoded map has finitely many keys, and the decoder caps
        // a record's expansion (65,536 values).
        for k in keys {
            if self.keys.len() >= 256 {
                break;
            }
            self.keys.insert(k.to_owned());
        }
    }

    /// The keys for error messages (at most 32).
    pub(crate) fn keys(&self) -> Vec<String> {
        self.keys.iter().take(32).cloned().collect()
    }

    fn has(&self, k: &str) -> bool {
        self.keys.contains(k)
    }

    /// The layout these records have, if exactly one fits.
    ///
    /// The flat layout also has a `city` key (a string), so `city` alone
    /// proves nothing; any other GeoIP2 key, or any flat key, decides. A mix
    /// of both is refused.
    pub(crate) fn layout(&self) -> Option<Layout> {
        let geoip2 = GEOIP2_KEYS.iter().any(|k| *k != "city" && self.has(k));
        let flat = FLAT_KEYS.iter().any(|k| self.has(k));
        match (geoip2, flat) {
            (true, false) => Some(Layout::GeoIp2),
            (false, true) => Some(Layout::Flat),
            _ => None,
        }
    }

    /// The schema these records have, if their layout is clear.
    pub(crate) fn schema(&self) -> Option<Schema> {
        let layout = self.layout()?;
        let city = match layout {
            Layout::GeoIp2 => self.has("location") || self.has("city"),
            Layout::Flat => self.has("latitude") || self.has("longitude") || self.has("city"),
        };
        Some(Schema::from_parts(layout, city))
    }

    /// The schema for a vendor type that fixes only city vs country.
    pub(crate) fn schema_with_granularity(&self, city: bool) -> Option<Schema> {
        Some(Schema::from_parts(self.layout()?, city))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        use TypeHint::*;
        assert_eq!(schema_for_type("GeoIP2-City"), Known(Schema::GeoIp2City));
        assert_eq!(schema_for_type("GeoLite2-City"), Known(Schema::GeoIp2City));
        assert_eq!(
            schema_for_type("GeoIP2-City-North-America"),
            Known(Schema::GeoIp2City)
        );
        assert_eq!(
            schema_for_type("GeoIP2-Enterprise"),
            Known(Schema::GeoIp2City)
        );
        assert_eq!(
            schema_for_type("GeoIP2-Country"),
            Known(Schema::GeoIp2Country)
        );
        assert_eq!(
            schema_for_type("geolite2-country"),
            Known(Schema::GeoIp2Country)
        );
        assert_eq!(schema_for_type("GeoLite2-ASN"), NotLocation);
        assert_eq!(schema_for_type("GeoIP2-Anonymous-IP"), NotLocation);
        assert_eq!(
            schema_for_type("DBIP-City-Lite"),
            Granularity { city: true }
        );
        assert_eq!(
            schema_for_type("DBIP-Location (compat=City)"),
            Granularity { city: true }
        );
        assert_eq!(
            schema_for_type("DBIP-Country-Lite"),
            Granularity { city: false }
        );
        assert_eq!(schema_for_type("DBIP-ASN-Lite"), NotLocation);
        assert_eq!(schema_for_type("city ipv4"), Known(Schema::FlatCity));
        assert_eq!(schema_for_type("city ipv6"), Known(Schema::FlatCity));
        assert_eq!(schema_for_type("country ipv4"), Known(Schema::FlatCountry));
        assert_eq!(schema_for_type("asn ipv6"), NotLocation);
        assert_eq!(schema_for_type("My-Own-DB"), Unknown);
        assert_eq!(schema_for_type(""), Unknown);
    }

    fn shape(keys: &[&str]) -> Shape {
        let mut s = Shape::default();
        s.add(keys.iter().copied());
        s
    }

    #[test]
    fn shapes() {
        assert_eq!(
            shape(&["city", "continent", "country", "location"]).schema(),
            Some(Schema::GeoIp2City)
        );
        assert_eq!(
            shape(&["continent", "country", "registered_country"]).schema(),
            Some(Schema::GeoIp2Country)
        );
        assert_eq!(
            shape(&["city", "country_code", "latitude", "longitude", "state1"]).schema(),
            Some(Schema::FlatCity)
        );
        assert_eq!(shape(&["country_code"]).schema(), Some(Schema::FlatCountry));
        assert_eq!(shape(&["city"]).schema(), None);
        assert_eq!(shape(&["country", "country_code"]).schema(), None);
        assert_eq!(shape(&["autonomous_system_number"]).schema(), None);
        assert_eq!(shape(&[]).schema(), None);
        assert_eq!(
            shape(&["country"]).schema_with_granularity(true),
            Some(Schema::GeoIp2City)
        );
    }
}
