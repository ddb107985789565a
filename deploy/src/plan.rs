//! What a topology becomes in the cloud: per region, the machines, the
//! exact ingress each one needs and the files it must be given — or every
//! reason the topology cannot be deployed.
//!
//! The topology's own validation (`geomesh topology check`) has already
//! passed; these checks are about what a cloud adds: every node is its own
//! machine with its own public IPv4 address, which on AWS is an Elastic IP
//! and therefore never on the machine's interface.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path};

use geomesh_core::topology::{Edge, KeyMaterial, Provider, Selector, Topology};

/// Where a node finds its configuration: the topology and every file it
/// names, at the same relative paths as beside the operator's topology.
pub const NODE_CONFIG_DIR: &str = "/etc/geomesh";

/// Where, relative to the topology file, an edge's TLS terminator finds
/// the web certificate (full chain) and key for its `https://` public URL
/// and the meeting hostname.
pub const WEB_CERT: &str = "web-tls/fullchain.pem";
/// The key of [`WEB_CERT`].
pub const WEB_KEY: &str = "web-tls/privkey.pem";

/// Resolvers ask name servers on this port only.
const DNS_PORT: u16 = 53;

/// One reason a topology cannot be deployed, at a topology path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The offending value, e.g. `edges[3].public_ip`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `error: edges[3].public_ip: 10.0.0.5 is a private address …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}: {}", self.path, self.message)
    }
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An edge bridge.
    Edge,
    /// A selector node.
    Selector,
}

/// A transport protocol in a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ports are type and code).
    Icmp,
}

impl Protocol {
    /// The name AWS and Terraform use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// One ingress rule of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Why it is open.
    pub description: String,
    /// The protocol.
    pub protocol: Protocol,
    /// First port (ICMP: type).
    pub from_port: u16,
    /// Last port (ICMP: code).
    pub to_port: u16,
    /// Who may send: `0.0.0.0/0` or peers' `/32`s.
    pub cidrs: Vec<String>,
}

/// An edge's TLS terminator in front of its plain HTTP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminator {
    /// The port it listens on (the public URL's).
    pub port: u16,
    /// The host names its certificate serves: the public URL's and the
    /// meeting hostname, which GeoDNS answers with edges.
    pub sites: Vec<String>,
}

/// One machine.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its id in the topology.
    pub id: String,
    /// Edge or selector.
    pub role: Role,
    /// Its public (Elastic) IPv4 address.
    pub public_ip: Ipv4Addr,
    /// A stable number that spreads a region's nodes over its zones.
    pub zone: u32,
    /// Exactly what may reach it.
    pub ingress: Vec<Rule>,
    /// Files it reads, relative to the topology file (`/`-separated).
    pub files: Vec<String>,
    /// Edges: what clients use (`public_url`, else `http://{http}`).
    pub url: String,
    /// Edges: the plain HTTP port the edge itself listens on.
    pub http_port: u16,
    /// Edges: the TLS terminator, when the public URL is `https://`.
    pub terminator: Option<Terminator>,
    /// Selectors: initializes the Raft membership of a new cluster.
    pub init: bool,
    /// Selectors: its GeoDNS name server name, when it serves DNS.
    pub ns_name: Option<String>,
}

/// One provider region and the machines in it.
#[derive(Debug, Clone)]
pub struct RegionPlan {
    /// The topology's region id.
    pub id: String,
    /// A Terraform identifier for it (`us_east`).
    pub ident: String,
    /// The provider's region (`us-east-1`).
    pub provider_region: String,
    /// Its edges, then its selectors, in topology order.
    pub nodes: Vec<Node>,
}

/// The whole rollout.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `cluster.name`.
    pub cluster: String,
    /// `cluster.domain`: the zone to delegate to the selectors' GeoDNS.
    pub domain: Option<String>,
    /// Regions that have nodes, in topology order.
    pub regions: Vec<RegionPlan>,
    /// `tls.dir`, relative to the topology file.
    pub certs_dir: String,
    /// GeoIP databases the selectors open, as paths on the node.
    pub geoip_paths: Vec<String>,
}

impl Plan {
    /// Every node, region by region.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.regions.iter().flat_map(|r| r.nodes.iter())
    }
}

