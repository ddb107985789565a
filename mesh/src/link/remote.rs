//! The peer's side of a link: its conferences, roster and sources as
//! announced, my subscriptions to them, and the reconciliation of state
//! re-announced after a reconnect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_core::{ConferenceId, EdgeId, ParticipantId};

use super::{LinkEvent, Outbox, ProtocolViolation, RemoteSource, UsageError};
use crate::wire::{
    ConferenceHandle, ControlFrame, SourceHandle, SourceId, SourceInfo, Subscription,
};

type Roster = BTreeMap<ParticipantId, Option<String>>;

#[derive(Debug)]
struct Conference {
    id: ConferenceId,
    endpoints: Roster,
    sources: BTreeSet<SourceHandle>,
}

#[derive(Debug)]
struct Source {
    source: Arc<RemoteSource>,
    conference: ConferenceHandle,
}

/// Remote state from before a reconnect, waiting to be re-announced.
#[derive(Debug)]
struct Stale {
    deadline: Instant,
    /// Conference → (re-opened yet?, endpoints not re-announced yet).
    conferences: BTreeMap<ConferenceId, (bool, Roster)>,
    sources: BTreeMap<SourceId, Arc<RemoteSource>>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct RemoteState {
    edge: EdgeId,
    conferences: HashMap<ConferenceHandle, Conference>,
    conference_ids: HashMap<ConferenceId, ConferenceHandle>,
    sources: HashMap<SourceHandle, Source>,
    source_ids: HashMap<SourceId, SourceHandle>,
    stale: Option<Stale>,
    /// My subscriptions, by the peer's stable source id; kept across reconnects.
    wanted: HashMap<SourceId, Subscription>,
    last_keyframe_request: HashMap<SourceId, Instant>,
    /// Requests that came within the interval of the last one, by source:
    /// sent when the interval is over (a subscriber that started after the
    /// last keyframe went by still gets one). `None`: every layer.
    deferred_keyframes: HashMap<SourceId, Option<u8>>,
}

impl RemoteState {
    pub(crate) fn new(edge: EdgeId) -> Self {
        Self {
            edge,
            conferences: HashMap::new(),
            conference_ids: HashMap::new(),
            sources: HashMap::new(),
            source_ids: HashMap::new(),
            stale: None,
            wanted: HashMap::new(),
            last_keyframe_request: HashMap::new(),
            deferred_keyframes: HashMap::new(),
        }
    }

    /// The connection is gone: everything becomes stale until re-announced
    /// or until `now + grace` (the earlier deadline wins if already stale).
    pub(crate) fn disconnected(&mut self, now: Instant, grace: Duration) {
        let stale = self.stale.get_or_insert_with(|| Stale {
            deadline: now + grace,
            conferences: BTreeMap::new(),
            sources: BTreeMap::new(),
        });
        for (_, c) in self.conferences.drain() {
            let entry = stale
                .conferences
                .entry(c.id)
                .or_insert((false, Roster::new()));
            entry.0 = false;
            entry.1.extend(c.endpoints);
        }
        for (_, s) in self.sources.drain() {
            stale.sources.insert(s.source.id, s.source);
        }
        self.conference_ids.clear();
        self.source_ids.clear();
    }

    pub(crate) fn resync_deadline(&self) -> Option<Instant> {
        self.stale.as_ref().map(|s| s.deadline)
    }

    /// Reports everything stale as gone (the peer said `Announced`, or the
    /// grace period ran out).
    pub(crate) fn expire_stale(&mut self, out: &mut Outbox) {
        let Some(stale) = self.stale.take() else {
            return;
        };
        for (_, s) in stale.sources {
            self.wanted.remove(&s.id);
            out.emit(LinkEvent::SourceRemoved(s));
        }
        for (conference, (reopened, endpoints)) in stale.conferences {
            for (participant, _) in endpoints {
                out.emit(LinkEvent::EndpointLeft {
                    conference: conference.clone(),
                    participant,
                });
            }
            if !reopened {
                out.emit(LinkEvent::ConferenceClosed { conference });
            }
        }
    }

    fn conference(&mut self, h: ConferenceHandle) -> Result<&mut Conference, ProtocolViolation> {
        self.conferences
            .get_mut(&h)
            .ok_or(ProtocolViolation::UnknownConference(h.get()))
    }

    pub(crate) fn conference_open(
        &mut self,
        h: ConferenceHandle,
        id: ConferenceId,
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        if self.conferences.contains_key(&h) {
            return Err(ProtocolViolation::DuplicateConferenceHandle(h.get()));
        }
        if self.conference_ids.contains_key(&id) {
            return Err(ProtocolViolation::DuplicateConference(id));
        }
        let was_stale = self
            .stale
            .as_mut()
            .and_then(|s| s.conferences.get_mut(&id))
            .map(|(reopened, _)| *reopened = true)
            .is_some();
        if !was_stale {
            out.emit(LinkEvent::ConferenceOpened {
                conference: id.clone(),
            });
        }
        self.conference_ids.insert(id.clone(), h);
        self.conferences.insert(
            h,
            Conference {
                id,
                endpoints: Roster::new(),
                sources: BTreeSet::new(),
            },
        );
        Ok(())
    }

