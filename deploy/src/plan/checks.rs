//! Whether a topology can be deployed as it stands: public addresses, one
//! host per node, paths the machines will have, names the provider takes.

use super::*;

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn provider_name(p: Provider) -> &'static str {
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
pub(super) fn public_v4(
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
pub(super) fn same_host(p: &mut Problems, addr: SocketAddr, ip: IpAddr, path: String) {
    if addr.ip() != ip {
        p.push(
            path,
            format!(
                "{addr} is not on the node's public address {ip}: one machine has one Elastic IP"
            ),
        );
    }
}

pub(super) fn check_edge(
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

pub(super) fn check_selector(
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

/// A recorder has no `public_ip`: its `http` address is the public one,
/// and `octo` (which the edges dial) must be on it too.
pub(super) fn check_recorder(
    p: &mut Problems,
    seen: &mut Vec<(Ipv4Addr, String)>,
    i: usize,
    r: &Recorder,
) -> Option<Ipv4Addr> {
    let path = format!("recorders[{i}]");
    let ip = public_v4(p, seen, r.http.ip(), format!("{path}.http"));
    same_host(p, r.octo, r.http.ip(), format!("{path}.octo"));
    if !r.bind_ip.is_unspecified() {
        p.push(
            format!("{path}.bind_ip"),
            format!(
                "{}: an Elastic IP is never on the instance's interface; leave bind_ip out or give 0.0.0.0 (all interfaces)",
                r.bind_ip
            ),
        );
    }
    ip
}

/// The port a URL names, or its scheme's.
pub(super) fn url_port(url: &str) -> u16 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(if scheme == "https" { 443 } else { 80 })
}

pub(super) fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// A file the nodes read, relative to the topology file: it is shipped to
/// them at the same relative path under [`NODE_CONFIG_DIR`].
pub(super) fn relative(p: &mut Problems, base: &Path, resolved: &Path, path: &str) -> String {
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
pub(super) fn node_path(p: &mut Problems, base: &Path, resolved: &Path, path: &str) -> String {
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
pub(super) fn inside(base: &Path, resolved: &Path) -> Option<String> {
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

pub(super) fn is_file_path(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`: letters, then a number.
pub(super) fn is_aws_region(s: &str) -> bool {
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
pub(super) fn ident(id: &str) -> String {
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
pub(super) fn zone(id: &str) -> u32 {
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
