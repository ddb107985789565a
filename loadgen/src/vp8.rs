//! Synthetic VP8 frames: a real VP8 frame header (RFC 6386 §9.1), sizes that
//! add up to the target bitrate, periodic keyframes 5–10× larger than the
//! frames between them, and the [`Stamp`] at [`STAMP_OFFSET`].
//!
//! The bytes after the header are filler, not a decodable picture: an SFU
//! never decodes, it looks only at the payload descriptor and the frame
//! header's keyframe bit (what str0m's depacketizer reads to flag
//! keyframes). The RTP payload descriptor (RFC 7741) is added per packet by
//! the packetizer: str0m's on the WebRTC path, [`crate::rtp`] on the relay
//! path.
//!
//! Frame layout:
//!
//! ```text
//! keyframe:   | frame tag (3) | 9d 01 2a | width (2) | height (2) | stamp (24) | filler |
//! interframe: | frame tag (3) | first-partition filler (7)        | stamp (24) | filler |
//! ```

use crate::rng::Rng;
use crate::stamp::{STAMP_LEN, Stamp};

/// Where the stamp starts: after the 10-byte keyframe header (interframes
/// use the same offset so receivers need not parse the header).
pub const STAMP_OFFSET: usize = 10;

/// Shortest frame generated: header, stamp and a little payload.
pub const MIN_FRAME_LEN: usize = STAMP_OFFSET + STAMP_LEN + 8;

/// The keyframe start code (RFC 6386 §9.1).
const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// Largest first-partition size the 19-bit field holds.
const MAX_FIRST_PART: u32 = (1 << 19) - 1;

/// Bytes of random filler each encoder copies frame payloads from.
const POOL_LEN: usize = 64 * 1024;

/// What one encoder (one simulcast layer) produces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vp8Params {
    /// Picture width written in keyframe headers.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// Target bitrate, kbit/s.
    pub kbps: u32,
    /// Frames per second.
    pub fps: u32,
    /// Keyframe size ÷ interframe size.
    pub keyframe_ratio: f64,
    /// Shortest and longest keyframe interval, seconds (drawn per GOP).
    pub keyframe_interval_s: (f64, f64),
}

impl Vp8Params {
    /// 30 fps, keyframes 7× larger every 2–3 s.
    pub fn new(width: u16, height: u16, kbps: u32) -> Self {
        Self {
            width,
            height,
            kbps,
            fps: 30,
            keyframe_ratio: 7.0,
            keyframe_interval_s: (2.0, 3.0),
        }
    }

    /// Mean bytes per frame at the target bitrate.
    pub fn mean_frame_bytes(&self) -> f64 {
        f64::from(self.kbps) * 1000.0 / 8.0 / f64::from(self.fps.max(1))
    }

    /// Mean interframe size, such that a mean GOP (one keyframe, the rest
    /// interframes) averages [`Self::mean_frame_bytes`].
    pub fn interframe_bytes(&self) -> f64 {
        let (lo, hi) = self.keyframe_interval_s;
        let gop = ((lo + hi) / 2.0 * f64::from(self.fps)).max(1.0);
        self.mean_frame_bytes() * gop / (self.keyframe_ratio + gop - 1.0)
    }
}

/// A parsed VP8 frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Header {
    /// Key frame (the tag's inverse-keyframe bit P is 0).
    pub keyframe: bool,
    /// Version (0 = bicubic reconstruction, normal loop filter).
    pub version: u8,
    /// The frame is meant to be shown.
    pub show_frame: bool,
    /// Size of the first partition, bytes.
    pub first_part_size: u32,
    /// Width and height (keyframes only).
    pub dimensions: Option<(u16, u16)>,
}

/// Why bytes are not a VP8 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Vp8Error {
    /// Shorter than its header.
    #[error("VP8 frame shorter than its header")]
    Short,
    /// A keyframe without the start code.
    #[error("VP8 keyframe without start code")]
    StartCode,
    /// First partition larger than the frame.
    #[error("VP8 first partition larger than the frame")]
    PartitionSize,
}

