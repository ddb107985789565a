//! The recorder as an octo peer, in virtual time: real octo links
//! (`geomesh_mesh::link::Link`, the state machine the edges run) between
//! two edges and the recorder core, carrying real VP8 and Opus (ffmpeg)
//! as RTP. The recorder subscribes to what the edges announce, asks for
//! keyframes, and follows a publisher whose edge dies to the edge it
//! rejoins on: one file per participant's track, with a gap as long as the
//! rejoin, no decode error.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};
use geomesh_edge::rtp::OctoRtp;
use geomesh_mesh::link::{DownReason, Link, LinkConfig, LinkEvent};
use geomesh_mesh::wire::{Codec, Layer, MediaKind, MediaType, SourceId, SourceInfo};
use geomesh_recorder::RecordingConfig;
use geomesh_recorder::core::{LinkAction, RecorderCore};

mod media;
use media::{FPS, opus_frames, vp8_frames, vp8_packets};

fn id(s: &str) -> EdgeId {
    EdgeId::new(s).unwrap()
}

/// One edge's link to the recorder, and the recorder's to it.
struct Pair {
    edge: Link,
    rec: Link,
    name: EdgeId,
    /// Keyframe requests the edge received.
    asked: usize,
}

impl Pair {
    fn new(edge: &str, now: Instant) -> Self {
        let cfg = |s: &str| LinkConfig::new(id(s), RegionId::new("eu").unwrap());
        let mut p = Pair {
            edge: Link::new(cfg(edge), id("rec-1")),
            rec: Link::new(cfg("rec-1"), id(edge)),
            name: id(edge),
            asked: 0,
        };
        p.edge.handle_connected(now);
        p.rec.handle_connected(now);
        p
    }

    /// Moves control bytes both ways until quiet; the recorder's link
    /// events go to the core, its actions on this link back to the link.
    /// Returns the core's actions for other links.
    fn pump(&mut self, now: Instant, core: &mut RecorderCore) -> Vec<LinkAction> {
        let mut others = Vec::new();
        for _ in 0..20 {
            let mut moved = false;
            while let Some(b) = self.edge.poll_transmit() {
                self.rec.handle_control(now, &b);
                moved = true;
            }
            while let Some(b) = self.rec.poll_transmit() {
                self.edge.handle_control(now, &b);
                moved = true;
            }
            while let Some(ev) = self.rec.poll_event() {
                core.handle_link_event(&self.name, &ev);
            }
            while let Some(ev) = self.edge.poll_event() {
                if matches!(ev, LinkEvent::KeyframeRequested { .. }) {
                    self.asked += 1;
                }
            }
            while let Some(a) = core.poll_action() {
                match self.apply(now, a) {
                    Some(a) => others.push(a),
                    None => moved = true,
                }
            }
            if !moved {
                break;
            }
        }
        others
    }

    /// Carries out a core action on this link; `Some` if it is another's.
    fn apply(&mut self, now: Instant, a: LinkAction) -> Option<LinkAction> {
        match a {
            LinkAction::Subscribe {
                edge,
                source,
                subscription,
            } if edge == self.name => self.rec.subscribe(source, subscription).unwrap(),
            LinkAction::Unsubscribe { edge, source } if edge == self.name => {
                self.rec.unsubscribe(source)
            }
            LinkAction::RequestKeyframe { edge, source } if edge == self.name => {
                let _ = self.rec.request_keyframe(now, source, None);
            }
            other => return Some(other),
        }
        None
    }

    /// One RTP packet of `source` from the edge to the recorder.
    fn media(&mut self, now: Instant, core: &mut RecorderCore, source: SourceId, p: &OctoRtp) {
        let mut rtp = Vec::new();
        geomesh_edge::rtp::write(p, &mut rtp);
        let mut out = BytesMut::new();
        if self
            .edge
            .encode_media(source, MediaType::Rtp, 0, &rtp, &mut out)
            .is_err()
        {
            return; // not subscribed (yet)
        }
        if let Ok(Some(m)) = self.rec.handle_datagram(out.freeze()) {
            core.handle_media(now, &m);
        }
    }
}

