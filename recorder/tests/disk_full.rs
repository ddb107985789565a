//! A disk that fills mid-recording: the source stops with a typed error,
//! the recorder does not crash, and what was written before still plays.
//! Its own test binary: it lowers this process's file-size limit
//! (`RLIMIT_FSIZE`, the portable stand-in for a full disk: writes past it
//! fail with `EFBIG` as they would with `ENOSPC`).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_edge::rtp::OctoRtp;
use geomesh_recorder::{SourceKind, SourceRecorder};

mod media;
use media::vp8_frames;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigHandler, Signal, signal};

#[test]
fn a_full_disk_stops_the_source_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8_frames(dir.path(), 4);
    let path = dir.path().join("video.webm");
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    // Past the limit the kernel would kill the process (SIGXFSZ); ignored,
    // the write fails instead, as on a full disk.
    // SAFETY: no other thread of this test binary handles SIGXFSZ.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.unwrap();
    setrlimit(Resource::RLIMIT_FSIZE, 40_000, hard).unwrap();
    let t0 = Instant::now();
    let mut r = SourceRecorder::new(SourceKind::Video, &path, t0);
    let mut seq = 0u16;
    for (k, f) in video.iter().enumerate() {
        let at = t0 + Duration::from_millis(k as u64 * 33);
        let chunks: Vec<&[u8]> = f.chunks(1000).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut payload = vec![if i == 0 { 0x10 } else { 0x00 }];
            payload.extend_from_slice(c);
            seq = seq.wrapping_add(1);
            r.handle_rtp(
                at,
                &OctoRtp {
                    pt: 96,
                    marker: i + 1 == chunks.len(),
                    seq,
                    ts: k as u32 * 3000,
                    ssrc: 1,
                    audio_level: None,
                    payload: Arc::from(payload),
                },
            );
        }
    }
    let failed = r.error().map(|e| e.to_string());
    let s = r.finish();
    setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap();
    let why = failed.expect("the recording of this source stopped");
    assert!(why.contains("video.webm"), "{why}");
    assert!(s.error.is_some());
    assert!(
        s.frames > 10 && (s.frames as usize) < video.len(),
        "{} frames",
        s.frames
    );
    // What was written plays: ffprobe counts its frames.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    // Cut back to its last whole frame: nothing truncated to complain of.
    assert_eq!(errors, "", "ffprobe: {text}");
    assert_eq!(s.bytes, std::fs::metadata(&path).unwrap().len());
    let mut parts = text.trim().split(',');
    assert_eq!(parts.next(), Some("vp8"));
    let decoded: u64 = parts.next().unwrap().parse().unwrap();
    assert!(decoded >= 10, "only {decoded} frames decode");
}
