//! A fixed-size log-linear histogram of microsecond values: exact below
//! 1,024 µs, then 512 buckets per power of two (relative error under
//! 0.2 %), up to `u32::MAX` µs (71 minutes). Bounded memory whatever the
//! run length; merging is adding counts.

/// Values below this are counted exactly.
const LINEAR: u64 = 1024;
/// Buckets per power of two above [`LINEAR`].
const SUB: u64 = 512;
/// Powers of two above 2^10 up to 2^32.
const OCTAVES: u64 = 22;
const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;

/// Counts of microsecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    let v = v.min(u64::from(u32::MAX));
    if v < LINEAR {
        return v as usize;
    }
    // v in [2^e, 2^(e+1)), e ≥ 10: keep the top 10 bits (512..1023 after the shift).
    let e = 63 - u64::from(v.leading_zeros());
    let shift = e - 9;
    let sub = (v >> shift) - SUB;
    (LINEAR + (e - 10) * SUB + sub) as usize
}

/// The smallest value that falls into bucket `i`.
fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / SUB + 10;
    let sub = (i - LINEAR) % SUB + SUB;
    sub << (e - 9)
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, micros: u64) {
        self.counts[bucket(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value counted (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0–1): the lower bound of the bucket that
    /// holds the ⌈q·n⌉-th smallest value, never above the max. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..5000).chain((5000..100_000_000).step_by(997)) {
            let b = bucket(v);
            assert!(b >= last, "bucket({v}) went backwards");
            last = b;
            let lo = lower_bound(b);
            assert!(lo <= v, "lower bound {lo} above {v}");
            assert!((v - lo) as f64 <= v as f64 * 0.002 + 0.5, "{v} → {lo}");
        }
        assert!(bucket(u64::MAX) < BUCKETS);
        assert_eq!(bucket(1023), 1023);
        assert_eq!(bucket(1024), 1024);
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000);
        let near =
            |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.003 + 1.0;
        assert!(near(h.quantile(0.5), 5000), "{}", h.quantile(0.5));
        assert!(near(h.quantile(0.95), 9500));
        assert!(near(h.quantile(0.99), 9900));
        assert_eq!(h.quantile(1.0), 10_000);
        assert!((h.mean() - 5000.5).abs() < 1e-9);
    }

    #[test]
    fn merge_adds_and_empty_is_zero() {
        let mut a = Histogram::default();
        assert_eq!(a.quantile(0.5), 0);
        let mut b = Histogram::default();
        a.record(10);
        b.record(20);
        b.record(3_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 3_000_000);
        assert_eq!(a.quantile(0.5), 20);
    }
}
