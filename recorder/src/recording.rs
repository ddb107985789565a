//! One recording of one conference: a directory with a file per source
//! (WebM; Matroska for H.264) and a `manifest.json` that says what is in it.
//!
//! A source is a participant's track of one kind (`SourceKey`), not an
//! octo source id: when a publisher's edge dies and it rejoins elsewhere,
//! its media comes back under a new source id and SSRC, and goes on into
//! the same file (the timeline re-anchors; the file holds a gap as long as
//! the publisher was away).

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use geomesh_core::{ConferenceId, ParticipantId};
use geomesh_edge::rtp::OctoRtp;
use serde::Serialize;

use crate::source::{SourceEvent, SourceKind, SourceRecorder, SourceSummary};
use crate::track_file::RecordError;

/// The manifest's file name in a recording's directory.
pub const MANIFEST: &str = "manifest.json";

/// Which file a packet belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceKey {
    /// The publisher.
    pub participant: ParticipantId,
    /// Audio or video.
    pub kind: KindKey,
    /// Its n-th track of that kind (a camera and a screen share: 0 and 1).
    pub track: u8,
}

/// [`SourceKind`] as a map key (ordered: audio first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KindKey {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl From<SourceKind> for KindKey {
    fn from(k: SourceKind) -> Self {
        match k {
            SourceKind::Audio => KindKey::Audio,
            SourceKind::Video | SourceKind::H264 => KindKey::Video,
        }
    }
}

/// What a recording is of, and where it goes.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// The recording's id (unique in the cluster).
    pub id: String,
    /// The conference.
    pub conference: ConferenceId,
    /// The recorder node writing it.
    pub recorder: String,
    /// The recording's directory (created; must not exist).
    pub dir: PathBuf,
    /// The id of the file set this one continues (another recorder's,
    /// which died), if any.
    pub continues: Option<String>,
    /// The recording policy: of a simulcast publisher, the tallest layer
    /// no taller than this many pixels; 0 for the top layer.
    pub max_height: u16,
}

/// One participant, in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestParticipant {
    /// Participant id.
    pub id: ParticipantId,
    /// Display name, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One source's file, in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestSource {
    /// Publisher.
    pub participant: ParticipantId,
    /// Audio or video.
    pub kind: KindKey,
    /// Track of that kind.
    pub track: u8,
    /// Codec (`opus`, `vp8`, `h264`).
    pub codec: &'static str,
    /// File name in the recording's directory (none: nothing was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Frames in it.
    pub frames: u64,
    /// First and last frame, ms since the recording started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// See `start_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    /// Why the file ended early (a write error), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Recording id.
    pub recording: String,
    /// Conference.
    pub conference: ConferenceId,
    /// Recorder node.
    pub recorder: String,
    /// The file set this one continues, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
    /// The video layer policy: at most this tall (absent: the top layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u16>,
    /// Start, Unix ms.
    pub started_unix_ms: u64,
    /// End, Unix ms.
    pub ended_unix_ms: u64,
    /// Everyone with a source in it.
    pub participants: Vec<ManifestParticipant>,
    /// Every source and its file.
    pub sources: Vec<ManifestSource>,
}

struct Entry {
    recorder: SourceRecorder,
    kind: SourceKind,
    file: String,
}

