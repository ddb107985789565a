//! `geomesh status [--selector URL] [--json]`: the whole cluster on one
//! screen, from a selector's `GET /v1/status`.

use std::process::ExitCode;
use std::time::Duration;

use geomesh_selector::status::{ClusterStatus, EdgeView};

/// Show the cluster: regions, edges, selectors and octo links.
#[derive(clap::Args)]
pub struct Args {
    /// A selector's public API (repeatable or comma-separated; the first
    /// that answers is used). Default: the `geomesh dev` mesh running here.
    #[arg(long = "selector", env = "GEOMESH_SELECTOR", value_delimiter = ',')]
    selectors: Vec<String>,
    /// The status as JSON (the `GET /v1/status` body), for scripts.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let selectors = super::operator::selectors(&self.selectors)?;
        let status = rt.block_on(fetch(&selectors))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", render(&status));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `GET /v1/status` of the first selector that answers.
pub async fn fetch(selectors: &[String]) -> anyhow::Result<ClusterStatus> {
    super::operator::first_answer::<ClusterStatus>(
        selectors,
        "/v1/status",
        None,
        Duration::from_secs(10),
    )
    .await
}

fn uptime(s: Option<u64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

fn health(e: &EdgeView) -> &'static str {
    match (e.registered, e.healthy) {
        (false, _) => "unregistered",
        (true, true) => "up",
        (true, false) => "DOWN",
    }
}

/// The status as text: one table per kind of node, then the link matrix.
pub fn render(s: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster {} (topology {}), as {} sees it; leader: {}\n\n",
        s.cluster,
        s.topology_hash,
        s.selector,
        s.leader.as_deref().unwrap_or("NONE")
    );
    out += &format!(
        "{:<14} {:<22} {:<12} {:<8} {:>6} {:>5} {:>5} {:<22} {:<8} {:>6}\n",
        "REGION", "EDGE", "HEALTH", "DRAIN", "STRESS", "PART", "CONF", "MEDIA", "VERSION", "UPTIME"
    );
    for r in &s.regions {
        let mut any = false;
        for e in s.edges.iter().filter(|e| e.region == r.id) {
            any = true;
            out += &format!(
                "{:<14} {:<22} {:<12} {:<8} {:>6} {:>5} {:>5} {:<22} {:<8} {:>6}\n",
                r.id.as_str(),
                e.id.as_str(),
                health(e),
                match (e.draining, e.migrate) {
                    (false, _) => "-",
                    (true, false) => "draining",
                    (true, true) => "migrate",
                },
                e.stress.map_or("-".into(), |x| format!("{x:.2}")),
                e.participants,
                e.conferences,
                e.media.map_or("-".into(), |m| m.to_string()),
                e.about.as_ref().map_or("-", |a| a.version.as_str()),
                uptime(e.uptime_s),
            );
        }
        if !any {
            out += &format!("{:<14} (no edge)\n", r.id.as_str());
        }
    }
    out += &format!(
        "\n{:<12} {:<10} {:>6} {:>12} {:>12} {:>6} {:>8}  {}\n",
        "SELECTOR", "ROLE", "TERM", "LOG", "APPLIED", "LAG", "CLOCK", "API"
    );
    for n in &s.selectors {
        match &n.health {
            Some(h) => {
                out += &format!(
                    "{:<12} {:<10} {:>6} {:>12} {:>12} {:>6} {:>7}ms  {}\n",
                    n.id,
                    h.raft_role,
                    h.term,
                    h.last_log_index.map_or("-".into(), |x| x.to_string()),
                    h.last_applied.map_or("-".into(), |x| x.to_string()),
                    n.lag.map_or("-".into(), |x| x.to_string()),
                    n.clock_offset_ms.unwrap_or(0),
                    n.api
                )
            }
            None => {
                out += &format!(
                    "{:<12} UNREACHABLE ({})  {}\n",
                    n.id,
                    n.error.as_deref().unwrap_or("?"),
                    n.api
                )
            }
        }
    }
    out += "\nOCTO LINKS (rtt ms / loss %, as the row's edge reports it)\n";
    out += &format!("{:<22}", "");
    for e in &s.edges {
        out += &format!(" {:>14}", short(e.id.as_str()));
    }
    out += "\n";
    for a in &s.edges {
        out += &format!("{:<22}", a.id.as_str());
        for b in &s.edges {
            let cell = if a.id == b.id {
                "-".to_string()
            } else {
                match a.links.iter().find(|l| l.edge == b.id) {
                    Some(l) if l.state.as_deref() == Some("down") => "DOWN".into(),
                    Some(l) => format!("{:.1}/{:.1}", l.rtt_ms, l.loss.unwrap_or(0.0) * 100.0),
                    None => ".".into(),
                }
            };
            out += &format!(" {cell:>14}");
        }
        out += "\n";
    }
    out
}

/// The last 14 characters of an id (table columns).
fn short(id: &str) -> &str {
    let skip = id.len().saturating_sub(14);
    id.get(skip..).unwrap_or(id)
}
