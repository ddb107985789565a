//! Semantic checks of `population` and `meetings`.

use super::file::{RawDurationDist, RawScenario, S, pos};
use super::validate::{MAX_MEETING_SIZE, Report, dur, ms};
use super::*;
use crate::population::{CONTINENTS, Cities};

pub(super) fn workload(r: &mut Report, raw: &RawScenario, start_unix_s: i64) -> Option<Workload> {
    let m = &raw.meetings.value;
    if let Some(s) = &m.scripted {
        let generated = m.arrivals_per_hour.is_some() || m.sizes.is_some() || m.duration.is_some();
        if generated {
            r.error(
                pos(s),
                "meetings.scripted",
                "scripted meetings replace arrivals_per_hour, sizes and duration: give one or the other",
            );
        }
        let mut meetings = Vec::new();
        for (i, sm) in s.value.iter().enumerate() {
            let path = format!("meetings.scripted[{i}]");
            let duration = dur(&sm.duration);
            if duration == 0 {
                r.error(
                    pos(&sm.duration),
                    format!("{path}.duration"),
                    "must be positive",
                );
            }
            if sm.participants.value.is_empty() {
                r.error(
                    pos(&sm.participants),
                    format!("{path}.participants"),
                    "empty meeting",
                );
            }
            let mut ps = Vec::new();
            for (j, p) in sm.participants.value.iter().enumerate() {
                let pp = format!("{path}.participants[{j}]");
                if let Err(e) = p.location.value.validate() {
                    r.error(pos(&p.location), format!("{pp}.location"), e.to_string());
                }
                let join = p.join.as_ref().map_or(0, dur);
                if let Some(v) = &p.join
                    && join >= duration
                {
                    r.error(
                        pos(v),
                        format!("{pp}.join"),
                        "must be before the meeting ends",
                    );
                }
                ps.push(ScriptedParticipant {
                    location: p.location.value,
                    join,
                });
            }
            meetings.push(ScriptedMeeting {
                start: dur(&sm.start),
                duration,
                participants: ps,
            });
        }
        return Some(Workload::Scripted(meetings));
    }

    let at = pos(&raw.meetings);
    let population = population(r, raw, start_unix_s);
    let arrivals_per_hour = match &m.arrivals_per_hour {
        Some(v) if !(v.value.is_finite() && v.value > 0.0) => {
            r.error(
                pos(v),
                "meetings.arrivals_per_hour",
                "must be a positive number",
            );
            None
        }
        Some(v) => Some(v.value),
        None => {
            r.error(
                at,
                "meetings",
                "give `arrivals_per_hour` (or `scripted` meetings)",
            );
            None
        }
    };
    let mut sizes = Vec::new();
    match &m.sizes {
        None => r.error(
            at,
            "meetings",
            "give `sizes` (the meeting size distribution)",
        ),
        Some(s) if s.value.is_empty() => r.error(pos(s), "meetings.sizes", "must not be empty"),
        Some(s) => {
            for (i, b) in s.value.iter().enumerate() {
                let path = format!("meetings.sizes[{i}]");
                let (min, max) = match (&b.size, &b.min, &b.max) {
                    (Some(n), None, None) => (n.value, n.value),
                    (None, Some(a), Some(z)) => (a.value, z.value),
                    _ => {
                        r.error(pos(&b.weight), &path, "give `size`, or `min` and `max`");
                        continue;
                    }
                };
                if min == 0 || min > max || max > MAX_MEETING_SIZE {
                    r.error(
                        pos(&b.weight),
                        &path,
                        format!("sizes must satisfy 1 ≤ min ≤ max ≤ {MAX_MEETING_SIZE}"),
                    );
                }
                if !(b.weight.value.is_finite() && b.weight.value > 0.0) {
                    r.error(pos(&b.weight), format!("{path}.weight"), "must be positive");
                }
                sizes.push(SizeBucket {
                    min,
                    max,
                    weight: b.weight.value,
                });
            }
        }
    }
    let duration = match &m.duration {
        None => {
            r.error(
                at,
                "meetings",
                "give `duration` (the meeting duration distribution)",
            );
            None
        }
        Some(d) => {
            let dd = match &d.value {
                RawDurationDist::Fixed(v) => DurationDist::Fixed { ms: ms(v.0) },
                RawDurationDist::Uniform { min, max } => DurationDist::Uniform {
                    min: ms(min.0),
                    max: ms(max.0),
                },
                RawDurationDist::Exponential { mean } => {
                    DurationDist::Exponential { mean: ms(mean.0) }
                }
                RawDurationDist::Lognormal { median, sigma } => DurationDist::Lognormal {
                    median: ms(median.0),
                    sigma: *sigma,
                },
            };
            let ok = match dd {
                DurationDist::Fixed { ms } => ms > 0,
                DurationDist::Uniform { min, max } => min > 0 && min <= max,
                DurationDist::Exponential { mean } => mean > 0,
                DurationDist::Lognormal { median, sigma } => {
                    median > 0 && sigma.is_finite() && sigma > 0.0 && sigma <= 5.0
                }
            };
            if !ok {
                r.error(
                    pos(d),
                    "meetings.duration",
                    "durations must be positive (uniform: min ≤ max; lognormal: 0 < sigma ≤ 5)",
                );
            }
            Some(dd)
        }
    };
    let join_spread = m.join_spread.as_ref().map_or(0, dur);
    Some(Workload::Generated(GeneratedWorkload {
        population: population?,
        arrivals_per_hour: arrivals_per_hour?,
        sizes,
        duration: duration?,
        join_spread,
    }))
}

