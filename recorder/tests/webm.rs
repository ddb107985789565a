//! Real media through the source recorder, checked by ffmpeg.
//!
//! ffmpeg (Debian `ffmpeg`, which `.ci/run` installs) encodes a 320×240,
//! 30 fps VP8 test pattern (keyframe every second) and a 48 kHz Opus tone;
//! the test packetizes them into RTP the way a browser does (RFC 7741 VP8
//! payloads of at most 1,000 bytes, one Opus frame per packet), feeds them
//! to a [`SourceRecorder`] on a virtual clock, and asks `ffprobe` and
//! `ffmpeg -v error` about the files: the right codec, the right duration,
//! no decode errors, and the timestamps where they belong across loss, a
//! pause and a publisher's rejoin.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_edge::rtp::OctoRtp;
use geomesh_recorder::{SourceEvent, SourceKind, SourceRecorder};

mod media;
use media::{FPS, decode_errors, opus_frames, probe, vp8_frames, vp8_packets};

/// Feeds `frames` as one VP8 stream from `from` (virtual arrival time),
/// frame `k` at `from + k/30 s`, RTP time from `ts0`; returns the events.
fn feed_video(
    r: &mut SourceRecorder,
    frames: &[Vec<u8>],
    t0: Instant,
    from: Duration,
    ssrc: u32,
    ts0: u32,
    mut drop: impl FnMut(usize, usize) -> bool,
) -> Vec<SourceEvent> {
    let mut seq = (ssrc as u16).wrapping_mul(7);
    let mut events = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let ts = ts0.wrapping_add(k as u32 * 90_000 / FPS);
        let at = t0 + from + Duration::from_secs_f64(k as f64 / f64::from(FPS));
        for (i, p) in vp8_packets(f, &mut seq, ts, ssrc, k as u16)
            .iter()
            .enumerate()
        {
            if !drop(k, i) {
                r.handle_rtp(at, p);
            }
        }
        while let Some(e) = r.poll_event() {
            events.push(e);
        }
    }
    events
}

#[test]
fn vp8_and_opus_sources_become_files_that_play_through() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8_frames(dir.path(), 4);
    let audio = opus_frames(dir.path(), 4);
    assert!(
        video.len() >= 115 && audio.len() >= 195,
        "{} {}",
        video.len(),
        audio.len()
    );
    let t0 = Instant::now();
    let vpath = dir.path().join("video.webm");
    let mut v = SourceRecorder::new(SourceKind::Video, &vpath, t0);
    let events = feed_video(
        &mut v,
        &video,
        t0,
        Duration::from_millis(200),
        11,
        123_456,
        |_, _| false,
    );
    assert_eq!(
        events,
        vec![SourceEvent::KeyframeWanted],
        "asked once, to start"
    );
    let apath = dir.path().join("audio.webm");
    let mut a = SourceRecorder::new(SourceKind::Audio, &apath, t0);
    for (k, f) in audio.iter().enumerate() {
        let p = OctoRtp {
            pt: 111,
            marker: false,
            seq: k as u16,
            ts: (k as u32).wrapping_mul(960).wrapping_add(u32::MAX - 5_000),
            ssrc: 12,
            audio_level: None,
            payload: Arc::from(f.clone()),
        };
        a.handle_rtp(t0 + Duration::from_millis(200 + 20 * k as u64), &p);
    }
    let vs = v.finish();
    let as_ = a.finish();
    assert_eq!(vs.error, None);
    assert_eq!(vs.frames, video.len() as u64);
    assert_eq!(as_.frames, audio.len() as u64);
    assert_eq!(vs.bytes, std::fs::metadata(&vpath).unwrap().len());
    let pv = probe(&vpath);
    assert_eq!((pv.codec.as_str(), pv.width), ("vp8", Some(320)));
    let pa = probe(&apath);
    assert_eq!(pa.codec, "opus");
    for (p, what) in [(&pv, "video"), (&pa, "audio")] {
        assert!(
            (p.duration - 4.0).abs() <= 0.4,
            "{what} lasts {} s",
            p.duration
        );
        assert!(
            p.pts.windows(2).all(|w| w[1] > w[0]),
            "{what} times not increasing"
        );
    }
    // The file starts where the source started: 200 ms into the recording.
    assert!(
        (pv.pts[0] - 0.2).abs() < 0.002,
        "first frame at {}",
        pv.pts[0]
    );
    assert_eq!(decode_errors(&vpath), "");
    assert_eq!(decode_errors(&apath), "");
}

