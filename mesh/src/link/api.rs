//! What the edge tells a link: my conferences, roster and sources (kept
//! across reconnects), keyframes that switch a subscribed layer, and my
//! subscriptions to the peer's sources.

use std::sync::Arc;
use std::time::Instant;

use geomesh_core::{ConferenceId, ParticipantId};

use super::*;

impl Link {
    // ---- my state (announced to the peer) -------------------------------

    /// I host participants of `conference`: announce it (idempotent).
    pub fn open_conference(&mut self, conference: &ConferenceId) -> Result<(), UsageError> {
        let _g = self.span.clone().entered();
        self.local.open_conference(conference, &mut self.out)
    }

    /// I no longer host `conference`; its endpoints and sources go with it.
    pub fn close_conference(&mut self, conference: &ConferenceId) {
        let _g = self.span.clone().entered();
        self.local.close_conference(conference, &mut self.out)
    }

    /// A participant of mine is in `conference` (again: a name change).
    /// Names are cut to 255 bytes; `Some("")` is `None`.
    pub fn endpoint_joined(
        &mut self,
        conference: &ConferenceId,
        participant: ParticipantId,
        display_name: Option<String>,
    ) -> Result<(), UsageError> {
        self.local
            .endpoint_joined(conference, participant, display_name, &mut self.out)
    }

    /// A participant of mine muted or unmuted (announced again after
    /// reconnects while muted). Unknown participants are ignored.
    pub fn endpoint_muted(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    ) -> Result<(), UsageError> {
        self.local
            .endpoint_muted(conference, participant, (audio, video), &mut self.out)
    }

    /// A participant of mine left `conference`.
    pub fn endpoint_left(&mut self, conference: &ConferenceId, participant: &ParticipantId) {
        self.local
            .endpoint_left(conference, participant, &mut self.out)
    }

    /// A participant of mine publishes a source. `id` must be unique on this
    /// edge and stable for the source's life. Adding an id again with other
    /// details replaces the source.
    pub fn add_source(
        &mut self,
        conference: &ConferenceId,
        id: SourceId,
        info: SourceInfo,
    ) -> Result<(), UsageError> {
        self.local.add_source(conference, id, info, &mut self.out)
    }

    /// One of my sources is gone.
    pub fn remove_source(&mut self, id: SourceId) {
        self.local.remove_source(id, &mut self.out)
    }

    /// Tells the peer I am shutting down or draining (repeated after a
    /// reconnect).
    pub fn goodbye(&mut self, reason: GoodbyeReason, message: impl Into<String>) {
        let mut message: String = message.into();
        message.truncate(
            (0..=crate::wire::MAX_MESSAGE_LEN.min(message.len()))
                .rev()
                .find(|i| message.is_char_boundary(*i))
                .unwrap_or(0),
        );
        self.local.goodbye(reason, message, &mut self.out)
    }

    /// A keyframe of `layer` of my `source` starts with the packet the edge
    /// is about to send: a pending switch to that layer happens here (the
    /// old layer flows until then). True if the layer switched.
    pub fn keyframe(&mut self, source: SourceId, layer: u8) -> bool {
        self.local.keyframe(source, layer)
    }

    /// The peer's subscription to one of my sources, and the layer it asks
    /// for (which flows from its next keyframe, [`Link::keyframe`]).
    pub fn remote_subscription(&self, source: SourceId) -> Option<(Subscription, u8)> {
        self.local.subscription(source)
    }

    // ---- the peer's state ----------------------------------------------

    /// Ask the peer for a remote source (or change the layer). Kept until
    /// [`Link::unsubscribe`] or the source's removal, across reconnects.
    pub fn subscribe(
        &mut self,
        source: SourceId,
        subscription: Subscription,
    ) -> Result<(), UsageError> {
        self.remote.subscribe(source, subscription, &mut self.out)
    }

    /// No local subscriber wants the remote source any more.
    pub fn unsubscribe(&mut self, source: SourceId) {
        self.remote.unsubscribe(source, &mut self.out)
    }

    /// My current subscription to a remote source.
    pub fn subscription(&self, source: SourceId) -> Option<Subscription> {
        self.remote.subscription(source)
    }

    /// Asks the peer for a keyframe of a remote source. Returns whether a
    /// request went out now: at most one per [`LinkConfig::keyframe_interval`]
    /// per source, and none while the link is down. One asked for within
    /// the interval is deferred to its end ([`TimeoutReason::KeyframeRequest`]),
    /// not dropped: the subscriber that asked may have started after the
    /// keyframe the last request brought.
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        source: SourceId,
        layer: Option<u8>,
    ) -> Result<bool, UsageError> {
        let interval = self.config.keyframe_interval;
        self.remote.request_keyframe(
            now,
            interval,
            source,
            layer.filter(|l| *l != u8::MAX),
            &mut self.out,
        )
    }

    /// The peer's sources announced on the current connection.
    pub fn remote_sources(&self) -> impl Iterator<Item = &Arc<RemoteSource>> {
        self.remote.sources()
    }
}
