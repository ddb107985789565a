//! Semantic checks: everything YAML types cannot say.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use geomesh_core::topology::Provider;
use geomesh_core::{EdgeId, RegionId, Topology};
use geomesh_selector::strategy::{Calibration, PlacementPolicy, RttModel};

use super::file::{HumanDuration, RawScenario, RawStrategy, S, pos};
use super::validate_policy::apply_policy;
use super::*;

/// Latency defaults (stated in docs/SIMULATIONS.md, "Latency model").
pub(crate) const DEFAULT_SENDER_MS: f64 = 20.0;
pub(crate) const DEFAULT_JITTER_BUFFER_MS: f64 = 40.0;
pub(crate) const DEFAULT_RECEIVER_MS: f64 = 0.0;
pub(crate) const DEFAULT_PER_EDGE_MS: f64 = 1.0;
/// Media defaults (stated in docs/SIMULATIONS.md, "Relay traffic").
pub(crate) const DEFAULT_AUDIO_KBPS: f64 = 32.0;
pub(crate) const DEFAULT_VIDEO_KBPS: f64 = 1500.0;
/// Heartbeat defaults: the topology's.
const DEFAULT_HEARTBEAT: Ms = 1_000;
const DEFAULT_MISSED_HEARTBEATS: u64 = 3;
/// Load samples per run when no interval is given.
const DEFAULT_LOAD_SAMPLES: u64 = 288;
/// Largest meeting size accepted.
pub(crate) const MAX_MEETING_SIZE: u32 = 1000;

pub(super) use geomesh_core::yaml::Report;

pub(super) fn ms(d: Duration) -> Ms {
    d.as_millis().min(u64::MAX as u128) as Ms
}

pub(super) fn dur(v: &S<HumanDuration>) -> Ms {
    ms(v.value.0)
}

pub(super) fn finite_nonneg(r: &mut Report, v: &Option<S<f64>>, path: &str, default: f64) -> f64 {
    match v {
        Some(s) if !(s.value.is_finite() && s.value >= 0.0) => {
            r.error(
                pos(s),
                path,
                format!("{} must be a finite, non-negative number", s.value),
            );
            default
        }
        Some(s) => s.value,
        None => default,
    }
}

fn file_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !s.starts_with('.')
}