/// Checks that `topology` can be deployed and derives the plan.
/// `base_dir` is the topology file's directory (relative paths in the
/// topology were resolved against it). Every problem is reported.
pub fn plan(topology: &Topology, base_dir: &Path) -> Result<Plan, Vec<Problem>> {
    let mut p = Problems::default();
    let cluster = &topology.cluster.name;
    if !is_name(cluster) {
        p.push(
            "cluster.name",
            format!("{cluster:?} names cloud resources: use lowercase letters, digits and '-'"),
        );
    }
    for (i, r) in topology.regions.iter().enumerate() {
        if r.provider != Provider::Aws {
            p.push(
                format!("regions[{i}].provider"),
                format!(
                    "{} has no Terraform modules yet (deploy/terraform has aws); run this region's nodes by hand or move it to aws",
                    provider_name(r.provider)
                ),
            );
        } else if !is_aws_region(&r.provider_region) {
            p.push(
                format!("regions[{i}].provider_region"),
                format!(
                    "{:?} is not an AWS region name (like eu-central-1)",
                    r.provider_region
                ),
            );
        }
    }

    let mut seen_ips: Vec<(Ipv4Addr, String)> = Vec::new();
    let edge_ips: Vec<Option<Ipv4Addr>> = topology
        .edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            check_edge(
                &mut p,
                &mut seen_ips,
                i,
                e,
                topology.cluster.domain.as_deref(),
            )
        })
        .collect();
    let selector_ips: Vec<Option<Ipv4Addr>> = topology
        .selectors
        .iter()
        .enumerate()
        .map(|(i, s)| check_selector(&mut p, &mut seen_ips, i, s, topology))
        .collect();

    let certs_dir = relative(&mut p, base_dir, &topology.tls.dir, "tls.dir");
    let mut selector_files = Vec::new();
    if let Some(f) = &topology.access.operator_token_file {
        selector_files.push(relative(&mut p, base_dir, f, "access.operator_token_file"));
    }
    for (i, k) in topology.access.keys.iter().enumerate() {
        let (path, field) = match &k.material {
            KeyMaterial::Secret(f) => (f, "secret_file"),
            KeyMaterial::PublicKey(f) => (f, "public_key_file"),
        };
        selector_files.push(relative(
            &mut p,
            base_dir,
            path,
            &format!("access.keys[{i}].{field}"),
        ));
    }
    let geoip_paths = topology
        .geoip
        .databases
        .iter()
        .enumerate()
        .map(|(i, d)| node_path(&mut p, base_dir, d, &format!("geoip.databases[{i}]")))
        .collect();
    if !p.0.is_empty() {
        return Err(p.0);
    }

    // Every check passed: the addresses are there.
    let edge_ips: Vec<Ipv4Addr> = edge_ips.into_iter().flatten().collect();
    let selector_ips: Vec<Ipv4Addr> = selector_ips.into_iter().flatten().collect();
    let others = |all: &[Ipv4Addr], me: Ipv4Addr| -> Vec<String> {
        all.iter()
            .filter(|ip| **ip != me)
            .map(|ip| format!("{ip}/32"))
            .collect()
    };
    let domain = topology.cluster.domain.clone();
    let mut regions = Vec::new();
    for r in &topology.regions {
        let mut nodes = Vec::new();
        for (e, ip) in topology.edges.iter().zip(&edge_ips) {
            if e.region != r.id {
                continue;
            }
            let terminator = terminator(e, domain.as_deref());
            let mut files = vec![
                format!("{certs_dir}/ca.pem"),
                format!("{certs_dir}/nodes/{}.pem", e.id),
                format!("{certs_dir}/nodes/{}.key", e.id),
                format!("{certs_dir}/token.pub"),
            ];
            if terminator.is_some() {
                files.extend([WEB_CERT.to_string(), WEB_KEY.to_string()]);
            }
            nodes.push(Node {
                id: e.id.to_string(),
                role: Role::Edge,
                public_ip: *ip,
                zone: zone(e.id.as_str()),
                ingress: edge_ingress(e, terminator.as_ref(), others(&edge_ips, *ip)),
                files,
                url: e.base_url(),
                http_port: e.http.port(),
                terminator,
                init: false,
                ns_name: None,
            });
        }
        for (i, (s, ip)) in topology.selectors.iter().zip(&selector_ips).enumerate() {
            if s.region != r.id {
                continue;
            }
            let mut peers = others(&selector_ips, *ip);
            peers.extend(edge_ips.iter().map(|e| format!("{e}/32")));
            let ns_name = match (&domain, s.dns) {
                (Some(d), Some(_)) => Some(format!("{}.ns.{d}", s.id)),
                _ => None,
            };
            let mut files = vec![
                format!("{certs_dir}/ca.pem"),
                format!("{certs_dir}/nodes/{}.pem", s.id),
                format!("{certs_dir}/nodes/{}.key", s.id),
                format!("{certs_dir}/token.key"),
            ];
            files.extend(selector_files.iter().cloned());
            nodes.push(Node {
                id: s.id.to_string(),
                role: Role::Selector,
                public_ip: *ip,
                zone: zone(s.id.as_str()),
                ingress: selector_ingress(s, ns_name.is_some(), peers),
                files,
                url: format!("http://{}", s.api),
                http_port: s.api.port(),
                terminator: None,
                // One node of a new cluster initializes the membership; on a
                // store that has one (a restart, a replacement that kept its
                // data volume) the flag does nothing.
                init: i == 0,
                ns_name,
            });
        }
        if !nodes.is_empty() {
            regions.push(RegionPlan {
                id: r.id.to_string(),
                ident: ident(r.id.as_str()),
                provider_region: r.provider_region.clone(),
                nodes,
            });
        }
    }
    Ok(Plan {
        cluster: cluster.clone(),
        domain,
        regions,
        certs_dir,
        geoip_paths,
    })
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Aws => "aws",
        Provider::Gcp => "gcp",
        Provider::Azure => "azure",
        Provider::Hetzner => "hetzner",
        Provider::Digitalocean => "digitalocean",
        Provider::Local => "local",
    }
}

