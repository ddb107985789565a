//! Sibling links: one conference across the media workers of one edge.
//!
//! When a conference's participants sit on several workers
//! ([`crate::placement`]), the workers join it the way octo joins it across
//! edges: every worker pair runs the octo [`Link`] state machine, in
//! process. Control frames cross as the bytes octo puts on a QUIC stream (one
//! protocol, one set of tests, for both); media crosses as the forwarder's
//! own packets ([`InPacket`]: the payload shared, nothing serialized or
//! allocated per packet), batched: a worker hands each sibling one message
//! per round. A worker mirrors a sibling's participants and sources into
//! its routing table exactly as it mirrors another edge's, and a sibling
//! sends only the sources (and the simulcast layer) it subscribed to.
//!
//! No relay: each worker announces only its own participants, on its
//! sibling links and on the octo links to other edges alike, so every
//! packet crosses at most one sibling link and at most one octo link.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use geomesh_core::{EdgeId, RegionId};
use geomesh_mesh::link::{Link, LinkConfig, LinkEvent};
use geomesh_mesh::wire::SourceId;

use crate::forward::InPacket;

/// Batches of media queued per worker before a sibling drops (and counts)
/// them: a worker that cannot keep up loses packets, not memory.
const MEDIA_QUEUE: usize = 1024;

/// Sibling links measure their round trip (worker responsiveness) this often.
const SIBLING_PING: Duration = Duration::from_secs(5);

/// A deadline that does not come.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// What one worker hands another.
#[derive(Debug)]
pub(crate) enum SiblingMsg {
    /// Link control bytes (octo's control stream, in process).
    Control {
        /// The sending worker.
        from: usize,
        /// One encoded control frame batch.
        bytes: Bytes,
    },
    /// The round's packets of the sender's sources the receiver subscribed to.
    Media {
        /// The sending worker.
        from: usize,
        /// Source (the sender's id) and packet.
        packets: Vec<(SourceId, InPacket)>,
    },
}

/// The channels into one worker.
#[derive(Debug, Clone)]
pub(crate) struct SiblingTx {
    /// Control: never dropped (state must not diverge).
    pub(crate) control: mpsc::UnboundedSender<SiblingMsg>,
    /// Media: bounded, dropped when full.
    pub(crate) media: mpsc::Sender<SiblingMsg>,
}

/// The receiving ends of [`SiblingTx`].
#[derive(Debug)]
pub(crate) struct SiblingRx {
    pub(crate) control: mpsc::UnboundedReceiver<SiblingMsg>,
    pub(crate) media: mpsc::Receiver<SiblingMsg>,
}

/// One channel pair per worker.
pub(crate) fn channels(n: usize) -> (Vec<SiblingTx>, Vec<SiblingRx>) {
    (0..n)
        .map(|_| {
            let (ct, cr) = mpsc::unbounded_channel();
            let (mt, mr) = mpsc::channel(MEDIA_QUEUE);
            (
                SiblingTx {
                    control: ct,
                    media: mt,
                },
                SiblingRx {
                    control: cr,
                    media: mr,
                },
            )
        })
        .unzip()
}

/// The octo identity of worker `w` of `edge` on sibling links (never on
/// the wire between edges): `<edge>--worker-<w>`, the edge's part cut so
/// that the whole stays a valid id (63 bytes).
pub(crate) fn sibling_id(edge: &EdgeId, w: usize) -> EdgeId {
    let suffix = format!("--worker-{w}");
    let head: String = edge
        .as_str()
        .chars()
        .take(63usize.saturating_sub(suffix.len()))
        .collect();
    format!("{}{suffix}", head.trim_end_matches('-'))
        .parse()
        // A valid edge id's prefix, without a trailing '-', and the suffix.
        .expect("sibling ids are valid edge ids")
}

/// My side of the link to one sibling worker.
pub(crate) struct SiblingLink {
    /// My worker index.
    me: usize,
    /// The sibling's worker index.
    peer: usize,
    /// The sibling's octo identity.
    id: EdgeId,
    link: Link,
    /// Messages for the sibling, for the worker's shell to carry.
    queued: Vec<SiblingMsg>,
    /// This round's packets for the sibling.
    outgoing: Vec<(SourceId, InPacket)>,
}

