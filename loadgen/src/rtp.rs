//! RTP as a browser sends it for our frames: VP8 payload descriptors as
//! libwebrtc writes them (RFC 7741: X=1, I=1 with a 15-bit PictureID), one
//! Opus frame per packet (RFC 7587), and reassembly of frames on receipt.
//! The relay floor sends these packets as plain RTP (RFC 3550 headers, no
//! encryption); the WebRTC sessions hand the same payloads to str0m in
//! RTP mode, which adds headers, extensions and SRTP
//! (`session/rtp_io.rs`). str0m's own VP8 packetizer writes a one-byte
//! descriptor without PictureID, which mediasoup cannot find keyframes in.

use crate::stamp::Kind;

/// Payload type used for Opus on the relay path (str0m's default too).
pub const PT_OPUS: u8 = 111;
/// Payload type used for VP8.
pub const PT_VP8: u8 = 96;
/// Largest datagram sent (str0m's default MTU).
pub const MAX_DATAGRAM: usize = 1150;
/// Fixed RTP header without CSRCs or extensions.
pub const HEADER_LEN: usize = 12;
/// VP8 payload descriptor with a 15-bit PictureID.
pub const VP8_DESCRIPTOR_LEN: usize = 4;

/// The fields of an RTP header the relay path uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Stream.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte header (V=2, no padding, extension or CSRCs).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.pt & 0x7f));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Parses a packet: header and payload. `None` for anything that is not
    /// RTP version 2 (including RTCP: payload types 72–76 with the marker).
    pub fn parse(packet: &[u8]) -> Option<(RtpHeader, &[u8])> {
        if packet.len() < HEADER_LEN || packet[0] >> 6 != 2 || (192..=223).contains(&packet[1]) {
            return None;
        }
        let cc = usize::from(packet[0] & 0x0f);
        let mut off = HEADER_LEN + 4 * cc;
        if packet[0] & 0x10 != 0 {
            let ext = packet.get(off + 2..off + 4)?;
            off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let mut end = packet.len();
        if packet[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*packet.last()?))?;
        }
        let payload = packet.get(off..end)?;
        Some((
            RtpHeader {
                marker: packet[1] & 0x80 != 0,
                pt: packet[1] & 0x7f,
                seq: u16::from_be_bytes([packet[2], packet[3]]),
                timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
                ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            },
            payload,
        ))
    }
}

/// A parsed VP8 payload descriptor (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: a non-reference frame.
    pub non_reference: bool,
    /// S: the packet starts a partition.
    pub start: bool,
    /// PID: partition index.
    pub partition: u8,
    /// PictureID (7 or 15 bits) if present.
    pub picture_id: Option<u16>,
    /// TL0PICIDX if present.
    pub tl0_pic_idx: Option<u8>,
    /// Bytes of descriptor before the VP8 payload.
    pub len: usize,
}

/// Why a payload has no valid VP8 descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The payload ends inside the descriptor, or right after it.
    #[error("VP8 payload descriptor truncated")]
    Short,
    /// L set without T (RFC 7741 forbids it).
    #[error("VP8 payload descriptor has TL0PICIDX without TID")]
    Malformed,
}

impl Vp8Descriptor {
    /// Appends the descriptor libwebrtc sends without temporal layers:
    /// X=1, S and PID=0, then I=1 and a 15-bit PictureID (M=1).
    pub fn write(start: bool, picture_id: u16, out: &mut Vec<u8>) {
        out.push(0x80 | if start { 0x10 } else { 0 });
        out.push(0x80);
        out.push(0x80 | ((picture_id >> 8) as u8 & 0x7f));
        out.push(picture_id as u8);
    }

    /// Parses the descriptor at the start of an RTP payload.
    pub fn parse(payload: &[u8]) -> Result<Vp8Descriptor, DescriptorError> {
        let b0 = *payload.first().ok_or(DescriptorError::Short)?;
        let mut d = Vp8Descriptor {
            non_reference: b0 & 0x20 != 0,
            start: b0 & 0x10 != 0,
            partition: b0 & 0x07,
            picture_id: None,
            tl0_pic_idx: None,
            len: 1,
        };
        let next = |d: &mut Vp8Descriptor| -> Result<u8, DescriptorError> {
            let b = *payload.get(d.len).ok_or(DescriptorError::Short)?;
            d.len += 1;
            Ok(b)
        };
        if b0 & 0x80 != 0 {
            let x = next(&mut d)?;
            let (i, l, t, k) = (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0, x & 0x10 != 0);
            if l && !t {
                return Err(DescriptorError::Malformed);
            }
            if i {
                let p = next(&mut d)?;
                d.picture_id = Some(if p & 0x80 != 0 {
                    u16::from(p & 0x7f) << 8 | u16::from(next(&mut d)?)
                } else {
                    u16::from(p)
                });
            }
            if l {
                d.tl0_pic_idx = Some(next(&mut d)?);
            }
            if t || k {
                next(&mut d)?;
            }
        }
        if d.len >= payload.len() {
            return Err(DescriptorError::Short);
        }
        Ok(d)
    }

