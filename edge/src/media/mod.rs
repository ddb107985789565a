//! The media I/O shell: the media socket, the worker tasks and their
//! channels around each worker's sans-IO [`crate::sfu::Sfu`] core, and the
//! [`MediaHandle`] signaling uses to reach them.
//!
//! A worker waits for one of: a batch of datagrams, a command from
//! signaling, an octo event, a sibling worker's message, or the core's
//! timeout; hands it to the core with the time; ends the round and sends
//! what the core's outbox holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use geomesh_core::{ConferenceId, ParticipantId};

use crate::messages::{MediaKindName, ServerMessage};
use crate::placement::Placement;
use crate::router::{PeerKey, Role};
use crate::sfu::{EdgeCoreConfig, EdgeCores, OctoNodeRef};
use crate::socket::MediaSocket;
use crate::workers;

mod worker;
use worker::Worker;

pub use crate::sfu::{Command, Joined, MediaError, SessionSummary};

/// The edge's octo node and what the workers need of it.
pub struct OctoParts {
    /// The node (shared by the workers).
    pub node: Arc<geomesh_mesh::transport::OctoNode>,
    /// Its event channel (read by the dispatcher).
    pub events: mpsc::Receiver<geomesh_mesh::transport::OctoEvent>,
    /// The other edges and their octo addresses.
    pub peers: Vec<(geomesh_core::EdgeId, SocketAddr)>,
}

/// the worker [`Placement`] chooses, everything else to the session's.
#[derive(Clone)]
pub struct MediaHandle {
    txs: Vec<mpsc::Sender<Command>>,
    placement: Arc<Placement>,
}

impl MediaHandle {
    fn to_key(&self, key: PeerKey) -> &mpsc::Sender<Command> {
        &self.txs[workers::worker_of_id(key.0, self.txs.len())]
    }

    async fn ask<T>(
        &self,
        tx: &mpsc::Sender<Command>,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .await
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)
    }

    /// Opens a session.
    pub async fn join(
        &self,
        conference: ConferenceId,
        participant: ParticipantId,
        name: Option<String>,
        role: Role,
        signal: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Joined, MediaError> {
        let tx = &self.txs[self.placement.choose(&conference, &participant)];
        self.ask(tx, |reply| Command::Join {
            conference,
            participant,
            name,
            role,
            signal,
            since_ms: unix_ms(),
            reply,
        })
        .await
    }

    /// Applies the client's offer; returns our answer.
    pub async fn offer(&self, key: PeerKey, sdp: String) -> Result<String, MediaError> {
        self.ask(self.to_key(key), |reply| Command::Offer { key, sdp, reply })
            .await?
    }

    /// Applies the client's answer to our offer.
    pub async fn answer(&self, key: PeerKey, sdp: String) -> Result<(), MediaError> {
        self.ask(self.to_key(key), |reply| Command::Answer {
            key,
            sdp,
            reply,
        })
        .await?
    }

    /// Records a mute change and tells the others.
    pub async fn mute(&self, key: PeerKey, kind: MediaKindName, muted: bool) {
        let _ = self
            .to_key(key)
            .send(Command::Mute { key, kind, muted })
            .await;
    }

    /// Sets what a subscriber wants to receive.
    pub async fn constraints(
        &self,
        key: PeerKey,
        last_n: Option<u32>,
        pinned: Vec<ParticipantId>,
        max_height: Option<u16>,
    ) {
        let _ = self
            .to_key(key)
            .send(Command::Constraints {
                key,
                last_n,
                pinned,
                max_height,
            })
            .await;
    }

    /// Ends the local sessions of `participant` in `conference` that
    /// started at or before `not_after_ms` (it is connected elsewhere by a
    /// newer session).
    pub async fn evict(
        &self,
        conference: ConferenceId,
        participant: ParticipantId,
        code: &'static str,
        not_after_ms: u64,
    ) {
        // Rare: every worker looks, rather than trusting a placement guess.
        for tx in &self.txs {
            let _ = tx
                .send(Command::Evict {
                    conference: conference.clone(),
                    participant: participant.clone(),
                    code,
                    not_after_ms,
                })
                .await;
        }
    }

    /// Every local session of every worker.
    pub async fn sessions(&self) -> Vec<SessionSummary> {
        let mut out = Vec::new();
        for tx in &self.txs {
            if let Ok(mut v) = self.ask(tx, |reply| Command::Sessions { reply }).await {
                out.append(&mut v);
            }
        }
        out
    }

    /// Asks a WebSocket session to move to another edge.
    pub async fn migrate(&self, key: PeerKey, reason: &'static str) {
        let _ = self
            .to_key(key)
            .send(Command::Migrate { key, reason })
            .await;
    }

    /// Ends a session; true if it existed.
    pub async fn leave(&self, key: PeerKey) -> bool {
        self.ask(self.to_key(key), |reply| Command::Leave {
            key,
            reply: Some(reply),
        })
        .await
        .unwrap_or(false)
    }
}

/// Starts the edge's media workers on `socket` (and the task that reads
/// it); `config.advertised` is the address in our ICE candidates (and the
/// `destination` str0m must see on every packet).
pub(crate) fn spawn_workers(
    socket: std::net::UdpSocket,
    octo: Option<OctoParts>,
    config: EdgeCoreConfig,
) -> std::io::Result<MediaHandle> {
    let metrics = config.metrics.clone();
    let EdgeCores {
        cores,
        placement,
        demux,
        share,
    } = EdgeCores::build(
        Instant::now(),
        EdgeCoreConfig {
            octo: octo.as_ref().map(|o| OctoNodeRef {
                node: o.node.clone(),
                peers: o.peers.clone(),
            }),
            ..config
        },
    )?;
    let n = cores.len();
    let socket = Arc::new(MediaSocket::new(tokio::net::UdpSocket::from_std(socket)?)?);
    let (dgram_txs, dgram_rxs) = workers::datagram_queues(n);
    tokio::spawn(workers::read_media_socket(
        socket.clone(),
        demux,
        dgram_txs,
        metrics.clone(),
    ));
    let mut octo_rxs: Vec<Option<mpsc::Receiver<geomesh_mesh::transport::OctoEvent>>> =
        (0..n).map(|_| None).collect();
    if let Some(parts) = octo {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(8192)).unzip();
        tokio::spawn(workers::dispatch_octo(parts.events, txs, share));
        octo_rxs = rxs.into_iter().map(Some).collect();
    }
    let mut txs = Vec::with_capacity(n);
    for (worker, (((core, sibling_rx), dgrams), octo_events)) in
        cores.into_iter().zip(dgram_rxs).zip(octo_rxs).enumerate()
    {
        let (tx, rx) = mpsc::channel(1024);
        let shell = Worker {
            core,
            socket: socket.clone(),
            metrics: metrics.clone(),
            octo_events,
        };
        tokio::spawn(
            shell
                .run(rx, dgrams, sibling_rx)
                .instrument(tracing::info_span!("media_worker", worker)),
        );
        txs.push(tx);
    }
    Ok(MediaHandle { txs, placement })
}

/// The wall clock in Unix milliseconds.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
