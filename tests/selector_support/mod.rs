//! Shared by the `selector_*` integration tests: a loopback cluster of real
//! `geomesh selector` processes, and an edge-agent test client speaking the
//! internal mutual-TLS API with certificates from `geomesh certs init`.
//!
//! Every process is killed when the [`Cluster`] is dropped, even when a test
//! fails; every wait is bounded.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_core::agent::{Heartbeat, RegisterResponse};
use geomesh_core::topology::TlsSettings;
use geomesh_selector::raft::{CallError, PeerClient};
use geomesh_selector::tls::NodeTls;
use serde_json::Value;

pub const EXE: &str = env!("CARGO_BIN_EXE_geomesh");

/// Edges of the test topology: (id, region, public IP).
pub const EDGES: &[(&str, &str, &str)] = &[
    ("edge-eu", "eu", "192.0.2.1"),
    ("edge-us", "us", "192.0.2.2"),
    ("edge-ap", "ap", "192.0.2.3"),
];

/// Recorders of [`Cluster::with_recorders`]: id, region.
pub const RECORDERS: &[(&str, &str)] = &[("rec-eu", "eu"), ("rec-ap", "ap")];

/// Ports handed out by this test process (never twice, TCP or UDP).
static USED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn fresh(mut pick: impl FnMut() -> u16) -> u16 {
    for _ in 0..1000 {
        let p = pick();
        if USED.lock().unwrap().insert(p) {
            return p;
        }
    }
    panic!("no fresh port");
}

