//! The quinn driver: one QUIC endpoint per edge, one connection per peer
//! edge shared by all conferences, mutual TLS, reconnects.
//!
//! [`OctoNode::start`] binds the octo UDP port and accepts connections from
//! any edge with a certificate from the cluster CA. [`OctoNode::connect`]
//! names a peer and its address. **The lower edge id dials**; the higher
//! one waits, and dials itself only if no connection arrived within
//! [`OctoConfig::higher_dial_delay`] (so a link comes up when only the
//! higher edge needs it). If both dial at once, both keep the connection
//! dialed by the lower id and close the other with
//! [`close_code::DUPLICATE`]; a newer
//! connection from the same dialer replaces an older one (the dialer
//! restarted).
//!
//! Per peer, one driver task owns the [`Link`]: it reads the control
//! stream and the media datagrams, runs the link's timers and the edge's
//! commands ([`LinkHandle::command`]), and publishes the link's forwarding
//! table after every change. A [`MediaSender`] sends my media straight
//! from the caller's thread by that table (no lock, no task hop).
//! Everything the edge needs to hear arrives on one [`OctoEvent`] channel.

mod connect;
mod driver;
mod metrics;
mod peer;
mod sender;
mod udp;
mod wan;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use geomesh_core::{EdgeId, RegionId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, VarInt};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tracing::{info, warn};

pub use metrics::{LinkMetrics, LinkMetricsSnapshot};
pub use peer::{LinkGone, LinkHandle, SendError};
pub use sender::MediaSender;
pub use udp::{SOCKET_BUFFER, bind_udp};
pub use wan::WanDelays;

use crate::link::{Link, LinkConfig, LinkEvent, MediaIn, close_code};
use crate::tls::{self, Credentials, IdentityError, TlsError};
use crate::wire::{MAX_MEDIA_HEADER, MIN_FRAGMENT_DATAGRAM};
use connect::{accept_loop, dial_loop};
use peer::Peer;

/// The UDP payload size octo assumes every path carries (quinn's
/// `initial_mtu` and `min_mtu`), the floor under path-MTU discovery. At
/// 1280 a connection's datagrams hold ≈ 1246 bytes (QUIC's short header
/// and DATAGRAM frame take ≤ 38): a 1200-byte packet (str0m, Chromium)
/// plus its header fits one datagram; quinn's default of 1200 would not.
/// A bigger packet (aiortc's 1300-byte VP8, up to
/// [`crate::wire::MAX_MEDIA_PACKET`]) goes as fragments until MTU
/// discovery raises the size (up to [`OCTO_MAX_MTU`]).
pub const OCTO_MTU: u16 = 1280;

/// The upper bound of quinn's path-MTU discovery: 1452, the UDP payload of
/// a 1500-byte Ethernet path under IPv6 (IPv4 leaves 1472). Datagrams then
/// hold ≈ 1418 bytes, so aiortc's 1300-byte packets plus header go whole.
/// quinn also caps discovery at the peer's `max_udp_payload_size`
/// (quinn's default 1472).
pub const OCTO_MAX_MTU: u16 = 1452;

/// Settings for an [`OctoNode`].
#[derive(Debug, Clone)]
pub struct OctoConfig {
    /// Link settings (this edge's id and region, timers, forwarding switch).
    pub link: LinkConfig,
    /// The octo UDP address to bind.
    pub bind: SocketAddr,
    /// Cluster CA and this edge's certificate and key.
    pub credentials: Credentials,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// QUIC idle timeout: a silent peer is gone after this long.
    pub idle_timeout: Duration,
    /// Limit for a QUIC + TLS handshake and the control stream's opening.
    pub handshake_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// How long the higher edge id waits for the lower one to dial before
    /// dialing itself.
    pub higher_dial_delay: Duration,
    /// UDP payload size assumed on every path ([`OCTO_MTU`]).
    pub mtu: u16,
    /// The largest UDP payload path-MTU discovery tries ([`OCTO_MAX_MTU`]);
    /// at or below `mtu`, discovery is off.
    pub max_mtu: u16,
    /// QUIC's outgoing datagram buffer. When full, new media is dropped
    /// (and counted) rather than queued: old media is worthless. 1 MiB is
    /// ≈ 8 ms of a 1 Gbit/s trunk: enough for the bursts a busy edge hands
    /// over at once (256 KiB capped one link at ≈ 120k packets/s with no
    /// loss on the path, `cargo bench --bench octo`), short enough that
    /// media waiting in it is still worth sending.
    pub datagram_send_buffer: usize,
    /// Kernel receive and send buffers asked for on the octo socket
    /// ([`SOCKET_BUFFER`]): a trunk's burst must not overflow the default.
    pub socket_buffer: usize,
    /// Capacity of the event channel; media beyond it is dropped and counted.
    pub event_capacity: usize,
    /// Length of the connection ids this endpoint issues (4–20 bytes). Every
    /// datagram carries the peer's: quinn's default of 8 costs 4 bytes per
    /// media packet more than the 4 octo uses (an octo endpoint holds a
    /// handful of connections, so 2^32 ids are plenty).
    pub cid_len: usize,
    /// The lab's emulated WAN (`geomesh dev --wan`): hold each datagram
    /// for the one-way delay to its destination. `None` in production.
    pub wan: Option<WanDelays>,
}

