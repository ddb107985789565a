//! VP8's PictureID and TL0PICIDX kept continuous on a subscriber's leg
//! across simulcast switches (RFC 7741 §4.2).
//!
//! Simulcast layers are separate encodings, each with its own PictureID
//! and TL0PICIDX sequence. A receiver's VP8 reference finder (Chromium's
//! `RtpVp8RefFinder`) orders frames by them: at a switch the sequence jumps,
//! frames look too old or seem to reference pictures that never came, and
//! the decoder stops while packets keep arriving, until a PLI brings a
//! keyframe seconds later. So each leg maps the input's IDs onto one
//! continuous output sequence, as mediasoup and LiveKit munge VP8; str0m
//! applies the change while it serializes the packet ([`Vp8Patch`]), so
//! the payload shared by every subscriber is never copied. One parser of
//! the descriptor serves this and the keyframe height layer choice reads.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// The IDs of one packet's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    picture_id: u16,
    /// 15-bit PictureID (else 7-bit).
    long: bool,
    tl0: Option<u8>,
}

/// A VP8 payload descriptor (RFC 7741 §4.2): its IDs, if it has a
/// PictureID, and its length (where the VP8 frame starts).
struct Descriptor {
    ids: Option<Ids>,
    len: usize,
}

fn descriptor(payload: &[u8]) -> Option<Descriptor> {
    let b0 = *payload.first()?;
    if b0 & 0x80 == 0 {
        return Some(Descriptor { ids: None, len: 1 });
    }
    let x = *payload.get(1)?;
    let mut at = 2;
    let mut picture = None;
    if x & 0x80 != 0 {
        let m = *payload.get(at)?;
        picture = Some(if m & 0x80 != 0 {
            at += 2;
            (u16::from_be_bytes([m & 0x7f, *payload.get(at - 1)?]), true)
        } else {
            at += 1;
            (u16::from(m), false)
        });
    }
    let tl0 = if x & 0x40 != 0 {
        at += 1;
        Some(*payload.get(at - 1)?)
    } else {
        None
    };
    if x & 0x30 != 0 {
        at += 1; // TID/Y/KEYIDX
    }
    let ids = picture.map(|(picture_id, long)| Ids {
        picture_id,
        long,
        tl0,
    });
    Some(Descriptor { ids, len: at })
}

/// Where a VP8 RTP payload's frame data starts (after the descriptor), and
/// whether it starts a frame (S bit on partition 0), as a depacketizer
/// (the recorder) needs. `None`: the descriptor is truncated.
pub fn frame_part(payload: &[u8]) -> Option<(usize, bool)> {
    let b0 = *payload.first()?;
    let len = descriptor(payload)?.len;
    (len <= payload.len()).then_some((len, b0 & 0x10 != 0 && b0 & 0x07 == 0))
}

/// The frame height of a VP8 keyframe from its RTP payload (the
/// descriptor, then the VP8 frame tag, start code and 14-bit sizes).
pub fn keyframe_height(payload: &[u8]) -> Option<u16> {
    let at = descriptor(payload)?.len;
    let h = payload.get(at..at + 10)?;
    // Frame tag (3 bytes), start code 9d 01 2a, width (2), height (2).
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    Some(u16::from_le_bytes([h[8], h[9]]) & 0x3fff)
}

/// One leg's mapping of input IDs to output IDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vp8Ids {
    /// Added to the input PictureID (modulo its width) and TL0PICIDX.
    offset: (u16, u8),
    /// The newest output PictureID and TL0PICIDX.
    last: Option<(u16, Option<u8>)>,
}

