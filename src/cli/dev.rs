//! `geomesh dev`: a working local mesh with no setup.
//!
//! Writes a topology and fresh credentials into a directory (a temporary
//! one by default), starts a 3-node selector cluster (Raft, GeoDNS) and
//! four edges in three regions (two in one of them), each as its own
//! process with its log in a file, waits until the selectors have a leader
//! and every edge is healthy, writes the state file, and prints the meeting
//! page URL (a selector's page: it places every participant). The terminal
//! then shows what a person needs: per region the edges and their state,
//! the selectors and the leader, and one line per notable event (edge up or
//! down, leader change). Ctrl-C or SIGTERM stops the children and removes
//! the temporary directory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use geomesh_core::credentials;
use geomesh_core::topology::Topology;
use serde::Serialize;

use super::dev_monitor::{Monitor, http_get};

#[path = "dev_topology.rs"]
mod topology;
use topology::topology_yaml;

/// Start a local mesh for development and demos.
#[derive(clap::Args)]
pub struct Args {
    /// Write the mesh's state (regions, edges, selectors, key paths) as JSON here.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Keep topology, credentials and logs in this directory (default: a
    /// temporary one, removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First HTTP port: the selectors' public API (and the meeting page)
    /// from here, the edges' from +10, the selectors' Raft from +30,
    /// GeoDNS from +40 and the recorders' from +45.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// First media (UDP) port.
    #[arg(long, default_value_t = 10000)]
    media_port: u16,
    /// First octo (QUIC) port (the edges' from here, the recorders' from +20).
    #[arg(long, default_value_t = 4433)]
    octo_port: u16,
    /// Bind and advertise this address instead of 127.0.0.1: for devices on
    /// the same network, and for clients whose ICE agents never gather
    /// loopback candidates (libnice: GStreamer webrtcbin, Janus).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Raft timing of the selectors: `dev` (one machine, about a second
    /// to repair a leader loss) or `wan` (the selector's defaults, safe
    /// between continents; for measuring them).
    #[arg(long, value_enum, default_value_t = RaftTimingChoice::Dev)]
    raft_timing: RaftTimingChoice,
    /// The emulated-WAN lab: each region stands for an AWS region, and
    /// octo datagrams between edges of two regions wait half the measured
    /// RTT between them (in user space: no netem needed); a participant
    /// the selector located (the page's `?location=lat,lon` or
    /// `?region=`, GeoIP otherwise) waits half the modelled RTT to its edge
    /// each way. The state file lists the emulated RTTs under `wan`.
    #[arg(long)]
    wan: bool,
    /// With --wan: extra one-way delay on access legs, uniform in
    /// [0, MS] per datagram.
    #[arg(long, value_name = "MS", default_value_t = 0.0, requires = "wan")]
    wan_jitter_ms: f64,
    /// With --wan: share of datagrams lost on each direction of an access
    /// leg, percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, requires = "wan")]
    wan_loss_pct: f64,
    /// Sessions each edge admits (its topology `capacity`: the selectors
    /// place by it and the edge refuses sessions beyond it). The default
    /// suits a laptop; capacity benchmarks raise it.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    edge_capacity: u32,
}

/// `--raft-timing`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RaftTimingChoice {
    Dev,
    Wan,
}

/// The dev regions: real coordinates (../shared/data/regions.csv) so that
/// GeoIP overrides and placement behave as in a real rollout.
/// `dev-sa` has no edge: an edge started there later (scale-out) takes
/// its participants, who until then go to the nearest other region.
const REGIONS: &[(&str, &str, f64, f64)] = &[
    ("dev-eu", "Frankfurt", 50.11, 8.68),
    ("dev-us", "Virginia", 39.04, -77.49),
    ("dev-ap", "Singapore", 1.35, 103.82),
    ("dev-sa", "Sao Paulo", -23.55, -46.63),
];

/// The edges and their regions: one region has two, so an edge can fail
/// and its participants stay in their region. The first two are in
/// different regions (scripts rely on it).
const EDGES: &[(&str, &str)] = &[
    ("edge-dev-eu-1", "dev-eu"),
    ("edge-dev-us-1", "dev-us"),
    ("edge-dev-ap-1", "dev-ap"),
    ("edge-dev-eu-2", "dev-eu"),
];

/// Three selector nodes (a Raft majority survives one loss), one per region.
const SELECTOR_REGIONS: &[&str] = &["dev-eu", "dev-us", "dev-ap"];