/// Three seconds of VP8 (a keyframe a second), its start, and a video
/// source recorder writing `dir/video.webm`.
fn three_seconds_of_video(
    dir: &Path,
) -> (Vec<Vec<u8>>, Instant, std::path::PathBuf, SourceRecorder) {
    let video = vp8_frames(dir, 3);
    let t0 = Instant::now();
    let path = dir.join("video.webm");
    let r = SourceRecorder::new(SourceKind::Video, &path, t0);
    (video, t0, path, r)
}

#[test]
fn a_lost_packet_costs_frames_until_a_keyframe_never_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let (video, t0, path, mut r) = three_seconds_of_video(dir.path());
    let key = |k: usize| video[k][0] & 0x01 == 0;
    let next_key = (41..video.len())
        .find(|&k| key(k))
        .expect("a keyframe after frame 40");
    assert!(!key(40));
    // Frame 40's first packet is lost.
    let events = feed_video(&mut r, &video, t0, Duration::ZERO, 5, 0, |k, i| {
        k == 40 && i == 0
    });
    assert_eq!(
        events,
        vec![SourceEvent::KeyframeWanted, SourceEvent::KeyframeWanted],
        "asked to start and after the loss"
    );
    let s = r.finish();
    // Frames 40 up to the next keyframe are not written.
    let skipped = next_key - 40;
    assert_eq!(s.frames, (video.len() - skipped) as u64);
    assert_eq!(decode_errors(&path), "");
    let p = probe(&path);
    let gap = p.pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let want = (skipped + 1) as f64 / 30.0;
    assert!(
        (gap - want).abs() < 0.01,
        "the hole is where the frames were: {gap} vs {want}"
    );
}

#[test]
fn a_pause_and_a_rejoin_keep_their_place_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8_frames(dir.path(), 2);
    let t0 = Instant::now();
    let path = dir.path().join("video.webm");
    let mut r = SourceRecorder::new(SourceKind::Video, &path, t0);
    // 1 s, then a 1 s pause (nothing sent; RTP time runs on), then 1 s
    // from the next keyframe (a muted camera's encoder restarts with one).
    let (first, second) = video.split_at(30);
    assert_eq!(second[0][0] & 0x01, 0, "frame 30 is a keyframe");
    feed_video(&mut r, first, t0, Duration::ZERO, 7, 1_000, |_, _| false);
    feed_video(
        &mut r,
        second,
        t0,
        Duration::from_secs(2),
        7,
        1_000 + 180_000,
        |_, _| false,
    );
    // The publisher's edge died; it rejoined 1.5 s later elsewhere: a new
    // SSRC and timestamp base, from a keyframe.
    feed_video(
        &mut r,
        &video,
        t0,
        Duration::from_millis(4_500),
        99,
        42,
        |_, _| false,
    );
    let s = r.finish();
    assert_eq!(s.error, None);
    assert_eq!(decode_errors(&path), "");
    let p = probe(&path);
    let gaps: Vec<(f64, f64)> = p
        .pts
        .windows(2)
        .filter(|w| w[1] - w[0] > 0.1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert_eq!(gaps.len(), 2, "the pause and the rejoin: {gaps:?}");
    // The pause: last frame at 29/30 s, the next at 2 s.
    assert!((gaps[0].1 - 2.0).abs() < 0.01, "{gaps:?}");
    // The rejoin: first frame at 4.5 s.
    assert!((gaps[1].1 - 4.5).abs() < 0.01, "{gaps:?}");
    assert!(
        (p.duration - (4.5 + 59.0 / 30.0)).abs() < 0.1,
        "{}",
        p.duration
    );
}

