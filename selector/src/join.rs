//! `POST /v1/join`: locate the client, ask the strategy, commit the
//! placement through Raft, sign tokens.
//!
//! Idempotent by (conference, participant): a live placement on a usable
//! edge is returned as it is, with no write; one on an edge this node sees
//! unhealthy or draining, or that the client excludes (it failed there), is
//! moved (compare-and-set on the old edge in the state machine, so two
//! nodes never move it twice). Who joins is [`identify`]'s decision: the
//! grant's participant, a fresh id in open mode, or — with its rejoin
//! secret — an identity admitted before; nobody names an id otherwise.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use geomesh_core::api::{EdgeEndpoint, Fallback, JoinRequest, JoinResponse, Selection};
use geomesh_core::grant::GrantClaims;
use geomesh_core::token::{JoinClaims, Rights};
use geomesh_core::{ConferenceId, EdgeId, GeoPoint, ParticipantId};

use crate::api_error::ApiFailure;
use crate::metrics::Metrics;
use crate::node::{Shared, unix_ms};
use crate::state::{ApplyError, Op, OpResult, SelectorState};
use crate::strategy::{ClusterView, PlacementError, PlacementRequest, Reason, explain, place};
use crate::view;

/// Where the client's location came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationSource {
    /// The `location` field of the request.
    Hint,
    /// GeoIP of the client address (database or override).
    GeoIp,
    /// The topology's `geoip.default_location`.
    Default,
    /// Nothing knew.
    Unknown,
}

impl LocationSource {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hint => "hint",
            Self::GeoIp => "geoip",
            Self::Default => "default",
            Self::Unknown => "unknown",
        }
    }
}

/// The client's location: the hint (a point, else a region's location),
/// else GeoIP, else the default.
pub fn locate(
    shared: &Shared,
    hint: Option<GeoPoint>,
    region: Option<&geomesh_core::RegionId>,
    ip: IpAddr,
) -> (Option<GeoPoint>, LocationSource) {
    if let Some(p) = hint {
        return (Some(p), LocationSource::Hint);
    }
    if let Some(r) = region.and_then(|r| shared.cfg.topology.region(r)) {
        return (Some(r.location), LocationSource::Hint);
    }
    if let Ok(loc) = shared.geoip.lookup(ip) {
        return (Some(loc.point), LocationSource::GeoIp);
    }
    match shared.geoip.default_location() {
        Some(p) => (Some(p), LocationSource::Default),
        None => (None, LocationSource::Unknown),
    }
}

fn random_participant() -> ParticipantId {
    let mut b = [0u8; 8];
    // The OS random source failing is not recoverable here.
    getrandom::fill(&mut b).expect("random participant id");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    ParticipantId::new(format!("p-{hex}")).expect("valid generated id")
}

/// An edge's client URLs for a conference.
pub fn endpoint(
    shared: &Shared,
    st: &SelectorState,
    edge: &EdgeId,
    conf: &ConferenceId,
) -> EdgeEndpoint {
    let topo = shared.cfg.topology.edge(edge);
    let base = st
        .edge(edge)
        .map(|r| r.base_url.clone())
        .or_else(|| topo.map(|t| t.base_url()))
        .unwrap_or_default();
    let region = st
        .edge(edge)
        .map(|r| r.region.clone())
        .or_else(|| topo.map(|t| t.region.clone()))
        // Edges only come from the topology or the state: a bug otherwise.
        .expect("edge known to topology or state");
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.clone()
    };
    EdgeEndpoint {
        id: edge.clone(),
        region,
        ws_url: format!("{ws}/v1/rtc"),
        whip_url: format!("{base}/v1/whip/{conf}"),
        whep_url: format!("{base}/v1/whep/{conf}"),
    }
}

struct Decision {
    edge: EdgeId,
    reason: &'static str,
    ranking: Vec<EdgeId>,
}

/// Who joins, as the access rules decide.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The participant id.
    pub participant: ParticipantId,
    /// Display name shown to the others.
    pub name: Option<String>,
    /// What it may do.
    pub rights: Rights,
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiFailure {
    ApiFailure::new(StatusCode::FORBIDDEN, code, message)
}

