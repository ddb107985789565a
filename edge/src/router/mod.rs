//! The routing table: who is in which conference, who publishes which
//! source, and who receives it.
//!
//! Sans-IO: no sockets, no `Rtc`, no clock. The media loop calls
//! `join`/`leave`/`add_source`/`remove_source` and then drains
//! [`Router::poll_event`] for what changed (open a track to a subscriber,
//! tell a participant someone arrived, …). The per-packet question "who gets
//! this?" is [`Router::subscribers`], a slice lookup.
//!
//! **Who is forwarded.** A member subscribes (has an m-line) to every
//! source in its conference, but video is *forwarded* only for the last-N
//! publishers it selects: its pinned participants first, then the speaker
//! order, then join order ([`crate::lastn`]); audio only of the loudest few
//! once the conference is large. A change of selection is a
//! [`RouterEvent::Forward`], never a renegotiation. The speaker order and
//! the dominant speaker come from one [`SpeakerDetector`] per conference,
//! fed with RFC 6464 audio levels ([`Router::handle_audio_level`]) and
//! ticked by [`Router::handle_timeout`]. WHEP viewers without a named
//! participant follow the dominant speaker.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::lastn::LastNConfig;
use crate::speaker::SpeakerDetector;

use geomesh_core::{ConferenceId, ParticipantId};

mod selection;
mod types;

pub use types::*;

#[derive(Debug)]
struct Peer {
    info: PeerInfo,
    conference: ConferenceId,
    /// Sources this peer publishes, in order.
    sources: Vec<SourceId>,
    /// For viewers: whose sources they receive.
    watching: Option<PeerKey>,
    /// The subscriber's own last-N (else the edge's).
    last_n: Option<usize>,
    /// Participants the subscriber pinned: forwarded first.
    pinned: Vec<ParticipantId>,
    /// Publishers whose video is forwarded to it, most important first.
    selected: Vec<PeerKey>,
    /// Publishers whose audio is forwarded to it.
    audible: Vec<PeerKey>,
}

impl Peer {
    /// Whether this subscriber's track of `src` carries packets: members
    /// get their last-N selection (video) and audible speakers (audio);
    /// viewers get what they watch.
    fn forwards(&self, src: &Source) -> bool {
        match (&self.info.role, src.kind) {
            (Role::Member, Kind::Video) => self.selected.contains(&src.owner),
            (Role::Member, Kind::Audio) => self.audible.contains(&src.owner),
            _ => true,
        }
    }
}

#[derive(Debug)]
struct Source {
    owner: PeerKey,
    kind: Kind,
    /// Receivers, in subscription order.
    subscribers: Vec<PeerKey>,
    last_keyframe_request: Option<Instant>,
    /// A request came within the interval: relay one when it is over.
    keyframe_deferred: bool,
}

#[derive(Debug, Default)]
struct Conference {
    /// Sessions in join order.
    peers: Vec<PeerKey>,
    /// Publishers, most recent first.
    publishers: Vec<PeerKey>,
    /// Speaker order and dominant speaker.
    speakers: SpeakerDetector<PeerKey>,
}

/// The edge's routing table. See the module docs.
#[derive(Debug)]
pub struct Router {
    peers: HashMap<PeerKey, Peer>,
    sources: HashMap<SourceId, Source>,
    conferences: HashMap<ConferenceId, Conference>,
    events: VecDeque<RouterEvent>,
    next_source: u64,
    /// Source ids step by this (workers encode themselves in ids).
    source_stride: u64,
    keyframe_interval: Duration,
    last_n: LastNConfig,
}

/// Keyframe requests to one publisher's source are relayed at most this
/// often: enough for a late joiner, not a flood when many subscribers lose
/// a packet at once.
pub const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

impl Default for Router {
    fn default() -> Self {
        Self::new(DEFAULT_KEYFRAME_INTERVAL)
    }
}