impl OctoConfig {
    /// Defaults: keep-alive 1 s, idle timeout 5 s, handshake 5 s, backoff
    /// 100 ms … 5 s, higher-id dial delay 2 s, MTU 1280 raised by discovery
    /// up to 1452, 1 MiB datagram buffer, 8 MiB socket buffers, 8192
    /// events, 4-byte connection ids.
    pub fn new(edge: EdgeId, region: RegionId, bind: SocketAddr, credentials: Credentials) -> Self {
        Self {
            link: LinkConfig::new(edge, region),
            bind,
            credentials,
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            higher_dial_delay: Duration::from_secs(2),
            mtu: OCTO_MTU,
            max_mtu: OCTO_MAX_MTU,
            datagram_send_buffer: 1 << 20,
            socket_buffer: SOCKET_BUFFER,
            event_capacity: 8192,
            cid_len: 4,
            wan: None,
        }
    }
}

/// Random connection ids of a chosen length (see [`OctoConfig::cid_len`]).
struct RandomCid(usize);

impl quinn::ConnectionIdGenerator for RandomCid {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut bytes = [0u8; 20];
        tls::provider()
            .secure_random
            .fill(&mut bytes[..self.0])
            // aws-lc-rs's RNG fails only if the OS has no entropy source.
            .expect("the system random number generator works");
        quinn::ConnectionId::new(&bytes[..self.0])
    }

    fn cid_len(&self) -> usize {
        self.0
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Credentials or TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The certificate is not this edge's.
    #[error("credentials: {0}")]
    Identity(#[from] IdentityError),
    /// Binding the UDP socket.
    #[error("binding the octo port {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A setting quinn refuses.
    #[error("QUIC configuration: {0}")]
    Config(String),
}

/// What the node tells the edge.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OctoEvent {
    /// Something happened on the link to `peer`: up, down, the peer's
    /// conferences, roster and sources, subscriptions to mine, keyframe
    /// requests, RTT, goodbye.
    Link {
        /// The peer edge.
        peer: EdgeId,
        /// What.
        event: LinkEvent,
    },
    /// A media packet from a peer (`media.source.edge`).
    Media(MediaIn),
    /// A connection was refused before it became a link (bad certificate,
    /// not an edge, handshake failure).
    Rejected {
        /// Its address.
        remote: SocketAddr,
        /// Why.
        reason: String,
    },
}

struct Inner {
    config: OctoConfig,
    endpoint: Endpoint,
    client: quinn::ClientConfig,
    peers: Mutex<HashMap<EdgeId, Arc<Peer>>>,
    events: mpsc::Sender<OctoEvent>,
    tasks: Mutex<Vec<AbortHandle>>,
    rejected: AtomicU64,
    /// Edges this node accepts connections from (`None`: any edge of the
    /// cluster CA). Peers it named itself are always accepted.
    allowed: Mutex<Option<std::collections::HashSet<EdgeId>>>,
}

impl Inner {
    fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut tasks = self.tasks.lock().expect("task list lock poisoned");
        tasks.retain(|t| !t.is_finished());
        tasks.push(h.abort_handle());
    }

    /// Whether a connection from `edge` may become a link.
    fn accepts(&self, edge: &EdgeId) -> bool {
        let named = self
            .peers
            .lock()
            .expect("peer map lock poisoned")
            .contains_key(edge);
        named
            || self
                .allowed
                .lock()
                .expect("allowlist lock poisoned")
                .as_ref()
                .is_none_or(|a| a.contains(edge))
    }

    fn reject(&self, remote: SocketAddr, reason: String) {
        warn!(%remote, %reason, "octo connection refused");
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = self.events.try_send(OctoEvent::Rejected { remote, reason });
    }

    /// The peer's slot, created (with its driver) on first use.
    fn peer(self: &Arc<Self>, id: &EdgeId) -> Arc<Peer> {
        let mut peers = self.peers.lock().expect("peer map lock poisoned");
        if let Some(p) = peers.get(id) {
            return p.clone();
        }
        let (conns, conns_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let peer = Arc::new(Peer {
            id: id.clone(),
            local: self.config.link.local_edge.clone(),
            commands,
            published: Default::default(),
            conns,
            connected: watch::Sender::new(false),
            addr: Mutex::new(None),
            dialing: AtomicBool::new(false),
            packet_ids: AtomicU16::new(0),
            metrics: LinkMetrics::default(),
        });
        peers.insert(id.clone(), peer.clone());
        let link = Link::new(self.config.link.clone(), id.clone());
        self.spawn(driver::drive(
            peer.clone(),
            link,
            conns_rx,
            commands_rx,
            self.events.clone(),
        ));
        peer
    }
}