/// The identity of a join: a valid rejoin secret for the named participant
/// (failover, migration: no grant needed, the rights it carries), else the
/// grant (grants mode), else a fresh id (open mode).
pub fn identify(
    shared: &Shared,
    req: &JoinRequest,
    grant: Option<GrantClaims>,
) -> Result<Identity, ApiFailure> {
    let conf = &req.conference;
    if let (Some(p), Some(secret)) = (&req.participant, &req.rejoin_secret) {
        return match shared.signer.verifier().check_rejoin_secret(
            conf,
            p,
            secret,
            SystemTime::now(),
        ) {
            Some(rights) => Ok(Identity {
                participant: p.clone(),
                name: grant
                    .and_then(|g| g.name)
                    .or_else(|| req.display_name.clone()),
                rights,
            }),
            None => Err(forbidden(
                "bad_rejoin_secret",
                "rejoin_secret is not this participant's, or has expired",
            )),
        };
    }
    match grant {
        Some(g) => {
            if &g.conf != conf {
                Metrics::reason(&shared.metrics.grants_refused, "wrong_conference");
                return Err(forbidden(
                    "forbidden",
                    format!("the grant is for conference {}, not {conf}", g.conf),
                ));
            }
            if req.participant.as_ref().is_some_and(|p| p != &g.sub) {
                Metrics::reason(&shared.metrics.grants_refused, "wrong_participant");
                return Err(forbidden(
                    "forbidden",
                    format!("the grant is for participant {}", g.sub),
                ));
            }
            Ok(Identity {
                participant: g.sub,
                name: g.name.or_else(|| req.display_name.clone()),
                rights: Rights {
                    publish: g.publish,
                    subscribe: g.subscribe,
                },
            })
        }
        None => match &req.participant {
            // Open mode: nobody chooses an id, so nobody takes over one.
            Some(p) => Err(forbidden(
                "participant_assigned",
                format!(
                    "participant ids are assigned by the selector: join without one, or with {p}'s rejoin_secret"
                ),
            )),
            None => Ok(Identity {
                participant: random_participant(),
                name: req.display_name.clone(),
                rights: Rights::ALL,
            }),
        },
    }
}

/// Handles one validated join of `who`.
pub async fn join(
    shared: &Shared,
    req: JoinRequest,
    who: Identity,
    client_ip: IpAddr,
) -> Result<JoinResponse, ApiFailure> {
    let conf = req.conference.clone();
    if let Some(r) = &req.region
        && shared.cfg.topology.region(r).is_none()
    {
        return Err(ApiFailure::bad_request(format!(
            "region: unknown region {r}"
        )));
    }
    let participant = who.participant.clone();
    let (location, loc_src) = locate(shared, req.location, req.region.as_ref(), client_ip);
    Metrics::reason(&shared.metrics.location_source, loc_src.as_str());
    let lease_ms = u64::try_from((shared.cfg.token_ttl + Duration::from_secs(30)).as_millis())
        .unwrap_or(u64::MAX);
    // Edges this join may not use: the client's, and any found busy below.
    let mut exclude = req.exclude.clone();
    for attempt in 0..4u32 {
        let now = Instant::now();
        let now_ms = unix_ms(SystemTime::now());
        let (edges, conf_edges, existing) = {
            let applied = shared.store.read();
            let st = &applied.state;
            let soft = shared.soft();
            let edges = view::edge_statuses(&shared.cfg.topology, st, &soft, now, &exclude);
            let conf_edges = view::conference_edges(&edges, st, &conf);
            let existing = st.participant(&conf, &participant, now_ms).map(|r| {
                let usable = view::keeps(st, &soft, &r.edge, now) && !exclude.contains(&r.edge);
                (r.edge.clone(), usable)
            });
            (edges, conf_edges, existing)
        };
        let cluster = ClusterView {
            regions: &shared.regions,
            edges: &edges,
            region_rtt_ms: &shared.region_rtt_ms,
        };
        let probes = cluster.resolve_probes(&req.probes);
        let preq = PlacementRequest {
            location,
            probes: &probes,
            conference: &conf_edges,
        };
        let placed = place(&shared.policy, cluster, &preq);
        let ranking: Vec<EdgeId> = match &placed {
            Ok(p) => std::iter::once(p.edge)
                .chain(p.fallbacks.iter().copied())
                .map(|i| edges[i.get()].id.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        if let Some((current, true)) = &existing {
            let d = Decision {
                edge: current.clone(),
                reason: "existing",
                ranking,
            };
            return Ok(respond(shared, &req, &who, d, (location, loc_src)));
        }
        let p = placed.map_err(|e| match e {
            PlacementError::NoCandidate(_) => ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_edge_available",
                e.to_string(),
            ),
            other => ApiFailure::bad_request(other.to_string()),
        })?;
        let chosen = edges[p.edge.get()].id.clone();
        let moved_from = existing.as_ref().map(|(e, _)| e.clone());
        let op = Op::Join {
            conference: conf.clone(),
            participant: participant.clone(),
            edge: chosen.clone(),
            lease_ms,
            max_edges: (p.reason != Reason::OverCap)
                .then_some(shared.policy.max_edges_per_conference),
            reassign_from: existing.map(|(e, _)| e),
        };
        let res = shared
            .propose(vec![op])
            .await
            .map_err(|e| ApiFailure::unavailable(e.to_string()))?;
        match res.into_iter().next() {
            Some(OpResult::Placed { edge, created }) => {
                if created {
                    shared.soft().record_placement(&edge);
                    let region = cluster.region_of(p.edge).map_or("", |r| r.id.as_str());
                    shared.metrics.placement(p.reason.as_str(), region);
                    Metrics::reason(&shared.metrics.placement_rtt_source, p.rtt_source.as_str());
                    let considered =
                        explain(&shared.policy, cluster, &preq, &p).unwrap_or_default();
                    let (candidates, more) = crate::selections::candidates(cluster, &considered);
                    // The view holds only edges of known regions.
                    let region = cluster.region_of(p.edge).map(|r| r.id.clone());
                    if let Some(region) = region {
                        shared
                            .selections
                            .lock()
                            .expect("selection log lock")
                            .record(Selection {
                                seq: 0,
                                at_ms: unix_ms(SystemTime::now()),
                                selector: shared.cfg.id.to_string(),
                                conference: conf.clone(),
                                participant: participant.clone(),
                                region,
                                edge: edge.clone(),
                                reason: p.reason.as_str().to_string(),
                                rtt_ms: (p.rtt_ms * 10.0).round() / 10.0,
                                rtt_source: p.rtt_source.as_str().to_string(),
                                location_source: loc_src.as_str().to_string(),
                                moved_from: moved_from.clone(),
                                candidates,
                                more,
                            });
                    }
                }
                let d = Decision {
                    reason: if created {
                        p.reason.as_str()
                    } else {
                        "existing"
                    },
                    edge,
                    ranking,
                };
                return Ok(respond(shared, &req, &who, d, (location, loc_src)));
            }
            Some(OpResult::Rejected(ApplyError::EdgeBusy(busy))) => {
                // As many clients on their way there as it has room for:
                // place this one elsewhere.
                tracing::debug!(attempt, edge = %busy, "edge busy with unused placements");
                exclude.push(busy);
            }
            Some(OpResult::Rejected(ApplyError::EdgeUnhealthy(dead))) => {
                // Healthy here, silent at the leader: trust the leader.
                tracing::debug!(attempt, edge = %dead, "edge unhealthy at the leader");
                exclude.push(dead);
            }
            Some(OpResult::Rejected(
                e @ (ApplyError::ConferenceFull { .. }
                | ApplyError::EdgeDraining(_)
                | ApplyError::UnknownEdge(_)),
            )) => {
                // Another node's placement raced ours: look again once our
                // copy of the state has caught up.
                tracing::debug!(attempt, error = %e, "placement conflict; retrying");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt + 1))).await;
            }
            other => {
                return Err(ApiFailure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("unexpected result {other:?}"),
                ));
            }
        }
    }
    Err(ApiFailure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "conflict",
        "concurrent placements kept conflicting; retry",
    ))
}

