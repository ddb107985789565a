//! Two links driven against each other on a virtual clock (quinn-proto's
//! `Pair` style): no sockets, no sleeping, deterministic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};

use super::*;
use crate::wire::{
    Codec, ConferenceHandle, ControlFrame, Hello, Layer, MediaKind, SourceHandle, SourceId,
    SourceInfo,
};

mod fragments;

fn edge(s: &str) -> EdgeId {
    EdgeId::new(s).unwrap()
}
fn conf(s: &str) -> ConferenceId {
    ConferenceId::new(s).unwrap()
}
fn who(s: &str) -> ParticipantId {
    ParticipantId::new(s).unwrap()
}

fn config(id: &str) -> LinkConfig {
    LinkConfig::new(edge(id), RegionId::new(format!("r-{id}")).unwrap())
}

fn video(owner: &str, ssrc: u32) -> SourceInfo {
    let layer = |i: u32, h| Layer {
        rid: Some(["q", "h", "f"][i as usize].to_string()),
        ssrc: ssrc + i,
        rtx_ssrc: Some(ssrc + 10 + i),
        max_height: h,
    };
    SourceInfo {
        owner: who(owner),
        kind: MediaKind::Video,
        codec: Codec {
            name: "VP8".into(),
            payload_type: 96,
            clock_rate: 90_000,
        },
        layers: vec![layer(0, 180), layer(1, 360), layer(2, 720)],
    }
}

fn audio(owner: &str, ssrc: u32) -> SourceInfo {
    SourceInfo {
        owner: who(owner),
        kind: MediaKind::Audio,
        codec: Codec {
            name: "opus".into(),
            payload_type: 111,
            clock_rate: 48_000,
        },
        layers: vec![Layer {
            rid: None,
            ssrc,
            rtx_ssrc: None,
            max_height: 0,
        }],
    }
}

fn rtp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xab; 100]);
    p
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    A,
    B,
}

/// Links `a` (edge-a) and `b` (edge-b) joined by a virtual control stream
/// with one-way `latency`.
struct Pair {
    a: Link,
    b: Link,
    now: Instant,
    latency: Duration,
    in_flight: VecDeque<(Instant, Side, Bytes)>,
    a_events: Vec<LinkEvent>,
    b_events: Vec<LinkEvent>,
    /// While false, bytes towards that side are dropped (a dead peer).
    deliver_to_a: bool,
    deliver_to_b: bool,
}

impl Pair {
    fn new() -> Self {
        Self::with(config("edge-a"), config("edge-b"))
    }

    fn with(a: LinkConfig, b: LinkConfig) -> Self {
        Pair {
            a: Link::new(a, edge("edge-b")),
            b: Link::new(b, edge("edge-a")),
            now: Instant::now(),
            latency: Duration::from_millis(10),
            in_flight: VecDeque::new(),
            a_events: Vec::new(),
            b_events: Vec::new(),
            deliver_to_a: true,
            deliver_to_b: true,
        }
    }

    fn connect(&mut self) {
        self.a.handle_connected(self.now);
        self.b.handle_connected(self.now);
    }

    fn disconnect(&mut self) {
        self.in_flight.clear();
        let lost = || DownReason::Lost("test".into());
        self.a.handle_disconnected(self.now, lost());
        self.b.handle_disconnected(self.now, lost());
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(bytes) = self.a.poll_transmit() {
            self.in_flight
                .push_back((self.now + self.latency, Side::B, bytes));
        }
        while let Some(bytes) = self.b.poll_transmit() {
            self.in_flight
                .push_back((self.now + self.latency, Side::A, bytes));
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
    }

    /// Runs the pair until `d` of virtual time has passed.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            self.collect();
            let next_bytes = self.in_flight.front().map(|f| f.0);
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .map(|d| d.at)
                .min();
            let next = [next_bytes, next_timer].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    return;
                }
            }
            while self.in_flight.front().is_some_and(|f| f.0 <= self.now) {
                let (_, side, bytes) = self.in_flight.pop_front().unwrap();
                match side {
                    Side::A if self.deliver_to_a => self.a.handle_control(self.now, &bytes),
                    Side::B if self.deliver_to_b => self.b.handle_control(self.now, &bytes),
                    _ => {}
                }
            }
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
        panic!("pair did not settle");
    }

    fn settle(&mut self) {
        self.run(Duration::from_millis(100));
    }

    fn take_a(&mut self) -> Vec<LinkEvent> {
        std::mem::take(&mut self.a_events)
    }

    fn take_b(&mut self) -> Vec<LinkEvent> {
        std::mem::take(&mut self.b_events)
    }

    /// Media from a to b: encode on a, decode on b.
    fn media_a_to_b(&mut self, id: SourceId, layer: u8, ssrc: u32) -> Result<MediaIn, String> {
        let mut buf = BytesMut::new();
        self.a
            .encode_media(id, MediaType::Rtp, layer, &rtp(ssrc), &mut buf)
            .map_err(|e| format!("not sent: {e}"))?;
        self.b
            .handle_datagram(buf.freeze())
            .map_err(|e| format!("dropped: {e}"))?
            .ok_or_else(|| "a whole packet delivered nothing".to_string())
    }
}

