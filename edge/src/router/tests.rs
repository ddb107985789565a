use super::*;
use std::time::Instant;

fn conf(s: &str) -> ConferenceId {
    s.parse().unwrap()
}

fn info(k: u64, pid: &str, role: Role) -> PeerInfo {
    PeerInfo {
        key: PeerKey(k),
        participant: pid.parse().unwrap(),
        name: Some(pid.to_uppercase()),
        role,
    }
}

fn drain(r: &mut Router) -> Vec<RouterEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

const A: PeerKey = PeerKey(1);
const B: PeerKey = PeerKey(2);
const C: PeerKey = PeerKey(3);

#[test]
fn members_receive_each_other_including_earlier_sources() {
    let mut r = Router::default();
    r.join(conf("c"), info(1, "a", Role::Member)).unwrap();
    let a_audio = r.add_source(Instant::now(), A, Kind::Audio).unwrap();
    let a_video = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    assert!(drain(&mut r).is_empty(), "nobody to tell yet");

    r.join(conf("c"), info(2, "b", Role::Member)).unwrap();
    assert_eq!(
        drain(&mut r),
        vec![
            RouterEvent::Joined { to: A, peer: B },
            RouterEvent::Subscribe {
                to: B,
                source: a_audio,
                owner: A,
                kind: Kind::Audio,
                forwarded: true
            },
            RouterEvent::Subscribe {
                to: B,
                source: a_video,
                owner: A,
                kind: Kind::Video,
                forwarded: true
            },
        ]
    );
    let b_video = r.add_source(Instant::now(), B, Kind::Video).unwrap();
    assert_eq!(
        drain(&mut r),
        vec![RouterEvent::Subscribe {
            to: A,
            source: b_video,
            owner: B,
            kind: Kind::Video,
            forwarded: true
        }]
    );
    assert_eq!(r.subscribers(a_video), &[B]);
    assert_eq!(r.subscribers(b_video), &[A]);
    assert_eq!(
        r.roster(A).iter().map(|i| i.key).collect::<Vec<_>>(),
        vec![B]
    );
}

#[test]
fn conferences_are_isolated() {
    let mut r = Router::default();
    r.join(conf("one"), info(1, "a", Role::Member)).unwrap();
    r.join(conf("two"), info(2, "b", Role::Member)).unwrap();
    let s = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    assert!(r.subscribers(s).is_empty());
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.counts(), (2, 2));
}

#[test]
fn leaving_unsubscribes_and_tells_the_roster() {
    let mut r = Router::default();
    r.join(conf("c"), info(1, "a", Role::Member)).unwrap();
    r.join(conf("c"), info(2, "b", Role::Member)).unwrap();
    r.join(conf("c"), info(3, "c", Role::Member)).unwrap();
    let a_video = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    drain(&mut r);
    r.leave(A).unwrap();
    assert_eq!(
        drain(&mut r),
        vec![
            RouterEvent::Unsubscribe {
                to: B,
                source: a_video
            },
            RouterEvent::Unsubscribe {
                to: C,
                source: a_video
            },
            RouterEvent::Left { to: B, peer: A },
            RouterEvent::Left { to: C, peer: A },
        ]
    );
    assert!(r.subscribers(a_video).is_empty());
    assert_eq!(r.leave(A), Err(RouterError::UnknownPeer(A)));
    r.leave(B).unwrap();
    r.leave(C).unwrap();
    assert_eq!(r.counts(), (0, 0), "empty conferences are dropped");
}

#[test]
fn events_for_a_departed_peer_are_dropped() {
    let mut r = Router::default();
    r.join(conf("c"), info(1, "a", Role::Member)).unwrap();
    r.add_source(Instant::now(), A, Kind::Video).unwrap();
    r.join(conf("c"), info(2, "b", Role::Member)).unwrap();
    r.leave(B).unwrap();
    // B's pending Subscribe is gone; A still hears B come and go.
    assert_eq!(
        drain(&mut r),
        vec![
            RouterEvent::Joined { to: A, peer: B },
            RouterEvent::Left { to: A, peer: B }
        ]
    );
}

