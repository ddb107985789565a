//! Who meets: cities weighted by population, filtered by continent or
//! country, optionally weighted by local time of day.
//!
//! The cities are GeoNames' 1,983 cities of at least 300,000 people
//! (`data/world_cities.csv`, CC BY 4.0, see `data/README.md`), embedded.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use geomesh_core::GeoPoint;

use crate::rng::SimRng;
use crate::scenario::{Diurnal, Ms, PopulationSpec};

/// The embedded city list.
pub const WORLD_CITIES_CSV: &str = include_str!("../data/world_cities.csv");

/// GeoNames continent codes.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Rejection-sampling tries before taking a draw regardless of its activity
/// (keeps a sleeping population from looping; ≥ 1 / off_hours_weight is
/// enough on average).
const MAX_TRIES: u32 = 256;

/// Why the city list could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PopulationError {
    /// A CSV row is malformed.
    #[error("world_cities.csv line {line}: {message}")]
    Malformed {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A city's time zone is not in the time zone database.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
}

/// One city.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct City {
    /// GeoNames id.
    pub geonameid: u32,
    /// Name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country.
    pub country: String,
    /// GeoNames continent code.
    pub continent: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Population.
    pub population: u64,
    /// IANA time zone.
    pub timezone: String,
}

impl City {
    /// Its location (checked when the list is parsed).
    pub fn location(&self) -> GeoPoint {
        GeoPoint {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

/// The full city list.
#[derive(Debug, Clone)]
pub struct Cities(pub Vec<City>);

impl Cities {
    /// The embedded list, parsed once.
    pub fn embedded() -> &'static Cities {
        static CITIES: OnceLock<Cities> = OnceLock::new();
        CITIES.get_or_init(|| {
            // The embedded file is checked by a unit test: panic means bug.
            Cities::parse(WORLD_CITIES_CSV).expect("embedded world_cities.csv is valid")
        })
    }

    /// Parses `world_cities.csv` (header, RFC 4180 quoting).
    pub fn parse(csv_text: &str) -> Result<Cities, PopulationError> {
        let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
        let mut out = Vec::new();
        for row in rd.deserialize::<City>() {
            let city = row.map_err(|e| PopulationError::Malformed {
                line: e.position().map_or(0, |p| p.line()),
                message: e.to_string(),
            })?;
            if let Err(e) = city.location().validate() {
                return Err(PopulationError::Malformed {
                    line: out.len() as u64 + 2,
                    message: e.to_string(),
                });
            }
            out.push(city);
        }
        Ok(Cities(out))
    }

    /// The cities a population spec keeps, ready to sample from.
    /// `start_unix_s` fixes each city's UTC offset (at t = 0).
    pub fn filtered(
        &self,
        spec: &PopulationSpec,
        start_unix_s: i64,
    ) -> Result<Population, PopulationError> {
        let keep = |c: &City| {
            (spec.continents.is_empty() || spec.continents.contains(&c.continent))
                && (spec.countries.is_empty() || spec.countries.contains(&c.country))
                && !spec.exclude_countries.contains(&c.country)
                && c.population > 0
        };
        let mut cities: Vec<City> = self.0.iter().filter(|c| keep(c)).cloned().collect();
        // Continents, and countries within them, become contiguous ranges.
        cities.sort_by(|a, b| {
            (a.continent.as_str(), a.country.as_str())
                .cmp(&(b.continent.as_str(), b.country.as_str()))
        });
        let mut cum = Vec::with_capacity(cities.len());
        let mut total = 0.0;
        for c in &cities {
            total += c.population as f64;
            cum.push(total);
        }
        let ranges = |key: &dyn Fn(&City) -> &str| {
            let mut out = vec![(0u32, 0u32); cities.len()];
            let mut s = 0;
            while s < cities.len() {
                let mut e = s;
                while e < cities.len() && key(&cities[e]) == key(&cities[s]) {
                    e += 1;
                }
                for slot in &mut out[s..e] {
                    *slot = (s as u32, e as u32);
                }
                s = e;
            }
            out
        };
        let country = ranges(&|c: &City| c.country.as_str());
        let continent = ranges(&|c: &City| c.continent.as_str());
        let mut offsets: BTreeMap<&str, i32> = BTreeMap::new();
        let start = jiff::Timestamp::from_second(start_unix_s)
            .map_err(|e| PopulationError::TimeZone(e.to_string()))?;
        let mut offset_s = Vec::with_capacity(cities.len());
        for c in &cities {
            let o = match offsets.get(c.timezone.as_str()) {
                Some(o) => *o,
                None => {
                    let tz = jiff::tz::TimeZone::get(&c.timezone)
                        .map_err(|_| PopulationError::TimeZone(c.timezone.clone()))?;
                    let o = tz.to_offset(start).seconds();
                    offsets.insert(&c.timezone, o);
                    o
                }
            };
            offset_s.push(o);
        }
        Ok(Population {
            offset_s,
            cum,
            country,
            continent,
            diurnal: spec.diurnal,
            same_country: spec.same_country,
            same_continent: spec.same_continent,
            start_unix_s,
            cities,
        })
    }
}

/// Filtered cities, ready to draw participants from.
#[derive(Debug, Clone)]
pub struct Population {
    /// The cities kept, grouped by continent then country.
    pub cities: Vec<City>,
    offset_s: Vec<i32>,
    cum: Vec<f64>,
    country: Vec<(u32, u32)>,
    continent: Vec<(u32, u32)>,
    diurnal: Option<Diurnal>,
    same_country: f64,
    same_continent: f64,
    start_unix_s: i64,
}

impl Population {
    /// No city kept.
    pub fn is_empty(&self) -> bool {
        self.cities.is_empty()
    }

    /// Relative activity (0–1] of city `i` at simulated time `t`.
    pub fn activity(&self, i: usize, t: Ms) -> f64 {
        let Some(d) = self.diurnal else {
            return 1.0;
        };
        let local = self.start_unix_s + (t / 1000) as i64 + self.offset_s[i] as i64;
        let hour = (local.rem_euclid(86_400) / 3_600) as u32;
        let active = if d.active_from < d.active_to {
            (d.active_from..d.active_to).contains(&hour)
        } else {
            hour >= d.active_from || hour < d.active_to
        };
        if active { 1.0 } else { d.off_hours_weight }
    }

    /// A city in `[s, e)` drawn by population.
    fn draw_in(&self, (s, e): (u32, u32), rng: &mut SimRng) -> usize {
        let (s, e) = (s as usize, e as usize);
        let lo = if s == 0 { 0.0 } else { self.cum[s - 1] };
        let hi = self.cum[e - 1];
        let x = lo + rng.unit() * (hi - lo);
        let i = s + self.cum[s..e].partition_point(|&c| c <= x);
        i.min(e - 1)
    }

    /// The first participant of a meeting that *may* start at `t`: drawn by
    /// population, kept with probability = its city's activity (thinning a
    /// Poisson process at the peak rate). `None` = no meeting this time.
    pub fn draw_host(&self, t: Ms, rng: &mut SimRng) -> Option<usize> {
        let i = self.draw_in((0, self.cities.len() as u32), rng);
        let a = self.activity(i, t);
        (a >= 1.0 || rng.unit() < a).then_some(i)
    }

    /// Another participant of a meeting hosted in city `host`: from the
    /// host's country, its continent, or anywhere (the locality shares),
    /// weighted by population × activity at `t`.
    pub fn draw_member(&self, host: usize, t: Ms, rng: &mut SimRng) -> usize {
        let u = rng.unit();
        let range = if u < self.same_country {
            self.country[host]
        } else if u < self.same_country + self.same_continent {
            self.continent[host]
        } else {
            (0, self.cities.len() as u32)
        };
        let mut i = self.draw_in(range, rng);
        for _ in 1..MAX_TRIES {
            let a = self.activity(i, t);
            if a >= 1.0 || rng.unit() < a {
                break;
            }
            i = self.draw_in(range, rng);
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_parses() {
        let c = Cities::embedded();
        assert_eq!(c.0.len(), 1983);
        let shanghai = &c.0[0];
        assert_eq!(
            (shanghai.name.as_str(), shanghai.country.as_str()),
            ("Shanghai", "CN")
        );
        assert_eq!(shanghai.population, 24_874_500);
        // Every time zone resolves.
        let all = c.filtered(&PopulationSpec::default(), 0).unwrap();
        assert_eq!(all.cities.len(), 1983);
    }

    #[test]
    fn filters_and_groups() {
        let spec = PopulationSpec {
            continents: vec!["EU".into(), "NA".into()],
            exclude_countries: vec!["RU".into()],
            ..Default::default()
        };
        let p = Cities::embedded().filtered(&spec, 0).unwrap();
        assert!(
            p.cities
                .iter()
                .all(|c| c.continent == "EU" || c.continent == "NA")
        );
        assert!(p.cities.iter().all(|c| c.country != "RU"));
        // Country ranges are contiguous and hold only that country.
        for (i, c) in p.cities.iter().enumerate() {
            let (s, e) = p.country[i];
            assert!(
                p.cities[s as usize..e as usize]
                    .iter()
                    .all(|d| d.country == c.country)
            );
        }
        let none = PopulationSpec {
            countries: vec!["ZZ".into()],
            ..Default::default()
        };
        assert!(Cities::embedded().filtered(&none, 0).unwrap().is_empty());
    }

    #[test]
    fn diurnal_activity_follows_local_time() {
        let spec = PopulationSpec {
            countries: vec!["JP".into(), "GB".into()],
            diurnal: Some(Diurnal {
                active_from: 8,
                active_to: 18,
                off_hours_weight: 0.1,
            }),
            ..Default::default()
        };
        // 2025-01-15T00:00:00Z: 09:00 in Tokyo (UTC+9), 00:00 in London.
        let start = 1_736_899_200;
        let p = Cities::embedded().filtered(&spec, start).unwrap();
        let tokyo = p.cities.iter().position(|c| c.name == "Tokyo").unwrap();
        let london = p.cities.iter().position(|c| c.name == "London").unwrap();
        assert_eq!(p.activity(tokyo, 0), 1.0);
        assert_eq!(p.activity(london, 0), 0.1);
        // Ten hours later: 19:00 in Tokyo, 10:00 in London.
        let t = 10 * 3_600_000;
        assert_eq!(p.activity(tokyo, t), 0.1);
        assert_eq!(p.activity(london, t), 1.0);
    }

    #[test]
    fn draws_follow_population_and_locality() {
        let spec = PopulationSpec {
            countries: vec!["DE".into(), "FR".into()],
            same_country: 1.0,
            ..Default::default()
        };
        let p = Cities::embedded().filtered(&spec, 0).unwrap();
        let mut rng = SimRng::new(1);
        let host = p.draw_host(0, &mut rng).unwrap();
        for _ in 0..200 {
            let m = p.draw_member(host, 0, &mut rng);
            assert_eq!(p.cities[m].country, p.cities[host].country);
        }
        // Paris (2.1 M) is drawn far more often than Lille (230 k is below
        // the list's cut; take the smallest French city listed instead).
        let fr: Vec<usize> = (0..p.cities.len())
            .filter(|&i| p.cities[i].country == "FR")
            .collect();
        let paris = *fr.iter().find(|&&i| p.cities[i].name == "Paris").unwrap();
        let smallest = *fr.iter().min_by_key(|&&i| p.cities[i].population).unwrap();
        let mut counts = [0u32; 2];
        for _ in 0..20_000 {
            let i = p.draw_in(p.country[paris], &mut rng);
            if i == paris {
                counts[0] += 1;
            } else if i == smallest {
                counts[1] += 1;
            }
        }
        assert!(counts[0] > 3 * counts[1], "{counts:?}");
    }
}