/// Events without the noise of RTT samples.
fn quiet(events: Vec<LinkEvent>) -> Vec<LinkEvent> {
    events
        .into_iter()
        .filter(|e| !matches!(e, LinkEvent::Rtt(_)))
        .collect()
}

fn names(events: &[LinkEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e, LinkEvent::Rtt(_)))
        .map(|e| {
            let s = format!("{e:?}");
            s.split([' ', '(', '{']).next().unwrap().to_string()
        })
        .collect()
}

fn up_pair_with_state() -> Pair {
    let mut p = Pair::new();
    let c = conf("standup");
    p.a.open_conference(&c).unwrap();
    p.a.endpoint_joined(&c, who("alice"), Some("Alice".into()))
        .unwrap();
    p.a.add_source(&c, SourceId(7), video("alice", 100))
        .unwrap();
    p.a.add_source(&c, SourceId(8), audio("alice", 200))
        .unwrap();
    p.b.open_conference(&c).unwrap();
    p.connect();
    p.settle();
    p
}

#[test]
fn hello_then_state_then_announced() {
    let mut p = up_pair_with_state();
    assert!(p.a.is_up() && p.b.is_up());
    let b = quiet(p.take_b());
    assert_eq!(
        names(&b),
        [
            "Up",
            "ConferenceOpened",
            "EndpointJoined",
            "SourceAdded",
            "SourceAdded",
            "Synced"
        ]
    );
    assert_eq!(
        b[0],
        LinkEvent::Up {
            region: RegionId::new("r-edge-a").unwrap(),
            capabilities: Capabilities::ALL
        }
    );
    let LinkEvent::SourceAdded(s) = &b[3] else {
        unreachable!()
    };
    assert_eq!(s.edge, edge("edge-a"));
    assert_eq!(s.conference, conf("standup"));
    assert_eq!(s.id, SourceId(7));
    assert_eq!(s.info, video("alice", 100));
    assert_eq!(p.b.remote_sources().count(), 2);
    let a = quiet(p.take_a());
    assert_eq!(names(&a), ["Up", "ConferenceOpened", "Synced"]);
}

#[test]
fn forwards_only_subscribed_sources_and_the_selected_layer() {
    let mut p = up_pair_with_state();
    p.take_a();
    // Nothing is wanted yet: nothing is sent.
    assert_eq!(
        p.media_a_to_b(SourceId(7), 2, 102).unwrap_err(),
        "not sent: the peer has not subscribed"
    );
    // b wants at most 360p: layer 1.
    p.b.subscribe(
        SourceId(7),
        Subscription {
            max_layer: Subscription::ANY_LAYER,
            max_height: 400,
        },
    )
    .unwrap();
    p.settle();
    let a = quiet(p.take_a());
    assert_eq!(
        a,
        [LinkEvent::Subscribed {
            source: SourceId(7),
            subscription: Subscription {
                max_layer: 255,
                max_height: 400
            },
            layer: 1
        }]
    );
    assert_eq!(p.a.remote_subscription(SourceId(7)).unwrap().1, 1);
    assert!(
        p.media_a_to_b(SourceId(7), 2, 102).is_err(),
        "layer 2 held back"
    );
    assert!(
        p.media_a_to_b(SourceId(7), 0, 100).is_err(),
        "layer 0 held back"
    );
    let m = p.media_a_to_b(SourceId(7), 1, 101).unwrap();
    assert_eq!(m.source.id, SourceId(7));
    assert_eq!(m.ty, MediaType::Rtp);
    assert_eq!(&m.packet[..], &rtp(101)[..]);
    assert_eq!(m.source.info.layer_of_ssrc(111), Some(1), "RTX maps too");
    // The audio source was not subscribed.
    assert!(p.media_a_to_b(SourceId(8), 0, 200).is_err());

    // Unsubscribe stops the flow within one round trip.
    p.b.unsubscribe(SourceId(7));
    p.run(2 * p.latency);
    assert_eq!(
        quiet(p.take_a()),
        [LinkEvent::Unsubscribed {
            source: SourceId(7)
        }]
    );
    assert!(p.media_a_to_b(SourceId(7), 1, 101).is_err());
}

