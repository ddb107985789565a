//! Semantic checks: everything YAML types cannot say.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use super::file::{RawTopology, S, pos};
use super::{
    Access, AccessKey, AccessMode, Cluster, DEFAULT_MEDIA_PORT, Diagnostic, Edge, GeoIpOverride,
    GeoIpSettings, KeyMaterial, Loaded, Policy, Position, Region, Selector, Severity, TlsSettings,
    Topology, TopologyError,
};
use crate::geo::GeoPoint;
use crate::id::RegionId;

/// The policy defaults (documented in `topology.example.yaml`).
const DEFAULT_MAX_EDGES_PER_CONFERENCE: u32 = 4;
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Three missed heartbeats make an edge unhealthy.
const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
const DEFAULT_STRESS_THRESHOLD: f64 = 0.8;

#[derive(Default)]
struct Report {
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    fn push(&mut self, severity: Severity, at: Option<Position>, path: String, message: String) {
        self.diagnostics.push(Diagnostic {
            severity,
            position: at,
            path,
            message,
        });
    }
    fn error(&mut self, at: Option<Position>, path: impl Into<String>, msg: impl Into<String>) {
        self.push(Severity::Error, at, path.into(), msg.into());
    }
    fn warning(&mut self, at: Option<Position>, path: impl Into<String>, msg: impl Into<String>) {
        self.push(Severity::Warning, at, path.into(), msg.into());
    }
    fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

fn check_point(r: &mut Report, p: &S<GeoPoint>, path: &str) {
    if let Err(e) = p.value.validate() {
        r.error(pos(p), path, e.to_string());
    }
}

/// Reports the second and later uses of an id.
fn check_unique(
    r: &mut Report,
    seen: &mut HashMap<String, String>,
    id: &str,
    at: Option<Position>,
    path: String,
) {
    if let Some(first) = seen.get(id) {
        r.error(
            at,
            path,
            format!("duplicate id {id:?} (first used at {first})"),
        );
    } else {
        seen.insert(id.to_string(), path);
    }
}

pub(super) fn validate(raw: RawTopology, base_dir: &Path) -> Result<Loaded, TopologyError> {
    let mut r = Report::default();

    if raw.version.value != 1 {
        r.error(
            pos(&raw.version),
            "version",
            format!(
                "unsupported version {} (this geomesh reads version 1)",
                raw.version.value
            ),
        );
    }
    if raw.cluster.name.value.trim().is_empty() {
        r.error(pos(&raw.cluster.name), "cluster.name", "must not be empty");
    }
    if let Some(d) = &raw.cluster.domain {
        let ok = !d.value.is_empty()
            && d.value.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            r.error(
                pos(d),
                "cluster.domain",
                format!("{:?} is not a DNS name", d.value),
            );
        }
    }

    // Policy.
    let p = &raw.policy;
    let max_edges = p
        .max_edges_per_conference
        .as_ref()
        .map_or(DEFAULT_MAX_EDGES_PER_CONFERENCE, |v| v.value);
    if let Some(v) = &p.max_edges_per_conference
        && v.value == 0
    {
        r.error(
            pos(v),
            "policy.max_edges_per_conference",
            "must be at least 1",
        );
    }
    let heartbeat = p
        .heartbeat_interval
        .as_ref()
        .map_or(DEFAULT_HEARTBEAT, |v| v.value.0);
    if let Some(v) = &p.heartbeat_interval
        && v.value.0.is_zero()
    {
        r.error(pos(v), "policy.heartbeat_interval", "must be positive");
    }
    let health_timeout = p
        .health_timeout
        .as_ref()
        .map_or(heartbeat * DEFAULT_MISSED_HEARTBEATS, |v| v.value.0);
    if let Some(v) = &p.health_timeout
        && v.value.0 <= heartbeat
    {
        r.error(
            pos(v),
            "policy.health_timeout",
            format!(
                "{} must be longer than the heartbeat interval ({}), or every edge flaps",
                humantime::format_duration(v.value.0),
                humantime::format_duration(heartbeat)
            ),
        );
    }
    let stress_threshold = p
        .stress_threshold
        .as_ref()
        .map_or(DEFAULT_STRESS_THRESHOLD, |v| v.value);
    if let Some(v) = &p.stress_threshold
        && !(v.value > 0.0 && v.value <= 1.0)
    {
        r.error(
            pos(v),
            "policy.stress_threshold",
            format!("{} is outside (0, 1]", v.value),
        );
    }