pub(super) fn validate(raw: RawScenario, base_dir: &Path) -> Result<Scenario, ScenarioError> {
    let mut r = Report::default();
    let cal = Calibration::embedded();

    if raw.version.value != 1 {
        r.error(
            pos(&raw.version),
            "version",
            format!(
                "unsupported version {} (this geomesh reads version 1)",
                raw.version.value
            ),
        );
    }
    if !file_name_ok(&raw.name.value) {
        r.error(
            pos(&raw.name),
            "name",
            format!(
                "{:?}: use 1–64 letters, digits, '-', '_' or '.' (it names output files)",
                raw.name.value
            ),
        );
    }
    let horizon = dur(&raw.horizon);
    if horizon == 0 {
        r.error(pos(&raw.horizon), "horizon", "must be positive");
    }
    let (start, start_unix_s) = match &raw.start {
        None => ("1970-01-01T00:00:00Z".to_string(), 0),
        Some(s) => match s.value.parse::<jiff::Timestamp>() {
            Ok(t) => (t.to_string(), t.as_second()),
            Err(e) => {
                r.error(pos(s), "start", format!("not an RFC 3339 instant: {e}"));
                (String::new(), 0)
            }
        },
    };

    // Policy base: the topology's, else the selector's defaults.
    let mut policy = PlacementPolicy::default();
    let mut heartbeat = DEFAULT_HEARTBEAT;
    let mut health_timeout: Option<Ms> = None;

    // Regions and edges: inline or from a topology file.
    let mut regions: Vec<SimRegion> = Vec::new();
    let mut edges: Vec<SimEdge> = Vec::new();
    match (&raw.topology, &raw.regions, &raw.edges) {
        (Some(t), None, None) => {
            let path = base_dir.join(&t.value);
            match Topology::load(&path) {
                Ok(loaded) => {
                    let topo = loaded.topology;
                    policy = PlacementPolicy::from(&topo.policy);
                    heartbeat = ms(topo.policy.heartbeat_interval);
                    health_timeout = Some(ms(topo.policy.health_timeout));
                    for reg in &topo.regions {
                        let measured = (reg.provider == Provider::Aws
                            && cal.region_index(&reg.provider_region).is_some())
                        .then(|| reg.provider_region.clone());
                        regions.push(SimRegion {
                            id: reg.id.clone(),
                            location: reg.location,
                            group: reg.group.clone(),
                            measured_as: measured,
                        });
                    }
                    for e in &topo.edges {
                        let region = regions.iter().position(|x| x.id == e.region).unwrap_or(0);
                        edges.push(SimEdge {
                            id: e.id.clone(),
                            region,
                            capacity: e.capacity,
                        });
                    }
                }
                Err(e) => {
                    let detail: Vec<String> =
                        e.diagnostics().iter().map(ToString::to_string).collect();
                    let msg = if detail.is_empty() {
                        e.to_string()
                    } else {
                        format!("{}: {}", path.display(), detail.join("; "))
                    };
                    r.error(pos(t), "topology", msg);
                }
            }
        }
        (None, Some(rs), Some(es)) => {
            inline_regions(&mut r, &cal, rs, &mut regions);
            inline_edges(&mut r, es, &regions, &mut edges);
        }
        (Some(t), _, _) => r.error(
            pos(t),
            "topology",
            "give either `topology` or `regions` and `edges`, not both",
        ),
        (None, rs, _) => r.error(
            rs.as_ref().and_then(pos),
            if rs.is_some() { "edges" } else { "regions" },
            "give `regions` and `edges` (or a `topology` file)",
        ),
    }

    // Scenario-wide policy overrides.
    apply_policy(
        &mut r,
        &raw.policy,
        "policy",
        &mut policy,
        Some((&mut heartbeat, &mut health_timeout)),
    );
    let health_timeout = health_timeout.unwrap_or(heartbeat * DEFAULT_MISSED_HEARTBEATS);
    if health_timeout <= heartbeat {
        let at = raw
            .policy
            .health_timeout
            .as_ref()
            .and_then(pos)
            .or_else(|| raw.policy.heartbeat_interval.as_ref().and_then(pos));
        r.error(
            at,
            "policy.health_timeout",
            "must be longer than the heartbeat interval, or every edge flaps",
        );
    }

    // Latency.
    let l = &raw.latency;
    let rtt_model = match &l.rtt_model {
        Some(m) => {
            let model = RttModel {
                base_ms: m.value.base_ms,
                ms_per_km: m.value.ms_per_km,
            };
            if !model.is_valid() {
                r.error(
                    pos(m),
                    "latency.rtt_model",
                    "base_ms and ms_per_km must be finite and non-negative",
                );
            }
            model
        }
        None => RttModel::FITTED,
    };
    // The selector estimates with the simulator's model.
    policy.rtt_model = rtt_model;
    let latency = LatencySpec {
        rtt_model,
        sender_ms: finite_nonneg(&mut r, &l.sender_ms, "latency.sender_ms", DEFAULT_SENDER_MS),
        jitter_buffer_ms: finite_nonneg(
            &mut r,
            &l.jitter_buffer_ms,
            "latency.jitter_buffer_ms",
            DEFAULT_JITTER_BUFFER_MS,
        ),
        receiver_ms: finite_nonneg(
            &mut r,
            &l.receiver_ms,
            "latency.receiver_ms",
            DEFAULT_RECEIVER_MS,
        ),
        per_edge_ms: finite_nonneg(
            &mut r,
            &l.per_edge_ms,
            "latency.per_edge_ms",
            DEFAULT_PER_EDGE_MS,
        ),
        intra_region_rtt_ms: l.intra_region_rtt_ms.as_ref().map(|_| {
            finite_nonneg(
                &mut r,
                &l.intra_region_rtt_ms,
                "latency.intra_region_rtt_ms",
                0.0,
            )
        }),
        impairments: l
            .impairments
            .as_ref()
            .map(|i| super::validate_impairments::impairments(&mut r, i)),
    };
    let media = MediaSpec {
        audio_kbps: finite_nonneg(
            &mut r,
            &raw.media.audio_kbps,
            "media.audio_kbps",
            DEFAULT_AUDIO_KBPS,
        ),
        video_kbps: finite_nonneg(
            &mut r,
            &raw.media.video_kbps,
            "media.video_kbps",
            DEFAULT_VIDEO_KBPS,
        ),
    };

    let workload = super::validate_workload::workload(&mut r, &raw, start_unix_s);
    if let Some(p) = &raw.population.diurnal
        && raw.start.is_none()
    {
        r.error(
            pos(p),
            "population.diurnal",
            "needs `start` (the UTC instant of t = 0) to know local times",
        );
    }

    // Strategies.
    let mut strategies = Vec::new();
    if raw.strategies.value.is_empty() {
        r.error(
            pos(&raw.strategies),
            "strategies",
            "list at least one of single, region, nearest, geomesh",
        );
    }
    let mut names = HashSet::new();
    for (i, s) in raw.strategies.value.iter().enumerate() {
        let path = format!("strategies[{i}]");
        let (name, kind, over) = match &s.value {
            RawStrategy::Plain(k) => (k.clone(), k.clone(), None),
            RawStrategy::Variant {
                name,
                strategy,
                policy,
            } => (name.clone(), strategy.clone(), policy.as_deref()),
        };
        let Some(kind) = StrategyKind::parse(&kind) else {
            r.error(
                pos(s),
                &path,
                format!("unknown strategy {kind:?} (known: single, region, nearest, geomesh)"),
            );
            continue;
        };
        if !file_name_ok(&name) {
            r.error(
                pos(s),
                format!("{path}.name"),
                format!("{name:?} is not a usable name"),
            );
        }
        if !names.insert(name.clone()) {
            r.error(pos(s), &path, format!("strategy name {name:?} used twice"));
        }
        let mut p = policy;
        if let Some(o) = over {
            apply_policy(&mut r, o, &format!("{path}.policy"), &mut p, None);
        }
        strategies.push(StrategySpec {
            name,
            kind,
            policy: p,
        });
    }

    // Failures.
    let mut failures = Vec::new();
    for (i, f) in raw.failures.iter().enumerate() {
        let path = format!("failures[{i}]");
        let at = dur(&f.at);
        let target = match (&f.edge, &f.region) {
            (Some(e), None) => match edges.iter().position(|x| x.id.as_str() == e.value) {
                Some(k) => Some(FailureTarget::Edge(k)),
                None => {
                    r.error(
                        pos(e),
                        format!("{path}.edge"),
                        format!("unknown edge {:?}", e.value),
                    );
                    None
                }
            },
            (None, Some(g)) => match regions.iter().position(|x| x.id.as_str() == g.value) {
                Some(k) => Some(FailureTarget::Region(k)),
                None => {
                    r.error(
                        pos(g),
                        format!("{path}.region"),
                        format!("unknown region {:?}", g.value),
                    );
                    None
                }
            },
            _ => {
                r.error(pos(&f.at), &path, "give exactly one of `edge` or `region`");
                None
            }
        };
        let recover_at = f.recover_at.as_ref().map(dur);
        if let (Some(rec), Some(v)) = (recover_at, &f.recover_at)
            && rec <= at
        {
            r.error(pos(v), format!("{path}.recover_at"), "must be after `at`");
        }
        if let Some(target) = target {
            failures.push(Failure {
                at,
                target,
                recover_at,
            });
        }
    }

    let load_sample_interval = match &raw.output.load_sample_interval {
        Some(v) if dur(v) == 0 => {
            r.error(pos(v), "output.load_sample_interval", "must be positive");
            1
        }
        Some(v) => dur(v),
        None => (horizon / DEFAULT_LOAD_SAMPLES).max(1_000),
    };

    if r.has_errors() {
        return Err(ScenarioError::Invalid {
            diagnostics: r.into_sorted(),
        });
    }
    let workload = workload.expect("no diagnostics: the workload validated");
    Ok(Scenario {
        name: raw.name.value,
        description: raw.description.unwrap_or_default(),
        seed: raw.seed.value,
        horizon,
        start,
        start_unix_s,
        regions,
        edges,
        workload,
        latency,
        media,
        heartbeat_interval: heartbeat,
        health_timeout,
        strategies,
        failures,
        load_sample_interval,
    })
}

