//! Octo integration of the media loop: one conference across edges.
//!
//! The loop owns an [`OctoNode`] (one QUIC connection per edge pair, shared
//! by all conferences) and mirrors both directions into the routing table:
//!
//! - **Mine → peers.** While a conference has local roster participants,
//!   it is open on every link, with those participants as endpoints and
//!   their sources (announced on a source's first packet, when its SSRC and
//!   codec are known). Every packet of a local source is offered to every
//!   link; a link sends it only while the peer subscribes, and only the one
//!   layer the peer asked for (`forward_unsubscribed` turns that off for the
//!   bandwidth comparison). Packets are serialized only for links that want
//!   them.
//! - **Peers → mine.** A remote endpoint becomes a [`Role::Remote`] session
//!   in the routing table (so rosters show it and WHEP can follow it), each
//!   remote source a routing-table source it owns. Local members subscribe
//!   to it like to any source; when the first local subscriber appears the
//!   edge subscribes on the link, when the last goes it unsubscribes.
//!   Keyframe requests for a remote source cross the link (rate-limited by
//!   the link); the peer's requests for mine go to the publisher.
//!
//! Reconnects need nothing here: links re-announce their state themselves
//! and keep subscriptions; on `Synced` the edge asks for keyframes so
//! decoders recover at once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::format::Codec;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use geomesh_core::{ConferenceId, EdgeId, ParticipantId};
use geomesh_mesh::link::{Link, LinkEvent, RemoteSource};
use geomesh_mesh::transport::{LinkHandle, OctoEvent, OctoNode, SendError};
use geomesh_mesh::wire::{self, MediaType, Subscription};

use super::MediaLoop;
use crate::forward::{CodecRef, InPacket, LayerStats};
use crate::linkshare::LinkShare;
use crate::messages::MediaKindName;
use crate::metrics::{Direction, LinkLabel, Metrics};
use crate::router::{Kind, PeerInfo, PeerKey, Role, SourceId};
use crate::rtp::{self, OctoRtp};
use crate::sibling::{SiblingLink, SiblingMsg};

/// The media loop's octo state: links to other edges and to sibling workers.
pub(crate) struct Octo {
    /// The edge's octo node (none without peer edges).
    node: Option<Arc<OctoNode>>,
    events: Option<mpsc::Receiver<OctoEvent>>,
    /// Peer edges and their octo addresses (from the topology).
    peers: Vec<(EdgeId, SocketAddr)>,
    links: HashMap<EdgeId, LinkHandle>,
    /// The other workers of this edge.
    siblings: HashMap<EdgeId, SiblingLink>,
    /// Sibling identities by worker index.
    sibling_ids: Vec<EdgeId>,
    /// This worker.
    worker: usize,
    /// What the workers share of the links to other edges.
    share: Arc<LinkShare>,
    /// Local conferences open on the links.
    open: HashSet<ConferenceId>,
    /// Local sources announced on the links to other edges.
    announced: HashSet<SourceId>,
    /// Of those, simulcast sources announced before every layer's height
    /// was known: announced again once they are.
    incomplete: HashSet<SourceId>,
    /// Local sources announced on the sibling links, with the codec told.
    sibling_announced: HashMap<SourceId, Codec>,
    /// Remote endpoints → their routing-table sessions.
    endpoints: HashMap<(EdgeId, ConferenceId, ParticipantId), PeerKey>,
    /// Remote sources → routing-table sources.
    sources: HashMap<(EdgeId, wire::SourceId), Remote>,
    /// Routing-table source → its remote identity.
    by_local: HashMap<SourceId, (EdgeId, wire::SourceId)>,
    /// Subscriptions may need changing (set by routing changes).
    dirty: bool,
    /// Scratch buffer for serializing packets.
    buf: Vec<u8>,
    /// When each local simulcast source was first seen (announced once its
    /// layer heights are known, or after [`ANNOUNCE_WAIT`]).
    first_seen: HashMap<SourceId, Instant>,
    /// (audio, video) muted of remote endpoints with a track muted.
    muted: HashMap<PeerKey, (bool, bool)>,
    /// Each peer edge's region, from its Hello.
    regions: HashMap<EdgeId, geomesh_core::RegionId>,
}

/// A simulcast source is announced once every layer's height is known (the
/// peer needs heights to ask for the layer its subscribers' tiles need),
/// or after this long without.
const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

struct Remote {
    local: SourceId,
    codec: CodecRef,
    video: bool,
    /// What this edge asked the peer for (None: not subscribed).
    subscribed: Option<Subscription>,
    /// Last extended sequence number per SSRC (octo carries 16 bits).
    last_seq: HashMap<u32, u64>,
    info: Arc<RemoteSource>,
}

