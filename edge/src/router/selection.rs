//! Who is forwarded: each subscriber's last-N selection and the speaker
//! order it follows, WHEP viewers following the dominant speaker, ticked by
//! the speaker detectors.

use std::time::Instant;

use geomesh_core::{ConferenceId, ParticipantId};

use super::*;
use crate::lastn::{audio_forwarded, select_last_n};
use crate::speaker::SpeakerEvent;

impl Router {
    /// Sets a subscriber's own last-N and pinned participants.
    pub fn set_receiver(
        &mut self,
        key: PeerKey,
        last_n: Option<usize>,
        pinned: Vec<ParticipantId>,
    ) -> Result<(), RouterError> {
        let p = self
            .peers
            .get_mut(&key)
            .ok_or(RouterError::UnknownPeer(key))?;
        p.last_n = last_n;
        p.pinned = pinned;
        self.reselect(key);
        Ok(())
    }

    /// An audio packet of `owner` with RFC 6464 level `level` (0 loudest …
    /// 127 silence). O(1).
    pub fn handle_audio_level(&mut self, now: Instant, owner: PeerKey, level: u8) {
        let Some(p) = self.peers.get(&owner) else {
            return;
        };
        if let Some(c) = self.conferences.get_mut(&p.conference) {
            // Levels above 127 are malformed extensions: ignored.
            let _ = c.speakers.handle_level(now, owner, level, None);
        }
    }