fn source(owner: &str, kind: MediaKind, ssrc: u32) -> SourceInfo {
    let (name, pt, clock) = match kind {
        MediaKind::Audio => ("opus", 111, 48_000),
        MediaKind::Video => ("VP8", 96, 90_000),
    };
    SourceInfo {
        owner: ParticipantId::new(owner).unwrap(),
        kind,
        codec: Codec {
            name: name.into(),
            payload_type: pt,
            clock_rate: clock,
        },
        layers: vec![Layer {
            rid: None,
            ssrc,
            rtx_ssrc: None,
            max_height: 0,
        }],
    }
}

/// Publishes `secs` of Ada's audio and video on `pair` from `from`.
#[allow(clippy::too_many_arguments)]
fn publish(
    pair: &mut Pair,
    core: &mut RecorderCore,
    t0: Instant,
    from: Duration,
    video: &[Vec<u8>],
    audio: &[Vec<u8>],
    (vid, aid): (SourceId, SourceId),
    ssrc: u32,
) {
    let mut seq = 0u16;
    // 20 ms steps: an audio frame each, a video frame every 33 ms.
    let mut next_video = 0usize;
    for (k, frame) in audio.iter().enumerate() {
        let t = from + Duration::from_millis(20 * k as u64);
        let now = t0 + t;
        while next_video < video.len()
            && Duration::from_secs_f64(next_video as f64 / f64::from(FPS)) <= t - from
        {
            let ts = (next_video as u32) * 3000 + ssrc;
            for p in vp8_packets(&video[next_video], &mut seq, ts, ssrc, next_video as u16) {
                pair.media(now, core, vid, &p);
            }
            next_video += 1;
        }
        let p = OctoRtp {
            pt: 111,
            marker: false,
            seq: k as u16,
            ts: k as u32 * 960 + ssrc,
            ssrc: ssrc + 1,
            audio_level: None,
            payload: Arc::from(frame.clone()),
        };
        pair.media(now, core, aid, &p);
        pair.pump(now, core);
    }
}

/// The file's packet times, after checking that ffmpeg decodes it
/// without an error.
fn decoded_pts(file: &Path) -> Vec<f64> {
    let errors = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&errors.stderr), "", "{file:?}");
    probe_pts(file)
}

