use super::*;
use crate::state::command::{ApplyError, Command, Op, OpResult};

fn e(s: &str) -> EdgeId {
    EdgeId::new(s).unwrap()
}
fn c(s: &str) -> ConferenceId {
    ConferenceId::new(s).unwrap()
}
fn p(s: &str) -> ParticipantId {
    ParticipantId::new(s).unwrap()
}
fn pref(conf: &str, part: &str) -> ParticipantRef {
    ParticipantRef::new(c(conf), p(part))
}

fn register(edge: &str, boot: &str) -> Op {
    Op::RegisterEdge {
        edge: e(edge),
        region: RegionId::new("eu").unwrap(),
        location: GeoPoint::new(50.0, 8.0).unwrap(),
        capacity: 100,
        base_url: format!("http://{edge}.test"),
        boot_id: boot.into(),
        lease_ms: 60_000,
        public_ip: None,
        runtime: false,
    }
}

fn join(conf: &str, part: &str, edge: &str) -> Op {
    Op::Join {
        conference: c(conf),
        participant: p(part),
        edge: e(edge),
        lease_ms: 10_000,
        max_edges: Some(2),
        reassign_from: None,
    }
}

fn run(s: &mut SelectorState, now_ms: u64, ops: Vec<Op>) -> Vec<OpResult> {
    let r = s.apply(&Command { now_ms, ops }).results;
    s.check_invariants().unwrap();
    r
}

fn placed(edge: &str, created: bool) -> OpResult {
    OpResult::Placed {
        edge: e(edge),
        created,
    }
}

fn cluster() -> SelectorState {
    let mut s = SelectorState::new();
    run(
        &mut s,
        1_000,
        vec![
            register("a", "b1"),
            register("b", "b1"),
            register("x", "b1"),
        ],
    );
    s
}

#[test]
fn join_is_idempotent_by_participant() {
    let mut s = cluster();
    let r = run(
        &mut s,
        2_000,
        vec![join("standup", "ada", "a"), join("standup", "ada", "b")],
    );
    assert_eq!(r, vec![placed("a", true), placed("a", false)]);
    assert_eq!(s.participant_count(), 1);
    assert_eq!(s.participants_on(&e("a")), 1);
    // Same participant id in another conference is another participant.
    let r = run(&mut s, 2_001, vec![join("retro", "ada", "b")]);
    assert_eq!(r, vec![placed("b", true)]);
}

#[test]
fn unknown_or_draining_edges_change_nothing() {
    let mut s = cluster();
    let before = s.clone();
    let r = run(
        &mut s,
        2_000,
        vec![
            join("standup", "ada", "nope"),
            Op::SetDraining {
                edge: e("nope"),
                draining: true,
                migrate: false,
            },
        ],
    );
    assert_eq!(
        r,
        vec![
            OpResult::Rejected(ApplyError::UnknownEdge(e("nope"))),
            OpResult::Rejected(ApplyError::UnknownEdge(e("nope")))
        ]
    );
    assert_eq!(s.edges(), before.edges());
    assert_eq!(s.participant_count(), 0);
    run(
        &mut s,
        2_001,
        vec![Op::SetDraining {
            edge: e("a"),
            draining: true,
            migrate: false,
        }],
    );
    let r = run(&mut s, 2_002, vec![join("standup", "ada", "a")]);
    assert_eq!(
        r,
        vec![OpResult::Rejected(ApplyError::EdgeDraining(e("a")))]
    );
    assert_eq!(s.participant_count(), 0);
}

#[test]
fn cap_on_edges_per_conference() {
    let mut s = cluster();
    let r = run(
        &mut s,
        2_000,
        vec![
            join("m", "p1", "a"),
            join("m", "p2", "b"),
            join("m", "p3", "x"),
            join("m", "p4", "a"),
        ],
    );
    assert_eq!(
        r[2],
        OpResult::Rejected(ApplyError::ConferenceFull {
            conference: c("m"),
            max_edges: 2
        })
    );
    assert_eq!(r[3], placed("a", true));
    assert_eq!(s.conference_edges(&c("m")).unwrap().len(), 2);
}

