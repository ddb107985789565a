//! The edge's behaviours in virtual time: what the multi-process e2e
//! tests show with browsers, here in milliseconds and deterministically.
#![cfg(test)]

use std::time::Duration;

use super::{Client, Setup, Track, World};

/// One received track: video, frames, (missing, backwards), keyframes.
type TrackSummary = (bool, usize, (u32, u32), usize);

/// What a run leaves behind, compared across runs of one seed.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    sent: Vec<(u32, u32)>,
    received: Vec<Vec<TrackSummary>>,
}

fn summary(w: &World) -> Summary {
    Summary {
        sent: w
            .clients
            .iter()
            .map(|c| (c.sent_frames, c.sent_audio))
            .collect(),
        received: w
            .clients
            .iter()
            .map(|c| {
                // m-line ids are random: order by what the tracks carried.
                let mut v: Vec<_> = c
                    .tracks
                    .values()
                    .map(|t| (t.video, t.frames.len(), t.gaps(), t.keyframes.len()))
                    .collect();
                v.sort();
                v
            })
            .collect(),
    }
}

/// The one track of `kind` a client receives.
fn only(c: &Client, video: bool) -> &Track {
    let mut it = c.tracks.values().filter(|t| t.video == video);
    let t = it
        .next()
        .unwrap_or_else(|| panic!("{} receives no {} track", c.name, kind(video)));
    assert!(
        it.next().is_none(),
        "{} receives two {} tracks",
        c.name,
        kind(video)
    );
    t
}

fn kind(video: bool) -> &'static str {
    if video { "video" } else { "audio" }
}

/// Continuity: the subscriber decodes from a keyframe on, with no frame
/// missing, at least `share` of what the publisher sent meanwhile.
fn assert_continuous(sub: &Client, publisher: &Client, share: f64) {
    let video = only(sub, true);
    let audio = only(sub, false);
    assert!(
        video.keyframes.first() == video.frames.first(),
        "{} starts decoding at a keyframe: first frame {:?}, keyframes {:?}",
        sub.name,
        video.frames.first(),
        video.keyframes
    );
    assert_eq!(
        video.gaps(),
        (0, 0),
        "{}: video frames missing or reordered",
        sub.name
    );
    assert_eq!(
        audio.gaps(),
        (0, 0),
        "{}: audio packets missing or reordered",
        sub.name
    );
    let first = *video.frames.first().expect("frames");
    let sent_since = publisher.sent_frames - first;
    assert!(
        video.frames.len() as f64 >= share * f64::from(sent_since),
        "{} decoded {} of {} frames",
        sub.name,
        video.frames.len(),
        sent_since
    );
    let first = *audio.frames.first().expect("audio");
    let sent_since = publisher.sent_audio - first;
    assert!(
        audio.frames.len() as f64 >= share * f64::from(sent_since),
        "{} got {} of {} audio packets",
        sub.name,
        audio.frames.len(),
        sent_since
    );
}

#[test]
fn a_publisher_reaches_a_subscriber_with_every_frame() {
    let mut w = World::new(&Setup::default());
    let a = w.join("alice", true);
    let b = w.join("bob", false);
    w.run_for(Duration::from_secs(10));
    let (alice, bob) = (&w.clients[a], &w.clients[b]);
    assert!(
        alice.sent_frames >= 290,
        "alice sent {} frames in 10 s",
        alice.sent_frames
    );
    assert_continuous(bob, alice, 0.97);
}

/// Alice publishes on `edges.0`, Bob watches on `edges.1`; Carol joins
/// Bob's edge 5 s later and decodes within a few frames, from a keyframe
/// Alice was asked for.
fn late_joiner(setup: &Setup, edges: (usize, usize)) {
    let mut w = World::new(setup);
    let a = w.join_at(edges.0, "alice", true);
    let _b = w.join_at(edges.1, "bob", false);
    w.run_for(Duration::from_secs(5));
    let asked_before = w.clients[a].keyframe_requests;
    let sent_before = w.clients[a].sent_frames;
    let c = w.join_at(edges.1, "carol", false);
    w.run_for(Duration::from_secs(3));
    let (alice, carol) = (&w.clients[a], &w.clients[c]);
    assert!(
        alice.keyframe_requests > asked_before,
        "alice was asked for a keyframe for carol"
    );
    let first = *only(carol, true)
        .frames
        .first()
        .expect("carol decodes video");
    // Within a few frames of connecting (ICE, DTLS and one round trip).
    assert!(
        first - sent_before < 30,
        "carol's first frame came {} frames after she joined",
        first - sent_before
    );
    assert_continuous(carol, alice, 0.95);
}

