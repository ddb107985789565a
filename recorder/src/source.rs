//! One source of a recording: its packets in, its file out (WebM; Matroska
//! for H.264).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use geomesh_edge::rtp::OctoRtp;
use tracing::{debug, warn};

use crate::frames::{Frame, VideoAssembler, VideoCodec, vp8_keyframe_size};
use crate::timeline::Timeline;
use crate::track_file::{RecordError, TrackCodec, TrackFile};

/// What a source carries: its kind and codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Opus audio.
    Audio,
    /// VP8 video.
    Video,
    /// H.264 video.
    H264,
}

impl SourceKind {
    /// The codec's name (as in SDP and the manifest).
    pub fn codec(self) -> &'static str {
        match self {
            SourceKind::Audio => "opus",
            SourceKind::Video => "vp8",
            SourceKind::H264 => "h264",
        }
    }

    /// The extension of its file: `webm`, or `mkv` for H.264 (WebM does
    /// not allow it).
    pub fn extension(self) -> &'static str {
        match self {
            SourceKind::Audio | SourceKind::Video => "webm",
            SourceKind::H264 => "mkv",
        }
    }

    /// The kind that goes with an SDP codec name, if the recorder writes it.
    pub fn of_codec(name: &str, video: bool) -> Option<Self> {
        match (video, name.to_ascii_lowercase().as_str()) {
            (false, "opus") => Some(SourceKind::Audio),
            (true, "vp8") => Some(SourceKind::Video),
            (true, "h264") => Some(SourceKind::H264),
            _ => None,
        }
    }

    fn video(self) -> Option<VideoCodec> {
        match self {
            SourceKind::Audio => None,
            SourceKind::Video => Some(VideoCodec::Vp8),
            SourceKind::H264 => Some(VideoCodec::H264),
        }
    }
}

/// What the recorder of a source asks of the link it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEvent {
    /// Video cannot continue (or start) without a keyframe: ask the
    /// publisher's edge for one.
    KeyframeWanted,
}

/// A finished source's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSummary {
    /// The file (none if nothing was ever written).
    pub path: Option<PathBuf>,
    /// Its size, bytes.
    pub bytes: u64,
    /// Frames written.
    pub frames: u64,
    /// First and last frame, since the recording started.
    pub span: Option<(Duration, Duration)>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Records one source.
#[derive(Debug)]
pub struct SourceRecorder {
    kind: SourceKind,
    path: PathBuf,
    started: Instant,
    timeline: Timeline,
    video: VideoAssembler,
    file: Option<TrackFile>,
    events: VecDeque<SourceEvent>,
    span: Option<(u64, u64)>,
    /// The file stopped (a write error); later packets are ignored.
    failed: Option<RecordError>,
    /// When a keyframe was last asked for, while none has come since.
    asked: Option<Instant>,
    /// No packet yet: the first ask's clock starts with the first packet
    /// (the source may begin long after the recording).
    idle: bool,
}

/// How long to wait for an asked keyframe before asking again: the
/// request can be lost (dropped on a link, sent before the subscription
/// reached the publisher's edge, answered on a layer the edge has since
/// switched away from), and nothing else would ever bring one.
pub const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

impl SourceRecorder {
    /// A recorder writing `path` (created at the first frame it can write)
    /// for a recording that started at `started`.
    pub fn new(kind: SourceKind, path: &Path, started: Instant) -> Self {
        let mut s = Self {
            kind,
            path: path.to_path_buf(),
            started,
            timeline: Timeline::new(match kind {
                SourceKind::Audio => 48_000,
                SourceKind::Video | SourceKind::H264 => 90_000,
            }),
            video: VideoAssembler::new(kind.video().unwrap_or_default()),
            file: None,
            events: VecDeque::new(),
            span: None,
            failed: None,
            asked: None,
            idle: true,
        };
        if kind != SourceKind::Audio {
            // A file starts on a keyframe: ask at once rather than wait for
            // the encoder's next one.
            s.want_keyframe(started);
        }
        s
    }

