//! Real media for the recorder's tests, encoded by ffmpeg (Debian `ffmpeg`,
//! which `.ci/run` installs; missing, the tests fail rather than skip).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use geomesh_edge::rtp::OctoRtp;

/// Frames per second of the test video.
pub const FPS: u32 = 30;

/// Runs ffmpeg; panics with its output when it fails (ffmpeg missing is a
/// failure, not a skip: `.ci/run` installs it).
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg (Debian package ffmpeg) must be installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// VP8 frames of a `secs`-second test pattern, from an IVF file.
pub fn vp8_frames(dir: &Path, secs: u32) -> Vec<Vec<u8>> {
    let ivf = dir.join("in.ivf");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=320x240:rate={FPS}"),
        "-t",
        &secs.to_string(),
        "-c:v",
        "libvpx",
        "-b:v",
        "400k",
        "-g",
        &FPS.to_string(),
        "-keyint_min",
        &FPS.to_string(),
        "-auto-alt-ref",
        "0",
        ivf.to_str().unwrap(),
    ]);
    let b = std::fs::read(&ivf).unwrap();
    assert_eq!(&b[..4], b"DKIF");
    let mut at = u16::from_le_bytes([b[6], b[7]]) as usize;
    let mut frames = Vec::new();
    while at + 12 <= b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        frames.push(b[at + 12..at + 12 + len].to_vec());
        at += 12 + len;
    }
    frames
}

/// Opus packets (20 ms) of a `secs`-second tone, from an Ogg file (the
/// identification and comment headers skipped).
pub fn opus_frames(dir: &Path, secs: u32) -> Vec<Vec<u8>> {
    let ogg = dir.join("in.ogg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs.to_string(),
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-frame_duration",
        "20",
        ogg.to_str().unwrap(),
    ]);
    let b = std::fs::read(&ogg).unwrap();
    let (mut at, mut packets, mut cur) = (0, Vec::new(), Vec::new());
    while at + 27 <= b.len() {
        assert_eq!(&b[at..at + 4], b"OggS");
        let n = b[at + 26] as usize;
        let table = &b[at + 27..at + 27 + n];
        let mut body = at + 27 + n;
        for &len in table {
            cur.extend_from_slice(&b[body..body + len as usize]);
            body += len as usize;
            if len < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        at = body;
    }
    packets.split_off(2)
}

/// A browser's VP8 packetization of one frame (15-bit PictureID).
pub fn vp8_packets(frame: &[u8], seq: &mut u16, ts: u32, ssrc: u32, pic: u16) -> Vec<OctoRtp> {
    let chunks: Vec<&[u8]> = frame.chunks(1000).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut payload = vec![if i == 0 { 0x90 } else { 0x80 }, 0x80];
            payload.extend_from_slice(&(0x8000 | (pic & 0x7fff)).to_be_bytes());
            payload.extend_from_slice(c);
            *seq = seq.wrapping_add(1);
            OctoRtp {
                pt: 96,
                marker: i + 1 == chunks.len(),
                seq: *seq,
                ts,
                ssrc,
                audio_level: None,
                payload: Arc::from(payload),
            }
        })
        .collect()
}
