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
use tracing::info;

use geomesh_core::{ConferenceId, EdgeId, ParticipantId};
use geomesh_mesh::link::{Link, RemoteSource};
use geomesh_mesh::transport::OctoNode;
use geomesh_mesh::wire::{self, Subscription};

use crate::forward::CodecRef;
use crate::linkshare::LinkShare;
use crate::router::{PeerKey, SourceId};
use crate::sibling::SiblingLink;

/// The media loop's octo state: links to other edges and to sibling workers.
pub(crate) struct Octo {
    /// The edge's octo node (none without peer edges).
    node: Option<Arc<OctoNode>>,
    /// Peer edges and their octo addresses (from the topology).
    peers: Vec<(EdgeId, SocketAddr)>,
    links: HashMap<EdgeId, Port>,
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
pub(super) const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

pub(super) struct Remote {
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
        node: Option<Arc<OctoNode>>,
        peers: Vec<(EdgeId, SocketAddr)>,
        worker: usize,
        siblings: Vec<SiblingLink>,
        sibling_ids: Vec<EdgeId>,
        share: Arc<LinkShare>,
    ) -> Self {
        let mut octo = Self {
            node,
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
                    .insert(peer.clone(), Port::quic(node.connect(peer.clone(), *addr)));
            }
        }
    }

    /// Runs `f` on every link a local participant is announced on: to
    /// other edges and to sibling workers.
    fn each_link(&mut self, f: impl Fn(&mut Link) + Clone + Send + 'static) {
        for link in self.links.values() {
            link.command(f.clone());
        }
        for s in self.siblings.values_mut() {
            s.with_link(&f);
        }
    }

    /// A link the virtual-time harness drives.
    #[cfg(test)]
    pub(crate) fn add_port(&mut self, port: Port) {
        self.links.insert(port.peer().clone(), port);
    }

    /// The soonest sibling-link timeout.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.siblings
            .values()
            .filter_map(|s| s.poll_timeout())
            .min()
    }
}

pub(super) fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Opus => "opus",
        Codec::Vp8 => "VP8",
        Codec::H264 => "H264",
        Codec::Vp9 => "VP9",
        _ => "unknown",
    }
}

pub(super) fn codec_of(name: &str) -> Option<Codec> {
    match name.to_ascii_lowercase().as_str() {
        "opus" => Some(Codec::Opus),
        "vp8" => Some(Codec::Vp8),
        "h264" => Some(Codec::H264),
        "vp9" => Some(Codec::Vp9),
        _ => None,
    }
}

/// Extends a 16-bit sequence number next to the last extended one.
pub(super) fn extend_seq(last: Option<u64>, seq: u16) -> u64 {
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

mod local;
mod port;
mod remote;
mod siblings;

#[cfg(test)]
pub(crate) use port::MemoryPort;
pub(crate) use port::Port;

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