#[test]
fn whip_publishers_do_not_receive_and_whep_viewers_follow_the_latest_publisher() {
    let mut r = Router::default();
    r.join(conf("c"), info(1, "pub1", Role::Publisher)).unwrap();
    let p1_a = r.add_source(Instant::now(), A, Kind::Audio).unwrap();
    let p1_v = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    r.join(conf("c"), info(2, "pub2", Role::Publisher)).unwrap();
    let p2_v = r.add_source(Instant::now(), B, Kind::Video).unwrap();
    drain(&mut r);
    assert!(
        r.subscribers(p1_v).is_empty(),
        "a publisher receives nothing"
    );

    r.join(conf("c"), info(3, "viewer", Role::Viewer { follow: None }))
        .unwrap();
    assert_eq!(
        drain(&mut r),
        vec![RouterEvent::Subscribe {
            to: C,
            source: p2_v,
            owner: B,
            kind: Kind::Video,
            forwarded: true
        }],
        "the most recent publisher"
    );
    // pub2's publisher goes: the viewer moves to pub1.
    r.leave(B).unwrap();
    let ev = drain(&mut r);
    assert!(ev.contains(&RouterEvent::Subscribe {
        to: C,
        source: p1_a,
        owner: A,
        kind: Kind::Audio,
        forwarded: true
    }));
    assert!(ev.contains(&RouterEvent::Subscribe {
        to: C,
        source: p1_v,
        owner: A,
        kind: Kind::Video,
        forwarded: true
    }));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, RouterEvent::Joined { .. } | RouterEvent::Left { .. })),
        "no roster for publishers"
    );
    assert_eq!(
        r.add_source(Instant::now(), C, Kind::Video),
        Err(RouterError::ViewerCannotPublish)
    );
}

#[test]
fn named_viewer_waits_for_its_publisher_and_takes_one_source_per_kind() {
    let mut r = Router::default();
    r.join(
        conf("c"),
        info(
            3,
            "v",
            Role::Viewer {
                follow: Some("alice".parse().unwrap()),
            },
        ),
    )
    .unwrap();
    r.join(conf("c"), info(2, "bob", Role::Publisher)).unwrap();
    r.add_source(Instant::now(), B, Kind::Video).unwrap();
    assert!(drain(&mut r).is_empty(), "not alice");
    r.join(conf("c"), info(1, "alice", Role::Publisher))
        .unwrap();
    let v1 = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    let v2 = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    let a = r.add_source(Instant::now(), A, Kind::Audio).unwrap();
    assert_eq!(r.subscribers(v1), &[C]);
    assert!(
        r.subscribers(v2).is_empty(),
        "a second video (screen share) is not sent to WHEP"
    );
    assert_eq!(r.subscribers(a), &[C]);
}

#[test]
fn rejoining_participant_replaces_its_old_session() {
    let mut r = Router::default();
    assert_eq!(r.join(conf("c"), info(1, "a", Role::Member)), Ok(None));
    assert_eq!(r.join(conf("c"), info(2, "a", Role::Member)), Ok(Some(A)));
    assert_eq!(
        r.join(conf("c"), info(2, "z", Role::Member)),
        Err(RouterError::DuplicateKey(B))
    );
}

#[test]
fn keyframe_requests_are_rate_limited_per_source() {
    let mut r = Router::new(Duration::from_millis(500));
    r.join(conf("c"), info(1, "a", Role::Member)).unwrap();
    let s = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    let t0 = Instant::now();
    assert!(r.keyframe_request(t0, s));
    assert!(!r.keyframe_request(t0 + Duration::from_millis(100), s));
    assert!(!r.keyframe_request(t0 + Duration::from_millis(499), s));
    assert!(r.keyframe_request(t0 + Duration::from_millis(500), s));
    assert!(!r.keyframe_request(t0, SourceId(999)), "unknown source");
}

#[test]
fn a_keyframe_request_within_the_interval_is_deferred_not_dropped() {
    let mut r = Router::new(Duration::from_millis(500));
    r.join(conf("c"), info(1, "a", Role::Member)).unwrap();
    let s = r.add_source(Instant::now(), A, Kind::Video).unwrap();
    while r.poll_event().is_some() {}
    let t0 = Instant::now();
    assert!(r.keyframe_request(t0, s));
    assert_eq!(r.poll_timeout(), None, "nothing deferred yet");
    // Two more within the interval: one deferred request, due at its end.
    assert!(!r.keyframe_request(t0 + Duration::from_millis(100), s));
    assert!(!r.keyframe_request(t0 + Duration::from_millis(200), s));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    r.handle_timeout(t0 + Duration::from_millis(400));
    assert_eq!(r.poll_event(), None, "not before the interval is over");
    r.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(r.poll_event(), Some(RouterEvent::KeyframeDue { source: s }));
    assert_eq!(r.poll_event(), None);
    assert!(
        r.keyframe_request(t0 + Duration::from_millis(500), s),
        "now it goes"
    );
    assert_eq!(r.poll_timeout(), None);
}

