//! Prometheus metrics of one selector node (`GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `result` and `reason` of a join.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JoinLabels {
    /// `placed`, `existing` or the error code (`bad_request`, `no_edge_available`, …).
    pub result: String,
    /// The placement reason (`nearest`, …) or `none`.
    pub reason: String,
}

/// One label called `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: String,
}

/// One label called `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// The result.
    pub result: String,
}

/// Labels of placements: why, and the region of the chosen edge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlacementLabels {
    /// The strategy's reason.
    pub reason: String,
    /// The chosen edge's region.
    pub region: String,
}

/// An edge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeLabel {
    /// Edge id.
    pub edge: String,
}

/// Who this selector is (`geomesh_selector_info`, value 1).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    /// Selector id.
    pub selector: String,
    /// Its region.
    pub region: String,
    /// The `geomesh` version.
    pub version: String,
}

/// One label called `role`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
}

/// Every metric of a selector node.
pub struct Metrics {
    /// The registry `GET /metrics` encodes.
    pub registry: Registry,
    /// Joins by result and reason.
    pub joins: Family<JoinLabels, Counter>,
    /// Committed placements by reason.
    pub placements: Family<PlacementLabels, Counter>,
    /// Client RTT source of committed placements (`probe`, `geo_estimate`).
    pub placement_rtt_source: Family<ReasonLabel, Counter>,
    /// Client location source of joins (`hint`, `geoip`, `default`, `unknown`).
    pub location_source: Family<ReasonLabel, Counter>,
    /// 1 for this node's current Raft role.
    pub raft_role: Family<RoleLabel, Gauge>,
    /// Current Raft term.
    pub raft_term: Gauge,
    /// Last log index.
    pub raft_last_log_index: Gauge,
    /// Last applied index.
    pub raft_last_applied: Gauge,
    /// Raft log entries proposed by this node (each carries a batch).
    pub write_batches: Counter,
    /// Operations in those entries.
    pub write_ops: Counter,
    /// Batches forwarded to the leader.
    pub forwarded_batches: Counter,
    /// Registered edges (replicated).
    pub edges_registered: Gauge,
    /// Edges healthy on this node.
    pub edges_healthy: Gauge,
    /// Draining edges (replicated).
    pub edges_draining: Gauge,
    /// Placements in the replicated state.
    pub participants: Gauge,
    /// Conferences in the replicated state.
    pub conferences: Gauge,
    /// Heartbeats by result (`ok`, `bad_request`, `not_registered`, …).
    pub heartbeats: Family<ResultLabel, Counter>,
    /// Internal requests refused by identity (`no_identity`, `wrong_role`, `unknown_edge`, `unknown_selector`).
    pub internal_refused: Family<ReasonLabel, Counter>,
    /// Joins refused for their grant (`missing`, `malformed`, `unknown_key`, `wrong_algorithm`, `bad_signature`, `expired`, `not_yet_valid`, `wrong_conference`, `wrong_participant`).
    pub grants_refused: Family<ReasonLabel, Counter>,
    /// Operating requests refused for want of an operator credential.
    pub operator_refused: Family<ReasonLabel, Counter>,
    /// TLS handshakes that failed on the internal listener.
    pub tls_handshake_failures: Counter,
    /// DNS queries by result (`answer`, `nodata`, `nxdomain`, `refused`, `notimp`).
    pub dns_queries: Family<ResultLabel, Counter>,
    /// DNS packets that did not parse.
    pub dns_bad_packets: Counter,
    /// `POST /v1/join` handling time, answered or refused.
    pub join_duration: Histogram,
    /// Time from proposing a batch to its commit (leader side).
    pub commit_duration: Histogram,
    /// 1 while an edge heartbeats this node (per edge: selectors that
    /// disagree show up side by side).
    pub edge_healthy: Family<EdgeLabel, Gauge>,
    /// `geomesh_selector_info`.
    pub info: Family<InfoLabels, Gauge>,
    /// When this node's certificate expires, Unix seconds.
    pub cert_expiry: Gauge,
}

