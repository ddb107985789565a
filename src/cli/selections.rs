//! `geomesh selector selections [--conference C] [--follow]`: the selection
//! log of every selector (`GET /v1/selections`), merged by time.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use geomesh_core::api::{Selection, Selections};

/// Print the selection log.
#[derive(clap::Args)]
pub struct Args {
    /// Only this conference.
    #[arg(long)]
    conference: Option<geomesh_core::ConferenceId>,
    /// Keep printing new placements as they are made (Ctrl-C stops).
    #[arg(long)]
    follow: bool,
    /// Only placements of the last DURATION (e.g. 10m).
    #[arg(long)]
    since: Option<humantime::Duration>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// A selector's public API (repeatable or comma-separated). Every
    /// selector keeps its own log: give them all. Default: the `geomesh
    /// dev` mesh running here.
    #[arg(long = "selector", env = "GEOMESH_SELECTOR", value_delimiter = ',')]
    selectors: Vec<String>,
    /// A file holding the operator token. Default: the `geomesh dev` mesh's.
    #[arg(long, env = "GEOMESH_OPERATOR_TOKEN")]
    operator_token: Option<std::path::PathBuf>,
}

/// How often `--follow` asks.
const POLL: Duration = Duration::from_millis(500);

impl Args {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let selectors = super::operator::selectors(&self.selectors)?;
        let auth = format!(
            "Bearer {}",
            super::operator::token(self.operator_token.as_ref())?
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let now_ms = unix_ms(SystemTime::now());
        // Per selector: entries after this time (Unix ms).
        let start = self
            .since
            .map(|d| now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
        let mut since: BTreeMap<String, Option<u64>> =
            selectors.iter().map(|s| (s.clone(), start)).collect();
        // (time, selector, seq) printed: entries of the last millisecond
        // are asked for again, and skipped here.
        let mut seen: BTreeSet<(u64, String, u64)> = BTreeSet::new();
        let mut reached = 0;
        loop {
            let mut batch: Vec<Selection> = Vec::new();
            for url in &selectors {
                // Ids are URL-safe by construction (geomesh_core::id).
                let mut q: Vec<String> = Vec::new();
                if let Some(c) = &self.conference {
                    q.push(format!("conference={c}"));
                }
                if let Some(t) = since[url] {
                    // Entries of the last printed millisecond again.
                    q.push(format!("since={}", t.saturating_sub(1)));
                }
                let answer = http
                    .get(format!(
                        "{}/v1/selections?{}",
                        url.trim_end_matches('/'),
                        q.join("&")
                    ))
                    .header("authorization", &auth)
                    .send()
                    .await;
                let r = match answer {
                    Ok(r) if r.status().is_success() => r,
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        anyhow::bail!("{url}: {status}: {text}");
                    }
                    Err(e) => {
                        // A selector down is reported, the others still read.
                        eprintln!("{url}: {e}");
                        continue;
                    }
                };
                let s: Selections = r.json().await.with_context(|| format!("{url}: answer"))?;
                reached += 1;
                if let Some(last) = s.selections.iter().map(|e| e.at_ms).max() {
                    since.insert(url.clone(), Some(last));
                }
                batch.extend(
                    s.selections
                        .into_iter()
                        .filter(|e| seen.insert((e.at_ms, e.selector.clone(), e.seq))),
                );
            }
            // Only the newest millisecond can come again.
            let oldest = since.values().flatten().min().copied().unwrap_or(0);
            seen.retain(|(t, _, _)| *t + 1 >= oldest);
            if reached == 0 {
                anyhow::bail!("no selector answered");
            }
            batch.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.seq.cmp(&b.seq)));
            for e in &batch {
                if self.json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    println!("{}", line(e));
                }
            }
            if !self.follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = super::shutdown_signal() => return Ok(ExitCode::SUCCESS),
            }
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One placement on one line: when, where, why, and what lost.
fn line(e: &Selection) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(e.at_ms);
    let moved = e
        .moved_from
        .as_ref()
        .map(|m| format!(" (moved from {m})"))
        .unwrap_or_default();
    let others: Vec<String> = e
        .candidates
        .iter()
        .filter(|c| c.verdict != "chosen")
        .map(|c| match c.rtt_ms {
            Some(ms) => format!("{} {} {ms:.0} ms", c.edge, c.verdict),
            None => format!("{} {}", c.edge, c.verdict),
        })
        .chain(e.more.iter().map(|(v, n)| format!("+{n} {v}")))
        .collect();
    format!(
        "{} {} {}/{} -> {} ({}) {} {:.1} ms {} [location {}]{}; others: {}",
        humantime::format_rfc3339_millis(at),
        e.selector,
        e.conference,
        e.participant,
        e.edge,
        e.region,
        e.reason,
        e.rtt_ms,
        e.rtt_source,
        e.location_source,
        moved,
        if others.is_empty() {
            "none".to_string()
        } else {
            others.join(", ")
        }
    )
}
