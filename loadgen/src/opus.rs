//! Synthetic Opus packets: one 20 ms frame each (50 per second), 60–120
//! bytes as a speech encoder at ~32 kbit/s produces, a real TOC byte
//! (RFC 6716 §3.1: hybrid, fullband, 20 ms, mono, one frame), and the
//! [`Stamp`] right after it.

use crate::rng::Rng;
use crate::stamp::{STAMP_LEN, Stamp};

/// Where the stamp starts: after the TOC byte.
pub const STAMP_OFFSET: usize = 1;

/// Frame duration.
pub const FRAME_MS: u64 = 20;

/// RTP clock ticks per frame (48 kHz).
pub const TICKS_PER_FRAME: u64 = 48_000 * FRAME_MS / 1000;

/// TOC: config 15 (hybrid, fullband, 20 ms) << 3, mono, code 0 (one frame).
pub const TOC: u8 = 15 << 3;

/// Smallest and largest packet.
pub const SIZE_RANGE: (usize, usize) = (60, 120);

/// A silent Opus encoder with DTX (libwebrtc's default in meetings) sends
/// one comfort-noise packet per 400 ms: every 20th frame.
pub const DTX_FRAMES: u64 = 20;

const _: () = assert!(SIZE_RANGE.0 >= STAMP_OFFSET + STAMP_LEN);

/// A fake Opus encoder: sizes only.
#[derive(Debug, Clone)]
pub struct OpusEncoder {
    rng: Rng,
}

impl OpusEncoder {
    /// A new encoder.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
        }
    }

    /// The next 20 ms packet, stamped.
    pub fn encode(&mut self, stamp: &Stamp) -> Vec<u8> {
        let len = self.rng.range(SIZE_RANGE.0 as u64, SIZE_RANGE.1 as u64) as usize;
        let mut frame = vec![0u8; len];
        self.rng.fill(&mut frame);
        frame[0] = TOC;
        stamp.write(&mut frame, STAMP_OFFSET);
        frame
    }

    /// A comfort-noise packet of silence: a few bytes of noise
    /// parameters in a real encoder; here the TOC byte and the stamp.
    pub fn encode_silence(&self, stamp: &Stamp) -> Vec<u8> {
        let mut frame = vec![0u8; STAMP_OFFSET + STAMP_LEN];
        frame[0] = TOC;
        stamp.write(&mut frame, STAMP_OFFSET);
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{Kind, StreamKey};

    #[test]
    fn packets_are_sized_tocd_and_stamped() {
        let mut e = OpusEncoder::new(3);
        let mut total = 0;
        for seq in 0..500 {
            let s = Stamp {
                key: StreamKey {
                    source: 1,
                    kind: Kind::Audio,
                    layer: 0,
                },
                seq,
                sent_us: 7,
            };
            let f = e.encode(&s);
            assert!((60..=120).contains(&f.len()));
            // config 15 = hybrid FB 20 ms; s = 0; c = 0.
            assert_eq!(f[0] >> 3, 15);
            assert_eq!(f[0] & 0x07, 0);
            assert_eq!(Stamp::read(&f, STAMP_OFFSET), Ok(s));
            total += f.len();
        }
        // 500 packets = 10 s; ~90 bytes each ≈ 36 kbit/s.
        let kbps = total as f64 * 8.0 / 10.0 / 1000.0;
        assert!((30.0..42.0).contains(&kbps), "{kbps}");
        assert_eq!(TICKS_PER_FRAME, 960);
    }
}
