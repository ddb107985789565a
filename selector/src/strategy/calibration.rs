//! The measured inter-region RTT matrix the RTT model is fitted to.
//!
//! Imaoka's 2019 AWS ping matrix (9 regions) and the regions' metro-area
//! coordinates, embedded from `calibration/` (see its README for source and
//! licence). The simulator also reads it for measured edge ↔ edge RTTs.

use geomesh_core::GeoPoint;
use geomesh_geoip::haversine_km;

use super::RttModel;

/// `regions.csv`, embedded.
pub const REGIONS_CSV: &str = include_str!("calibration/regions.csv");
/// `region_rtt_ms.csv`, embedded.
pub const RTT_CSV: &str = include_str!("calibration/region_rtt_ms.csv");

/// Why calibration CSV text could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// A line does not have the expected columns or values.
    #[error("{file} line {line}: {message}")]
    Malformed {
        /// Which file (`regions.csv` or `region_rtt_ms.csv`).
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The two directions of a pair disagree.
    #[error("{a} ↔ {b}: {ab} ms one way, {ba} ms the other (the matrix must be symmetric)")]
    Asymmetric {
        /// First region.
        a: String,
        /// Second region.
        b: String,
        /// RTT listed a → b.
        ab: f64,
        /// RTT listed b → a.
        ba: f64,
    },
}

/// One measured region (a cloud region at its metro area's coordinates).
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredRegion {
    /// The provider's region name (`eu-central-1`).
    pub name: String,
    /// The metro area (`Frankfurt`).
    pub city: String,
    /// Its approximate coordinates.
    pub location: GeoPoint,
}

/// One measured pair (unordered; `a < b` by index).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredPair {
    /// Index into [`Calibration::regions`].
    pub a: usize,
    /// Index into [`Calibration::regions`].
    pub b: usize,
    /// Measured average round-trip time, ms.
    pub rtt_ms: f64,
}

/// The measured matrix: regions and the RTT of every pair listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Regions in file order.
    pub regions: Vec<MeasuredRegion>,
    /// Unordered pairs, each once, in the order first listed.
    pub pairs: Vec<MeasuredPair>,
}

impl Calibration {
    /// The embedded data set.
    pub fn embedded() -> Self {
        // The embedded files are checked by a unit test: panic means bug.
        Self::parse(REGIONS_CSV, RTT_CSV).expect("embedded calibration CSV is valid")
    }

    /// Parses `regions.csv` (`region,city,lat,lon`) and `region_rtt_ms.csv`
    /// (`from,to,rtt_ms`), both with a header line. Pairs listed in both
    /// directions must agree.
    pub fn parse(regions_csv: &str, rtt_csv: &str) -> Result<Self, CalibrationError> {
        let mut regions = Vec::new();
        for (line, cols) in rows(regions_csv) {
            let bad = |message: String| CalibrationError::Malformed {
                file: "regions.csv",
                line,
                message,
            };
            let [name, city, lat, lon] = cols[..] else {
                return Err(bad(format!("{} columns (want 4)", cols.len())));
            };
            let lat: f64 = lat.parse().map_err(|_| bad(format!("lat {lat:?}")))?;
            let lon: f64 = lon.parse().map_err(|_| bad(format!("lon {lon:?}")))?;
            let location = GeoPoint::new(lat, lon).map_err(|e| bad(e.to_string()))?;
            if regions.iter().any(|r: &MeasuredRegion| r.name == name) {
                return Err(bad(format!("region {name:?} listed twice")));
            }
            regions.push(MeasuredRegion {
                name: name.to_string(),
                city: city.to_string(),
                location,
            });
        }
        let mut pairs: Vec<MeasuredPair> = Vec::new();
        for (line, cols) in rows(rtt_csv) {
            let bad = |message: String| CalibrationError::Malformed {
                file: "region_rtt_ms.csv",
                line,
                message,
            };
            let [from, to, rtt] = cols[..] else {
                return Err(bad(format!("{} columns (want 3)", cols.len())));
            };
            let index = |n: &str| {
                regions
                    .iter()
                    .position(|r| r.name == n)
                    .ok_or_else(|| bad(format!("unknown region {n:?}")))
            };
            let (i, j) = (index(from)?, index(to)?);
            if i == j {
                return Err(bad(format!("{from} to itself")));
            }
            let rtt_ms: f64 = rtt.parse().map_err(|_| bad(format!("rtt {rtt:?}")))?;
            if !(rtt_ms.is_finite() && rtt_ms > 0.0) {
                return Err(bad(format!("rtt {rtt_ms} is not a positive time")));
            }
            let (a, b) = (i.min(j), i.max(j));
            match pairs.iter().find(|p| p.a == a && p.b == b) {
                Some(p) if p.rtt_ms != rtt_ms => {
                    return Err(CalibrationError::Asymmetric {
                        a: regions[a].name.clone(),
                        b: regions[b].name.clone(),
                        ab: p.rtt_ms,
                        ba: rtt_ms,
                    });
                }
                Some(_) => {}
                None => pairs.push(MeasuredPair { a, b, rtt_ms }),
            }
        }
        Ok(Self { regions, pairs })
    }