/// An edge's octo endpoint. Dropping it closes every link.
///
/// ```no_run
/// # async fn run(config: geomesh_mesh::transport::OctoConfig,
/// #              peer: geomesh_core::EdgeId, addr: std::net::SocketAddr,
/// #              conference: geomesh_core::ConferenceId)
/// #              -> Result<(), Box<dyn std::error::Error>> {
/// use geomesh_mesh::transport::{OctoEvent, OctoNode};
/// use geomesh_mesh::link::LinkEvent;
/// use geomesh_mesh::wire::Subscription;
///
/// let (node, mut events) = OctoNode::start(config).await?;
/// let link = node.connect(peer, addr);
/// // Announced now and after every reconnect.
/// link.call(move |l| l.open_conference(&conference)).await??;
/// while let Some(event) = events.recv().await {
///     match event {
///         OctoEvent::Link { event: LinkEvent::SourceAdded(s), .. } => {
///             // A local participant wants it: ask for it.
///             link.command(move |l| {
///                 let _ = l.subscribe(s.id, Subscription::BEST);
///             });
///         }
///         OctoEvent::Media(m) => { /* fan m.packet out to subscribers of m.source */ }
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
pub struct OctoNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OctoNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OctoNode")
            .field("edge", &self.inner.config.link.local_edge)
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

fn transport_config(config: &OctoConfig) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut t = quinn::TransportConfig::default();
    let mut mtu_discovery = quinn::MtuDiscoveryConfig::default();
    mtu_discovery.upper_bound(config.max_mtu);
    t.initial_mtu(config.mtu)
        .min_mtu(config.mtu)
        .mtu_discovery_config((config.max_mtu > config.mtu).then_some(mtu_discovery))
        .keep_alive_interval(Some(config.keep_alive))
        .max_idle_timeout(Some(
            config
                .idle_timeout
                .try_into()
                .map_err(|e| TransportError::Config(format!("idle timeout: {e}")))?,
        ))
        .datagram_receive_buffer_size(Some(4 * 1024 * 1024))
        .datagram_send_buffer_size(config.datagram_send_buffer)
        // One control stream per connection, opened by the dialer.
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    Ok(Arc::new(t))
}