    pub(crate) fn conference_close(
        &mut self,
        h: ConferenceHandle,
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        let conf = self
            .conferences
            .remove(&h)
            .ok_or(ProtocolViolation::UnknownConference(h.get()))?;
        self.conference_ids.remove(&conf.id);
        for s in conf.sources {
            if let Some(s) = self.sources.remove(&s) {
                self.source_ids.remove(&s.source.id);
                self.wanted.remove(&s.source.id);
                out.emit(LinkEvent::SourceRemoved(s.source));
            }
        }
        let mut endpoints = conf.endpoints;
        if let Some(stale) = &mut self.stale {
            let gone: Vec<SourceId> = stale
                .sources
                .values()
                .filter(|s| s.conference == conf.id)
                .map(|s| s.id)
                .collect();
            for id in gone {
                if let Some(s) = stale.sources.remove(&id) {
                    self.wanted.remove(&id);
                    out.emit(LinkEvent::SourceRemoved(s));
                }
            }
            if let Some((_, roster)) = stale.conferences.remove(&conf.id) {
                endpoints.extend(roster);
            }
        }
        for (participant, _) in endpoints {
            out.emit(LinkEvent::EndpointLeft {
                conference: conf.id.clone(),
                participant,
            });
        }
        out.emit(LinkEvent::ConferenceClosed {
            conference: conf.id,
        });
        Ok(())
    }

    pub(crate) fn endpoint_joined(
        &mut self,
        h: ConferenceHandle,
        participant: ParticipantId,
        display_name: Option<String>,
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        let stale = &mut self.stale;
        let conf = self
            .conferences
            .get_mut(&h)
            .ok_or(ProtocolViolation::UnknownConference(h.get()))?;
        let before = match conf.endpoints.get(&participant) {
            Some(name) => Some(name.clone()),
            None => stale
                .as_mut()
                .and_then(|s| s.conferences.get_mut(&conf.id))
                .and_then(|(_, roster)| roster.remove(&participant)),
        };
        if before.as_ref() != Some(&display_name) {
            out.emit(LinkEvent::EndpointJoined {
                conference: conf.id.clone(),
                participant: participant.clone(),
                display_name: display_name.clone(),
            });
        }
        conf.endpoints.insert(participant, display_name);
        Ok(())
    }

    pub(crate) fn endpoint_muted(
        &mut self,
        h: ConferenceHandle,
        participant: ParticipantId,
        (audio, video): (bool, bool),
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        let conf = self.conference(h)?;
        // The sender mutes only endpoints it announced; a frame for another
        // (a race with its leave) changes nothing.
        if conf.endpoints.contains_key(&participant) {
            out.emit(LinkEvent::EndpointMuted {
                conference: conf.id.clone(),
                participant,
                audio,
                video,
            });
        }
        Ok(())
    }

    pub(crate) fn endpoint_left(
        &mut self,
        h: ConferenceHandle,
        participant: ParticipantId,
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        let conf = self.conference(h)?;
        if conf.endpoints.remove(&participant).is_some() {
            let conference = conf.id.clone();
            out.emit(LinkEvent::EndpointLeft {
                conference,
                participant,
            });
        }
        Ok(())
    }

    pub(crate) fn source_added(
        &mut self,
        h: ConferenceHandle,
        handle: SourceHandle,
        id: SourceId,
        info: SourceInfo,
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        if self.sources.contains_key(&handle) {
            return Err(ProtocolViolation::DuplicateSourceHandle(handle.get()));
        }
        if self.source_ids.contains_key(&id) {
            return Err(ProtocolViolation::DuplicateSourceId(id));
        }
        let edge = self.edge.clone();
        let conf = self.conference(h)?;
        conf.sources.insert(handle);
        let fresh = RemoteSource {
            edge,
            conference: conf.id.clone(),
            id,
            info,
        };
        let source = match self.stale.as_mut().and_then(|s| s.sources.remove(&id)) {
            Some(old) if *old == fresh => old,
            Some(old) => {
                // Same id, different source (the peer restarted): not the one
                // subscribed to.
                self.wanted.remove(&id);
                out.emit(LinkEvent::SourceRemoved(old));
                let new = Arc::new(fresh);
                out.emit(LinkEvent::SourceAdded(new.clone()));
                new
            }
            None => {
                let new = Arc::new(fresh);
                out.emit(LinkEvent::SourceAdded(new.clone()));
                new
            }
        };
        self.source_ids.insert(id, handle);
        self.sources.insert(
            handle,
            Source {
                source,
                conference: h,
            },
        );
        if let Some(subscription) = self.wanted.get(&id) {
            out.send(&ControlFrame::Subscribe {
                source: handle,
                subscription: *subscription,
            });
        }
        Ok(())
    }