    // Regions.
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut region_ids: HashSet<RegionId> = HashSet::new();
    if raw.regions.value.is_empty() {
        r.error(
            pos(&raw.regions),
            "regions",
            "at least one region is required",
        );
    }
    for (i, reg) in raw.regions.value.iter().enumerate() {
        let path = format!("regions[{i}]");
        check_unique(
            &mut r,
            &mut ids,
            reg.id.value.as_str(),
            pos(&reg.id),
            format!("{path}.id"),
        );
        region_ids.insert(reg.id.value.clone());
        check_point(&mut r, &reg.location, &format!("{path}.location"));
        if reg.provider_region.value.trim().is_empty() {
            r.error(
                pos(&reg.provider_region),
                format!("{path}.provider_region"),
                "must not be empty",
            );
        }
    }
    let region_ref = |r: &mut Report, v: &S<RegionId>, path: String| {
        if !region_ids.contains(&v.value) {
            let known: Vec<_> = raw
                .regions
                .value
                .iter()
                .map(|x| x.id.value.as_str())
                .collect();
            r.error(
                pos(v),
                path,
                format!(
                    "unknown region {:?} (known: {})",
                    v.value.as_str(),
                    known.join(", ")
                ),
            );
        }
    };

    // Ports in use per host: (ip, proto, port) → path of first user.
    let mut ports: HashMap<(IpAddr, &'static str, u16), String> = HashMap::new();
    let mut claim =
        |r: &mut Report, ip: IpAddr, proto: &'static str, port: u16, at, path: String| {
            if port == 0 {
                r.error(at, path, "port 0 is not a fixed port");
                return;
            }
            match ports.get(&(ip, proto, port)) {
                Some(first) => r.error(
                    at,
                    path,
                    format!("{proto} port {port} on {ip} is already used by {first}"),
                ),
                None => {
                    ports.insert((ip, proto, port), path);
                }
            }
        };

    // Edges.
    let mut edges_per_region: BTreeMap<RegionId, usize> = BTreeMap::new();
    for (i, e) in raw.edges.value.iter().enumerate() {
        let path = format!("edges[{i}]");
        check_unique(
            &mut r,
            &mut ids,
            e.id.value.as_str(),
            pos(&e.id),
            format!("{path}.id"),
        );
        region_ref(&mut r, &e.region, format!("{path}.region"));
        *edges_per_region.entry(e.region.value.clone()).or_default() += 1;
        let ip = e.public_ip.value;
        if ip.is_unspecified() || ip.is_multicast() {
            r.error(
                pos(&e.public_ip),
                format!("{path}.public_ip"),
                format!("{ip} cannot be advertised to clients (give the address they reach)"),
            );
        }
        let media_port = e
            .media_port
            .as_ref()
            .map_or(DEFAULT_MEDIA_PORT, |v| v.value);
        let media_at = e.media_port.as_ref().and_then(pos).or(pos(&e.public_ip));
        claim(
            &mut r,
            ip,
            "udp",
            media_port,
            media_at,
            format!("{path}.media_port"),
        );
        claim(
            &mut r,
            e.http.value.ip(),
            "tcp",
            e.http.value.port(),
            pos(&e.http),
            format!("{path}.http"),
        );
        claim(
            &mut r,
            e.octo.value.ip(),
            "udp",
            e.octo.value.port(),
            pos(&e.octo),
            format!("{path}.octo"),
        );
        if e.capacity.value == 0 {
            r.error(
                pos(&e.capacity),
                format!("{path}.capacity"),
                "must be at least 1",
            );
        }
        if let Some(u) = &e.public_url
            && !(u.value.starts_with("http://") || u.value.starts_with("https://"))
        {
            r.error(
                pos(u),
                format!("{path}.public_url"),
                format!("{:?} must start with http:// or https://", u.value),
            );
        }
    }

