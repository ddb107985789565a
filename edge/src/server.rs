//! Starting an edge: bind the sockets, spawn the media loop and HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use geomesh_mesh::wire::GoodbyeReason;

use tokio::net::TcpListener;
use tracing::info;

use geomesh_core::token::{TokenSigner, TokenVerifier};
use geomesh_core::topology::Topology;
use geomesh_core::{EdgeId, RegionId};

use crate::http::{AppState, router};
use crate::media::spawn_workers;
use crate::metrics::Metrics;

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The edge id is not in the topology.
    #[error("edge {0} is not in the topology")]
    UnknownEdge(EdgeId),
    /// A WAN delay of the lab that is not a duration.
    #[error("WAN delay to {edge}: {ms} ms is not a finite, non-negative number")]
    BadWanDelay {
        /// The peer edge.
        edge: EdgeId,
        /// The value given.
        ms: f64,
    },
    /// The selector agent could not start.
    #[error("selector agent: {0}")]
    Agent(#[from] crate::agent::AgentError),
    /// The octo node could not start.
    #[error("octo: {0}")]
    Octo(#[from] geomesh_mesh::transport::TransportError),
    /// The media socket could not be set up for batched I/O.
    #[error("media socket: {0}")]
    MediaSocket(std::io::Error),
    /// A socket could not be bound.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Everything an edge needs to run.
pub struct EdgeConfig {
    /// This edge's id.
    pub id: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// Where the media socket binds.
    pub media_bind: SocketAddr,
    /// The media address advertised in ICE candidates (port 0: the bound port).
    pub media_advertised: SocketAddr,
    /// Where HTTP listens.
    pub http_bind: SocketAddr,
    /// Checks join tokens.
    pub verifier: TokenVerifier,
    /// Dev mode: mint tokens for the meeting page at `/dev/token` (loopback only).
    pub dev_signer: Option<TokenSigner>,
    /// The selector agent, when the edge joins a selector cluster.
    pub agent: Option<crate::agent::AgentConfig>,
    /// Octo links to the other edges, when the edge has credentials for them.
    pub octo: Option<OctoSettings>,
    /// The emulated-WAN lab's access legs (`geomesh dev --wan`): located
    /// participants' datagrams wait the modelled one-way delay each way.
    /// `None` in production.
    pub access_lab: Option<crate::lab::AccessModel>,
    /// Last-N defaults: video sources per subscriber, audio in large conferences.
    pub last_n: crate::lastn::LastNConfig,
    /// Media worker tasks; default: one per core.
    pub media_workers: usize,
    /// Sessions a conference has on its home worker before further sessions
    /// go to the least-loaded worker (`None`: a conference never spreads).
    /// See [`crate::placement`].
    pub spread_above: Option<usize>,
    /// TWCC bandwidth estimation toward subscribers, feeding simulcast
    /// layer choice (off by default: see docs/DECISIONS.md).
    pub bwe: bool,
    /// Sessions at which new ones are refused (the topology's capacity).
    pub capacity: u32,
    /// WebSocket connections held at most, in all and per source address.
    pub max_connections: usize,
    /// See `max_connections`.
    pub max_connections_per_address: usize,
    /// Peers whose `X-Forwarded-For` names the client (a TLS terminator in
    /// front of the HTTP port); per-address limits count that client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// How an edge joins the octo mesh.
pub struct OctoSettings {
    /// Where the octo QUIC socket binds (the topology's octo port by default).
    pub bind: SocketAddr,
    /// Cluster CA, this edge's certificate and key.
    pub credentials: geomesh_mesh::tls::Credentials,
    /// The other edges and their octo addresses.
    pub peers: Vec<(EdgeId, SocketAddr)>,
    /// Forward every packet to every peer whether or not it subscribed (the
    /// Jitsi-relay behaviour; only for measuring what selective forwarding saves).
    pub forward_unsubscribed: bool,
    /// The lab's emulated WAN (`geomesh dev --wan`): one-way delays to
    /// peers' octo addresses. `None` in production.
    pub wan: Option<geomesh_mesh::transport::WanDelays>,
}

impl OctoSettings {
    /// Settings for edge `id` of `topology`: bind its octo port, peer with
    /// every other edge and every recorder.
    pub fn from_topology(
        topology: &Topology,
        id: &EdgeId,
        credentials: geomesh_mesh::tls::Credentials,
    ) -> Result<Self, StartError> {
        let e = topology
            .edge(id)
            .ok_or_else(|| StartError::UnknownEdge(id.clone()))?;
        Ok(Self {
            bind: SocketAddr::new(e.bind_ip, e.octo.port()),
            credentials,
            // Recorders are octo peers too: every open conference is
            // announced to them, and they subscribe to what they record.
            peers: topology
                .edges
                .iter()
                .filter(|p| p.id != *id)
                .map(|p| (p.id.clone(), p.octo))
                .chain(topology.recorders.iter().map(|r| (r.id.clone(), r.octo)))
                .collect(),
            forward_unsubscribed: false,
            wan: None,
        })
    }

    /// The lab's one-way delays to peer edges (milliseconds by edge id, as
    /// `geomesh dev --wan` writes them) on their octo addresses. An id that
    /// is not a peer is an error: a lab that silently delays nothing would
    /// measure nothing.
    pub fn set_wan_delays(
        &mut self,
        one_way_ms: &std::collections::BTreeMap<EdgeId, f64>,
    ) -> Result<(), StartError> {
        let mut wan = geomesh_mesh::transport::WanDelays::new();
        for (id, ms) in one_way_ms {
            let (_, addr) = self
                .peers
                .iter()
                .find(|(p, _)| p == id)
                .ok_or_else(|| StartError::UnknownEdge(id.clone()))?;
            if !(ms.is_finite() && *ms >= 0.0) {
                return Err(StartError::BadWanDelay {
                    edge: id.clone(),
                    ms: *ms,
                });
            }
            wan.set(*addr, std::time::Duration::from_secs_f64(ms / 1000.0));
        }
        self.wan = Some(wan);
        Ok(())
    }
}

impl EdgeConfig {
    /// Settings for edge `id` of `topology`.
    pub fn from_topology(
        topology: &Topology,
        id: &EdgeId,
        verifier: TokenVerifier,
    ) -> Result<Self, StartError> {
        let e = topology
            .edge(id)
            .ok_or_else(|| StartError::UnknownEdge(id.clone()))?;
        Ok(Self {
            id: e.id.clone(),
            region: e.region.clone(),
            media_bind: e.media_bind(),
            media_advertised: e.media_advertised(),
            http_bind: SocketAddr::new(e.bind_ip, e.http.port()),
            verifier,
            dev_signer: None,
            agent: None,
            octo: None,
            access_lab: None,
            last_n: crate::lastn::LastNConfig::default(),
            media_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            spread_above: Some(crate::placement::DEFAULT_SPREAD_ABOVE),
            bwe: false,
            capacity: e.capacity,
            max_connections: crate::limits::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: crate::limits::DEFAULT_MAX_PER_ADDRESS,
            trusted_proxies: Vec::new(),
        })
    }
}

/// A running edge.
pub struct EdgeHandle {
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// The advertised media address.
    pub media_addr: SocketAddr,
    /// The HTTP server task (ends only on error).
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    media: crate::media::MediaHandle,
    agent: Option<crate::agent::AgentHandle>,
    closing: Arc<AtomicBool>,
    octo: Option<Arc<geomesh_mesh::transport::OctoNode>>,
    state: AppState,
}

impl EdgeHandle {
    /// What the HTTP handlers share (in-process drivers: the fuzz targets).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Leaves without ending anyone's call: refuses new sessions, tells the
    /// selectors (no new placements here; they move its participants),
    /// asks every WebSocket participant to move to another edge, waits
    /// until they have or `deadline` passed, then says goodbye on the octo
    /// links. Returns the sessions still here.
    pub async fn shutdown(self, deadline: Duration) -> usize {
        let start = std::time::Instant::now();
        self.closing.store(true, Ordering::Relaxed);
        if let Some(a) = &self.agent {
            let told = tokio::time::timeout(Duration::from_secs(5), a.leave())
                .await
                .unwrap_or(false);
            info!(told, "told the selectors this edge is leaving");
        }
        let left =
            crate::drain::evacuate(&self.media, deadline.saturating_sub(start.elapsed())).await;
        if let Some(node) = &self.octo {
            for l in node.links() {
                l.command(|l| l.goodbye(GoodbyeReason::Shutdown, "edge shutting down"));
                // Runs after the driver wrote what the goodbye queued (a
                // peer that stopped reading does not hold the stop up).
                let _ = tokio::time::timeout(Duration::from_secs(1), l.call(|_| ())).await;
            }
            node.close();
        }
        self.server.abort();
        info!(left, "edge stopped");
        left
    }
}

/// Binds and starts an edge on the current tokio runtime.
pub async fn start(config: EdgeConfig) -> Result<EdgeHandle, StartError> {
    let socket = geomesh_mesh::transport::bind_udp(
        config.media_bind,
        geomesh_mesh::transport::SOCKET_BUFFER,
        "media",
    )
    .map_err(|source| StartError::Bind {
        what: "media UDP",
        addr: config.media_bind,
        source,
    })?;
    let bound = socket.local_addr().map_err(|source| StartError::Bind {
        what: "media UDP",
        addr: config.media_bind,
        source,
    })?;
    let mut advertised = config.media_advertised;
    if advertised.port() == 0 {
        advertised.set_port(bound.port());
    }
    // Operators must see this: a wrong advertised address is the classic
    // reason why media never flows although signaling works.
    info!(
        edge = %config.id,
        region = %config.region,
        %advertised,
        bind = %bound,
        "advertised ICE candidate is udp {advertised} (bound on {bound})"
    );
    let metrics = Arc::new(Metrics::new());
    metrics.describe(
        config.id.as_str(),
        config.region.as_str(),
        config.capacity,
        config
            .agent
            .as_ref()
            .map(|a| a.about.cert_not_after)
            .filter(|t| *t > 0),
    );
    let (reports_tx, reports_rx) = tokio::sync::mpsc::unbounded_channel();
    let (agent, agent_actions) = match config.agent {
        Some(a) => {
            let (h, actions) =
                crate::agent::spawn(a, metrics.clone(), reports_rx).map_err(StartError::Agent)?;
            (Some(h), Some(actions))
        }
        None => (None, None),
    };
    let reports = agent.as_ref().map(|_| reports_tx);
    let mut octo_node = None;
    let octo = match config.octo {
        Some(o) => {
            let mut oc = geomesh_mesh::transport::OctoConfig::new(
                config.id.clone(),
                config.region.clone(),
                o.bind,
                o.credentials,
            );
            oc.link.forward_unsubscribed = o.forward_unsubscribed;
            oc.wan = o.wan;
            let (node, events) = geomesh_mesh::transport::OctoNode::start(oc).await?;
            let node = Arc::new(node);
            octo_node = Some(node.clone());
            info!(edge = %config.id, octo = ?node.local_addr().ok(), peers = o.peers.len(), "octo listening");
            let _ = metrics.octo_node.set(node.clone());
            Some(crate::media::OctoParts {
                node,
                events,
                peers: o.peers,
            })
        }
        None => None,
    };
    let media = spawn_workers(
        socket,
        octo,
        reports,
        crate::sfu::EdgeCoreConfig {
            edge: config.id.clone(),
            region: config.region.clone(),
            advertised,
            metrics: metrics.clone(),
            last_n: config.last_n,
            workers: config.media_workers,
            bwe: config.bwe,
            spread_above: config.spread_above,
            octo: None,
            always_octo: false,
            access_lab: config
                .access_lab
                .map(|m| Arc::new(crate::lab::AccessLab::new(m))),
        },
    )
    .map_err(StartError::MediaSocket)?;
    let listener = TcpListener::bind(config.http_bind)
        .await
        .map_err(|source| StartError::Bind {
            what: "HTTP",
            addr: config.http_bind,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind {
        what: "HTTP",
        addr: config.http_bind,
        source,
    })?;
    if let (Some(a), Some(mut actions)) = (&agent, agent_actions) {
        let m = media.clone();
        tokio::spawn(async move {
            while let Some(action) = actions.recv().await {
                match action {
                    crate::agent::AgentAction::Evict {
                        conference,
                        participant,
                        not_after_ms,
                    } => {
                        m.evict(conference, participant, "moved", not_after_ms)
                            .await
                    }
                }
            }
        });
        tokio::spawn(crate::drain::follow_migrate(media.clone(), a.state.clone()));
        tokio::spawn(crate::drain::follow_recording(
            media.clone(),
            a.state.clone(),
        ));
    }
    let closing = Arc::new(AtomicBool::new(false));
    let state = AppState {
        edge_id: config.id.clone(),
        region: config.region.clone(),
        verifier: config.verifier,
        media: media.clone(),
        metrics,
        http_sessions: Arc::default(),
        dev_signer: config.dev_signer.map(Arc::new),
        agent: agent.as_ref().map(|a| a.state.clone()),
        closing: closing.clone(),
        capacity: config.capacity,
        connections: crate::limits::ConnectionLimits::new(
            config.max_connections,
            config.max_connections_per_address,
        ),
        token_uses: Arc::new(std::sync::Mutex::new(geomesh_core::uses::UseCounter::new(
            crate::http::SESSIONS_PER_TOKEN,
            100_000,
        ))),
        trusted_proxies: config.trusted_proxies.into(),
    };
    tokio::spawn(crate::whip::sweep(state.clone()));
    let app = router(state.clone());
    let server = tokio::spawn(async move {
        geomesh_web::serve::serve(
            listener,
            app,
            geomesh_web::serve::Limits::default(),
            std::future::pending(),
        )
        .await;
        Ok(())
    });
    info!(edge = %config.id, "signaling on http://{http_addr}");
    Ok(EdgeHandle {
        http_addr,
        media_addr: advertised,
        server,
        media,
        agent,
        closing,
        octo: octo_node,
        state,
    })
}