#[test]
fn reassign_moves_only_from_the_named_edge() {
    let mut s = cluster();
    run(&mut s, 2_000, vec![join("m", "p1", "a")]);
    let mut mv = join("m", "p1", "b");
    if let Op::Join { reassign_from, .. } = &mut mv {
        *reassign_from = Some(e("x"));
    }
    assert_eq!(
        run(&mut s, 2_001, vec![mv.clone()]),
        vec![placed("a", false)]
    );
    if let Op::Join { reassign_from, .. } = &mut mv {
        *reassign_from = Some(e("a"));
    }
    assert_eq!(run(&mut s, 2_002, vec![mv]), vec![placed("b", true)]);
    assert_eq!(s.participants_on(&e("a")), 0);
    assert_eq!(s.participants_on(&e("b")), 1);
    assert!(s.conference_edges(&c("m")).unwrap().get(&e("a")).is_none());
}

#[test]
fn unconfirmed_leases_lapse_deterministically() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![join("m", "p1", "a"), join("m", "p2", "a")],
    );
    run(
        &mut s,
        3_000,
        vec![Op::Joined {
            edge: e("a"),
            participants: vec![pref("m", "p1")],
        }],
    );
    // p2's lease (10 s from t=2 s) lapses at 12 s; a join at 12 s re-places it.
    assert!(s.participant(&c("m"), &p("p2"), 11_999).is_some());
    assert!(s.participant(&c("m"), &p("p2"), 12_000).is_none());
    let r = run(
        &mut s,
        12_000,
        vec![Op::Maintain {
            live_edges: vec![e("a"), e("b"), e("x")],
            edge_lease_ms: 60_000,
            unhealthy: vec![],
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::Maintained {
            renewed: 3,
            released: 1
        }]
    );
    assert!(
        s.participant(&c("m"), &p("p1"), 1_000_000).is_some(),
        "confirmed stays"
    );
}

#[test]
fn time_never_goes_backwards() {
    let mut s = cluster();
    run(&mut s, 50_000, vec![]);
    // A new leader with a slow clock: leases still count from 50 s.
    run(&mut s, 10_000, vec![join("m", "p1", "a")]);
    assert_eq!(s.clock_ms(), 50_000);
    assert!(s.participant(&c("m"), &p("p1"), 59_999).is_some());
}

#[test]
fn edge_lease_lapse_releases_its_participants() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![join("m", "p1", "a"), join("m", "p2", "b")],
    );
    run(
        &mut s,
        3_000,
        vec![Op::Joined {
            edge: e("a"),
            participants: vec![pref("m", "p1")],
        }],
    );
    // Only b is renewed; a's registration lease (60 s from 1 s) lapses.
    let r = run(
        &mut s,
        61_000,
        vec![Op::Maintain {
            live_edges: vec![e("b")],
            edge_lease_ms: 60_000,
            unhealthy: vec![],
        }],
    );
    // p1 (on lapsed a) and p2 (unconfirmed, lease lapsed) are both released.
    assert_eq!(
        r,
        vec![OpResult::Maintained {
            renewed: 1,
            released: 2
        }]
    );
    assert_eq!(s.participant_count(), 0);
    assert!(s.octo_peers(&e("a")).is_empty());
}

#[test]
fn restart_releases_and_keeps_draining() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            join("m", "p1", "a"),
            join("m", "p2", "b"),
            Op::Joined {
                edge: e("a"),
                participants: vec![pref("m", "p1")],
            },
            Op::SetDraining {
                edge: e("a"),
                draining: true,
                migrate: false,
            },
        ],
    );
    let r = run(&mut s, 3_000, vec![register("a", "b1")]);
    assert_eq!(
        r,
        vec![OpResult::Registered {
            restarted: false,
            released: 0,
            draining: true
        }]
    );
    let r = run(&mut s, 3_001, vec![register("a", "b2")]);
    assert_eq!(
        r,
        vec![OpResult::Registered {
            restarted: true,
            released: 1,
            draining: true
        }]
    );
    assert_eq!(s.participant_count(), 1);
}