impl Octo {
    /// Worker `worker`'s octo state: the edge's started node, if any, with
    /// `peers` the other edges of the topology; `siblings` the links to the
    /// other workers, `sibling_ids` every worker's identity on them.
    pub(crate) fn new(
        node: Option<(Arc<OctoNode>, mpsc::Receiver<OctoEvent>)>,
        peers: Vec<(EdgeId, SocketAddr)>,
        worker: usize,
        siblings: Vec<SiblingLink>,
        sibling_ids: Vec<EdgeId>,
        share: Arc<LinkShare>,
    ) -> Self {
        let (node, events) = node.unzip();
        let mut octo = Self {
            node,
            events,
            peers,
            links: HashMap::new(),
            siblings: siblings
                .into_iter()
                .map(|s| (s.peer().clone(), s))
                .collect(),
            sibling_ids,
            worker,
            share,
            open: HashSet::new(),
            announced: HashSet::new(),
            incomplete: HashSet::new(),
            sibling_announced: HashMap::new(),
            endpoints: HashMap::new(),
            sources: HashMap::new(),
            by_local: HashMap::new(),
            dirty: false,
            buf: Vec::with_capacity(1500),
            first_seen: HashMap::new(),
            muted: HashMap::new(),
            regions: HashMap::new(),
        };
        // Links come up at start, not with the first shared conference:
        // the first cross-edge meeting does not wait for a QUIC handshake,
        // and a blocked octo port shows at once (`geomesh doctor`), not
        // when users first meet across regions.
        octo.ensure_links();
        octo
    }

    /// A peer edge's region, once its link came up.
    pub(crate) fn region_of(&self, edge: &EdgeId) -> Option<&geomesh_core::RegionId> {
        self.regions.get(edge)
    }

    /// Whether `edge` names one of this edge's own workers.
    pub(crate) fn is_sibling(&self, edge: &EdgeId) -> bool {
        self.sibling_ids.contains(edge)
    }

    /// Links to every peer edge (the lower id dials; the transport retries
    /// with backoff).
    fn ensure_links(&mut self) {
        let Some(node) = &self.node else {
            return;
        };
        for (peer, addr) in &self.peers {
            if !self.links.contains_key(peer) {
                info!(%peer, %addr, "octo: linking");
                self.links
                    .insert(peer.clone(), node.connect(peer.clone(), *addr));
            }
        }
    }

    /// Runs `f` on every link a local participant is announced on: to
    /// other edges and to sibling workers.
    fn each_link(&mut self, mut f: impl FnMut(&mut Link)) {
        for link in self.links.values() {
            link.with_link(&mut f);
        }
        for s in self.siblings.values_mut() {
            s.with_link(&mut f);
        }
    }

    /// The soonest sibling-link timeout.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.siblings
            .values()
            .filter_map(|s| s.poll_timeout())
            .min()
    }
}

/// Receives the next octo event, or waits forever without octo.
pub(crate) async fn next_event(octo: &mut Option<Octo>) -> Option<OctoEvent> {
    match octo.as_mut().and_then(|o| o.events.as_mut()) {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Opus => "opus",
        Codec::Vp8 => "VP8",
        Codec::H264 => "H264",
        Codec::Vp9 => "VP9",
        _ => "unknown",
    }
}

fn codec_of(name: &str) -> Option<Codec> {
    match name.to_ascii_lowercase().as_str() {
        "opus" => Some(Codec::Opus),
        "vp8" => Some(Codec::Vp8),
        "h264" => Some(Codec::H264),
        "vp9" => Some(Codec::Vp9),
        _ => None,
    }
}

/// Extends a 16-bit sequence number next to the last extended one.
fn extend_seq(last: Option<u64>, seq: u16) -> u64 {
    // Start one cycle up so early reordering cannot go below zero.
    let Some(last) = last else {
        return 65_536 + u64::from(seq);
    };
    let base = last & !0xffff;
    [base.wrapping_sub(65_536), base, base + 65_536]
        .into_iter()
        .map(|b| b.wrapping_add(u64::from(seq)))
        .min_by_key(|c| c.abs_diff(last))
        .unwrap_or(last)
}

