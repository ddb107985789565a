//! A whole run: plan the sessions, start them, wait until they are set up,
//! sample the server, publish for the duration, drain, sample again, stop,
//! and build the report. The same phases drive the edge run and the
//! relay-floor run.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use geomesh_core::GeoPoint;
use tracing::{info, warn};

use crate::edge_api::{EdgeApi, EdgeSample};
use crate::error::LoadgenError;
use crate::harness::{collect, harness, publish, wait_setup};
use crate::joining::{direct, through_selector};
use crate::plan::{SessionEvent, SessionPlan, SessionResult};
use crate::relay::{Relay, RelayTable};
use crate::report::{Comparison, Outcome, Report, RunShape, Server};
use crate::sockdrops;
use crate::source::MediaConfig;

/// Most sessions one run may plan.
pub const MAX_SESSIONS: u64 = 5000;
/// Longest publishing duration.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Edge base URLs; conferences are spread over them round-robin.
    pub edges: Vec<String>,
    /// Conferences.
    pub conferences: u32,
    /// Publishers per conference (they receive too).
    pub publishers: u32,
    /// Receive-only participants per conference.
    pub subscribers: u32,
    /// How long publishers send.
    pub duration: Duration,
    /// What publishers send.
    pub media: MediaConfig,
    /// Mint tokens with this key instead of asking `/dev/token`.
    pub token_key: Option<PathBuf>,
    /// Also run the same load through the bare relay.
    pub relay_floor: bool,
    /// How long sessions may take to connect and negotiate.
    pub setup_timeout: Duration,
    /// How long receivers keep counting after publishers stop.
    pub drain: Duration,
    /// Spacing between session starts (spreads the DTLS handshakes).
    pub ramp: Duration,
    /// Seed for frame sizes.
    pub seed: u64,
    /// Tile height every session announces (None: no constraint).
    pub tile_height: Option<u16>,
    /// Speaker view: every session shows its conference's first publisher
    /// (the talker; the first publisher itself shows the second) on a
    /// stage this tall, the other tiles at `tile_height`.
    pub stage_height: Option<u16>,
    /// Publishers per conference that talk (the first ones); the others'
    /// audio is Opus DTX. `None`: everyone talks.
    pub talkers: Option<u32>,
    /// Join every session through this selector (`POST /v1/join`) instead
    /// of going to `edges` directly: it chooses each session's edge.
    pub selector: Option<String>,
    /// With `selector`: where sessions say they are. The k-th session of
    /// each conference (publishers first) is at `locations[k % len]`;
    /// empty: no hint (the selector locates them by address).
    pub locations: Vec<GeoPoint>,
    /// The run's id: conferences are `lg-<id>-<n>` (default: random).
    pub run_id: Option<String>,
    /// Run the load through Janus (its WebSocket API URL) instead: the
    /// peer benchmark ([`crate::peers`]).
    pub janus: Option<String>,
    /// Run the load through the peer benchmark's mediasoup server instead
    /// (its WebSocket URL; it speaks the Janus API's VideoRoom subset).
    pub mediasoup: Option<String>,
    /// The peer server's processes, whose CPU time (`/proc/PID/stat`) the
    /// report divides by (mediasoup: the worker and the Node process).
    pub server_pids: Vec<u32>,
    /// Address the sessions' UDP sockets bind to (default 127.0.0.1; the
    /// peer benchmark's namespace address, where loopback is not gathered).
    pub bind: Option<std::net::IpAddr>,
}