    /// The index of the region with this provider name.
    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// The measured RTT between two regions by name, if the pair was measured.
    pub fn rtt_ms(&self, a: &str, b: &str) -> Option<f64> {
        let (i, j) = (self.region_index(a)?, self.region_index(b)?);
        let (a, b) = (i.min(j), i.max(j));
        self.pairs
            .iter()
            .find(|p| p.a == a && p.b == b)
            .map(|p| p.rtt_ms)
    }

    /// The RTT matrix placement takes ([`super::ClusterView::region_rtt_ms`])
    /// for regions at `locations`, `measured_as[i]` naming region i in this
    /// set if it is one: measured where both regions are, else `model` on
    /// their distance (0 km on the diagonal: two edges of one region).
    /// Computed once per cluster, so that a decision computes no distances
    /// between regions.
    pub fn region_matrix(
        &self,
        locations: &[GeoPoint],
        measured_as: &[Option<&str>],
        model: &RttModel,
    ) -> Vec<f64> {
        let n = locations.len();
        let name = |i: usize| measured_as.get(i).copied().flatten();
        let mut out = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                let measured = match (name(i), name(j)) {
                    (Some(a), Some(b)) if i != j => self.rtt_ms(a, b),
                    _ => None,
                };
                out.push(measured.unwrap_or_else(|| {
                    model.rtt_ms(if i == j {
                        0.0
                    } else {
                        haversine_km(locations[i], locations[j])
                    })
                }));
            }
        }
        out
    }

    /// (great-circle km, measured RTT ms) for every pair: the fit's input.
    pub fn samples(&self) -> Vec<(f64, f64)> {
        self.pairs
            .iter()
            .map(|p| {
                let km = haversine_km(self.regions[p.a].location, self.regions[p.b].location);
                (km, p.rtt_ms)
            })
            .collect()
    }
}

/// Non-empty data lines after the header, split on commas, with 1-based
/// line numbers. (These files have no quoted fields.)
fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split(',').map(str::trim).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_parses_and_is_symmetric() {
        let c = Calibration::parse(REGIONS_CSV, RTT_CSV).unwrap();
        assert_eq!(c.regions.len(), 9);
        // 9 regions, every unordered pair measured once.
        assert_eq!(c.pairs.len(), 36);
        assert_eq!(c.rtt_ms("eu-west-2", "eu-central-1"), Some(15.0));
        assert_eq!(c.rtt_ms("eu-central-1", "eu-west-2"), Some(15.0));
        assert_eq!(c.rtt_ms("sa-east-1", "ap-southeast-1"), Some(341.0));
        assert_eq!(c.rtt_ms("eu-west-2", "eu-west-2"), None);
        assert_eq!(c.rtt_ms("eu-west-2", "mars-1"), None);
    }

    #[test]
    fn bad_files_are_errors() {
        let regions = "region,city,lat,lon\na,A,1,2\nb,B,3,4\n";
        assert!(Calibration::parse(regions, "from,to,rtt_ms\na,b,10\nb,a,10\n").is_ok());
        let e = Calibration::parse(regions, "from,to,rtt_ms\na,b,10\nb,a,11\n").unwrap_err();
        assert!(matches!(e, CalibrationError::Asymmetric { .. }), "{e}");
        let e = Calibration::parse(regions, "from,to,rtt_ms\na,c,10\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "region_rtt_ms.csv line 2: unknown region \"c\""
        );
        let e = Calibration::parse(regions, "h\na,b,-3\n").unwrap_err();
        assert!(e.to_string().contains("not a positive time"), "{e}");
        let e = Calibration::parse("h\na,A,91,0\n", "h\n").unwrap_err();
        assert!(e.to_string().contains("latitude"), "{e}");
        let e = Calibration::parse("h\na,A,1\n", "h\n").unwrap_err();
        assert!(e.to_string().contains("3 columns"), "{e}");
    }
}
