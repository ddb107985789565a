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

pub use crate::sfu::{Command, Joined, MediaError, Response, SessionSummary};

/// A command for a worker, with where its response and (for a WebSocket
/// join) the session's signaling messages go: the channels stay in the
/// shell, the core sees only the command.
#[derive(Debug)]
pub(crate) struct Request {
    cmd: Command,
    reply: Option<oneshot::Sender<Response>>,
    signal: Option<mpsc::UnboundedSender<ServerMessage>>,
}

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
    txs: Vec<mpsc::Sender<Request>>,
    placement: Arc<Placement>,
}

impl MediaHandle {
    fn to_key(&self, key: PeerKey) -> &mpsc::Sender<Request> {
        &self.txs[workers::worker_of_id(key.0, self.txs.len())]
    }

    /// Sends `cmd` and waits for the core's response, which `pick` takes
    /// apart (`None`: not the response this command gets, a bug).
    async fn ask<T>(
        &self,
        tx: &mpsc::Sender<Request>,
        cmd: Command,
        signal: Option<mpsc::UnboundedSender<ServerMessage>>,
        pick: impl FnOnce(Response) -> Option<T>,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        tx.send(Request {
            cmd,
            reply: Some(reply),
            signal,
        })
        .await
        .map_err(|_| MediaError::Stopped)?;
        let response = rx.await.map_err(|_| MediaError::Stopped)?;
        pick(response).ok_or(MediaError::Stopped)
    }

    /// Sends `cmd` without waiting for its response.
    async fn tell(&self, tx: &mpsc::Sender<Request>, cmd: Command) {
        // A stopped worker: the edge is shutting down.
        let _ = tx
            .send(Request {
                cmd,
                reply: None,
                signal: None,
            })
            .await;
    }

    /// Opens a session; `signal` is a WebSocket session's channel for
    /// signaling messages (it closes when the session ends).
    pub async fn join(
        &self,
        conference: ConferenceId,
        participant: ParticipantId,
        name: Option<String>,
        role: Role,
        location: Option<geomesh_core::GeoPoint>,
        signal: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Joined, MediaError> {
        let tx = &self.txs[self.placement.choose(&conference, &participant)];
        let cmd = Command::Join {
            conference,
            participant,
            name,
            role,
            signaling: signal.is_some(),
            since_ms: unix_ms(),
            location,
        };
        self.ask(tx, cmd, signal, |r| match r {
            Response::Joined(j) => Some(j),
            _ => None,
        })
        .await
    }

    /// Applies the client's offer; returns our answer.
    pub async fn offer(&self, key: PeerKey, sdp: String) -> Result<String, MediaError> {
        let cmd = Command::Offer { key, sdp };
        self.ask(self.to_key(key), cmd, None, |r| match r {
            Response::Answer(a) => Some(a),
            _ => None,
        })
        .await?
    }

    /// Applies the client's answer to our offer.
    pub async fn answer(&self, key: PeerKey, sdp: String) -> Result<(), MediaError> {
        let cmd = Command::Answer { key, sdp };
        self.ask(self.to_key(key), cmd, None, |r| match r {
            Response::Applied(a) => Some(a),
            _ => None,
        })
        .await?
    }

    /// Records a mute change and tells the others.
    pub async fn mute(&self, key: PeerKey, kind: MediaKindName, muted: bool) {
        self.tell(self.to_key(key), Command::Mute { key, kind, muted })
            .await;
    }

    /// Sets what a subscriber wants to receive.
    pub async fn constraints(
        &self,
        key: PeerKey,
        last_n: Option<u32>,
        pinned: Vec<ParticipantId>,
        tiles: crate::tiles::TileHeights,
    ) {
        let cmd = Command::Constraints {
            key,
            last_n,
            pinned,
            tiles,
        };
        self.tell(self.to_key(key), cmd).await;
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
            let cmd = Command::Evict {
                conference: conference.clone(),
                participant: participant.clone(),
                code,
                not_after_ms,
            };
            self.tell(tx, cmd).await;
        }
    }

    /// Every local session of every worker.
    pub async fn sessions(&self) -> Vec<SessionSummary> {
        let mut out = Vec::new();
        for tx in &self.txs {
            let pick = |r| match r {
                Response::Sessions(v) => Some(v),
                _ => None,
            };
            if let Ok(mut v) = self.ask(tx, Command::Sessions, None, pick).await {
                out.append(&mut v);
            }
        }
        out
    }

    /// The conferences being recorded: every worker tells the sessions of
    /// those that changed.
    pub async fn set_recording(&self, conferences: std::collections::BTreeSet<ConferenceId>) {
        for tx in &self.txs {
            let cmd = Command::Recording {
                conferences: conferences.clone(),
            };
            self.tell(tx, cmd).await;
        }
    }

    /// Asks a WebSocket session to move to another edge.
    pub async fn migrate(&self, key: PeerKey, reason: &'static str) {
        self.tell(self.to_key(key), Command::Migrate { key, reason })
            .await;
    }

    /// Ends a session; true if it existed.
    pub async fn leave(&self, key: PeerKey) -> bool {
        self.ask(
            self.to_key(key),
            Command::Leave { key },
            None,
            |r| match r {
                Response::Left(existed) => Some(existed),
                _ => None,
            },
        )
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
    reports: Option<mpsc::UnboundedSender<crate::agent::ParticipantEvent>>,
    config: EdgeCoreConfig,
) -> std::io::Result<MediaHandle> {
    let metrics = config.metrics.clone();
    let EdgeCores {
        cores,
        sibling_txs,
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
    let lab = demux.lab().map(|lab| {
        crate::lab::DelayLine::spawn(
            *lab.model(),
            socket.clone(),
            dgram_txs.clone(),
            metrics.clone(),
        )
    });
    tokio::spawn(workers::read_media_socket(
        socket.clone(),
        demux.clone(),
        dgram_txs,
        metrics.clone(),
        lab.clone(),
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
            signals: std::collections::HashMap::new(),
            reports: reports.clone(),
            siblings: sibling_txs.clone(),
            lab: lab.clone().map(|line| (demux.clone(), line)),
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
