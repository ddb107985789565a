//! My side of a link: what this edge announces to the peer, and what the
//! peer asked of my sources. Kept across reconnects and re-announced.

use std::collections::{BTreeMap, HashMap};

use geomesh_core::{ConferenceId, ParticipantId};

use super::media_out::Route;
use super::{Outbox, UsageError};
use crate::wire::{
    ConferenceHandle, ControlFrame, GoodbyeReason, MAX_DISPLAY_NAME_LEN, SourceHandle, SourceId,
    SourceInfo, Subscription, varint,
};

#[derive(Debug)]
struct Conference {
    /// Set while announced on the current connection.
    handle: Option<ConferenceHandle>,
    endpoints: BTreeMap<ParticipantId, Option<String>>,
    /// (audio, video) muted, for endpoints with either muted.
    muted: BTreeMap<ParticipantId, (bool, bool)>,
}

#[derive(Debug)]
struct Source {
    conference: ConferenceId,
    info: SourceInfo,
    /// Set while announced on the current connection.
    handle: Option<SourceHandle>,
    conference_handle: Option<ConferenceHandle>,
    /// What the peer asked for on the current connection.
    subscription: Option<Subscription>,
    /// The layer the subscription asks for.
    layer: u8,
    /// The layer that flows: `layer` once a keyframe of it passed
    /// ([`LocalState::keyframe`]), the one before until then, so the peer's
    /// decoders never get a new layer's delta frames first (a switch is
    /// seamless, as within one edge).
    sending: Option<u8>,
}

