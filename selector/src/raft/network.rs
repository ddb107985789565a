//! Raft RPCs (and every other node-to-node call) over HTTPS with mutual TLS.
//!
//! A [`PeerClient`] dials one node's internal address, verifying its
//! certificate against the node's *id* (its DNS SAN), whatever address it
//! is reached at. Raft RPC bodies are openraft's own types in JSON; the
//! answer is `{"Ok": …}` or `{"Err": <RaftError>}` (serde's `Result`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls::ClientConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;

use geomesh_core::https::JsonClient;

use super::{NodeId, SelectorNode, TypeConfig};

/// Internal paths of the Raft RPCs.
pub mod paths {
    /// `AppendEntriesRequest` → `Result<AppendEntriesResponse, RaftError>`.
    pub const APPEND: &str = "/raft/v1/append";
    /// `VoteRequest` → `Result<VoteResponse, RaftError>`.
    pub const VOTE: &str = "/raft/v1/vote";
    /// `InstallSnapshotRequest` → `Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>`.
    pub const SNAPSHOT: &str = "/raft/v1/snapshot";
}

pub use geomesh_core::https::CallError;

/// An HTTPS client for one node's internal listener ([`JsonClient`]), with
/// the fault tests' partitions applied.
#[derive(Clone)]
pub struct PeerClient {
    inner: JsonClient,
}

impl PeerClient {
    /// A client for the node `id` listening at `addr` (its certificate
    /// must name `id`).
    pub fn new(tls: &ClientConfig, id: &str, addr: SocketAddr) -> Result<Self, CallError> {
        Ok(Self {
            inner: JsonClient::new(tls, id, addr)?,
        })
    }

    /// In fault tests, a call across a partition: lost, so it times out.
    async fn partitioned(&self, timeout: Duration) -> Result<(), CallError> {
        if !super::partitions::is_cut(self.inner.id()) {
            return Ok(());
        }
        tokio::time::sleep(timeout).await;
        Err(CallError::Network(format!(
            "{}: timed out (partitioned by {})",
            self.inner.id(),
            super::partitions::ENV
        )))
    }

    /// `POST path` with a JSON body; decodes a JSON answer on 2xx.
    pub async fn post<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        self.partitioned(timeout).await?;
        self.inner.post(path, body, timeout).await
    }

    /// `GET path`; decodes a JSON answer on 2xx.
    pub async fn get<Resp: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        self.partitioned(timeout).await?;
        self.inner.get(path, timeout).await
    }
}

/// Makes a [`RaftRpc`] per peer.
#[derive(Clone)]
pub struct Network {
    tls: Arc<ClientConfig>,
}

impl Network {
    /// A factory whose clients present this node's certificate.
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        Self { tls }
    }
}

/// Raft RPCs to one peer.
pub struct RaftRpc {
    target: NodeId,
    node: SelectorNode,
    client: Result<PeerClient, String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftRpc;

    async fn new_client(&mut self, target: NodeId, node: &SelectorNode) -> RaftRpc {
        let client = node
            .raft
            .parse::<SocketAddr>()
            .map_err(|e| format!("node {node}: bad raft address: {e}"))
            .and_then(|addr| PeerClient::new(&self.tls, &node.id, addr).map_err(|e| e.to_string()));
        RaftRpc {
            target,
            node: node.clone(),
            client,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, SelectorNode, RaftError<NodeId, E>>>;

impl RaftRpc {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self
            .client
            .as_ref()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&Msg(e.clone()))))?;
        let res: Result<Resp, RaftError<NodeId, E>> = client
            .post(path, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        res.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for RaftRpc {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.call(paths::APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(paths::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(paths::VOTE, &rpc, &option).await
    }
}
