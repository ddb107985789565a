//! The `recorder_media` fuzz target's body, shared by cargo-fuzz
//! (`fuzz/fuzz_targets/recorder_media.rs`) and the stable test that runs
//! it in every `cargo test` (`tests/fuzz.rs`).
//!
//! What a publisher sends reaches the recorder unchanged (edges forward
//! payloads; they do not decode them): any sequence of RTP packets, of
//! either kind, goes through the source recorder into a real WebM file (a
//! Matroska one for H.264).
//! The input is a list of records `flags (1) | length (1) | bytes`: bit 0
//! picks video or audio for the whole input (first record), and bit 4 of
//! the first record H.264 rather than VP8 for video; bits 1–2 step
//! the sequence number (+1, +2, −1, +0), bit 3 the marker, bit 4 a new
//! SSRC, bits 5–7 the timestamp step; the bytes are the payload. A file
//! the recorder writes must close cleanly. Panics only on a bug.

use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_edge::rtp::OctoRtp;

use crate::source::{SourceKind, SourceRecorder};

/// Runs one input.
pub fn recorder_media(data: &[u8]) {
    let Some(&first) = data.first() else {
        return;
    };
    let kind = match (first & 1, first & 0x10) {
        (1, _) => SourceKind::Audio,
        (_, 0) => SourceKind::Video,
        _ => SourceKind::H264,
    };
    let dir = scratch();
    let path = dir.join(format!("{}.{}", std::process::id(), kind.extension()));
    let _ = std::fs::remove_file(&path);
    let t0 = Instant::now();
    let mut rec = SourceRecorder::new(kind, &path, t0);
    let (mut seq, mut ts, mut ssrc) = (1000u16, 90_000u32, 7u32);
    let mut rest = data;
    let mut n = 0u64;
    while let [flags, len, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(take);
        rest = next;
        seq = match (flags >> 1) & 3 {
            0 => seq.wrapping_add(1),
            1 => seq.wrapping_add(2),
            2 => seq.wrapping_sub(1),
            _ => seq,
        };
        if flags & 0x10 != 0 {
            ssrc = ssrc.wrapping_add(1);
        }
        ts = ts.wrapping_add(u32::from(flags >> 5) * 1500);
        n += 1;
        let p = OctoRtp {
            pt: 96,
            marker: flags & 8 != 0,
            seq,
            ts,
            ssrc,
            audio_level: None,
            payload: Arc::from(payload),
        };
        rec.handle_rtp(t0 + Duration::from_millis(20 * n), &p);
        while rec.poll_event().is_some() {}
    }
    let s = rec.finish();
    assert!(
        s.error.is_none(),
        "a file the recorder wrote did not close: {:?}",
        s.error
    );
    let _ = std::fs::remove_file(&path);
}

/// A RAM disk where there is one: every input writes a file.
fn scratch() -> std::path::PathBuf {
    ["/dev/shm", "/tmp"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_dir())
        .map_or_else(std::env::temp_dir, |p| p.to_path_buf())
}

/// Seeds: a VP8 keyframe then a delta frame (real descriptors and frame
/// headers, 320×240), Opus packets, and H.264 (a real SPS and PPS).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    // VP8 payload descriptor (X, I with a 15-bit PictureID, S) and a
    // keyframe header: frame tag, start code, 320×240.
    let mut key = vec![0x90, 0x80, 0x80, 0x01];
    key.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    key.extend_from_slice(&[0x55; 40]);
    let mut delta = vec![0x90, 0x80, 0x80, 0x02, 0x31, 0x01, 0x00];
    delta.extend_from_slice(&[0xaa; 30]);
    let record = |flags: u8, payload: &[u8]| {
        let mut r = vec![flags, payload.len() as u8];
        r.extend_from_slice(payload);
        r
    };
    let mut video = record(0x08 | (3 << 5), &key);
    video.extend(record(0x08 | (3 << 5), &delta));
    video.extend(record(0x08 | (3 << 5), &delta));
    let mut audio = Vec::new();
    for _ in 0..5 {
        audio.extend(record(0x01 | (1 << 5), &[0x78, 0x01, 0x02, 0x03, 0x04]));
    }
    // A lost packet (sequence +2), then a keyframe on a new SSRC (a layer
    // switch or a rejoin).
    let mut lossy = video.clone();
    lossy.extend(record(0x08 | 0x02 | (3 << 5), &delta));
    lossy.extend(record(0x08 | 0x10 | (3 << 5), &key));
    // A keyframe in two packets (S on the first only, marker on the last).
    let mut split = record(3 << 5, &key[..24]);
    let mut cont = vec![0x80, 0x80, 0x80, 0x01];
    cont.extend_from_slice(&key[24..]);
    split.extend(record(0x08, &cont));
    // H.264: SPS and PPS in a STAP-A, an IDR slice in two FU-A fragments,
    // then a one-packet P slice.
    let mut stap = vec![0x78];
    for nal in [crate::h264::SPS_320X240, crate::h264::PPS_320X240] {
        stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        stap.extend_from_slice(nal);
    }
    let mut h264 = record(0x10 | (3 << 5), &stap);
    h264.extend(record(0, &[0x7c, 0x85, 0x88, 0x84, 0x09, 0xf2]));
    h264.extend(record(0x08, &[0x7c, 0x45, 0x62, 0x80, 0x00, 0xa1]));
    h264.extend(record(0x08 | (3 << 5), &[0x41, 0x9a, 0x21, 0x6c]));
    // Reordered audio: one packet late.
    let mut reordered = audio.clone();
    reordered.extend(record(0x01 | 0x04, &[0x78, 0x09]));
    vec![
        ("vp8-key-delta".into(), video),
        ("opus".into(), audio),
        ("vp8-loss-new-ssrc".into(), lossy),
        ("vp8-key-in-two".into(), split),
        ("opus-reordered".into(), reordered),
        ("h264-stap-fu".into(), h264),
    ]
}