#[test]
fn reports_confirm_move_and_release() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![join("m", "p1", "a"), join("m", "p2", "b")],
    );
    assert_eq!(s.octo_peers(&e("a")).get(&c("m")), Some(&vec![e("b")]));
    // p2 actually connected to a (a fallback): the edge is the truth.
    let r = run(
        &mut s,
        2_100,
        vec![Op::Joined {
            edge: e("a"),
            participants: vec![pref("m", "p1"), pref("m", "p2")],
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::Reported {
            recorded: 2,
            ignored: 0,
            moved: vec![]
        }]
    );
    assert_eq!(s.participants_on(&e("a")), 2);
    assert_eq!(s.octo_peers(&e("a")).get(&c("m")), Some(&vec![]));
    let r = run(
        &mut s,
        2_200,
        vec![Op::Left {
            edge: e("b"),
            participants: vec![pref("m", "p1"), pref("zz", "nobody")],
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::Reported {
            recorded: 0,
            ignored: 2,
            moved: vec![]
        }]
    );
    let r = run(
        &mut s,
        2_300,
        vec![Op::Left {
            edge: e("a"),
            participants: vec![pref("m", "p1"), pref("m", "p2")],
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::Reported {
            recorded: 2,
            ignored: 0,
            moved: vec![]
        }]
    );
    assert!(s.conferences().is_empty());
    let before = s.clone();
    let r = run(
        &mut s,
        2_400,
        vec![Op::Joined {
            edge: e("ghost"),
            participants: vec![pref("m", "p1")],
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::Rejected(ApplyError::UnknownEdge(e("ghost")))]
    );
    assert_eq!(s.participant_count(), before.participant_count());
}

#[test]
fn snapshot_round_trip_rebuilds_indexes() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            join("m", "p1", "a"),
            join("m", "p2", "b"),
            join("n", "p1", "a"),
        ],
    );
    let json = serde_json::to_vec(&s).unwrap();
    let mut back: SelectorState = serde_json::from_slice(&json).unwrap();
    back.rebuild_indexes();
    assert_eq!(back, s);
    back.check_invariants().unwrap();
}

/// A long pseudo-random sequence keeps every invariant, and two replicas
/// applying the same log agree.
#[test]
fn random_log_keeps_invariants_and_replicas_agree() {
    let mut a = cluster();
    let mut b = cluster();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let edges = ["a", "b", "x", "ghost"];
    for step in 0..2_000u64 {
        let conf = format!("c{}", next(7));
        let part = format!("p{}", next(40));
        let edge = edges[next(4) as usize];
        let op = match next(6) {
            0 | 1 => join(&conf, &part, edge),
            2 => Op::Joined {
                edge: e(edge),
                participants: vec![pref(&conf, &part)],
            },
            3 => Op::Left {
                edge: e(edge),
                participants: vec![pref(&conf, &part)],
            },
            4 => Op::Maintain {
                live_edges: vec![e(edges[next(3) as usize])],
                edge_lease_ms: 30_000,
                unhealthy: vec![],
            },
            _ => Op::SetDraining {
                edge: e(edge),
                draining: next(2) == 0,
                migrate: false,
            },
        };
        let cmd = Command {
            now_ms: 1_000 + step * 97,
            ops: vec![op],
        };
        assert_eq!(a.apply(&cmd), b.apply(&cmd));
        a.check_invariants().unwrap();
    }
    assert_eq!(a, b);
}

fn since(conf: &str, part: &str, ms: u64) -> ParticipantRef {
    ParticipantRef {
        since_ms: Some(ms),
        ..pref(conf, part)
    }
}

fn joined_on(edge: &str, refs: Vec<ParticipantRef>) -> Op {
    Op::Joined {
        edge: e(edge),
        participants: refs,
    }
}

#[test]
fn the_newer_session_of_a_participant_wins() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![joined_on("a", vec![since("m", "ada", 100)])],
    );
    // Moved to b by a newer session: recorded there.
    run(
        &mut s,
        2_100,
        vec![joined_on("b", vec![since("m", "ada", 200)])],
    );
    assert_eq!(
        s.participant(&c("m"), &p("ada"), 2_100).unwrap().edge,
        e("b")
    );
    // a's late report of its old session does not take it back: it is told.
    let r = run(
        &mut s,
        2_200,
        vec![joined_on("a", vec![since("m", "ada", 100)])],
    );
    assert_eq!(
        r,
        vec![OpResult::Reported {
            recorded: 0,
            ignored: 0,
            moved: vec![since("m", "ada", 100)],
        }]
    );
    assert_eq!(
        s.participant(&c("m"), &p("ada"), 2_200).unwrap().edge,
        e("b")
    );
    // A session newer than the one recorded moves it back.
    run(
        &mut s,
        2_300,
        vec![joined_on("a", vec![since("m", "ada", 300)])],
    );
    assert_eq!(
        s.participant(&c("m"), &p("ada"), 2_300).unwrap().edge,
        e("a")
    );
}

