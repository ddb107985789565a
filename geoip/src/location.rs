//! The answer to a lookup: where an address is, and who said so.

use std::path::Path;
use std::sync::Arc;

use geomesh_core::{GeoPoint, RegionId};
use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::schema::Schema;

/// Where an address is.
///
/// Serializes as one JSON object, e.g.
/// `{"point":{"lat":52.37,"lon":4.89},"country":"NL","continent":"EU",
/// "city":"Amsterdam","accuracy_radius_km":20,"region":null,
/// "source":{"kind":"database","path":"/var/lib/geoip/GeoLite2-City.mmdb","schema":"geoip2_city"}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpLocation {
    /// The location.
    pub point: GeoPoint,
    /// ISO 3166-1 alpha-2 country code, where known.
    pub country: Option<String>,
    /// Continent code (`EU`, `NA`, ...), where known (GeoIP2 layout only).
    pub continent: Option<String>,
    /// City name (English), where known.
    pub city: Option<String>,
    /// The database's accuracy radius in km, where known (GeoIP2 city only).
    pub accuracy_radius_km: Option<u32>,
    /// The region a CIDR override assigns (overrides only).
    pub region: Option<RegionId>,
    /// Who gave this answer.
    pub source: Source,
}

/// Who gave a location.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// A CIDR override from the topology (the most specific one containing
    /// the address).
    Override {
        /// The override's network.
        cidr: IpNet,
    },
    /// A database record with coordinates.
    Database {
        /// The database file.
        #[serde(serialize_with = "path_str")]
        path: Arc<Path>,
        /// Its schema.
        schema: Schema,
    },
    /// A database record that knows only the country: the point is the
    /// country's representative point (see `data/README.md`).
    CountryCentroid {
        /// The database file.
        #[serde(serialize_with = "path_str")]
        path: Arc<Path>,
        /// Its schema.
        schema: Schema,
    },
}

impl Source {
    /// Whether the point is only a country's representative point.
    pub fn is_centroid(&self) -> bool {
        matches!(self, Source::CountryCentroid { .. })
    }
}

fn path_str<S: Serializer>(path: &Arc<Path>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&path.display())
}