impl OctoNode {
    /// Loads TLS, binds the octo UDP port and starts accepting links.
    /// Returns the node and its event channel.
    pub async fn start(
        config: OctoConfig,
    ) -> Result<(OctoNode, mpsc::Receiver<OctoEvent>), TransportError> {
        let own = config.credentials.edge_id()?;
        if own != config.link.local_edge {
            return Err(IdentityError::WrongEdge {
                expected: config.link.local_edge.to_string(),
                found: own.to_string(),
            }
            .into());
        }
        let transport = transport_config(&config)?;
        let server_tls = tls::server_config(&config.credentials)?;
        let quic_server =
            QuicServerConfig::try_from(server_tls).map_err(|e| TlsError::Quic(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
        server.transport_config(transport.clone());
        let client_tls = tls::client_config(&config.credentials)?;
        let quic_client =
            QuicClientConfig::try_from(client_tls).map_err(|e| TlsError::Quic(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
        client.transport_config(transport);

        if !(4..=20).contains(&config.cid_len) {
            return Err(TransportError::Config(format!(
                "cid_len {} is not in 4..=20",
                config.cid_len
            )));
        }
        let mut endpoint_config = quinn::EndpointConfig::default();
        let cid_len = config.cid_len;
        endpoint_config.cid_generator(move || Box::new(RandomCid(cid_len)));
        let bind = |source| TransportError::Bind {
            addr: config.bind,
            source,
        };
        let socket = bind_udp(config.bind, config.socket_buffer, "octo").map_err(bind)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| TransportError::Config("no tokio runtime".into()))?;
        let endpoint = match &config.wan {
            None => Endpoint::new(endpoint_config, Some(server), socket, runtime),
            Some(delays) => runtime.wrap_udp_socket(socket).and_then(|s| {
                let s = wan::DelayedSocket::start(s, delays.clone());
                Endpoint::new_with_abstract_socket(endpoint_config, Some(server), s, runtime)
            }),
        }
        .map_err(bind)?;
        let (events, rx) = mpsc::channel(config.event_capacity.max(1));
        let inner = Arc::new(Inner {
            config,
            endpoint,
            client,
            peers: Mutex::new(HashMap::new()),
            events,
            tasks: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            allowed: Mutex::new(None),
        });
        info!(
            edge = %inner.config.link.local_edge,
            addr = ?inner.endpoint.local_addr().ok(),
            "octo listening"
        );
        inner.spawn(accept_loop(Arc::downgrade(&inner)));
        Ok((OctoNode { inner }, rx))
    }

    /// The bound octo address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// This edge's id.
    pub fn edge(&self) -> &EdgeId {
        &self.inner.config.link.local_edge
    }

    /// Names a peer edge and where it listens, and returns its link. If this
    /// edge's id is the lower, it dials now (and redials with backoff
    /// whenever the connection is lost); otherwise it waits for the peer to
    /// dial (see the module docs). Calling again updates the address.
    pub fn connect(&self, peer: EdgeId, addr: SocketAddr) -> LinkHandle {
        let p = self.inner.peer(&peer);
        *p.addr.lock().expect("peer address lock poisoned") = Some(addr);
        if !p.dialing.swap(true, Ordering::SeqCst) {
            self.inner
                .spawn(dial_loop(Arc::downgrade(&self.inner), p.clone()));
        }
        LinkHandle { peer: p }
    }

    /// The link to a peer, created if needed, without dialing. Set up what
    /// the link should announce (after a restart: every conference,
    /// endpoint and source) here *before* [`OctoNode::connect`], so that
    /// the first Hello exchange already announces all of it and the peer's
    /// resync is silent.
    pub fn link_to(&self, peer: &EdgeId) -> LinkHandle {
        LinkHandle {
            peer: self.inner.peer(peer),
        }
    }

    /// The link to a peer, if it was named with [`OctoNode::connect`] or
    /// [`OctoNode::link_to`], or has connected to us.
    pub fn link(&self, peer: &EdgeId) -> Option<LinkHandle> {
        let peers = self.inner.peers.lock().expect("peer map lock poisoned");
        peers.get(peer).map(|p| LinkHandle { peer: p.clone() })
    }

    /// Every link.
    pub fn links(&self) -> Vec<LinkHandle> {
        let peers = self.inner.peers.lock().expect("peer map lock poisoned");
        peers
            .values()
            .map(|p| LinkHandle { peer: p.clone() })
            .collect()
    }

    /// Accept connections only from these edges (and peers named with
    /// [`OctoNode::connect`] or [`OctoNode::link_to`]): the topology's and
    /// the ones the selectors have registered. A certificate of the cluster
    /// CA alone is not enough — an edge removed from the cluster, or one
    /// whose certificate leaked, is refused. Until this is called, any edge
    /// certificate of the CA is accepted.
    pub fn allow_edges(&self, edges: impl IntoIterator<Item = EdgeId>) {
        *self.inner.allowed.lock().expect("allowlist lock poisoned") =
            Some(edges.into_iter().collect());
    }

    /// Connections refused before they became links (bad certificates…).
    pub fn rejected_connections(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Closes every link (QUIC close, code 0) and waits until the endpoint
    /// is idle. Say [`crate::wire::GoodbyeReason::Shutdown`] on the links
    /// first if the peers should know why.
    pub async fn shutdown(self) {
        let endpoint = self.inner.endpoint.clone();
        self.close();
        endpoint.wait_idle().await;
    }

    /// Closes every link (QUIC close, code 0) without waiting: peers learn
    /// at once instead of after their idle timeout.
    pub fn close(&self) {
        self.inner
            .endpoint
            .close(VarInt::from_u32(close_code::NORMAL), b"shutdown");
        for t in self
            .inner
            .tasks
            .lock()
            .expect("task list lock poisoned")
            .drain(..)
        {
            t.abort();
        }
    }
}

impl Drop for OctoNode {
    fn drop(&mut self) {
        self.close();
    }
}

/// QUIC's worst-case short-header and DATAGRAM frame overhead, in bytes.
const QUIC_DATAGRAM_OVERHEAD: usize = 38;
// At OCTO_MTU every packet fits its 8 fragments (a full packet need not fit
// one datagram), and a 1200-byte packet goes whole.
const _: () = assert!(MIN_FRAGMENT_DATAGRAM + QUIC_DATAGRAM_OVERHEAD <= OCTO_MTU as usize);
const _: () = assert!(1200 + MAX_MEDIA_HEADER + QUIC_DATAGRAM_OVERHEAD <= OCTO_MTU as usize);
// Discovery can raise datagrams above aiortc's 1300-byte packets plus header.
const _: () = assert!(1300 + MAX_MEDIA_HEADER + QUIC_DATAGRAM_OVERHEAD <= OCTO_MAX_MTU as usize);
