//! Semantic checks: everything YAML types cannot say. One [`Checker`]
//! walks the file section by section (header and policy here, the nodes in
//! [`nodes`], GeoIP and access in [`settings`]), collecting every problem
//! with its position; [`build`] then turns a sound file into a
//! [`Topology`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::file::{RawTopology, S, pos};
use super::{Loaded, Policy, Position, TopologyError};
use crate::geo::GeoPoint;
use crate::id::RegionId;
use crate::yaml::Report;

mod build;
mod nodes;
mod settings;

/// The policy defaults (documented in `topology.example.yaml`).
const DEFAULT_MAX_EDGES_PER_CONFERENCE: u32 = 4;
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Three missed heartbeats make an edge unhealthy.
const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
const DEFAULT_STRESS_THRESHOLD: f64 = 0.8;

/// What the checks of one file share.
struct Checker<'a> {
    raw: &'a RawTopology,
    r: Report,
    /// Every node and region id → the path of its first use.
    ids: HashMap<String, String>,
    region_ids: HashSet<RegionId>,
    /// Ports in use per host: (ip, proto, port) → path of first user.
    ports: HashMap<(IpAddr, &'static str, u16), String>,
    edges_per_region: BTreeMap<RegionId, usize>,
}

pub(super) fn validate(raw: RawTopology, base_dir: &Path) -> Result<Loaded, TopologyError> {
    let mut c = Checker {
        raw: &raw,
        r: Report::default(),
        ids: HashMap::new(),
        region_ids: HashSet::new(),
        ports: HashMap::new(),
        edges_per_region: BTreeMap::new(),
    };
    c.header();
    let policy = c.policy();
    c.regions();
    c.edges();
    c.selectors();
    c.recorders();
    let overrides = c.geoip();
    let access = c.access();
    // Warnings last: they matter only if the rest is sound.
    c.warnings();
    let Checker { r, .. } = c;
    let errors = r.has_errors();
    let diagnostics = r.into_sorted();
    if errors {
        return Err(TopologyError::Invalid { diagnostics });
    }
    let topology = build::topology(raw, base_dir, policy, overrides, access);
    Ok(Loaded {
        topology,
        warnings: diagnostics,
    })
}

impl Checker<'_> {
    fn point(&mut self, p: &S<GeoPoint>, path: &str) {
        if let Err(e) = p.value.validate() {
            self.r.error(pos(p), path, e.to_string());
        }
    }

    /// Reports the second and later uses of an id.
    fn unique(&mut self, id: &str, at: Option<Position>, path: String) {
        if let Some(first) = self.ids.get(id) {
            self.r.error(
                at,
                path,
                format!("duplicate id {id:?} (first used at {first})"),
            );
        } else {
            self.ids.insert(id.to_string(), path);
        }
    }

    /// `version` and `cluster`.
    fn header(&mut self) {
        let raw = self.raw;
        if raw.version.value != 1 {
            self.r.error(
                pos(&raw.version),
                "version",
                format!(
                    "unsupported version {} (this geomesh reads version 1)",
                    raw.version.value
                ),
            );
        }
        if raw.cluster.name.value.trim().is_empty() {
            self.r
                .error(pos(&raw.cluster.name), "cluster.name", "must not be empty");
        }
        if let Some(d) = &raw.cluster.domain {
            let ok = !d.value.is_empty()
                && d.value.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                self.r.error(
                    pos(d),
                    "cluster.domain",
                    format!("{:?} is not a DNS name", d.value),
                );
            }
        }
    }

    /// `policy`, with its defaults filled in.
    fn policy(&mut self) -> Policy {
        let p = &self.raw.policy;
        let max_edges = p
            .max_edges_per_conference
            .as_ref()
            .map_or(DEFAULT_MAX_EDGES_PER_CONFERENCE, |v| v.value);
        if let Some(v) = &p.max_edges_per_conference
            && v.value == 0
        {
            self.r.error(
                pos(v),
                "policy.max_edges_per_conference",
                "must be at least 1",
            );
        }
        let heartbeat = p
            .heartbeat_interval
            .as_ref()
            .map_or(DEFAULT_HEARTBEAT, |v| v.value.0);
        if let Some(v) = &p.heartbeat_interval
            && v.value.0.is_zero()
        {
            self.r
                .error(pos(v), "policy.heartbeat_interval", "must be positive");
        }
        let health_timeout = p
            .health_timeout
            .as_ref()
            .map_or(heartbeat * DEFAULT_MISSED_HEARTBEATS, |v| v.value.0);
        if let Some(v) = &p.health_timeout
            && v.value.0 <= heartbeat
        {
            self.r.error(
                pos(v),
                "policy.health_timeout",
                format!(
                    "{} must be longer than the heartbeat interval ({}), or every edge flaps",
                    humantime::format_duration(v.value.0),
                    humantime::format_duration(heartbeat)
                ),
            );
        }
        let stress_threshold = p
            .stress_threshold
            .as_ref()
            .map_or(DEFAULT_STRESS_THRESHOLD, |v| v.value);
        if let Some(v) = &p.stress_threshold
            && !(v.value > 0.0 && v.value <= 1.0)
        {
            self.r.error(
                pos(v),
                "policy.stress_threshold",
                format!("{} is outside (0, 1]", v.value),
            );
        }
        Policy {
            max_edges_per_conference: max_edges,
            heartbeat_interval: heartbeat,
            health_timeout,
            stress_threshold,
        }
    }

    /// Regions without edges, a topology without edges.
    fn warnings(&mut self) {
        let raw = self.raw;
        for (i, reg) in raw.regions.value.iter().enumerate() {
            if !self.edges_per_region.contains_key(&reg.id.value) {
                self.r.warning(
                    pos(&reg.id),
                    format!("regions[{i}]"),
                    format!(
                        "region {:?} has no edges; nobody is placed there",
                        reg.id.value.as_str()
                    ),
                );
            }
        }
        if raw.edges.value.is_empty() {
            self.r.warning(
                pos(&raw.edges),
                "edges",
                "no edges: nobody can join a meeting",
            );
        }
    }
}