/// The public IPv4 address a node is reached at, or why it cannot be one.
fn public_v4(
    p: &mut Problems,
    seen: &mut Vec<(Ipv4Addr, String)>,
    ip: IpAddr,
    path: String,
) -> Option<Ipv4Addr> {
    let IpAddr::V4(v4) = ip else {
        p.push(
            path,
            format!("{ip}: AWS Elastic IPs are IPv4; give the node's Elastic IP"),
        );
        return None;
    };
    let o = v4.octets();
    let cgnat = o[0] == 100 && (64..128).contains(&o[1]);
    if v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || cgnat
    {
        p.push(
            path,
            format!(
                "{v4} is not a public address: clients on the internet cannot reach it (give the node's Elastic IP)"
            ),
        );
        return None;
    }
    if let Some((_, first)) = seen.iter().find(|(s, _)| *s == v4) {
        p.push(
            path,
            format!("{v4} is also {first}: every node is its own machine with its own Elastic IP"),
        );
        return None;
    }
    seen.push((v4, path));
    Some(v4)
}

/// `addr` must be on the node's one public address.
fn same_host(p: &mut Problems, addr: SocketAddr, ip: IpAddr, path: String) {
    if addr.ip() != ip {
        p.push(
            path,
            format!(
                "{addr} is not on the node's public address {ip}: one machine has one Elastic IP"
            ),
        );
    }
}

fn check_edge(
    p: &mut Problems,
    seen: &mut Vec<(Ipv4Addr, String)>,
    i: usize,
    e: &Edge,
    domain: Option<&str>,
) -> Option<Ipv4Addr> {
    let path = format!("edges[{i}]");
    let ip = public_v4(p, seen, e.public_ip, format!("{path}.public_ip"));
    same_host(p, e.http, e.public_ip, format!("{path}.http"));
    same_host(p, e.octo, e.public_ip, format!("{path}.octo"));
    if !e.bind_ip.is_unspecified() {
        p.push(
            format!("{path}.bind_ip"),
            format!(
                "{}: an Elastic IP is never on the instance's interface; leave bind_ip out (all interfaces)",
                e.bind_ip
            ),
        );
    }
    if let (Some(url), Some(d)) = (&e.public_url, domain) {
        let host = url_host(url);
        if host == d || host.ends_with(&format!(".{d}")) {
            p.push(
                format!("{path}.public_url"),
                format!(
                    "{host} is inside {d}, which is delegated to the selectors' GeoDNS: it answers {d} with the nearest edge and nothing else there; name the edge outside it"
                ),
            );
        }
    }
    if let Some(url) = &e.public_url
        && url.starts_with("https://")
        && url_port(url) == e.http.port()
    {
        p.push(
            format!("{path}.public_url"),
            format!(
                "{url} is TLS on the edge's own plain HTTP port {}: the TLS terminator needs a port of its own (443)",
                e.http.port()
            ),
        );
    }
    ip
}

