//! One source's frames on the recording's clock.
//!
//! Within one RTP stream the RTP timestamps are the truth: they keep the
//! sender's spacing whatever the network did, and a paused camera's first
//! frame after the pause carries a timestamp as far ahead as the pause was
//! long, so the gap stays in the file. The stream is anchored to the
//! recording's clock by the arrival time of its first frame. A new SSRC (a
//! simulcast layer switch, a publisher that rejoined) has an unrelated
//! timestamp base, and a timestamp that disagrees with the arrival clock by
//! more than [`MAX_DRIFT`] is a sender's jump: both re-anchor at the
//! arrival time. Times never go backwards (the muxer requires it).

use std::time::Duration;

/// How far RTP time and arrival time may disagree before the stream is
/// re-anchored (far beyond any jitter buffer's worth of network delay).
pub const MAX_DRIFT: Duration = Duration::from_secs(2);

/// The smallest step between two frames of one file (the muxer's
/// timecode resolution is 1 ms).
const STEP_NS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    /// Extended timestamp of the last frame.
    last_ext: i64,
    /// Extended timestamp at `ns0`.
    ext0: i64,
    ns0: u64,
}

impl Anchor {
    /// `ssrc`'s timestamp `ts` is at `ns`.
    fn at(ssrc: u32, ts: u32, ns: u64) -> Self {
        Self {
            ssrc,
            last_ext: i64::from(ts),
            ext0: i64::from(ts),
            ns0: ns,
        }
    }
}

/// Maps RTP timestamps to nanoseconds since the recording started.
#[derive(Debug, Clone)]
pub struct Timeline {
    clock_hz: u32,
    anchor: Option<Anchor>,
    last_ns: Option<u64>,
    reanchors: u32,
}

impl Timeline {
    /// A timeline for an RTP clock of `clock_hz` (90,000 for video, 48,000
    /// for Opus).
    pub fn new(clock_hz: u32) -> Self {
        Self {
            clock_hz: clock_hz.max(1),
            anchor: None,
            last_ns: None,
            reanchors: 0,
        }
    }

    /// How many times a stream was re-anchored (SSRC changes, jumps).
    pub fn reanchors(&self) -> u32 {
        self.reanchors
    }

    /// The time of a frame with RTP timestamp `ts` on `ssrc` that arrived
    /// `arrival` after the recording started, in ns.
    pub fn place(&mut self, ssrc: u32, ts: u32, arrival: Duration) -> u64 {
        let arrival_ns = u64::try_from(arrival.as_nanos()).unwrap_or(u64::MAX);
        let mut ns = match self.anchor {
            Some(mut a) if a.ssrc == ssrc => {
                // Unwrap against the previous frame: a step of at most half
                // the 32-bit range either way.
                let ext = a.last_ext + i64::from(ts.wrapping_sub(a.last_ext as u32) as i32);
                a.last_ext = ext;
                let delta = (ext - a.ext0) as i128 * 1_000_000_000 / i128::from(self.clock_hz);
                let ns = (a.ns0 as i128 + delta).max(0) as u64;
                self.anchor = Some(a);
                if ns.abs_diff(arrival_ns) > MAX_DRIFT.as_nanos() as u64 {
                    self.reanchor(ssrc, ts, arrival_ns)
                } else {
                    ns
                }
            }
            Some(_) => self.reanchor(ssrc, ts, arrival_ns),
            None => {
                self.anchor = Some(Anchor::at(ssrc, ts, arrival_ns));
                arrival_ns
            }
        };
        if let Some(last) = self.last_ns
            && ns < last + STEP_NS
        {
            ns = last + STEP_NS;
        }
        self.last_ns = Some(ns);
        ns
    }

    fn reanchor(&mut self, ssrc: u32, ts: u32, arrival_ns: u64) -> u64 {
        self.reanchors += 1;
        self.anchor = Some(Anchor::at(ssrc, ts, arrival_ns));
        arrival_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rtp_spacing_wins_over_arrival_jitter() {
        let mut t = Timeline::new(90_000);
        assert_eq!(t.place(1, 1000, ms(500)), 500_000_000);
        // 33.3 ms of RTP time later, arriving 80 ms later (jitter).
        assert_eq!(t.place(1, 4000, ms(580)), 533_333_333);
        assert_eq!(t.reanchors(), 0);
    }

    #[test]
    fn a_pause_keeps_its_gap_and_the_timestamp_wraps() {
        let mut t = Timeline::new(48_000);
        let start = u32::MAX - 480;
        assert_eq!(t.place(9, start, ms(0)), 0);
        // 1.5 s of silence not sent, across the 32-bit wrap.
        let ns = t.place(9, start.wrapping_add(72_000), ms(1_510));
        assert_eq!(ns, 1_500_000_000);
    }

    #[test]
    fn a_new_ssrc_or_a_jump_reanchors_on_arrival_and_time_never_goes_back() {
        let mut t = Timeline::new(90_000);
        t.place(1, 0, ms(0));
        t.place(1, 90_000, ms(1_000));
        // A rejoin: new SSRC, unrelated base, arriving at 4 s.
        assert_eq!(t.place(2, 77, ms(4_000)), 4_000_000_000);
        // The sender's clock jumps 10 s ahead.
        assert_eq!(t.place(2, 77 + 900_000, ms(4_040)), 4_040_000_000);
        // A layer switch whose first frame arrives "before" the last one:
        // one millisecond later instead.
        assert_eq!(t.place(3, 5, ms(4_000)), 4_041_000_000);
        assert_eq!(t.reanchors(), 3);
    }
}
