//! # geomesh-edge
//!
//! The edge bridge: a WebRTC SFU on `str0m` that regional participants
//! connect to.
//!
//! **Owns**: WebSocket signaling (`GET /v1/rtc`, [`messages`]), WHIP and
//! WHEP, the single-UDP-port media socket ([`socket`]: batched receive and
//! GSO send) with address-keyed demultiplexing (`geomesh_core::stun` names the session of a new address), the
//! sans-IO routing table ([`router`]: who publishes what, who receives it),
//! the media loops that drive every session's `Rtc` ([`media`], one per core:
//! [`workers`]), where sessions go ([`placement`]) and how one conference
//! spreads over the loops (sibling links; [`linkshare`]), join token
//! checks, metrics, the meeting page, octo integration and the selector
//! agent (over the selector's public API).
//!
//! **Does not own**: the octo wire protocol (`geomesh-mesh`), placement
//! (the selector, reached only over HTTP, never linked), or shared types
//! (`geomesh-core`).
//!
//! ## Drive shape
//!
//! The routing table is pure: `join`/`leave`/`add_source`/`remove_source`
//! in, [`router::Router::poll_event`] out. The media loop is the only place
//! with a socket and a clock: it waits for a batch of datagrams, a command
//! or the soonest timeout, applies it, drains the touched `Rtc`s to their
//! next timeouts (each subscriber once per round, however many packets it
//! got), settles the consequences and sends the round's datagrams
//! ([`socket`]). Signaling tasks talk to it only through
//! [`media::MediaHandle`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod drain;
pub mod forward;
pub mod fuzz;
pub mod http;
pub mod lastn;
pub mod layers;
pub mod limits;
pub mod linkshare;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod peer;
pub mod placement;
pub mod router;
pub mod rtp;
pub mod sdp;
pub mod server;
pub(crate) mod sibling;
pub mod socket;
pub mod speaker;
pub mod whip;
pub mod workers;
pub mod ws;