impl MediaLoop {
    /// A local participant joined `conference`: open it on every link (first
    /// local participant) and announce the endpoint.
    pub(super) fn octo_local_joined(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        name: Option<String>,
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        octo.ensure_links();
        let first = octo.open.insert(conference.clone());
        if first {
            octo.share.opened(conference);
        }
        octo.each_link(|link| {
            if first && let Err(e) = link.open_conference(conference) {
                warn!(peer = %link.peer(), "octo open_conference: {e}");
            }
            if let Err(e) = link.endpoint_joined(conference, participant.clone(), name.clone()) {
                warn!(peer = %link.peer(), "octo endpoint_joined: {e}");
            }
        });
    }

    /// A local participant muted or unmuted: every link tells its peer.
    pub(super) fn octo_local_muted(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        (audio, video): (bool, bool),
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        octo.each_link(|link| {
            if let Err(e) = link.endpoint_muted(conference, participant, audio, video) {
                warn!(peer = %link.peer(), "octo endpoint_muted: {e}");
            }
        });
    }

    /// What a remote endpoint has muted (audio, video).
    pub(super) fn octo_remote_muted(&self, key: PeerKey) -> (bool, bool) {
        self.octo
            .as_ref()
            .and_then(|o| o.muted.get(&key).copied())
            .unwrap_or_default()
    }

    /// A remote endpoint muted or unmuted: local participants of its
    /// conference are told what changed, as for a local mute.
    fn remote_endpoint_muted(
        &mut self,
        edge: &EdgeId,
        conference: ConferenceId,
        participant: ParticipantId,
        now: (bool, bool),
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let Some(&key) = octo
            .endpoints
            .get(&(edge.clone(), conference, participant.clone()))
        else {
            return;
        };
        let before = octo.muted.get(&key).copied().unwrap_or_default();
        if now == (false, false) {
            octo.muted.remove(&key);
        } else {
            octo.muted.insert(key, now);
        }
        let changed = [
            (MediaKindName::Audio, before.0, now.0),
            (MediaKindName::Video, before.1, now.1),
        ];
        for (kind, was, muted) in changed {
            if was != muted {
                self.tell_muted(key, &participant, kind, muted);
            }
        }
    }

    /// A local participant left; its sources are gone; the conference
    /// closes on the links when no local roster participant remains.
    pub(super) fn octo_local_left(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        sources: &[SourceId],
        last_local: bool,
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        for s in sources {
            octo.first_seen.remove(s);
            octo.incomplete.remove(s);
            if octo.announced.remove(s) {
                for link in octo.links.values() {
                    link.remove_source(wire::SourceId(s.0));
                }
            }
            if octo.sibling_announced.remove(s).is_some() {
                for link in octo.siblings.values_mut() {
                    link.with_link(|l| l.remove_source(wire::SourceId(s.0)));
                }
            }
        }
        octo.each_link(|link| link.endpoint_left(conference, participant));
        if last_local && octo.open.remove(conference) {
            for s in octo.siblings.values_mut() {
                s.with_link(|l| l.close_conference(conference));
            }
            // Other workers may still host it on this edge.
            if octo.share.closed(conference) {
                for link in octo.links.values() {
                    link.close_conference(conference);
                }
            }
        }
    }

    /// A local publisher negotiated a source: announce it to the sibling
    /// workers at once (they take every layer, so they need no heights),
    /// so their subscribers get the track before the first packet, as the
    /// publisher's own worker's do. The codec is the publisher's first
    /// negotiated one; the first packet corrects it if it differs.
    pub(super) fn sibling_announce(
        &mut self,
        owner: PeerKey,
        mid: str0m::media::Mid,
        source: SourceId,
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if octo.siblings.is_empty() {
            return;
        }
        let Some(rtc) = self.peers.get(&owner).and_then(|p| p.rtc.as_ref()) else {
            return;
        };
        let Some(pt) = rtc.media(mid).and_then(|m| m.remote_pts().first().copied()) else {
            return;
        };
        let Some(params) = rtc.codec_config().params().iter().find(|p| p.pt() == pt) else {
            return;
        };
        let meta = CodecMeta {
            codec: params.spec().codec,
            clock_rate: params.spec().clock_rate.get(),
            pt: *pt,
        };
        announce_to_siblings(octo, &self.router, &self.peers, source, meta, None);
    }