    /// Whether this packet begins a keyframe: S=1, PID=0 and the VP8 frame
    /// tag's P bit clear.
    pub fn starts_keyframe(&self, payload: &[u8]) -> bool {
        self.start && self.partition == 0 && payload.get(self.len).is_some_and(|b| b & 1 == 0)
    }
}

/// Splits frames of one stream into RTP packets.
#[derive(Debug, Clone)]
pub struct Packetizer {
    kind: Kind,
    ssrc: u32,
    /// Extended sequence number (the header carries its low 16 bits; str0m
    /// takes all of it, the rollover counter included).
    seq: u64,
    picture_id: u16,
}

impl Packetizer {
    /// A stream of `kind` with SSRC `ssrc`.
    pub fn new(kind: Kind, ssrc: u32, first_seq: u16) -> Self {
        Self {
            kind,
            ssrc,
            seq: u64::from(first_seq),
            picture_id: first_seq & 0x7fff,
        }
    }

    /// Appends the packets of one frame to `out`.
    pub fn packetize(&mut self, frame: &[u8], rtp_time: u64, out: &mut Vec<Vec<u8>>) {
        let (ssrc, pt) = match self.kind {
            Kind::Audio => (self.ssrc, PT_OPUS),
            Kind::Video => (self.ssrc, PT_VP8),
        };
        self.payloads(frame, |seq, marker, payload| {
            let mut p = Vec::with_capacity(HEADER_LEN + payload.len());
            let h = RtpHeader {
                marker,
                pt,
                seq: seq as u16,
                timestamp: rtp_time as u32,
                ssrc,
            };
            h.write(&mut p);
            p.extend_from_slice(&payload);
            out.push(p);
        });
    }

    /// The RTP payloads of one frame, each with its sequence number and
    /// marker: one Opus frame, or VP8 split into equal packets that each
    /// carry a descriptor (what an `Rtc` in RTP mode is given to send).
    pub fn payloads(&mut self, frame: &[u8], mut emit: impl FnMut(u64, bool, Vec<u8>)) {
        match self.kind {
            Kind::Audio => {
                emit(self.seq, false, frame.to_vec());
                self.seq += 1;
            }
            Kind::Video => {
                let room = MAX_DATAGRAM - HEADER_LEN - VP8_DESCRIPTOR_LEN;
                // Equal-sized packets, as libwebrtc splits frames.
                let n = frame.len().div_ceil(room).max(1);
                let size = frame.len().div_ceil(n);
                for (i, chunk) in frame.chunks(size.max(1)).enumerate() {
                    let last = (i + 1) * size >= frame.len();
                    let mut p = Vec::with_capacity(VP8_DESCRIPTOR_LEN + chunk.len());
                    Vp8Descriptor::write(i == 0, self.picture_id, &mut p);
                    p.extend_from_slice(chunk);
                    emit(self.seq, last, p);
                    self.seq += 1;
                }
                self.picture_id = (self.picture_id + 1) & 0x7fff;
            }
        }
    }
}

/// Rebuilds the frames of one stream from its packets: a VP8 frame from the
/// packet with S=1 through the one with the marker, with no sequence gap;
/// anything incomplete is dropped (and counted).
#[derive(Debug, Clone, Default)]
pub struct Reassembler {
    frame: Vec<u8>,
    assembling: bool,
    next_seq: u16,
    /// Partial frames dropped for a gap or a bad descriptor.
    pub dropped: u64,
}

impl Reassembler {
    /// Feeds one packet; returns a complete frame when this packet ends one.
    pub fn push(&mut self, h: &RtpHeader, payload: &[u8]) -> Option<(Kind, Vec<u8>)> {
        let kind = match h.pt {
            PT_OPUS => Kind::Audio,
            PT_VP8 => Kind::Video,
            _ => return None,
        };
        self.push_kind(kind, h.seq, h.marker, payload)
            .map(|f| (kind, f))
    }