fn inline_regions(
    r: &mut Report,
    cal: &Calibration,
    rs: &S<Vec<super::file::RawRegion>>,
    out: &mut Vec<SimRegion>,
) {
    if rs.value.is_empty() {
        r.error(pos(rs), "regions", "at least one region is required");
    }
    for (i, reg) in rs.value.iter().enumerate() {
        let path = format!("regions[{i}]");
        let id = match RegionId::new(reg.id.value.clone()) {
            Ok(id) => id,
            Err(e) => {
                r.error(pos(&reg.id), format!("{path}.id"), e.to_string());
                continue;
            }
        };
        if out.iter().any(|x| x.id == id) {
            r.error(
                pos(&reg.id),
                format!("{path}.id"),
                format!("duplicate region {id}"),
            );
        }
        if let Err(e) = reg.location.value.validate() {
            r.error(
                pos(&reg.location),
                format!("{path}.location"),
                e.to_string(),
            );
        }
        let measured_as = match &reg.measured_as {
            Some(m) if cal.region_index(&m.value).is_none() => {
                let known: Vec<&str> = cal.regions.iter().map(|x| x.name.as_str()).collect();
                r.error(
                    pos(m),
                    format!("{path}.measured_as"),
                    format!(
                        "{:?} is not in the measured matrix (known: {})",
                        m.value,
                        known.join(", ")
                    ),
                );
                None
            }
            Some(m) => Some(m.value.clone()),
            None => cal
                .region_index(id.as_str())
                .map(|_| id.as_str().to_string()),
        };
        out.push(SimRegion {
            id,
            location: reg.location.value,
            group: reg.group.clone(),
            measured_as,
        });
    }
}