#[test]
fn a_recording_is_a_directory_of_files_and_a_manifest_that_matches_them() {
    use geomesh_recorder::{KindKey, Recording, RecordingConfig, SourceKey};
    let dir = tempfile::tempdir().unwrap();
    let video = vp8_frames(dir.path(), 2);
    let audio = opus_frames(dir.path(), 2);
    let t0 = Instant::now();
    let mut rec = Recording::start(
        RecordingConfig {
            id: "rec-1".into(),
            conference: "standup".parse().unwrap(),
            recorder: "rec-dev-1".into(),
            dir: dir.path().join("standup-rec-1"),
            continues: None,
            max_height: 0,
        },
        t0,
        1_800_000_000_000,
    )
    .unwrap();
    let key = |who: &str, kind| SourceKey {
        participant: who.parse().unwrap(),
        kind,
        track: 0,
    };
    rec.participant(&"ada".parse().unwrap(), Some("Ada"));
    for who in ["ada", "bob"] {
        // Bob joins a second later; both send audio and video.
        let from = if who == "ada" { 0 } else { 1_000 };
        let mut seq = 0u16;
        for (k, f) in video.iter().enumerate() {
            let at = t0 + Duration::from_millis(from + k as u64 * 1000 / 30);
            for p in vp8_packets(f, &mut seq, k as u32 * 3000, 1, k as u16) {
                rec.handle_rtp(at, &key(who, KindKey::Video), SourceKind::Video, &p);
            }
        }
        for (k, f) in audio.iter().enumerate() {
            let p = OctoRtp {
                pt: 111,
                marker: false,
                seq: k as u16,
                ts: k as u32 * 960,
                ssrc: 2,
                audio_level: None,
                payload: Arc::from(f.clone()),
            };
            rec.handle_rtp(
                t0 + Duration::from_millis(from + 20 * k as u64),
                &key(who, KindKey::Audio),
                SourceKind::Audio,
                &p,
            );
        }
    }
    let wanted: Vec<_> = std::iter::from_fn(|| rec.poll_event()).collect();
    assert_eq!(
        wanted.len(),
        2,
        "a keyframe asked for each video: {wanted:?}"
    );
    let m = rec.finish(1_800_000_005_000).unwrap();
    let on_disk = std::fs::read_to_string(dir.path().join("standup-rec-1/manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(v["recording"], "rec-1");
    assert_eq!(v["conference"], "standup");
    assert_eq!(v["participants"][0]["name"], "Ada");
    assert_eq!(v["participants"].as_array().unwrap().len(), 2);
    assert_eq!(m.sources.len(), 4);
    for s in v["sources"].as_array().unwrap() {
        let file = dir
            .path()
            .join("standup-rec-1")
            .join(s["file"].as_str().unwrap());
        assert_eq!(
            s["bytes"].as_u64().unwrap(),
            std::fs::metadata(&file).unwrap().len()
        );
        // The checksum, as coreutils computes it.
        let out = Command::new("sha256sum").arg(&file).output().unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            s["sha256"].as_str().unwrap(),
            sum.split_whitespace().next().unwrap()
        );
        assert_eq!(decode_errors(&file), "");
        let p = probe(&file);
        assert_eq!(p.codec, s["codec"].as_str().unwrap());
        let start = s["start_ms"].as_u64().unwrap() as f64 / 1000.0;
        assert!((p.pts[0] - start).abs() < 0.002, "{s}");
        let late = s["participant"] == "bob";
        assert!((start - if late { 1.0 } else { 0.0 }).abs() < 0.01, "{s}");
    }
}

#[test]
fn a_keyframe_that_never_comes_is_asked_for_again_every_second() {
    let dir = tempfile::tempdir().unwrap();
    let (video, t0, path, mut r) = three_seconds_of_video(dir.path());
    let key = |k: usize| video[k][0] & 0x01 == 0;
    let keys: Vec<usize> = (0..video.len()).filter(|&k| key(k)).collect();
    assert!(keys.len() >= 3, "keyframes at {keys:?}");
    // The keyframe that answers the first request is lost, and so is the
    // encoder's next one (a second later): the deltas cannot be written,
    // and the recorder asks again after a second, until the third.
    let lost = [keys[0], keys[1]];
    let events = feed_video(&mut r, &video, t0, Duration::ZERO, 5, 0, |k, _| {
        lost.contains(&k)
    });
    assert_eq!(
        events,
        vec![SourceEvent::KeyframeWanted, SourceEvent::KeyframeWanted],
        "asked at the start and again a second later (keyframes at {keys:?})"
    );
    let s = r.finish();
    assert_eq!(s.frames, (video.len() - keys[2]) as u64);
    assert_eq!(decode_errors(&path), "");
}
