//! The parts of a record we read, in both layouts.
//!
//! Only the fields geomesh uses are declared; serde skips the rest without
//! decoding them (names in other languages, subdivisions, postal codes...).
//! Strings borrow from the mapped file.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// What one record says, whatever its layout.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Fields<'a> {
    pub(crate) latitude: Option<f64>,
    pub(crate) longitude: Option<f64>,
    pub(crate) country: Option<&'a str>,
    pub(crate) continent: Option<&'a str>,
    pub(crate) city: Option<&'a str>,
    pub(crate) accuracy_radius_km: Option<u32>,
}

/// A GeoIP2/GeoLite2 City or Country record (the parts we use).
#[derive(Debug, Deserialize)]
pub(crate) struct GeoIp2Record<'a> {
    #[serde(borrow, default)]
    city: Option<GeoIp2City<'a>>,
    #[serde(borrow, default)]
    continent: Option<GeoIp2Continent<'a>>,
    #[serde(borrow, default)]
    country: Option<GeoIp2Country<'a>>,
    #[serde(default)]
    location: Option<GeoIp2Location>,
}

#[derive(Debug, Deserialize)]
struct GeoIp2City<'a> {
    #[serde(borrow, default)]
    names: Option<GeoIp2Names<'a>>,
}

#[derive(Debug, Deserialize)]
struct GeoIp2Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct GeoIp2Continent<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct GeoIp2Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct GeoIp2Location {
    #[serde(default, deserialize_with = "any_f64")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "any_f64")]
    longitude: Option<f64>,
    #[serde(default, deserialize_with = "any_u32")]
    accuracy_radius: Option<u32>,
}

impl<'a> GeoIp2Record<'a> {
    pub(crate) fn fields(&self) -> Fields<'a> {
        let location = self.location.as_ref();
        Fields {
            latitude: location.and_then(|l| l.latitude),
            longitude: location.and_then(|l| l.longitude),
            country: self.country.as_ref().and_then(|c| c.iso_code),
            continent: self.continent.as_ref().and_then(|c| c.code),
            city: self
                .city
                .as_ref()
                .and_then(|c| c.names.as_ref())
                .and_then(|n| n.en),
            accuracy_radius_km: location.and_then(|l| l.accuracy_radius),
        }
    }
}

/// A flat record (ip-location-db, DB-IP lite repackaged): the parts we use.
#[derive(Debug, Deserialize)]
pub(crate) struct FlatRecord<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    city: Option<&'a str>,
    #[serde(default, deserialize_with = "any_f64")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "any_f64")]
    longitude: Option<f64>,
}

impl<'a> FlatRecord<'a> {
    pub(crate) fn fields(&self) -> Fields<'a> {
        Fields {
            latitude: self.latitude,
            longitude: self.longitude,
            country: self.country_code,
            continent: None,
            city: self.city,
            accuracy_radius_km: None,
        }
    }
}

/// The MMDB decoder is strict about widths (`u32` will not read a stored
/// `uint16`, `f64` will not read a `float`), and writers differ: MaxMind
/// stores `accuracy_radius` as `uint16` and coordinates as `double`, others
/// use `uint32` or `float`. These accept any numeric type that fits.
struct AnyF64;

impl Visitor<'_> for AnyF64 {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<f64, E> {
        Ok(f32_to_f64_shortest(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<f64, E> {
        Ok(v as f64)
    }
}

/// The `f64` nearest to the shortest decimal (at most 9 fractional digits)
/// that rounds to `v`: a stored `float` 37.751 reads as 37.751, not
/// 37.750999450683594. At most ten multiply-round-divide steps; values it
/// cannot shorten are widened unchanged.
fn f32_to_f64_shortest(v: f32) -> f64 {
    let mut scale = 1.0_f64;
    for _ in 0..10 {
        // k / 10^d with k integral and 10^d exact: the nearest f64 to it.
        let candidate = (f64::from(v) * scale).round() / scale;
        if candidate as f32 == v {
            return candidate;
        }
        scale *= 10.0;
    }
    f64::from(v)
}

fn any_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(AnyF64).map(Some)
}

struct AnyU32;

impl Visitor<'_> for AnyU32 {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an unsigned integer below 2^32")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom(format!("{v} does not fit in u32")))
    }
}

fn any_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    d.deserialize_any(AnyU32).map(Some)
}

/// Empty strings are "not known" in several databases.
pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_reads_as_its_shortest_decimal() {
        assert_eq!(f32_to_f64_shortest(37.751), 37.751);
        assert_eq!(f32_to_f64_shortest(-97.822), -97.822);
        assert_eq!(f32_to_f64_shortest(52.5), 52.5);
        assert_eq!(f32_to_f64_shortest(0.0), 0.0);
        assert!(f32_to_f64_shortest(f32::NAN).is_nan());
        assert_eq!(f32_to_f64_shortest(f32::INFINITY), f64::INFINITY);
        assert_eq!(f32_to_f64_shortest(52.3824), 52.3824);
        assert_eq!(f32_to_f64_shortest(-33.86785), -33.86785);
        assert_eq!(f32_to_f64_shortest(139.6805), 139.6805);
        assert_eq!(f32_to_f64_shortest(1e-12), f64::from(1e-12_f32));
        // Agrees with Display's shortest round-trip for 4-decimal coordinates.
        for i in (-1_800_000..=1_800_000).step_by(977) {
            let v = (f64::from(i) / 10_000.0) as f32;
            let display: f64 = format!("{v}").parse().unwrap();
            assert_eq!(f32_to_f64_shortest(v), display, "{v}");
        }
    }
}
