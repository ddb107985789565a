//! A point on the Earth's surface.

use serde::{Deserialize, Serialize};

/// Why a coordinate pair is not a valid point.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GeoPointError {
    /// Latitude outside [-90, 90] or not finite.
    #[error("latitude {0} is outside [-90, 90]")]
    Latitude(f64),
    /// Longitude outside [-180, 180] or not finite.
    #[error("longitude {0} is outside [-180, 180]")]
    Longitude(f64),
}

/// WGS84 latitude and longitude in degrees.
///
/// Deserializing does not check the ranges (so that topology validation can
/// report the position of a bad value); call [`GeoPoint::validate`] or build
/// with [`GeoPoint::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
}

impl GeoPoint {
    /// A checked point.
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoPointError> {
        let p = Self { lat, lon };
        p.validate()?;
        Ok(p)
    }

    /// Checks both ranges (NaN and infinities are out of range).
    pub fn validate(&self) -> Result<(), GeoPointError> {
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(GeoPointError::Latitude(self.lat));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(GeoPointError::Longitude(self.lon));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(GeoPoint::new(50.11, 8.68).is_ok());
        assert!(GeoPoint::new(-90.0, 180.0).is_ok());
        assert_eq!(GeoPoint::new(91.0, 0.0), Err(GeoPointError::Latitude(91.0)));
        assert_eq!(
            GeoPoint::new(0.0, -180.5),
            Err(GeoPointError::Longitude(-180.5))
        );
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
    }
}