impl Router {
    /// An empty table.
    pub fn new(keyframe_interval: Duration) -> Self {
        Self {
            peers: HashMap::new(),
            sources: HashMap::new(),
            conferences: HashMap::new(),
            events: VecDeque::new(),
            next_source: 1,
            source_stride: 1,
            keyframe_interval,
            last_n: LastNConfig::default(),
        }
    }

    /// A table whose source ids are `first`, `first + stride`, … (a media
    /// worker's share of the edge's id space).
    pub fn with_ids(first: u64, stride: u64) -> Self {
        Self {
            next_source: first,
            source_stride: stride.max(1),
            ..Self::default()
        }
    }

    /// The edge's last-N defaults (a subscriber may ask for fewer or more
    /// video sources with [`Router::set_receiver`]).
    pub fn set_last_n(&mut self, config: LastNConfig) {
        self.last_n = config;
    }

    /// Adds a session to a conference. Returns the session already there
    /// for the same participant, if any: the caller should end it (a
    /// reconnecting participant replaces its old session).
    pub fn join(
        &mut self,
        conference: ConferenceId,
        info: PeerInfo,
    ) -> Result<Option<PeerKey>, RouterError> {
        let key = info.key;
        if self.peers.contains_key(&key) {
            return Err(RouterError::DuplicateKey(key));
        }
        let conf = self.conferences.entry(conference.clone()).or_default();
        let replaced = conf.peers.iter().copied().find(|k| {
            let p = &self.peers[k];
            p.info.participant == info.participant && p.info.role == info.role
        });
        conf.peers.push(key);
        let members: Vec<PeerKey> = conf.peers.clone();
        let role = info.role.clone();
        let participant = info.participant.clone();
        self.peers.insert(
            key,
            Peer {
                info,
                conference,
                sources: Vec::new(),
                watching: None,
                last_n: None,
                pinned: Vec::new(),
                selected: Vec::new(),
                audible: Vec::new(),
            },
        );
        if role.in_roster() {
            for &other in &members {
                let o = &self.peers[&other].info;
                // A participant never sees itself; a second session of someone
                // already shown (moving between edges) updates the entry.
                if other != key && o.role == Role::Member && o.participant != participant {
                    self.events.push_back(RouterEvent::Joined {
                        to: other,
                        peer: key,
                    });
                }
            }
        }
        match role {
            Role::Member => {
                let existing: Vec<SourceId> = members
                    .iter()
                    .filter(|&&k| k != key)
                    .flat_map(|k| self.peers[k].sources.clone())
                    .collect();
                self.reselect(key);
                for s in existing {
                    self.subscribe(key, s);
                }
            }
            Role::Viewer { .. } => self.rebind_viewer(key),
            Role::Publisher | Role::Remote { .. } => {}
        }
        Ok(replaced)
    }

    /// Removes a session: its sources go, its subscriptions go, others are told.
    pub fn leave(&mut self, key: PeerKey) -> Result<(), RouterError> {
        let peer = self.peers.get(&key).ok_or(RouterError::UnknownPeer(key))?;
        let sources = peer.sources.clone();
        let conference = peer.conference.clone();
        let in_roster = peer.info.role.in_roster();
        let participant = peer.info.participant.clone();
        for s in sources {
            self.remove_source(s);
        }
        // Drop what it receives; no Unsubscribe events: the session is gone.
        for src in self.sources.values_mut() {
            src.subscribers.retain(|&k| k != key);
        }
        self.peers.remove(&key);
        self.events.retain(|e| match e {
            RouterEvent::Subscribe { to, .. }
            | RouterEvent::Unsubscribe { to, .. }
            | RouterEvent::Forward { to, .. }
            | RouterEvent::DominantSpeaker { to, .. }
            | RouterEvent::Joined { to, .. }
            | RouterEvent::Left { to, .. } => *to != key,
            // Its sources were removed above: nothing of theirs is due.
            RouterEvent::KeyframeDue { source } => self.sources.contains_key(source),
        });
        let conf = self
            .conferences
            .get_mut(&conference)
            .expect("a joined peer's conference exists");
        conf.peers.retain(|&k| k != key);
        conf.publishers.retain(|&k| k != key);
        conf.speakers.remove(key);
        if conf.peers.is_empty() {
            self.conferences.remove(&conference);
            return Ok(());
        }
        let remaining = conf.peers.clone();
        if in_roster {
            // Another session of the same participant (it moved to another
            // edge, or is moving) keeps it in the roster: others see the
            // entry change, not a departure.
            let still = remaining.iter().rev().copied().find(|k| {
                let i = &self.peers[k].info;
                i.participant == participant && i.role.in_roster()
            });
            for &other in &remaining {
                let o = &self.peers[&other].info;
                if o.role != Role::Member || o.participant == participant {
                    continue;
                }
                self.events.push_back(match still {
                    Some(peer) => RouterEvent::Joined { to: other, peer },
                    None => RouterEvent::Left {
                        to: other,
                        peer: key,
                    },
                });
            }
        }
        // Viewers that watched it move to the next publisher; members may
        // now forward someone else in its place.
        for other in remaining {
            if self.peers[&other].watching == Some(key) {
                self.peers.get_mut(&other).expect("listed peer").watching = None;
                self.rebind_viewer(other);
            }
            self.reselect(other);
        }
        Ok(())
    }

