//! The recorder as an octo peer, without I/O: what the edges announce on
//! their links to the recorder in, subscriptions and keyframe requests out,
//! media into the conference's [`Recording`].
//!
//! An edge announces every conference it hosts, with its participants and
//! sources, to each of its links; the recorder subscribes to the sources of
//! the conferences it records — every audio source, and of every video
//! source the top layer or the tallest the recording's policy allows
//! ([`Recording::subscription`]) — so each source crosses to it once, from
//! the publisher's own edge, wherever that is.
//!
//! A participant's track is one file for the whole recording: when its
//! edge dies and it rejoins on another edge, the new source (a new id on
//! another link, a new SSRC) takes over the track that a source on a link
//! that is down held, and the file goes on after a gap as long as the
//! rejoin took.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use geomesh_core::{ConferenceId, EdgeId, ParticipantId};
use geomesh_mesh::link::{LinkEvent, MediaIn, RemoteSource};
use geomesh_mesh::wire::{MediaKind, MediaType, SourceId, Subscription};
use tracing::{debug, info};

use crate::recording::{KindKey, Manifest, Recording, RecordingConfig, SourceKey};
use crate::source::{SourceEvent, SourceKind};
use crate::track_file::RecordError;

/// What the core asks of its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAction {
    /// Subscribe to a source on the link to `edge`.
    Subscribe {
        /// The publisher's edge.
        edge: EdgeId,
        /// Its source.
        source: SourceId,
        /// Which layers.
        subscription: Subscription,
    },
    /// No recording needs the source any more.
    Unsubscribe {
        /// The publisher's edge.
        edge: EdgeId,
        /// Its source.
        source: SourceId,
    },
    /// Ask `edge` for a keyframe of `source`.
    RequestKeyframe {
        /// The publisher's edge.
        edge: EdgeId,
        /// Its source.
        source: SourceId,
    },
}

/// Counters the node exports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoreCounters {
    /// RTP packets written into recordings.
    pub packets: u64,
    /// Packets that did not parse as RTP.
    pub bad_packets: u64,
    /// Sources of a recorded conference in a codec that is not recorded.
    pub unsupported_sources: u64,
}

struct Active {
    recording: Recording,
    /// Which file each remote source feeds, and its codec.
    tracks: HashMap<(EdgeId, SourceId), (SourceKey, SourceKind)>,
}

/// The recorder's state across its links.
pub struct RecorderCore {
    recordings: BTreeMap<ConferenceId, Active>,
    /// Every source the edges announced, by (edge, id).
    sources: HashMap<(EdgeId, SourceId), Arc<RemoteSource>>,
    /// Display names, by conference and participant.
    names: HashMap<(ConferenceId, ParticipantId), Option<String>>,
    /// Links that are up.
    up: HashSet<EdgeId>,
    actions: VecDeque<LinkAction>,
    counters: CoreCounters,
}

impl std::fmt::Debug for RecorderCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderCore")
            .field("recordings", &self.recordings.len())
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Default for RecorderCore {
    fn default() -> Self {
        Self::new()
    }
}

/// What the recorder writes of a source, if it writes its codec (Opus,
/// VP8, H.264).
fn recordable(s: &RemoteSource) -> Option<SourceKind> {
    SourceKind::of_codec(&s.info.codec.name, s.info.kind == MediaKind::Video)
}

impl RecorderCore {
    /// A recorder with no recording.
    pub fn new() -> Self {
        Self {
            recordings: BTreeMap::new(),
            sources: HashMap::new(),
            names: HashMap::new(),
            up: HashSet::new(),
            actions: VecDeque::new(),
            counters: CoreCounters::default(),
        }
    }

    /// Its counters.
    pub fn counters(&self) -> CoreCounters {
        self.counters
    }

    /// Octo links up.
    pub fn links_up(&self) -> usize {
        self.up.len()
    }

    /// `conference`'s recording, if it is being recorded.
    pub fn recording(&self, conference: &ConferenceId) -> Option<&Recording> {
        self.recordings.get(conference).map(|a| &a.recording)
    }

    /// Whether `conference` is being recorded.
    pub fn is_recording(&self, conference: &ConferenceId) -> bool {
        self.recordings.contains_key(conference)
    }

    /// Starts recording `cfg.conference` at `now`: subscribes to every
    /// source of it the edges already announced.
    pub fn start(
        &mut self,
        cfg: RecordingConfig,
        now: Instant,
        unix_ms: u64,
    ) -> Result<(), RecordError> {
        let conference = cfg.conference.clone();
        if self.recordings.contains_key(&conference) {
            return Ok(());
        }
        let mut recording = Recording::start(cfg, now, unix_ms)?;
        for ((c, p), name) in &self.names {
            if *c == conference {
                recording.participant(p, name.as_deref());
            }
        }
        info!(%conference, dir = %recording.dir().display(), "recording started");
        self.recordings.insert(
            conference.clone(),
            Active {
                recording,
                tracks: HashMap::new(),
            },
        );
        let known: Vec<Arc<RemoteSource>> = self
            .sources
            .values()
            .filter(|s| s.conference == conference)
            .cloned()
            .collect();
        for s in known {
            self.take(&s);
        }
        Ok(())
    }