    // Selectors.
    let n = raw.selectors.value.len();
    if !matches!(n, 1 | 3 | 5) {
        let why = if n == 0 {
            "at least one selector is required".to_string()
        } else if n.is_multiple_of(2) {
            format!(
                "{n} selectors: an even count tolerates no more failures than {} and risks split votes; use 1, 3 or 5",
                n - 1
            )
        } else {
            format!("{n} selectors: use 1, 3 or 5 (more slows every write for little gain)")
        };
        r.error(pos(&raw.selectors), "selectors", why);
    }
    for (i, s) in raw.selectors.value.iter().enumerate() {
        let path = format!("selectors[{i}]");
        check_unique(
            &mut r,
            &mut ids,
            s.id.value.as_str(),
            pos(&s.id),
            format!("{path}.id"),
        );
        region_ref(&mut r, &s.region, format!("{path}.region"));
        claim(
            &mut r,
            s.api.value.ip(),
            "tcp",
            s.api.value.port(),
            pos(&s.api),
            format!("{path}.api"),
        );
        claim(
            &mut r,
            s.raft.value.ip(),
            "tcp",
            s.raft.value.port(),
            pos(&s.raft),
            format!("{path}.raft"),
        );
        if let Some(d) = &s.dns {
            claim(
                &mut r,
                d.value.ip(),
                "udp",
                d.value.port(),
                pos(d),
                format!("{path}.dns"),
            );
        }
    }

    // GeoIP.
    let mut cidrs: HashMap<ipnet::IpNet, String> = HashMap::new();
    let mut overrides = Vec::new();
    for (i, o) in raw.geoip.overrides.iter().enumerate() {
        let path = format!("geoip.overrides[{i}]");
        let cidr = o.cidr.value.trunc();
        if cidr != o.cidr.value {
            r.warning(
                pos(&o.cidr),
                format!("{path}.cidr"),
                format!("{} has host bits set; read as {cidr}", o.cidr.value),
            );
        }
        if let Some(first) = cidrs.get(&cidr) {
            r.error(
                pos(&o.cidr),
                format!("{path}.cidr"),
                format!("{cidr} is already overridden by {first}"),
            );
        } else {
            cidrs.insert(cidr, path.clone());
        }
        if let Some(reg) = &o.region {
            region_ref(&mut r, reg, format!("{path}.region"));
        }
        if let Some(l) = &o.location {
            check_point(&mut r, l, &format!("{path}.location"));
        }
        let location = match (&o.location, &o.region) {
            (Some(l), _) => Some(l.value),
            (None, Some(reg)) => raw
                .regions
                .value
                .iter()
                .find(|x| x.id.value == reg.value)
                .map(|x| x.location.value),
            (None, None) => {
                r.error(pos(&o.cidr), path.clone(), "needs a region or a location");
                None
            }
        };
        if let Some(location) = location {
            overrides.push(GeoIpOverride {
                cidr,
                location,
                region: o.region.as_ref().map(|x| x.value.clone()),
            });
        }
    }
    if let Some(l) = &raw.geoip.default_location {
        check_point(&mut r, l, "geoip.default_location");
    }
    let mode = raw
        .access
        .as_ref()
        .and_then(|a| a.value.mode.as_ref().map(|m| m.value))
        .unwrap_or(AccessMode::Grants);
    let mut keys = Vec::new();
    if let Some(a) = &raw.access {
        for (i, k) in a.value.keys.iter().enumerate() {
            let path = format!("access.keys[{i}]");
            let id_ok = !k.id.value.is_empty()
                && k.id.value.len() <= 64
                && k.id
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !id_ok {
                r.error(
                    pos(&k.id),
                    format!("{path}.id"),
                    "1-64 letters, digits, '.', '_' or '-'",
                );
            }
            if a.value.keys[..i].iter().any(|o| o.id.value == k.id.value) {
                r.error(
                    pos(&k.id),
                    format!("{path}.id"),
                    format!("key id {:?} appears twice", k.id.value),
                );
            }
            match (&k.secret_file, &k.public_key_file) {
                (Some(f), None) => keys.push(AccessKey {
                    id: k.id.value.clone(),
                    material: KeyMaterial::Secret(f.value.clone()),
                }),
                (None, Some(f)) => keys.push(AccessKey {
                    id: k.id.value.clone(),
                    material: KeyMaterial::PublicKey(f.value.clone()),
                }),
                _ => r.error(
                    pos(&k.id),
                    path,
                    "give exactly one of secret_file (HS256) or public_key_file (Ed25519)",
                ),
            }
        }
        if mode == AccessMode::Open && !a.value.keys.is_empty() {
            r.warning(
                pos(a),
                "access.keys",
                "mode is open: keys are not used (anyone may join)",
            );
        }
    }
    if mode == AccessMode::Grants && keys.is_empty() {
        let at = raw.access.as_ref().map_or(pos(&raw.version), pos);
        r.warning(
            at,
            "access",
            "no application key: nobody can join (add access.keys, or access: { mode: open } for a demo)",
        );
    }

