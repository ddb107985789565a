//! Video frames from RTP packets: a frame is the packets of one RTP
//! timestamp, from the one that starts it to the one with the marker bit,
//! in sequence. VP8 (RFC 7741) marks the start (S bit, PID 0); H.264
//! (RFC 6184, [`crate::h264`]) starts a frame with the first packet of a
//! new timestamp that is not the middle of a fragmented NAL unit. A gap in the sequence breaks
//! the frame being assembled and every frame after it until a keyframe, and
//! so does a new SSRC (another simulcast layer, a rejoined publisher: its
//! delta frames reference pictures this file never had): a recording must
//! never hold a delta frame whose reference is missing (the file would
//! decode with errors), so the assembler asks for a keyframe and waits.
//! Opus needs none of this: one packet is one frame.

use geomesh_edge::rtp::OctoRtp;

/// One complete frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its RTP timestamp.
    pub ts: u32,
    /// SSRC it came on.
    pub ssrc: u32,
    /// A keyframe (always true for audio).
    pub keyframe: bool,
    /// The codec's frame.
    pub data: Vec<u8>,
}

/// What one packet did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// A frame it completed.
    pub frame: Option<Frame>,
    /// A keyframe is needed: a sequence gap broke a frame, or a delta frame
    /// came with no reference in the file (dropped).
    pub needs_keyframe: bool,
}

/// A video codec the recorder reassembles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodec {
    /// VP8: the frame as the encoder wrote it.
    #[default]
    Vp8,
    /// H.264: the access unit as an Annex B byte stream.
    H264,
}

/// Reassembles video frames from one source's packets.
#[derive(Debug, Default)]
pub struct VideoAssembler {
    codec: VideoCodec,
    data: Vec<u8>,
    /// The frame being assembled: (ssrc, ts), none when broken or idle.
    current: Option<(u32, u32)>,
    next_seq: Option<(u32, u16)>,
    /// Delta frames are dropped until a keyframe.
    synced: bool,
}

impl VideoAssembler {
    /// An assembler of `codec` frames waiting for its first keyframe.
    pub fn new(codec: VideoCodec) -> Self {
        Self {
            codec,
            ..Self::default()
        }
    }

    /// Whether it is waiting for a keyframe.
    pub fn waiting_for_keyframe(&self) -> bool {
        !self.synced
    }

    /// Takes one packet (in arrival order).
    pub fn push(&mut self, p: &OctoRtp) -> Pushed {
        let mut out = Pushed::default();
        match self.next_seq {
            Some((ssrc, _)) if ssrc != p.ssrc => {
                // Another encoding: it must start from a keyframe.
                self.current = None;
                self.synced = false;
            }
            Some((_, seq)) if seq != p.seq => {
                out.needs_keyframe = self.synced || self.current.is_some();
                self.current = None;
                self.synced = false;
            }
            _ => {}
        }
        self.next_seq = Some((p.ssrc, p.seq.wrapping_add(1)));
        let ongoing = self.current == Some((p.ssrc, p.ts));
        let appended = match self.codec {
            VideoCodec::Vp8 => match geomesh_edge::vp8::frame_part(&p.payload) {
                Some((at, start)) if start || ongoing => {
                    if start {
                        self.data.clear();
                    }
                    self.data.extend_from_slice(&p.payload[at..]);
                    Some(start)
                }
                _ => None,
            },
            VideoCodec::H264 => {
                let start = !ongoing && !crate::h264::continues_nal(&p.payload);
                if start {
                    self.data.clear();
                }
                (start || ongoing)
                    .then(|| crate::h264::depacketize(&p.payload, &mut self.data).then_some(start))
                    .flatten()
            }
        };
        match appended {
            Some(true) => self.current = Some((p.ssrc, p.ts)),
            Some(false) => {}
            None => self.current = None,
        }
        if p.marker && self.current == Some((p.ssrc, p.ts)) {
            self.current = None;
            let keyframe = match self.codec {
                VideoCodec::Vp8 => self.data.first().is_some_and(|b| b & 0x01 == 0),
                VideoCodec::H264 => crate::h264::is_keyframe(&self.data),
            };
            if keyframe {
                self.synced = true;
            }
            if !self.synced {
                out.needs_keyframe = true;
            } else {
                out.frame = Some(Frame {
                    ts: p.ts,
                    ssrc: p.ssrc,
                    keyframe,
                    data: std::mem::take(&mut self.data),
                });
            }
        }
        out
    }
}