#[test]
fn digests_follow_confirmed_placements() {
    use geomesh_core::agent::participant_digest;
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            join("m", "ada", "a"),
            join("m", "bob", "a"),
            joined_on("a", vec![pref("m", "ada")]),
        ],
    );
    let (m, ada, bob) = (c("m"), p("ada"), p("bob"));
    assert_eq!(
        s.digest(&e("a")),
        participant_digest([(&m, &ada)]),
        "bob is not confirmed"
    );
    run(&mut s, 2_001, vec![joined_on("a", vec![pref("m", "bob")])]);
    assert_eq!(
        s.digest(&e("a")),
        participant_digest([(&m, &ada), (&m, &bob)])
    );
    run(
        &mut s,
        2_002,
        vec![Op::Left {
            edge: e("a"),
            participants: vec![pref("m", "ada")],
        }],
    );
    assert_eq!(s.digest(&e("a")), participant_digest([(&m, &bob)]));
    assert_eq!(s.digest(&e("b")), 0);
}

#[test]
fn drains_release_unused_placements_and_leaving_ends_with_the_process() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            join("m", "ada", "a"),
            join("m", "bob", "a"),
            joined_on("a", vec![pref("m", "ada")]),
        ],
    );
    let r = run(
        &mut s,
        2_001,
        vec![Op::Leave {
            edge: e("a"),
            boot_id: "b1".into(),
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::EdgeChanged { released: 1 }],
        "bob never connected"
    );
    let rec = s.edge(&e("a")).unwrap();
    assert!(rec.draining && rec.migrate && rec.leaving);
    assert!(
        s.participant(&c("m"), &p("ada"), 2_001).is_some(),
        "ada stays until she moves"
    );
    // Another process cannot say the edge is leaving.
    let r = run(
        &mut s,
        2_002,
        vec![Op::Leave {
            edge: e("b"),
            boot_id: "other".into(),
        }],
    );
    assert_eq!(r, vec![OpResult::Rejected(ApplyError::StaleBoot(e("b")))]);
    // The restarted edge is back in service.
    run(&mut s, 3_000, vec![register("a", "b2")]);
    let rec = s.edge(&e("a")).unwrap();
    assert!(!rec.draining && !rec.migrate && !rec.leaving);
    // An operator's drain survives both a leave and a restart.
    run(
        &mut s,
        3_001,
        vec![
            Op::SetDraining {
                edge: e("a"),
                draining: true,
                migrate: false,
            },
            Op::Leave {
                edge: e("a"),
                boot_id: "b2".into(),
            },
            register("a", "b3"),
        ],
    );
    assert!(s.edge(&e("a")).unwrap().draining);
}

#[test]
fn removed_edges_leave_and_their_process_stays_out() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            joined_on("a", vec![pref("m", "ada")]),
            join("m", "bob", "b"),
        ],
    );
    let v = s.edges_version();
    let r = run(&mut s, 2_001, vec![Op::RemoveEdge { edge: e("a") }]);
    assert_eq!(r, vec![OpResult::EdgeChanged { released: 1 }]);
    assert!(s.edge(&e("a")).is_none());
    assert!(s.edges_version() > v);
    assert!(s.participant(&c("m"), &p("ada"), 2_001).is_none());
    let r = run(&mut s, 2_002, vec![register("a", "b1")]);
    assert_eq!(r, vec![OpResult::Rejected(ApplyError::Removed(e("a")))]);
    let r = run(&mut s, 2_003, vec![register("a", "b2")]);
    assert!(
        matches!(r[0], OpResult::Registered { .. }),
        "a restart may come back"
    );
    assert_eq!(s.removed_boot(&e("a")), None);
}

fn runtime_edge(edge: &str) -> Op {
    let mut op = register(edge, "b1");
    if let Op::RegisterEdge { runtime, .. } = &mut op {
        *runtime = true;
    }
    op
}

#[test]
fn unhealthy_edges_lose_their_placements_at_once_and_runtime_edges_are_forgotten() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            joined_on("a", vec![pref("m", "ada")]),
            joined_on("b", vec![pref("m", "bob")]),
            runtime_edge("new"),
        ],
    );
    let r = run(
        &mut s,
        2_500,
        vec![Op::Maintain {
            live_edges: vec![e("b"), e("x"), e("new")],
            edge_lease_ms: 60_000,
            unhealthy: vec![e("a")],
        }],
    );
    assert_eq!(
        r,
        vec![OpResult::Maintained {
            renewed: 3,
            released: 1
        }]
    );
    assert!(
        s.edge(&e("a")).is_some(),
        "registration stays: it may come back"
    );
    assert!(s.participant(&c("m"), &p("ada"), 2_500).is_none());
    assert!(s.participant(&c("m"), &p("bob"), 2_500).is_some());
    // An unhealthy edge the leader still hears from (listed live) keeps them.
    run(
        &mut s,
        2_600,
        vec![Op::Maintain {
            live_edges: vec![e("b")],
            edge_lease_ms: 60_000,
            unhealthy: vec![e("b")],
        }],
    );
    assert!(s.participant(&c("m"), &p("bob"), 2_600).is_some());
    // The runtime edge's lease lapses: it is forgotten, not just emptied.
    run(
        &mut s,
        200_000,
        vec![Op::Maintain {
            live_edges: vec![e("b")],
            edge_lease_ms: 60_000,
            unhealthy: vec![],
        }],
    );
    assert!(s.edge(&e("new")).is_none());
    assert!(s.edge(&e("x")).is_some(), "topology edges stay registered");
}

