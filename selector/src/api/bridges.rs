//! `GET /v1/bridges`: every edge with its health, load and placements.

use super::*;

/// `GET /v1/bridges` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bridges {
    /// Every edge: the topology's, then those registered at runtime.
    pub bridges: Vec<Bridge>,
}

/// One edge as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bridge {
    /// Edge id.
    pub id: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// Registered (replicated).
    pub registered: bool,
    /// Draining (replicated).
    pub draining: bool,
    /// Heartbeating this node within the health timeout.
    pub healthy: bool,
    /// Participants placed on it (replicated).
    pub participants: u32,
    /// Conferences it hosts (replicated).
    pub conferences: u32,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// Client base URL (registered edges).
    pub base_url: Option<String>,
    /// Its last heartbeat to this node.
    pub load: Option<Load>,
    /// Its participants are being moved away (replicated).
    #[serde(default)]
    pub migrate: bool,
    /// Listed in the topology (else it registered at runtime from its own description).
    #[serde(default = "yes")]
    pub in_topology: bool,
}

/// The last heartbeat's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    /// Milliseconds since it arrived.
    pub age_ms: u64,
    /// Connected participants.
    pub participants: u32,
    /// Load / capacity.
    pub stress: f64,
    /// CPU, 0–1.
    pub cpu: f64,
    /// Packets per second.
    pub packet_rate: f64,
    /// Bits per second.
    pub bitrate_bps: f64,
    /// Placements by this node since.
    pub placed_since: u32,
    /// Octo link RTTs.
    pub links: Vec<geomesh_core::agent::LinkRtt>,
}

pub(super) async fn bridges(State(s): State<Arc<Shared>>) -> Json<Bridges> {
    let now = Instant::now();
    let applied = s.store.read();
    let st = &applied.state;
    let soft = s.soft();
    let bridges = crate::view::known_edges(&s.cfg.topology, st)
        .iter()
        .map(|e| {
            let rec = st.edge(&e.id);
            let load = soft.get(&e.id).map(|h| Load {
                age_ms: u64::try_from(now.saturating_duration_since(h.last).as_millis())
                    .unwrap_or(u64::MAX),
                participants: h.heartbeat.participants,
                stress: h.heartbeat.stress,
                cpu: h.heartbeat.cpu,
                packet_rate: h.heartbeat.packet_rate,
                bitrate_bps: h.heartbeat.bitrate_bps,
                placed_since: h.placed_since,
                links: h.heartbeat.links.clone(),
            });
            Bridge {
                id: e.id.clone(),
                region: e.region.clone(),
                registered: rec.is_some(),
                draining: rec.is_some_and(|r| r.draining),
                healthy: soft.is_healthy(&e.id, now),
                participants: st.participants_on(&e.id),
                conferences: st.octo_peers(&e.id).len() as u32,
                capacity: e.capacity,
                base_url: rec.map(|r| r.base_url.clone()),
                load,
                migrate: rec.is_some_and(|r| r.migrate),
                in_topology: e.in_topology,
            }
        })
        .collect();
    Json(Bridges { bridges })
}