    /// Offers a local source's packet to every link.
    pub(super) fn octo_send(&mut self, source: SourceId, p: &InPacket) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let id = wire::SourceId(source.0);
        if !octo.siblings.is_empty() {
            let meta = CodecMeta::of(p);
            if octo.sibling_announced.get(&source) != Some(&meta.codec) {
                announce_to_siblings(
                    octo,
                    &self.router,
                    &self.peers,
                    source,
                    meta,
                    Some((p.layer, p.ssrc)),
                );
            }
            let mut crossed = 0;
            for s in octo.siblings.values_mut() {
                crossed += u64::from(s.send(id, p));
            }
            if crossed > 0 {
                self.metrics.sibling_packets.inc_by(crossed);
            }
        }
        if octo.links.is_empty() {
            return;
        }
        // Heights are learnt from keyframes: check again on one.
        if p.keyframe
            && octo.incomplete.contains(&source)
            && all_heights_known(&layer_heights(&self.layer_stats, source), p.layers)
        {
            octo.incomplete.remove(&source);
            octo.announced.remove(&source);
        }
        if !octo.announced.contains(&source) {
            let heights = layer_heights(&self.layer_stats, source);
            let mut known = true;
            if p.layers > 1 {
                let first = *octo.first_seen.entry(source).or_insert(p.arrival);
                known = all_heights_known(&heights, p.layers);
                if !known && p.arrival.saturating_duration_since(first) < ANNOUNCE_WAIT {
                    return;
                }
            }
            let Some((conference, info)) = source_info(
                &self.router,
                &self.peers,
                source,
                CodecMeta::of(p),
                Some((p.layer, p.ssrc)),
                &heights,
            ) else {
                return;
            };
            if !octo.open.contains(&conference) {
                return;
            }
            for link in octo.links.values() {
                if let Err(e) = link.add_source(&conference, id, info.clone()) {
                    warn!(peer = %link.peer(), "octo add_source: {e}");
                }
            }
            octo.announced.insert(source);
            if !known {
                octo.incomplete.insert(source);
            }
        }
        let mut serialized = false;
        for link in octo.links.values() {
            if !link.wants_media(id, MediaType::Rtp, p.layer) {
                continue;
            }
            if !serialized {
                rtp::write(
                    &OctoRtp {
                        pt: p.pt,
                        marker: p.marker,
                        // The low 16 bits are the wire's sequence number.
                        seq: p.seq as u16,
                        ts: p.ts,
                        ssrc: p.ssrc,
                        audio_level: p.audio_level.map(|(l, v)| (l, v.unwrap_or(false))),
                        payload: p.payload.clone(),
                    },
                    &mut octo.buf,
                );
                serialized = true;
            }
            match link.send_media(id, MediaType::Rtp, p.layer, &octo.buf) {
                Ok(()) | Err(SendError::NotSent(_)) => {}
                Err(e) => debug!(peer = %link.peer(), "octo send: {e}"),
            }
        }
    }

    /// Asks the publishing edge of a remote source for a keyframe.
    /// Returns false when `source` is not remote.
    pub(super) fn octo_request_keyframe(&mut self, source: SourceId) -> bool {
        let Some(octo) = self.octo.as_mut() else {
            return false;
        };
        let Some((edge, id)) = octo.by_local.get(&source) else {
            return false;
        };
        let (asked, via) = if let Some(link) = octo.links.get(edge) {
            (link.request_keyframe(*id, None), "octo")
        } else if let Some(s) = octo.siblings.get_mut(edge) {
            (
                s.with_link(|l| l.request_keyframe(Instant::now(), *id, None)),
                "sibling",
            )
        } else {
            return true;
        };
        match asked {
            Ok(true) => Metrics::count(&self.metrics.keyframe_requests, via),
            Ok(false) => Metrics::count(&self.metrics.keyframe_requests, "suppressed"),
            Err(e) => debug!(peer = %edge, "octo keyframe request: {e}"),
        }
        true
    }

    /// Routing changed: subscriptions to remote sources may need updating.
    pub(super) fn octo_mark_dirty(&mut self) {
        if let Some(o) = self.octo.as_mut() {
            o.dirty = true;
        }
    }

    /// Subscribes on the link to remote sources that gained their first
    /// local subscriber; unsubscribes from those that lost their last.
    pub(super) fn octo_reconcile(&mut self) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if !std::mem::take(&mut octo.dirty) {
            return;
        }
        let mut fresh = Vec::new();
        for ((edge, id), r) in octo.sources.iter_mut() {
            // The tallest tile among local subscribers decides the layer
            // that crosses (0: someone has no limit).
            let (mut any, mut unlimited, mut tallest) = (false, false, 0u16);
            for k in self.router.forwarded_to(r.local) {
                any = true;
                match self.peers.get(&k).and_then(|p| p.max_height) {
                    Some(h) => tallest = tallest.max(h),
                    None => unlimited = true,
                }
            }
            let want = any.then_some(Subscription {
                max_layer: Subscription::ANY_LAYER,
                max_height: if unlimited { 0 } else { tallest },
            });
            if want == r.subscribed {
                continue;
            }
            // The link asks for `target`: a sibling's link is this worker's
            // own; a peer edge's is shared by the workers and carries the
            // widest wish. Compared with the link's own state, which the
            // peer can change (a source replaced after a restart).
            let apply = |l: &mut Link, target: Option<Subscription>| {
                if l.subscription(*id) == target {
                    return Ok(());
                }
                match target {
                    Some(sub) => l.subscribe(*id, sub),
                    None => {
                        l.unsubscribe(*id);
                        Ok(())
                    }
                }
            };
            let result = if let Some(s) = octo.siblings.get_mut(edge) {
                s.with_link(|l| apply(l, want))
            } else if let Some(link) = octo.links.get(edge) {
                let merged = octo.share.want(edge, *id, octo.worker, want);
                link.with_link(|l| apply(l, merged))
            } else {
                continue;
            };
            match result {
                Ok(()) => {
                    if want.is_some() && r.subscribed.is_none() {
                        fresh.push(r.local);
                    }
                    r.subscribed = want;
                }
                Err(e) => warn!(peer = %edge, "octo subscribe: {e}"),
            }
        }
        for s in fresh {
            self.request_keyframe_for(s);
        }
    }

    /// Applies one octo event.
    pub(super) fn on_octo_event(&mut self, ev: OctoEvent) {
        match ev {
            OctoEvent::Media(m) => self.on_octo_media(m),
            OctoEvent::Link { peer, event } => self.on_link_event(peer, event),
            OctoEvent::Rejected { remote, reason } => {
                let label = if reason.starts_with("unknown edge") {
                    "unknown_edge"
                } else {
                    "refused"
                };
                Metrics::count(&self.metrics.octo_rejected, label);
                debug!(%remote, %reason, "octo connection refused");
            }
            _ => {}
        }
    }

    fn on_octo_media(&mut self, m: geomesh_mesh::link::MediaIn) {
        if m.ty != MediaType::Rtp {
            return;
        }
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let key = (m.source.edge.clone(), m.source.id);
        let Some(r) = octo.sources.get_mut(&key) else {
            Metrics::count(&self.metrics.dropped, "octo_unknown_source");
            return;
        };
        let packet = match rtp::parse(&m.packet) {
            Ok(p) => p,
            Err(e) => {
                Metrics::count(&self.metrics.dropped, "octo_bad_rtp");
                debug!(peer = %m.source.edge, "octo RTP: {e}");
                return;
            }
        };
        let last = r.last_seq.get(&packet.ssrc).copied();
        let seq = extend_seq(last, packet.seq);
        if last.is_none_or(|l| seq > l) {
            r.last_seq.insert(packet.ssrc, seq);
        }
        let layer = r.info.info.layer_of_ssrc(packet.ssrc).unwrap_or(0);
        let input = InPacket {
            layer,
            ssrc: packet.ssrc,
            seq,
            ts: packet.ts,
            marker: packet.marker,
            pt: packet.pt,
            keyframe: r.video && InPacket::detect_keyframe(r.codec.codec(), &packet.payload),
            codec: r.codec,
            payload: packet.payload,
            audio_level: packet.audio_level.map(|(l, v)| (l, Some(v))),
            arrival: Instant::now(),
            video: r.video,
            // The publishing edge sends one layer: legs take what comes.
            layers: 1,
        };
        let local = r.local;
        self.count_media(Direction::In, &input);
        self.forward(local, &input);
    }

    /// A message from a sibling worker.
    pub(super) fn on_sibling(&mut self, msg: SiblingMsg) {
        let now = Instant::now();
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        match msg {
            SiblingMsg::Control { from, bytes } => {
                let Some(id) = octo.sibling_ids.get(from).cloned() else {
                    return;
                };
                let Some(link) = octo.siblings.get_mut(&id) else {
                    return;
                };
                link.handle_control(now, &bytes);
                self.sibling_events(&id);
            }
            SiblingMsg::Media { from, packets } => {
                let Some(id) = octo.sibling_ids.get(from).cloned() else {
                    return;
                };
                // One key for the batch: no allocation per packet.
                let mut key = (id, wire::SourceId(0));
                for (source, p) in packets {
                    key.1 = source;
                    self.on_sibling_media(&key, p);
                }
            }
        }
    }

    /// Sibling links whose timers are due.
    pub(super) fn sibling_timeouts(&mut self, now: Instant) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        for (id, s) in octo.siblings.iter_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
                due.push(id.clone());
            }
        }
        for id in due {
            self.sibling_events(&id);
        }
    }

    /// Applies what a sibling link has to say, like any link's events.
    fn sibling_events(&mut self, id: &EdgeId) {
        // Bounded: a link yields what one input produced.
        for _ in 0..10_000 {
            let Some(ev) = self
                .octo
                .as_mut()
                .and_then(|o| o.siblings.get_mut(id))
                .and_then(|s| s.poll_event())
            else {
                return;
            };
            self.on_link_event(id.clone(), ev);
        }
    }

    /// Sends the round's packets to the sibling workers.
    pub(super) fn flush_siblings(&mut self) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        for s in octo.siblings.values_mut() {
            let lost = s.flush();
            if lost > 0 {
                Metrics::count_n(&self.metrics.dropped, "sibling_backlog", lost as u64);
            }
        }
    }

    /// A sibling's packet: forwarded like a local publisher's, simulcast
    /// layers and all (the sibling already counted it in and extended its
    /// sequence number).
    fn on_sibling_media(&mut self, key: &(EdgeId, wire::SourceId), p: InPacket) {
        let Some(r) = self.octo.as_ref().and_then(|o| o.sources.get(key)) else {
            Metrics::count(&self.metrics.dropped, "octo_unknown_source");
            return;
        };
        let local = r.local;
        let input = InPacket {
            codec: r.codec,
            // Every layer crosses: legs choose theirs (at most 8, as announced).
            layers: r.info.info.layers.len().clamp(1, 8) as u8,
            ..p
        };
        self.forward(local, &input);
    }

    fn on_link_event(&mut self, peer: EdgeId, event: LinkEvent) {
        match event {
            LinkEvent::Up { region, .. } => {
                info!(%peer, %region, "octo link up");
                if let Some(o) = self.octo.as_mut() {
                    o.regions.insert(peer.clone(), region);
                }
                self.octo_adopt_link(&peer);
            }
            LinkEvent::Synced => {
                // Media resumes after a reconnect: decoders need a keyframe.
                let subscribed: Vec<SourceId> = self.octo.as_ref().map_or(Vec::new(), |o| {
                    o.sources
                        .iter()
                        .filter(|((e, _), r)| *e == peer && r.subscribed.is_some())
                        .map(|(_, r)| r.local)
                        .collect()
                });
                for s in subscribed {
                    self.request_keyframe_for(s);
                }
            }
            LinkEvent::Down { reason } => info!(%peer, ?reason, "octo link down"),
            LinkEvent::EndpointJoined {
                conference,
                participant,
                display_name,
            } => self.remote_endpoint(&peer, conference, participant, display_name),
            LinkEvent::EndpointMuted {
                conference,
                participant,
                audio,
                video,
            } => self.remote_endpoint_muted(&peer, conference, participant, (audio, video)),
            LinkEvent::EndpointLeft {
                conference,
                participant,
            } => {
                let key = self
                    .octo
                    .as_mut()
                    .and_then(|o| o.endpoints.remove(&(peer.clone(), conference, participant)));
                if let Some(key) = key {
                    self.remove_remote(key);
                }
            }
            LinkEvent::ConferenceClosed { conference } => {
                let keys: Vec<PeerKey> = self.octo.as_mut().map_or(Vec::new(), |o| {
                    let gone: Vec<_> = o
                        .endpoints
                        .keys()
                        .filter(|(e, c, _)| *e == peer && *c == conference)
                        .cloned()
                        .collect();
                    gone.iter().filter_map(|k| o.endpoints.remove(k)).collect()
                });
                for key in keys {
                    self.remove_remote(key);
                }
            }
            LinkEvent::SourceAdded(rs) => self.remote_source_added(rs),
            LinkEvent::SourceRemoved(rs) => {
                let removed = self.octo.as_mut().and_then(|o| {
                    let r = o.sources.remove(&(rs.edge.clone(), rs.id))?;
                    o.by_local.remove(&r.local);
                    o.share.want(&rs.edge, rs.id, o.worker, None);
                    Some(r.local)
                });
                if let Some(local) = removed {
                    self.router.remove_source(local);
                    self.layer_stats.remove(&local);
                    self.octo_mark_dirty();
                }
            }
            LinkEvent::Subscribed { source, .. } => {
                self.request_keyframe_for(SourceId(source.0));
            }
            LinkEvent::KeyframeRequested { source, .. } => {
                self.request_keyframe_for(SourceId(source.0));
            }
            LinkEvent::Rtt(_)
                if self
                    .octo
                    .as_ref()
                    .is_some_and(|o| o.siblings.contains_key(&peer)) => {}
            LinkEvent::Rtt(rtt) => {
                self.metrics
                    .octo_rtt
                    .get_or_create(&LinkLabel {
                        peer: peer.to_string(),
                    })
                    .set(rtt.as_secs_f64());
            }
            LinkEvent::Goodbye { reason, message } => {
                info!(%peer, ?reason, %message, "octo peer said goodbye");
            }
            LinkEvent::Failed(e) => warn!(%peer, "octo link failed: {e}"),
            _ => {}
        }
    }

    /// An inbound link from an edge we did not dial: announce our open
    /// conferences on it too.
    fn octo_adopt_link(&mut self, peer: &EdgeId) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if octo.links.contains_key(peer) {
            return;
        }
        let Some(link) = octo.node.as_ref().and_then(|n| n.link(peer)) else {
            return;
        };
        for conference in &octo.open {
            let _ = link.open_conference(conference);
            for info in self.router.local_roster(conference) {
                let _ =
                    link.endpoint_joined(conference, info.participant.clone(), info.name.clone());
                if let Some(p) = self.peers.get(&info.key)
                    && p.muted != (false, false)
                {
                    let _ =
                        link.endpoint_muted(conference, &info.participant, p.muted.0, p.muted.1);
                }
            }
        }
        // Sources are announced again on their next packet.
        octo.announced.clear();
        octo.incomplete.clear();
        octo.links.insert(peer.clone(), link);
    }

    fn remote_endpoint(
        &mut self,
        edge: &EdgeId,
        conference: ConferenceId,
        participant: ParticipantId,
        name: Option<String>,
    ) {
        let k = (edge.clone(), conference.clone(), participant.clone());
        if self
            .octo
            .as_ref()
            .is_none_or(|o| o.endpoints.contains_key(&k))
        {
            return;
        }
        let key = self.new_key();
        let info = PeerInfo {
            key,
            participant,
            name,
            role: Role::Remote { edge: edge.clone() },
        };
        if let Err(e) = self.router.join(conference, info) {
            warn!("router join (remote): {e}");
            return;
        }
        if let Some(octo) = self.octo.as_mut() {
            octo.endpoints.insert(k, key);
        }
    }

    fn remote_source_added(&mut self, rs: Arc<RemoteSource>) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let owner_key = (
            rs.edge.clone(),
            rs.conference.clone(),
            rs.info.owner.clone(),
        );
        let Some(&owner) = octo.endpoints.get(&owner_key) else {
            Metrics::count(&self.metrics.dropped, "octo_source_without_endpoint");
            return;
        };
        let Some(codec) = codec_of(&rs.info.codec.name) else {
            Metrics::count(&self.metrics.dropped, "octo_unknown_codec");
            return;
        };
        let kind = match rs.info.kind {
            wire::MediaKind::Audio => Kind::Audio,
            wire::MediaKind::Video => Kind::Video,
        };
        let key = (rs.edge.clone(), rs.id);
        if let Some(old) = octo.sources.remove(&key) {
            // Re-announced with other details: replace.
            octo.by_local.remove(&old.local);
            self.router.remove_source(old.local);
        }
        let local = match self.router.add_source(owner, kind) {
            Ok(s) => s,
            Err(e) => {
                warn!("router add_source (remote): {e}");
                return;
            }
        };
        let octo = self.octo.as_mut().expect("checked above");
        octo.by_local.insert(local, key.clone());
        octo.sources.insert(
            key,
            Remote {
                local,
                codec: CodecRef::Remote {
                    codec,
                    clock_rate: rs.info.codec.clock_rate,
                },
                video: kind == Kind::Video,
                subscribed: None,
                last_seq: HashMap::new(),
                info: rs,
            },
        );
        octo.dirty = true;
    }

    /// Removes a remote endpoint's session (its sources go with it).
    fn remove_remote(&mut self, key: PeerKey) {
        if let Some(octo) = self.octo.as_mut() {
            octo.muted.remove(&key);
            let gone: Vec<SourceId> = octo
                .by_local
                .keys()
                .copied()
                .filter(|s| self.router.source(*s).is_some_and(|(o, _)| o == key))
                .collect();
            for s in gone {
                self.layer_stats.remove(&s);
                if let Some(k) = octo.by_local.remove(&s) {
                    octo.sources.remove(&k);
                    octo.share.want(&k.0, k.1, octo.worker, None);
                }
            }
            octo.dirty = true;
        }
        if let Some(info) = self.router.peer(key).cloned() {
            self.departed.insert(key, info.participant);
        }
        let _ = self.router.leave(key);
        while let Some(ev) = self.router.poll_event() {
            self.on_router_event(ev);
        }
        self.departed.remove(&key);
    }
}

