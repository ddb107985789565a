//! One session's `Rtc` input and drain, and the settling of what drains produced.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::media::MediaAdded;
use str0m::{Event, IceConnectionState, Input, Output};
use tracing::{debug, info, trace, warn};

use geomesh_core::{ConferenceId, ParticipantId};

use super::{IMMEDIATE_TIMEOUTS, Pending, RETARGET_EVERY, Sfu, output};
use crate::agent::ParticipantEvent;
use crate::metrics::Metrics;
use crate::peer::{CONNECT_TIMEOUT, OutState, kind_of, we_receive};
use crate::router::{PeerKey, Role, SourceId};

impl Sfu {
    pub(super) fn on_datagram(&mut self, data: &[u8], src: SocketAddr) {
        let now = self.now;
        let key = match self.by_addr.get(&src) {
            Some(k) => *k,
            None => {
                match geomesh_core::stun::local_ufrag(data).and_then(|u| self.by_ufrag.get(u)) {
                    Some(k) => *k,
                    None => {
                        Metrics::count(&self.metrics.dropped, "unknown_source");
                        trace!(%src, len = data.len(), "datagram from unknown source");
                        return;
                    }
                }
            }
        };
        let Some(input) = crate::peer::udp_input(now, src, self.advertised, data) else {
            Metrics::count(&self.metrics.dropped, "unparseable");
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            Metrics::count(&self.metrics.dropped, "no_session_yet");
            return;
        };
        if !rtc.accepts(&input) {
            Metrics::count(&self.metrics.dropped, "not_accepted");
            return;
        }
        if let Err(e) = rtc.handle_input(input) {
            // A bad packet from a known client does not end its session.
            Metrics::count(&self.metrics.dropped, "rtc_error");
            debug!(peer = key.0, "handle_input: {e}");
        }
        if !peer.addrs.contains(&src) {
            peer.addrs.push(src);
            self.by_addr.insert(src, key);
            self.demux.add_addr(src, self.worker);
        }
        self.drain(key);
    }

    pub(super) fn on_timeouts(&mut self, now: Instant) {
        self.sibling_timeouts(now);
        if self.router.poll_timeout().is_some_and(|t| t <= now) {
            self.router.handle_timeout(now);
        }
        if self.next_retarget <= now {
            self.next_retarget = now + RETARGET_EVERY;
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for key in keys {
                self.retarget_layers(key);
            }
        }
        let due: Vec<PeerKey> = self
            .peers
            .values()
            .filter(|p| p.next_timeout.is_some_and(|t| t <= now))
            .map(|p| p.key)
            .collect();
        for key in due {
            let peer = self.peers.get_mut(&key).expect("listed peer");
            if let Some(at) = peer.offered_at
                && !peer.connected
                && now.saturating_duration_since(at) > CONNECT_TIMEOUT
            {
                self.pending
                    .push_back(Pending::Dead(key, "connect_timeout"));
                continue;
            }
            if let Some(rtc) = peer.rtc.as_mut()
                && let Err(e) = rtc.handle_input(Input::Timeout(now))
            {
                warn!(peer = key.0, "timeout: {e}");
                self.pending.push_back(Pending::Dead(key, "rtc_error"));
                continue;
            }
            self.drain(key);
        }
    }

