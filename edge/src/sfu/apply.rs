//! Signaling commands applied to the core: join, offer, answer, mute, constraints, leave, evict, migrate.

use str0m::change::{SdpAnswer, SdpOffer};
use tracing::{debug, info, warn};

use super::Sfu;
use super::command::{Command, Joined, MediaError, Response, SessionSummary};
use crate::messages::{MediaKindName, ServerMessage};
use crate::peer::{OutState, Peer};
use crate::router::{PeerInfo, PeerKey};

impl Sfu {
    pub(super) fn on_command(&mut self, cmd: Command) -> Response {
        match cmd {
            Command::Join {
                conference,
                participant,
                name,
                role,
                signaling,
                since_ms,
                location,
            } => {
                let key = self.new_key();
                let info = PeerInfo {
                    key,
                    participant: participant.clone(),
                    name: name.clone(),
                    role: role.clone(),
                };
                let replaced = match self.router.join(conference.clone(), info) {
                    Ok(r) => r,
                    Err(e) => {
                        // Keys are fresh, so this is a bug; refuse rather than panic.
                        warn!("router join: {e}");
                        return Response::Done;
                    }
                };
                let announce = role.in_roster().then(|| name.clone());
                let peer = Peer::new(
                    key,
                    participant.clone(),
                    name,
                    (conference.clone(), since_ms),
                    role,
                    signaling,
                );
                self.by_ufrag.insert(peer.ufrag.clone(), key);
                self.demux.add_ufrag(&peer.ufrag, self.worker);
                if let (Some(lab), Some(at)) = (self.demux.lab(), location) {
                    lab.located(&peer.ufrag, at);
                }
                self.peers.insert(key, peer);
                self.placement
                    .joined(&conference, &participant, self.worker);
                if let Some(old) = replaced {
                    if let Some(p) = self.peers.get(&old) {
                        self.outputs.signal(
                            p,
                            ServerMessage::error(
                                "replaced",
                                "the same participant joined again elsewhere",
                                true,
                            ),
                        );
                    }
                    self.remove(old, "replaced");
                }
                let roster = self
                    .router
                    .roster(key)
                    .iter()
                    .filter_map(|i| self.roster_entry(i.key))
                    .collect();
                info!(peer = key.0, %participant, %conference, "joined");
                if let Some(name) = announce {
                    self.octo_local_joined(&conference, &participant, name);
                }
                if self.recording.contains(&conference)
                    && let Some(p) = self.peers.get(&key)
                {
                    self.outputs
                        .signal(p, ServerMessage::Recording { active: true });
                }
                let since = self.peers.get(&key).map(|p| p.since_ms);
                self.report(true, conference, participant, since);
                Response::Joined(Joined { key, roster })
            }
            Command::Offer { key, sdp } => Response::Answer(self.on_offer(key, &sdp)),
            Command::Answer { key, sdp } => Response::Applied(self.on_answer(key, &sdp)),
            Command::Mute { key, kind, muted } => {
                let Some(peer) = self.peers.get_mut(&key) else {
                    return Response::Done;
                };
                match kind {
                    MediaKindName::Audio => peer.muted.0 = muted,
                    MediaKindName::Video => peer.muted.1 = muted,
                }
                let (participant, conference, now) = (
                    peer.participant.clone(),
                    peer.conference.clone(),
                    peer.muted,
                );
                self.tell_muted(key, &participant, kind, muted);
                self.octo_local_muted(&conference, &participant, now);
                Response::Done
            }
            Command::Constraints {
                key,
                last_n,
                pinned,
                tiles,
            } => {
                let Some(peer) = self.peers.get_mut(&key) else {
                    return Response::Done;
                };
                peer.tiles = tiles;
                // Bounded: a client cannot make the edge select a huge set.
                let last_n = last_n.map(|n| (n as usize).min(64));
                let pinned = pinned.into_iter().take(16).collect();
                if let Err(e) = self.router.set_receiver(key, last_n, pinned) {
                    debug!(peer = key.0, "constraints: {e}");
                }
                self.octo_mark_dirty();
                self.retarget_layers(key);
                Response::Done
            }
            Command::Leave { key } => {
                let existed = self.peers.contains_key(&key);
                self.remove(key, "left");
                Response::Left(existed)
            }
            Command::Evict {
                conference,
                participant,
                code,
                not_after_ms,
            } => {
                let keys: Vec<PeerKey> = self
                    .peers
                    .values()
                    .filter(|p| {
                        p.conference == conference
                            && p.participant == participant
                            && p.since_ms <= not_after_ms
                    })
                    .map(|p| p.key)
                    .collect();
                for key in keys {
                    if let Some(p) = self.peers.get(&key) {
                        self.outputs.signal(
                            p,
                            ServerMessage::error(
                                code,
                                "this participant is connected to another edge now",
                                true,
                            ),
                        );
                    }
                    self.remove(key, code);
                }
                Response::Done
            }
            Command::Sessions => {
                let list = self
                    .peers
                    .values()
                    .map(|p| SessionSummary {
                        key: p.key,
                        conference: p.conference.clone(),
                        participant: p.participant.clone(),
                        movable: p.signaling,
                    })
                    .collect();
                Response::Sessions(list)
            }
            Command::Recording { conferences } => {
                let changed: Vec<geomesh_core::ConferenceId> = self
                    .recording
                    .symmetric_difference(&conferences)
                    .cloned()
                    .collect();
                for c in &changed {
                    let active = conferences.contains(c);
                    info!(conference = %c, active, "recording");
                    for p in self.peers.values().filter(|p| &p.conference == c) {
                        self.outputs.signal(p, ServerMessage::Recording { active });
                    }
                }
                self.recording = conferences;
                Response::Done
            }
            Command::Migrate { key, reason } => {
                if let Some(p) = self.peers.get(&key) {
                    info!(peer = key.0, participant = %p.participant, reason, "asking the session to move");
                    self.outputs.signal(
                        p,
                        ServerMessage::Migrate {
                            reason: reason.to_string(),
                        },
                    );
                }
                Response::Done
            }
        }
    }

