//! H.264 through the source recorder into a Matroska file, checked by
//! ffmpeg: libx264 encodes a 320×240, 30 fps constrained-baseline test
//! pattern (a keyframe a second), the test packetizes it as libwebrtc does
//! (STAP-A for the parameter sets, FU-A for large slices), and `ffprobe` and
//! `ffmpeg -v error` say what the file holds.

use std::time::{Duration, Instant};

use geomesh_recorder::{SourceEvent, SourceKind, SourceRecorder};

mod media;
use media::{FPS, decode_errors, h264_access_units, h264_packets, probe};

#[test]
fn an_h264_source_becomes_a_matroska_file_that_plays_through_loss() {
    let dir = tempfile::tempdir().unwrap();
    let units = h264_access_units(dir.path(), 4);
    assert!(units.len() >= 115, "{} access units", units.len());
    let key = |k: usize| units[k].iter().any(|n| n[0] & 0x1f == 5);
    assert!(key(0));
    // One packet of frame 40 is lost: frames until the next keyframe go.
    let next_key = (41..units.len()).find(|&k| key(k)).expect("a keyframe");
    let t0 = Instant::now();
    let path = dir.path().join("video.mkv");
    let mut r = SourceRecorder::new(SourceKind::H264, &path, t0);
    let mut seq = 60_000u16;
    let mut events = Vec::new();
    let mut lost = 0;
    for (k, au) in units.iter().enumerate() {
        let ts = 4_000_000_000u32.wrapping_add(k as u32 * 90_000 / FPS);
        let at = t0 + Duration::from_millis(100) + Duration::from_secs_f64(k as f64 / 30.0);
        for (i, p) in h264_packets(au, &mut seq, ts, 21).iter().enumerate() {
            if k == 40 && i == 0 {
                lost += 1;
                continue;
            }
            r.handle_rtp(at, p);
        }
        events.extend(std::iter::from_fn(|| r.poll_event()));
    }
    assert_eq!(lost, 1);
    assert_eq!(
        events,
        vec![SourceEvent::KeyframeWanted, SourceEvent::KeyframeWanted],
        "asked to start, and after the loss"
    );
    let s = r.finish();
    assert_eq!(s.error, None);
    assert_eq!(s.frames, (units.len() - (next_key - 40)) as u64);
    assert_eq!(s.bytes, std::fs::metadata(&path).unwrap().len());
    let p = probe(&path);
    assert_eq!((p.codec.as_str(), p.width), ("h264", Some(320)));
    assert!((p.duration - 4.0).abs() <= 0.4, "lasts {} s", p.duration);
    assert!(
        p.pts.windows(2).all(|w| w[1] > w[0]),
        "times not increasing"
    );
    assert!(
        (p.pts[0] - 0.1).abs() < 0.002,
        "first frame at {}",
        p.pts[0]
    );
    // The gap is a gap in time, not frames squeezed together.
    let gap = p.pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let want = (next_key - 40 + 1) as f64 / 30.0;
    assert!((gap - want).abs() < 0.01, "gap {gap} s, want {want}");
    assert_eq!(decode_errors(&path), "");
}

#[test]
fn a_keyframe_without_parameter_sets_waits_for_one_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let units = h264_access_units(dir.path(), 2);
    let t0 = Instant::now();
    let path = dir.path().join("video.mkv");
    let mut r = SourceRecorder::new(SourceKind::H264, &path, t0);
    let mut seq = 1u16;
    for (k, au) in units.iter().enumerate() {
        // The first keyframe comes without its SPS and PPS (a sender that
        // sent them once, out of band): no track can be described from it.
        let au: Vec<Vec<u8>> = au
            .iter()
            .filter(|n| k >= FPS as usize || !matches!(n[0] & 0x1f, 7 | 8))
            .cloned()
            .collect();
        let at = t0 + Duration::from_secs_f64(k as f64 / 30.0);
        for p in h264_packets(&au, &mut seq, k as u32 * 3000, 5) {
            r.handle_rtp(at, &p);
        }
        while r.poll_event().is_some() {}
    }
    let s = r.finish();
    assert_eq!(s.error, None);
    assert_eq!(s.frames, (units.len() - FPS as usize) as u64);
    let p = probe(&path);
    assert_eq!(p.codec, "h264");
    assert!(
        (p.pts[0] - 1.0).abs() < 0.002,
        "first frame at {}",
        p.pts[0]
    );
    assert_eq!(decode_errors(&path), "");
}
