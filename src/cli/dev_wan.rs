//! `geomesh dev --wan`: the emulated-WAN lab's layout. Each dev region
//! stands for the AWS region at its coordinates; an edge's octo datagrams
//! to an edge of another region wait half the measured RTT between the two
//! (the embedded calibration set, Imaoka's AWS ping matrix — the same data
//! as `../shared/data/region_rtt_ms.csv`), so the edges' links measure the
//! real round trip. Edges of one region are one datacenter: no delay.
//! A participant the selector located (its location hint or GeoIP; the
//! token carries it) is as far from its edge as the selector's RTT model
//! says: the edge holds its datagrams half that RTT each way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use geomesh_core::topology::Topology;
use geomesh_edge::lab::{AccessModel, WanLab};
use geomesh_selector::strategy::{Calibration, PlacementPolicy};
use serde::Serialize;

/// The AWS region each dev region stands for.
pub(super) const STANDS_FOR: &[(&str, &str)] = &[
    ("dev-eu", "eu-central-1"),
    ("dev-us", "us-east-1"),
    ("dev-ap", "ap-southeast-1"),
    ("dev-sa", "sa-east-1"),
];

/// The lab as the state file shows it.
#[derive(Debug, Serialize)]
pub(super) struct StateWan {
    /// Dev region → the AWS region it stands for.
    pub stands_for: BTreeMap<String, String>,
    /// Per edge, the emulated RTT to every other edge (ms): what its octo
    /// link should measure.
    pub rtt_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per edge, the file of one-way delays it was started with.
    pub files: BTreeMap<String, PathBuf>,
    /// The access legs' model (the selector's: `rtt = base_ms + ms_per_km ×
    /// km` from the participant to its edge's region) and impairments.
    pub access: StateAccess,
}

/// The access legs as the state file shows them.
#[derive(Debug, Serialize)]
pub(super) struct StateAccess {
    pub base_ms: f64,
    pub ms_per_km: f64,
    pub jitter_ms: f64,
    pub loss_pct: f64,
}

/// The access legs' impairments (`geomesh dev --wan-jitter-ms`, `--wan-loss-pct`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Impairments {
    pub jitter_ms: f64,
    pub loss_pct: f64,
}

/// Writes each edge's one-way delays into `dir` (`wan-<edge>.json`, the
/// format `geomesh edge --wan-delays` reads) and returns the layout.
pub(super) fn write(
    topology: &Topology,
    dir: &Path,
    impairments: Impairments,
) -> anyhow::Result<StateWan> {
    let calibration = Calibration::embedded();
    // The model the dev selector places with, so the lab is what it predicts.
    let model = PlacementPolicy::from(&topology.policy).rtt_model;
    let aws = |region: &str| {
        STANDS_FOR
            .iter()
            .find(|(dev, _)| *dev == region)
            .map(|(_, aws)| *aws)
            .with_context(|| format!("dev region {region} stands for no AWS region"))
    };
    let mut state = StateWan {
        stands_for: STANDS_FOR
            .iter()
            .map(|(d, a)| (d.to_string(), a.to_string()))
            .collect(),
        rtt_ms: BTreeMap::new(),
        files: BTreeMap::new(),
        access: StateAccess {
            base_ms: model.base_ms,
            ms_per_km: model.ms_per_km,
            jitter_ms: impairments.jitter_ms,
            loss_pct: impairments.loss_pct,
        },
    };
    for e in &topology.edges {
        let mut one_way = BTreeMap::new();
        let mut rtts = BTreeMap::new();
        for p in topology.edges.iter().filter(|p| p.id != e.id) {
            let rtt = if p.region == e.region {
                0.0
            } else {
                let (a, b) = (aws(e.region.as_str())?, aws(p.region.as_str())?);
                calibration
                    .rtt_ms(a, b)
                    .with_context(|| format!("no measured RTT between {a} and {b}"))?
            };
            one_way.insert(p.id.clone(), rtt / 2.0);
            rtts.insert(p.id.to_string(), rtt);
        }
        let region = topology
            .region(&e.region)
            .with_context(|| format!("edge {} is in no region", e.id))?;
        let lab = WanLab {
            octo: one_way,
            access: Some(AccessModel {
                location: region.location,
                base_ms: model.base_ms,
                ms_per_km: model.ms_per_km,
                jitter_ms: impairments.jitter_ms,
                loss_pct: impairments.loss_pct,
            }),
        };
        let file = dir.join(format!("wan-{}.json", e.id));
        std::fs::write(&file, serde_json::to_string_pretty(&lab)?)
            .with_context(|| format!("writing {}", file.display()))?;
        state.rtt_ms.insert(e.id.to_string(), rtts);
        state.files.insert(e.id.to_string(), file);
    }
    Ok(state)
}