#[test]
fn placements_page_in_order() {
    let mut s = cluster();
    let ops: Vec<Op> = (0..5)
        .map(|i| join(if i < 3 { "c1" } else { "c2" }, &format!("p{i}"), "a"))
        .chain([join("c1", "other", "b")])
        .collect();
    run(&mut s, 2_000, ops);
    let all: Vec<String> = s
        .placements_on(&e("a"), None, 10)
        .iter()
        .map(|(c, p, _)| format!("{c}/{p}"))
        .collect();
    assert_eq!(all, ["c1/p0", "c1/p1", "c1/p2", "c2/p3", "c2/p4"]);
    let (c1, p1) = (c("c1"), p("p1"));
    let page: Vec<String> = s
        .placements_on(&e("a"), Some((&c1, &p1)), 2)
        .iter()
        .map(|(c, p, _)| format!("{c}/{p}"))
        .collect();
    assert_eq!(page, ["c1/p2", "c2/p3"]);
}

#[test]
fn unused_placements_are_bounded_by_capacity() {
    let mut s = cluster();
    let ops: Vec<Op> = (0..100)
        .map(|i| join("flood", &format!("p{i}"), "a"))
        .collect();
    assert!(
        run(&mut s, 2_000, ops)
            .iter()
            .all(|r| matches!(r, OpResult::Placed { created: true, .. }))
    );
    let r = run(&mut s, 2_001, vec![join("flood", "p100", "a")]);
    assert_eq!(r, vec![OpResult::Rejected(ApplyError::EdgeBusy(e("a")))]);
    assert!(
        matches!(
            run(&mut s, 2_002, vec![join("flood", "p100", "b")])[0],
            OpResult::Placed { .. }
        ),
        "another edge still takes it"
    );
    // A client that connects frees its place; lapsed ones are swept.
    run(
        &mut s,
        2_003,
        vec![joined_on("a", vec![pref("flood", "p0")])],
    );
    assert!(matches!(
        run(&mut s, 2_004, vec![join("flood", "p101", "a")])[0],
        OpResult::Placed { .. }
    ));
    run(
        &mut s,
        20_000,
        vec![Op::Maintain {
            live_edges: vec![e("a"), e("b"), e("x")],
            edge_lease_ms: 60_000,
            unhealthy: vec![],
        }],
    );
    assert_eq!(
        s.participants_on(&e("a")),
        1,
        "only the connected one stays"
    );
}

#[test]
fn reports_delivered_twice_change_nothing_the_second_time() {
    // A forwarded write whose answer was lost is sent again: each report
    // must be harmless the second time, even after the participant moved.
    let mut s = cluster();
    run(&mut s, 2_000, vec![join("standup", "ada", "a")]);
    let joined = Op::Joined {
        edge: e("a"),
        participants: vec![pref("standup", "ada")],
    };
    let left = Op::Left {
        edge: e("a"),
        participants: vec![pref("standup", "ada")],
    };
    run(&mut s, 2_100, vec![joined.clone()]);
    let once = s.clone();
    run(&mut s, 2_200, vec![joined]);
    let ada = |s: &SelectorState, t| s.participant(&c("standup"), &p("ada"), t).cloned();
    assert_eq!(ada(&s, 2_200), ada(&once, 2_200));
    assert_eq!(s.participants_on(&e("a")), 1);
    run(&mut s, 2_300, vec![left.clone()]);
    assert_eq!(s.participant_count(), 0);
    // Ada joins again elsewhere; the old edge's `Left` arrives a second time.
    run(&mut s, 2_400, vec![join("standup", "ada", "b")]);
    let before = s.clone();
    let r = run(&mut s, 2_500, vec![left]);
    assert_eq!(
        r,
        vec![OpResult::Reported {
            recorded: 0,
            ignored: 1,
            moved: vec![]
        }]
    );
    assert_eq!(ada(&s, 2_500), ada(&before, 2_500));
    assert_eq!(s.participants_on(&e("b")), 1);
}

