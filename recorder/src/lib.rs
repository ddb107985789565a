//! # geomesh-recorder
//!
//! The recording role (issue #18): a conference's sources, each into its
//! own WebM file, without decoding or transcoding.
//!
//! **Owns**: turning a source's RTP packets, as an octo link delivers them
//! (`geomesh_edge::rtp::OctoRtp`), into frames ([`frames`]: VP8
//! depacketization per RFC 7741, Opus one packet per frame), placing them on
//! the recording's clock ([`timeline`]: across layer switches, pauses and a
//! publisher's rejoin), and writing them ([`track_file`]: libwebm's muxer
//! through the `webm` crate) — per source, [`SourceRecorder`]; per
//! conference, [`Recording`]: a directory with a file per participant's
//! track and `manifest.json` ([`recording`]).
//!
//! As an octo peer ([`core`], sans-IO): subscriptions to a recorded
//! conference's sources as the edges announce them, keyframe requests, and
//! a publisher followed from a dead edge to the one it rejoined.
//!
//! **Does not own** (yet): the recorder node's I/O (its QUIC links, its
//! certificate role), its registration with the selectors, recording
//! placement and control (`/v1/conferences/{id}/recording`).
//!
//! ## Drive shape
//!
//! Sans-IO apart from the file: [`SourceRecorder::handle_rtp`] takes the
//! packet and its arrival time, [`SourceRecorder::poll_event`] says when a
//! keyframe is needed (after loss, and to start), and
//! [`SourceRecorder::finish`] finalizes the file. Time is passed in, so
//! tests replay a stream on a virtual clock.
//!
//! ## Why libwebm
//!
//! The `webm` crate wraps libwebm, the WebM project's own muxer (what
//! Chromium's MediaRecorder and ffmpeg's test suites are checked against),
//! is maintained (2.x, 2025) and builds from source with the C++ compiler
//! (no system library). Pure-Rust Matroska crates found were demuxers or
//! EBML element writers that would leave clusters, cues and lacing to us.
//! It writes VP8, VP9, AV1 and Opus; H.264 (Matroska, not WebM) is not in
//! libwebm and not recorded yet.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod core;
pub mod frames;
pub mod fuzz;
pub mod node;
pub mod recording;
pub mod source;
pub mod timeline;
pub mod track_file;

pub use recording::{KindKey, Manifest, Recording, RecordingConfig, SourceKey};
pub use source::{SourceEvent, SourceKind, SourceRecorder, SourceSummary};
pub use track_file::RecordError;