    /// Drains one session's `Rtc` to its next timeout.
    pub(super) fn drain(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        let now = self.now;
        // str0m asks for a timeout that has already passed when it needs
        // one to go on (its pacer snapshots the queues on a timeout: every
        // packet written to a leg waits for one). Handled here, the packets
        // leave in this round instead of the next. Bounded per drain.
        let mut immediate = 0;
        // Bounded: str0m returns Timeout once its queues are empty.
        for _ in 0..100_000 {
            if !rtc.is_alive() {
                self.pending.push_back(Pending::Dead(key, "closed"));
                peer.next_timeout = None;
                return;
            }
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) if t <= now && immediate < IMMEDIATE_TIMEOUTS => {
                    immediate += 1;
                    if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                        warn!(peer = key.0, "timeout: {e}");
                        self.pending.push_back(Pending::Dead(key, "rtc_error"));
                        return;
                    }
                }
                Ok(Output::Timeout(t)) => {
                    peer.next_timeout = Some(t);
                    return;
                }
                Ok(Output::Transmit(t)) => self.outbox.push(t.destination, &t.contents),
                Ok(Output::Event(ev)) => match ev {
                    Event::Connected => self.pending.push_back(Pending::Connected(key)),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.pending
                            .push_back(Pending::Dead(key, "ice_disconnected"));
                    }
                    Event::MediaAdded(m) => self.pending.push_back(Pending::Added(key, m)),
                    Event::RtpPacket(p) => self.pending.push_back(Pending::Rtp(key, p)),
                    Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc {
                        estimate, ..
                    }) => {
                        self.pending.push_back(Pending::Bwe(key, estimate.as_u64()));
                    }
                    Event::KeyframeRequest(r) => self.pending.push_back(Pending::Keyframe(key, r)),
                    Event::MediaIngressStats(s) => {
                        if let Some(loss) = s.loss {
                            self.metrics.ingress_loss.observe(f64::from(loss));
                        }
                        let seen = self.rtcp_seen.entry((key, s.mid)).or_default();
                        self.metrics.nacks.inc_by(s.nacks.saturating_sub(seen.0));
                        self.metrics.plis.inc_by(s.plis.saturating_sub(seen.1));
                        *seen = (s.nacks.max(seen.0), s.plis.max(seen.1));
                    }
                    Event::Closed => self.pending.push_back(Pending::Dead(key, "closed")),
                    _ => {}
                },
                Err(e) => {
                    warn!(peer = key.0, "poll_output: {e}");
                    self.pending.push_back(Pending::Dead(key, "rtc_error"));
                    return;
                }
            }
        }
        // Reaching here means str0m kept producing output: a bug, but do not spin.
        warn!(peer = key.0, "drain did not reach a timeout");
        peer.next_timeout = Some(now + Duration::from_millis(1));
    }

    /// Settles everything drains and the router produced, then renegotiates.
    pub(super) fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if let Some(p) = self.pending.pop_front() {
                self.on_pending(p);
                continue;
            }
            if let Some(ev) = self.router.poll_event() {
                self.on_router_event(ev);
                continue;
            }
            if let Some(key) = self.undrained.pop() {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.needs_drain = false;
                }
                self.drain(key);
                continue;
            }
            let Some(key) = self
                .peers
                .values()
                .find(|p| p.wants_negotiation())
                .map(|p| p.key)
            else {
                break;
            };
            self.negotiate(key);
        }
        self.octo_reconcile();
        let (p, _) = self.router.counts();
        // Each worker adds its own change: the gauge is edge-wide.
        let p = p as i64;
        self.metrics.participants.inc_by(p - self.counted);
        self.counted = p;
        // A conference spread over workers counts once.
        self.metrics
            .conferences
            .set(self.placement.conferences() as i64);
    }

    pub(super) fn on_pending(&mut self, p: Pending) {
        match p {
            Pending::Added(key, m) => self.on_media_added(key, m),
            Pending::Rtp(key, p) => self.on_rtp(key, p),
            Pending::Keyframe(key, r) => self.on_keyframe_request(key, r),
            Pending::Connected(key) => {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.connected = true;
                    info!(peer = key.0, participant = %peer.participant, "connected");
                }
            }
            Pending::Dead(key, why) => self.remove(key, why),
            Pending::Bwe(key, bps) => {
                let Some(peer) = self.peers.get_mut(&key) else {
                    return;
                };
                // Re-choose layers only on a real change (estimates come often).
                let old = peer.bwe_bps.unwrap_or(0);
                peer.bwe_bps = Some(bps);
                if bps.abs_diff(old) * 10 > old {
                    self.retarget_layers(key);
                }
            }
        }
    }

    pub(super) fn on_media_added(&mut self, key: PeerKey, m: MediaAdded) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let kind = kind_of(m.kind);
        if we_receive(m.direction) && !matches!(peer.role, Role::Viewer { .. }) {
            if peer.sources.contains_key(&m.mid) {
                return;
            }
            if let Some(sim) = &m.simulcast {
                peer.rids
                    .insert(m.mid, sim.recv.iter().map(|l| l.rid).collect());
            }
            match self.router.add_source(self.now, key, kind) {
                Ok(source) => {
                    peer.sources.insert(m.mid, source);
                    debug!(peer = key.0, mid = %m.mid, ?kind, "source added");
                    self.sibling_announce(key, m.mid, source);
                }
                Err(e) => warn!(peer = key.0, "add_source: {e}"),
            }
        } else if matches!(peer.role, Role::Viewer { .. }) {
            // A WHEP client's receive-only m-line: fill it with a waiting track.
            if let Some((source, out)) = peer
                .out
                .iter_mut()
                .find(|(_, o)| o.state == OutState::ToOpen && o.kind == kind)
            {
                out.state = OutState::Open(m.mid);
                let source = *source;
                peer.out_by_mid.insert(m.mid, source);
                self.request_keyframe_for(source);
            } else {
                peer.free_slots.push((m.mid, kind));
            }
        }
    }

    pub(super) fn report(
        &mut self,
        joined: bool,
        conference: ConferenceId,
        participant: ParticipantId,
        since_ms: Option<u64>,
    ) {
        self.outputs.push(output::Output::Report(ParticipantEvent {
            joined,
            conference,
            participant,
            since_ms,
        }));
    }

    /// Ends a session everywhere.
    pub(super) fn remove(&mut self, key: PeerKey, why: &str) {
        let Some(mut peer) = self.peers.remove(&key) else {
            return;
        };
        info!(peer = key.0, participant = %peer.participant, why, "session ended");
        self.placement
            .left(&peer.conference, &peer.participant, self.worker);
        self.report(
            false,
            peer.conference.clone(),
            peer.participant.clone(),
            None,
        );
        self.departed.insert(key, peer.participant.clone());
        for a in &peer.addrs {
            self.by_addr.remove(a);
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.demux.remove(&peer.ufrag, &peer.addrs);
        self.rtcp_seen.retain(|(k, _), _| *k != key);
        if let Some(rtc) = peer.rtc.as_mut() {
            rtc.disconnect();
        }
        if peer.signaling {
            self.outputs.push(output::Output::CloseSignal(key));
        }
        let in_roster = peer.role.in_roster();
        let _ = self.router.leave(key);
        for s in peer.sources.values() {
            self.layer_stats.remove(s);
        }
        if in_roster {
            let sources: Vec<SourceId> = peer.sources.values().copied().collect();
            let last = self.router.local_roster(&peer.conference).is_empty();
            self.octo_local_left(&peer.conference, &peer.participant, &sources, last);
        }
        self.octo_mark_dirty();
        // Settle the Left events while the participant id is still resolvable.
        while let Some(ev) = self.router.poll_event() {
            self.on_router_event(ev);
        }
        self.departed.remove(&key);
    }
}
