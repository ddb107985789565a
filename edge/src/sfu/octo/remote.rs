//! Peers → mine: remote endpoints become routing-table sessions, remote
//! sources routing-table sources, remote packets local input.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{debug, info, warn};

use geomesh_core::{ConferenceId, EdgeId, ParticipantId};
use geomesh_mesh::link::{LinkEvent, RemoteSource};
use geomesh_mesh::transport::OctoEvent;
use geomesh_mesh::wire::{self, MediaType};

use super::*;
use crate::forward::{CodecRef, InPacket};
use crate::messages::MediaKindName;
use crate::metrics::{Direction, LinkLabel, Metrics};
use crate::router::{Kind, PeerInfo, PeerKey, Role, SourceId};
use crate::rtp::{self};
use crate::sfu::Sfu;

impl Sfu {
    /// Applies one octo event.
    pub(in crate::sfu) fn on_octo_event(&mut self, ev: OctoEvent) {
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

    pub(in crate::sfu) fn on_octo_media(&mut self, m: geomesh_mesh::link::MediaIn) {
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
            arrival: self.now,
            video: r.video,
            // The publishing edge sends one layer: legs take what comes.
            layers: 1,
        };
        let local = r.local;
        self.count_media(Direction::In, &input);
        self.forward(local, &input);
    }

    pub(in crate::sfu) fn on_link_event(&mut self, peer: EdgeId, event: LinkEvent) {
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
    pub(in crate::sfu) fn octo_adopt_link(&mut self, peer: &EdgeId) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if octo.links.contains_key(peer) {
            return;
        }
        let Some(link) = octo
            .node
            .as_ref()
            .and_then(|n| n.link(peer))
            .map(Port::quic)
        else {
            return;
        };
        for conference in &octo.open {
            let roster: Vec<_> = self
                .router
                .local_roster(conference)
                .into_iter()
                .map(|info| {
                    let muted = self
                        .peers
                        .get(&info.key)
                        .map_or((false, false), |p| p.muted);
                    (info.participant.clone(), info.name.clone(), muted)
                })
                .collect();
            let conference = conference.clone();
            link.command(move |l| {
                // Errors here repeat ones logged when these were first announced.
                let _ = l.open_conference(&conference);
                for (participant, name, (audio, video)) in roster {
                    let _ = l.endpoint_joined(&conference, participant.clone(), name);
                    if audio || video {
                        let _ = l.endpoint_muted(&conference, &participant, audio, video);
                    }
                }
            });
        }
        // Sources are announced again on their next packet.
        octo.announced.clear();
        octo.incomplete.clear();
        octo.links.insert(peer.clone(), link);
    }

    pub(in crate::sfu) fn remote_endpoint(
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

    pub(in crate::sfu) fn remote_source_added(&mut self, rs: Arc<RemoteSource>) {
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
        let local = match self.router.add_source(self.now, owner, kind) {
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
    pub(in crate::sfu) fn remove_remote(&mut self, key: PeerKey) {
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

    /// A remote endpoint muted or unmuted: local participants of its
    /// conference are told what changed, as for a local mute.
    pub(in crate::sfu) fn remote_endpoint_muted(
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

    /// What a remote endpoint has muted (audio, video).
    pub(in crate::sfu) fn octo_remote_muted(&self, key: PeerKey) -> (bool, bool) {
        self.octo
            .as_ref()
            .and_then(|o| o.muted.get(&key).copied())
            .unwrap_or_default()
    }
}