/// A free loopback TCP port (released: a small race is accepted), never
/// one this process handed out before.
pub fn free_tcp() -> u16 {
    fresh(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// A free loopback UDP port, never one this process handed out before.
pub fn free_udp() -> u16 {
    fresh(|| {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

pub struct SelectorSpec {
    pub id: String,
    pub api: SocketAddr,
    pub raft: SocketAddr,
    pub dns: SocketAddr,
    pub data: PathBuf,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub topology: PathBuf,
    pub certs: PathBuf,
    pub selectors: Vec<SelectorSpec>,
    procs: Vec<Option<Child>>,
    /// Extra flags for every selector process.
    pub flags: Vec<String>,
    /// The partition file every process follows (see [`Cluster::cut`]).
    pub partitions: PathBuf,
}

impl Cluster {
    /// Writes a topology with `n` selectors (1, 3 or 5) and the [`EDGES`],
    /// and creates credentials with `geomesh certs init`.
    pub fn new(n: usize) -> Self {
        Self::with_capacity(n, 1000)
    }

    /// As [`Cluster::new`], every edge with this capacity (unconfirmed
    /// placements per edge are bounded by it).
    pub fn with_capacity(n: usize, capacity: u32) -> Self {
        Self::build(n, capacity, "")
    }

    /// As [`Cluster::new`], with [`RECORDERS`] in the topology (a
    /// recording each).
    pub fn with_recorders(n: usize) -> Self {
        let mut y = String::from("recorders:\n");
        for (id, region) in RECORDERS {
            y += &format!(
                "  - {{ id: {id}, region: {region}, http: 127.0.0.1:{}, octo: 127.0.0.1:{}, capacity: 1 }}\n",
                free_tcp(),
                free_udp()
            );
        }
        Self::build(n, 1000, &y)
    }

    fn build(n: usize, capacity: u32, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut y = String::from(
            "version: 1\ncluster: { name: test, domain: meet.test }\n\
             policy: { heartbeat_interval: 200ms, health_timeout: 1s }\n\
             tls: { dir: certs }\n\
             access:\n\
             \x20 keys: [{ id: test-app, secret_file: grant.secret }]\n\
             \x20 operator_token_file: operator.token\n\
             geoip:\n  overrides:\n\
             \x20   - { cidr: 127.0.0.0/8, region: eu }\n\
             \x20   - { cidr: 198.51.100.0/24, region: us }\n\
             \x20   - { cidr: 203.0.113.0/24, region: ap }\n\
             regions:\n\
             \x20 - { id: eu, name: Frankfurt, location: { lat: 50.11, lon: 8.68 }, provider: local, provider_region: x }\n\
             \x20 - { id: us, name: Ashburn, location: { lat: 39.04, lon: -77.49 }, provider: local, provider_region: x }\n\
             \x20 - { id: ap, name: Tokyo, location: { lat: 35.68, lon: 139.69 }, provider: local, provider_region: x }\n\
             edges:\n",
        );
        for (id, region, ip) in EDGES {
            y += &format!(
                "  - {{ id: {id}, region: {region}, public_ip: {ip}, http: 127.0.0.1:{}, octo: 127.0.0.1:{}, capacity: {capacity} }}\n",
                free_tcp(),
                free_udp()
            );
        }
        y += "selectors:\n";
        let regions = ["eu", "us", "ap", "eu", "us"];
        let mut selectors = Vec::new();
        for (i, region) in regions.iter().enumerate().take(n) {
            let s = SelectorSpec {
                id: format!("sel-{}", i + 1),
                api: SocketAddr::from(([127, 0, 0, 1], free_tcp())),
                raft: SocketAddr::from(([127, 0, 0, 1], free_tcp())),
                dns: SocketAddr::from(([127, 0, 0, 1], free_udp())),
                data: dir.path().join(format!("data-{}", i + 1)),
            };
            y += &format!(
                "  - {{ id: {}, region: {}, api: {}, raft: {}, dns: {} }}\n",
                s.id, region, s.api, s.raft, s.dns
            );
            selectors.push(s);
        }
        y += extra;
        let topology = dir.path().join("topology.yaml");
        std::fs::write(&topology, y).unwrap();
        let certs = dir.path().join("certs");
        let out = Command::new(EXE)
            .args(["certs", "init", "--topology"])
            .arg(&topology)
            .arg("--out")
            .arg(&certs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "certs init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.path().join("grant.secret"), grant_secret()).unwrap();
        std::fs::write(dir.path().join("operator.token"), operator_token()).unwrap();
        let procs = (0..n).map(|_| None).collect();
        let partitions = dir.path().join("partitions");
        Self {
            partitions,
            dir,
            topology,
            certs,
            selectors,
            procs,
            flags: vec![
                "--raft-heartbeat".into(),
                "50ms".into(),
                "--election-min".into(),
                "300ms".into(),
                "--election-max".into(),
                "600ms".into(),
                "--edge-lease".into(),
                "600s".into(),
                // Every test client is 127.0.0.1: the flood test sets its own.
                "--join-rate-per-address".into(),
                "1000000".into(),
                "--join-rate-per-conference".into(),
                "1000000".into(),
            ],
        }
    }

    /// Starts every node, waits for a leader, registers the [`EDGES`] and
    /// heartbeats them until the returned task is aborted.
    pub async fn up(&mut self) -> (reqwest::Client, tokio::task::JoinHandle<()>) {
        self.start_all();
        let http = http();
        let leader = self.wait_leader(&http, Duration::from_secs(30)).await;
        let agents = register_edges(self, leader).await;
        let hb = spawn_heartbeats(agents);
        tokio::time::sleep(Duration::from_millis(300)).await;
        (http, hb)
    }

    /// Drops the test's join-rate overrides: the selectors' defaults apply.
    pub fn default_join_limits(&mut self) {
        for flag in ["--join-rate-per-address", "--join-rate-per-conference"] {
            if let Some(i) = self.flags.iter().position(|f| f == flag) {
                self.flags.drain(i..i + 2);
            }
        }
    }

    /// Starts selector `i` (the first start with `init` initializes membership).
    pub fn start(&mut self, i: usize, init: bool) {
        assert!(self.procs[i].is_none(), "selector {i} already running");
        let s = &self.selectors[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", s.id)))
            .unwrap();
        let mut cmd = Command::new(EXE);
        cmd.args(["selector", "--id", &s.id])
            .arg("--topology")
            .arg(&self.topology)
            .arg("--certs")
            .arg(&self.certs)
            .arg("--data")
            .arg(&s.data)
            .args(&self.flags)
            .env(
                "RUST_LOG",
                std::env::var("GEOMESH_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .env(geomesh_selector::raft::partitions::ENV, &self.partitions)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if init {
            cmd.arg("--init");
        }
        self.procs[i] = Some(cmd.spawn().unwrap());
    }

    /// Starts every selector, the first with `--init`.
    pub fn start_all(&mut self) {
        for i in 0..self.selectors.len() {
            self.start(i, i == 0);
        }
    }

    /// Cuts the links between these pairs of selectors (indexes), both
    /// directions, replacing any earlier cuts; `&[]` heals every cut. The
    /// processes see it within 20 ms.
    pub fn cut(&self, pairs: &[(usize, usize)]) {
        let text: String = pairs
            .iter()
            .map(|&(a, b)| format!("{} {}\n", self.selectors[a].id, self.selectors[b].id))
            .collect();
        let tmp = self.partitions.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.partitions).unwrap();
    }

    /// Cuts selector `i` off from every other.
    pub fn isolate(&self, i: usize) {
        let pairs: Vec<(usize, usize)> = (0..self.selectors.len())
            .filter(|&j| j != i)
            .map(|j| (i, j))
            .collect();
        self.cut(&pairs);
    }

    /// SIGKILLs selector `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.procs[i].is_some()
    }

    pub fn api(&self, i: usize) -> String {
        format!("http://{}", self.selectors[i].api)
    }

    /// The log of selector `i` (for failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}.log", self.selectors[i].id)),
        )
        .unwrap_or_default()
    }

    /// Every node's log lines about releasing participants (for failure
    /// messages of tests that expect none lost).
    pub fn releases(&self) -> String {
        let mut out = String::new();
        for i in 0..self.selectors.len() {
            for line in self.log(i).lines().filter(|l| l.contains("releas")) {
                out += &format!("{}: {line}\n", self.selectors[i].id);
            }
        }
        out
    }

    /// Tail of every log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.selectors.len() {
            let l = self.log(i);
            let tail: Vec<&str> = l.lines().rev().take(30).collect();
            out += &format!("--- {} ---\n", self.selectors[i].id);
            for line in tail.into_iter().rev() {
                out += line;
                out.push('\n');
            }
        }
        out
    }

    /// Waits until every running node names the same leader; its index.
    pub async fn wait_leader(&self, http: &reqwest::Client, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for i in 0..self.selectors.len() {
                if !self.is_running(i) {
                    continue;
                }
                let h = get_json(http, &format!("{}/healthz", self.api(i))).await;
                leaders.push(h.and_then(|h| h["leader_id"].as_str().map(String::from)));
            }
            if let Some(Some(l)) = leaders.first()
                && leaders.iter().all(|x| x.as_deref() == Some(l.as_str()))
            {
                let idx = self.selectors.iter().position(|s| &s.id == l).unwrap();
                if self.is_running(idx) {
                    return idx;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}: {leaders:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// TLS material of a node or edge of this cluster.
    pub fn node_tls(&self, id: &str) -> NodeTls {
        NodeTls::load(
            &TlsSettings {
                dir: self.certs.clone(),
            },
            id,
        )
        .unwrap()
    }

    /// An internal-API client presenting `as_id`'s certificate to selector `i`.
    pub fn internal_client(&self, as_id: &str, i: usize) -> PeerClient {
        let tls = self.node_tls(as_id);
        let s = &self.selectors[i];
        PeerClient::new(&tls.client, &s.id, s.raft).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

/// A plain HTTP client for the public API.
pub fn http() -> reqwest::Client {
    // As `main` does: one process-wide provider (reqwest's plain-HTTP
    // client asks for the default one).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A client of the public API from source address `ip` (any 127/8 address
/// is loopback): for limits that count per client address.
pub fn http_from(ip: [u8; 4]) -> reqwest::Client {
    let _ = http();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(ip))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The Prometheus text of selector `api`'s `GET /metrics`.
pub async fn metrics_text(http: &reqwest::Client, api: &str) -> String {
    http.get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The test application's HS256 secret (every cluster of this process).
pub fn grant_secret() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut b = [0u8; 24];
        getrandom::fill(&mut b).unwrap();
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

/// The operator token of every cluster of this process.
pub fn operator_token() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).unwrap();
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

/// A grant from the test application: `conference`, as `participant`.
pub fn grant(conference: &str, participant: &str) -> String {
    use geomesh_core::grant::{GrantClaims, GrantSigner};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    GrantSigner::hs256("test-app", grant_secret().as_bytes()).sign(&GrantClaims {
        sub: participant.parse().unwrap(),
        conf: conference.parse().unwrap(),
        name: None,
        publish: true,
        subscribe: true,
        exp: now + 600,
        iat: Some(now),
        nbf: None,
    })
}

/// GET and parse JSON as the operator; `None` on any failure.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http
        .get(url)
        .header("authorization", format!("Bearer {}", operator_token()))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// POST JSON; status and parsed body (Null when not JSON); `None` when the
/// request did not complete. As the cluster's application would: a join
/// (`/v1/join`, a body with a `conference`) carries a grant for its
/// `participant` (a fresh id when it names none); anything else is sent
/// as the operator.
pub async fn post_json(http: &reqwest::Client, url: &str, body: &str) -> Option<(u16, Value)> {
    let auth = match serde_json::from_str::<Value>(body) {
        Ok(v)
            if url.ends_with("/v1/join")
                && v["conference"].is_string()
                && v["rejoin_secret"].is_null() =>
        {
            let who = v["participant"].as_str().map_or_else(
                || {
                    let mut b = [0u8; 6];
                    getrandom::fill(&mut b).unwrap();
                    format!(
                        "p-{}",
                        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                    )
                },
                str::to_string,
            );
            // A participant id the grammar refuses gets no grant: the
            // selector's own refusal is what the test looks at.
            match (
                v["conference"]
                    .as_str()
                    .unwrap()
                    .parse::<geomesh_core::ConferenceId>(),
                who.parse::<geomesh_core::ParticipantId>(),
            ) {
                (Ok(_), Ok(_)) => Some(grant(v["conference"].as_str().unwrap(), &who)),
                _ => None,
            }
        }
        _ if url.ends_with("/v1/join") => None,
        _ => Some(operator_token().to_string()),
    };
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    Some((status, v))
}

/// A test edge agent: registers and heartbeats through the internal mTLS
/// API with the edge's certificate, as the real edge agent does.
pub struct EdgeAgent {
    pub id: String,
    pub boot_id: String,
    clients: Vec<PeerClient>,
}

impl EdgeAgent {
    pub fn new(cluster: &Cluster, id: &str) -> Self {
        let clients = (0..cluster.selectors.len())
            .map(|i| cluster.internal_client(id, i))
            .collect();
        Self {
            id: id.into(),
            boot_id: "boot-1".into(),
            clients,
        }
    }

    pub fn heartbeat_body(&self) -> Heartbeat {
        Heartbeat {
            boot_id: self.boot_id.clone(),
            participants: 0,
            conferences: 0,
            packet_rate: 0.0,
            bitrate_bps: 0.0,
            cpu: 0.1,
            stress: 0.0,
            links: vec![],
            digest: None,
            about: None,
        }
    }

    /// Registers through selector `i`; retries while there is no leader.
    pub async fn register(&self, i: usize) -> RegisterResponse {
        let body = serde_json::json!({ "boot_id": self.boot_id });
        let mut last = None;
        for _ in 0..50 {
            match self.clients[i]
                .post::<_, RegisterResponse>("/agent/v1/register", &body, Duration::from_secs(12))
                .await
            {
                Ok(r) => return r,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("edge {} could not register: {last:?}", self.id);
    }

    /// One heartbeat to selector `i`.
    pub async fn heartbeat(&self, i: usize) -> Result<Value, CallError> {
        self.clients[i]
            .post(
                "/agent/v1/heartbeat",
                &self.heartbeat_body(),
                Duration::from_secs(2),
            )
            .await
    }

    /// Any agent call to selector `i`.
    pub async fn post(&self, i: usize, path: &str, body: &Value) -> Result<Value, CallError> {
        self.clients[i]
            .post(path, body, Duration::from_secs(12))
            .await
    }

    /// Any agent read from selector `i`.
    pub async fn get(&self, i: usize, path: &str) -> Result<Value, CallError> {
        self.clients[i].get(path, Duration::from_secs(12)).await
    }

    /// One heartbeat to every selector (errors ignored: a node may be down).
    /// Heartbeats every selector at once, as a real edge does: a selector
    /// that is down or cut off (a call that waits for its time-out) must
    /// not delay what the others hear, or they judge a live edge dead.
    pub async fn heartbeat_all(&self) {
        let mut calls = tokio::task::JoinSet::new();
        for c in &self.clients {
            let (c, body) = (c.clone(), self.heartbeat_body());
            calls.spawn(async move {
                let _ = c
                    .post::<_, Value>("/agent/v1/heartbeat", &body, Duration::from_secs(2))
                    .await;
            });
        }
        while calls.join_next().await.is_some() {}
    }
}

/// Heartbeats every agent to every selector every 100 ms until aborted,
/// each (agent, selector) pair on its own as the real edge does
/// (`edge/src/agent/beat.rs`): a selector that is down, restarting or
/// starved delays only its own heartbeats, never what the others hear
/// (else they judge a live edge dead and release its participants).
pub fn spawn_heartbeats(agents: Vec<Arc<EdgeAgent>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut each = tokio::task::JoinSet::new();
        for a in agents {
            for i in 0..a.clients.len() {
                let a = a.clone();
                each.spawn(async move {
                    loop {
                        let _ = a.heartbeat(i).await;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
            }
        }
        // Aborting this task drops the set, which aborts every loop.
        while each.join_next().await.is_some() {}
    })
}

/// Registers every test edge through selector `via` and heartbeats them all
/// once; returns the agents.
pub async fn register_edges(cluster: &Cluster, via: usize) -> Vec<Arc<EdgeAgent>> {
    let mut agents = Vec::new();
    for (id, ..) in EDGES {
        let a = EdgeAgent::new(cluster, id);
        a.register(via).await;
        a.heartbeat_all().await;
        agents.push(Arc::new(a));
    }
    agents
}

/// Path of a file in the cluster's directory.
pub fn path_in(cluster: &Cluster, name: &str) -> PathBuf {
    cluster.dir.path().join(name)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// An internal-API answer as (status, error code): 200 and the body when
/// it succeeded, 0 and the error when no HTTP answer came.
pub fn status(r: Result<Value, geomesh_selector::raft::CallError>) -> (u16, String) {
    use geomesh_selector::raft::CallError;
    match r {
        Err(CallError::Status { status, body }) => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            (status, v["error"].as_str().unwrap_or_default().to_string())
        }
        Ok(v) => (200, v.to_string()),
        Err(e) => (0, e.to_string()),
    }
}