#[test]
fn a_change_of_layer_waits_for_the_new_layers_keyframe() {
    let mut p = up_pair_with_state();
    let sub = |h| Subscription {
        max_layer: Subscription::ANY_LAYER,
        max_height: h,
    };
    p.b.subscribe(SourceId(7), sub(200)).unwrap();
    p.settle();
    // A fresh subscription flows at once (its keyframe is asked for).
    assert!(p.media_a_to_b(SourceId(7), 0, 100).is_ok());
    // Up to 720p: layer 0 keeps flowing until layer 2's keyframe.
    p.b.subscribe(SourceId(7), sub(0)).unwrap();
    p.settle();
    assert_eq!(p.a.remote_subscription(SourceId(7)).unwrap().1, 2);
    assert!(
        p.media_a_to_b(SourceId(7), 0, 100).is_ok(),
        "the old layer flows"
    );
    assert!(
        p.media_a_to_b(SourceId(7), 2, 102).is_err(),
        "no delta frame of the new one"
    );
    assert!(
        !p.a.keyframe(SourceId(7), 1),
        "a keyframe of another layer switches nothing"
    );
    assert!(p.a.keyframe(SourceId(7), 2), "its keyframe switches");
    assert!(p.media_a_to_b(SourceId(7), 2, 102).is_ok());
    assert!(
        p.media_a_to_b(SourceId(7), 0, 100).is_err(),
        "the old layer stops"
    );
    // After a reconnect the subscription is fresh again.
    p.b.unsubscribe(SourceId(7));
    p.settle();
    p.b.subscribe(SourceId(7), sub(400)).unwrap();
    p.settle();
    assert!(p.media_a_to_b(SourceId(7), 1, 101).is_ok());
}

#[test]
fn forward_unsubscribed_sends_everything() {
    let mut a = config("edge-a");
    a.forward_unsubscribed = true;
    let mut p = Pair::with(a, config("edge-b"));
    let c = conf("c");
    p.a.open_conference(&c).unwrap();
    p.a.add_source(&c, SourceId(1), video("x", 10)).unwrap();
    p.connect();
    p.settle();
    for layer in 0..3 {
        p.media_a_to_b(SourceId(1), layer, 10 + u32::from(layer))
            .unwrap();
    }
}

#[test]
fn keyframe_requests_cross_and_are_rate_limited() {
    let mut p = up_pair_with_state();
    p.take_a();
    let now = p.now;
    assert_eq!(p.b.request_keyframe(now, SourceId(7), Some(2)), Ok(true));
    assert_eq!(p.b.request_keyframe(now, SourceId(7), Some(2)), Ok(false));
    assert_eq!(
        p.b.request_keyframe(now, SourceId(99), None),
        Err(UsageError::UnknownRemoteSource(SourceId(99)))
    );
    p.settle();
    assert_eq!(
        quiet(p.take_a()),
        [LinkEvent::KeyframeRequested {
            source: SourceId(7),
            layer: Some(2)
        }]
    );
    // The second request was deferred, not dropped: it crosses when the
    // interval is over (the link's timer says why it wakes).
    assert_eq!(
        p.b.poll_timeout().map(|d| (d.at - now, d.reason)),
        Some((Duration::from_millis(250), TimeoutReason::KeyframeRequest))
    );
    p.run(Duration::from_millis(300));
    let deferred: Vec<_> = quiet(p.take_a())
        .into_iter()
        .filter(|e| matches!(e, LinkEvent::KeyframeRequested { .. }))
        .collect();
    assert_eq!(
        deferred,
        [LinkEvent::KeyframeRequested {
            source: SourceId(7),
            layer: Some(2)
        }]
    );
    // Different layers asked for within one interval become "every layer".
    let t = p.now;
    assert_eq!(p.b.request_keyframe(t, SourceId(7), Some(0)), Ok(false));
    assert_eq!(p.b.request_keyframe(t, SourceId(7), Some(1)), Ok(false));
    p.run(Duration::from_millis(300));
    let merged: Vec<_> = quiet(p.take_a())
        .into_iter()
        .filter(|e| matches!(e, LinkEvent::KeyframeRequested { .. }))
        .collect();
    assert_eq!(
        merged,
        [LinkEvent::KeyframeRequested {
            source: SourceId(7),
            layer: None
        }]
    );
    let later = p.now + Duration::from_millis(300);
    assert_eq!(p.b.request_keyframe(later, SourceId(7), None), Ok(true));
}