impl Source {
    /// Its route while announced on the current connection.
    fn route(&self) -> Option<Route> {
        Some(Route {
            source: self.handle?,
            conference: self.conference_handle?,
            subscribed: self.subscription.is_some(),
            layer: self.layer,
            sending: self.sending,
        })
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct LocalState {
    conferences: BTreeMap<ConferenceId, Conference>,
    conference_handles: HashMap<ConferenceHandle, ConferenceId>,
    sources: BTreeMap<SourceId, Source>,
    source_handles: HashMap<SourceHandle, SourceId>,
    next_conference: u16,
    next_source: u32,
    /// Frames go out (the Hello exchange is done).
    up: bool,
    goodbye: Option<(GoodbyeReason, String)>,
}

/// Cuts a display name to the wire limit at a character boundary; `""` is `None`.
fn clamp_name(name: Option<String>) -> Option<String> {
    let mut name = name?;
    if name.len() > MAX_DISPLAY_NAME_LEN {
        let mut end = MAX_DISPLAY_NAME_LEN;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    (!name.is_empty()).then_some(name)
}

impl LocalState {
    /// The connection is gone: handles and the peer's subscriptions with it.
    pub(crate) fn disconnected(&mut self) {
        self.up = false;
        self.conference_handles.clear();
        self.source_handles.clear();
        self.next_conference = 0;
        self.next_source = 0;
        for c in self.conferences.values_mut() {
            c.handle = None;
        }
        for s in self.sources.values_mut() {
            s.handle = None;
            s.conference_handle = None;
            s.subscription = None;
            s.sending = None;
        }
    }

    /// The Hello exchange finished: announce everything, then `Announced`.
    pub(crate) fn announce_all(&mut self, out: &mut Outbox) -> Result<(), UsageError> {
        self.up = true;
        let ids: Vec<ConferenceId> = self.conferences.keys().cloned().collect();
        for id in ids {
            self.announce_conference(&id, out)?;
        }
        out.send(&ControlFrame::Announced);
        if let Some((reason, message)) = &self.goodbye {
            out.send(&ControlFrame::Goodbye {
                reason: *reason,
                message: message.clone(),
            });
        }
        Ok(())
    }

    fn alloc_conference(&mut self, id: &ConferenceId) -> Result<ConferenceHandle, UsageError> {
        for _ in 0..=ConferenceHandle::MAX {
            let h = ConferenceHandle::new(self.next_conference.into())
                // next_conference stays within 0..=MAX (wrapped below).
                .expect("conference handle counter in range");
            self.next_conference = if h.get() == ConferenceHandle::MAX {
                0
            } else {
                h.get() + 1
            };
            if let std::collections::hash_map::Entry::Vacant(e) = self.conference_handles.entry(h) {
                e.insert(id.clone());
                return Ok(h);
            }
        }
        Err(UsageError::OutOfHandles("conference"))
    }

    fn alloc_source(&mut self, id: SourceId) -> Result<SourceHandle, UsageError> {
        // 2^30 handles and handles are never reused within a connection until
        // the counter wraps: a late datagram cannot be taken for a new source.
        for _ in 0..1024 {
            let h = SourceHandle::new(self.next_source.into())
                // next_source stays within 0..=MAX (wrapped below).
                .expect("source handle counter in range");
            self.next_source = if h.get() == SourceHandle::MAX {
                0
            } else {
                h.get() + 1
            };
            if let std::collections::hash_map::Entry::Vacant(e) = self.source_handles.entry(h) {
                e.insert(id);
                return Ok(h);
            }
        }
        Err(UsageError::OutOfHandles("source"))
    }

    fn announce_conference(
        &mut self,
        id: &ConferenceId,
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        let handle = self.alloc_conference(id)?;
        // The caller passes a key of `conferences`.
        let conf = self
            .conferences
            .get_mut(id)
            .expect("announcing a known conference");
        conf.handle = Some(handle);
        out.send(&ControlFrame::ConferenceOpen {
            conference: handle,
            id: id.clone(),
        });
        for (participant, display_name) in &conf.endpoints {
            out.send(&ControlFrame::EndpointJoined {
                conference: handle,
                participant: participant.clone(),
                display_name: display_name.clone(),
            });
        }
        for (participant, &(audio, video)) in &conf.muted {
            out.send(&ControlFrame::EndpointMuted {
                conference: handle,
                participant: participant.clone(),
                audio,
                video,
            });
        }
        let sources: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| &s.conference == id)
            .map(|(k, _)| *k)
            .collect();
        for s in sources {
            self.announce_source(s, handle, out)?;
        }
        Ok(())
    }

    fn announce_source(
        &mut self,
        id: SourceId,
        conference: ConferenceHandle,
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        let handle = self.alloc_source(id)?;
        // The caller passes a key of `sources`.
        let s = self
            .sources
            .get_mut(&id)
            .expect("announcing a known source");
        s.handle = Some(handle);
        s.conference_handle = Some(conference);
        out.send(&ControlFrame::SourceAdded {
            conference,
            source: handle,
            id,
            info: s.info.clone(),
        });
        Ok(())
    }

    pub(crate) fn open_conference(
        &mut self,
        id: &ConferenceId,
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        if self.conferences.contains_key(id) {
            return Ok(());
        }
        self.conferences.insert(
            id.clone(),
            Conference {
                handle: None,
                endpoints: BTreeMap::new(),
                muted: BTreeMap::new(),
            },
        );
        if self.up {
            self.announce_conference(id, out)?;
        }
        Ok(())
    }

    pub(crate) fn close_conference(&mut self, id: &ConferenceId, out: &mut Outbox) {
        let Some(conf) = self.conferences.remove(id) else {
            return;
        };
        let gone: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| &s.conference == id)
            .map(|(k, _)| *k)
            .collect();
        for s in gone {
            if let Some(h) = self.sources.remove(&s).and_then(|s| s.handle) {
                self.source_handles.remove(&h);
            }
        }
        if let Some(h) = conf.handle {
            self.conference_handles.remove(&h);
            out.send(&ControlFrame::ConferenceClose { conference: h });
        }
    }

    fn conference_mut(&mut self, id: &ConferenceId) -> Result<&mut Conference, UsageError> {
        self.conferences
            .get_mut(id)
            .ok_or_else(|| UsageError::ConferenceNotOpen(id.clone()))
    }

    pub(crate) fn endpoint_joined(
        &mut self,
        conference: &ConferenceId,
        participant: ParticipantId,
        display_name: Option<String>,
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        let conf = self.conference_mut(conference)?;
        let display_name = clamp_name(display_name);
        if conf.endpoints.get(&participant) == Some(&display_name) {
            return Ok(());
        }
        conf.endpoints
            .insert(participant.clone(), display_name.clone());
        if let Some(h) = conf.handle {
            out.send(&ControlFrame::EndpointJoined {
                conference: h,
                participant,
                display_name,
            });
        }
        Ok(())
    }

    pub(crate) fn endpoint_muted(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        muted: (bool, bool),
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        let conf = self.conference_mut(conference)?;
        if !conf.endpoints.contains_key(participant) {
            return Ok(());
        }
        let before = conf.muted.get(participant).copied().unwrap_or_default();
        if before == muted {
            return Ok(());
        }
        if muted == (false, false) {
            conf.muted.remove(participant);
        } else {
            conf.muted.insert(participant.clone(), muted);
        }
        if let Some(h) = conf.handle {
            out.send(&ControlFrame::EndpointMuted {
                conference: h,
                participant: participant.clone(),
                audio: muted.0,
                video: muted.1,
            });
        }
        Ok(())
    }

    pub(crate) fn endpoint_left(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        out: &mut Outbox,
    ) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        conf.muted.remove(participant);
        if conf.endpoints.remove(participant).is_some()
            && let Some(h) = conf.handle
        {
            out.send(&ControlFrame::EndpointLeft {
                conference: h,
                participant: participant.clone(),
            });
        }
    }