impl Config {
    fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |m: &str| Err(LoadgenError::Config(m.to_string()));
        if self.janus.is_some() || self.mediasoup.is_some() {
            if !self.edges.is_empty()
                || self.selector.is_some()
                || self.relay_floor
                || self.janus.is_some() && self.mediasoup.is_some()
            {
                return bad(
                    "--janus or --mediasoup runs the load through that server alone: no --edge, --selector, --relay-floor or other peer with it",
                );
            }
        } else if self.edges.is_empty() && self.selector.is_none() && !self.relay_floor {
            return bad(
                "give at least one --edge, a --selector, --relay-floor, --janus or --mediasoup",
            );
        }
        if self.selector.is_some() && !self.edges.is_empty() {
            return bad("--selector chooses the edges: give no --edge with it");
        }
        if !self.locations.is_empty() && self.selector.is_none() {
            return bad("--at needs --selector (only a selector places by location)");
        }
        if self.conferences == 0 || self.publishers == 0 {
            return bad("need at least one conference and one publisher");
        }
        let sessions = u64::from(self.conferences)
            * (u64::from(self.publishers) + u64::from(self.subscribers));
        if sessions > MAX_SESSIONS {
            return bad(&format!(
                "{sessions} sessions planned; at most {MAX_SESSIONS}"
            ));
        }
        if u64::from(self.conferences) * u64::from(self.publishers) >= 1 << 20 {
            return bad("too many publishers");
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return bad("duration must be between 1 ms and 1 h");
        }
        if self.media.video_kbps == 0 || self.media.video_kbps > 50_000 {
            return bad("video bitrate must be 1–50,000 kbit/s");
        }
        Ok(())
    }

    pub(crate) fn shape(
        &self,
        target: &str,
        endpoints: Vec<String>,
        publish_s: f64,
        window_s: f64,
    ) -> RunShape {
        RunShape {
            target: target.into(),
            endpoints,
            conferences: self.conferences,
            publishers: self.publishers,
            subscribers: self.subscribers,
            simulcast: self.media.simulcast,
            video_kbps: self.media.video_kbps,
            audio: self.media.audio,
            talkers: self.talkers,
            tile_height: self.tile_height,
            stage_height: self.stage_height,
            publish_s,
            window_s,
        }
    }
}

/// Every session of a run, conference by conference, publishers first.
pub fn plan(cfg: &Config, run_id: &str, edges: usize) -> Vec<SessionPlan> {
    let (p, s) = (cfg.publishers as usize, cfg.subscribers as usize);
    let kinds = 1 + usize::from(cfg.media.audio);
    let mut plans = Vec::with_capacity(cfg.conferences as usize * (p + s));
    for c in 0..cfg.conferences as usize {
        let sources: Vec<u32> = (0..p).map(|i| (c * p + i) as u32).collect();
        let conference_id = format!("lg-{run_id}-{c}");
        for i in 0..p + s {
            let source = (i < p).then(|| sources[i]);
            let receives: Vec<u32> = sources
                .iter()
                .copied()
                .filter(|x| Some(*x) != source)
                .collect();
            plans.push(SessionPlan {
                index: plans.len(),
                conference: c,
                conference_id: conference_id.clone(),
                name: if i < p {
                    format!("pub{i}")
                } else {
                    format!("sub{}", i - p)
                },
                edge: c % edges.max(1),
                source,
                expected_tracks: receives.len() * kinds,
                receives,
                tile_height: cfg.tile_height,
                stage: cfg
                    .stage_height
                    .map(|h| (if i == 0 { "pub1" } else { "pub0" }.to_string(), h)),
                talks: cfg.talkers.is_none_or(|k| (i as u32) < k),
            });
        }
    }
    plans
}

pub(crate) fn run_id() -> String {
    let mut b = [0u8; 4];
    // A fixed id only risks clashing with a concurrent run's conference names.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// CPU seconds of this process (all threads).
pub(crate) fn process_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0.0,
    }
}