#[test]
fn ping_pong_measures_rtt_on_the_virtual_clock() {
    let mut p = Pair::new();
    p.latency = Duration::from_millis(40);
    p.connect();
    p.run(Duration::from_secs(3));
    let rtts: Vec<Duration> = p
        .take_a()
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::Rtt(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(rtts.len() >= 2, "{rtts:?}");
    assert!(rtts.iter().all(|d| *d == Duration::from_millis(80)));
    assert_eq!(p.a.rtt(), Some(Duration::from_millis(80)));
}

#[test]
fn an_unresponsive_peer_fails_the_link() {
    let mut p = Pair::new();
    p.connect();
    p.settle();
    p.deliver_to_b = false;
    p.run(Duration::from_secs(12));
    let a = quiet(p.take_a());
    assert!(
        a.contains(&LinkEvent::Failed(LinkError::Unresponsive)),
        "{a:?}"
    );
    assert_eq!(LinkError::Unresponsive.close_code(), close_code::TIMEOUT);
}

#[test]
fn a_missing_hello_times_out() {
    let mut p = Pair::new();
    p.a.handle_connected(p.now);
    p.run(Duration::from_secs(11));
    assert!(
        p.take_a()
            .contains(&LinkEvent::Failed(LinkError::HelloTimeout))
    );
    assert!(matches!(p.a.state(), LinkState::Failed(_)));
    assert_eq!(p.a.poll_timeout(), None);
}

fn hello_from(edge_id: &str, version: u64) -> ControlFrame {
    ControlFrame::Hello(Hello {
        version,
        edge: edge(edge_id),
        region: RegionId::new("eu").unwrap(),
        capabilities: Capabilities::ALL,
    })
}

#[test]
fn hello_checks_version_and_identity() {
    let mut p = Pair::new();
    p.b.handle_connected(p.now);
    p.b.handle_frame(p.now, hello_from("edge-a", 2));
    let err = LinkError::VersionMismatch { ours: 1, theirs: 2 };
    assert_eq!(err.close_code(), close_code::VERSION);
    assert_eq!(p.b.poll_event(), Some(LinkEvent::Failed(err)));
    // A failed link sends nothing more and ignores input.
    p.b.handle_frame(p.now, hello_from("edge-a", 1));
    assert!(!p.b.is_up());
    assert_eq!(p.b.poll_transmit(), None);

    // The certificate said edge-a; the Hello claims edge-x.
    let mut p = Pair::new();
    p.b.handle_connected(p.now);
    p.b.handle_frame(p.now, hello_from("edge-x", 1));
    let err = LinkError::IdentityMismatch {
        certificate: edge("edge-a"),
        hello: edge("edge-x"),
    };
    assert_eq!(err.close_code(), close_code::IDENTITY);
    assert_eq!(p.b.poll_event(), Some(LinkEvent::Failed(err)));
}

#[test]
fn rule_breaking_frames_fail_the_link() {
    let c = || ConferenceHandle::new(1).unwrap();
    let open = || ControlFrame::ConferenceOpen {
        conference: c(),
        id: conf("x"),
    };
    let cases: Vec<(Vec<ControlFrame>, LinkError)> = vec![
        (
            vec![ControlFrame::Ping { nonce: 1 }],
            ProtocolViolation::FrameBeforeHello(crate::wire::FrameType::Ping).into(),
        ),
        (
            vec![hello_from("edge-a", 1), hello_from("edge-a", 1)],
            ProtocolViolation::DuplicateHello.into(),
        ),
        (
            vec![hello_from("edge-a", 1), open(), open()],
            ProtocolViolation::DuplicateConferenceHandle(1).into(),
        ),
        (
            vec![
                hello_from("edge-a", 1),
                ControlFrame::ConferenceClose { conference: c() },
            ],
            ProtocolViolation::UnknownConference(1).into(),
        ),
        (
            vec![
                hello_from("edge-a", 1),
                ControlFrame::SourceRemoved {
                    source: SourceHandle::new(3).unwrap(),
                },
            ],
            ProtocolViolation::UnknownSource(3).into(),
        ),
    ];
    for (frames, err) in cases {
        let mut p = Pair::new();
        p.b.handle_connected(p.now);
        for f in frames {
            p.b.handle_frame(p.now, f);
        }
        let events: Vec<_> = std::iter::from_fn(|| p.b.poll_event()).collect();
        assert_eq!(events.last(), Some(&LinkEvent::Failed(err)));
    }
    // Garbage bytes on the stream: a typed decode error.
    let mut p = Pair::new();
    p.b.handle_connected(p.now);
    p.b.handle_control(p.now, &[0x03, 0x01, 0x01, 0x01]);
    let events: Vec<_> = std::iter::from_fn(|| p.b.poll_event()).collect();
    assert!(matches!(
        events.last(),
        Some(LinkEvent::Failed(LinkError::Decode(_)))
    ));
}

#[test]
fn subscribe_and_keyframe_for_removed_sources_are_ignored() {
    // Subscribe races SourceRemoved: the owner ignores the stale handle.
    let mut p = up_pair_with_state();
    p.take_a();
    p.b.subscribe(SourceId(8), Subscription::BEST).unwrap();
    p.a.remove_source(SourceId(8));
    p.settle();
    assert!(p.a.is_up() && p.b.is_up());
    assert!(quiet(p.take_a()).is_empty());
    assert_eq!(
        p.b.subscription(SourceId(8)),
        None,
        "forgotten with the source"
    );
}

#[test]
fn datagram_errors_are_typed_and_harmless() {
    let mut p = up_pair_with_state();
    let dg = |b: &[u8]| Bytes::copy_from_slice(b);
    let mut ok = vec![0x01, 0x00, 0x00];
    ok.extend_from_slice(&rtp(1));
    assert!(p.b.handle_datagram(dg(&ok)).is_ok());
    let mut unknown = vec![0x01, 0x00, 0x09];
    unknown.extend_from_slice(&rtp(1));
    assert_eq!(
        p.b.handle_datagram(dg(&unknown)).unwrap_err(),
        DatagramError::UnknownSource(SourceHandle::new(9).unwrap())
    );
    let mut wrong = vec![0x01, 0x05, 0x00];
    wrong.extend_from_slice(&rtp(1));
    assert!(matches!(
        p.b.handle_datagram(dg(&wrong)),
        Err(DatagramError::WrongConference { conference: 5, .. })
    ));
    assert!(matches!(
        p.b.handle_datagram(dg(b"GET / HTTP/1.1\r\n")),
        Err(DatagramError::Decode(_))
    ));
    assert!(p.b.is_up());
}

#[test]
fn reconnect_resyncs_without_repeating_events_and_resubscribes() {
    let mut p = up_pair_with_state();
    p.b.subscribe(SourceId(7), Subscription::BEST).unwrap();
    p.settle();
    p.take_a();
    p.take_b();

    p.disconnect();
    assert!(matches!(p.take_b().as_slice(), [LinkEvent::Down { .. }]));
    assert_eq!(
        p.media_a_to_b(SourceId(7), 2, 102).unwrap_err(),
        "not sent: link not up"
    );
    p.run(Duration::from_secs(2));
    p.connect();
    p.settle();
    // b sees the link come back and nothing else: same conference, roster
    // and sources.
    assert_eq!(names(&p.take_b()), ["Up", "Synced"]);
    // a sees b's subscription again, re-sent by b's link on its own.
    let a = quiet(p.take_a());
    assert_eq!(names(&a), ["Down", "Up", "Synced", "Subscribed"]);
    assert!(p.media_a_to_b(SourceId(7), 2, 102).is_ok());
}

#[test]
fn mute_state_crosses_and_is_announced_again_after_a_reconnect() {
    let mut p = up_pair_with_state();
    p.take_b();
    let c = conf("standup");
    p.a.endpoint_muted(&c, &who("alice"), true, false).unwrap();
    // Repeating the same state sends nothing; an unknown participant is ignored.
    p.a.endpoint_muted(&c, &who("alice"), true, false).unwrap();
    p.a.endpoint_muted(&c, &who("nobody"), true, true).unwrap();
    assert!(
        p.a.endpoint_muted(&conf("other"), &who("alice"), true, true)
            .is_err()
    );
    p.settle();
    let muted = LinkEvent::EndpointMuted {
        conference: c.clone(),
        participant: who("alice"),
        audio: true,
        video: false,
    };
    assert_eq!(p.take_b(), vec![muted.clone()]);
    p.disconnect();
    p.run(Duration::from_secs(2));
    p.connect();
    p.settle();
    // Still muted: said again after the roster, so a peer that restarted learns it.
    let b = quiet(p.take_b());
    assert_eq!(names(&b), ["Down", "Up", "EndpointMuted", "Synced"]);
    assert_eq!(b[2], muted);
    p.a.endpoint_muted(&c, &who("alice"), false, false).unwrap();
    p.settle();
    assert!(matches!(
        p.take_b().as_slice(),
        [LinkEvent::EndpointMuted {
            audio: false,
            video: false,
            ..
        }]
    ));
}

#[test]
fn reconnect_reports_what_changed_while_down() {
    let mut p = up_pair_with_state();
    p.b.subscribe(SourceId(7), Subscription::BEST).unwrap();
    p.settle();
    p.take_b();
    p.disconnect();
    let c = conf("standup");
    p.a.remove_source(SourceId(7));
    p.a.add_source(&c, SourceId(9), video("alice", 300))
        .unwrap();
    p.a.endpoint_joined(&c, who("bob"), None).unwrap();
    p.a.endpoint_left(&c, &who("alice"));
    p.connect();
    p.settle();
    let b = quiet(p.take_b());
    assert_eq!(
        names(&b),
        [
            "Down",
            "Up",
            "EndpointJoined",
            "SourceAdded",
            "SourceRemoved",
            "EndpointLeft",
            "Synced"
        ]
    );
    assert!(matches!(&b[3], LinkEvent::SourceAdded(s) if s.id == SourceId(9)));
    assert!(matches!(&b[4], LinkEvent::SourceRemoved(s) if s.id == SourceId(7)));
    assert_eq!(p.b.subscription(SourceId(7)), None);
}

#[test]
fn a_restarted_peer_reusing_a_source_id_replaces_the_source() {
    let mut p = up_pair_with_state();
    p.b.subscribe(SourceId(8), Subscription::BEST).unwrap();
    p.settle();
    p.take_b();
    p.disconnect();
    // Edge a restarts: a new link with different state under the same ids.
    p.a = Link::new(config("edge-a"), edge("edge-b"));
    let c = conf("standup");
    p.a.open_conference(&c).unwrap();
    p.a.add_source(&c, SourceId(8), audio("carol", 500))
        .unwrap();
    p.connect();
    p.settle();
    let b = quiet(p.take_b());
    assert_eq!(
        names(&b),
        [
            "Down",
            "Up",
            "SourceRemoved",
            "SourceAdded",
            "SourceRemoved",
            "EndpointLeft",
            "Synced"
        ]
    );
    assert_eq!(p.b.subscription(SourceId(8)), None, "not carol's source");
}

#[test]
fn stale_state_expires_after_the_grace_period() {
    let mut p = up_pair_with_state();
    p.take_b();
    p.disconnect();
    p.run(Duration::from_secs(14));
    assert_eq!(names(&p.take_b()), ["Down"]);
    p.run(Duration::from_secs(2));
    assert_eq!(
        names(&p.take_b()),
        [
            "SourceRemoved",
            "SourceRemoved",
            "EndpointLeft",
            "ConferenceClosed"
        ]
    );
    assert_eq!(p.b.poll_timeout(), None, "nothing left to wake for");
}

#[test]
fn closing_a_conference_reports_its_roster_and_sources_gone() {
    let mut p = up_pair_with_state();
    p.take_b();
    p.a.close_conference(&conf("standup"));
    p.settle();
    assert_eq!(
        names(&p.take_b()),
        [
            "SourceRemoved",
            "SourceRemoved",
            "EndpointLeft",
            "ConferenceClosed"
        ]
    );
    assert_eq!(p.b.remote_sources().count(), 0);
    // Opening it again announces it afresh, with new handles.
    let c = conf("standup");
    p.a.open_conference(&c).unwrap();
    p.a.add_source(&c, SourceId(7), video("alice", 100))
        .unwrap();
    p.settle();
    assert_eq!(names(&p.take_b()), ["ConferenceOpened", "SourceAdded"]);
}

#[test]
fn roster_updates_and_usage_errors() {
    let mut p = up_pair_with_state();
    p.take_b();
    let c = conf("standup");
    // Same name again: nothing sent. New name: an update.
    p.a.endpoint_joined(&c, who("alice"), Some("Alice".into()))
        .unwrap();
    p.a.endpoint_joined(&c, who("alice"), Some("x".repeat(300)))
        .unwrap();
    p.settle();
    let b = quiet(p.take_b());
    assert_eq!(b.len(), 1);
    let LinkEvent::EndpointJoined { display_name, .. } = &b[0] else {
        panic!("{b:?}")
    };
    assert_eq!(display_name.as_ref().unwrap().len(), 255, "clamped");

    assert_eq!(
        p.a.endpoint_joined(&conf("other"), who("x"), None),
        Err(UsageError::ConferenceNotOpen(conf("other")))
    );
    let mut bad = video("alice", 1);
    bad.layers.clear();
    assert!(matches!(
        p.a.add_source(&c, SourceId(1), bad),
        Err(UsageError::InvalidSource(_))
    ));
    assert_eq!(
        p.a.add_source(&c, SourceId(u64::MAX), audio("a", 1)),
        Err(UsageError::SourceIdTooLarge(SourceId(u64::MAX)))
    );
    assert_eq!(
        p.b.subscribe(SourceId(42), Subscription::BEST),
        Err(UsageError::UnknownRemoteSource(SourceId(42)))
    );
}

#[test]
fn goodbye_draining_is_repeated_after_a_reconnect() {
    let mut p = Pair::new();
    p.connect();
    p.settle();
    p.take_b();
    p.a.goodbye(GoodbyeReason::Draining, "maintenance");
    p.settle();
    let bye = LinkEvent::Goodbye {
        reason: GoodbyeReason::Draining,
        message: "maintenance".into(),
    };
    assert_eq!(quiet(p.take_b()), std::slice::from_ref(&bye));
    p.disconnect();
    p.connect();
    p.settle();
    assert_eq!(quiet(p.take_b()).last(), Some(&bye));
}

#[test]
fn rtcp_needs_the_peers_capability_and_oversized_packets_are_refused() {
    let mut b = config("edge-b");
    b.capabilities = Capabilities::SIMULCAST;
    let mut p = Pair::with(config("edge-a"), b);
    let c = conf("c");
    p.a.open_conference(&c).unwrap();
    p.a.add_source(&c, SourceId(1), audio("x", 10)).unwrap();
    p.connect();
    p.settle();
    p.b.subscribe(SourceId(1), Subscription::BEST).unwrap();
    p.settle();
    let mut buf = BytesMut::new();
    let sr = [0x80, 200, 0, 6, 0, 0, 0, 10];
    assert_eq!(
        p.a.encode_media(SourceId(1), MediaType::Rtcp, 0, &sr, &mut buf),
        Err(NotSent::NoRtcp)
    );
    let big = vec![0x80; crate::wire::MAX_MEDIA_PACKET + 1];
    assert_eq!(
        p.a.encode_media(SourceId(1), MediaType::Rtp, 0, &big, &mut buf),
        Err(NotSent::TooLong(big.len()))
    );
    assert!(buf.is_empty());
}