/// Port offsets from `--http-port`.
const EDGE_OFFSET: u16 = 10;
const RAFT_OFFSET: u16 = 30;
const DNS_OFFSET: u16 = 40;
/// From `--http-port`: past the selectors' DNS ports, inside this mesh's block of 50
/// (test harnesses give each mesh 50 ports).
const RECORDER_HTTP_OFFSET: u16 = 45;
/// From `--octo-port`: past the edges' octo ports.
const RECORDER_OCTO_OFFSET: u16 = 20;

/// The dev mesh's recorders, both writing to `<dir>/recordings`: two, so
/// a recording outlives its recorder here as in production.
const RECORDERS: &[(&str, &str)] = &[("rec-dev-1", "dev-eu"), ("rec-dev-2", "dev-us")];

/// Raft timing for one machine: a leader loss is repaired in about a
/// second (lease 700 ms + election 400–700 ms). The selector's defaults are
/// for selectors on different continents.
const DEV_RAFT: &[&str] = &[
    "--raft-heartbeat",
    "100ms",
    "--election-min",
    "400ms",
    "--election-max",
    "700ms",
];

/// Everyone on one machine shares 127.0.0.1: the per-address join rate
/// would limit the whole demo (tests, several tabs).
const DEV_LIMITS: &[&str] = &["--join-rate-per-address", "1000"];

/// `--state-file` contents. These keys are a contract: scripts read them.
#[derive(Serialize)]
struct State {
    regions: Vec<StateRegion>,
    edges: Vec<StateEdge>,
    selectors: Vec<StateSelector>,
    meeting_host: String,
    /// The meeting page (the first selector's `/`).
    meeting_url: String,
    token_key: PathBuf,
    certs_dir: PathBuf,
    /// The topology the mesh runs (for `geomesh` commands and extra edges).
    topology: PathBuf,
    /// Where the children's logs are.
    logs_dir: PathBuf,
    /// The operator's credentials (drain, listings, membership).
    operator: StateOperator,
    /// The emulated WAN, with `--wan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    wan: Option<super::dev_wan::StateWan>,
    /// The recorder's output directory (a directory per recording).
    recordings_dir: PathBuf,
    /// The recording nodes.
    recorders: Vec<StateRecorder>,
}

#[derive(Serialize)]
struct StateRecorder {
    id: String,
    region: String,
    /// Its HTTP API (`/healthz`, `/metrics`, `/v1/recordings`).
    url: String,
    pid: u32,
    log: PathBuf,
}

#[derive(Serialize)]
struct StateOperator {
    /// Send its contents as `Authorization: Bearer …` to the selectors' API.
    token_file: PathBuf,
    /// The operator certificate for the internal API (mutual TLS).
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Serialize)]
struct StateRegion {
    id: String,
    lat: f64,
    lon: f64,
}

#[derive(Serialize)]
struct StateEdge {
    id: String,
    region: String,
    url: String,
    pid: u32,
    log: PathBuf,
}

#[derive(Serialize)]
struct StateSelector {
    id: String,
    url: String,
    dns: String,
    pid: u32,
    log: PathBuf,
}