    /// Releases deferred keyframe requests that are due, and ticks every
    /// conference's speaker detection; a new dominant speaker re-selects
    /// every member and moves viewers that follow the speaker.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, src) in &mut self.sources {
            if src.keyframe_deferred
                && src
                    .last_keyframe_request
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.keyframe_interval)
            {
                src.keyframe_deferred = false;
                self.events
                    .push_back(RouterEvent::KeyframeDue { source: *id });
            }
        }
        let mut touched: Vec<(ConferenceId, Option<PeerKey>)> = Vec::new();
        for (id, c) in self.conferences.iter_mut() {
            if c.speakers.poll_timeout().is_none_or(|t| t > now) {
                continue;
            }
            let before: Vec<PeerKey> = c.speakers.order().to_vec();
            c.speakers.handle_timeout(now);
            let mut dominant = None;
            while let Some(SpeakerEvent::DominantChanged { current, .. }) = c.speakers.poll_event()
            {
                dominant = current.or(dominant);
            }
            if dominant.is_some() || c.speakers.order() != before.as_slice() {
                touched.push((id.clone(), dominant));
            }
        }
        for (conference, dominant) in touched {
            let members = self.conferences[&conference].peers.clone();
            for k in members {
                if let Some(d) = dominant
                    && self.peers[&k].info.role == Role::Member
                {
                    self.events
                        .push_back(RouterEvent::DominantSpeaker { to: k, peer: d });
                }
                self.reselect(k);
                self.follow_speaker(k);
            }
        }
    }

    /// When the speaker detection or a deferred keyframe request next needs
    /// [`Router::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conferences
            .values()
            .filter_map(|c| c.speakers.poll_timeout())
            .chain(self.keyframe_deadline())
            .min()
    }

    /// The dominant speaker of a conference.
    pub fn dominant_speaker(&self, conference: &ConferenceId) -> Option<PeerKey> {
        self.conferences.get(conference)?.speakers.dominant()
    }

    /// Whether `source` is forwarded to at least one subscriber.
    pub fn is_forwarded(&self, source: SourceId) -> bool {
        self.forwarded_to(source).next().is_some()
    }

    /// The subscribers `source` is forwarded to (not merely subscribed).
    pub fn forwarded_to(&self, source: SourceId) -> impl Iterator<Item = PeerKey> + '_ {
        let src = self.sources.get(&source);
        src.into_iter().flat_map(move |src| {
            src.subscribers
                .iter()
                .copied()
                .filter(move |k| self.peers[k].forwards(src))
        })
    }

    /// The publishers whose video a member receives, most important first.
    pub fn selected(&self, key: PeerKey) -> &[PeerKey] {
        self.peers.get(&key).map_or(&[], |p| p.selected.as_slice())
    }

    /// Recomputes a member's last-N video and audible audio; emits a
    /// `Forward` for every track whose state changed.
    pub(super) fn reselect(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        if p.info.role != Role::Member {
            return;
        }
        let conf = &self.conferences[&p.conference];
        let has = |k: &PeerKey, kind: Kind| {
            self.peers[k]
                .sources
                .iter()
                .any(|s| self.sources[s].kind == kind)
        };
        let video: Vec<PeerKey> = conf
            .peers
            .iter()
            .filter(|k| **k != key && has(k, Kind::Video))
            .copied()
            .collect();
        let pinned: Vec<PeerKey> = p
            .pinned
            .iter()
            .filter_map(|pid| {
                conf.peers
                    .iter()
                    .find(|k| self.peers[*k].info.participant == *pid)
                    .copied()
            })
            .collect();
        let order: Vec<PeerKey> = conf
            .speakers
            .order()
            .iter()
            .copied()
            .filter(|k| *k != key)
            .collect();
        let mut selected = Vec::new();
        select_last_n(
            p.last_n.unwrap_or(self.last_n.video),
            &order,
            &pinned,
            &video,
            &mut selected,
        );
        let participants = conf
            .peers
            .iter()
            .filter(|k| self.peers[*k].info.role.in_roster())
            .count();
        let audible: Vec<PeerKey> = conf
            .peers
            .iter()
            .filter(|k| **k != key && has(k, Kind::Audio))
            .filter(|k| audio_forwarded(&self.last_n, participants, &order, **k))
            .copied()
            .collect();
        let mut changes = Vec::new();
        for (id, src) in &self.sources {
            if !src.subscribers.contains(&key) {
                continue;
            }
            let (was, now) = match src.kind {
                Kind::Video => (
                    p.selected.contains(&src.owner),
                    selected.contains(&src.owner),
                ),
                Kind::Audio => (p.audible.contains(&src.owner), audible.contains(&src.owner)),
            };
            if was != now {
                changes.push(RouterEvent::Forward {
                    to: key,
                    source: *id,
                    on: now,
                });
            }
        }
        let p = self.peers.get_mut(&key).expect("checked above");
        p.selected = selected;
        p.audible = audible;
        self.events.extend(changes);
    }

    /// A viewer without a named participant moves to the dominant speaker.
    pub(super) fn follow_speaker(&mut self, viewer: PeerKey) {
        let p = &self.peers[&viewer];
        if !matches!(p.info.role, Role::Viewer { follow: None }) {
            return;
        }
        let Some(dominant) = self.conferences[&p.conference].speakers.dominant() else {
            return;
        };
        if p.watching == Some(dominant) || !self.peers.contains_key(&dominant) {
            return;
        }
        let old: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| s.subscribers.contains(&viewer))
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            if let Some(s) = self.sources.get_mut(&id) {
                s.subscribers.retain(|&k| k != viewer);
            }
            self.events.push_back(RouterEvent::Unsubscribe {
                to: viewer,
                source: id,
            });
        }
        self.peers.get_mut(&viewer).expect("viewer exists").watching = None;
        self.rebind_viewer(viewer);
    }

    /// Points a viewer at its publisher (named, else the most recent) and
    /// subscribes it to that publisher's first audio and first video.
    pub(super) fn rebind_viewer(&mut self, viewer: PeerKey) {
        let p = &self.peers[&viewer];
        let Role::Viewer { follow } = &p.info.role else {
            return;
        };
        let conf = &self.conferences[&p.conference];
        let target = match follow {
            Some(pid) => conf
                .publishers
                .iter()
                .copied()
                .find(|k| &self.peers[k].info.participant == pid),
            // The dominant speaker if it publishes, else the most recent publisher.
            None => conf
                .speakers
                .dominant()
                .filter(|k| conf.publishers.contains(k))
                .or_else(|| conf.publishers.first().copied()),
        };
        let Some(target) = target else {
            return;
        };
        self.peers.get_mut(&viewer).expect("viewer exists").watching = Some(target);
        let mut picked: Vec<SourceId> = Vec::new();
        for kind in [Kind::Audio, Kind::Video] {
            if let Some(&s) = self.peers[&target]
                .sources
                .iter()
                .find(|s| self.sources[s].kind == kind)
            {
                picked.push(s);
            }
        }
        for s in picked {
            self.subscribe(viewer, s);
        }
    }
}