/// Runs everything `cfg` asks for.
pub async fn run(cfg: &Config) -> Result<Outcome, LoadgenError> {
    cfg.validate()?;
    let peer = match (&cfg.janus, &cfg.mediasoup) {
        (Some(url), _) => Some(("janus", url)),
        (_, Some(url)) => Some(("mediasoup", url)),
        _ => None,
    };
    if let Some((server, url)) = peer {
        return Ok(Outcome {
            peer: Some(crate::peers::run_peer(cfg, server, url).await?),
            ..Outcome::default()
        });
    }
    let edge = if cfg.edges.is_empty() && cfg.selector.is_none() {
        None
    } else {
        Some(run_edge(cfg).await?)
    };
    let relay_floor = if cfg.relay_floor {
        Some(run_relay(cfg).await?)
    } else {
        None
    };
    let comparison = match (&edge, &relay_floor) {
        (Some(e), Some(r)) => Some(Comparison::of(e, r)),
        _ => None,
    };
    Ok(Outcome {
        edge,
        relay_floor,
        comparison,
        peer: None,
    })
}

async fn sample_all(apis: &[EdgeApi]) -> Vec<Option<EdgeSample>> {
    let mut v = Vec::with_capacity(apis.len());
    for a in apis {
        match a.sample().await {
            Ok(s) => v.push(Some(s)),
            Err(e) => {
                warn!("metrics of {}: {e}", a.base());
                v.push(None);
            }
        }
    }
    v
}

/// Sums after − before over the edges; `None` if any edge lacks the figure.
fn delta(
    before: &[Option<EdgeSample>],
    after: &[Option<EdgeSample>],
    f: impl Fn(&EdgeSample) -> Option<f64>,
) -> Option<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Some(f(a.as_ref()?)? - f(b.as_ref()?)?))
        .sum()
}

/// Kernel drops at the server's and the clients' sockets over the window.
pub(crate) fn socket_drops(
    results: &[SessionResult],
    before: &HashMap<u16, u64>,
    after: &HashMap<u16, u64>,
) -> (Option<u64>, u64) {
    let servers: HashSet<u16> = results.iter().filter_map(|r| r.server_port).collect();
    let server = (!servers.is_empty() && servers.iter().all(|p| after.contains_key(p)))
        .then(|| sockdrops::delta(before, after, servers));
    let client = sockdrops::delta(before, after, results.iter().filter_map(|r| r.local_port));
    (server, client)
}

async fn run_edge(cfg: &Config) -> Result<Report, LoadgenError> {
    let run = cfg.run_id.clone().unwrap_or_else(run_id);
    let (apis, plans, tokens, placed) = match &cfg.selector {
        Some(sel) => through_selector(cfg, sel, &run).await?,
        None => {
            let (apis, plans, tokens) = direct(cfg, &run).await?;
            (apis, plans, tokens, Vec::new())
        }
    };
    info!(
        sessions = plans.len(),
        edges = apis.len(),
        "starting edge run"
    );
    let mut h = harness(cfg, plans.len());
    let mut handles = Vec::with_capacity(plans.len());
    for (p, token) in plans.iter().zip(tokens) {
        let env = h.env.clone();
        let ws = apis[p.edge].ws_url();
        let p = p.clone();
        let delay = cfg.ramp * p.index as u32;
        handles.push(tokio::spawn(async move {
            match token {
                Ok(t) => {
                    tokio::time::sleep(delay).await;
                    let target = crate::session::Target::Edge {
                        ws_url: ws,
                        token: t,
                    };
                    crate::session::run(p, target, env).await
                }
                Err(why) => {
                    let _ = env.events.send(SessionEvent::Failed(p.index, why.clone()));
                    SessionResult {
                        index: p.index,
                        failure: Some(why),
                        ..Default::default()
                    }
                }
            }
        }));
    }
    let ready = wait_setup(
        &mut h,
        plans.len(),
        cfg.setup_timeout + cfg.ramp * plans.len() as u32,
    )
    .await;
    let before = sample_all(&apis).await;
    let drops0 = sockdrops::drops_by_port();
    let cpu0 = process_cpu_seconds();
    let (start, end) = publish(&h, cfg).await;
    let after = sample_all(&apis).await;
    let drops1 = sockdrops::drops_by_port();
    let loadgen_cpu = process_cpu_seconds() - cpu0;
    let window_end = Instant::now();
    let results = collect(&h, handles).await;
    let (server_drops, client_drops) = socket_drops(&results, &drops0, &drops1);
    let server = Server {
        cpu_seconds: delta(&before, &after, |s| s.cpu_seconds),
        datagrams_out: delta(&before, &after, |s| Some(s.datagrams_out)),
        datagrams_in: delta(&before, &after, |s| Some(s.datagrams_in)),
        socket_drops: server_drops,
        ..Default::default()
    };
    let shape = cfg.shape(
        "edge",
        apis.iter().map(|a| a.base().to_string()).collect(),
        (end - start).as_secs_f64(),
        (window_end - start).as_secs_f64(),
    );
    let mut report = Report::build(shape, &plans, &results, server, loadgen_cpu);
    report.sessions.ready = ready as u64;
    report.client_socket_drops = client_drops;
    report.placed = placed;
    Ok(report)
}

