//! Routing-table changes applied to sessions: tracks opened and stopped, renegotiation, rosters and mute news.

use str0m::media::Mid;
use tracing::warn;

use geomesh_core::ParticipantId;

use super::Sfu;
use crate::forward::OutForward;
use crate::messages::{MediaKindName, RosterEntry, ServerMessage};
use crate::peer::{OutState, OutTrack, media_kind};
use crate::router::{Kind, PeerKey, Role, RouterEvent, SourceId};

impl Sfu {
    pub(super) fn on_router_event(&mut self, ev: RouterEvent) {
        match ev {
            RouterEvent::Subscribe {
                to,
                source,
                owner,
                kind,
                forwarded,
            } => {
                self.octo_mark_dirty();
                let Some(owner_pid) = self.router.peer(owner).map(|p| p.participant.clone()) else {
                    return;
                };
                let Some(peer) = self.peers.get_mut(&to) else {
                    return;
                };
                let mut track = OutTrack {
                    state: OutState::ToOpen,
                    kind,
                    owner: owner_pid,
                    owner_key: owner,
                    forward: OutForward::default(),
                };
                track.forward.active = forwarded;
                // A new video leg starts at a keyframe: a delta frame before
                // it is undecodable (browsers ask again, others log errors).
                track.forward.awaiting_keyframe = forwarded && kind == Kind::Video;
                let mut opened = false;
                if let Some(i) = peer.free_slots.iter().position(|(_, k)| *k == kind) {
                    let (mid, _) = peer.free_slots.remove(i);
                    track.state = OutState::Open(mid);
                    peer.out_by_mid.insert(mid, source);
                    opened = true;
                }
                peer.out.insert(source, track);
                if opened {
                    self.request_keyframe_for(source);
                }
                self.retarget_layers(to);
            }
            RouterEvent::Unsubscribe { to, source } => {
                self.octo_mark_dirty();
                let Some(peer) = self.peers.get_mut(&to) else {
                    return;
                };
                let Some((state, kind)) = peer.out.get(&source).map(|t| (t.state, t.kind)) else {
                    return;
                };
                let viewer = matches!(peer.role, Role::Viewer { .. });
                match state {
                    OutState::ToOpen => {
                        peer.out.remove(&source);
                    }
                    OutState::Open(mid) | OutState::Negotiating(mid) if viewer => {
                        // WHEP m-lines are the client's: free the slot for the next publisher.
                        peer.out.remove(&source);
                        peer.out_by_mid.remove(&mid);
                        peer.free_slots.push((mid, kind));
                    }
                    OutState::Open(mid) | OutState::Negotiating(mid) => {
                        if let Some(t) = peer.out.get_mut(&source) {
                            t.state = OutState::ToStop(mid);
                        }
                    }
                    OutState::ToStop(_) | OutState::NegotiatingStop(_) => {}
                }
            }
            RouterEvent::Forward { to, source, on } => {
                self.octo_mark_dirty();
                let Some(track) = self.peers.get_mut(&to).and_then(|p| p.out.get_mut(&source))
                else {
                    return;
                };
                let turned_on = on && !track.forward.active;
                track.forward.active = on;
                if turned_on && track.kind == Kind::Video {
                    track.forward.awaiting_keyframe = true;
                }
                if on && matches!(track.state, OutState::Open(_)) {
                    self.request_keyframe_for(source);
                }
                self.retarget_layers(to);
            }
            RouterEvent::KeyframeDue { source } => self.request_keyframe_for(source),
            RouterEvent::DominantSpeaker { to, peer } => {
                let Some(participant) = self.router.peer(peer).map(|i| i.participant.clone())
                else {
                    return;
                };
                if let Some(p) = self.peers.get(&to) {
                    self.outputs
                        .signal(p, ServerMessage::DominantSpeaker { participant });
                }
            }
            RouterEvent::Joined { to, peer } => {
                let Some(entry) = self.roster_entry(peer) else {
                    return;
                };
                if let Some(p) = self.peers.get(&to) {
                    self.outputs
                        .signal(p, ServerMessage::ParticipantJoined { participant: entry });
                }
            }
            RouterEvent::Left { to, peer } => {
                let Some(info) = self.router_peer_participant(peer) else {
                    return;
                };
                if let Some(p) = self.peers.get(&to) {
                    self.outputs
                        .signal(p, ServerMessage::ParticipantLeft { participant: info });
                }
            }
        }
    }

    pub(super) fn router_peer_participant(&self, key: PeerKey) -> Option<ParticipantId> {
        self.peers
            .get(&key)
            .map(|p| p.participant.clone())
            .or_else(|| self.departed.get(&key).cloned())
    }

    /// Sends an edge offer for added and stopped tracks.
    pub(super) fn negotiate(&mut self, key: PeerKey) {
        let peer = self.peers.get_mut(&key).expect("negotiating a known peer");
        let rtc = peer
            .rtc
            .as_mut()
            .expect("wants_negotiation checked the Rtc");
        let mut change = rtc.sdp_api();
        let mut opened: Vec<(SourceId, Mid)> = Vec::new();
        for (source, track) in peer.out.iter_mut() {
            match track.state {
                OutState::ToOpen => {
                    let mid = change.add_media(
                        media_kind(track.kind),
                        str0m::media::Direction::SendOnly,
                        Some(track.owner.to_string()),
                        Some(format!("{}-{}", track.owner, source.0)),
                        None,
                    );
                    track.state = OutState::Negotiating(mid);
                    opened.push((*source, mid));
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    track.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        for (source, mid) in opened {
            peer.out_by_mid.insert(mid, source);
        }
        match change.apply() {
            Some((offer, pending)) => {
                peer.pending = Some(pending);
                self.outputs.signal(
                    peer,
                    ServerMessage::Offer {
                        sdp: offer.to_sdp_string(),
                    },
                );
            }
            None => warn!(peer = key.0, "negotiation produced no offer"),
        }
        self.drain(key);
    }

    /// A roster entry for a local or remote session, with the edge and
    /// region the participant is on (a sibling worker's is this edge).
    pub(super) fn roster_entry(&self, key: PeerKey) -> Option<RosterEntry> {
        let here = (Some(self.edge.to_string()), Some(self.region.to_string()));
        if let Some(p) = self.peers.get(&key) {
            let (edge, region) = here;
            return Some(RosterEntry {
                id: p.participant.clone(),
                name: p.name.clone(),
                audio_muted: p.muted.0,
                video_muted: p.muted.1,
                edge,
                region,
            });
        }
        let info = self.router.peer(key)?;
        let (audio_muted, video_muted) = self.octo_remote_muted(key);
        let (edge, region) = match (&info.role, self.octo.as_ref()) {
            (Role::Remote { edge }, Some(o)) if !o.is_sibling(edge) => (
                Some(edge.to_string()),
                o.region_of(edge).map(ToString::to_string),
            ),
            _ => here,
        };
        Some(RosterEntry {
            id: info.participant.clone(),
            name: info.name.clone(),
            audio_muted,
            video_muted,
            edge,
            region,
        })
    }

    /// Tells every local session in `key`'s roster (but `key`) that
    /// `participant` (whose session `key` is) muted or unmuted `kind`.
    pub(super) fn tell_muted(
        &mut self,
        key: PeerKey,
        participant: &ParticipantId,
        kind: MediaKindName,
        muted: bool,
    ) {
        let message = ServerMessage::Mute {
            participant: participant.clone(),
            kind,
            muted,
        };
        for other in self.router.roster(key) {
            if let Some(p) = self.peers.get(&other.key) {
                self.outputs.signal(p, message.clone());
            }
        }
    }
}