#[test]
fn a_late_joiner_gets_a_keyframe_at_once() {
    late_joiner(&Setup::default(), (0, 0));
}

#[test]
fn a_conference_spread_over_workers_crosses_the_sibling_link() {
    let setup = Setup {
        workers: 2,
        spread_above: Some(1),
        ..Setup::default()
    };
    let mut w = World::new(&setup);
    let a = w.join("alice", true);
    let b = w.join("bob", false);
    assert_ne!(
        w.clients[a].worker, w.clients[b].worker,
        "the conference spreads after one session"
    );
    w.run_for(Duration::from_secs(8));
    assert_continuous(&w.clients[b], &w.clients[a], 0.97);
}

#[test]
fn a_leaving_publisher_is_announced_and_its_media_stops() {
    let mut w = World::new(&Setup::default());
    let a = w.join("alice", true);
    let b = w.join("bob", false);
    w.run_for(Duration::from_secs(3));
    let before = only(&w.clients[b], true).frames.len();
    w.leave(a);
    w.run_for(Duration::from_secs(2));
    let after = only(&w.clients[b], true).frames.len();
    // What was in flight when she left, at most.
    assert!(
        after - before <= 3,
        "{} frames after alice left",
        after - before
    );
}

/// The video track of `c` that received frames last (a participant who
/// moved has a new one).
fn latest_video(c: &Client) -> &Track {
    c.video_tracks()
        .filter(|t| !t.frames.is_empty())
        .max_by_key(|t| t.last_at)
        .expect("a video track with frames")
}

/// `sub` decodes the moved publisher's new session from a keyframe on,
/// nothing missing.
fn assert_follows(sub: &Client, moved: &Client) {
    let video = latest_video(sub);
    assert_eq!(
        video.keyframes.first(),
        video.frames.first(),
        "{} decodes {}'s new session from a keyframe",
        sub.name,
        moved.name
    );
    assert_eq!(video.gaps(), (0, 0));
    let first = *video.frames.first().expect("frames");
    assert!(
        video.frames.len() as f64 >= 0.95 * f64::from(moved.sent_frames - first),
        "{} decoded {} of {}'s {} frames after the move",
        sub.name,
        video.frames.len(),
        moved.name,
        moved.sent_frames - first
    );
}

fn two_edges() -> Setup {
    Setup {
        edges: 2,
        ..Setup::default()
    }
}

#[test]
fn a_publisher_on_one_edge_reaches_a_subscriber_on_another() {
    let mut w = World::new(&two_edges());
    let a = w.join_at(0, "alice", true);
    let b = w.join_at(1, "bob", false);
    w.run_for(Duration::from_secs(10));
    let (alice, bob) = (&w.clients[a], &w.clients[b]);
    assert_continuous(bob, alice, 0.97);
}

#[test]
fn a_late_joiner_across_the_link_gets_a_keyframe() {
    late_joiner(&two_edges(), (0, 1));
}

#[test]
fn media_resumes_with_a_keyframe_when_a_cut_link_comes_back() {
    let mut w = World::new(&two_edges());
    w.join_at(0, "alice", true);
    let b = w.join_at(1, "bob", false);
    w.run_for(Duration::from_secs(3));
    let now = w.now;
    w.links[0].cut(now);
    w.run_for(Duration::from_secs(2));
    let cut_at = only(&w.clients[b], true).frames.len();
    let now = w.now;
    w.links[0].connect(now);
    w.run_for(Duration::from_secs(4));
    let video = only(&w.clients[b], true);
    let after = &video.frames[cut_at..];
    assert!(
        after.len() >= 100,
        "bob decoded {} frames in the 4 s after the link came back",
        after.len()
    );
    let resumed = after[0];
    let key = video
        .keyframes
        .iter()
        .find(|k| **k >= resumed)
        .expect("a keyframe after the link came back");
    assert!(
        key - resumed < 15,
        "the keyframe came {} frames after media resumed",
        key - resumed
    );
}

#[test]
fn a_participant_moves_from_a_dead_edge_to_a_live_one() {
    let setup = Setup {
        edges: 3,
        ..Setup::default()
    };
    let mut w = World::new(&setup);
    let _a = w.join_at(0, "alice", true);
    let b = w.join_at(1, "bob", false);
    w.run_for(Duration::from_secs(3));
    w.kill_edge(0);
    w.run_for(Duration::from_millis(500));
    // Alice's page rejoins through the selector, which picks edge 2.
    let moved = w.join_at(2, "alice", true);
    w.run_for(Duration::from_secs(5));
    assert_follows(&w.clients[b], &w.clients[moved]);
}