    /// Registers a new source published by `owner` and subscribes everyone
    /// who should receive it (`now` orders it among the conference's speakers).
    pub fn add_source(
        &mut self,
        now: Instant,
        owner: PeerKey,
        kind: Kind,
    ) -> Result<SourceId, RouterError> {
        let peer = self
            .peers
            .get_mut(&owner)
            .ok_or(RouterError::UnknownPeer(owner))?;
        if matches!(peer.info.role, Role::Viewer { .. }) {
            return Err(RouterError::ViewerCannotPublish);
        }
        let id = SourceId(self.next_source);
        self.next_source += self.source_stride;
        peer.sources.push(id);
        let conference = peer.conference.clone();
        self.sources.insert(
            id,
            Source {
                owner,
                kind,
                subscribers: Vec::new(),
                last_keyframe_request: None,
                keyframe_deferred: false,
            },
        );
        let conf = self
            .conferences
            .get_mut(&conference)
            .expect("a joined peer's conference exists");
        conf.publishers.retain(|&k| k != owner);
        conf.publishers.insert(0, owner);
        conf.speakers.insert(now, owner);
        let peers = conf.peers.clone();
        for k in peers {
            if k == owner {
                continue;
            }
            let p = &self.peers[&k];
            match &p.info.role {
                Role::Member => {
                    self.reselect(k);
                    self.subscribe(k, id);
                }
                Role::Viewer { .. } if p.watching == Some(owner) => {
                    // A viewer takes one source of each kind (WHEP offers two m-lines).
                    let has_kind = self
                        .sources
                        .values()
                        .any(|s| s.kind == kind && s.subscribers.contains(&k));
                    if !has_kind {
                        self.subscribe(k, id);
                    }
                }
                Role::Viewer { .. } if p.watching.is_none() => self.rebind_viewer(k),
                _ => {}
            }
        }
        Ok(id)
    }

