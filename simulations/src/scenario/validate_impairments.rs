//! Checks of the `latency.impairments` section.

use super::file::{RawImpairments, pos};
use super::validate::{Report, finite_nonneg};
use super::{AccessClass, Impairments};

/// Access types may not exceed this many (they index a small table).
const MAX_ACCESS_CLASSES: usize = 8;

/// Validates loss and jitter terms; every problem is reported with its position.
pub(super) fn impairments(r: &mut Report, raw: &RawImpairments) -> Impairments {
    let path = "latency.impairments";
    let mut num = |v, name: &str| finite_nonneg(r, v, &format!("{path}.{name}"), 0.0);
    let out = Impairments {
        access: Vec::new(),
        access_loss_pct_per_1000km: num(
            &raw.access_loss_pct_per_1000km,
            "access_loss_pct_per_1000km",
        ),
        access_jitter_ms_per_1000km: num(
            &raw.access_jitter_ms_per_1000km,
            "access_jitter_ms_per_1000km",
        ),
        backbone_loss_pct: num(&raw.backbone_loss_pct, "backbone_loss_pct"),
        backbone_loss_pct_per_1000km: num(
            &raw.backbone_loss_pct_per_1000km,
            "backbone_loss_pct_per_1000km",
        ),
        backbone_jitter_ms: num(&raw.backbone_jitter_ms, "backbone_jitter_ms"),
        backbone_jitter_ms_per_1000km: num(
            &raw.backbone_jitter_ms_per_1000km,
            "backbone_jitter_ms_per_1000km",
        ),
        jitter_buffer_factor: match &raw.jitter_buffer_factor {
            Some(_) => num(&raw.jitter_buffer_factor, "jitter_buffer_factor"),
            None => 2.0,
        },
    };
    let mut access = Vec::new();
    let classes = &raw.access.value;
    if classes.is_empty() || classes.len() > MAX_ACCESS_CLASSES {
        r.error(
            pos(&raw.access),
            format!("{path}.access"),
            format!("needs 1 to {MAX_ACCESS_CLASSES} access types"),
        );
    }
    for (i, c) in classes.iter().enumerate() {
        let at = format!("{path}.access[{i}]");
        let one = |r: &mut Report, v: &super::file::S<f64>, name: &str, max: f64| {
            if !(v.value.is_finite() && v.value >= 0.0 && v.value <= max) {
                r.error(
                    pos(v),
                    format!("{at}.{name}"),
                    format!("{} is outside [0, {max}]", v.value),
                );
            }
            v.value
        };
        access.push(AccessClass {
            name: c.name.value.clone(),
            share: one(r, &c.share, "share", 1.0),
            loss_pct: one(r, &c.loss_pct, "loss_pct", 100.0),
            jitter_ms: one(r, &c.jitter_ms, "jitter_ms", 1_000.0),
        });
    }
    let total: f64 = access.iter().map(|c| c.share).sum();
    if !access.is_empty() && (total - 1.0).abs() > 1e-6 {
        r.error(
            pos(&raw.access),
            format!("{path}.access"),
            format!("shares sum to {total:.3}, not 1"),
        );
    }
    Impairments { access, ..out }
}
