//! The meetings of one run, drawn once from the seed and then replayed
//! identically for every strategy (so strategies are compared on the same
//! participants, at the same times, from the same places).

use geomesh_core::GeoPoint;

use crate::population::{Cities, PopulationError};
use crate::rng::SimRng;
use crate::scenario::{DurationDist, GeneratedWorkload, Ms, Scenario, SizeBucket, Workload};

/// Shortest generated meeting (a draw below it is raised to it).
const MIN_DURATION: Ms = 1_000;

/// Where participants can be: the population's cities, or scripted points.
#[derive(Debug, Clone)]
pub struct Site {
    /// Location.
    pub location: GeoPoint,
    /// City name (empty for scripted points).
    pub name: String,
}

/// One meeting; its participants are `first .. first + size` in
/// [`Meetings::participants`].
#[derive(Debug, Clone, Copy)]
pub struct Meeting {
    /// First participant's join time, ms.
    pub start: Ms,
    /// Everyone leaves at this time, ms.
    pub end: Ms,
    /// Index of its first participant.
    pub first: u32,
    /// Number of participants.
    pub size: u32,
}

/// One participant (leaves at its meeting's end).
#[derive(Debug, Clone, Copy)]
pub struct Participant {
    /// Index into [`Meetings::sites`].
    pub site: u32,
    /// Index into [`Meetings::meetings`].
    pub meeting: u32,
    /// Join time, ms.
    pub join: Ms,
}

/// Everything one run replays.
#[derive(Debug, Clone)]
pub struct Meetings {
    /// Participant locations.
    pub sites: Vec<Site>,
    /// Meetings in start order.
    pub meetings: Vec<Meeting>,
    /// Participants, grouped by meeting.
    pub participants: Vec<Participant>,
}

impl Meetings {
    /// Draws (or lists) the scenario's meetings.
    pub fn generate(s: &Scenario) -> Result<Meetings, PopulationError> {
        match &s.workload {
            Workload::Scripted(list) => {
                let mut out = Meetings {
                    sites: Vec::new(),
                    meetings: Vec::new(),
                    participants: Vec::new(),
                };
                for (mi, m) in list.iter().enumerate() {
                    let first = out.participants.len() as u32;
                    for p in &m.participants {
                        out.participants.push(Participant {
                            site: out.sites.len() as u32,
                            meeting: mi as u32,
                            join: m.start + p.join,
                        });
                        out.sites.push(Site {
                            location: p.location,
                            name: String::new(),
                        });
                    }
                    out.meetings.push(Meeting {
                        start: m.start,
                        end: m.start + m.duration,
                        first,
                        size: m.participants.len() as u32,
                    });
                }
                Ok(out)
            }
            Workload::Generated(g) => generate(s, g),
        }
    }
}

fn generate(s: &Scenario, g: &GeneratedWorkload) -> Result<Meetings, PopulationError> {
    let pop = Cities::embedded().filtered(&g.population, s.start_unix_s)?;
    let mut rng = SimRng::new(s.seed);
    let sites = pop
        .cities
        .iter()
        .map(|c| Site {
            location: c.location(),
            name: format!("{} ({})", c.name, c.country),
        })
        .collect();
    let total_weight: f64 = g.sizes.iter().map(|b| b.weight).sum();
    let mean_gap_ms = 3_600_000.0 / g.arrivals_per_hour;
    let mut meetings = Vec::new();
    let mut participants = Vec::new();
    let mut t = 0.0_f64;
    loop {
        t += rng.exp(mean_gap_ms);
        if t >= s.horizon as f64 {
            break;
        }
        let start = t as Ms;
        let Some(host) = pop.draw_host(start, &mut rng) else {
            continue;
        };
        let size = draw_size(&g.sizes, total_weight, &mut rng);
        let duration = draw_duration(g.duration, &mut rng).max(MIN_DURATION);
        let spread = g.join_spread.min(duration - 1);
        let mi = meetings.len() as u32;
        let first = participants.len() as u32;
        participants.push(Participant {
            site: host as u32,
            meeting: mi,
            join: start,
        });
        for _ in 1..size {
            let site = pop.draw_member(host, start, &mut rng);
            let join = start + rng.below(spread + 1);
            participants.push(Participant {
                site: site as u32,
                meeting: mi,
                join,
            });
        }
        meetings.push(Meeting {
            start,
            end: start + duration,
            first,
            size,
        });
    }
    Ok(Meetings {
        sites,
        meetings,
        participants,
    })
}

fn draw_size(sizes: &[SizeBucket], total: f64, rng: &mut SimRng) -> u32 {
    let mut x = rng.unit() * total;
    for b in sizes {
        if x < b.weight {
            return b.min + rng.below((b.max - b.min) as u64 + 1) as u32;
        }
        x -= b.weight;
    }
    // Rounding left x just past the last bucket.
    sizes.last().map_or(1, |b| b.max)
}

fn draw_duration(d: DurationDist, rng: &mut SimRng) -> Ms {
    let v = match d {
        DurationDist::Fixed { ms } => ms as f64,
        DurationDist::Uniform { min, max } => min as f64 + rng.unit() * (max - min) as f64,
        DurationDist::Exponential { mean } => rng.exp(mean as f64),
        DurationDist::Lognormal { median, sigma } => median as f64 * (sigma * rng.normal()).exp(),
    };
    v.clamp(0.0, u64::MAX as f64 / 4.0) as Ms
}
