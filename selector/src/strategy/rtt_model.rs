//! Distance → round-trip time: `rtt_ms = base_ms + ms_per_km × km`.
//!
//! The placement strategy uses it to estimate a client's RTT to an edge when
//! the client sent no probe; the simulator uses the *same* model for
//! participant ↔ edge RTTs (and edge ↔ edge where no measurement exists).
//!
//! [`RttModel::FITTED`] holds the least-squares fit to the embedded
//! measured matrix ([`Calibration`](super::Calibration), 36 region pairs);
//! a test re-fits from the CSV and checks the constants, so the two cannot
//! drift apart. The fit and its error are written up in
//! `docs/SIMULATIONS.md` ("Placement model").

use geomesh_core::GeoPoint;
use geomesh_geoip::haversine_km;

/// Linear distance → RTT model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttModel {
    /// RTT at zero distance, ms (access, routing and processing overhead).
    pub base_ms: f64,
    /// RTT added per great-circle km, ms/km. Light in fibre (≈ 2/3 c) gives
    /// 0.01 ms/km round trip; the excess is path inflation.
    pub ms_per_km: f64,
}

/// Round-trip ms per km for light in fibre (refractive index ≈ 1.5, so
/// 2/3 c one way; twice the distance for a round trip).
pub const FIBRE_MS_PER_KM: f64 = 2.0 / (299_792.458 * 2.0 / 3.0) * 1000.0;

/// Why a model cannot be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    /// Fewer than two samples.
    #[error("{0} sample(s): a line needs at least two")]
    TooFewSamples(usize),
    /// Every sample is at the same distance.
    #[error("every sample is at the same distance: the slope is undefined")]
    NoSpread,
    /// A distance or RTT is negative, NaN or infinite.
    #[error("sample {index} ({km} km, {rtt_ms} ms) is not a finite, non-negative pair")]
    BadSample {
        /// Index of the sample.
        index: usize,
        /// Its distance.
        km: f64,
        /// Its RTT.
        rtt_ms: f64,
    },
}

/// A fitted model and how well it reproduces its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The least-squares model.
    pub model: RttModel,
    /// Number of samples.
    pub samples: usize,
    /// Root-mean-square residual, ms.
    pub rmse_ms: f64,
    /// Mean absolute residual, ms.
    pub mean_abs_error_ms: f64,
    /// Largest absolute residual, ms.
    pub max_abs_error_ms: f64,
    /// Coefficient of determination.
    pub r_squared: f64,
}

impl RttModel {
    /// The least-squares fit to the embedded measured matrix (9 AWS regions,
    /// 36 pairs; Imaoka 2019): RMSE 43.3 ms, largest residual 87.9 ms.
    /// `rtt_model::tests::fitted_constants_match_the_data` re-fits and checks
    /// these digits.
    pub const FITTED: RttModel = RttModel {
        base_ms: 15.384_836_958_304,
        ms_per_km: 0.015_850_490_256_924,
    };

    /// Estimated RTT for a great-circle distance. Never negative.
    #[inline]
    pub fn rtt_ms(&self, km: f64) -> f64 {
        (self.base_ms + self.ms_per_km * km).max(0.0)
    }

    /// Estimated RTT between two points.
    #[inline]
    pub fn rtt_between(&self, a: GeoPoint, b: GeoPoint) -> f64 {
        self.rtt_ms(haversine_km(a, b))
    }

    /// How much longer than light in fibre the modelled paths are.
    pub fn inflation(&self) -> f64 {
        self.ms_per_km / FIBRE_MS_PER_KM
    }

    /// Checks that both parameters are finite and non-negative.
    pub fn is_valid(&self) -> bool {
        self.base_ms.is_finite()
            && self.ms_per_km.is_finite()
            && self.base_ms >= 0.0
            && self.ms_per_km >= 0.0
    }