    /// What it asks of the link, oldest first.
    pub fn poll_event(&mut self) -> Option<SourceEvent> {
        self.events.pop_front()
    }

    /// Why it stopped writing, if it did.
    pub fn error(&self) -> Option<&RecordError> {
        self.failed.as_ref()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.file.as_ref().map_or(0, TrackFile::bytes)
    }

    /// Takes one packet that arrived at `now`.
    pub fn handle_rtp(&mut self, now: Instant, p: &OctoRtp) {
        if self.failed.is_some() {
            return;
        }
        if std::mem::take(&mut self.idle) && self.asked.is_some() {
            self.asked = Some(now);
        }
        let frame = match self.kind {
            SourceKind::Audio => Some(Frame {
                ts: p.ts,
                ssrc: p.ssrc,
                keyframe: true,
                data: p.payload.to_vec(),
            }),
            SourceKind::Video | SourceKind::H264 => {
                let pushed = self.video.push(p);
                let stale = self
                    .asked
                    .is_some_and(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY);
                let waiting = self.video.waiting_for_keyframe() || self.file.is_none();
                if pushed.needs_keyframe || (stale && waiting) {
                    self.want_keyframe(now);
                }
                pushed.frame
            }
        };
        let Some(frame) = frame else {
            return;
        };
        // An empty payload is no frame (an RTP padding-only packet, which
        // senders use to probe bandwidth): the muxer would refuse it.
        if frame.data.is_empty() {
            return;
        }
        if let Err(e) = self.write(now, &frame) {
            warn!(path = %self.path.display(), "recording of this source stopped: {e}");
            self.failed = Some(e);
        }
    }

    /// Asks for a keyframe, unless one was asked for less than
    /// [`KEYFRAME_RETRY`] ago.
    fn want_keyframe(&mut self, now: Instant) {
        if self
            .asked
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY)
        {
            self.asked = Some(now);
            self.events.push_back(SourceEvent::KeyframeWanted);
        }
    }

    fn write(&mut self, now: Instant, f: &Frame) -> Result<(), RecordError> {
        if self.file.is_none() {
            // Only a keyframe gets here first; one the track cannot be
            // described from (no size; for H.264 no SPS and PPS) waits for
            // the next, which is asked for again after KEYFRAME_RETRY.
            let codec = match self.kind {
                SourceKind::Audio => Some(TrackCodec::Opus),
                SourceKind::Video => vp8_keyframe_size(&f.data)
                    .map(|(width, height)| TrackCodec::Vp8 { width, height }),
                SourceKind::H264 => crate::h264::track_config(&f.data).map(TrackCodec::H264),
            };
            let Some(codec) = codec else {
                debug!("first keyframe does not describe the track");
                return Ok(());
            };
            self.file = Some(TrackFile::create(&self.path, codec)?);
        }
        if f.keyframe {
            self.asked = None;
        }
        let ns = self
            .timeline
            .place(f.ssrc, f.ts, now.saturating_duration_since(self.started));
        let file = self.file.as_mut().expect("created above");
        file.write(ns, f.keyframe, &f.data)?;
        self.span = Some(self.span.map_or((ns, ns), |(a, _)| (a, ns)));
        Ok(())
    }

    /// Closes the file (cues, duration); what was recorded.
    pub fn finish(self) -> SourceSummary {
        let span = self
            .span
            .map(|(a, b)| (Duration::from_nanos(a), Duration::from_nanos(b)));
        let mut error = self.failed.map(|e| e.to_string());
        let (path, bytes, frames) = match self.file {
            Some(f) => {
                let frames = f.frames();
                let bytes_so_far = f.good_bytes();
                let path = f.path().to_path_buf();
                let bytes = match f.finish() {
                    Ok(b) => b,
                    Err(e) => {
                        error.get_or_insert_with(|| e.to_string());
                        bytes_so_far
                    }
                };
                (Some(path), bytes, frames)
            }
            None => (None, 0, 0),
        };
        SourceSummary {
            path,
            bytes,
            frames,
            span,
            error,
        }
    }
}
