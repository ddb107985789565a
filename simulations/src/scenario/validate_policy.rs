//! Checks of the selector's knobs in `policy:` and strategy variants.

use geomesh_selector::strategy::PlacementPolicy;

use super::Ms;
use super::file::{RawPolicy, pos};
use super::validate::{Report, dur, finite_nonneg};

/// Applies policy overrides; heartbeat and health timeout only where `hb` is given.
pub(super) fn apply_policy(
    r: &mut Report,
    raw: &RawPolicy,
    path: &str,
    p: &mut PlacementPolicy,
    hb: Option<(&mut Ms, &mut Option<Ms>)>,
) {
    match hb {
        Some((heartbeat, timeout)) => {
            if let Some(v) = &raw.heartbeat_interval {
                if dur(v) == 0 {
                    r.error(
                        pos(v),
                        format!("{path}.heartbeat_interval"),
                        "must be positive",
                    );
                } else {
                    *heartbeat = dur(v);
                }
            }
            if let Some(v) = &raw.health_timeout {
                *timeout = Some(dur(v));
            }
        }
        None => {
            for v in [&raw.heartbeat_interval, &raw.health_timeout]
                .into_iter()
                .flatten()
            {
                r.error(
                    pos(v),
                    path,
                    "heartbeat_interval and health_timeout are per scenario, not per strategy",
                );
            }
        }
    }
    if let Some(v) = &raw.max_edges_per_conference {
        if v.value == 0 {
            r.error(
                pos(v),
                format!("{path}.max_edges_per_conference"),
                "must be at least 1",
            );
        }
        p.max_edges_per_conference = v.value;
    }
    if let Some(v) = &raw.stress_threshold {
        if !(v.value > 0.0 && v.value <= 1.0) {
            r.error(
                pos(v),
                format!("{path}.stress_threshold"),
                format!("{} is outside (0, 1]", v.value),
            );
        }
        p.stress_threshold = v.value;
    }
    for (v, name, knob) in [
        (&raw.access_weight, "access_weight", &mut p.access_weight),
        (&raw.hop_ms, "hop_ms", &mut p.hop_ms),
        (&raw.relay_ms, "relay_ms", &mut p.relay_ms),
        (&raw.stress_ms, "stress_ms", &mut p.stress_ms),
    ] {
        if v.is_some() {
            *knob = finite_nonneg(r, v, &format!("{path}.{name}"), *knob);
        }
    }
    if let Some(v) = &raw.max_fallbacks {
        p.max_fallbacks = v.value as usize;
    }
    if let Some(v) = &raw.burst_safety {
        p.burst_safety = v.value;
    }
}