/// Writes a VP8 frame header at the start of `frame` (≥ 10 bytes).
pub fn write_header(frame: &mut [u8], keyframe: bool, first_part_size: u32, dims: (u16, u16)) {
    let tag = u32::from(!keyframe) | (1 << 4) | ((first_part_size & MAX_FIRST_PART) << 5);
    frame[0..3].copy_from_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        frame[3..6].copy_from_slice(&START_CODE);
        // 14-bit sizes; the top two bits (scaling) stay 0.
        frame[6..8].copy_from_slice(&(dims.0 & 0x3fff).to_le_bytes());
        frame[8..10].copy_from_slice(&(dims.1 & 0x3fff).to_le_bytes());
    }
}

/// Parses the frame header of a VP8 frame.
pub fn parse_header(frame: &[u8]) -> Result<Vp8Header, Vp8Error> {
    if frame.len() < 3 {
        return Err(Vp8Error::Short);
    }
    let tag = u32::from(frame[0]) | u32::from(frame[1]) << 8 | u32::from(frame[2]) << 16;
    let keyframe = tag & 1 == 0;
    let first_part_size = tag >> 5;
    let header_len = if keyframe { 10 } else { 3 };
    if frame.len() < header_len {
        return Err(Vp8Error::Short);
    }
    if first_part_size as usize > frame.len() - header_len {
        return Err(Vp8Error::PartitionSize);
    }
    let dimensions = if keyframe {
        if frame[3..6] != START_CODE {
            return Err(Vp8Error::StartCode);
        }
        let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
        let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
        Some((w, h))
    } else {
        None
    };
    Ok(Vp8Header {
        keyframe,
        version: ((tag >> 1) & 7) as u8,
        show_frame: tag & 0x10 != 0,
        first_part_size,
        dimensions,
    })
}

/// A fake VP8 encoder for one layer: sizes and keyframe cadence only.
#[derive(Debug, Clone)]
pub struct Vp8Encoder {
    params: Vp8Params,
    rng: Rng,
    pool: Vec<u8>,
    /// Interframes left before the next periodic keyframe.
    until_key: u32,
    force_key: bool,
}

impl Vp8Encoder {
    /// An encoder whose first frame is a keyframe.
    pub fn new(params: Vp8Params, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut pool = vec![0u8; POOL_LEN];
        rng.fill(&mut pool);
        Self {
            params,
            rng,
            pool,
            until_key: 0,
            force_key: true,
        }
    }

    /// The layer's parameters.
    pub fn params(&self) -> &Vp8Params {
        &self.params
    }

    /// Makes the next frame a keyframe (a PLI or FIR arrived).
    pub fn request_keyframe(&mut self) {
        self.force_key = true;
    }

    fn draw_gop(&mut self) -> u32 {
        let (lo, hi) = self.params.keyframe_interval_s;
        let secs = lo + (hi - lo) * self.rng.unit();
        ((secs * f64::from(self.params.fps)).round() as u32).max(1)
    }

