//! The RTP packet an edge puts on an octo link, and reads back.
//!
//! str0m's RTP mode hands the edge parsed packets (header fields and the
//! payload), and the octo wire carries "an RTP packet". Between two edges
//! only what the receiving edge forwards matters, so the packet is a plain
//! RFC 3550 header (no CSRCs) with at most one RFC 8285 one-byte extension,
//! the RFC 6464 audio level (id 1), then the payload. Parsing never panics:
//! anything malformed is a typed [`RtpError`].

use std::sync::Arc;

/// Fixed RTP header length.
const HEADER: usize = 12;
/// Extension id of the audio level on octo links.
const AUDIO_LEVEL_ID: u8 = 1;

/// The fields an octo packet carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OctoRtp {
    /// Payload type on the publisher's edge (the source's announced codec).
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// 16-bit sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// SSRC on the publisher's edge (identifies the simulcast layer).
    pub ssrc: u32,
    /// Audio level (−dBov) and voice activity.
    pub audio_level: Option<(i8, bool)>,
    /// The payload.
    pub payload: Arc<[u8]>,
}

/// Why an octo RTP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than its header says.
    #[error("truncated RTP packet")]
    Truncated,
    /// Not RTP version 2.
    #[error("not RTP version 2")]
    Version,
    /// Padding bit or CSRCs, which octo packets never have.
    #[error("unexpected padding or CSRCs")]
    Unsupported,
}

/// Writes `p` as an RTP packet into `out` (cleared first).
pub fn write(p: &OctoRtp, out: &mut Vec<u8>) {
    out.clear();
    let ext = p.audio_level.is_some();
    out.push(0x80 | if ext { 0x10 } else { 0 });
    out.push((u8::from(p.marker) << 7) | (p.pt & 0x7f));
    out.extend_from_slice(&p.seq.to_be_bytes());
    out.extend_from_slice(&p.ts.to_be_bytes());
    out.extend_from_slice(&p.ssrc.to_be_bytes());
    if let Some((level, voice)) = p.audio_level {
        // One-byte header extensions (0xBEDE), one 32-bit word.
        out.extend_from_slice(&[0xbe, 0xde, 0, 1]);
        out.push(AUDIO_LEVEL_ID << 4);
        out.push((u8::from(voice) << 7) | (level.unsigned_abs() & 0x7f));
        out.extend_from_slice(&[0, 0]);
    }
    out.extend_from_slice(&p.payload);
}

/// Reads an octo RTP packet.
pub fn parse(b: &[u8]) -> Result<OctoRtp, RtpError> {
    if b.len() < HEADER {
        return Err(RtpError::Truncated);
    }
    if b[0] >> 6 != 2 {
        return Err(RtpError::Version);
    }
    if b[0] & 0x20 != 0 || b[0] & 0x0f != 0 {
        return Err(RtpError::Unsupported);
    }
    let mut at = HEADER;
    let mut audio_level = None;
    if b[0] & 0x10 != 0 {
        let words = b.get(at + 2..at + 4).ok_or(RtpError::Truncated)?;
        let len = usize::from(u16::from_be_bytes([words[0], words[1]])) * 4;
        let profile = [b[at], b[at + 1]];
        let body = b.get(at + 4..at + 4 + len).ok_or(RtpError::Truncated)?;
        if profile == [0xbe, 0xde] {
            audio_level = find_audio_level(body);
        }
        at += 4 + len;
    }
    Ok(OctoRtp {
        marker: b[1] & 0x80 != 0,
        pt: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        audio_level,
        payload: Arc::from(&b[at..]),
    })
}

fn find_audio_level(mut body: &[u8]) -> Option<(i8, bool)> {
    // Bounded by the body's length: each step consumes at least one byte.
    while let Some((&first, rest)) = body.split_first() {
        if first == 0 {
            body = rest; // padding
            continue;
        }
        let id = first >> 4;
        let len = usize::from(first & 0x0f) + 1;
        let value = rest.get(..len)?;
        if id == AUDIO_LEVEL_ID {
            let v = value[0];
            // 0..=127 fits an i8 once negated.
            return Some((-((v & 0x7f) as i8), v & 0x80 != 0));
        }
        body = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(level: Option<(i8, bool)>) -> OctoRtp {
        OctoRtp {
            pt: 111,
            marker: true,
            seq: 65535,
            ts: 0xdead_beef,
            ssrc: 0x1234_5678,
            audio_level: level,
            payload: Arc::from(&b"hello"[..]),
        }
    }

    #[test]
    fn round_trips_with_and_without_level() {
        let mut buf = Vec::new();
        for level in [
            None,
            Some((-30, true)),
            Some((-127, false)),
            Some((0, false)),
        ] {
            let p = packet(level);
            write(&p, &mut buf);
            assert_eq!(parse(&buf).unwrap(), p);
        }
    }

    #[test]
    fn every_prefix_and_garbage_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        write(&packet(Some((-40, true))), &mut buf);
        for n in 0..buf.len() {
            let _ = parse(&buf[..n]);
        }
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&bytes);
        }
        assert_eq!(parse(&[0u8; 12]), Err(RtpError::Version));
        assert_eq!(parse(&[0x80; 4]), Err(RtpError::Truncated));
    }
}
