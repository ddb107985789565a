//! H.264 from RTP (RFC 6184) to what a Matroska `V_MPEG4/ISO/AVC` track
//! holds: access units as NAL units with 4-byte big-endian lengths (ISO/IEC
//! 14496-15), and the track's `AVCDecoderConfigurationRecord` built from
//! the first keyframe's SPS and PPS.
//!
//! Packetization modes 0 and 1 (what browsers send): single NAL unit
//! packets, STAP-A and FU-A. Interleaved mode (STAP-B, MTAP, FU-B) is
//! refused: no WebRTC endpoint negotiates it. SPS and PPS stay in the
//! frames as they came (libwebrtc sends them before every IDR), so a
//! simulcast layer switch, whose SPS differs from the one in the track
//! header, still decodes.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;

/// Whether `payload` is an FU-A fragment that is not the first of its NAL
/// unit (it cannot start a frame).
pub fn continues_nal(payload: &[u8]) -> bool {
    matches!(payload, [i, fu, ..] if i & 0x1f == FU_A && fu & 0x80 == 0)
}

/// Appends one packet's NAL units (or NAL fragment) to the access unit
/// `au`, length-prefixed. False when the payload is malformed or of a mode
/// that is not supported; `au` is then unusable.
pub fn depacketize(payload: &[u8], au: &mut Vec<u8>) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        1..=23 => {
            push_nal(au, payload);
            true
        }
        STAP_A => {
            let mut rest = &payload[1..];
            if rest.is_empty() {
                return false;
            }
            while !rest.is_empty() {
                let [a, b, tail @ ..] = rest else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([*a, *b]));
                if len == 0 || len > tail.len() {
                    return false;
                }
                push_nal(au, &tail[..len]);
                rest = &tail[len..];
            }
            true
        }
        FU_A => {
            let [indicator, fu, data @ ..] = payload else {
                return false;
            };
            if fu & 0x80 != 0 {
                // The NAL header: F and NRI from the indicator, the type
                // from the FU header.
                au.extend_from_slice(&1u32.to_be_bytes());
                au.push((indicator & 0xe0) | (fu & 0x1f));
            } else if last_nal(au).is_none() {
                return false;
            }
            let Some(at) = last_nal(au) else {
                return false;
            };
            au.extend_from_slice(data);
            let Ok(len) = u32::try_from(au.len() - at - 4) else {
                return false;
            };
            au[at..at + 4].copy_from_slice(&len.to_be_bytes());
            true
        }
        _ => false,
    }
}

fn push_nal(au: &mut Vec<u8>, nal: &[u8]) {
    let len = u32::try_from(nal.len()).expect("an RTP payload is shorter than 4 GiB");
    au.extend_from_slice(&len.to_be_bytes());
    au.extend_from_slice(nal);
}

/// Where the last NAL unit of `au` starts (its length field).
fn last_nal(au: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut last = None;
    while let Some(len) = au.get(at..at + 4) {
        let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
        last = Some(at);
        at = at.checked_add(4 + len)?;
    }
    last
}

/// The NAL units of a length-prefixed access unit.
pub fn nal_units(au: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = au;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let nal = tail.get(..len)?;
        rest = &tail[len..];
        Some(nal)
    })
    .filter(|nal| !nal.is_empty())
}

/// Whether the access unit holds an IDR picture.
pub fn is_keyframe(au: &[u8]) -> bool {
    nal_units(au).any(|n| n[0] & 0x1f == IDR)
}

/// What a track needs from its first keyframe: the picture size and the
/// `AVCDecoderConfigurationRecord` (its `CodecPrivate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// Width, pixels (after cropping).
    pub width: u16,
    /// Height, pixels.
    pub height: u16,
    /// The configuration record.
    pub record: Vec<u8>,
}

/// The track configuration of a keyframe access unit, if it carries an
/// SPS that parses and a PPS.
pub fn track_config(au: &[u8]) -> Option<TrackConfig> {
    let sps = nal_units(au).find(|n| n[0] & 0x1f == SPS)?;
    let pps = nal_units(au).find(|n| n[0] & 0x1f == PPS)?;
    let rbsp = decode_nal(sps).ok()?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let (w, h) = parsed.pixel_dimensions().ok()?;
    let (width, height) = (u16::try_from(w).ok()?, u16::try_from(h).ok()?);
    // The record from the parameter sets as an Annex B stream.
    let mut annexb = Vec::with_capacity(sps.len() + pps.len() + 8);
    for nal in [sps, pps] {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(nal);
    }
    let record = oxideav_mkv::avc::annexb_to_avcc(&annexb).config_record;
    (width > 0 && height > 0 && !record.is_empty()).then_some(TrackConfig {
        width,
        height,
        record,
    })
}

/// The SPS and PPS libx264 writes for a 320×240 constrained baseline
/// stream (`ffmpeg -f lavfi -i testsrc=size=320x240 -pix_fmt yuv420p -c:v
/// libx264 -profile:v baseline -f h264`): fuzz seeds and tests.
pub(crate) const SPS_320X240: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
];
/// See [`SPS_320X240`].
pub(crate) const PPS_320X240: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stap_a_then_fu_a_make_one_keyframe_with_its_config() {
        let mut au = Vec::new();
        let mut stap = vec![STAP_A | 0x60];
        for nal in [SPS_320X240, PPS_320X240] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert!(depacketize(&stap, &mut au));
        // An IDR slice (0x65) in three fragments.
        let body = [0x88u8, 0x84, 0x00, 0x33, 0xff, 0x01, 0x02];
        assert!(!continues_nal(&[0x7c, 0x85, body[0]]));
        assert!(depacketize(&[0x7c, 0x85, body[0], body[1]], &mut au));
        assert!(continues_nal(&[0x7c, 0x05, body[2]]));
        assert!(depacketize(
            &[0x7c, 0x05, body[2], body[3], body[4]],
            &mut au
        ));
        assert!(depacketize(&[0x7c, 0x45, body[5], body[6]], &mut au));
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(nals.len(), 3);
        assert_eq!(nals[2], [&[0x65u8][..], &body].concat());
        assert!(is_keyframe(&au));
        let c = track_config(&au).expect("a config");
        assert_eq!((c.width, c.height), (320, 240));
        assert_eq!(&c.record[..4], &[1, 0x42, 0xc0, 0x0d]);
    }

    #[test]
    fn malformed_and_interleaved_payloads_are_refused() {
        let mut au = Vec::new();
        assert!(!depacketize(&[], &mut au));
        assert!(
            !depacketize(&[STAP_A, 0, 9, 1], &mut au),
            "length past the end"
        );
        assert!(!depacketize(&[STAP_A], &mut au));
        assert!(
            !depacketize(&[FU_A, 0x05, 1], &mut au),
            "a middle with no start"
        );
        assert!(!depacketize(&[25, 0, 0], &mut au), "STAP-B");
        assert!(!depacketize(&[29, 0x85, 0], &mut au), "FU-B");
        assert!(depacketize(&[0x41, 0x9a], &mut au));
        assert!(!is_keyframe(&au));
        assert_eq!(track_config(&au), None);
    }
}