#[test]
fn a_draining_edge_asks_its_sessions_to_move_and_media_follows_them() {
    let mut w = World::new(&two_edges());
    let a = w.join_at(0, "alice", true);
    let b = w.join_at(1, "bob", false);
    w.run_for(Duration::from_secs(3));
    // Drain: every session of edge 0 is asked to move (what
    // `geomesh drain --migrate` does through the media handle).
    let key = w.clients[a].key.expect("joined");
    w.edges[0].cores[0].handle_command(
        w.now,
        super::Command::Migrate {
            key,
            reason: "draining",
        },
    );
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.clients[a].asked_to_move.as_deref(), Some("draining"));
    // Make-before-break: the new session first, then the old one leaves.
    let moved = w.join_at(1, "alice", true);
    w.run_for(Duration::from_secs(1));
    w.leave(a);
    w.run_for(Duration::from_secs(4));
    assert_follows(&w.clients[b], &w.clients[moved]);
}

/// Alice sends three simulcast layers on `edges.0`; Bob on `edges.1`
/// shows her in a small tile, then a large one: he gets the low layer,
/// then the top one within a second, switched at a keyframe, with no frame
/// missing across the switch.
fn simulcast_switch(setup: &Setup, edges: (usize, usize)) {
    let mut w = World::new(setup);
    let a = w.join_simulcast(edges.0, "alice");
    let b = w.join_at(edges.1, "bob", false);
    w.set_max_height(b, 120);
    w.run_for(Duration::from_secs(4));
    let small = only(&w.clients[b], true).frames.len();
    assert!(small >= 90, "bob decoded {small} frames of the small tile");
    assert_eq!(
        only(&w.clients[b], true).layers[small - 30..],
        [0; 30],
        "a 120-px tile takes the 160×120 layer"
    );
    w.set_max_height(b, 0);
    w.run_for(Duration::from_secs(3));
    let video = only(&w.clients[b], true);
    let after: Vec<(u32, u8)> = video.frames[small..]
        .iter()
        .copied()
        .zip(video.layers[small..].iter().copied())
        .collect();
    let up = after
        .iter()
        .position(|(_, l)| *l == 2)
        .expect("bob switches to the top layer");
    assert!(up < 30, "the switch up took {up} frames");
    assert!(
        video.keyframes.contains(&after[up].0),
        "the switch happens at a keyframe of the new layer"
    );
    assert!(
        after[up..].iter().all(|(_, l)| *l == 2),
        "bob stays on the top layer"
    );
    assert_eq!(video.gaps(), (0, 0), "no frame missing across the switch");
    // Steady state: nobody keeps asking the publisher for keyframes.
    let asked = w.clients[a].keyframe_requests;
    w.run_for(Duration::from_secs(5));
    assert_eq!(
        w.clients[a].keyframe_requests - asked,
        0,
        "keyframe requests in 5 s of a steady layer"
    );
}

#[test]
fn a_simulcast_subscriber_switches_layers_on_one_edge() {
    simulcast_switch(&Setup::default(), (0, 0));
}

#[test]
fn a_simulcast_subscriber_switches_layers_across_the_link() {
    simulcast_switch(&two_edges(), (0, 1));
}

#[test]
fn a_simulcast_subscriber_switches_layers_across_workers() {
    let setup = Setup {
        workers: 2,
        spread_above: Some(1),
        ..Setup::default()
    };
    simulcast_switch(&setup, (0, 0));
}

/// Speaker view: Carol shows every tile at 120 px and the stage (Alice,
/// then Bob) at 720. The stage's video comes on the top layer and the
/// other on the lowest; they swap when the stage moves, and both take the
/// lowest once there is no stage, with no frame missing.
fn speaker_view(setup: &Setup, edges: (usize, usize)) {
    let mut w = World::new(setup);
    w.join_simulcast(edges.0, "alice");
    w.join_simulcast(edges.0, "bob");
    let c = w.join_at(edges.1, "carol", false);
    let settled = |w: &World| -> Vec<u8> {
        w.clients[c]
            .video_tracks()
            .map(|t| *t.layers.last().expect("frames"))
            .collect()
    };
    w.set_tile_heights(c, 120, &[("alice", 720)]);
    w.run_for(Duration::from_secs(4));
    let alice_on_stage = settled(&w);
    let mut layers = alice_on_stage.clone();
    layers.sort_unstable();
    assert_eq!(layers, [0, 2], "one stage tile, one small tile");
    w.set_tile_heights(c, 120, &[("bob", 720)]);
    w.run_for(Duration::from_secs(3));
    let swapped: Vec<u8> = alice_on_stage.iter().map(|l| 2 - l).collect();
    assert_eq!(settled(&w), swapped, "the stage moved to the other video");
    w.set_tile_heights(c, 120, &[]);
    w.run_for(Duration::from_secs(3));
    assert_eq!(settled(&w), [0, 0], "no stage: small tiles only");
    for t in w.clients[c].video_tracks() {
        assert!(t.frames.len() >= 250, "{} frames", t.frames.len());
        assert_eq!(t.gaps(), (0, 0), "no frame missing across the switches");
    }
}