    /// Stops recording `conference`: unsubscribes, closes its files and
    /// writes its manifest.
    pub fn stop(
        &mut self,
        conference: &ConferenceId,
        unix_ms: u64,
    ) -> Option<Result<Manifest, RecordError>> {
        let active = self.recordings.remove(conference)?;
        for (edge, source) in active.tracks.into_keys() {
            self.actions
                .push_back(LinkAction::Unsubscribe { edge, source });
        }
        info!(%conference, "recording stopped");
        Some(active.recording.finish(unix_ms))
    }

    /// What the core asks of its links, oldest first.
    pub fn poll_action(&mut self) -> Option<LinkAction> {
        self.actions.pop_front()
    }

    /// An event of the link to `edge`.
    pub fn handle_link_event(&mut self, edge: &EdgeId, ev: &LinkEvent) {
        match ev {
            LinkEvent::Up { .. } => {
                self.up.insert(edge.clone());
            }
            LinkEvent::Down { .. } | LinkEvent::Failed(_) => {
                // Its sources are gone with it (an edge announces them all
                // again when the link comes back): a recording started
                // later must not take a dead edge's source for a
                // participant who has rejoined elsewhere. The files stay
                // open: a rejoined source takes its track over.
                self.up.remove(edge);
                self.sources.retain(|(e, _), _| e != edge);
                for a in self.recordings.values_mut() {
                    a.tracks.retain(|(e, _), _| e != edge);
                }
            }
            LinkEvent::EndpointJoined {
                conference,
                participant,
                display_name,
            } => {
                self.names.insert(
                    (conference.clone(), participant.clone()),
                    display_name.clone(),
                );
                if let Some(a) = self.recordings.get_mut(conference) {
                    a.recording
                        .participant(participant, display_name.as_deref());
                }
            }
            LinkEvent::SourceAdded(s) => {
                self.sources.insert((edge.clone(), s.id), s.clone());
                if self.recordings.contains_key(&s.conference) {
                    self.take(s);
                }
            }
            LinkEvent::SourceRemoved(s) => {
                self.sources.remove(&(edge.clone(), s.id));
                if let Some(a) = self.recordings.get_mut(&s.conference) {
                    a.tracks.remove(&(edge.clone(), s.id));
                }
            }
            _ => {}
        }
    }

    /// Subscribes a recorded conference's source and gives it its track.
    fn take(&mut self, s: &Arc<RemoteSource>) {
        let Some(a) = self.recordings.get_mut(&s.conference) else {
            return;
        };
        let Some(codec) = recordable(s) else {
            debug!(codec = %s.info.codec.name, "source not recorded: its codec");
            self.counters.unsupported_sources += 1;
            return;
        };
        let kind = KindKey::from(codec);
        // A participant is on one edge at a time: its sources on another
        // edge are from before it moved (that edge died, or it migrated and
        // the old session is about to end). They hand their tracks over, so
        // the move continues the same files, and stop being written (two
        // sessions' frames must not interleave in one file).
        let moved: Vec<(EdgeId, SourceId)> = a
            .tracks
            .iter()
            .filter(|((e, _), (k, _))| {
                e != &s.edge && k.participant == s.info.owner && k.kind == kind
            })
            .map(|(at, _)| at.clone())
            .collect();
        for (edge, source) in moved {
            a.tracks.remove(&(edge.clone(), source));
            if self.up.contains(&edge) {
                self.actions
                    .push_back(LinkAction::Unsubscribe { edge, source });
            }
        }
        // Tracks held by the participant's other sources of this kind.
        let held: HashSet<u8> = a
            .tracks
            .iter()
            .filter(|((e, id), (k, _))| {
                (e, id) != (&s.edge, &s.id) && k.participant == s.info.owner && k.kind == kind
            })
            .map(|(_, (k, _))| k.track)
            .collect();
        let track = (0..=u8::MAX).find(|t| !held.contains(t)).unwrap_or(u8::MAX);
        let subscription = a.recording.subscription();
        a.tracks.insert(
            (s.edge.clone(), s.id),
            (
                SourceKey {
                    participant: s.info.owner.clone(),
                    kind,
                    track,
                },
                codec,
            ),
        );
        self.actions.push_back(LinkAction::Subscribe {
            edge: s.edge.clone(),
            source: s.id,
            subscription,
        });
    }

    /// A media packet from a link, at `now`.
    pub fn handle_media(&mut self, now: Instant, m: &MediaIn) {
        if m.ty != MediaType::Rtp {
            return;
        }
        let s = &m.source;
        let Some(a) = self.recordings.get_mut(&s.conference) else {
            return;
        };
        let Some((key, codec)) = a.tracks.get(&(s.edge.clone(), s.id)).cloned() else {
            return;
        };
        let Ok(p) = geomesh_edge::rtp::parse(&m.packet) else {
            self.counters.bad_packets += 1;
            return;
        };
        self.counters.packets += 1;
        a.recording.handle_rtp(now, &key, codec, &p);
        while let Some((_, SourceEvent::KeyframeWanted)) = a.recording.poll_event() {
            self.actions.push_back(LinkAction::RequestKeyframe {
                edge: s.edge.clone(),
                source: s.id,
            });
        }
    }
}
