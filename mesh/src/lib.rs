//! # geomesh-mesh
//!
//! The octo mesh between edges: everything that crosses from one edge bridge
//! to another.
//!
//! **Owns**:
//!
//! - [`wire`]: the versioned octo wire protocol (version 1, ALPN
//!   `geomesh-octo/1`): length-prefixed control frames on one reliable QUIC
//!   stream per link, and media datagrams with a header of at most 8 bytes
//!   (or fragments of a packet too big for the connection's datagrams).
//!   A sans-IO codec; decoding never panics and every malformed input is a
//!   typed [`wire::DecodeError`]. `docs/PROTOCOL.md` ("Octo wire protocol")
//!   has it byte by byte.
//! - [`link`]: the sans-IO state machine for one edge pair
//!   ([`link::Link`]): Hello exchange (version and identity checks), my
//!   announced state and the peer's, subscriptions and the forwarding rule,
//!   keyframe requests, Ping/Pong RTT, re-announcement after reconnects,
//!   bounded reassembly of fragmented packets.
//! - [`tls`]: mutual TLS with the cluster CA; only *edge* (and *recorder*) certificates are
//!   accepted, and the peer's id is read from its certificate.
//! - [`transport`]: the thin quinn driver ([`transport::OctoNode`]): one
//!   QUIC connection per edge pair shared by all conferences, dial/accept
//!   with backoff (the lower id dials), datagram sizing (path-MTU
//!   discovery above a 1280-byte floor; fragments for what does not fit),
//!   metrics.
//! - [`fuzz`]: the body of the `octo_wire` fuzz target.
//!
//! **Does not own**: what an edge does with media (SFU routing, simulcast
//! switching, last-N: `geomesh-edge`), which edges host which conference
//! (the selector), or credential files (`geomesh_core::credentials`).
//!
//! ## Drive loop (sans-IO)
//!
//! A [`link::Link`] never reads a clock or touches a socket. Its driver
//! feeds it (`handle_connected`, `handle_control`, `handle_datagram`,
//! `handle_timeout`, `handle_disconnected`, with `now` passed in), then
//! drains `poll_transmit` (control bytes), `poll_event` (for the edge) and
//! `poll_timeout` (when to wake, and why). [`transport`] is such a driver
//! over quinn; tests drive two links against each other on a virtual clock:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use geomesh_core::{EdgeId, RegionId};
//! use geomesh_mesh::link::{Link, LinkConfig, LinkEvent};
//!
//! let id = |s: &str| EdgeId::new(s).unwrap();
//! let cfg = |s: &str| LinkConfig::new(id(s), RegionId::new("eu").unwrap());
//! let (mut a, mut b) = (Link::new(cfg("edge-a"), id("edge-b")), Link::new(cfg("edge-b"), id("edge-a")));
//! let mut now = Instant::now();
//! a.handle_connected(now);
//! b.handle_connected(now);
//! for _ in 0..100 {
//!     // 1. Move what each side wants to send to the other side.
//!     while let Some(bytes) = a.poll_transmit() { b.handle_control(now, &bytes); }
//!     while let Some(bytes) = b.poll_transmit() { a.handle_control(now, &bytes); }
//!     // 2. Act on events.
//!     while let Some(event) = b.poll_event() {
//!         if let LinkEvent::Up { region, .. } = event { assert_eq!(region.as_str(), "eu"); }
//!     }
//!     while a.poll_event().is_some() {}
//!     // 3. Sleep until the soonest deadline (here: jump the virtual clock).
//!     let next = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().map(|d| d.at).min();
//!     now = next.unwrap_or(now + Duration::from_secs(1));
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//! }
//! assert!(a.is_up() && b.is_up() && a.rtt().is_some());
//! ```
//!
//! ## How an edge uses it
//!
//! 1. `OctoNode::start(OctoConfig::new(my_id, my_region, octo_bind,
//!    Credentials::load(&topology.tls, my_id)?))` → the node and one
//!    [`transport::OctoEvent`] channel.
//! 2. For each peer edge: `node.link_to(&peer)` (set up what it should
//!    announce), then `node.connect(peer, addr)`; both edges of a pair call
//!    it; the lower id dials. Inbound links from other edges appear by
//!    themselves (`node.link(&peer)` after their `LinkEvent::Up`).
//! 3. Announce what I host on each link, by commands its driver runs on
//!    the [`link::Link`] (`link.command(|l| …)`, or `link.call(…).await`
//!    for the result): `open_conference`,
//!    `endpoint_joined`/`endpoint_left`, `add_source` (a stable
//!    [`wire::SourceId`] per source, [`wire::SourceInfo`] with its layers)
//!    /`remove_source`, `close_conference`. The link keeps this state and
//!    re-announces it after every reconnect: **the edge does nothing on a
//!    reconnect**.
//! 4. Subscribe to remote sources local participants want
//!    (`subscribe(id, Subscription { max_layer, max_height })`, re-send to
//!    change the layer; `unsubscribe` when the last local subscriber leaves).
//!    Subscriptions survive reconnects too.
//! 5. Offer every RTP/RTCP packet of my sources in an open conference to
//!    a [`transport::MediaSender`] (one per sending thread and link,
//!    `link.media_sender()`): `send_media(source, ty, layer, keyframe,
//!    packet)` sends it only while the peer subscribes, and only the one
//!    layer [`wire::Subscription::select`] picks (a change of layer from the
//!    new layer's keyframe on); everything else returns `Err(NotSent(..))`
//!    cheaply, decided from the table the link's driver publishes, without
//!    a lock. `LinkConfig::forward_unsubscribed` switches
//!    the filter off for the bandwidth comparison.
//! 6. Handle events: remote conferences, roster and sources
//!    (`LinkEvent::ConferenceOpened`, `EndpointJoined`, `SourceAdded`, …),
//!    `Subscribed`/`Unsubscribed`/`KeyframeRequested` for my sources,
//!    `OctoEvent::Media` for remote packets (`media.source` says whose),
//!    `Rtt`, `Up`/`Down`/`Synced`, `Goodbye`.
//!
//! ## Fuzzing
//!
//! `fuzz/` (its own workspace) holds the cargo-fuzz target `octo_wire` and
//! its seed corpus; `tests/fuzz.rs` (the workspace root) runs the same body
//! ([`fuzz::octo_wire`]) on stable in every `cargo test`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fuzz;
pub mod link;
pub mod tls;
pub mod transport;
pub mod wire;