    pub(crate) fn add_source(
        &mut self,
        conference: &ConferenceId,
        id: SourceId,
        info: SourceInfo,
        out: &mut Outbox,
    ) -> Result<(), UsageError> {
        if id.0 > varint::MAX {
            return Err(UsageError::SourceIdTooLarge(id));
        }
        info.validate()?;
        let conf_handle = self
            .conferences
            .get(conference)
            .ok_or_else(|| UsageError::ConferenceNotOpen(conference.clone()))?
            .handle;
        if let Some(old) = self.sources.get(&id)
            && old.conference == *conference
            && old.info == info
        {
            return Ok(());
        }
        self.remove_source(id, out);
        self.sources.insert(
            id,
            Source {
                conference: conference.clone(),
                info,
                handle: None,
                conference_handle: None,
                subscription: None,
                layer: 0,
                sending: None,
            },
        );
        if let Some(ch) = conf_handle {
            self.announce_source(id, ch, out)?;
        }
        Ok(())
    }

    pub(crate) fn remove_source(&mut self, id: SourceId, out: &mut Outbox) {
        if let Some(h) = self.sources.remove(&id).and_then(|s| s.handle) {
            self.source_handles.remove(&h);
            out.send(&ControlFrame::SourceRemoved { source: h });
        }
    }

    pub(crate) fn goodbye(&mut self, reason: GoodbyeReason, message: String, out: &mut Outbox) {
        let frame = ControlFrame::Goodbye {
            reason,
            message: message.clone(),
        };
        // Remembered, so a draining edge says so again after a reconnect.
        self.goodbye = Some((reason, message));
        if self.up {
            out.send(&frame);
        }
    }

    /// The peer subscribed to (or changed its layer of) one of my sources.
    pub(crate) fn subscribed(
        &mut self,
        handle: SourceHandle,
        subscription: Subscription,
    ) -> Option<(SourceId, u8)> {
        // Unknown handles race with SourceRemoved: ignored.
        let id = *self.source_handles.get(&handle)?;
        let s = self.sources.get_mut(&id)?;
        let fresh = s.subscription.replace(subscription).is_none();
        s.layer = subscription.select(&s.info.layers);
        // A new subscription starts at once (the peer asks for a keyframe
        // with it); a change of layer waits for the new layer's keyframe.
        if fresh || s.sending.is_none() || s.info.layers.len() <= 1 {
            s.sending = Some(s.layer);
        }
        Some((id, s.layer))
    }

    /// A keyframe of `layer` of my source `id` starts: if the peer waits
    /// for that layer, it flows from this packet on. True on a switch.
    pub(crate) fn keyframe(&mut self, id: SourceId, layer: u8) -> bool {
        let Some(s) = self.sources.get_mut(&id) else {
            return false;
        };
        if s.subscription.is_none() || s.layer != layer || s.sending == Some(layer) {
            return false;
        }
        s.sending = Some(layer);
        true
    }

    /// The peer unsubscribed; `Some` if it had been subscribed.
    pub(crate) fn unsubscribed(&mut self, handle: SourceHandle) -> Option<SourceId> {
        let id = *self.source_handles.get(&handle)?;
        let s = self.sources.get_mut(&id)?;
        s.sending = None;
        s.subscription.take().map(|_| id)
    }

    /// The source a handle names, if it is still mine.
    pub(crate) fn source_of(&self, handle: SourceHandle) -> Option<SourceId> {
        self.source_handles.get(&handle).copied()
    }

    /// The peer's subscription to one of my sources and the layer forwarded.
    pub(crate) fn subscription(&self, id: SourceId) -> Option<(Subscription, u8)> {
        let s = self.sources.get(&id)?;
        s.subscription.map(|sub| (sub, s.layer))
    }

    /// Frames go out (the Hello exchange is done).
    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    /// What decides whether a packet of my source `id` goes to the peer.
    pub(crate) fn route(&self, id: SourceId) -> Option<Route> {
        self.sources.get(&id).and_then(Source::route)
    }

    /// Every announced source's [`Route`].
    pub(crate) fn routes(&self) -> impl Iterator<Item = (SourceId, Route)> + '_ {
        self.sources
            .iter()
            .filter_map(|(id, s)| Some((*id, s.route()?)))
    }
}