    /// Ordinary least squares of `rtt_ms` on `km` over `(km, rtt_ms)` samples.
    pub fn fit(samples: &[(f64, f64)]) -> Result<Fit, FitError> {
        if samples.len() < 2 {
            return Err(FitError::TooFewSamples(samples.len()));
        }
        for (index, &(km, rtt_ms)) in samples.iter().enumerate() {
            let ok = km.is_finite() && rtt_ms.is_finite() && km >= 0.0 && rtt_ms >= 0.0;
            if !ok {
                return Err(FitError::BadSample { index, km, rtt_ms });
            }
        }
        let n = samples.len() as f64;
        let mean_x = samples.iter().map(|s| s.0).sum::<f64>() / n;
        let mean_y = samples.iter().map(|s| s.1).sum::<f64>() / n;
        let sxx: f64 = samples.iter().map(|s| (s.0 - mean_x).powi(2)).sum();
        let sxy: f64 = samples
            .iter()
            .map(|s| (s.0 - mean_x) * (s.1 - mean_y))
            .sum();
        if sxx <= f64::EPSILON * n {
            return Err(FitError::NoSpread);
        }
        let ms_per_km = sxy / sxx;
        let model = RttModel {
            base_ms: mean_y - ms_per_km * mean_x,
            ms_per_km,
        };
        let residuals = samples
            .iter()
            .map(|&(km, rtt)| rtt - (model.base_ms + model.ms_per_km * km));
        let (mut ss, mut abs, mut max) = (0.0_f64, 0.0_f64, 0.0_f64);
        for r in residuals {
            ss += r * r;
            abs += r.abs();
            max = max.max(r.abs());
        }
        let syy: f64 = samples.iter().map(|s| (s.1 - mean_y).powi(2)).sum();
        Ok(Fit {
            model,
            samples: samples.len(),
            rmse_ms: (ss / n).sqrt(),
            mean_abs_error_ms: abs / n,
            max_abs_error_ms: max,
            r_squared: if syy > 0.0 { 1.0 - ss / syy } else { 1.0 },
        })
    }
}

impl Default for RttModel {
    /// [`RttModel::FITTED`].
    fn default() -> Self {
        Self::FITTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Calibration;

    /// The published constants are the fit to the embedded CSV, and the fit's
    /// error is pinned: a change of data or method shows up here.
    #[test]
    fn fitted_constants_match_the_data() {
        let fit = RttModel::fit(&Calibration::embedded().samples()).unwrap();
        assert_eq!(fit.samples, 36);
        assert!(
            (fit.model.base_ms - RttModel::FITTED.base_ms).abs() < 1e-9,
            "{fit:?}"
        );
        assert!(
            (fit.model.ms_per_km - RttModel::FITTED.ms_per_km).abs() < 1e-12,
            "{fit:?}"
        );
        // The error the docs report (docs/SIMULATIONS.md, "Placement model").
        assert!((fit.rmse_ms - 43.33).abs() < 0.01, "{fit:?}");
        assert!((fit.mean_abs_error_ms - 34.43).abs() < 0.01, "{fit:?}");
        assert!((fit.max_abs_error_ms - 87.90).abs() < 0.01, "{fit:?}");
        assert!((fit.r_squared - 0.693).abs() < 0.001, "{fit:?}");
        assert!((RttModel::FITTED.inflation() - 1.584).abs() < 0.001);
    }

    /// The model reproduces every measured pair within the maximum error it
    /// reports (and the RMSE bound holds over the whole matrix).
    #[test]
    fn model_reproduces_the_matrix_within_its_reported_error() {
        let c = Calibration::embedded();
        let m = RttModel::FITTED;
        let mut ss = 0.0;
        for p in &c.pairs {
            let est = m.rtt_between(c.regions[p.a].location, c.regions[p.b].location);
            let err = (est - p.rtt_ms).abs();
            assert!(
                err <= 87.90,
                "{} ↔ {}: {est:.1} vs {}",
                c.regions[p.a].name,
                c.regions[p.b].name,
                p.rtt_ms
            );
            ss += err * err;
        }
        assert!((ss / c.pairs.len() as f64).sqrt() <= 43.34);
    }

    #[test]
    fn exact_line_and_bad_input() {
        let fit = RttModel::fit(&[(0.0, 10.0), (1000.0, 30.0), (2000.0, 50.0)]).unwrap();
        assert!((fit.model.base_ms - 10.0).abs() < 1e-9);
        assert!((fit.model.ms_per_km - 0.02).abs() < 1e-12);
        assert!(fit.rmse_ms < 1e-9 && fit.max_abs_error_ms < 1e-9);
        assert_eq!(
            RttModel::fit(&[(1.0, 1.0)]),
            Err(FitError::TooFewSamples(1))
        );
        assert_eq!(
            RttModel::fit(&[(5.0, 1.0), (5.0, 2.0)]),
            Err(FitError::NoSpread)
        );
        assert!(matches!(
            RttModel::fit(&[(0.0, 1.0), (f64::NAN, 2.0)]),
            Err(FitError::BadSample { index: 1, .. })
        ));
        assert!(matches!(
            RttModel::fit(&[(0.0, -1.0), (1.0, 2.0)]),
            Err(FitError::BadSample { index: 0, .. })
        ));
        let m = RttModel {
            base_ms: -5.0,
            ms_per_km: 0.0,
        };
        assert_eq!(m.rtt_ms(100.0), 0.0);
        assert!(!m.is_valid());
        assert!(RttModel::FITTED.is_valid());
    }
}