#[test]
fn speaker_view_takes_the_stage_layer_on_one_edge() {
    speaker_view(&Setup::default(), (0, 0));
}

#[test]
fn speaker_view_takes_the_stage_layer_across_the_link() {
    speaker_view(&two_edges(), (0, 1));
}

/// Last-N 1 with a pin that moves from one publisher to another (and the
/// same with the publishers on another edge): each newly forwarded video
/// starts at a keyframe within a few frames, and the one no longer
/// forwarded stops.
fn last_n_follows_the_pin(setup: &Setup, edges: (usize, usize)) {
    let mut w = World::new(setup);
    let a = w.join_at(edges.0, "alice", true);
    let b = w.join_at(edges.0, "bob", true);
    let c = w.join_at(edges.1, "carol", false);
    w.constraints(c, Some(1), vec!["alice"], None);
    w.run_for(Duration::from_secs(3));
    let flowing = w.clients[c]
        .video_tracks()
        .filter(|t| !t.frames.is_empty())
        .count();
    assert_eq!(flowing, 1, "last-N 1: one video flows");
    for round in 0..3 {
        let (to, name) = if round % 2 == 0 {
            (b, "bob")
        } else {
            (a, "alice")
        };
        let sent_to = w.clients[to].sent_frames;
        w.constraints(c, Some(1), vec![name], None);
        w.run_for(Duration::from_secs(2));
        let carol = &w.clients[c];
        // The track that received frames last is the newly pinned one.
        let now = carol
            .video_tracks()
            .max_by_key(|t| t.last_at)
            .expect("a video track");
        let resumed = now
            .frames
            .iter()
            .position(|f| *f >= sent_to)
            .map(|i| now.frames[i])
            .unwrap_or_else(|| panic!("round {round}: no frame of {name} after the pin moved"));
        assert!(
            now.keyframes.contains(&resumed),
            "round {round}: {name}'s video resumes at a keyframe (frame {resumed}; keyframes {:?})",
            now.keyframes
        );
        assert!(
            resumed - sent_to < 15,
            "round {round}: {name}'s video came {} frames after the pin moved",
            resumed - sent_to
        );
        let gapless = now.frames.iter().filter(|f| **f >= resumed).count() as u32;
        assert!(
            gapless + 3 >= w.clients[to].sent_frames - resumed,
            "round {round}: {name}'s frames after the switch are all there"
        );
    }
}

#[test]
fn last_n_moves_with_the_pin_on_one_edge() {
    last_n_follows_the_pin(&Setup::default(), (0, 0));
}

#[test]
fn last_n_moves_with_the_pin_across_the_link() {
    last_n_follows_the_pin(&two_edges(), (0, 1));
}

#[test]
fn the_same_seed_gives_the_same_meeting() {
    let run = || {
        let setup = Setup {
            workers: 2,
            spread_above: Some(2),
            loss_ppm: 5_000,
            seed: 7,
            ..Setup::default()
        };
        let mut w = World::new(&setup);
        w.join("alice", true);
        w.join("bob", true);
        w.join("carol", false);
        w.run_for(Duration::from_secs(4));
        (summary(&w), w.net.sent, w.net.lost)
    };
    let first = run();
    assert!(first.2 > 0, "the run lost packets: loss is exercised");
    assert_eq!(first, run());
    let across = || {
        let setup = Setup {
            loss_ppm: 5_000,
            seed: 11,
            ..two_edges()
        };
        let mut w = World::new(&setup);
        w.join_at(0, "alice", true);
        w.join_at(1, "bob", true);
        w.join_at(1, "carol", false);
        w.run_for(Duration::from_secs(4));
        (summary(&w), w.net.sent, w.net.lost)
    };
    assert_eq!(across(), across());
}
