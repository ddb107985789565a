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
use geomesh_mesh::link::{LinkEvent, RemoteSource};
use geomesh_mesh::transport::{LinkHandle, OctoEvent, OctoNode, SendError};
use geomesh_mesh::wire::{self, MediaType, Subscription};

use super::MediaLoop;
use crate::forward::{CodecRef, InPacket};
use crate::messages::MediaKindName;
use crate::metrics::{LinkLabel, Metrics};
use crate::router::{Kind, PeerInfo, PeerKey, Role, SourceId};
use crate::rtp::{self, OctoRtp};

/// The media loop's octo state.
pub(crate) struct Octo {
    node: Arc<OctoNode>,
    events: mpsc::Receiver<OctoEvent>,
    /// Peer edges and their octo addresses (from the topology).
    peers: Vec<(EdgeId, SocketAddr)>,
    links: HashMap<EdgeId, LinkHandle>,
    /// Local conferences open on the links.
    open: HashSet<ConferenceId>,
    /// Local sources announced on the links.
    announced: HashSet<SourceId>,
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
    /// Wraps a started node; `peers` are the other edges of the topology.
    pub(crate) fn new(
        node: Arc<OctoNode>,
        events: mpsc::Receiver<OctoEvent>,
        peers: Vec<(EdgeId, SocketAddr)>,
    ) -> Self {
        Self {
            node,
            events,
            peers,
            links: HashMap::new(),
            open: HashSet::new(),
            announced: HashSet::new(),
            endpoints: HashMap::new(),
            sources: HashMap::new(),
            by_local: HashMap::new(),
            dirty: false,
            buf: Vec::with_capacity(1500),
            first_seen: HashMap::new(),
            muted: HashMap::new(),
        }
    }

    /// Links to every peer edge, dialing them on first use (the lower id
    /// dials; the transport retries with backoff).
    fn ensure_links(&mut self) {
        for (peer, addr) in &self.peers {
            if !self.links.contains_key(peer) {
                info!(%peer, %addr, "octo: linking");
                self.links
                    .insert(peer.clone(), self.node.connect(peer.clone(), *addr));
            }
        }
    }
}