    /// Removes a source; its subscribers get `Unsubscribe`.
    pub fn remove_source(&mut self, id: SourceId) {
        let Some(src) = self.sources.remove(&id) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&src.owner) {
            p.sources.retain(|&s| s != id);
        }
        for to in src.subscribers {
            self.events
                .push_back(RouterEvent::Unsubscribe { to, source: id });
        }
    }

    /// Who receives `source` (empty when unknown). The per-packet lookup.
    pub fn subscribers(&self, source: SourceId) -> &[PeerKey] {
        self.sources
            .get(&source)
            .map_or(&[], |s| s.subscribers.as_slice())
    }

    /// The publisher and kind of a source.
    pub fn source(&self, source: SourceId) -> Option<(PeerKey, Kind)> {
        self.sources.get(&source).map(|s| (s.owner, s.kind))
    }

    /// The participant who publishes a source (local or behind an octo link).
    pub fn source_participant(&self, source: SourceId) -> Option<&ParticipantId> {
        let (owner, _) = self.source(source)?;
        self.peer(owner).map(|i| &i.participant)
    }

    /// A subscriber asks for a keyframe of `source`: true when it should be
    /// relayed to the publisher now (at most one per interval per source).
    /// One that comes within the interval is deferred, not dropped: the
    /// subscriber may have started after the keyframe the last request
    /// brought, so [`RouterEvent::KeyframeDue`] follows when the interval
    /// is over.
    pub fn keyframe_request(&mut self, now: Instant, source: SourceId) -> bool {
        let Some(src) = self.sources.get_mut(&source) else {
            return false;
        };
        let due = src
            .last_keyframe_request
            .is_none_or(|t| now.saturating_duration_since(t) >= self.keyframe_interval);
        if due {
            src.last_keyframe_request = Some(now);
            src.keyframe_deferred = false;
        } else {
            src.keyframe_deferred = true;
        }
        due
    }

    /// When the earliest deferred keyframe request is due.
    fn keyframe_deadline(&self) -> Option<Instant> {
        self.sources
            .values()
            .filter(|s| s.keyframe_deferred)
            .filter_map(|s| s.last_keyframe_request)
            .min()
            .map(|t| t + self.keyframe_interval)
    }

    /// A session's public info.
    pub fn peer(&self, key: PeerKey) -> Option<&PeerInfo> {
        self.peers.get(&key).map(|p| &p.info)
    }

    /// The conference a session is in.
    pub fn conference_of(&self, key: PeerKey) -> Option<&ConferenceId> {
        self.peers.get(&key).map(|p| &p.conference)
    }

    /// Everyone a member sees in the roster of its conference (itself excluded).
    /// Everyone `key` sees: one entry per participant (its latest
    /// session, when it has several while moving between edges), never
    /// `key`'s own participant.
    pub fn roster(&self, key: PeerKey) -> Vec<&PeerInfo> {
        let Some(p) = self.peers.get(&key) else {
            return Vec::new();
        };
        let mut out: Vec<&PeerInfo> = Vec::new();
        for k in self.conferences[&p.conference].peers.iter().rev() {
            let i = &self.peers[k].info;
            if i.role.in_roster()
                && i.participant != p.info.participant
                && !out.iter().any(|o| o.participant == i.participant)
            {
                out.push(i);
            }
        }
        out.reverse();
        out
    }

    /// Local roster participants (members and publishers) of a conference.
    pub fn local_roster(&self, conference: &ConferenceId) -> Vec<&PeerInfo> {
        self.conferences.get(conference).map_or(Vec::new(), |c| {
            c.peers
                .iter()
                .map(|k| &self.peers[k].info)
                .filter(|i| matches!(i.role, Role::Member | Role::Publisher))
                .collect()
        })
    }

    /// Local sessions, and conferences with at least one local session
    /// (participants mirrored from other edges are not counted).
    pub fn counts(&self) -> (usize, usize) {
        let local = |k: &PeerKey| !matches!(self.peers[k].info.role, Role::Remote { .. });
        let sessions = self.peers.keys().filter(|k| local(k)).count();
        let conferences = self
            .conferences
            .values()
            .filter(|c| c.peers.iter().any(local))
            .count();
        (sessions, conferences)
    }

    /// The next change to act on.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    fn subscribe(&mut self, to: PeerKey, source: SourceId) {
        let src = self
            .sources
            .get_mut(&source)
            .expect("subscribing to a known source");
        if src.subscribers.contains(&to) {
            return;
        }
        // A participant's other session (on its old edge, while it moves)
        // publishes the participant's own media: never sent back to it.
        if self.peers[&src.owner].info.participant == self.peers[&to].info.participant {
            return;
        }
        src.subscribers.push(to);
        let forwarded = self.peers[&to].forwards(src);
        self.events.push_back(RouterEvent::Subscribe {
            to,
            source,
            owner: src.owner,
            kind: src.kind,
            forwarded,
        });
    }
}

#[cfg(test)]
mod tests;
