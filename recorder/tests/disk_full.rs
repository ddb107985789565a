//! A disk that fills mid-recording (a WebM file and a Matroska one): the source stops with a typed error,
//! the recorder does not crash, and what was written before still plays.
//! Its own test binary: it lowers this process's file-size limit
//! (`RLIMIT_FSIZE`, the portable stand-in for a full disk: writes past it
//! fail with `EFBIG` as they would with `ENOSPC`).

use std::process::Command;
use std::time::{Duration, Instant};

use geomesh_edge::rtp::OctoRtp;
use geomesh_recorder::{SourceKind, SourceRecorder};

mod media;
use media::{h264_access_units, h264_packets, vp8_frames, vp8_packets};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigHandler, Signal, signal};

#[test]
fn a_full_disk_stops_the_source_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut seq = 0u16;
    let vp8: Vec<Vec<OctoRtp>> = vp8_frames(dir.path(), 4)
        .iter()
        .enumerate()
        .map(|(k, f)| vp8_packets(f, &mut seq, k as u32 * 3000, 1, k as u16))
        .collect();
    let h264: Vec<Vec<OctoRtp>> = h264_access_units(dir.path(), 4)
        .iter()
        .enumerate()
        .map(|(k, au)| h264_packets(au, &mut seq, k as u32 * 3000, 2))
        .collect();
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    // Past the limit the kernel would kill the process (SIGXFSZ); ignored,
    // the write fails instead, as on a full disk.
    // SAFETY: no other thread of this test binary handles SIGXFSZ.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.unwrap();
    setrlimit(Resource::RLIMIT_FSIZE, 40_000, hard).unwrap();
    let results: Vec<_> = [
        (SourceKind::Video, "video.webm", &vp8),
        (SourceKind::H264, "video.mkv", &h264),
    ]
    .into_iter()
    .map(|(kind, name, frames)| {
        let path = dir.path().join(name);
        let t0 = Instant::now();
        let mut r = SourceRecorder::new(kind, &path, t0);
        for (k, packets) in frames.iter().enumerate() {
            let at = t0 + Duration::from_millis(k as u64 * 33);
            for p in packets {
                r.handle_rtp(at, p);
            }
        }
        let failed = r.error().map(|e| e.to_string());
        (path, frames.len(), failed, r.finish())
    })
    .collect();
    setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap();
    for ((path, sent, failed, s), codec) in results.into_iter().zip(["vp8", "h264"]) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let why = failed.expect("the recording of this source stopped");
        assert!(why.contains(name), "{why}");
        assert!(s.error.is_some());
        assert!(
            s.frames > 10 && (s.frames as usize) < sent,
            "{codec}: {} frames",
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
        assert_eq!(errors, "", "{codec}: ffprobe: {text}");
        assert_eq!(s.bytes, std::fs::metadata(&path).unwrap().len());
        let mut parts = text.trim().split(',');
        assert_eq!(parts.next(), Some(codec));
        let decoded: u64 = parts.next().unwrap().parse().unwrap();
        assert!(decoded >= 10, "{codec}: only {decoded} frames decode");
    }
}