    pub(crate) fn source_removed(
        &mut self,
        handle: SourceHandle,
        out: &mut Outbox,
    ) -> Result<(), ProtocolViolation> {
        let s = self
            .sources
            .remove(&handle)
            .ok_or(ProtocolViolation::UnknownSource(handle.get()))?;
        self.source_ids.remove(&s.source.id);
        self.wanted.remove(&s.source.id);
        self.last_keyframe_request.remove(&s.source.id);
        self.deferred_keyframes.remove(&s.source.id);
        if let Some(c) = self.conferences.get_mut(&s.conference) {
            c.sources.remove(&handle);
        }
        out.emit(LinkEvent::SourceRemoved(s.source));
        Ok(())
    }

    /// The announced source a media datagram names, checked against its conference.
    pub(crate) fn media_source(
        &self,
        conference: ConferenceHandle,
        handle: SourceHandle,
    ) -> Option<Result<&Arc<RemoteSource>, ()>> {
        let s = self.sources.get(&handle)?;
        Some(if s.conference == conference {
            Ok(&s.source)
        } else {
            Err(())
        })
    }

    fn known(&self, id: SourceId) -> bool {
        self.source_ids.contains_key(&id)
            || self
                .stale
                .as_ref()
                .is_some_and(|s| s.sources.contains_key(&id))
    }

    pub(crate) fn subscribe(
        &mut self,
        id: SourceId,
        subscription: Subscription,
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        if !self.known(id) {
            return Err(UsageError::UnknownRemoteSource(id));
        }
        if self.wanted.insert(id, subscription) == Some(subscription) {
            return Ok(());
        }
        if let Some(h) = self.source_ids.get(&id) {
            out.send(&ControlFrame::Subscribe {
                source: *h,
                subscription,
            });
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&mut self, id: SourceId, out: &mut Outbox) {
        if self.wanted.remove(&id).is_some()
            && let Some(h) = self.source_ids.get(&id)
        {
            out.send(&ControlFrame::Unsubscribe { source: *h });
        }
    }

    pub(crate) fn subscription(&self, id: SourceId) -> Option<Subscription> {
        self.wanted.get(&id).copied()
    }

    /// Sends a keyframe request unless one went out less than `interval` ago.
    pub(crate) fn request_keyframe(
        &mut self,
        now: Instant,
        interval: Duration,
        id: SourceId,
        layer: Option<u8>,
        out: &mut Outbox,
    ) -> Result<bool, UsageError> {
        if !self.known(id) {
            return Err(UsageError::UnknownRemoteSource(id));
        }
        let Some(h) = self.source_ids.get(&id) else {
            return Ok(false);
        };
        if let Some(last) = self.last_keyframe_request.get(&id)
            && now.saturating_duration_since(*last) < interval
        {
            // Deferred, not dropped; two layers asked for become "every layer".
            self.deferred_keyframes
                .entry(id)
                .and_modify(|l| {
                    if *l != layer {
                        *l = None;
                    }
                })
                .or_insert(layer);
            return Ok(false);
        }
        self.deferred_keyframes.remove(&id);
        self.last_keyframe_request.insert(id, now);
        out.send(&ControlFrame::KeyframeRequest { source: *h, layer });
        Ok(true)
    }

    /// When the earliest deferred keyframe request is due.
    pub(crate) fn keyframe_deadline(&self, interval: Duration) -> Option<Instant> {
        self.deferred_keyframes
            .keys()
            .filter_map(|id| self.last_keyframe_request.get(id))
            .min()
            .map(|last| *last + interval)
    }

    /// Sends the deferred keyframe requests that are due at `now`.
    pub(crate) fn send_deferred_keyframes(
        &mut self,
        now: Instant,
        interval: Duration,
        out: &mut Outbox,
    ) {
        let due: Vec<(SourceId, Option<u8>)> = self
            .deferred_keyframes
            .iter()
            .filter(|(id, _)| {
                self.last_keyframe_request
                    .get(id)
                    .is_none_or(|last| now.saturating_duration_since(*last) >= interval)
            })
            .map(|(id, layer)| (*id, *layer))
            .collect();
        for (id, layer) in due {
            self.deferred_keyframes.remove(&id);
            if let Some(h) = self.source_ids.get(&id) {
                self.last_keyframe_request.insert(id, now);
                out.send(&ControlFrame::KeyframeRequest { source: *h, layer });
            }
        }
    }

    /// The peer's sources currently announced, for inspection.
    pub(crate) fn sources(&self) -> impl Iterator<Item = &Arc<RemoteSource>> {
        self.sources.values().map(|s| &s.source)
    }
}
