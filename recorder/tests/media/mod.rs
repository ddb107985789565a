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

/// ffprobe's view of a file: codec, size, duration, packet times.
pub struct Probe {
    pub codec: String,
    pub width: Option<u64>,
    pub duration: f64,
    pub pts: Vec<f64>,
}

pub fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .args(["-show_packets"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian package ffmpeg) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    Probe {
        codec: s["codec_name"].as_str().unwrap().to_string(),
        width: s["width"].as_u64(),
        duration: v["format"]["duration"].as_str().unwrap().parse().unwrap(),
        pts: v["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pts_time"].as_str().unwrap().parse().unwrap())
            .collect(),
    }
}

/// `ffmpeg -v error -i FILE -f null -`: what it printed (nothing when the
/// file decodes cleanly).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
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

/// H.264 access units (each a list of NAL units) of a `secs`-second test
/// pattern: libx264, constrained baseline as browsers send it, a keyframe
/// a second, access unit delimiters to split on (dropped here).
pub fn h264_access_units(dir: &Path, secs: u32) -> Vec<Vec<Vec<u8>>> {
    let raw = dir.join("in.h264");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=320x240:rate={FPS}"),
        "-t",
        &secs.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-tune",
        "zerolatency",
        "-b:v",
        "400k",
        "-g",
        &FPS.to_string(),
        "-x264-params",
        "aud=1",
        raw.to_str().unwrap(),
    ]);
    let b = std::fs::read(&raw).unwrap();
    // NAL units between 00 00 01 start codes (a 4-byte code's leading zero
    // ends the previous unit, which never ends in a zero byte).
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units: Vec<Vec<Vec<u8>>> = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(b.len(), |n| n - 3);
        while end > s && b[end - 1] == 0 {
            end -= 1;
        }
        let nal = b[s..end].to_vec();
        if nal[0] & 0x1f == 9 {
            units.push(Vec::new());
        } else {
            units.last_mut().expect("an AUD first").push(nal);
        }
    }
    units
}

/// libwebrtc's packetization of one access unit (RFC 6184 mode 1): small
/// NAL units together in STAP-A packets, a large one in FU-A fragments of at
/// most 1,000 bytes, the marker on the last packet.
pub fn h264_packets(au: &[Vec<u8>], seq: &mut u16, ts: u32, ssrc: u32) -> Vec<OctoRtp> {
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut stap: Vec<&[u8]> = Vec::new();
    let flush = |stap: &mut Vec<&[u8]>, payloads: &mut Vec<Vec<u8>>| match stap.len() {
        0 => {}
        1 => payloads.push(stap.pop().unwrap().to_vec()),
        _ => {
            let nri = stap.iter().map(|n| n[0] & 0x60).max().unwrap();
            let mut p = vec![24 | nri];
            for n in stap.drain(..) {
                p.extend_from_slice(&(n.len() as u16).to_be_bytes());
                p.extend_from_slice(n);
            }
            payloads.push(p);
        }
    };
    for nal in au {
        if nal.len() <= 200 {
            stap.push(nal);
            continue;
        }
        flush(&mut stap, &mut payloads);
        if nal.len() <= 1000 {
            payloads.push(nal.clone());
            continue;
        }
        let chunks: Vec<&[u8]> = nal[1..].chunks(1000).collect();
        for (i, c) in chunks.iter().enumerate() {
            let s = if i == 0 { 0x80 } else { 0 };
            let e = if i + 1 == chunks.len() { 0x40 } else { 0 };
            let mut p = vec![(nal[0] & 0xe0) | 28, s | e | (nal[0] & 0x1f)];
            p.extend_from_slice(c);
            payloads.push(p);
        }
    }
    flush(&mut stap, &mut payloads);
    let n = payloads.len();
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            *seq = seq.wrapping_add(1);
            OctoRtp {
                pt: 102,
                marker: i + 1 == n,
                seq: *seq,
                ts,
                ssrc,
                audio_level: None,
                payload: Arc::from(payload),
            }
        })
        .collect()
}