async fn run_relay(cfg: &Config) -> Result<Report, LoadgenError> {
    let run = cfg.run_id.clone().unwrap_or_else(run_id);
    let plans = plan(cfg, &run, 1);
    let relay_sock =
        std::net::UdpSocket::bind("127.0.0.1:0").map_err(LoadgenError::io("relay socket"))?;
    let mut socks = Vec::with_capacity(plans.len());
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(plans.len());
    for _ in &plans {
        let s =
            std::net::UdpSocket::bind("127.0.0.1:0").map_err(LoadgenError::io("client socket"))?;
        s.set_nonblocking(true)
            .map_err(LoadgenError::io("client socket"))?;
        crate::plan::enlarge_rcvbuf(&s);
        addrs.push(s.local_addr().map_err(LoadgenError::io("client socket"))?);
        socks.push(s);
    }
    // Each publisher's datagrams go to everyone else in its conference.
    let mut table = RelayTable::new();
    for p in plans.iter().filter(|p| p.source.is_some()) {
        let to = plans
            .iter()
            .filter(|q| q.conference == p.conference && q.index != p.index)
            .map(|q| addrs[q.index])
            .collect();
        table.insert(addrs[p.index], to);
    }
    let mut h = harness(cfg, plans.len());
    let relay = Relay::start(relay_sock, table, h.env.deadline)?;
    let relay_addr = relay.addr();
    info!(sessions = plans.len(), %relay_addr, "starting relay-floor run");
    let mut handles = Vec::with_capacity(plans.len());
    for (p, s) in plans.iter().zip(socks) {
        let env = h.env.clone();
        let p = p.clone();
        let sock = tokio::net::UdpSocket::from_std(s).map_err(LoadgenError::io("client socket"))?;
        handles.push(tokio::spawn(crate::bare::run(p, sock, relay_addr, env)));
    }
    let ready = wait_setup(&mut h, plans.len(), cfg.setup_timeout).await;
    relay.start_measuring();
    let drops0 = sockdrops::drops_by_port();
    let cpu0 = process_cpu_seconds();
    let (start, end) = publish(&h, cfg).await;
    let drops1 = sockdrops::drops_by_port();
    let stats = relay.stop();
    let loadgen_cpu = (process_cpu_seconds() - cpu0 - stats.cpu_seconds).max(0.0);
    let window_end = Instant::now();
    let results = collect(&h, handles).await;
    let (server_drops, client_drops) = socket_drops(&results, &drops0, &drops1);
    let server = Server {
        cpu_seconds: Some(stats.cpu_seconds),
        datagrams_out: Some(stats.forwarded as f64),
        datagrams_in: Some(stats.received as f64),
        socket_drops: server_drops,
        ..Default::default()
    };
    let shape = cfg.shape(
        "relay",
        vec![relay_addr.to_string()],
        (end - start).as_secs_f64(),
        (window_end - start).as_secs_f64(),
    );
    let mut report = Report::build(shape, &plans, &results, server, loadgen_cpu);
    report.sessions.ready = ready as u64;
    report.client_socket_drops = client_drops;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(c: u32, p: u32, s: u32, audio: bool) -> Config {
        Config {
            edges: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            conferences: c,
            publishers: p,
            subscribers: s,
            duration: Duration::from_secs(5),
            media: MediaConfig {
                video_kbps: 1500,
                simulcast: false,
                audio,
            },
            token_key: None,
            relay_floor: false,
            setup_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(1),
            ramp: Duration::ZERO,
            seed: 1,
            tile_height: None,
            stage_height: None,
            talkers: None,
            selector: None,
            locations: Vec::new(),
            run_id: None,
            janus: None,
            mediasoup: None,
            server_pids: Vec::new(),
            bind: None,
        }
    }

    #[test]
    fn plans_every_conference_publishers_first() {
        let plans = plan(&cfg(3, 2, 1, true), "x", 2);
        assert_eq!(plans.len(), 9);
        let p0 = &plans[0];
        assert_eq!((p0.name.as_str(), p0.source, p0.edge), ("pub0", Some(0), 0));
        assert_eq!(p0.receives, vec![1]);
        assert_eq!(p0.expected_tracks, 2);
        let sub = &plans[2];
        assert_eq!((sub.name.as_str(), sub.source), ("sub0", None));
        assert_eq!(sub.receives, vec![0, 1]);
        assert_eq!(sub.expected_tracks, 4);
        // Conference 1 goes to the second edge, with its own sources.
        assert_eq!(
            (
                plans[3].edge,
                plans[3].source,
                plans[3].conference_id.as_str()
            ),
            (1, Some(2), "lg-x-1")
        );
        assert!(plans.iter().enumerate().all(|(i, p)| p.index == i));
    }

    #[test]
    fn refuses_runs_it_cannot_do() {
        assert!(cfg(1, 2, 1, false).validate().is_ok());
        assert!(cfg(0, 2, 1, false).validate().is_err());
        assert!(cfg(1, 0, 1, false).validate().is_err());
        assert!(
            cfg(100, 30, 30, false).validate().is_err(),
            "6,000 sessions"
        );
        let mut c = cfg(1, 1, 1, false);
        c.edges.clear();
        assert!(c.validate().is_err());
        c.relay_floor = true;
        assert!(c.validate().is_ok());
        // Through a selector: it chooses the edges, and only it places by
        // location.
        let mut c = cfg(1, 1, 1, false);
        c.locations = vec![GeoPoint::new(48.86, 2.35).unwrap()];
        assert!(c.validate().is_err(), "--at without --selector");
        c.selector = Some("http://127.0.0.1:3".into());
        assert!(c.validate().is_err(), "--selector with --edge");
        c.edges.clear();
        assert!(c.validate().is_ok());
        // A peer server runs alone: no edge, and one peer at a time.
        let mut c = cfg(1, 1, 1, false);
        c.mediasoup = Some("ws://10.77.0.1:8288".into());
        assert!(c.validate().is_err(), "--mediasoup with --edge");
        c.edges.clear();
        assert!(c.validate().is_ok());
        c.janus = Some("ws://10.77.0.1:8188".into());
        assert!(c.validate().is_err(), "--janus with --mediasoup");
    }

    #[test]
    fn sums_metric_deltas_over_edges() {
        let s = |cpu, out| {
            Some(EdgeSample {
                cpu_seconds: Some(cpu),
                datagrams_out: out,
                ..Default::default()
            })
        };
        let before = vec![s(1.0, 10.0), s(2.0, 20.0)];
        let after = vec![s(1.5, 110.0), s(3.0, 70.0)];
        assert_eq!(delta(&before, &after, |x| x.cpu_seconds), Some(1.5));
        assert_eq!(
            delta(&before, &after, |x| Some(x.datagrams_out)),
            Some(150.0)
        );
        let missing = vec![s(1.0, 10.0), None];
        assert_eq!(delta(&missing, &after, |x| x.cpu_seconds), None);
    }
}
