//! # geomesh-loadgen
//!
//! Load for edges: many WebRTC participants in one process, no browser, and
//! the figures an operator sizes edges with — sessions connected, packets
//! and frames per kind, received bitrate, loss, one-way delay, and the
//! edge's CPU seconds per forwarded packet, next to the same load through a
//! bare UDP relay (the floor no SFU can beat).
//!
//! **Owns**: synthetic media ([`vp8`], [`opus`], [`source`]: realistic
//! sizes and cadence, a send stamp inside every frame, [`stamp`]); a str0m
//! client speaking the edge's WebSocket protocol ([`session`]); the bare
//! relay and its plain-RTP clients ([`relay`], [`bare`], [`rtp`]); the
//! accounting ([`accounting`], [`histogram`]) and the report ([`report`]);
//! a run's phases ([`run`]).
//!
//! **Does not own**: the edge (it is driven only through its public
//! interfaces: `/v1/rtc`, `/dev/token`, `/healthz`, `/metrics`), tokens
//! (minted with `geomesh-core`), or the command line (`geomesh loadgen` in
//! the binary).
//!
//! ## Drive shape
//!
//! Generators, stamps, accounting and reports are pure: time is passed in,
//! nothing touches a socket, and they are unit-tested that way. Each
//! session is one tokio task with its own loopback UDP socket; a WebRTC
//! session follows str0m's rule — one mutation (datagram, signaling message,
//! timeout, frame write), then drain `poll_output` to `Timeout`. The run
//! moves every session through the same [`plan::Phase`]s over a `watch`
//! channel: `Setup` (join, negotiate) → `Publish` (counting starts, the
//! server is sampled) → `Drain` (publishers stop, in-flight frames still
//! count) → `Stop` (server sampled again, `leave`, results handed back).
//!
//! ```no_run
//! # async fn f() -> Result<(), geomesh_loadgen::LoadgenError> {
//! use std::time::Duration;
//! use geomesh_loadgen::{Config, MediaConfig, run};
//! let outcome = run(&Config {
//!     edges: vec!["http://127.0.0.1:8080".into()],
//!     conferences: 1, publishers: 2, subscribers: 1,
//!     duration: Duration::from_secs(5),
//!     media: MediaConfig { video_kbps: 1500, simulcast: false, audio: true },
//!     token_key: None, relay_floor: true,
//!     setup_timeout: Duration::from_secs(30), drain: Duration::from_secs(1),
//!     ramp: Duration::from_millis(5), seed: 1, tile_height: None, stage_height: None,
//!     talkers: None,
//!     selector: None, locations: Vec::new(), run_id: None,
//!     janus: None, mediasoup: None, server_pids: vec![], bind: None,
//! }).await?;
//! println!("{outcome}");
//! # Ok(()) }
//! ```
//!
//! Where the stamp lives, and why it survives frame-level and RTP-level
//! forwarding alike, is in [`stamp`].
//!
//! The HTTP client needs a rustls crypto provider installed in the process
//! (the `geomesh` binary installs aws-lc-rs at start).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounting;
pub mod bare;
pub mod edge_api;
mod error;
mod harness;
pub mod histogram;
pub mod janus;
mod joining;
pub mod opus;
pub mod peers;
pub mod plan;
pub mod relay;
pub mod report;
mod rng;
pub mod rtp;
pub mod rtp_io;
pub mod run;
pub mod sdp;
pub mod selector_api;
pub mod session;
pub mod sockdrops;
pub mod source;
pub mod stamp;
pub mod vp8;

pub use error::LoadgenError;
pub use report::{Outcome, Report};
pub use run::{Config, run};
pub use source::MediaConfig;