impl SiblingLink {
    /// A connected link from worker `me` to worker `peer`; its Hello is
    /// queued at once.
    pub(crate) fn new(
        edge: &EdgeId,
        region: RegionId,
        me: usize,
        peer: usize,
        now: Instant,
    ) -> Self {
        let id = sibling_id(edge, peer);
        let mut config = LinkConfig::new(sibling_id(edge, me), region);
        // The channel cannot break and a sibling cannot be slow for long
        // without the edge being broken: no liveness failure (which would
        // need a reconnect neither side can make).
        config.ping_interval = SIBLING_PING;
        config.ping_timeout = NEVER;
        config.hello_timeout = NEVER;
        let mut link = Link::new(config, id.clone());
        link.handle_connected(now);
        let mut s = Self {
            me,
            peer,
            id,
            link,
            queued: Vec::new(),
            outgoing: Vec::new(),
        };
        s.pump();
        s
    }

    /// The sibling's octo identity.
    pub(crate) fn peer(&self) -> &EdgeId {
        &self.id
    }

    /// Queues what the link wrote for the sibling.
    fn pump(&mut self) {
        while let Some(bytes) = self.link.poll_transmit() {
            self.queued.push(SiblingMsg::Control {
                from: self.me,
                bytes,
            });
        }
    }

    /// Runs `f` on the link and hands what it queued to the sibling (as
    /// [`geomesh_mesh::transport::LinkHandle::with_link`] does for a peer
    /// edge).
    pub(crate) fn with_link<R>(&mut self, f: impl FnOnce(&mut Link) -> R) -> R {
        let r = f(&mut self.link);
        self.pump();
        r
    }

    /// Control bytes from the sibling.
    pub(crate) fn handle_control(&mut self, now: Instant, bytes: &[u8]) {
        self.with_link(|l| l.handle_control(now, bytes));
    }

    /// When the link wants [`SiblingLink::handle_timeout`].
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout().map(|d| d.at)
    }

    /// Pings and deadlines.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.with_link(|l| l.handle_timeout(now));
    }

    /// The next event of the link (the sibling's state, mirrored).
    pub(crate) fn poll_event(&mut self) -> Option<LinkEvent> {
        self.link.poll_event()
    }

    /// Queues a packet of my source if the sibling subscribed to it;
    /// returns whether it was queued. Every simulcast layer crosses (unlike
    /// between edges, where the link picks one): the sibling then picks
    /// each subscriber's layer itself, as the publisher's worker would.
    pub(crate) fn send(&mut self, id: SourceId, p: &InPacket) -> bool {
        if self.link.remote_subscription(id).is_none() {
            return false;
        }
        self.outgoing.push((id, p.clone()));
        true
    }

    /// Queues the round's packets as one message.
    pub(crate) fn flush(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let packets = std::mem::take(&mut self.outgoing);
        self.queued.push(SiblingMsg::Media {
            from: self.me,
            packets,
        });
    }

    /// What is queued for the sibling, with its worker index.
    pub(crate) fn take_queued(&mut self) -> (usize, Vec<SiblingMsg>) {
        (self.peer, std::mem::take(&mut self.queued))
    }
}