fn probe_pts(file: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (Debian package ffmpeg) must be installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

#[test]
fn the_recorder_follows_a_publisher_from_a_dead_edge_to_its_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8_frames(dir.path(), 2);
    let audio = opus_frames(dir.path(), 2);
    let conf = ConferenceId::new("standup").unwrap();
    let t0 = Instant::now();
    let mut core = RecorderCore::new();
    // Ada publishes on edge-a, which hosts the conference.
    let mut a = Pair::new("edge-a", t0);
    a.edge.open_conference(&conf).unwrap();
    a.edge
        .endpoint_joined(
            &conf,
            ParticipantId::new("ada").unwrap(),
            Some("Ada".into()),
        )
        .unwrap();
    let (v1, a1) = (SourceId(1), SourceId(2));
    a.edge
        .add_source(&conf, v1, source("ada", MediaKind::Video, 1000))
        .unwrap();
    a.edge
        .add_source(&conf, a1, source("ada", MediaKind::Audio, 1001))
        .unwrap();
    a.pump(t0, &mut core);
    // The recording starts after the sources were announced: it subscribes
    // to what is there.
    core.start(
        config(dir.path(), &conf, "rec-42", 0),
        t0,
        1_800_000_000_000,
    )
    .unwrap();
    a.pump(t0, &mut core);
    assert!(
        a.edge.remote_subscription(v1).is_some() && a.edge.remote_subscription(a1).is_some(),
        "the recorder subscribed to both sources"
    );
    publish(
        &mut a,
        &mut core,
        t0,
        Duration::ZERO,
        &video,
        &audio,
        (v1, a1),
        1000,
    );
    // edge-a dies at 2 s; Ada rejoins on edge-b at 3 s with new sources.
    a.rec.handle_disconnected(
        t0 + Duration::from_secs(2),
        DownReason::Lost("edge-a died".into()),
    );
    while let Some(ev) = a.rec.poll_event() {
        core.handle_link_event(&a.name, &ev);
    }
    let rejoin = t0 + Duration::from_secs(3);
    let mut b = Pair::new("edge-b", rejoin);
    b.edge.open_conference(&conf).unwrap();
    b.edge
        .endpoint_joined(
            &conf,
            ParticipantId::new("ada").unwrap(),
            Some("Ada".into()),
        )
        .unwrap();
    let (v2, a2) = (SourceId(7), SourceId(8));
    b.edge
        .add_source(&conf, v2, source("ada", MediaKind::Video, 5000))
        .unwrap();
    b.edge
        .add_source(&conf, a2, source("ada", MediaKind::Audio, 5001))
        .unwrap();
    b.pump(rejoin, &mut core);
    publish(
        &mut b,
        &mut core,
        t0,
        Duration::from_secs(3),
        &video,
        &audio,
        (v2, a2),
        5000,
    );
    // edge-a was asked for a keyframe as the recording began; the rejoined
    // stream began with one (a new encoder), so edge-b was asked nothing.
    assert_eq!((a.asked, b.asked), (1, 0));
    let m = core.stop(&conf, 1_800_000_005_000).unwrap().unwrap();
    assert_eq!(core.counters().bad_packets, 0);
    // One file per track across both edges.
    assert_eq!(m.sources.len(), 2, "{m:?}");
    assert_eq!(m.participants[0].name.as_deref(), Some("Ada"));
    for s in &m.sources {
        let file = dir.path().join("standup").join(s.file.as_ref().unwrap());
        let pts = decoded_pts(&file);
        let gaps: Vec<(f64, f64)> = pts
            .windows(2)
            .filter(|w| w[1] - w[0] > 0.2)
            .map(|w| (w[0], w[1]))
            .collect();
        // The only hole is the rejoin: from the last frame before 2 s to
        // the first after 3 s.
        assert_eq!(gaps.len(), 1, "{file:?}: {gaps:?}");
        assert!(gaps[0].0 <= 2.001 && gaps[0].0 > 1.8, "{gaps:?}");
        assert!((gaps[0].1 - 3.0).abs() < 0.05, "{gaps:?}");
        assert!(
            *pts.last().unwrap() > 4.8,
            "{file:?} ends at {:?}",
            pts.last()
        );
    }
}

/// A recording of `conf` into `dir/standup`.
fn config(dir: &Path, conf: &ConferenceId, id: &str, max_height: u16) -> RecordingConfig {
    RecordingConfig {
        id: id.into(),
        conference: conf.clone(),
        recorder: "rec-1".into(),
        dir: dir.join("standup"),
        continues: None,
        max_height,
    }
}

/// `pair`'s edge hosts `conf` with Ada publishing `ids` (video, audio).
fn ada_on(pair: &mut Pair, conf: &ConferenceId, (v, a): (SourceId, SourceId), ssrc: u32) {
    let ada = ParticipantId::new("ada").unwrap();
    pair.edge.open_conference(conf).unwrap();
    pair.edge
        .endpoint_joined(conf, ada, Some("Ada".into()))
        .unwrap();
    pair.edge
        .add_source(conf, v, source("ada", MediaKind::Video, ssrc))
        .unwrap();
    pair.edge
        .add_source(conf, a, source("ada", MediaKind::Audio, ssrc + 1))
        .unwrap();
}