/// The measured heights of a local source's simulcast layers (0: none yet).
fn layer_heights(stats: &HashMap<SourceId, LayerStats>, source: SourceId) -> Vec<u16> {
    stats
        .get(&source)
        .map_or(Vec::new(), |s| s.heights().collect())
}

/// Whether each of `layers` layers has a known height.
fn all_heights_known(heights: &[u16], layers: u8) -> bool {
    heights.len() == usize::from(layers) && heights.iter().all(|h| *h > 0)
}

/// Announces a local source on every sibling link (again: replaces it).
fn announce_to_siblings(
    octo: &mut Octo,
    router: &crate::router::Router,
    peers: &HashMap<PeerKey, crate::peer::Peer>,
    source: SourceId,
    meta: CodecMeta,
    seen: Option<(u8, u32)>,
) {
    let Some((conference, info)) = source_info(router, peers, source, meta, seen, &[]) else {
        return;
    };
    if !octo.open.contains(&conference) {
        return;
    }
    for link in octo.siblings.values_mut() {
        link.with_link(|l| {
            if let Err(e) = l.add_source(&conference, wire::SourceId(source.0), info.clone()) {
                warn!(peer = %l.peer(), "sibling add_source: {e}");
            }
        });
    }
    octo.sibling_announced.insert(source, meta.codec);
}