    // Warnings last: they matter only if the rest is sound.
    for (i, reg) in raw.regions.value.iter().enumerate() {
        if !edges_per_region.contains_key(&reg.id.value) {
            r.warning(
                pos(&reg.id),
                format!("regions[{i}]"),
                format!(
                    "region {:?} has no edges; nobody is placed there",
                    reg.id.value.as_str()
                ),
            );
        }
    }
    if raw.edges.value.is_empty() {
        r.warning(
            pos(&raw.edges),
            "edges",
            "no edges: nobody can join a meeting",
        );
    }

    r.diagnostics.sort_by_key(|d| {
        d.position
            .map(|p| (p.line, p.column))
            .unwrap_or((u64::MAX, 0))
    });
    if r.has_errors() {
        return Err(TopologyError::Invalid {
            diagnostics: r.diagnostics,
        });
    }

    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let topology = Topology {
        cluster: Cluster {
            name: raw.cluster.name.value,
            domain: raw.cluster.domain.map(|d| d.value),
        },
        policy: Policy {
            max_edges_per_conference: max_edges,
            heartbeat_interval: heartbeat,
            health_timeout,
            stress_threshold,
        },
        tls: TlsSettings {
            dir: resolve(&raw.tls.dir.value),
        },
        access: Access {
            mode,
            keys: keys
                .into_iter()
                .map(|k| AccessKey {
                    material: match k.material {
                        KeyMaterial::Secret(p) => KeyMaterial::Secret(resolve(&p)),
                        KeyMaterial::PublicKey(p) => KeyMaterial::PublicKey(resolve(&p)),
                    },
                    ..k
                })
                .collect(),
            operator_token_file: raw
                .access
                .as_ref()
                .and_then(|a| a.value.operator_token_file.as_ref())
                .map(|f| resolve(&f.value)),
        },
        geoip: GeoIpSettings {
            databases: raw
                .geoip
                .databases
                .iter()
                .map(|d| resolve(&d.value))
                .collect(),
            overrides,
            default_location: raw.geoip.default_location.map(|l| l.value),
        },
        regions: raw
            .regions
            .value
            .into_iter()
            .map(|x| Region {
                id: x.id.value,
                name: x.name,
                location: x.location.value,
                provider: x.provider,
                provider_region: x.provider_region.value,
                group: x.group,
            })
            .collect(),
        edges: raw
            .edges
            .value
            .into_iter()
            .map(|x| Edge {
                id: x.id.value,
                region: x.region.value,
                public_ip: x.public_ip.value,
                bind_ip: x
                    .bind_ip
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |b| b.value),
                media_port: x.media_port.map_or(DEFAULT_MEDIA_PORT, |m| m.value),
                http: x.http.value,
                octo: x.octo.value,
                capacity: x.capacity.value,
                public_url: x.public_url.map(|u| u.value),
            })
            .collect(),
        selectors: raw
            .selectors
            .value
            .into_iter()
            .map(|x| Selector {
                id: x.id.value,
                region: x.region.value,
                api: x.api.value,
                raft: x.raft.value,
                dns: x.dns.map(|d| d.value),
                bind_ip: x.bind_ip.map(|b| b.value),
            })
            .collect(),
    };
    Ok(Loaded {
        topology,
        warnings: r.diagnostics,
    })
}
