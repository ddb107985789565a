//! Shared helpers for the loopback transport tests: credentials from
//! `geomesh_core::credentials::init`, nodes with short timers, bounded waits.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use geomesh_core::topology::TlsSettings;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId, Topology};
use geomesh_mesh::link::{LinkEvent, UsageError};
use geomesh_mesh::tls::Credentials;
use geomesh_mesh::transport::{LinkHandle, OctoConfig, OctoEvent, OctoNode, SendError};
use geomesh_mesh::wire::{Codec, Layer, MediaKind, MediaType, SourceId, SourceInfo, Subscription};
use tokio::sync::mpsc::Receiver;

const TOPO: &str = r#"
version: 1
cluster: { name: t }
tls: { dir: certs }
regions:
  - { id: eu, name: F, location: { lat: 50.1, lon: 8.7 }, provider: local, provider_region: x }
  - { id: us, name: N, location: { lat: 40.7, lon: -74.0 }, provider: local, provider_region: y }
edges:
  - { id: edge-1, region: eu, public_ip: 127.0.0.1, http: 127.0.0.1:8081, octo: 127.0.0.1:4431, media_port: 10001, capacity: 10 }
  - { id: edge-2, region: us, public_ip: 127.0.0.1, http: 127.0.0.1:8082, octo: 127.0.0.1:4432, media_port: 10002, capacity: 10 }
  - { id: edge-3, region: us, public_ip: 127.0.0.1, http: 127.0.0.1:8083, octo: 127.0.0.1:4433, media_port: 10003, capacity: 10 }
selectors:
  - { id: sel-1, region: eu, api: 127.0.0.1:7001, raft: 127.0.0.1:7101 }
"#;

/// A cluster's credentials (one CA) in `dir`.
pub fn cluster(dir: &Path) -> TlsSettings {
    let t = Topology::parse(TOPO, Path::new(".")).unwrap().topology;
    geomesh_core::credentials::init(&t, dir, true, SystemTime::now()).unwrap();
    TlsSettings {
        dir: dir.to_path_buf(),
    }
}

pub fn edge(id: &str) -> EdgeId {
    EdgeId::new(id).unwrap()
}

pub fn conf(id: &str) -> ConferenceId {
    ConferenceId::new(id).unwrap()
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A config with short timers so tests notice loss within about a second.
pub fn config(tls: &TlsSettings, id: &str, bind: SocketAddr) -> OctoConfig {
    let creds = Credentials::load(tls, id).unwrap();
    let region = if id == "edge-1" { "eu" } else { "us" };
    let mut c = OctoConfig::new(edge(id), RegionId::new(region).unwrap(), bind, creds);
    c.keep_alive = Duration::from_millis(200);
    c.idle_timeout = Duration::from_millis(1000);
    c.handshake_timeout = Duration::from_secs(3);
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c.higher_dial_delay = Duration::from_millis(300);
    c.link.ping_interval = Duration::from_millis(200);
    c
}

pub async fn node(
    tls: &TlsSettings,
    id: &str,
    bind: SocketAddr,
) -> (OctoNode, Receiver<OctoEvent>) {
    OctoNode::start(config(tls, id, bind)).await.unwrap()
}

/// Starts a node on a port that was just released, retrying while the OS
/// still holds it (bounded).
pub async fn restart(
    tls: &TlsSettings,
    id: &str,
    bind: SocketAddr,
) -> (OctoNode, Receiver<OctoEvent>) {
    for _ in 0..100 {
        match OctoNode::start(config(tls, id, bind)).await {
            Ok(n) => return n,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("port {bind} never came free");
}

/// Waits (at most 10 s, as a hang guard) for an event matching `pred`,
/// returning it and dropping the others.
pub async fn wait_for(
    rx: &mut Receiver<OctoEvent>,
    what: &str,
    mut pred: impl FnMut(&OctoEvent) -> bool,
) -> OctoEvent {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = rx.recv().await {
            if pred(&e) {
                return e;
            }
        }
        panic!("event channel closed while waiting for {what}");
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn is_link(e: &OctoEvent, f: impl Fn(&LinkEvent) -> bool) -> bool {
    matches!(e, OctoEvent::Link { event, .. } if f(event))
}

pub async fn wait_up(rx: &mut Receiver<OctoEvent>, peer: &str) {
    let p = edge(peer);
    wait_for(
        rx,
        &format!("link up with {peer}"),
        |e| matches!(e, OctoEvent::Link { peer, event: LinkEvent::Up { .. } } if *peer == p),
    )
    .await;
}

/// Every event already queued (no waiting).
pub fn drain(rx: &mut Receiver<OctoEvent>) -> Vec<OctoEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

pub fn audio(owner: &str, ssrc: u32) -> SourceInfo {
    SourceInfo {
        owner: ParticipantId::new(owner).unwrap(),
        kind: MediaKind::Audio,
        codec: Codec {
            name: "opus".into(),
            payload_type: 111,
            clock_rate: 48_000,
        },
        layers: vec![Layer {
            rid: None,
            ssrc,
            rtx_ssrc: None,
            max_height: 0,
        }],
    }
}

/// An RTP packet of `len` bytes with sequence number `seq`.
pub fn rtp(ssrc: u32, seq: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.resize(len.max(12), 0xa5);
    p
}

/// The link calls the tests make, each run by the link's driver
/// ([`LinkHandle::call`]); `send_media` through a fresh [`MediaSender`]
/// (single-layer sources need no layer switches).
#[allow(async_fn_in_trait)]
pub trait LinkCalls {
    async fn open_conference(&self, c: &ConferenceId) -> Result<(), UsageError>;
    async fn endpoint_joined(
        &self,
        c: &ConferenceId,
        p: ParticipantId,
        name: Option<String>,
    ) -> Result<(), UsageError>;
    async fn add_source(
        &self,
        c: &ConferenceId,
        id: SourceId,
        info: SourceInfo,
    ) -> Result<(), UsageError>;
    async fn subscribe(&self, id: SourceId, sub: Subscription) -> Result<(), UsageError>;
    async fn unsubscribe(&self, id: SourceId);
    fn send_media(
        &self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
    ) -> Result<(), SendError>;
}

impl LinkCalls for LinkHandle {
    async fn open_conference(&self, c: &ConferenceId) -> Result<(), UsageError> {
        let c = c.clone();
        self.call(move |l| l.open_conference(&c)).await.unwrap()
    }

    async fn endpoint_joined(
        &self,
        c: &ConferenceId,
        p: ParticipantId,
        name: Option<String>,
    ) -> Result<(), UsageError> {
        let c = c.clone();
        self.call(move |l| l.endpoint_joined(&c, p, name))
            .await
            .unwrap()
    }

    async fn add_source(
        &self,
        c: &ConferenceId,
        id: SourceId,
        info: SourceInfo,
    ) -> Result<(), UsageError> {
        let c = c.clone();
        self.call(move |l| l.add_source(&c, id, info))
            .await
            .unwrap()
    }

    async fn subscribe(&self, id: SourceId, sub: Subscription) -> Result<(), UsageError> {
        self.call(move |l| l.subscribe(id, sub)).await.unwrap()
    }

    async fn unsubscribe(&self, id: SourceId) {
        self.call(move |l| l.unsubscribe(id)).await.unwrap()
    }

    fn send_media(
        &self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
    ) -> Result<(), SendError> {
        self.media_sender()
            .send_media(source, ty, layer, false, packet)
    }
}