fn inline_edges(
    r: &mut Report,
    es: &S<Vec<super::file::RawEdges>>,
    regions: &[SimRegion],
    out: &mut Vec<SimEdge>,
) {
    if es.value.is_empty() {
        r.error(pos(es), "edges", "at least one edge is required");
    }
    for (i, e) in es.value.iter().enumerate() {
        let path = format!("edges[{i}]");
        let Some(region) = regions.iter().position(|x| x.id.as_str() == e.region.value) else {
            let known: Vec<&str> = regions.iter().map(|x| x.id.as_str()).collect();
            r.error(
                pos(&e.region),
                format!("{path}.region"),
                format!(
                    "unknown region {:?} (known: {})",
                    e.region.value,
                    known.join(", ")
                ),
            );
            continue;
        };
        if e.capacity.value == 0 {
            r.error(
                pos(&e.capacity),
                format!("{path}.capacity"),
                "must be at least 1",
            );
        }
        let count = e.count.as_ref().map_or(1, |c| c.value);
        if let Some(c) = &e.count
            && (c.value == 0 || c.value > 1000)
        {
            r.error(pos(c), format!("{path}.count"), "must be 1 to 1000");
            continue;
        }
        for _ in 0..count {
            let n = out.iter().filter(|x| x.region == region).count() + 1;
            match EdgeId::new(format!("{}-{n}", regions[region].id)) {
                Ok(id) => out.push(SimEdge {
                    id,
                    region,
                    capacity: e.capacity.value,
                }),
                Err(err) => {
                    r.error(pos(&e.region), &path, err.to_string());
                    break;
                }
            }
        }
    }
}