fn respond(
    shared: &Shared,
    req: &JoinRequest,
    who: &Identity,
    d: Decision,
    (location, loc_src): (Option<GeoPoint>, LocationSource),
) -> JoinResponse {
    let now = SystemTime::now();
    let participant = &who.participant;
    let token = |edge: &EdgeId| {
        let mut claims = JoinClaims::new(
            req.conference.clone(),
            participant.clone(),
            edge.clone(),
            now,
            shared.cfg.token_ttl,
        );
        claims.name = who.name.clone();
        claims.no_publish = !who.rights.publish;
        claims.no_subscribe = !who.rights.subscribe;
        claims.location = location.filter(|_| shared.cfg.token_location);
        shared.signer.sign(&claims)
    };
    let fallback_ids: Vec<EdgeId> = d
        .ranking
        .iter()
        .filter(|e| **e != d.edge)
        .take(shared.policy.max_fallbacks)
        .cloned()
        .collect();
    let applied = shared.store.read();
    let st = &applied.state;
    let fallbacks = fallback_ids
        .iter()
        .map(|e| Fallback {
            edge: endpoint(shared, st, e, &req.conference),
            token: token(e),
        })
        .collect();
    let edge = endpoint(shared, st, &d.edge, &req.conference);
    drop(applied);
    let selectors = selector_urls(shared);
    shared.metrics.join("ok", d.reason);
    // New placements are in the selection log (crate::selections); this is
    // every answer, a repeated join of someone already placed included.
    tracing::debug!(
        conference = req.conference.as_str(),
        participant = participant.as_str(),
        location_source = loc_src.as_str(),
        edge = d.edge.as_str(),
        reason = d.reason,
        fallbacks = ?fallback_ids.iter().map(EdgeId::as_str).collect::<Vec<_>>(),
        "join answered"
    );
    JoinResponse {
        participant: participant.clone(),
        token: token(&d.edge),
        edge,
        fallbacks,
        rejoin_secret: shared
            .signer
            .rejoin_secret(&req.conference, participant, who.rights, now),
        selectors,
    }
}

/// Public API base URLs of every Raft member, this node first.
pub fn selector_urls(shared: &Shared) -> Vec<String> {
    let me = shared.cfg.id.as_str();
    let membership = shared.raft.metrics().borrow().membership_config.clone();
    let mut nodes: Vec<(bool, String)> = membership
        .membership()
        .nodes()
        .map(|(_, n)| (n.id != me, format!("http://{}", n.api)))
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, u)| u).collect()
}
