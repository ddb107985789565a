//! Great-circle distance and nearest region.

use geomesh_core::GeoPoint;
use geomesh_core::topology::Region;

/// Mean Earth radius in km (IUGG mean radius R1 of the WGS84 ellipsoid).
pub const EARTH_MEAN_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance between two points in km (haversine formula on a
/// sphere of radius [`EARTH_MEAN_RADIUS_KM`]).
///
/// Symmetric, zero for equal points, at most π·R (≈ 20015 km) for
/// antipodes. Assumes valid points (see [`GeoPoint::validate`]).
pub fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = (b.lat - a.lat).to_radians();
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    // Rounding can push h a hair above 1 for near-antipodes; asin would be NaN.
    2.0 * EARTH_MEAN_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// The region nearest to `location` and its distance in km.
///
/// Ties go to the region listed first. `None` if `regions` is empty.
pub fn nearest_region(location: GeoPoint, regions: &[Region]) -> Option<(&Region, f64)> {
    let mut best: Option<(&Region, f64)> = None;
    for region in regions {
        let d = haversine_km(location, region.location);
        match best {
            Some((_, bd)) if d >= bd => {}
            _ if d.is_nan() => {}
            _ => best = Some((region, d)),
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn known_distances() {
        // Expected values computed independently (Python, same formula and radius).
        let london = p(51.5074, -0.1278);
        let paris = p(48.8566, 2.3522);
        let d = haversine_km(london, paris);
        assert!(close(d, 343.55653488088325), "{d}");
        let frankfurt = p(50.11, 8.68);
        let new_york = p(40.7128, -74.006);
        let d = haversine_km(frankfurt, new_york);
        assert!(close(d, 6202.590590696206), "{d}");
        let sydney = p(-33.8688, 151.2093);
        let tokyo = p(35.6762, 139.6503);
        let d = haversine_km(sydney, tokyo);
        assert!(close(d, 7825.829425997216), "{d}");
    }

    #[test]
    fn properties() {
        let a = p(12.5, -69.9);
        let b = p(-41.0, 174.0);
        assert_eq!(haversine_km(a, a), 0.0);
        assert_eq!(haversine_km(a, b), haversine_km(b, a));
        let half = std::f64::consts::PI * EARTH_MEAN_RADIUS_KM;
        assert!(close(haversine_km(p(0.0, 0.0), p(0.0, 180.0)), half));
        assert!(close(haversine_km(p(90.0, 0.0), p(-90.0, 0.0)), half));
        // One degree of latitude.
        assert!(close(haversine_km(p(0.0, 0.0), p(1.0, 0.0)), half / 180.0));
        // Across the antimeridian.
        assert!(close(
            haversine_km(p(0.0, 179.5), p(0.0, -179.5)),
            half / 180.0
        ));
    }

    fn region(id: &str, lat: f64, lon: f64) -> Region {
        Region {
            id: geomesh_core::RegionId::new(id).unwrap(),
            name: id.to_owned(),
            location: p(lat, lon),
            provider: geomesh_core::topology::Provider::Local,
            provider_region: id.to_owned(),
            group: None,
        }
    }

    #[test]
    fn nearest() {
        let regions = [
            region("us-east", 39.04, -77.49),
            region("eu-central", 50.11, 8.68),
            region("ap-northeast", 35.68, 139.69),
        ];
        let amsterdam = p(52.37, 4.89);
        let (r, d) = nearest_region(amsterdam, &regions).unwrap();
        assert_eq!(r.id.as_str(), "eu-central");
        assert_eq!(d, haversine_km(amsterdam, regions[1].location));
        let (r, _) = nearest_region(p(37.77, -122.42), &regions).unwrap();
        assert_eq!(r.id.as_str(), "us-east");
        let (r, _) = nearest_region(p(-33.87, 151.21), &regions).unwrap();
        assert_eq!(r.id.as_str(), "ap-northeast");
        // At the region itself.
        let (r, d) = nearest_region(p(35.68, 139.69), &regions).unwrap();
        assert_eq!((r.id.as_str(), d), ("ap-northeast", 0.0));
        // Ties go to the first listed.
        let twins = [region("a", 10.0, 10.0), region("b", 10.0, 10.0)];
        assert_eq!(
            nearest_region(p(0.0, 0.0), &twins).unwrap().0.id.as_str(),
            "a"
        );
        assert!(nearest_region(amsterdam, &[]).is_none());
    }
}