    pub(super) fn on_offer(&mut self, key: PeerKey, sdp: &str) -> Result<String, MediaError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let advertised = self.advertised;
        let peer = self.peers.get_mut(&key).ok_or(MediaError::UnknownSession)?;
        if peer.rtc.is_some() {
            return Err(MediaError::AlreadyOffered);
        }
        let rtc = peer.create_rtc(
            self.now,
            advertised,
            &self.crypto,
            &self.dtls_cert,
            self.bwe,
        );
        match rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                let sdp = answer.to_sdp_string();
                self.drain(key);
                Ok(sdp)
            }
            Err(e) => {
                // Leave the session able to try again with a better offer.
                peer.rtc = None;
                peer.offered_at = None;
                Err(MediaError::BadSdp(e.to_string()))
            }
        }
    }

    pub(super) fn on_answer(&mut self, key: PeerKey, sdp: &str) -> Result<(), MediaError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let peer = self.peers.get_mut(&key).ok_or(MediaError::UnknownSession)?;
        let pending = peer.pending.take().ok_or(MediaError::NoPendingOffer)?;
        let rtc = peer.rtc.as_mut().ok_or(MediaError::NoPendingOffer)?;
        if let Err(e) = rtc.sdp_api().accept_answer(pending, answer) {
            // Our offer is void; put the tracks back so the next offer carries them.
            for t in peer.out.values_mut() {
                t.state = match t.state {
                    OutState::Negotiating(_) => OutState::ToOpen,
                    OutState::NegotiatingStop(m) => OutState::ToStop(m),
                    s => s,
                };
            }
            return Err(MediaError::BadSdp(e.to_string()));
        }
        let mut opened = Vec::new();
        peer.out.retain(|source, t| match t.state {
            OutState::Negotiating(m) => {
                t.state = OutState::Open(m);
                opened.push(*source);
                true
            }
            OutState::NegotiatingStop(m) => {
                peer.out_by_mid.remove(&m);
                false
            }
            _ => true,
        });
        self.drain(key);
        // A late joiner decodes nothing until the next keyframe.
        for source in opened {
            self.request_keyframe_for(source);
        }
        Ok(())
    }
}
