use super::*;

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
    let a_audio = r.add_source(A, Kind::Audio).unwrap();
    let a_video = r.add_source(A, Kind::Video).unwrap();
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
                kind: Kind::Audio
            },
            RouterEvent::Subscribe {
                to: B,
                source: a_video,
                owner: A,
                kind: Kind::Video
            },
        ]
    );
    let b_video = r.add_source(B, Kind::Video).unwrap();
    assert_eq!(
        drain(&mut r),
        vec![RouterEvent::Subscribe {
            to: A,
            source: b_video,
            owner: B,
            kind: Kind::Video
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
    let s = r.add_source(A, Kind::Video).unwrap();
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
    let a_video = r.add_source(A, Kind::Video).unwrap();
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
    r.add_source(A, Kind::Video).unwrap();
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
    let p1_a = r.add_source(A, Kind::Audio).unwrap();
    let p1_v = r.add_source(A, Kind::Video).unwrap();
    r.join(conf("c"), info(2, "pub2", Role::Publisher)).unwrap();
    let p2_v = r.add_source(B, Kind::Video).unwrap();
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
            kind: Kind::Video
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
        kind: Kind::Audio
    }));
    assert!(ev.contains(&RouterEvent::Subscribe {
        to: C,
        source: p1_v,
        owner: A,
        kind: Kind::Video
    }));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, RouterEvent::Joined { .. } | RouterEvent::Left { .. })),
        "no roster for publishers"
    );
    assert_eq!(
        r.add_source(C, Kind::Video),
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
    r.add_source(B, Kind::Video).unwrap();
    assert!(drain(&mut r).is_empty(), "not alice");
    r.join(conf("c"), info(1, "alice", Role::Publisher))
        .unwrap();
    let v1 = r.add_source(A, Kind::Video).unwrap();
    let v2 = r.add_source(A, Kind::Video).unwrap();
    let a = r.add_source(A, Kind::Audio).unwrap();
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
    let s = r.add_source(A, Kind::Video).unwrap();
    let t0 = Instant::now();
    assert!(r.keyframe_request(t0, s));
    assert!(!r.keyframe_request(t0 + Duration::from_millis(100), s));
    assert!(!r.keyframe_request(t0 + Duration::from_millis(499), s));
    assert!(r.keyframe_request(t0 + Duration::from_millis(500), s));
    assert!(!r.keyframe_request(t0, SourceId(999)), "unknown source");
}