impl Metrics {
    /// Registers everything under `geomesh_selector_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("geomesh_selector");
        let m = Self {
            joins: Family::default(),
            placements: Family::default(),
            placement_rtt_source: Family::default(),
            location_source: Family::default(),
            raft_role: Family::default(),
            raft_term: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_last_applied: Gauge::default(),
            write_batches: Counter::default(),
            write_ops: Counter::default(),
            forwarded_batches: Counter::default(),
            edges_registered: Gauge::default(),
            edges_healthy: Gauge::default(),
            edges_draining: Gauge::default(),
            participants: Gauge::default(),
            conferences: Gauge::default(),
            heartbeats: Family::default(),
            internal_refused: Family::default(),
            grants_refused: Family::default(),
            operator_refused: Family::default(),
            tls_handshake_failures: Counter::default(),
            dns_queries: Family::default(),
            dns_bad_packets: Counter::default(),
            // 1 ms … 8 s, doubling.
            join_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            commit_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            edge_healthy: Family::default(),
            info: Family::default(),
            cert_expiry: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "joins",
            "Joins by result and placement reason",
            m.joins.clone(),
        );
        r.register(
            "placements",
            "Committed placements by strategy reason",
            m.placements.clone(),
        );
        r.register(
            "placement_rtt_source",
            "Committed placements by client RTT source",
            m.placement_rtt_source.clone(),
        );
        r.register(
            "location_source",
            "Joins by client location source",
            m.location_source.clone(),
        );
        r.register(
            "raft_role",
            "1 for this node's Raft role",
            m.raft_role.clone(),
        );
        r.register("raft_term", "Current Raft term", m.raft_term.clone());
        r.register(
            "raft_last_log_index",
            "Last Raft log index",
            m.raft_last_log_index.clone(),
        );
        r.register(
            "raft_last_applied",
            "Last applied Raft log index",
            m.raft_last_applied.clone(),
        );
        r.register(
            "write_batches",
            "Raft entries proposed by this node",
            m.write_batches.clone(),
        );
        r.register(
            "write_ops",
            "Operations in proposed entries",
            m.write_ops.clone(),
        );
        r.register(
            "forwarded_batches",
            "Write batches forwarded to the leader",
            m.forwarded_batches.clone(),
        );
        r.register(
            "edges_registered",
            "Registered edges",
            m.edges_registered.clone(),
        );
        r.register(
            "edges_healthy",
            "Edges healthy on this node",
            m.edges_healthy.clone(),
        );
        r.register("edges_draining", "Draining edges", m.edges_draining.clone());
        r.register(
            "participants",
            "Placed participants",
            m.participants.clone(),
        );
        r.register(
            "conferences",
            "Conferences with placements",
            m.conferences.clone(),
        );
        r.register(
            "heartbeats",
            "Edge heartbeats by result",
            m.heartbeats.clone(),
        );
        r.register(
            "internal_refused",
            "Internal requests refused by peer identity",
            m.internal_refused.clone(),
        );
        r.register(
            "grants_refused",
            "Joins refused for their grant, by reason",
            m.grants_refused.clone(),
        );
        r.register(
            "operator_refused",
            "Operating requests refused for want of an operator credential",
            m.operator_refused.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "Failed TLS handshakes on the internal listener",
            m.tls_handshake_failures.clone(),
        );
        r.register(
            "dns_queries",
            "GeoDNS queries by result",
            m.dns_queries.clone(),
        );
        r.register(
            "dns_bad_packets",
            "GeoDNS packets that did not parse",
            m.dns_bad_packets.clone(),
        );
        r.register(
            "join_duration_seconds",
            "POST /v1/join handling time, answered or refused",
            m.join_duration.clone(),
        );
        r.register(
            "raft_commit_duration_seconds",
            "Time from proposing a batch to its commit, on the leader",
            m.commit_duration.clone(),
        );
        r.register(
            "edge_healthy",
            "1 while the edge heartbeats this selector",
            m.edge_healthy.clone(),
        );
        r.register(
            "info",
            "This selector: id, region and version (value 1)",
            m.info.clone(),
        );
        r.register(
            "certificate_expiry_timestamp_seconds",
            "When this selector's cluster certificate expires (Unix seconds)",
            m.cert_expiry.clone(),
        );
        Self { registry, ..m }
    }

    /// Says who this node is (`geomesh_selector_info`) and when its
    /// certificate expires; counters that dashboards and alerts read start
    /// at zero rather than missing.
    pub fn describe(&self, cfg: &crate::NodeConfig, about: &crate::status::NodeAbout) {
        let region = cfg
            .topology
            .selector(&cfg.id)
            .map_or_else(String::new, |s| s.region.to_string());
        self.info
            .get_or_create(&InfoLabels {
                selector: cfg.id.to_string(),
                region,
                version: about.version.clone(),
            })
            .set(1);
        if about.cert_not_after > 0 {
            self.cert_expiry
                .set(i64::try_from(about.cert_not_after).unwrap_or(i64::MAX));
        }
        for result in ["ok", "rate_limited", "unauthorized", "no_edge_available"] {
            let _ = self.joins.get_or_create(&JoinLabels {
                result: result.to_string(),
                reason: "none".to_string(),
            });
        }
        for result in ["answer", "nxdomain", "refused"] {
            let _ = self.dns_queries.get_or_create(&ResultLabel {
                result: result.to_string(),
            });
        }
    }

    /// Counts a committed placement.
    pub fn placement(&self, reason: &str, region: &str) {
        self.placements
            .get_or_create(&PlacementLabels {
                reason: reason.to_string(),
                region: region.to_string(),
            })
            .inc();
    }

    /// Counts a join.
    pub fn join(&self, result: &str, reason: &str) {
        self.joins
            .get_or_create(&JoinLabels {
                result: result.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Increments a counter family with one `reason` label.
    pub fn reason(family: &Family<ReasonLabel, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Increments a counter family with one `result` label.
    pub fn result(family: &Family<ResultLabel, Counter>, result: &str) {
        family
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