    /// [`Self::push`] for a packet whose kind is known (from the SDP).
    pub fn push_kind(
        &mut self,
        kind: Kind,
        seq: u16,
        marker: bool,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        if kind == Kind::Audio {
            return Some(payload.to_vec());
        }
        let Ok(d) = Vp8Descriptor::parse(payload) else {
            self.drop_partial();
            return None;
        };
        if d.start && d.partition == 0 {
            if self.assembling {
                self.dropped += 1;
            }
            self.frame.clear();
            self.assembling = true;
        } else if !self.assembling || seq != self.next_seq {
            self.drop_partial();
            return None;
        }
        self.next_seq = seq.wrapping_add(1);
        self.frame.extend_from_slice(&payload[d.len..]);
        if marker {
            self.assembling = false;
            return Some(std::mem::take(&mut self.frame));
        }
        None
    }

    fn drop_partial(&mut self) {
        if self.assembling {
            self.dropped += 1;
        }
        self.assembling = false;
        self.frame.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{Stamp, StreamKey};
    use crate::vp8::{STAMP_OFFSET, Vp8Encoder, Vp8Params, parse_header};

    fn stamp(seq: u32) -> Stamp {
        Stamp {
            key: StreamKey {
                source: 1,
                kind: Kind::Video,
                layer: 0,
            },
            seq,
            sent_us: 5,
        }
    }

    #[test]
    fn descriptor_is_rfc7741_with_15_bit_picture_id() {
        let mut b = Vec::new();
        Vp8Descriptor::write(true, 0x1234, &mut b);
        assert_eq!(b, [0x90, 0x80, 0x92, 0x34]);
        b.push(0x10); // VP8 payload: a keyframe tag (P = 0)
        let d = Vp8Descriptor::parse(&b).unwrap();
        assert_eq!(
            d,
            Vp8Descriptor {
                non_reference: false,
                start: true,
                partition: 0,
                picture_id: Some(0x1234),
                tl0_pic_idx: None,
                len: 4,
            }
        );
        assert!(d.starts_keyframe(&b));
        b[4] = 0x11; // P = 1: interframe
        assert!(!Vp8Descriptor::parse(&b).unwrap().starts_keyframe(&b));
    }

    #[test]
    fn descriptor_parses_other_shapes_and_refuses_bad_ones() {
        // Minimal descriptor (what str0m's packetizer writes): S=1, no X.
        let d = Vp8Descriptor::parse(&[0x10, 0xaa]).unwrap();
        assert_eq!((d.start, d.picture_id, d.len), (true, None, 1));
        // 7-bit PictureID, TL0PICIDX and TID/KEYIDX.
        let d = Vp8Descriptor::parse(&[0x80, 0xe0, 0x05, 0x09, 0x40, 0xaa]).unwrap();
        assert_eq!((d.picture_id, d.tl0_pic_idx, d.len), (Some(5), Some(9), 5));
        assert_eq!(Vp8Descriptor::parse(&[]), Err(DescriptorError::Short));
        assert_eq!(
            Vp8Descriptor::parse(&[0x90, 0x80, 0x92]),
            Err(DescriptorError::Short)
        );
        assert_eq!(Vp8Descriptor::parse(&[0x10]), Err(DescriptorError::Short));
        assert_eq!(
            Vp8Descriptor::parse(&[0x80, 0x40, 0, 0]),
            Err(DescriptorError::Malformed)
        );
    }

    #[test]
    fn header_round_trips_and_rtcp_is_not_rtp() {
        let h = RtpHeader {
            marker: true,
            pt: 96,
            seq: 65535,
            timestamp: 0xdead_beef,
            ssrc: 42,
        };
        let mut b = Vec::new();
        h.write(&mut b);
        b.extend_from_slice(b"xyz");
        let (p, payload) = RtpHeader::parse(&b).unwrap();
        assert_eq!((p, payload), (h, &b"xyz"[..]));
        // A receiver report: V=2, PT=201.
        assert!(RtpHeader::parse(&[0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2]).is_none());
        assert!(RtpHeader::parse(&[0x80, 96, 0]).is_none());
    }

    #[test]
    fn frames_split_into_mtu_packets_and_come_back_whole() {
        let mut enc = Vp8Encoder::new(Vp8Params::new(1280, 720, 2500), 11);
        let mut pk = Packetizer::new(Kind::Video, 99, 65530);
        let mut re = Reassembler::default();
        for seq in 0..40 {
            let (frame, key) = enc.encode(&stamp(seq));
            let mut packets = Vec::new();
            pk.packetize(&frame, u64::from(seq) * 3000, &mut packets);
            let sizes: Vec<usize> = packets.iter().map(Vec::len).collect();
            assert!(sizes.iter().all(|s| *s <= MAX_DATAGRAM), "{sizes:?}");
            // Equal split: sizes differ by at most one byte, except the last.
            let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
            assert!(last <= first);
            let mut got = None;
            for (i, p) in packets.iter().enumerate() {
                let (h, payload) = RtpHeader::parse(p).unwrap();
                assert_eq!(h.marker, i + 1 == packets.len());
                let d = Vp8Descriptor::parse(payload).unwrap();
                assert_eq!(d.start, i == 0);
                assert_eq!(d.picture_id, Some(((65530 + seq) & 0x7fff) as u16));
                assert_eq!(d.starts_keyframe(payload), i == 0 && key);
                got = re.push(&h, payload);
            }
            let (kind, f) = got.expect("frame completes on the marker");
            assert_eq!(kind, Kind::Video);
            assert_eq!(f, frame);
            assert_eq!(parse_header(&f).unwrap().keyframe, key);
            assert_eq!(Stamp::read(&f, STAMP_OFFSET), Ok(stamp(seq)));
        }
        assert_eq!(re.dropped, 0);
    }

    #[test]
    fn a_lost_packet_drops_only_its_frame() {
        let mut enc = Vp8Encoder::new(Vp8Params::new(1280, 720, 2500), 12);
        let mut pk = Packetizer::new(Kind::Video, 1, 0);
        let mut re = Reassembler::default();
        let mut frames = 0;
        for seq in 0..10 {
            let (frame, _) = enc.encode(&stamp(seq));
            let mut packets = Vec::new();
            pk.packetize(&frame, 0, &mut packets);
            for (i, p) in packets.iter().enumerate() {
                if seq == 4 && i == 1 && packets.len() > 2 {
                    continue; // lost
                }
                let (h, payload) = RtpHeader::parse(p).unwrap();
                frames += usize::from(re.push(&h, payload).is_some());
            }
        }
        assert_eq!(frames, 9);
        assert_eq!(re.dropped, 1);
    }

    #[test]
    fn opus_is_one_packet_per_frame() {
        let mut pk = Packetizer::new(Kind::Audio, 5, 10);
        let mut out = Vec::new();
        pk.packetize(&[0x78; 80], 960, &mut out);
        assert_eq!(out.len(), 1);
        let (h, payload) = RtpHeader::parse(&out[0]).unwrap();
        assert_eq!(
            (h.pt, h.seq, h.timestamp, payload.len()),
            (PT_OPUS, 10, 960, 80)
        );
        let mut re = Reassembler::default();
        assert_eq!(re.push(&h, payload).map(|f| f.0), Some(Kind::Audio));
    }

    #[test]
    fn payloads_are_the_packets_without_their_headers() {
        let mut enc = Vp8Encoder::new(Vp8Params::new(640, 360, 800), 13);
        let (frame, _) = enc.encode(&stamp(1));
        let mut packets = Vec::new();
        Packetizer::new(Kind::Video, 7, 65535).packetize(&frame, 90, &mut packets);
        let mut payloads = Vec::new();
        Packetizer::new(Kind::Video, 7, 65535).payloads(&frame, |seq, marker, p| {
            payloads.push((seq, marker, p));
        });
        assert_eq!(packets.len(), payloads.len());
        let mut re = Reassembler::default();
        let mut whole = None;
        for (packet, (seq, marker, payload)) in packets.iter().zip(&payloads) {
            let (h, body) = RtpHeader::parse(packet).unwrap();
            assert_eq!(
                (h.seq, h.marker, body),
                (*seq as u16, *marker, payload.as_slice())
            );
            // What a session does with a packet str0m hands it.
            whole = re
                .push_kind(Kind::Video, *seq as u16, *marker, payload)
                .or(whole);
        }
        assert_eq!(whole.as_deref(), Some(frame.as_slice()));
        // The header's sequence numbers wrap, the extended ones go on; the
        // descriptor carries a PictureID.
        assert_eq!((payloads[0].0, payloads[1].0), (65535, 65536));
        assert_eq!(
            (&packets[0][2..4], &packets[1][2..4]),
            (&[0xff, 0xff][..], &[0, 0][..])
        );
        assert!(
            Vp8Descriptor::parse(&payloads[0].2)
                .unwrap()
                .picture_id
                .is_some()
        );
    }
}