/// A recording in progress.
pub struct Recording {
    cfg: RecordingConfig,
    started: Instant,
    started_unix_ms: u64,
    names: BTreeMap<ParticipantId, Option<String>>,
    sources: BTreeMap<SourceKey, Entry>,
    /// Files a source stopped writing because it came back in another
    /// codec (a publisher that rejoined from another browser).
    retired: Vec<(SourceKey, Entry)>,
    events: VecDeque<(SourceKey, SourceEvent)>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("id", &self.cfg.id)
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Recording {
    /// Starts a recording at `now` (`unix_ms` on the wall clock): creates
    /// its directory.
    pub fn start(cfg: RecordingConfig, now: Instant, unix_ms: u64) -> Result<Self, RecordError> {
        std::fs::create_dir(&cfg.dir).map_err(|source| RecordError::Io {
            path: cfg.dir.clone(),
            source,
        })?;
        Ok(Self {
            cfg,
            started: now,
            started_unix_ms: unix_ms,
            names: BTreeMap::new(),
            sources: BTreeMap::new(),
            retired: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// What each source is subscribed with: every layer up to the
    /// policy's height (the top one without a policy).
    pub fn subscription(&self) -> geomesh_mesh::wire::Subscription {
        geomesh_mesh::wire::Subscription {
            max_layer: geomesh_mesh::wire::Subscription::ANY_LAYER,
            max_height: self.cfg.max_height,
        }
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Sources seen so far.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Bytes written so far, over all its files.
    pub fn bytes(&self) -> u64 {
        let retired = self.retired.iter().map(|(_, e)| e);
        self.sources
            .values()
            .chain(retired)
            .map(|e| e.recorder.bytes())
            .sum()
    }

    /// The first write error of any of its files: the recording has
    /// failed (what was written before it stays valid).
    pub fn error(&self) -> Option<String> {
        self.sources
            .values()
            .find_map(|e| e.recorder.error().map(ToString::to_string))
    }

    /// A participant's display name, for the manifest.
    pub fn participant(&mut self, id: &ParticipantId, name: Option<&str>) {
        let entry = self.names.entry(id.clone()).or_default();
        if let Some(n) = name {
            *entry = Some(n.to_string());
        }
    }

    /// Takes one packet of `key`'s media, of `kind`, that arrived at `now`.
    pub fn handle_rtp(&mut self, now: Instant, key: &SourceKey, kind: SourceKind, p: &OctoRtp) {
        if self.sources.get(key).is_some_and(|e| e.kind != kind) {
            let old = self.sources.remove(key).expect("checked above");
            self.retired.push((key.clone(), old));
        }
        if !self.sources.contains_key(key) {
            self.names.entry(key.participant.clone()).or_default();
            let stem = format!(
                "{}-{}-{}",
                key.participant,
                match key.kind {
                    KindKey::Audio => "audio",
                    KindKey::Video => "video",
                },
                key.track
            );
            let taken = |name: &str| self.retired.iter().any(|(_, e)| e.file == name);
            let mut file = format!("{stem}.{}", kind.extension());
            for n in 2.. {
                if !taken(&file) {
                    break;
                }
                file = format!("{stem}.{n}.{}", kind.extension());
            }
            let mut recorder = SourceRecorder::new(kind, &self.cfg.dir.join(&file), self.started);
            while let Some(e) = recorder.poll_event() {
                self.events.push_back((key.clone(), e));
            }
            self.sources.insert(
                key.clone(),
                Entry {
                    recorder,
                    kind,
                    file,
                },
            );
        }
        let e = self.sources.get_mut(key).expect("inserted above");
        e.recorder.handle_rtp(now, p);
        while let Some(ev) = e.recorder.poll_event() {
            self.events.push_back((key.clone(), ev));
        }
    }

    /// What the recording asks of the links, oldest first.
    pub fn poll_event(&mut self) -> Option<(SourceKey, SourceEvent)> {
        self.events.pop_front()
    }

    /// Closes every file, writes `manifest.json` (the last thing written:
    /// a directory with a manifest is complete) and returns it.
    pub fn finish(self, unix_ms: u64) -> Result<Manifest, RecordError> {
        let mut sources = Vec::with_capacity(self.sources.len() + self.retired.len());
        for (key, e) in self.retired.into_iter().chain(self.sources) {
            let s: SourceSummary = e.recorder.finish();
            let sha256 = match &s.path {
                Some(p) => Some(sha256_file(p)?),
                None => None,
            };
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            sources.push(ManifestSource {
                participant: key.participant,
                kind: key.kind,
                track: key.track,
                codec: e.kind.codec(),
                file: s.path.as_ref().map(|_| e.file.clone()),
                bytes: s.bytes,
                sha256,
                frames: s.frames,
                start_ms: s.span.map(|(a, _)| ms(a)),
                end_ms: s.span.map(|(_, b)| ms(b)),
                error: s.error,
            });
        }
        let manifest = Manifest {
            recording: self.cfg.id.clone(),
            conference: self.cfg.conference.clone(),
            recorder: self.cfg.recorder.clone(),
            continues: self.cfg.continues.clone(),
            max_height: (self.cfg.max_height > 0).then_some(self.cfg.max_height),
            started_unix_ms: self.started_unix_ms,
            ended_unix_ms: unix_ms,
            participants: self
                .names
                .into_iter()
                .map(|(id, name)| ManifestParticipant { id, name })
                .collect(),
            sources,
        };
        let path = self.cfg.dir.join(MANIFEST);
        let io = |source| RecordError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
        // Whole or absent: written aside, then renamed into place.
        let tmp = self.cfg.dir.join(".manifest.json.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(manifest)
    }
}

/// The SHA-256 of a file, hex.
fn sha256_file(path: &Path) -> Result<String, RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