    /// The next frame, stamped with `stamp`; returns it and whether it is a
    /// keyframe.
    pub fn encode(&mut self, stamp: &Stamp) -> (Vec<u8>, bool) {
        let keyframe = self.force_key || self.until_key == 0;
        let inter = self.params.interframe_bytes();
        let target = if keyframe {
            self.force_key = false;
            self.until_key = self.draw_gop() - 1;
            inter * self.params.keyframe_ratio * (0.9 + 0.2 * self.rng.unit())
        } else {
            self.until_key -= 1;
            inter * (0.75 + 0.5 * self.rng.unit())
        };
        let len = (target.round() as usize).max(MIN_FRAME_LEN);
        let mut frame = Vec::with_capacity(len);
        let start = self.rng.range(0, (POOL_LEN - 1) as u64) as usize;
        while frame.len() < len {
            let from = if frame.is_empty() { start } else { 0 };
            let take = (len - frame.len()).min(POOL_LEN - from);
            frame.extend_from_slice(&self.pool[from..from + take]);
        }
        // The first partition (modes, motion vectors) is roughly a tenth of a frame.
        let first_part = ((len - STAMP_OFFSET) / 10).max(1) as u32;
        write_header(
            &mut frame,
            keyframe,
            first_part.min(MAX_FIRST_PART),
            (self.params.width, self.params.height),
        );
        stamp.write(&mut frame, STAMP_OFFSET);
        (frame, keyframe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{Kind, StreamKey};

    fn stamp(seq: u32) -> Stamp {
        Stamp {
            key: StreamKey {
                source: 3,
                kind: Kind::Video,
                layer: 0,
            },
            seq,
            sent_us: 1000 + u64::from(seq),
        }
    }

    #[test]
    fn header_is_rfc6386() {
        let mut f = vec![0u8; 40];
        write_header(&mut f, true, 20, (1280, 720));
        // P=0 (key), version 0, show_frame 1, size 20 << 5.
        let tag = 0x10 | (20 << 5);
        assert_eq!(&f[..3], &[tag as u8, (tag >> 8) as u8, 0]);
        assert_eq!(&f[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(&f[6..10], &[0x00, 0x05, 0xd0, 0x02]);
        let h = parse_header(&f).unwrap();
        assert_eq!(
            h,
            Vp8Header {
                keyframe: true,
                version: 0,
                show_frame: true,
                first_part_size: 20,
                dimensions: Some((1280, 720)),
            }
        );
        write_header(&mut f, false, 30, (0, 0));
        let h = parse_header(&f).unwrap();
        assert!(!h.keyframe && h.show_frame && h.dimensions.is_none());
        assert_eq!(f[0] & 1, 1, "P bit set on interframes");
    }

    #[test]
    fn parse_refuses_bad_frames() {
        assert_eq!(parse_header(&[0x10, 0]), Err(Vp8Error::Short));
        let mut f = vec![0u8; 40];
        write_header(&mut f, true, 20, (640, 360));
        f[4] = 0;
        assert_eq!(parse_header(&f), Err(Vp8Error::StartCode));
        write_header(&mut f, false, 1000, (0, 0));
        assert_eq!(parse_header(&f), Err(Vp8Error::PartitionSize));
    }

    #[test]
    fn frames_carry_header_and_stamp() {
        let mut e = Vp8Encoder::new(Vp8Params::new(640, 360, 750), 1);
        for seq in 0..100 {
            let (f, key) = e.encode(&stamp(seq));
            let h = parse_header(&f).unwrap();
            assert_eq!(h.keyframe, key);
            if key {
                assert_eq!(h.dimensions, Some((640, 360)));
            }
            assert_eq!(Stamp::read(&f, STAMP_OFFSET), Ok(stamp(seq)));
        }
    }

    #[test]
    fn bitrate_keyframe_cadence_and_sizes() {
        let p = Vp8Params::new(1280, 720, 1500);
        let mut e = Vp8Encoder::new(p, 42);
        let frames = 30 * 60; // one minute at 30 fps
        let (mut total, mut keys, mut key_bytes, mut inter_bytes) =
            (0usize, 0usize, 0usize, 0usize);
        let mut gaps = Vec::new();
        let mut last_key = None;
        for seq in 0..frames {
            let (f, key) = e.encode(&stamp(seq));
            total += f.len();
            if key {
                keys += 1;
                key_bytes += f.len();
                if let Some(l) = last_key {
                    gaps.push(seq - l);
                }
                last_key = Some(seq);
            } else {
                inter_bytes += f.len();
            }
        }
        let kbps = total as f64 * 8.0 / 60.0 / 1000.0;
        assert!((1350.0..1650.0).contains(&kbps), "{kbps} kbit/s");
        // A keyframe every 2–3 s.
        assert!(gaps.iter().all(|g| (60..=90).contains(g)), "{gaps:?}");
        assert!((20..=30).contains(&keys), "{keys}");
        let ratio = (key_bytes as f64 / keys as f64)
            / (inter_bytes as f64 / (frames as usize - keys) as f64);
        assert!(
            (5.0..=10.0).contains(&ratio),
            "keyframes {ratio}× interframes"
        );
    }

    #[test]
    fn requested_keyframe_comes_next() {
        let mut e = Vp8Encoder::new(Vp8Params::new(320, 180, 300), 9);
        assert!(e.encode(&stamp(0)).1, "first frame is a keyframe");
        assert!(!e.encode(&stamp(1)).1);
        e.request_keyframe();
        assert!(e.encode(&stamp(2)).1);
        assert!(!e.encode(&stamp(3)).1);
    }

    #[test]
    fn tiny_bitrates_still_fit_the_stamp() {
        let mut e = Vp8Encoder::new(Vp8Params::new(160, 90, 1), 5);
        for seq in 0..10 {
            let (f, _) = e.encode(&stamp(seq));
            assert!(f.len() >= MIN_FRAME_LEN);
            parse_header(&f).unwrap();
        }
    }
}
