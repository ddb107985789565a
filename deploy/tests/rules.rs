//! The rendered security rules open exactly what the topology declares
//! for each role — read back from the rendered tfvars and compared with
//! the topology directly — and the modules open nothing else.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use geomesh_core::Topology;
use serde::Deserialize;
use support::*;

#[derive(Deserialize)]
struct Vars {
    ingress: BTreeMap<String, Ingress>,
}

#[derive(Deserialize)]
struct Ingress {
    region: String,
    rules: Vec<RuleVar>,
}

#[derive(Deserialize)]
struct RuleVar {
    protocol: String,
    from_port: u16,
    to_port: u16,
    cidrs: Vec<String>,
}

/// (protocol, from, to, source)
type Opening = (String, u16, u16, String);

fn open(set: &mut BTreeSet<Opening>, proto: &str, port: u16, sources: &[String]) {
    for s in sources {
        set.insert((proto.into(), port, port, s.clone()));
    }
}

#[test]
fn security_rules_open_exactly_what_the_topology_declares() {
    let tmp = tempfile::tempdir().unwrap();
    let rendered = rendered_rules(&render_example(tmp.path()));
    assert_eq!(rendered, expected_rules(&example()));
    // 14 edges, 3 selectors: octo from the 13 others, Raft from 2 + 14.
    assert_eq!(rendered["edge-us-east-1"].1.len(), 3 + 13);
    assert_eq!(rendered["sel-us-east"].1.len(), 4 + 16);
}

#[test]
fn security_rules_with_recorders_open_exactly_what_the_topology_declares() {
    let tmp = tempfile::tempdir().unwrap();
    let rendered = rendered_rules(&render_recorders(tmp.path()));
    assert_eq!(rendered, expected_rules(&example_with_recorders()));
    // Two recorders: octo from both on every edge, their heartbeats on
    // every selector; a recorder lets in octo from the 14 edges.
    assert_eq!(rendered["edge-us-east-1"].1.len(), 3 + 13 + 2);
    assert_eq!(rendered["sel-us-east"].1.len(), 4 + 16 + 2);
    assert_eq!(rendered["rec-eu-central"].1.len(), 2 + 14);
    assert_eq!(rendered["rec-eu-central"].0, "eu-central");
}

/// Per node: its region and every (protocol, ports, source) it lets in,
/// read back from the root's tfvars.
fn rendered_rules(root: &std::path::Path) -> BTreeMap<String, (String, BTreeSet<Opening>)> {
    let vars: Vars =
        hcl::from_str(&std::fs::read_to_string(root.join("geomesh.auto.tfvars")).unwrap()).unwrap();
    let mut rendered = BTreeMap::new();
    for (id, ing) in vars.ingress {
        let mut s = BTreeSet::new();
        for r in ing.rules {
            for c in r.cidrs {
                assert!(
                    s.insert((r.protocol.clone(), r.from_port, r.to_port, c.clone())),
                    "{id}: {} {}-{} from {c} twice",
                    r.protocol,
                    r.from_port,
                    r.to_port
                );
            }
        }
        rendered.insert(id, (ing.region, s));
    }
    rendered
}

