//! How many times one token or grant has been used: a bearer credential
//! that leaks (a shared link, a log line) admits a bounded number of
//! sessions, not a crowd. Pure: time is passed in; memory is bounded by the
//! credentials alive at once (expired ones are dropped as new ones come).

use std::collections::HashMap;

/// Uses of bearer credentials, each counted until it expires.
#[derive(Debug)]
pub struct UseCounter {
    max_uses: u32,
    max_entries: usize,
    /// Signature prefix → (uses, expires at Unix seconds).
    uses: HashMap<[u8; 16], (u32, u64)>,
}

/// A credential used more than its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this credential has been used {0} times, its maximum")]
pub struct Overused(pub u32);

impl UseCounter {
    /// At most `max_uses` per credential; at most `max_entries` credentials
    /// remembered (beyond, the soonest to expire are forgotten first).
    pub fn new(max_uses: u32, max_entries: usize) -> Self {
        Self {
            max_uses,
            max_entries: max_entries.max(1),
            uses: HashMap::new(),
        }
    }

    /// Counts one use of the credential `token` (a compact JWT: its
    /// signature names it), valid until `exp`; refuses it past its share.
    pub fn use_once(&mut self, token: &str, exp: u64, now: u64) -> Result<u32, Overused> {
        let sig = token.rsplit('.').next().unwrap_or(token).as_bytes();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sig);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest.as_ref()[..16]);
        if self.uses.len() >= self.max_entries {
            self.uses.retain(|_, (_, e)| *e > now);
            while self.uses.len() >= self.max_entries {
                let Some(soonest) = self
                    .uses
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                self.uses.remove(&soonest);
            }
        }
        let e = self.uses.entry(key).or_insert((0, exp));
        if e.0 >= self.max_uses {
            return Err(Overused(e.0));
        }
        e.0 += 1;
        Ok(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_used_its_share_then_refused() {
        let mut u = UseCounter::new(2, 100);
        assert_eq!(u.use_once("h.p.sigA", 100, 10), Ok(1));
        assert_eq!(u.use_once("h.p.sigA", 100, 11), Ok(2));
        assert_eq!(u.use_once("h.p.sigA", 100, 12), Err(Overused(2)));
        assert_eq!(u.use_once("h.p.sigB", 100, 12), Ok(1), "another credential");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut u = UseCounter::new(1, 10);
        for i in 0..1000u64 {
            u.use_once(&format!("h.p.s{i}"), 5 + i, 5 + i).unwrap();
            assert!(u.uses.len() <= 10);
        }
    }
}