fn check_selector(
    p: &mut Problems,
    seen: &mut Vec<(Ipv4Addr, String)>,
    i: usize,
    s: &Selector,
    topology: &Topology,
) -> Option<Ipv4Addr> {
    let path = format!("selectors[{i}]");
    let ip = public_v4(p, seen, s.api.ip(), format!("{path}.api"));
    same_host(p, s.raft, s.api.ip(), format!("{path}.raft"));
    if let Some(dns) = s.dns {
        same_host(p, dns, s.api.ip(), format!("{path}.dns"));
        if topology.cluster.domain.is_some() && dns.port() != DNS_PORT {
            p.push(
                format!("{path}.dns"),
                format!(
                    "port {}: resolvers ask name servers on port 53 only, so the meeting zone cannot be delegated here",
                    dns.port()
                ),
            );
        }
    }
    match s.bind_ip {
        Some(b) if b.is_unspecified() => {}
        other => p.push(
            format!("{path}.bind_ip"),
            format!(
                "{}: on AWS {} is an Elastic IP, never on the instance's interface; add bind_ip: 0.0.0.0",
                other.map_or("missing".to_string(), |b| b.to_string()),
                s.api.ip()
            ),
        ),
    }
    ip
}

/// The port a URL names, or its scheme's.
fn url_port(url: &str) -> u16 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(if scheme == "https" { 443 } else { 80 })
}

fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn terminator(e: &Edge, domain: Option<&str>) -> Option<Terminator> {
    let url = e.public_url.as_deref()?;
    if !url.starts_with("https://") {
        return None;
    }
    // GeoDNS answers the meeting hostname with edges: a browser that opens
    // it lands here and must be served the same certificate.
    let mut sites: Vec<String> = domain.into_iter().map(str::to_string).collect();
    let host = url_host(url).to_string();
    if !sites.contains(&host) {
        sites.push(host);
    }
    Some(Terminator {
        port: url_port(url),
        sites,
    })
}

const WORLD: &str = "0.0.0.0/0";

fn rule(description: &str, protocol: Protocol, port: u16, cidrs: Vec<String>) -> Rule {
    Rule {
        description: description.to_string(),
        protocol,
        from_port: port,
        to_port: port,
        cidrs,
    }
}

/// ICMP "fragmentation needed" from anywhere: without it a path with a
/// smaller MTU silently drops large TCP segments (path MTU discovery).
fn path_mtu() -> Rule {
    Rule {
        description: "path MTU discovery (ICMP fragmentation needed)".to_string(),
        protocol: Protocol::Icmp,
        from_port: 3,
        to_port: 4,
        cidrs: vec![WORLD.to_string()],
    }
}

fn edge_ingress(e: &Edge, terminator: Option<&Terminator>, other_edges: Vec<String>) -> Vec<Rule> {
    let world = || vec![WORLD.to_string()];
    let mut rules = vec![rule(
        "WebRTC media (ICE, DTLS-SRTP) from participants",
        Protocol::Udp,
        e.media_port,
        world(),
    )];
    rules.push(match terminator {
        Some(t) => rule(
            "HTTPS signaling, WHIP/WHEP and the meeting page (TLS terminator)",
            Protocol::Tcp,
            t.port,
            world(),
        ),
        None => rule(
            "HTTP signaling, WHIP/WHEP and the meeting page",
            Protocol::Tcp,
            e.http.port(),
            world(),
        ),
    });
    if !other_edges.is_empty() {
        rules.push(rule(
            "octo (QUIC) from the other edges",
            Protocol::Udp,
            e.octo.port(),
            other_edges,
        ));
    }
    rules.push(path_mtu());
    rules
}