/// Receives the next octo event, or waits forever without octo.
pub(crate) async fn next_event(octo: &mut Option<Octo>) -> Option<OctoEvent> {
    match octo {
        Some(o) => o.events.recv().await,
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
        for link in octo.links.values() {
            if first && let Err(e) = link.open_conference(conference) {
                warn!(peer = %link.peer(), "octo open_conference: {e}");
            }
            if let Err(e) = link.endpoint_joined(conference, participant.clone(), name.clone()) {
                warn!(peer = %link.peer(), "octo endpoint_joined: {e}");
            }
        }
    }

    /// A local participant muted or unmuted: every link tells its peer.
    pub(super) fn octo_local_muted(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        (audio, video): (bool, bool),
    ) {
        let Some(octo) = self.octo.as_ref() else {
            return;
        };
        for link in octo.links.values() {
            if let Err(e) = link.endpoint_muted(conference, participant, audio, video) {
                warn!(peer = %link.peer(), "octo endpoint_muted: {e}");
            }
        }
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
            if octo.announced.remove(s) {
                for link in octo.links.values() {
                    link.remove_source(wire::SourceId(s.0));
                }
            }
        }
        for link in octo.links.values() {
            link.endpoint_left(conference, participant);
        }
        if last_local && octo.open.remove(conference) {
            for link in octo.links.values() {
                link.close_conference(conference);
            }
        }
    }

    /// Offers a local source's packet to every link.
    pub(super) fn octo_send(&mut self, source: SourceId, p: &InPacket) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if octo.links.is_empty() {
            return;
        }
        if !octo.announced.contains(&source) {
            let heights: Vec<u16> = self
                .layer_stats
                .get(&source)
                .map_or(Vec::new(), |s| s.heights().collect());
            if p.layers > 1 {
                let first = *octo.first_seen.entry(source).or_insert(p.arrival);
                let known =
                    heights.len() == usize::from(p.layers) && heights.iter().all(|h| *h > 0);
                if !known && p.arrival.saturating_duration_since(first) < ANNOUNCE_WAIT {
                    return;
                }
            }
            let Some(info) = source_info(&self.router, &self.peers, source, p, &heights) else {
                return;
            };
            let Some(conference) = self
                .router
                .source(source)
                .and_then(|(owner, _)| self.router.conference_of(owner).cloned())
            else {
                return;
            };
            if !octo.open.contains(&conference) {
                return;
            }
            for link in octo.links.values() {
                if let Err(e) = link.add_source(&conference, wire::SourceId(source.0), info.clone())
                {
                    warn!(peer = %link.peer(), "octo add_source: {e}");
                }
            }
            octo.announced.insert(source);
        }
        let id = wire::SourceId(source.0);
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
        if let Some(link) = octo.links.get(edge) {
            match link.request_keyframe(*id, None) {
                Ok(true) => Metrics::count(&self.metrics.keyframe_requests, "octo"),
                Ok(false) => Metrics::count(&self.metrics.keyframe_requests, "suppressed"),
                Err(e) => debug!(peer = %edge, "octo keyframe request: {e}"),
            }
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
            let Some(link) = octo.links.get(edge) else {
                continue;
            };
            match want {
                Some(sub) => match link.subscribe(*id, sub) {
                    Ok(()) => {
                        if r.subscribed.is_none() {
                            fresh.push(r.local);
                        }
                        r.subscribed = Some(sub);
                    }
                    Err(e) => warn!(peer = %edge, "octo subscribe: {e}"),
                },
                None => {
                    link.unsubscribe(*id);
                    r.subscribed = None;
                }
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
                Metrics::count(&self.metrics.octo_rejected, "refused");
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
        self.forward(local, &input);
    }

    fn on_link_event(&mut self, peer: EdgeId, event: LinkEvent) {
        match event {
            LinkEvent::Up { region, .. } => {
                info!(%peer, %region, "octo link up");
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
                    Some(r.local)
                });
                if let Some(local) = removed {
                    self.router.remove_source(local);
                    self.octo_mark_dirty();
                }
            }
            LinkEvent::Subscribed { source, .. } => {
                self.request_keyframe_for(SourceId(source.0));
            }
            LinkEvent::KeyframeRequested { source, .. } => {
                self.request_keyframe_for(SourceId(source.0));
            }
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
        let Some(link) = octo.node.link(peer) else {
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
                if let Some(k) = octo.by_local.remove(&s) {
                    octo.sources.remove(&k);
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

/// What the links are told about a local source, from its first packet.
fn source_info(
    router: &crate::router::Router,
    peers: &HashMap<PeerKey, crate::peer::Peer>,
    source: SourceId,
    p: &InPacket,
    heights: &[u16],
) -> Option<wire::SourceInfo> {
    let (owner, kind) = router.source(source)?;
    let publisher = peers.get(&owner)?;
    let mid = publisher
        .sources
        .iter()
        .find(|(_, s)| **s == source)
        .map(|(m, _)| *m)?;
    let rids = publisher.rids.get(&mid).cloned().unwrap_or_default();
    let layers: Vec<wire::Layer> = if rids.is_empty() {
        vec![wire::Layer {
            rid: None,
            ssrc: p.ssrc,
            rtx_ssrc: None,
            max_height: 0,
        }]
    } else {
        rids.iter()
            .take(8)
            .enumerate()
            .map(|(i, r)| wire::Layer {
                rid: Some(r.to_string()),
                // Other layers' SSRCs are not known yet: 0 (receivers go by layer index).
                ssrc: if i == usize::from(p.layer) { p.ssrc } else { 0 },
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
            name: codec_name(p.codec.codec()).to_string(),
            payload_type: p.pt & 0x7f,
            clock_rate: p.codec.clock_rate(),
        },
        layers,
    };
    info.validate().ok()?;
    Some(info)
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
