//! What `geomesh dev` shows on the terminal: the mesh at a glance, then one
//! line per notable change (an edge up, down, draining or back; a selector
//! down or back; a new Raft leader). Read from the selectors' public API,
//! like any operator's tool would.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use geomesh_core::topology::Topology;

/// A minimal HTTP/1.0 `GET` on a local address: the body of a 200, else `None`.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_millis(800)));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut resp = Vec::new();
    let _ = s.take(4 << 20).read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    if !(resp.starts_with("HTTP/1.") && resp.get(9..12) == Some("200")) {
        return None;
    }
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EdgeView {
    region: String,
    state: &'static str,
    participants: u64,
}

/// The state last shown, to print only what changed.
pub struct Monitor {
    selectors: Vec<(String, SocketAddr)>,
    edges: BTreeMap<String, EdgeView>,
    up: BTreeMap<String, bool>,
    leader: Option<String>,
}

/// Wall-clock time of day (UTC), for event lines.
fn now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Monitor {
    /// Watches the mesh of `topology`.
    pub fn new(topology: &Topology) -> Self {
        let mut m = Self {
            selectors: topology
                .selectors
                .iter()
                .map(|s| (s.id.to_string(), s.api))
                .collect(),
            edges: BTreeMap::new(),
            up: BTreeMap::new(),
            leader: None,
        };
        m.read();
        m
    }

    /// The mesh now, as a short table.
    pub fn print_summary(&self) {
        println!();
        let mut by_region: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (id, e) in &self.edges {
            by_region
                .entry(&e.region)
                .or_default()
                .push(format!("{id} ({})", e.state));
        }
        for (region, edges) in by_region {
            println!("  {region:<8} {}", edges.join(", "));
        }
        let sels: Vec<String> = self
            .selectors
            .iter()
            .map(|(id, addr)| {
                let role = if self.leader.as_deref() == Some(id) {
                    "leader"
                } else if self.up.get(id) == Some(&true) {
                    "follower"
                } else {
                    "down"
                };
                format!("{id} http://{addr} ({role})")
            })
            .collect();
        println!("  selectors {}", sels.join(", "));
        println!();
    }

    /// Reads the mesh; returns the lines describing what changed.
    fn read(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut leader = None;
        let mut bridges = None;
        for (id, addr) in &self.selectors {
            let health = http_get(*addr, "/healthz")
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
            let up = health.is_some();
            if self.up.insert(id.clone(), up).is_some_and(|was| was != up) {
                lines.push(format!(
                    "selector {id} {}",
                    if up { "is back" } else { "is down" }
                ));
            }
            if let Some(h) = &health
                && leader.is_none()
            {
                leader = h["leader_id"].as_str().map(str::to_string);
            }
            if bridges.is_none() && up {
                bridges = http_get(*addr, "/v1/bridges")
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
            }
        }
        if leader != self.leader {
            if let Some(l) = &leader {
                lines.push(format!("selector {l} leads the cluster"));
            } else if self.leader.is_some() {
                lines.push("no selector leads the cluster (electing)".to_string());
            }
            self.leader = leader;
        }
        let Some(b) = bridges else {
            return lines;
        };
        let first = self.edges.is_empty();
        for e in b["bridges"].as_array().into_iter().flatten() {
            let id = e["id"].as_str().unwrap_or("?").to_string();
            let state = match (
                e["registered"].as_bool(),
                e["healthy"].as_bool(),
                e["draining"].as_bool(),
            ) {
                (Some(false), ..) => "not registered",
                (_, Some(false), _) => "down",
                (_, _, Some(true)) => "draining",
                _ => "up",
            };
            let view = EdgeView {
                region: e["region"].as_str().unwrap_or("?").to_string(),
                state,
                participants: e["load"]["participants"].as_u64().unwrap_or(0),
            };
            match self.edges.insert(id.clone(), view.clone()) {
                Some(old) if old.state != view.state => {
                    lines.push(format!("edge {id} ({}) is {}", view.region, view.state));
                }
                None if !first => {
                    lines.push(format!(
                        "edge {id} ({}) joined: {}",
                        view.region, view.state
                    ));
                }
                _ => {}
            }
        }
        lines
    }

    /// Reads the mesh and prints one line per change.
    pub fn poll(&mut self) {
        for line in self.read() {
            println!("{}  {line}", now());
        }
    }
}
