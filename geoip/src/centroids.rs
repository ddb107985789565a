//! Country → representative point, for databases that only know the country.
//!
//! The table is `data/country_centroids.csv`, taken unchanged from
//! mledoze/countries (`world-countries` on npm, ODbL 1.0; see
//! `data/README.md`), embedded at compile time.

use std::collections::HashMap;
use std::sync::OnceLock;

use geomesh_core::GeoPoint;

/// The embedded CSV, attribution header included.
pub const COUNTRY_CENTROIDS_CSV: &str = include_str!("../data/country_centroids.csv");

/// The table, parsed once. Keys are upper-case ISO 3166-1 alpha-2 codes.
fn table() -> &'static HashMap<[u8; 2], GeoPoint> {
    static TABLE: OnceLock<HashMap<[u8; 2], GeoPoint>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The file ships with the crate and `centroids::tests::every_row_parses`
        // checks it, so a bad row here is a packaging bug.
        parse(COUNTRY_CENTROIDS_CSV).expect("embedded country_centroids.csv is well-formed")
    })
}

/// Parses the table format: `#` comments, a `iso2,lat,lon` header, then rows.
fn parse(text: &str) -> Result<HashMap<[u8; 2], GeoPoint>, String> {
    let mut out = HashMap::new();
    let mut header_seen = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !header_seen {
            if line != "iso2,lat,lon" {
                return Err(format!("line {}: expected header iso2,lat,lon", n + 1));
            }
            header_seen = true;
            continue;
        }
        let mut fields = line.split(',');
        let (Some(code), Some(lat), Some(lon), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("line {}: expected 3 fields", n + 1));
        };
        let code = key(code).ok_or_else(|| format!("line {}: bad code {code:?}", n + 1))?;
        let lat: f64 = lat.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
        let lon: f64 = lon.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
        let point = GeoPoint::new(lat, lon).map_err(|e| format!("line {}: {e}", n + 1))?;
        if out.insert(code, point).is_some() {
            return Err(format!("line {}: duplicate code", n + 1));
        }
    }
    Ok(out)
}

/// An ISO alpha-2 code as an upper-case key, if it is two ASCII letters.
fn key(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// The representative point of a country, by ISO 3166-1 alpha-2 code
/// (case-insensitive). `None` for codes not in the table (including
/// MaxMind's continent-level pseudo-codes such as `EU` and `AP`).
pub fn country_centroid(iso2: &str) -> Option<GeoPoint> {
    table().get(&key(iso2)?).copied()
}

/// How many countries the table has.
pub fn country_count() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses() {
        let t = parse(COUNTRY_CENTROIDS_CSV).unwrap();
        assert_eq!(t.len(), 250);
        assert_eq!(country_count(), 250);
        assert!(COUNTRY_CENTROIDS_CSV.contains("ODbL"));
        assert!(COUNTRY_CENTROIDS_CSV.contains("mledoze/countries"));
    }

    #[test]
    fn known_countries() {
        assert_eq!(
            country_centroid("US"),
            Some(GeoPoint {
                lat: 38.0,
                lon: -97.0
            })
        );
        assert_eq!(
            country_centroid("nl"),
            Some(GeoPoint {
                lat: 52.5,
                lon: 5.75
            })
        );
        assert_eq!(
            country_centroid("JP"),
            Some(GeoPoint {
                lat: 36.0,
                lon: 138.0
            })
        );
        assert_eq!(country_centroid("EU"), None);
        assert_eq!(country_centroid(""), None);
        assert_eq!(country_centroid("USA"), None);
        assert_eq!(country_centroid("é"), None);
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(parse("iso2,lat,lon\nUS,38,-97,1\n").is_err());
        assert!(parse("iso2,lat,lon\nUS,95,-97\n").is_err());
        assert!(parse("iso2,lat,lon\nU1,9,-97\n").is_err());
        assert!(parse("iso2,lat,lon\nUS,9,-97\nUS,9,-97\n").is_err());
        assert!(parse("code,lat,lon\n").is_err());
    }
}
