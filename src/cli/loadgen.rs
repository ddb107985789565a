//! `geomesh loadgen`: many str0m participants in this process against one or
//! more edges, and optionally the same load through a bare UDP relay (the
//! floor). Prints the figures; `--json-out` writes them as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use geomesh_loadgen::{Config, MediaConfig};

/// Load an edge with WebRTC participants (no browser) and measure it.
#[derive(clap::Args)]
pub struct Args {
    /// Edge base URL, e.g. http://127.0.0.1:8080 (repeat for several edges;
    /// conferences are spread over them round-robin).
    #[arg(long = "edge", value_name = "URL")]
    edges: Vec<String>,
    /// Conferences.
    #[arg(long, short = 'c', default_value_t = 1)]
    conferences: u32,
    /// Publishers per conference (WebSocket members: they send and receive).
    #[arg(long, short = 'p', default_value_t = 2)]
    publishers: u32,
    /// Receive-only participants per conference.
    #[arg(long, short = 's', default_value_t = 1)]
    subscribers: u32,
    /// How long publishers send, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Send three VP8 simulcast layers: rids q, h, f at 180p, 360p and 720p
    /// (150 and 500 kbit/s, libwebrtc's targets, then --video-kbps).
    #[arg(long)]
    simulcast: bool,
    /// VP8 bitrate of the top layer, kbit/s.
    #[arg(long, default_value_t = 1500)]
    video_kbps: u32,
    /// Send Opus too (20 ms frames).
    #[arg(long)]
    audio: bool,
    /// Mint join tokens with this key (token.key) instead of asking the
    /// edges' /dev/token (which only `geomesh dev` edges serve).
    #[arg(long, value_name = "FILE")]
    token_key: Option<PathBuf>,
    /// Also run the same load through a bare in-process UDP relay (no
    /// crypto, no RTP processing) and compare: the floor for the edge. Alone
    /// (no --edge), runs only the relay.
    #[arg(long)]
    relay_floor: bool,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// How long sessions may take to connect and negotiate before publishing starts anyway.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    setup_timeout: Duration,
    /// How long receivers keep counting after publishers stop.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Spacing between session starts (spreads DTLS handshakes).
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    ramp: Duration,
    /// Seed for frame sizes (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Names the run's conferences `lg-<RUN_ID>-<n>` (n from 0), so other
    /// tools can find them (default: 8 random hex digits). 1–32 of
    /// `[A-Za-z0-9_-]`.
    #[arg(long, value_parser = run_id)]
    run_id: Option<String>,
    /// Client threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Every session tells the edge it renders tiles this tall
    /// (`video_constraints.max_height`), so simulcast receivers get the
    /// layer a gallery view needs rather than the top one.
    #[arg(long)]
    tile_height: Option<u16>,
    /// Speaker view: every session also shows its conference's first
    /// publisher (the talker) on a stage this tall
    /// (`video_constraints.max_heights`); with --tile-height for the other
    /// tiles. On Janus and mediasoup (with --simulcast), the stage's
    /// publisher's video m-line gets the stage's substream, the others
    /// the tiles'.
    #[arg(long, value_name = "PX")]
    stage_height: Option<u16>,
    /// With --audio: only the first K publishers of each conference talk
    /// (Opus every 20 ms); the others are silent and send Opus DTX (one
    /// comfort-noise packet per 400 ms), as in a real meeting.
    #[arg(long, value_name = "K")]
    talkers: Option<u32>,
    /// Join every session through this selector's `POST /v1/join` (base
    /// URL, e.g. http://127.0.0.1:8090), as the meeting page does, and go
    /// to the edge it chooses; no --edge then. The report lists the
    /// placements under `placed`.
    #[arg(long, value_name = "URL")]
    selector: Option<String>,
    /// With --selector: where sessions say they are, `LAT,LON` (repeat:
    /// the k-th session of each conference, publishers first, takes the
    /// k-th location, cycling). In the `geomesh dev --wan` lab a located
    /// session also feels the modelled distance to its edge.
    #[arg(long = "at", value_name = "LAT,LON", value_parser = parse_location, allow_hyphen_values = true)]
    locations: Vec<geomesh_core::GeoPoint>,
    /// Run the same load through Janus's VideoRoom instead (its WebSocket
    /// API, e.g. ws://10.77.0.1:8188): the peer benchmark
    /// (scripts/bench-peers.sh). No --edge, --selector or --relay-floor.
    #[arg(long, value_name = "URL")]
    janus: Option<String>,
    /// Run the same load through the peer benchmark's mediasoup server
    /// instead (scripts/peers/mediasoup/server.mjs, e.g.
    /// ws://10.77.0.1:8288; it speaks the Janus API's VideoRoom subset).
    #[arg(long, value_name = "URL")]
    mediasoup: Option<String>,
    /// With --janus or --mediasoup: the server's process ids (repeat, or
    /// comma-separated), whose CPU time (/proc/PID/stat) the report's
    /// packets per CPU-second divide by.
    #[arg(long = "server-pid", value_name = "PID", value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Bind the sessions' UDP sockets to this address (default 127.0.0.1).
    /// Servers that gather no loopback candidates (Janus) need another.
    #[arg(long, value_name = "ADDR")]
    bind: Option<std::net::IpAddr>,
}

/// `LAT,LON` in degrees.
fn parse_location(s: &str) -> Result<geomesh_core::GeoPoint, String> {
    let (lat, lon) = s
        .split_once(',')
        .ok_or_else(|| format!("{s}: expected LAT,LON"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|e| format!("{s}: {v}: {e}"))
    };
    geomesh_core::GeoPoint::new(num(lat)?, num(lon)?).map_err(|e| format!("{s}: {e}"))
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let cfg = Config {
            edges: self.edges,
            conferences: self.conferences,
            publishers: self.publishers,
            subscribers: self.subscribers,
            duration: self.duration,
            media: MediaConfig {
                video_kbps: self.video_kbps,
                simulcast: self.simulcast,
                audio: self.audio,
            },
            token_key: self.token_key,
            relay_floor: self.relay_floor,
            setup_timeout: self.setup_timeout,
            drain: self.drain,
            ramp: self.ramp,
            seed: self.seed,
            tile_height: self.tile_height,
            stage_height: self.stage_height,
            talkers: self.talkers,
            selector: self.selector,
            locations: self.locations,
            run_id: self.run_id,
            janus: self.janus,
            mediasoup: self.mediasoup,
            server_pids: self.server_pid,
            bind: self.bind,
        };
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.threads {
            rt.worker_threads(n.max(1));
        }
        let rt = rt.enable_all().build()?;
        let outcome = rt.block_on(geomesh_loadgen::run(&cfg))?;
        print!("{outcome}");
        if let Some(p) = &self.json_out {
            std::fs::write(p, serde_json::to_vec_pretty(&outcome)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        // A run where no session connected measured nothing: say so in the exit code.
        let nothing = [&outcome.edge, &outcome.relay_floor, &outcome.peer]
            .into_iter()
            .flatten()
            .any(|r| r.sessions.connected == 0);
        if nothing {
            eprintln!("error: no session connected; nothing was measured");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn run_id(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s.to_string())
    } else {
        Err("1–32 of [A-Za-z0-9_-]".into())
    }
}