/// A source's codec as announced.
#[derive(Debug, Clone, Copy)]
struct CodecMeta {
    codec: Codec,
    clock_rate: u32,
    pt: u8,
}

impl CodecMeta {
    fn of(p: &InPacket) -> Self {
        Self {
            codec: p.codec.codec(),
            clock_rate: p.codec.clock_rate(),
            pt: p.pt,
        }
    }
}

/// A local source's conference and announcement; `seen` is the layer and
/// SSRC of a packet, when one arrived.
fn source_info(
    router: &crate::router::Router,
    peers: &HashMap<PeerKey, crate::peer::Peer>,
    source: SourceId,
    meta: CodecMeta,
    seen: Option<(u8, u32)>,
    heights: &[u16],
) -> Option<(ConferenceId, wire::SourceInfo)> {
    let (owner, kind) = router.source(source)?;
    let publisher = peers.get(&owner)?;
    let mid = publisher
        .sources
        .iter()
        .find(|(_, s)| **s == source)
        .map(|(m, _)| *m)?;
    // Other layers' SSRCs are not known yet: 0 (receivers go by layer index).
    let ssrc_of = |i: usize| match seen {
        Some((layer, ssrc)) if usize::from(layer) == i => ssrc,
        _ => 0,
    };
    let rids = publisher.rids.get(&mid).cloned().unwrap_or_default();
    let layers: Vec<wire::Layer> = if rids.is_empty() {
        vec![wire::Layer {
            rid: None,
            ssrc: ssrc_of(0),
            rtx_ssrc: None,
            max_height: 0,
        }]
    } else {
        rids.iter()
            .take(8)
            .enumerate()
            .map(|(i, r)| wire::Layer {
                rid: Some(r.to_string()),
                ssrc: ssrc_of(i),
                rtx_ssrc: None,
                max_height: heights.get(i).copied().unwrap_or(0),
            })
            .collect()
    };
    let info = wire::SourceInfo {
        owner: publisher.participant.clone(),
        kind: match kind {
            Kind::Audio => wire::MediaKind::Audio,
            Kind::Video => wire::MediaKind::Video,
        },
        codec: wire::Codec {
            name: codec_name(meta.codec).to_string(),
            payload_type: meta.pt & 0x7f,
            clock_rate: meta.clock_rate,
        },
        layers,
    };
    info.validate().ok()?;
    Some((publisher.conference.clone(), info))
}

#[cfg(test)]
mod tests {
    use super::extend_seq;

    #[test]
    fn sequence_numbers_extend_across_wraps_and_reordering() {
        let mut last = None;
        let mut out = Vec::new();
        for s in [65_533u16, 65_534, 65_535, 0, 1, 65_535, 2] {
            let e = extend_seq(last, s);
            if last.is_none_or(|l| e > l) {
                last = Some(e);
            }
            out.push(e);
        }
        let base = 65_536 + 65_533;
        assert_eq!(
            out,
            vec![
                base,
                base + 1,
                base + 2,
                base + 3,
                base + 4,
                base + 2,
                base + 5
            ]
        );
    }
}