/// Feeds `loud` a speech level and everyone else silence for `ms`
/// milliseconds of virtual time, ticking the router as it asks.
fn talk(r: &mut Router, now: &mut Instant, loud: PeerKey, others: &[PeerKey], ms: u64) {
    let end = *now + Duration::from_millis(ms);
    while *now < end {
        r.handle_audio_level(*now, loud, 20);
        for &o in others {
            r.handle_audio_level(*now, o, crate::speaker::SILENCE);
        }
        *now += Duration::from_millis(20);
        if r.poll_timeout().is_some_and(|t| t <= *now) {
            r.handle_timeout(*now);
        }
    }
}

fn forwarded_video(ev: &[RouterEvent], to: PeerKey, on: bool) -> Vec<SourceId> {
    ev.iter()
        .filter_map(|e| match e {
            RouterEvent::Forward {
                to: t,
                source,
                on: o,
            } if *t == to && *o == on => Some(*source),
            _ => None,
        })
        .collect()
}

#[test]
fn last_n_two_of_four_publishers_follow_the_speaker() {
    let mut r = Router::default();
    let c = conf("big");
    let pubs: Vec<PeerKey> = (1..=4).map(PeerKey).collect();
    let mut video = Vec::new();
    for (i, &k) in pubs.iter().enumerate() {
        r.join(c.clone(), info(k.0, &format!("p{i}"), Role::Member))
            .unwrap();
        r.add_source(Instant::now(), k, Kind::Audio).unwrap();
        video.push(r.add_source(Instant::now(), k, Kind::Video).unwrap());
    }
    let s = PeerKey(9);
    r.join(c.clone(), info(9, "sub", Role::Member)).unwrap();
    r.set_receiver(s, Some(2), Vec::new()).unwrap();
    let ev = drain(&mut r);
    // Tracks for all 8 sources, video forwarded for exactly 2 publishers.
    let subs: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, RouterEvent::Subscribe { to, .. } if *to == s))
        .collect();
    assert_eq!(subs.len(), 8);
    assert_eq!(r.selected(s).len(), 2);
    let on: std::collections::HashSet<SourceId> = ev
        .iter()
        .filter_map(|e| match e {
            RouterEvent::Subscribe {
                to,
                source,
                kind: Kind::Video,
                forwarded: true,
                ..
            } if *to == s => Some(*source),
            RouterEvent::Forward {
                to,
                source,
                on: true,
            } if *to == s => Some(*source),
            _ => None,
        })
        .filter(|src| !forwarded_video(&ev, s, false).contains(src))
        .collect();
    assert_eq!(on.len(), 2, "{ev:?}");
    assert!(
        !r.selected(s).contains(&pubs[3]),
        "join order fills the slots first"
    );

    // The fourth publisher speaks: it becomes dominant, everyone is told,
    // and the subscriber's video switches to include it.
    let mut now = Instant::now();
    talk(&mut r, &mut now, pubs[3], &pubs[..3], 3000);
    assert_eq!(r.dominant_speaker(&c), Some(pubs[3]));
    let ev = drain(&mut r);
    assert!(ev.contains(&RouterEvent::DominantSpeaker {
        to: s,
        peer: pubs[3]
    }));
    assert!(ev.contains(&RouterEvent::DominantSpeaker {
        to: pubs[0],
        peer: pubs[3]
    }));
    assert_eq!(r.selected(s).len(), 2);
    assert_eq!(r.selected(s)[0], pubs[3]);
    assert_eq!(forwarded_video(&ev, s, true), vec![video[3]]);
    assert_eq!(forwarded_video(&ev, s, false).len(), 1);
    assert!(r.is_forwarded(video[3]));

    // Then the second one takes over.
    talk(
        &mut r,
        &mut now,
        pubs[1],
        &[pubs[0], pubs[2], pubs[3]],
        3000,
    );
    assert_eq!(r.dominant_speaker(&c), Some(pubs[1]));
    assert_eq!(r.selected(s)[0], pubs[1]);
    assert!(
        r.selected(s).contains(&pubs[3]),
        "the previous speaker stays in the last 2"
    );
}