const MEETING_HOST: &str = "meet.geomesh.test";

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        // Edges move their participants before exiting (bounded by their
        // --drain-timeout, short here): give them that long.
        let deadline = Instant::now() + Duration::from_secs(8);
        for c in &mut self.0 {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write_state(path: &Path, state: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Starts `exe args…` with stdout and stderr appended to `log`, as a child
/// of this dev mesh (which is what lets `geomesh edge --dev` serve
/// `/dev/token` at all).
fn spawn_logged(exe: &Path, args: &[&std::ffi::OsStr], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    Command::new(exe)
        .args(args)
        .env(super::edge::DEV_CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

/// Waits until `ok()` or fails with `what` after `deadline`; stops early
/// when the child exited.
fn wait_until(
    what: &str,
    deadline: Instant,
    child: &mut Child,
    log: &Path,
    mut ok: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    while !ok() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{what}: the process exited ({status}); see {}",
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!("{what}: not within 60 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

impl Args {
    pub fn run(self, log_format: crate::logging::Format) -> anyhow::Result<ExitCode> {
        let (_tmp, dir) = match &self.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("geomesh-dev-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let dir = std::fs::canonicalize(&dir)?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let topo_path = dir.join("topology.yaml");
        std::fs::write(&topo_path, topology_yaml(&self))?;
        let topology = Topology::load(&topo_path)
            .map_err(|e| anyhow::anyhow!("generated topology is invalid: {e:?}"))?
            .topology;
        let wan = if self.wan {
            let impairments = super::dev_wan::Impairments {
                jitter_ms: self.wan_jitter_ms,
                loss_pct: self.wan_loss_pct,
            };
            Some(super::dev_wan::write(&topology, &dir, impairments)?)
        } else {
            None
        };
        let certs = topology.tls.dir.clone();
        credentials::init(&topology, &certs, true, SystemTime::now())?;
        if !self.host.is_loopback() {
            tracing::warn!(host = %self.host, "the dev mesh listens on a non-loopback address: anyone on this network can join (dev tokens, open joins)");
        }

        let exe = std::env::current_exe().context("locating the geomesh binary")?;
        let format = match log_format {
            crate::logging::Format::Pretty => "pretty",
            crate::logging::Format::Json => "json",
        };
        let mut children = Children(Vec::new());
        let mut selector_logs = Vec::new();
        for (i, sel) in topology.selectors.iter().enumerate() {
            let data = dir.join("selectors").join(sel.id.as_str());
            std::fs::create_dir_all(&data)?;
            let log = logs.join(format!("{}.log", sel.id));
            let mut args: Vec<&std::ffi::OsStr> = vec![
                "--log-format".as_ref(),
                format.as_ref(),
                "selector".as_ref(),
                "--id".as_ref(),
                sel.id.as_str().as_ref(),
                "--topology".as_ref(),
                topo_path.as_os_str(),
                "--certs".as_ref(),
                certs.as_os_str(),
                "--data".as_ref(),
                data.as_os_str(),
            ];
            if self.raft_timing == RaftTimingChoice::Dev {
                args.extend(DEV_RAFT.iter().map(|a| std::ffi::OsStr::new(*a)));
            }
            args.extend(DEV_LIMITS.iter().map(|a| std::ffi::OsStr::new(*a)));
            if self.wan {
                // The lab's edges delay participants by where they are.
                args.push("--token-location".as_ref());
            }
            // The first node initializes the cluster's membership.
            if i == 0 {
                args.push("--init".as_ref());
            }
            children.0.push(spawn_logged(&exe, &args, &log)?);
            selector_logs.push(log);
        }
        let mut edge_logs = Vec::new();
        for e in &topology.edges {
            let log = logs.join(format!("{}.log", e.id));
            let mut args: Vec<&std::ffi::OsStr> = vec![
                "--log-format".as_ref(),
                format.as_ref(),
                "edge".as_ref(),
                "--dev".as_ref(),
                "--id".as_ref(),
                e.id.as_str().as_ref(),
                "--topology".as_ref(),
                topo_path.as_os_str(),
                "--certs".as_ref(),
                certs.as_os_str(),
                "--drain-timeout".as_ref(),
                "5s".as_ref(),
            ];
            if let Some(file) = wan.as_ref().and_then(|w| w.files.get(e.id.as_str())) {
                args.extend(["--wan-delays".as_ref(), file.as_os_str()]);
            }
            children.0.push(spawn_logged(&exe, &args, &log)?);
            edge_logs.push(log);
        }
        let recordings_dir = dir.join("recordings");
        let mut recorder_logs = Vec::new();
        for r in &topology.recorders {
            let log = logs.join(format!("{}.log", r.id));
            let args: Vec<&std::ffi::OsStr> = vec![
                "--log-format".as_ref(),
                format.as_ref(),
                "recorder".as_ref(),
                "--id".as_ref(),
                r.id.as_str().as_ref(),
                "--topology".as_ref(),
                topo_path.as_os_str(),
                "--certs".as_ref(),
                certs.as_os_str(),
                "--out".as_ref(),
                recordings_dir.as_os_str(),
            ];
            children.0.push(spawn_logged(&exe, &args, &log)?);
            recorder_logs.push(log);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let n_sel = topology.selectors.len();
        let n_edges = topology.edges.len();
        {
            let (sels, rest) = children.0.split_at_mut(n_sel);
            let (edges, recorders) = rest.split_at_mut(n_edges);
            for ((r, c), log) in topology.recorders.iter().zip(recorders).zip(&recorder_logs) {
                wait_until(
                    &format!("recorder {} starting", r.id),
                    deadline,
                    c,
                    log,
                    || http_get(r.http, "/healthz").is_some_and(|b| b.contains("\"recorder\"")),
                )?;
            }
            for ((s, c), log) in topology.selectors.iter().zip(sels).zip(&selector_logs) {
                wait_until(
                    &format!("selector {} finding a Raft leader", s.id),
                    deadline,
                    c,
                    log,
                    || http_get(s.api, "/healthz").is_some_and(|b| b.contains("leader_id\":\"")),
                )?;
            }
            for ((e, c), log) in topology.edges.iter().zip(edges).zip(&edge_logs) {
                wait_until(
                    &format!("edge {} registering with the selectors", e.id),
                    deadline,
                    c,
                    log,
                    || {
                        http_get(e.http, "/healthz")
                            .is_some_and(|b| b.contains("\"registered\":true"))
                    },
                )?;
            }
        }
        // Heartbeats are soft state per selector node: wait until every node
        // has heard from every edge, so the first join can be placed anywhere.
        let all_healthy = format!("\"edges_healthy\":{}", topology.edges.len());
        for s in &topology.selectors {
            while !http_get(s.api, "/healthz").is_some_and(|b| b.contains(&all_healthy)) {
                if Instant::now() > deadline {
                    bail!(
                        "selector {} did not see every edge healthy within 60 s",
                        s.id
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let meeting_url = format!("http://{}/", topology.selectors[0].api);
        let state = State {
            regions: topology
                .regions
                .iter()
                .map(|r| StateRegion {
                    id: r.id.to_string(),
                    lat: r.location.lat,
                    lon: r.location.lon,
                })
                .collect(),
            edges: topology
                .edges
                .iter()
                .zip(&children.0[n_sel..])
                .zip(&edge_logs)
                .map(|((e, c), log)| StateEdge {
                    id: e.id.to_string(),
                    region: e.region.to_string(),
                    url: e.base_url(),
                    pid: c.id(),
                    log: log.clone(),
                })
                .collect(),
            selectors: topology
                .selectors
                .iter()
                .zip(&children.0)
                .zip(&selector_logs)
                .map(|((s, c), log)| StateSelector {
                    id: s.id.to_string(),
                    url: format!("http://{}", s.api),
                    dns: s.dns.map(|d| d.to_string()).unwrap_or_default(),
                    pid: c.id(),
                    log: log.clone(),
                })
                .collect(),
            meeting_host: MEETING_HOST.to_string(),
            meeting_url: meeting_url.clone(),
            token_key: topology.tls.token_key(),
            certs_dir: certs.clone(),
            topology: topo_path.clone(),
            logs_dir: logs.clone(),
            operator: StateOperator {
                token_file: topology.tls.operator_token(),
                cert: topology
                    .tls
                    .node_cert(geomesh_core::credentials::OPERATOR_ID),
                key: topology
                    .tls
                    .node_key(geomesh_core::credentials::OPERATOR_ID),
            },
            wan,
            recordings_dir: recordings_dir.clone(),
            recorders: topology
                .recorders
                .iter()
                .zip(&children.0[n_sel + n_edges..])
                .zip(&recorder_logs)
                .map(|((r, c), log)| StateRecorder {
                    id: r.id.to_string(),
                    region: r.region.to_string(),
                    url: format!("http://{}", r.http),
                    pid: c.id(),
                    log: log.clone(),
                })
                .collect(),
        };
        if let Some(p) = &self.state_file {
            write_state(p, &state)?;
        }
        // Operating commands (`geomesh drain`, …) find this mesh without flags.
        let current = super::operator::dev_state_path();
        write_state(&current, &state)?;
        println!("geomesh dev is running.");
        println!();
        println!(
            "  Open {meeting_url} in two browser tabs, enter the same conference name, and join."
        );
        println!(
            "  Pretend to be elsewhere: {meeting_url}?conference=demo&autojoin=1&region=dev-ap"
        );
        println!();
        println!(
            "  logs: {}   (topology and credentials in {}; Ctrl-C stops)",
            logs.display(),
            dir.display()
        );
        let mut monitor = Monitor::new(&topology);
        monitor.print_summary();

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let stop = super::shutdown_signal();
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tick.tick() => {
                        // Blocking loopback GETs with short time-outs: fine on this thread.
                        monitor.poll();
                    }
                }
            }
        });
        println!("stopping the dev mesh");
        drop(children);
        if let Some(p) = &self.state_file {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_file(&current);
        Ok(ExitCode::SUCCESS)
    }
}
