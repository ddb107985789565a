//! Join rate limits: token buckets per source address and per conference,
//! so that a flood from one address (or at one conference) costs the
//! cluster a bounded number of placements and nobody else their joins.
//! Pure: time is passed in; memory is bounded (idle buckets are dropped).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A token bucket per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    max_keys: usize,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_second` sustained, `burst` at once, at most `max_keys` keys
    /// remembered.
    pub fn new(per_second: f64, burst: f64, max_keys: usize) -> Self {
        Self {
            per_second: per_second.max(0.0),
            burst: burst.max(1.0),
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key` at `now`; false when there is none (the
    /// caller refuses the request).
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            // Full buckets carry no information: forget them first.
            let (rate, burst) = (self.per_second, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= self.max_keys {
                // Under a spread-out flood: refuse newcomers rather than grow.
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(key.clone()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until `key` has a token again.
    pub fn retry_after(&self, key: &K) -> Duration {
        let missing = self
            .buckets
            .get(key)
            .map_or(0.0, |(t, _)| (1.0 - t).max(0.0));
        if self.per_second > 0.0 {
            Duration::from_secs_f64(missing / self.per_second)
        } else {
            Duration::from_secs(60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_rate_and_keys_are_apart() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10.0, 5.0, 100);
        let allowed = (0..50).filter(|_| r.allow(&"a", t0)).count();
        assert_eq!(allowed, 5, "the burst");
        assert!(r.allow(&"b", t0), "another key has its own bucket");
        assert!(!r.allow(&"a", t0 + Duration::from_millis(50)));
        assert!(
            r.allow(&"a", t0 + Duration::from_millis(110)),
            "refilled at 10/s"
        );
        assert!(r.retry_after(&"a") <= Duration::from_millis(100));
        // A second at 1,000 requests/s lets through the burst and the rate.
        let mut r = RateLimiter::new(10.0, 5.0, 100);
        let through = (0..1000)
            .filter(|i| r.allow(&"x", t0 + Duration::from_millis(*i)))
            .count();
        assert!((14..=16).contains(&through), "{through}");
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1.0, 1.0, 10);
        for i in 0..1000 {
            r.allow(&i, t0);
        }
        assert!(r.buckets.len() <= 10);
        // Once they are full again, room comes back.
        assert!(r.allow(&5000, t0 + Duration::from_secs(2)));
    }
}