fn selector_ingress(s: &Selector, dns: bool, peers: Vec<String>) -> Vec<Rule> {
    let world = || vec![WORLD.to_string()];
    let mut rules = vec![rule(
        "public API (joins) and the meeting page",
        Protocol::Tcp,
        s.api.port(),
        world(),
    )];
    if !peers.is_empty() {
        rules.push(rule(
            "Raft from the other selectors, agent API from the edges (mutual TLS)",
            Protocol::Tcp,
            s.raft.port(),
            peers,
        ));
    }
    if dns && let Some(d) = s.dns {
        rules.push(rule("GeoDNS", Protocol::Udp, d.port(), world()));
        rules.push(rule(
            "GeoDNS over TCP (truncated answers)",
            Protocol::Tcp,
            d.port(),
            world(),
        ));
    }
    rules.push(path_mtu());
    rules
}

/// A file the nodes read, relative to the topology file: it is shipped to
/// them at the same relative path under [`NODE_CONFIG_DIR`].
fn relative(p: &mut Problems, base: &Path, resolved: &Path, path: &str) -> String {
    match inside(base, resolved) {
        Some(rel) => rel,
        None => {
            p.push(
                path,
                format!(
                    "{}: files the nodes read are shipped beside the topology: give a path inside its directory, relative to it, of letters, digits and . _ - /",
                    resolved.display()
                ),
            );
            String::new()
        }
    }
}

/// Where a file the topology names lies on a node: relative paths under
/// [`NODE_CONFIG_DIR`], absolute ones as written.
fn node_path(p: &mut Problems, base: &Path, resolved: &Path, path: &str) -> String {
    match inside(base, resolved) {
        Some(rel) => format!("{NODE_CONFIG_DIR}/{rel}"),
        None if resolved.is_absolute() && is_file_path(&resolved.to_string_lossy()) => {
            resolved.to_string_lossy().into_owned()
        }
        None => {
            p.push(
                path,
                format!(
                    "{}: give an absolute path on the node, or one inside the topology's directory",
                    resolved.display()
                ),
            );
            String::new()
        }
    }
}

/// `resolved` relative to `base`, when it lies inside it and names a file
/// with characters safe in SSM parameter names and shell words.
fn inside(base: &Path, resolved: &Path) -> Option<String> {
    let rel = resolved.strip_prefix(base).ok()?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let rel = parts.join("/");
    (!rel.is_empty() && is_file_path(&rel)).then_some(rel)
}

fn is_file_path(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`: letters, then a number.
fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// A Terraform identifier for a region id (`us-east` → `us_east`).
fn ident(id: &str) -> String {
    let s = id.replace('-', "_");
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("r{s}")
    } else {
        s
    }
}

/// Spreads a region's nodes over its zones, stable as nodes come and go:
/// the id's trailing number (`edge-us-east-2` → 2), so numbered siblings
/// alternate, else a hash of the id.
fn zone(id: &str) -> u32 {
    let digits: String = id
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or_else(|_| {
        // FNV-1a: the same number on every machine and every release.
        id.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_ports_and_hosts() {
        assert_eq!(url_port("https://e.example.com"), 443);
        assert_eq!(url_port("https://e.example.com:8443/x"), 8443);
        assert_eq!(url_port("http://1.2.3.4:8080"), 8080);
        assert_eq!(url_port("http://e.example.com/"), 80);
        assert_eq!(url_host("https://e.example.com:8443/x"), "e.example.com");
    }

    #[test]
    fn region_names_identifiers_and_zones() {
        for ok in [
            "us-east-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "eu-central-2",
        ] {
            assert!(is_aws_region(ok), "{ok}");
        }
        for bad in [
            "",
            "loopback",
            "eu-central",
            "eu-central-x",
            "EU-central-1",
            "e-central-1",
        ] {
            assert!(!is_aws_region(bad), "{bad}");
        }
        assert_eq!(ident("us-east"), "us_east");
        assert_eq!(ident("1-lab"), "r1_lab");
        assert_eq!(zone("edge-us-east-1"), 1);
        assert_eq!(zone("edge-us-east-2"), 2);
        assert_eq!(zone("sel-x"), zone("sel-x"));
        assert_ne!(zone("sel-x"), zone("sel-y"));
    }
}
