//! # geomesh-recorder
//!
//! The recording role (issue #18): a conference's sources, each into its
//! own WebM (Matroska for H.264) file, without decoding or transcoding.
//!
//! **Owns**: turning a source's RTP packets, as an octo link delivers them
//! (`geomesh_edge::rtp::OctoRtp`), into frames ([`frames`]: VP8 per RFC
//! 7741, H.264 per RFC 6184 ([`h264`]), Opus one packet per frame), placing
//! them on the recording's clock ([`timeline`]: across layer switches,
//! pauses and a publisher's rejoin), and writing them ([`track_file`]) —
//! per source, [`SourceRecorder`]; per conference, [`Recording`]: a
//! directory with a file per participant's track and `manifest.json`
//! ([`recording`]).
//!
//! As an octo peer ([`core`], sans-IO): subscriptions to a recorded
//! conference's sources as the edges announce them, keyframe requests, and
//! a publisher followed from a dead edge to the one it rejoined. The node
//! ([`node`]): its QUIC endpoint, its heartbeat to the selectors (which
//! decide what it records), its HTTP API and [`metrics`].
//!
//! **Does not own**: recording placement and control
//! (`/v1/conferences/{id}/recording`: the selectors, through Raft).
//!
//! ## Drive shape
//!
//! Sans-IO apart from the file: [`SourceRecorder::handle_rtp`] takes the
//! packet and its arrival time, [`SourceRecorder::poll_event`] says when a
//! keyframe is needed (after loss, and to start), and
//! [`SourceRecorder::finish`] finalizes the file. Time is passed in, so
//! tests replay a stream on a virtual clock.
//!
//! ## The muxers
//!
//! The `webm` crate wraps libwebm, the WebM project's own muxer (what
//! Chromium's MediaRecorder and ffmpeg's test suites are checked against),
//! is maintained (2.x, 2025) and builds from source with the C++ compiler
//! (no system library): VP8 and Opus go there. WebM does not allow H.264
//! and the `webm` crate can only name WebM's codecs, so H.264 goes into
//! Matroska through `oxideav-mkv` (pure Rust), with [`h264`] turning RFC
//! 6184 payloads into length-prefixed access units and the track's
//! configuration record (docs/DECISIONS.md, "Recording").

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod core;
pub mod frames;
pub mod fuzz;
pub mod h264;
mod http;
pub mod metrics;
pub mod node;
pub mod recording;
pub mod source;
pub mod timeline;
pub mod track_file;

pub use recording::{KindKey, Manifest, Recording, RecordingConfig, SourceKey};
pub use source::{SourceEvent, SourceKind, SourceRecorder, SourceSummary};
pub use track_file::RecordError;