fn population(r: &mut Report, raw: &RawScenario, start_unix_s: i64) -> Option<PopulationSpec> {
    let p = &raw.population;
    let mut spec = PopulationSpec::default();
    for (i, c) in p.continents.iter().enumerate() {
        if !CONTINENTS.contains(&c.value.as_str()) {
            r.error(
                pos(c),
                format!("population.continents[{i}]"),
                format!(
                    "{:?} is not a continent code (known: {})",
                    c.value,
                    CONTINENTS.join(", ")
                ),
            );
        }
        spec.continents.push(c.value.clone());
    }
    for (list, name, out) in [
        (&p.countries, "countries", &mut spec.countries),
        (
            &p.exclude_countries,
            "exclude_countries",
            &mut spec.exclude_countries,
        ),
    ] {
        for (i, c) in list.iter().enumerate() {
            let ok = c.value.len() == 2 && c.value.chars().all(|ch| ch.is_ascii_uppercase());
            if !ok {
                r.error(
                    pos(c),
                    format!("population.{name}[{i}]"),
                    format!("{:?} is not an ISO 3166-1 alpha-2 code", c.value),
                );
            }
            out.push(c.value.clone());
        }
    }
    if let Some(d) = &p.diurnal {
        let hours = &d.value.active_hours;
        let ok = hours.value.len() == 2
            && hours.value.iter().all(|h| *h <= 24)
            && hours.value[0] % 24 != hours.value[1] % 24;
        if !ok {
            r.error(
                pos(hours),
                "population.diurnal.active_hours",
                "give [from, to]: two different local hours, 0–24",
            );
        }
        let w = &d.value.off_hours_weight;
        if !(w.value > 0.0 && w.value <= 1.0) {
            r.error(
                pos(w),
                "population.diurnal.off_hours_weight",
                "must be in (0, 1]",
            );
        }
        spec.diurnal = Some(Diurnal {
            active_from: hours.value.first().copied().unwrap_or(0) % 24,
            active_to: hours.value.get(1).copied().unwrap_or(0) % 24,
            off_hours_weight: w.value,
        });
    }
    if let Some(l) = &p.locality {
        let share = |r: &mut Report, v: &Option<S<f64>>, name: &str| match v {
            Some(s) if !(0.0..=1.0).contains(&s.value) => {
                r.error(
                    pos(s),
                    format!("population.locality.{name}"),
                    "must be in [0, 1]",
                );
                0.0
            }
            Some(s) => s.value,
            None => 0.0,
        };
        spec.same_country = share(r, &l.value.same_country, "same_country");
        spec.same_continent = share(r, &l.value.same_continent, "same_continent");
        if spec.same_country + spec.same_continent > 1.0 {
            r.error(
                pos(l),
                "population.locality",
                "same_country + same_continent must be at most 1",
            );
        }
    }
    // The filters must leave someone to simulate.
    match Cities::embedded().filtered(&spec, start_unix_s) {
        Ok(c) if c.is_empty() => {
            r.error(None, "population", "the filters leave no city");
            None
        }
        Ok(_) => Some(spec),
        Err(e) => {
            r.error(None, "population", e.to_string());
            None
        }
    }
}
