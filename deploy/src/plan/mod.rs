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

use geomesh_core::topology::{Edge, KeyMaterial, Provider, Recorder, Selector, Topology};

mod checks;
mod ingress;
use checks::*;
use ingress::*;

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
    /// A recording node.
    Recorder,
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
    /// Edge, selector or recorder.
    pub role: Role,
    /// Its public (Elastic) IPv4 address.
    pub public_ip: Ipv4Addr,
    /// A stable number that spreads a region's nodes over its zones.
    pub zone: u32,
    /// Exactly what may reach it.
    pub ingress: Vec<Rule>,
    /// Files it reads, relative to the topology file (`/`-separated).
    pub files: Vec<String>,
    /// Edges: what clients use (`public_url`, else `http://{http}`);
    /// selectors: their API's URL; recorders: their HTTP API's URL.
    pub url: String,
    /// The plain HTTP port the node itself listens on.
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
    /// Its edges, then its selectors, then its recorders, in topology order.
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

    /// Whether any node has this role.
    pub fn has(&self, role: Role) -> bool {
        self.nodes().any(|n| n.role == role)
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
    let recorder_ips: Vec<Option<Ipv4Addr>> = topology
        .recorders
        .iter()
        .enumerate()
        .map(|(i, r)| check_recorder(&mut p, &mut seen_ips, i, r))
        .collect();

    let certs_dir = relative(&mut p, base_dir, &topology.tls.dir, "tls.dir");
    let operator_token = topology
        .access
        .operator_token_file
        .as_ref()
        .map(|f| relative(&mut p, base_dir, f, "access.operator_token_file"));
    let mut selector_files: Vec<String> = operator_token.iter().cloned().collect();
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
    let recorder_ips: Vec<Ipv4Addr> = recorder_ips.into_iter().flatten().collect();
    let others = |all: &[Ipv4Addr], me: Ipv4Addr| -> Vec<String> {
        all.iter()
            .filter(|ip| **ip != me)
            .map(|ip| format!("{ip}/32"))
            .collect()
    };
    let all =
        |ips: &[Ipv4Addr]| -> Vec<String> { ips.iter().map(|ip| format!("{ip}/32")).collect() };
    let recorder_cidrs = all(&recorder_ips);
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
                ingress: edge_ingress(
                    e,
                    terminator.as_ref(),
                    others(&edge_ips, *ip),
                    recorder_cidrs.clone(),
                ),
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
                ingress: selector_ingress(s, ns_name.is_some(), peers, recorder_cidrs.clone()),
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
        for (rec, ip) in topology.recorders.iter().zip(&recorder_ips) {
            if rec.region == r.id {
                let files = recorder_files(rec, &certs_dir, operator_token.as_deref());
                nodes.push(recorder_node(rec, *ip, files, all(&edge_ips)));
            }
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

/// What a recorder reads: the CA and its own certificate and key (octo
/// with the edges, its heartbeats to the selectors), and the operator
/// token, which guards its `GET /v1/recordings`.
fn recorder_files(r: &Recorder, certs_dir: &str, operator_token: Option<&str>) -> Vec<String> {
    let mut files = vec![
        format!("{certs_dir}/ca.pem"),
        format!("{certs_dir}/nodes/{}.pem", r.id),
        format!("{certs_dir}/nodes/{}.key", r.id),
    ];
    files.extend(operator_token.map(str::to_string));
    files
}

/// A recorder's machine; `edges` are the edges' `/32`s.
fn recorder_node(r: &Recorder, ip: Ipv4Addr, files: Vec<String>, edges: Vec<String>) -> Node {
    Node {
        id: r.id.to_string(),
        role: Role::Recorder,
        public_ip: ip,
        zone: zone(r.id.as_str()),
        ingress: recorder_ingress(r, edges),
        files,
        url: format!("http://{}", r.http),
        http_port: r.http.port(),
        terminator: None,
        init: false,
        ns_name: None,
    }
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