#[test]
fn a_publisher_that_migrates_make_before_break_is_followed_and_never_interleaved() {
    let dir = tempfile::tempdir().unwrap();
    let video = vp8_frames(dir.path(), 2);
    let audio = opus_frames(dir.path(), 2);
    let conf = ConferenceId::new("standup").unwrap();
    let t0 = Instant::now();
    let mut core = RecorderCore::new();
    core.start(
        config(dir.path(), &conf, "rec-43", 360),
        t0,
        1_800_000_000_000,
    )
    .unwrap();
    let mut a = Pair::new("edge-a", t0);
    let (v1, a1) = (SourceId(1), SourceId(2));
    ada_on(&mut a, &conf, (v1, a1), 1000);
    a.pump(t0, &mut core);
    // The recording's policy (at most 360 px tall) is what it subscribes with.
    let policy = geomesh_mesh::wire::Subscription {
        max_layer: geomesh_mesh::wire::Subscription::ANY_LAYER,
        max_height: 360,
    };
    assert_eq!(a.edge.remote_subscription(v1).map(|(s, _)| s), Some(policy));
    publish(
        &mut a,
        &mut core,
        t0,
        Duration::ZERO,
        &video,
        &audio,
        (v1, a1),
        1000,
    );
    // At 2 s Ada's page connects to edge-b (drain --migrate) while its
    // session on edge-a still runs and still sends.
    let moved = t0 + Duration::from_secs(2);
    let mut b = Pair::new("edge-b", moved);
    let (v2, a2) = (SourceId(7), SourceId(8));
    ada_on(&mut b, &conf, (v2, a2), 5000);
    for action in b.pump(moved, &mut core) {
        assert!(a.apply(moved, action).is_none());
    }
    let _ = a.pump(moved, &mut core);
    assert!(
        a.edge.remote_subscription(v1).is_none() && a.edge.remote_subscription(a1).is_none(),
        "the recorder let go of the old session's sources"
    );
    // Both sessions send for the next 2 s; only edge-b's reach the file.
    publish(
        &mut a,
        &mut core,
        t0,
        Duration::from_secs(2),
        &video,
        &audio,
        (v1, a1),
        1000,
    );
    publish(
        &mut b,
        &mut core,
        t0,
        Duration::from_secs(2),
        &video,
        &audio,
        (v2, a2),
        5000,
    );
    let m = core.stop(&conf, 1_800_000_004_000).unwrap().unwrap();
    assert_eq!(core.counters().bad_packets, 0);
    assert_eq!(m.sources.len(), 2, "{m:?}");
    for s in &m.sources {
        let file = dir.path().join("standup").join(s.file.as_ref().unwrap());
        let pts = decoded_pts(&file);
        let largest = pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        assert!(largest < 0.1, "{file:?}: a gap of {largest} s at the move");
        assert!(
            pts.windows(2).all(|w| w[1] > w[0]),
            "{file:?}: time went back"
        );
        assert!(
            *pts.last().unwrap() > 3.8,
            "{file:?} ends at {:?}",
            pts.last()
        );
    }
}

#[test]
fn a_recording_started_after_an_edge_died_takes_the_rejoined_sources_only() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ConferenceId::new("standup").unwrap();
    let t0 = Instant::now();
    let mut core = RecorderCore::new();
    let mut a = Pair::new("edge-a", t0);
    ada_on(&mut a, &conf, (SourceId(1), SourceId(2)), 1000);
    let _ = a.pump(t0, &mut core);
    // edge-a dies; Ada rejoins on edge-b; only then is the recording started.
    a.rec
        .handle_disconnected(t0, DownReason::Lost("edge-a died".into()));
    while let Some(ev) = a.rec.poll_event() {
        core.handle_link_event(&a.name, &ev);
    }
    let mut b = Pair::new("edge-b", t0);
    let (v2, a2) = (SourceId(7), SourceId(8));
    ada_on(&mut b, &conf, (v2, a2), 5000);
    let _ = b.pump(t0, &mut core);
    core.start(
        config(dir.path(), &conf, "rec-44", 0),
        t0,
        1_800_000_000_000,
    )
    .unwrap();
    let others = b.pump(t0, &mut core);
    assert!(
        b.edge.remote_subscription(v2).is_some() && b.edge.remote_subscription(a2).is_some(),
        "the recorder subscribed to the live sources"
    );
    assert!(
        others
            .iter()
            .all(|x| !matches!(x, LinkAction::Subscribe { .. })),
        "nothing asked of the dead edge: {others:?}"
    );
}
