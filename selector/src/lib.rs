//! # geomesh-selector
//!
//! The selector: decides which edge each participant uses.
//!
//! **Owns**: the placement strategy (`strategy`) — a pure function, the
//! only placement code in geomesh, which the simulator calls too — the
//! Raft-replicated state ([`state`]: edges registered/draining,
//! conference → edges, participant → edge with leases; applied by a pure
//! function of the log), its Raft plumbing ([`raft`]: openraft with the
//! log, vote and snapshots in redb, RPCs over mutual TLS), the soft state
//! from edge heartbeats ([`soft`]), the public HTTP API ([`api`], [`join`]),
//! the internal mTLS API for Raft, admin and the edge agent ([`internal`],
//! [`agent`]), GeoDNS ([`dns`]), the selection log ([`selections`]) and
//! metrics ([`metrics`]).
//!
//! **Does not own**: GeoIP lookups and distances (`geomesh-geoip`), the
//! topology schema and API body types (`geomesh-core`, including the
//! edge-agent bodies in `geomesh_core::agent`), the edge side of the agent
//! (`geomesh-edge`), or anything that carries media.
//!
//! ## How a node runs
//!
//! [`start`] opens the store, starts openraft and spawns: the public API,
//! the internal listener, GeoDNS, the write batcher ([`writer`]) and the
//! leader's maintenance tick. A join reads this node's copy of the state
//! and soft state ([`view`]), asks `strategy::place`, and proposes one
//! `state::Op::Join`; the batcher packs queued operations into one
//! `state::Command`, which the leader stamps with its clock and commits
//! (a follower forwards the batch). Every node applies the same entries
//! with [`state::SelectorState::apply`]:
//!
//! ```text
//! POST /v1/join ─▶ view + strategy::place ─▶ writer (batch) ─▶ leader: raft.client_write
//!                                                   ▲                    │ replicate, fsync
//!   follower: forward /raft/v1/write ───────────────┘                    ▼
//!                                               every node: SelectorState::apply(cmd)
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access;
pub mod agent;
pub mod api;
mod api_error;
pub mod config;
pub mod dns;
pub mod fuzz;
pub mod internal;
pub mod join;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod recording;
pub mod selections;
pub mod soft;
pub mod state;
pub mod status;
pub mod tls;
pub mod view;
pub mod writer;

pub use api_error::ApiFailure;
pub use config::{NodeConfig, RaftTiming};
pub use node::{RunningSelector, StartError, start};
pub mod strategy;