fn start_rec(conf: &str, rec: &str, recorder: &str) -> Op {
    Op::StartRecording {
        conference: c(conf),
        recording: rec.into(),
        recorder: e(recorder),
        max_height: 0,
    }
}

#[test]
fn a_recording_has_one_recorder_moves_in_parts_and_is_forgotten_a_day_after_it_stopped() {
    let mut s = cluster();
    let r = run(&mut s, 2_000, vec![start_rec("room", "r1", "rec-a")]);
    assert!(matches!(&r[0], OpResult::Recording { changed: true, record } if record.part == 1));
    // A second start (another operator, a retry) keeps the first.
    let r = run(&mut s, 2_100, vec![start_rec("room", "r2", "rec-b")]);
    assert!(
        matches!(&r[0], OpResult::Recording { changed: false, record } if record.recording == "r1" && record.recorder == e("rec-a"))
    );
    assert_eq!(s.recordings_on(&e("rec-a")).count(), 1);
    // Moved once: a retried or raced move (from the old recorder) does nothing.
    let mv = Op::MoveRecording {
        conference: c("room"),
        from: e("rec-a"),
        to: e("rec-b"),
    };
    let r = run(&mut s, 3_000, vec![mv.clone(), mv]);
    assert!(matches!(&r[0], OpResult::Recording { changed: true, record } if record.part == 2));
    assert!(matches!(&r[1], OpResult::Recording { changed: false, .. }));
    let rec = s.recording(&c("room")).unwrap().clone();
    assert_eq!(rec.part_id(rec.part), "r1-p2");
    assert_eq!(rec.continues().as_deref(), Some("r1"));
    assert_eq!(s.recordings_on(&e("rec-a")).count(), 0);
    // Stopped twice: the second finds nothing to stop.
    let stop = Op::StopRecording {
        conference: c("room"),
    };
    let r = run(&mut s, 4_000, vec![stop.clone(), stop]);
    assert!(matches!(&r[0], OpResult::RecordingStopped(Some(_))));
    assert_eq!(r[1], OpResult::RecordingStopped(None));
    assert_eq!(s.recordings_on(&e("rec-b")).count(), 0);
    assert_eq!(s.recording(&c("room")).unwrap().stopped_ms, Some(4_000));
    // A stopped recording is not moved; a new start replaces it.
    let r = run(
        &mut s,
        5_000,
        vec![Op::MoveRecording {
            conference: c("room"),
            from: e("rec-b"),
            to: e("rec-a"),
        }],
    );
    assert!(matches!(&r[0], OpResult::Recording { changed: false, .. }));
    // Kept through a snapshot.
    let json = serde_json::to_string(&s).unwrap();
    let mut back: SelectorState = serde_json::from_str(&json).unwrap();
    back.rebuild_indexes();
    assert_eq!(back, s);
    // Forgotten by the upkeep a day after it stopped.
    let maintain = || Op::Maintain {
        live_edges: vec![],
        edge_lease_ms: 1_000_000_000,
        unhealthy: vec![],
    };
    run(&mut s, 4_000 + STOPPED_KEPT_MS - 1, vec![maintain()]);
    assert!(s.recording(&c("room")).is_some());
    run(&mut s, 4_000 + STOPPED_KEPT_MS, vec![maintain()]);
    assert!(s.recording(&c("room")).is_none());
    let r = run(
        &mut s,
        4_000 + STOPPED_KEPT_MS + 1,
        vec![start_rec("room", "r3", "rec-a")],
    );
    assert!(matches!(&r[0], OpResult::Recording { changed: true, .. }));
}

#[test]
fn edges_hear_which_of_their_conferences_are_recorded() {
    let mut s = cluster();
    run(
        &mut s,
        2_000,
        vec![
            join("room", "ada", "a"),
            join("other", "bea", "a"),
            start_rec("room", "r1", "rec-a"),
        ],
    );
    assert_eq!(s.recorded_on(&e("a")), vec![c("room")]);
    run(
        &mut s,
        2_100,
        vec![Op::StopRecording {
            conference: c("room"),
        }],
    );
    assert!(s.recorded_on(&e("a")).is_empty());
}
