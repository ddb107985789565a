//! The stamp every generated frame carries: who sent it, which frame it is,
//! and when it left, inside the frame data itself.
//!
//! The stamp sits at a fixed offset of the *frame* (after the codec's own
//! header bytes: [`crate::vp8::STAMP_OFFSET`], [`crate::opus::STAMP_OFFSET`]),
//! never in RTP headers, header extensions or packet boundaries. So it
//! survives an SFU that forwards frames (depacketize, repacketize) as well as
//! one that forwards RTP packets unchanged: either way the receiver's
//! reassembled frame holds the same bytes.
//!
//! Layout, 24 bytes, big-endian:
//!
//! ```text
//! 0      4        8     9      10     12     16               24
//! | GMLG | source | kind| layer| 0 0  | seq  | sent_us (u64)  |
//! ```
//!
//! `sent_us` counts microseconds since the run's [`Clock`] base: senders and
//! receivers live in one process and read the same monotonic clock, so the
//! difference is the one-way delay.

use std::time::Instant;

use serde::Serialize;

/// Bytes of a stamp.
pub const STAMP_LEN: usize = 24;

const MAGIC: [u8; 4] = *b"GMLG";

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

impl Kind {
    /// Both kinds, in report order.
    pub const ALL: [Kind; 2] = [Kind::Video, Kind::Audio];

    /// Index into per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            Kind::Audio => 0,
            Kind::Video => 1,
        }
    }

    /// Where this kind's stamp starts in a frame.
    pub fn stamp_offset(self) -> usize {
        match self {
            Kind::Audio => crate::opus::STAMP_OFFSET,
            Kind::Video => crate::vp8::STAMP_OFFSET,
        }
    }

    fn byte(self) -> u8 {
        match self {
            Kind::Audio => 0,
            Kind::Video => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Audio),
            1 => Some(Kind::Video),
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        })
    }
}

/// The run's time base: every sender and receiver in the process uses one.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose zero is `base`.
    pub fn new(base: Instant) -> Self {
        Self { base }
    }

    /// Microseconds from the base to `t` (0 before the base).
    pub fn micros(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }
}

/// One media stream of one publisher: the unit of loss accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Publisher (source) number, unique in the run.
    pub source: u32,
    /// Audio or video.
    pub kind: Kind,
    /// Simulcast layer (0 without simulcast; 0 = lowest).
    pub layer: u8,
}

/// A decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which stream.
    pub key: StreamKey,
    /// Frame number in the stream, from 0.
    pub seq: u32,
    /// Send time, microseconds since the [`Clock`] base.
    pub sent_us: u64,
}

/// Why a frame's stamp could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The frame ends before the stamp does.
    #[error("frame too short for a stamp")]
    Short,
    /// The magic bytes are wrong: not a loadgen frame, or corrupted.
    #[error("no stamp magic")]
    Magic,
    /// Unknown kind byte.
    #[error("bad kind byte")]
    Kind,
}

impl Stamp {
    /// Writes the stamp into `frame` at `offset`. Panics if the frame is too
    /// short: generators size frames so it never is (a bug otherwise).
    pub fn write(&self, frame: &mut [u8], offset: usize) {
        let b = &mut frame[offset..offset + STAMP_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.key.source.to_be_bytes());
        b[8] = self.key.kind.byte();
        b[9] = self.key.layer;
        b[10..12].copy_from_slice(&[0, 0]);
        b[12..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.sent_us.to_be_bytes());
    }

    /// Reads the stamp at `offset` of `frame`.
    pub fn read(frame: &[u8], offset: usize) -> Result<Stamp, StampError> {
        let b = frame
            .get(offset..offset + STAMP_LEN)
            .ok_or(StampError::Short)?;
        if b[0..4] != MAGIC {
            return Err(StampError::Magic);
        }
        let kind = Kind::from_byte(b[8]).ok_or(StampError::Kind)?;
        // The slices below are exactly 4 and 8 bytes long (fixed ranges of a 24-byte slice).
        let source = u32::from_be_bytes(b[4..8].try_into().expect("4 bytes"));
        let seq = u32::from_be_bytes(b[12..16].try_into().expect("4 bytes"));
        let sent_us = u64::from_be_bytes(b[16..24].try_into().expect("8 bytes"));
        Ok(Stamp {
            key: StreamKey {
                source,
                kind,
                layer: b[9],
            },
            seq,
            sent_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trips_at_an_offset() {
        let s = Stamp {
            key: StreamKey {
                source: 0xdead_beef,
                kind: Kind::Video,
                layer: 2,
            },
            seq: 12345,
            sent_us: 987_654_321_012,
        };
        let mut frame = vec![0xaa; 60];
        s.write(&mut frame, 10);
        assert_eq!(&frame[10..14], b"GMLG");
        assert_eq!(frame[9], 0xaa, "bytes before the stamp untouched");
        assert_eq!(frame[34], 0xaa, "bytes after the stamp untouched");
        assert_eq!(Stamp::read(&frame, 10), Ok(s));
    }

    #[test]
    fn refuses_short_foreign_and_bad_kind() {
        assert_eq!(Stamp::read(&[0; 20], 0), Err(StampError::Short));
        assert_eq!(Stamp::read(&[0; 40], 1), Err(StampError::Magic));
        let mut f = vec![0; 40];
        Stamp {
            key: StreamKey {
                source: 1,
                kind: Kind::Audio,
                layer: 0,
            },
            seq: 0,
            sent_us: 0,
        }
        .write(&mut f, 1);
        f[9] = 7;
        assert_eq!(Stamp::read(&f, 1), Err(StampError::Kind));
    }

    #[test]
    fn clock_counts_micros_from_its_base() {
        let base = Instant::now();
        let c = Clock::new(base);
        assert_eq!(c.micros(base), 0);
        assert_eq!(c.micros(base + Duration::from_millis(3)), 3000);
        assert_eq!(c.micros(base - Duration::from_millis(1)), 0);
    }
}
