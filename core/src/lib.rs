//! # geomesh-core
//!
//! The vocabulary every other geomesh crate shares, with no I/O beyond
//! reading a topology file and writing credential files:
//!
//! - [`id`]: validated id newtypes ([`EdgeId`], [`RegionId`], [`SelectorId`],
//!   [`ConferenceId`], [`ParticipantId`]);
//! - [`geo`]: [`GeoPoint`], a checked latitude/longitude;
//! - [`topology`]: the `topology.yaml` schema and its validation, with line
//!   and column for every problem;
//! - [`token`]: Ed25519-signed join tokens (the selector signs, the edge
//!   verifies);
//! - [`grant`]: join grants (HS256 or EdDSA JWTs an operator's application
//!   signs; the selector verifies them before placing anyone);
//! - [`credentials`]: the cluster CA, node certificates and token keys that
//!   `geomesh certs init` writes (with rcgen);
//! - [`uses`]: how many times a bearer token or grant was used (bounded);
//! - [`stun`]: the few STUN messages geomesh reads and writes besides ICE;
//! - [`source`]: the client unit per-client limits count (an IPv6 /64),
//!   and the client's address behind a trusted proxy;
//! - [`yaml`]: positioned YAML parsing shared by every geomesh file format;
//! - [`fuzz`]: bodies of the token and topology fuzz targets;
//! - [`api`]: the selector's public API bodies (`POST /v1/join` and friends);
//! - [`agent`]: the selector's internal edge-agent API bodies (register,
//!   heartbeat, participant reports; mutual TLS).
//!
//! It does **not** own GeoIP lookups or distances (`geomesh-geoip`), TLS
//! configuration for links (`geomesh-mesh`, the selector), or any network
//! code. Everything here is pure data and functions: time is passed
//! in, never read from the clock.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod credentials;
pub mod fuzz;
pub mod geo;
pub mod grant;
#[cfg(feature = "client")]
pub mod https;
pub mod id;
pub mod proc_stat;
pub mod source;
pub mod stun;
pub mod token;
pub mod topology;
pub mod uses;
pub mod yaml;

pub use geo::GeoPoint;
pub use id::{ConferenceId, EdgeId, IdError, ParticipantId, RegionId, SelectorId};
pub use topology::Topology;

/// The first 16 hex digits of the SHA-256 of `bytes`: a fingerprint for
/// operators to compare (topologies, keys), not a security boundary.
pub fn short_hash(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}
