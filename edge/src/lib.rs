//! # geomesh-edge
//!
//! The edge bridge: a WebRTC SFU on `str0m` that regional participants
//! connect to.
//!
//! **Owns**: WebSocket signaling (`GET /v1/rtc`, [`messages`]), WHIP and
//! WHEP, the single-UDP-port media socket ([`socket`]: batched receive and
//! GSO send) with address-keyed demultiplexing (`geomesh_core::stun` names the session of a new address), the
//! sans-IO routing table ([`router`]: who publishes what, who receives it),
//! the SFU core that drives every session's `Rtc` without I/O ([`sfu`]:
//! one per media worker, [`workers`]) and its I/O shell ([`media`]), where sessions go ([`placement`]) and how one conference
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
//! in, [`router::Router::poll_event`] out. The SFU core ([`sfu::Sfu`]) is
//! sans-IO too: time and input in (`handle_datagram`, `handle_command`,
//! `handle_octo`, `handle_timeout`), a command's `Response`, the round's
//! datagrams, its other outputs (`poll_output`: signaling messages,
//! closed sessions, participant reports) and a timeout with its reason
//! out; it drains the touched `Rtc`s to their next
//! timeouts (each subscriber once per round, however many packets it got)
//! and settles the consequences. The media worker tasks ([`media`]) are
//! the only place with a socket and a clock: they wait for a batch of
//! datagrams, a command, an octo event or the core's timeout, hand it in
//! and send what the core produced ([`socket`]). Signaling tasks talk to
//! them only through [`media::MediaHandle`]. The virtual-time tests
//! (`sfu::harness`) drive cores of several edges, their octo links and
//! str0m clients on a simulated clock and network.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod drain;
pub mod forward;
pub mod fuzz;
pub mod http;
pub mod lab;
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
pub mod sfu;
pub(crate) mod sibling;
pub mod socket;
pub mod speaker;
pub mod tiles;
pub mod vp8;
pub mod whip;
pub mod workers;
pub mod ws;