#[test]
fn pinned_participants_are_forwarded_whoever_speaks() {
    let mut r = Router::default();
    let c = conf("pins");
    for k in 1..=3 {
        r.join(c.clone(), info(k, &format!("p{k}"), Role::Member))
            .unwrap();
        r.add_source(Instant::now(), PeerKey(k), Kind::Audio)
            .unwrap();
        r.add_source(Instant::now(), PeerKey(k), Kind::Video)
            .unwrap();
    }
    r.join(c.clone(), info(9, "sub", Role::Member)).unwrap();
    r.set_receiver(PeerKey(9), Some(1), vec!["p3".parse().unwrap()])
        .unwrap();
    assert_eq!(r.selected(PeerKey(9)), &[PeerKey(3)]);
    let mut now = Instant::now();
    talk(
        &mut r,
        &mut now,
        PeerKey(1),
        &[PeerKey(2), PeerKey(3)],
        3000,
    );
    assert_eq!(r.dominant_speaker(&c), Some(PeerKey(1)));
    assert_eq!(r.selected(PeerKey(9)), &[PeerKey(3)]);
    // Last-N 0: nothing.
    r.set_receiver(PeerKey(9), Some(0), Vec::new()).unwrap();
    assert!(r.selected(PeerKey(9)).is_empty());
}

#[test]
fn a_viewer_without_a_named_participant_follows_the_dominant_speaker() {
    let mut r = Router::default();
    let c = conf("follow");
    let mut video = Vec::new();
    for k in 1..=2 {
        r.join(c.clone(), info(k, &format!("p{k}"), Role::Publisher))
            .unwrap();
        r.add_source(Instant::now(), PeerKey(k), Kind::Audio)
            .unwrap();
        video.push(
            r.add_source(Instant::now(), PeerKey(k), Kind::Video)
                .unwrap(),
        );
    }
    r.join(c.clone(), info(9, "viewer", Role::Viewer { follow: None }))
        .unwrap();
    drain(&mut r);
    assert_eq!(
        r.subscribers(video[1]),
        &[PeerKey(9)],
        "the most recent publisher first"
    );
    let mut now = Instant::now();
    talk(&mut r, &mut now, PeerKey(1), &[PeerKey(2)], 3000);
    let ev = drain(&mut r);
    assert!(ev.contains(&RouterEvent::Unsubscribe {
        to: PeerKey(9),
        source: video[1]
    }));
    assert_eq!(r.subscribers(video[0]), &[PeerKey(9)]);
    assert!(r.subscribers(video[1]).is_empty());
}

#[test]
fn a_participant_moving_between_edges_is_shown_once_and_never_to_itself() {
    let mut r = Router::default();
    let remote = |edge: &str| Role::Remote {
        edge: edge.parse().unwrap(),
    };
    r.join(conf("c"), info(1, "a", Role::Member)).unwrap();
    // b on edge-1, mirrored here.
    r.join(conf("c"), info(2, "b", remote("edge-1"))).unwrap();
    let old_video = r.add_source(Instant::now(), B, Kind::Video).unwrap();
    drain(&mut r);
    // b moves: its new session (edge-2) appears before the old one goes.
    r.join(conf("c"), info(3, "b", remote("edge-2"))).unwrap();
    let new_video = r.add_source(Instant::now(), C, Kind::Video).unwrap();
    let ev = drain(&mut r);
    assert!(
        ev.contains(&RouterEvent::Joined { to: A, peer: C }),
        "an update of b's entry: {ev:?}"
    );
    let roster: Vec<PeerKey> = r.roster(A).iter().map(|i| i.key).collect();
    assert_eq!(roster, vec![C], "b once, its newest session");
    assert_eq!(r.subscribers(new_video), &[A]);
    // The old session goes: a is told of the newer one, not of a departure.
    r.leave(B).unwrap();
    let ev = drain(&mut r);
    assert!(
        ev.contains(&RouterEvent::Joined { to: A, peer: C }),
        "{ev:?}"
    );
    assert!(
        !ev.iter().any(|e| matches!(e, RouterEvent::Left { .. })),
        "{ev:?}"
    );
    assert!(r.subscribers(old_video).is_empty());
    // a itself moving: its other session never receives a's own media.
    r.join(conf("c"), info(4, "a", remote("edge-3"))).unwrap();
    let a_far = r
        .add_source(Instant::now(), PeerKey(4), Kind::Video)
        .unwrap();
    let ev = drain(&mut r);
    assert!(r.subscribers(a_far).is_empty(), "{ev:?}");
    assert!(
        !ev.iter()
            .any(|e| matches!(e, RouterEvent::Joined { to, .. } if *to == A)),
        "a is never told about itself: {ev:?}"
    );
    assert!(r.roster(A).iter().all(|i| i.participant.as_str() != "a"));
    // When b's last session leaves, a is told.
    r.leave(C).unwrap();
    assert!(drain(&mut r).contains(&RouterEvent::Left { to: A, peer: C }));
}
