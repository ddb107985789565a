//! What each node lets in: its firewall rules (ingress), and the TLS
//! terminator in front of an edge's HTTPS.

use super::*;

pub(super) fn terminator(e: &Edge, domain: Option<&str>) -> Option<Terminator> {
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

pub(super) const WORLD: &str = "0.0.0.0/0";

pub(super) fn rule(description: &str, protocol: Protocol, port: u16, cidrs: Vec<String>) -> Rule {
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
pub(super) fn path_mtu() -> Rule {
    Rule {
        description: "path MTU discovery (ICMP fragmentation needed)".to_string(),
        protocol: Protocol::Icmp,
        from_port: 3,
        to_port: 4,
        cidrs: vec![WORLD.to_string()],
    }
}

/// `recorders`: they are octo peers too, and one whose id sorts before
/// this edge's dials it (the lower id dials).
pub(super) fn edge_ingress(
    e: &Edge,
    terminator: Option<&Terminator>,
    other_edges: Vec<String>,
    recorders: Vec<String>,
) -> Vec<Rule> {
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
    if !recorders.is_empty() {
        rules.push(rule(
            "octo (QUIC) from the recorders",
            Protocol::Udp,
            e.octo.port(),
            recorders,
        ));
    }
    rules.push(path_mtu());
    rules
}

/// `recorders` heartbeat the selectors' internal API (on `raft`), as edges do.
pub(super) fn selector_ingress(
    s: &Selector,
    dns: bool,
    peers: Vec<String>,
    recorders: Vec<String>,
) -> Vec<Rule> {
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
    if !recorders.is_empty() {
        rules.push(rule(
            "recorders' heartbeats to the internal API (mutual TLS)",
            Protocol::Tcp,
            s.raft.port(),
            recorders,
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

/// A recorder: its HTTP API (health, the recordings with the operator
/// token, metrics) as open as the other nodes' HTTP ports, and octo from
/// the edges, which dial it. It calls the selectors; none calls it.
pub(super) fn recorder_ingress(r: &Recorder, edges: Vec<String>) -> Vec<Rule> {
    let mut rules = vec![rule(
        "HTTP API (health, recordings with the operator token) and metrics",
        Protocol::Tcp,
        r.http.port(),
        vec![WORLD.to_string()],
    )];
    if !edges.is_empty() {
        rules.push(rule(
            "octo (QUIC) from the edges",
            Protocol::Udp,
            r.octo.port(),
            edges,
        ));
    }
    rules.push(path_mtu());
    rules
}