impl SiblingTx {
    /// Carries one message to the sibling, as a worker's shell does;
    /// returns the packets dropped because its media queue was full.
    pub(crate) fn carry(&self, msg: SiblingMsg) -> usize {
        match msg {
            // Unbounded: control frames are few and must not be lost (the
            // sibling stops only when the edge does).
            SiblingMsg::Control { .. } => {
                let _ = self.control.send(msg);
                0
            }
            SiblingMsg::Media { ref packets, .. } => {
                let n = packets.len();
                match self.media.try_send(msg) {
                    Ok(()) => 0,
                    Err(_) => n,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::CodecRef;
    use geomesh_core::{ConferenceId, ParticipantId};
    use geomesh_mesh::wire::{Codec, Layer, MediaKind, SourceInfo, Subscription};
    use str0m::format::Codec as RtcCodec;

    fn packet(layer: u8) -> InPacket {
        InPacket {
            layer,
            layers: 1,
            ssrc: 1,
            seq: 70_000,
            ts: 90_000,
            marker: true,
            pt: 96,
            keyframe: false,
            codec: CodecRef::Remote {
                codec: RtcCodec::Vp8,
                clock_rate: 90_000,
            },
            payload: std::sync::Arc::from(&b"frame"[..]),
            audio_level: None,
            arrival: Instant::now(),
            video: true,
        }
    }

    /// Hands `to` what `from` queued for it (as the worker's shell
    /// carries it); returns `to`'s events and the media batches.
    fn deliver(
        from: &mut SiblingLink,
        to: &mut SiblingLink,
        now: Instant,
    ) -> (Vec<LinkEvent>, Vec<SiblingMsg>) {
        let (peer, queued) = from.take_queued();
        assert_eq!(peer, to.me, "queued for the right worker");
        let (mut events, mut media) = (Vec::new(), Vec::new());
        for m in queued {
            match m {
                SiblingMsg::Control { bytes, .. } => {
                    to.handle_control(now, &bytes);
                    events.extend(std::iter::from_fn(|| to.poll_event()));
                }
                m @ SiblingMsg::Media { .. } => media.push(m),
            }
        }
        (events, media)
    }

    #[test]
    fn sibling_ids_are_distinct_valid_ids_even_for_long_edge_ids() {
        let long: EdgeId = format!("a{}", "-b".repeat(31)).parse().unwrap();
        assert_eq!(long.as_str().len(), 63);
        let ids: Vec<EdgeId> = (0..12).map(|w| sibling_id(&long, w)).collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(id.as_str().len() <= 63 && id.as_str().ends_with(&format!("--worker-{i}")));
            assert_ne!(id, &long);
        }
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            12
        );
    }

    #[test]
    fn siblings_mirror_state_and_cross_only_subscribed_media() {
        let edge: EdgeId = "edge-a".parse().unwrap();
        let region: RegionId = "eu".parse().unwrap();
        let now = Instant::now();
        let mut a = SiblingLink::new(&edge, region.clone(), 0, 1, now);
        let mut b = SiblingLink::new(&edge, region, 1, 0, now);
        assert_eq!(b.peer().as_str(), "edge-a--worker-0");
        // Hellos both ways: both up.
        let (ev_b, _) = deliver(&mut a, &mut b, now);
        let (ev_a, _) = deliver(&mut b, &mut a, now);
        assert!(ev_a.iter().any(|e| matches!(e, LinkEvent::Up { .. })));
        assert!(ev_b.iter().any(|e| matches!(e, LinkEvent::Up { .. })));

        let conf: ConferenceId = "standup".parse().unwrap();
        let alice: ParticipantId = "alice".parse().unwrap();
        a.with_link(|l| l.open_conference(&conf)).unwrap();
        a.with_link(|l| l.endpoint_joined(&conf, alice.clone(), Some("Alice".into())))
            .unwrap();
        let info = SourceInfo {
            owner: alice.clone(),
            kind: MediaKind::Video,
            codec: Codec {
                name: "VP8".into(),
                payload_type: 96,
                clock_rate: 90_000,
            },
            layers: vec![Layer {
                rid: None,
                ssrc: 1,
                rtx_ssrc: None,
                max_height: 720,
            }],
        };
        a.with_link(|l| l.add_source(&conf, SourceId(8), info))
            .unwrap();
        let (ev_b, _) = deliver(&mut a, &mut b, now);
        assert!(ev_b.iter().any(|e| matches!(e,
            LinkEvent::EndpointJoined { participant, .. } if *participant == alice)));
        assert!(ev_b.iter().any(|e| matches!(e,
            LinkEvent::SourceAdded(rs) if rs.id == SourceId(8) && rs.edge.as_str() == "edge-a--worker-0")));

        // Not subscribed: nothing crosses.
        assert!(!a.send(SourceId(8), &packet(0)));
        b.with_link(|l| l.subscribe(SourceId(8), Subscription::BEST))
            .unwrap();
        let (ev_a, _) = deliver(&mut b, &mut a, now);
        assert!(
            ev_a.iter().any(
                |e| matches!(e, LinkEvent::Subscribed { source, .. } if *source == SourceId(8))
            )
        );
        // Every layer crosses: the sibling picks each subscriber's.
        assert!(a.send(SourceId(8), &packet(0)));
        assert!(a.send(SourceId(8), &packet(1)));
        a.flush();
        // One message for the round, the payload shared.
        let (_, mut media) = deliver(&mut a, &mut b, now);
        let Some(SiblingMsg::Media { from, packets }) = media.pop() else {
            panic!("no media batch");
        };
        assert_eq!((from, packets.len()), (0, 2));
        assert_eq!(&packets[0].1.payload[..], b"frame");
        assert_eq!((packets[0].1.layer, packets[1].1.layer), (0, 1));
        assert!(media.is_empty());

        // Leaving removes the endpoint on the sibling.
        a.with_link(|l| l.endpoint_left(&conf, &alice));
        let (ev_b, _) = deliver(&mut a, &mut b, now);
        assert!(
            ev_b.iter()
                .any(|e| matches!(e, LinkEvent::EndpointLeft { .. }))
        );
    }
}