/// The same, derived from the topology directly.
fn expected_rules(yaml: &str) -> BTreeMap<String, (String, BTreeSet<Opening>)> {
    let t = Topology::parse(yaml, std::path::Path::new("/srv/ops"))
        .unwrap()
        .topology;
    let world = vec!["0.0.0.0/0".to_string()];
    let v32 = |ip: std::net::IpAddr| format!("{ip}/32");
    let recorders: Vec<String> = t.recorders.iter().map(|r| v32(r.http.ip())).collect();
    let edges: Vec<String> = t.edges.iter().map(|e| v32(e.public_ip)).collect();
    // Path MTU discovery: the one opening no port in the topology makes.
    let icmp = ("icmp".to_string(), 3, 4, "0.0.0.0/0".to_string());
    let mut expected: BTreeMap<String, (String, BTreeSet<Opening>)> = BTreeMap::new();
    for e in &t.edges {
        let mut s = BTreeSet::from([icmp.clone()]);
        open(&mut s, "udp", e.media_port, &world);
        // Signaling: the https public URL's port (a TLS terminator), else http.
        let signaling = match e.public_url.as_deref() {
            Some(u) if u.starts_with("https://") => 443,
            _ => e.http.port(),
        };
        open(&mut s, "tcp", signaling, &world);
        let peers: Vec<String> = t
            .edges
            .iter()
            .filter(|o| o.id != e.id)
            .map(|o| v32(o.public_ip))
            .collect();
        open(&mut s, "udp", e.octo.port(), &peers);
        // Recorders are octo peers: the lower id dials.
        open(&mut s, "udp", e.octo.port(), &recorders);
        expected.insert(e.id.to_string(), (e.region.to_string(), s));
    }
    for sel in &t.selectors {
        let mut s = BTreeSet::from([icmp.clone()]);
        open(&mut s, "tcp", sel.api.port(), &world);
        let mut peers: Vec<String> = t
            .selectors
            .iter()
            .filter(|o| o.id != sel.id)
            .map(|o| v32(o.api.ip()))
            .collect();
        peers.extend(edges.iter().cloned());
        // Recorders heartbeat the internal API, as edges do.
        peers.extend(recorders.iter().cloned());
        open(&mut s, "tcp", sel.raft.port(), &peers);
        let dns = sel.dns.expect("the example's selectors serve GeoDNS");
        open(&mut s, "udp", dns.port(), &world);
        open(&mut s, "tcp", dns.port(), &world);
        expected.insert(sel.id.to_string(), (sel.region.to_string(), s));
    }
    for r in &t.recorders {
        let mut s = BTreeSet::from([icmp.clone()]);
        open(&mut s, "tcp", r.http.port(), &world);
        open(&mut s, "udp", r.octo.port(), &edges);
        expected.insert(r.id.to_string(), (r.region.to_string(), s));
    }
    expected
}

#[test]
fn only_the_network_module_opens_ports_and_only_from_var_ingress() {
    let mut openings = Vec::new();
    for dir in module_dirs() {
        for (path, body) in module(&dir) {
            for b in body
                .blocks()
                .filter(|b| b.identifier.as_str() == "resource")
            {
                let kind = b.labels[0].as_str();
                assert!(
                    kind != "aws_security_group_rule",
                    "{}: aws_security_group_rule (use the per-rule resources)",
                    path.display()
                );
                if kind == "aws_security_group" {
                    assert!(
                        b.body.blocks().all(|x| x.identifier.as_str() != "ingress"),
                        "{}: inline ingress in a security group",
                        path.display()
                    );
                }
                if kind == "aws_vpc_security_group_ingress_rule" {
                    openings.push((path.clone(), b.clone()));
                }
            }
        }
    }
    assert_eq!(openings.len(), 1, "{openings:?}");
    let (path, rule) = &openings[0];
    assert!(
        path.ends_with("modules/network/main.tf"),
        "{}",
        path.display()
    );
    // Its for_each is local.rules, built from var.ingress and nothing else.
    let for_each = attr(rule, "for_each").unwrap();
    let mut refs = Vec::new();
    walk(for_each, &mut refs);
    assert_eq!(refs, vec![vec!["local".to_string(), "rules".to_string()]]);
    let network = module(&terraform().join("modules/network"));
    let locals = blocks(&network, "locals");
    let rules = locals
        .iter()
        .find_map(|l| attr(l, "rules"))
        .expect("locals.rules");
    let mut refs = Vec::new();
    walk(rules, &mut refs);
    let roots: BTreeSet<String> = refs
        .iter()
        .filter(|r| r[0] == "var" || r[0] == "local")
        .map(|r| r.join("."))
        .collect();
    assert_eq!(roots, BTreeSet::from(["var.ingress".to_string()]));
}