impl Vp8Ids {
    /// The patch for one forwarded VP8 packet, if its IDs must change;
    /// `new_input`: it starts another input (a simulcast switch at its
    /// keyframe, or another stream on the leg), whose first picture then
    /// follows the last one sent.
    pub fn patch(&mut self, payload: &[u8], new_input: bool) -> Option<Vp8Patch> {
        let ids = descriptor(payload)?.ids?;
        let width: u32 = if ids.long { 0x8000 } else { 0x80 };
        let input = u32::from(ids.picture_id) % width;
        if new_input && let Some((pid, tl0)) = self.last {
            let pid_offset = ((u32::from(pid) + 1 + width - input) % width) as u16;
            let tl0_offset = match (tl0, ids.tl0) {
                (Some(out), Some(input)) => out.wrapping_add(1).wrapping_sub(input),
                _ => 0,
            };
            self.offset = (pid_offset, tl0_offset);
        }
        // Below `width` (at most 2^15): fits a u16.
        let picture_id = ((input + u32::from(self.offset.0)) % width) as u16;
        let tl0 = ids.tl0.map(|t| t.wrapping_add(self.offset.1));
        // A late (retransmitted or reordered) packet does not move the
        // sequence back.
        let newer = self.last.is_none_or(|(p, _)| {
            (u32::from(picture_id) + width - u32::from(p) % width) % width < width / 2
        });
        if newer {
            self.last = Some((picture_id, tl0));
        }
        if self.offset == (0, 0) {
            return None;
        }
        let mut b = Vp8Descriptor::parse(payload)
            .ok()?
            .patch()
            .picture_id(picture_id);
        if let Some(t) = tl0 {
            b = b.tl0_pic_idx(t);
        }
        b.build().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload as Chromium sends it: extended descriptor with a
    /// 15-bit PictureID, TL0PICIDX and TID (RFC 7741: L needs T), then `rest`.
    fn packet(picture_id: u16, tl0: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x90, 0xe0];
        p.extend_from_slice(&(picture_id | 0x8000).to_be_bytes());
        p.push(tl0);
        p.push(0x20);
        p.extend_from_slice(rest);
        p
    }

    /// The patch that gives `payload` these output IDs.
    fn expect(payload: &[u8], picture_id: u16, tl0: u8) -> Option<Vp8Patch> {
        Vp8Descriptor::parse(payload)
            .unwrap()
            .patch()
            .picture_id(picture_id)
            .tl0_pic_idx(tl0)
            .build()
            .ok()
    }

    #[test]
    fn reads_the_keyframe_height_and_never_panics() {
        // Extended descriptor with a 15-bit picture id, then a 640x480 keyframe header.
        let mut p = vec![0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        p.extend_from_slice(&640u16.to_le_bytes());
        p.extend_from_slice(&480u16.to_le_bytes());
        assert_eq!(keyframe_height(&p), Some(480));
        for n in 0..p.len() {
            assert_eq!(keyframe_height(&p[..n]), None);
        }
        // An interframe (P bit set) has no size.
        p[4] |= 0x01;
        assert_eq!(keyframe_height(&p), None);
        // Chromium's descriptor (TL0PICIDX and TID too) parses the same.
        let mut q = packet(0x123, 9, &[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
        q.extend_from_slice(&320u16.to_le_bytes());
        q.extend_from_slice(&240u16.to_le_bytes());
        assert_eq!(keyframe_height(&q), Some(240));
    }

    #[test]
    fn one_input_passes_unchanged() {
        let mut m = Vp8Ids::default();
        for pid in 100..110 {
            assert_eq!(m.patch(&packet(pid, 7, b"x"), false), None);
        }
    }

    #[test]
    fn a_switch_continues_the_sequence_and_later_packets_follow() {
        let mut m = Vp8Ids::default();
        for pid in 100..=105 {
            m.patch(&packet(pid, 20, b"a"), false);
        }
        // The new layer's keyframe: PictureID 5000, TL0PICIDX 200.
        let p = packet(5000, 200, b"k");
        assert_eq!(m.patch(&p, true), expect(&p, 106, 21));
        let p = packet(5001, 201, b"d");
        assert_eq!(m.patch(&p, false), expect(&p, 107, 22));
        // A retransmission of an older picture keeps its mapped ID and does
        // not move the sequence back.
        let p = packet(5000, 200, b"k");
        assert_eq!(m.patch(&p, false), expect(&p, 106, 21));
        let p = packet(5002, 202, b"d");
        assert_eq!(m.patch(&p, false), expect(&p, 108, 23));
    }

    #[test]
    fn ids_wrap_at_their_width() {
        let mut m = Vp8Ids::default();
        m.patch(&packet(0x7fff, 255, b"a"), false);
        let p = packet(10, 3, b"k");
        assert_eq!(m.patch(&p, true), expect(&p, 0, 0));
        let p = packet(11, 4, b"d");
        assert_eq!(m.patch(&p, false), expect(&p, 1, 1));
    }

    #[test]
    fn payloads_without_ids_or_malformed_ones_are_left_alone() {
        let mut m = Vp8Ids::default();
        m.patch(&packet(100, 1, b"a"), false);
        for p in [
            &[][..],
            &[0x90][..],
            &[0x10, 0x00][..],
            &[0x90, 0x80][..],
            &[0x90, 0x80, 0x85][..],
        ] {
            assert_eq!(m.patch(p, true), None, "{p:?}");
        }
    }
}
