//! Raft plumbing: the openraft type configuration, the redb store (log,
//! vote, snapshots) and the network that carries Raft RPCs over the
//! internal mutual-TLS listener.
//!
//! Node ids are 64-bit hashes of selector ids ([`node_id`]); the node
//! record ([`SelectorNode`]) carries the selector id and its addresses, so
//! a membership change carries everything peers need to reach a node.

// openraft's StorageError is large and its type is fixed by the storage traits.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
pub mod partitions;
mod sm_store;

use std::fmt;
use std::io::Cursor;

use geomesh_core::SelectorId;
use serde::{Deserialize, Serialize};

use crate::state::{Command, Response};

pub use log_store::{LogStore, open_db};
pub use network::{CallError, Network, PeerClient, RaftRpc, paths};
pub use sm_store::StateStore;

openraft::declare_raft_types!(
    /// The selector's Raft types.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = SelectorNode,
);

/// A running Raft node.
pub type Raft = openraft::Raft<TypeConfig>;
/// Raft node id (see [`node_id`]).
pub type NodeId = u64;

/// A member of the cluster as Raft records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorNode {
    /// Selector id (the DNS SAN of its certificate).
    pub id: String,
    /// Internal mTLS address (`host:port`): Raft RPCs and the edge agent API.
    pub raft: String,
    /// Public HTTP API address (`host:port`).
    pub api: String,
}

impl fmt::Display for SelectorNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.raft)
    }
}

impl SelectorNode {
    /// The record for a topology selector.
    pub fn from_topology(s: &geomesh_core::topology::Selector) -> Self {
        Self {
            id: s.id.to_string(),
            raft: s.raft.to_string(),
            api: s.api.to_string(),
        }
    }
}

/// The Raft node id of a selector: FNV-1a (64-bit) of its id, so every node
/// derives the same number with no registry.
pub fn node_id(id: &SelectorId) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable() {
        let a = SelectorId::new("sel-1").unwrap();
        assert_eq!(node_id(&a), node_id(&SelectorId::new("sel-1").unwrap()));
        assert_ne!(node_id(&a), node_id(&SelectorId::new("sel-2").unwrap()));
        // FNV-1a test vector: "a" → 0xaf63dc4c8601ec8c.
        assert_eq!(
            node_id(&SelectorId::new("a").unwrap()),
            0xaf63_dc4c_8601_ec8c
        );
    }
}
