//! The cores of one edge's media workers, built together: they share the
//! placement of sessions, the octo link wishes ([`LinkShare`]) and the
//! sibling links that carry a conference spread over workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::linkshare::LinkShare;
use crate::metrics::Metrics;
use crate::placement::Placement;
use crate::router::Router;
use crate::sibling::{SiblingLink, SiblingRx};
use crate::workers::Demux;

use super::{Octo, Sfu, SfuParts};

/// What every worker of an edge is configured with.
pub(crate) struct EdgeCoreConfig {
    /// This edge and its region.
    pub edge: geomesh_core::EdgeId,
    pub region: geomesh_core::RegionId,
    /// The address in our ICE candidates.
    pub advertised: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub last_n: crate::lastn::LastNConfig,
    pub workers: usize,
    pub bwe: bool,
    pub spread_above: Option<usize>,
    /// The edge's octo node and its peer edges, if it has any.
    pub octo: Option<OctoNodeRef>,
    /// Octo state even without peers (links are attached later: the
    /// virtual-time tests).
    pub always_octo: bool,
    /// The emulated-WAN lab's access legs (`geomesh dev --wan`).
    pub access_lab: Option<Arc<crate::lab::AccessLab>>,
}

/// The edge's octo node and the other edges it links to.
#[derive(Clone)]
pub(crate) struct OctoNodeRef {
    pub node: Arc<geomesh_mesh::transport::OctoNode>,
    pub peers: Vec<(geomesh_core::EdgeId, SocketAddr)>,
}

/// An edge's worker cores and what they share.
pub(crate) struct EdgeCores {
    /// One core per worker, with the receiving end of its sibling links.
    pub cores: Vec<(Sfu, SiblingRx)>,
    /// Each worker's sending end, by worker index (for the shells to carry
    /// [`super::Output::Sibling`]).
    pub sibling_txs: Vec<crate::sibling::SiblingTx>,
    pub placement: Arc<Placement>,
    pub demux: Arc<Demux>,
    pub share: Arc<LinkShare>,
}

impl EdgeCores {
    /// Builds the workers' cores at `now`.
    pub(crate) fn build(now: Instant, c: EdgeCoreConfig) -> std::io::Result<Self> {
        let n = c.workers.max(1);
        let placement = Arc::new(Placement::new(n, c.spread_above));
        let share = Arc::new(LinkShare::new(n));
        let demux = Arc::new(Demux::with_lab(c.access_lab.clone()));
        let (sibling_txs, sibling_rxs) = crate::sibling::channels(n);
        let sibling_ids: Vec<_> = (0..n)
            .map(|w| crate::sibling::sibling_id(&c.edge, w))
            .collect();
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let dtls_cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("could not generate the DTLS certificate"))?;
        let mut cores = Vec::with_capacity(n);
        for (worker, sibling_rx) in sibling_rxs.into_iter().enumerate() {
            let mut router = Router::with_ids(worker as u64, n as u64);
            router.set_last_n(c.last_n.clone());
            let siblings: Vec<SiblingLink> = (0..n)
                .filter(|&p| p != worker)
                .map(|p| SiblingLink::new(&c.edge, c.region.clone(), worker, p, now))
                .collect();
            let (node, peers) = match &c.octo {
                Some(o) => (Some(o.node.clone()), o.peers.clone()),
                None => (None, Vec::new()),
            };
            // Octo state whenever there is another edge or another worker.
            let octo = (node.is_some() || n > 1 || c.always_octo).then(|| {
                Octo::new(
                    node,
                    peers,
                    worker,
                    siblings,
                    sibling_ids.clone(),
                    share.clone(),
                )
            });
            let parts = SfuParts {
                bwe: c.bwe,
                worker,
                workers: n,
                demux: demux.clone(),
                advertised: c.advertised,
                router,
                metrics: c.metrics.clone(),
                crypto: crypto.clone(),
                dtls_cert: dtls_cert.clone(),
                octo,
                placement: placement.clone(),
                edge: c.edge.clone(),
                region: c.region.clone(),
            };
            cores.push((Sfu::new(now, parts), sibling_rx));
        }
        Ok(Self {
            cores,
            sibling_txs,
            placement,
            demux,
            share,
        })
    }
}