/// The width and height of a VP8 keyframe (RFC 6386 §9.1: the frame tag,
/// start code 9d 01 2a, then 14-bit width and height).
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let h = frame.get(..10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let hh = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    (w > 0 && hh > 0).then_some((w, hh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A VP8 payload: descriptor (X, PictureID) then `data`.
    fn packet(seq: u16, ts: u32, start: bool, marker: bool, data: &[u8]) -> OctoRtp {
        let mut payload = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x05];
        payload.extend_from_slice(data);
        OctoRtp {
            pt: 96,
            marker,
            seq,
            ts,
            ssrc: 7,
            audio_level: None,
            payload: Arc::from(payload),
        }
    }

    const KEY: &[u8] = &[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
    const DELTA: &[u8] = &[0x31, 0x00, 0x00, 0xaa];

    #[test]
    fn frames_span_packets_and_start_on_a_keyframe() {
        let mut a = VideoAssembler::new(VideoCodec::Vp8);
        // A delta before any keyframe is dropped, and a keyframe wanted.
        let p = a.push(&packet(1, 0, true, true, DELTA));
        assert!(p.frame.is_none() && p.needs_keyframe);
        assert!(a.push(&packet(2, 3000, true, false, KEY)).frame.is_none());
        let f = a
            .push(&packet(3, 3000, false, true, &[0xee]))
            .frame
            .unwrap();
        assert!(f.keyframe);
        assert_eq!(f.data, [KEY, &[0xee]].concat());
        assert_eq!(vp8_keyframe_size(&f.data), Some((320, 240)));
        let f = a.push(&packet(4, 6000, true, true, DELTA)).frame.unwrap();
        assert!(!f.keyframe);
    }

    #[test]
    fn a_gap_drops_frames_until_a_keyframe() {
        let mut a = VideoAssembler::new(VideoCodec::Vp8);
        a.push(&packet(1, 0, true, true, KEY));
        // Packet 2 (the start of the next frame) is lost.
        let p = a.push(&packet(3, 3000, false, true, &[1]));
        assert!(p.needs_keyframe && p.frame.is_none());
        assert!(a.waiting_for_keyframe());
        assert_eq!(a.push(&packet(4, 6000, true, true, DELTA)).frame, None);
        let f = a.push(&packet(5, 9000, true, true, KEY)).frame.unwrap();
        assert!(f.keyframe);
        assert!(!a.waiting_for_keyframe());
    }

    #[test]
    fn another_ssrc_starts_over_from_a_keyframe() {
        let mut a = VideoAssembler::new(VideoCodec::Vp8);
        a.push(&packet(1, 0, true, true, KEY));
        assert!(a.push(&packet(2, 3000, true, true, DELTA)).frame.is_some());
        // A layer switch whose first frame is a delta: dropped, keyframe wanted.
        let mut d = packet(900, 50, true, true, DELTA);
        d.ssrc = 8;
        let p = a.push(&d);
        assert!(p.frame.is_none() && p.needs_keyframe);
        let mut k = packet(901, 3050, true, true, KEY);
        k.ssrc = 8;
        assert!(a.push(&k).frame.unwrap().keyframe);
    }

    #[test]
    fn malformed_payloads_break_the_frame_without_panicking() {
        let mut a = VideoAssembler::new(VideoCodec::Vp8);
        a.push(&packet(1, 0, true, false, KEY));
        let mut bad = packet(2, 0, false, true, &[]);
        bad.payload = Arc::from(vec![0x80u8]);
        assert_eq!(a.push(&bad).frame, None);
        assert_eq!(vp8_keyframe_size(&[0x10, 0, 0]), None);
        assert_eq!(vp8_keyframe_size(DELTA), None);
    }
}
