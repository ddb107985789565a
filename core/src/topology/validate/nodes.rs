//! `regions`, `edges`, `selectors` and `recorders`: unique ids, known regions, and
//! no two listeners on one host's port.

use std::net::IpAddr;

use super::super::file::{S, pos};
use super::super::{DEFAULT_MEDIA_PORT, Position};
use super::Checker;
use crate::id::RegionId;

impl Checker<'_> {
    pub(super) fn regions(&mut self) {
        let raw = self.raw;
        if raw.regions.value.is_empty() {
            self.r.error(
                pos(&raw.regions),
                "regions",
                "at least one region is required",
            );
        }
        for (i, reg) in raw.regions.value.iter().enumerate() {
            let path = format!("regions[{i}]");
            self.unique(reg.id.value.as_str(), pos(&reg.id), format!("{path}.id"));
            self.region_ids.insert(reg.id.value.clone());
            self.point(&reg.location, &format!("{path}.location"));
            if reg.provider_region.value.trim().is_empty() {
                self.r.error(
                    pos(&reg.provider_region),
                    format!("{path}.provider_region"),
                    "must not be empty",
                );
            }
        }
    }

    /// A reference to a region must name one of `regions`.
    pub(super) fn region_ref(&mut self, v: &S<RegionId>, path: String) {
        if self.region_ids.contains(&v.value) {
            return;
        }
        let known: Vec<_> = self
            .raw
            .regions
            .value
            .iter()
            .map(|x| x.id.value.as_str())
            .collect();
        self.r.error(
            pos(v),
            path,
            format!(
                "unknown region {:?} (known: {})",
                v.value.as_str(),
                known.join(", ")
            ),
        );
    }

    /// A listener on `ip`'s `proto` `port`: fixed, and nobody else's.
    fn claim(
        &mut self,
        ip: IpAddr,
        proto: &'static str,
        port: u16,
        at: Option<Position>,
        path: String,
    ) {
        if port == 0 {
            self.r.error(at, path, "port 0 is not a fixed port");
            return;
        }
        match self.ports.get(&(ip, proto, port)) {
            Some(first) => self.r.error(
                at,
                path,
                format!("{proto} port {port} on {ip} is already used by {first}"),
            ),
            None => {
                self.ports.insert((ip, proto, port), path);
            }
        }
    }

    pub(super) fn edges(&mut self) {
        let raw = self.raw;
        for (i, e) in raw.edges.value.iter().enumerate() {
            let path = format!("edges[{i}]");
            self.unique(e.id.value.as_str(), pos(&e.id), format!("{path}.id"));
            self.region_ref(&e.region, format!("{path}.region"));
            *self
                .edges_per_region
                .entry(e.region.value.clone())
                .or_default() += 1;
            let ip = e.public_ip.value;
            if ip.is_unspecified() || ip.is_multicast() {
                self.r.error(
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
            self.claim(
                ip,
                "udp",
                media_port,
                media_at,
                format!("{path}.media_port"),
            );
            let (http, octo) = (e.http.value, e.octo.value);
            self.claim(
                http.ip(),
                "tcp",
                http.port(),
                pos(&e.http),
                format!("{path}.http"),
            );
            self.claim(
                octo.ip(),
                "udp",
                octo.port(),
                pos(&e.octo),
                format!("{path}.octo"),
            );
            if e.capacity.value == 0 {
                self.r.error(
                    pos(&e.capacity),
                    format!("{path}.capacity"),
                    "must be at least 1",
                );
            }
            if let Some(u) = &e.public_url
                && !(u.value.starts_with("http://") || u.value.starts_with("https://"))
            {
                self.r.error(
                    pos(u),
                    format!("{path}.public_url"),
                    format!("{:?} must start with http:// or https://", u.value),
                );
            }
        }
    }

    pub(super) fn selectors(&mut self) {
        let raw = self.raw;
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
            self.r.error(pos(&raw.selectors), "selectors", why);
        }
        for (i, s) in raw.selectors.value.iter().enumerate() {
            let path = format!("selectors[{i}]");
            self.unique(s.id.value.as_str(), pos(&s.id), format!("{path}.id"));
            self.region_ref(&s.region, format!("{path}.region"));
            let (api, raft) = (s.api.value, s.raft.value);
            self.claim(
                api.ip(),
                "tcp",
                api.port(),
                pos(&s.api),
                format!("{path}.api"),
            );
            self.claim(
                raft.ip(),
                "tcp",
                raft.port(),
                pos(&s.raft),
                format!("{path}.raft"),
            );
            if let Some(d) = &s.dns {
                let dns = d.value;
                self.claim(dns.ip(), "udp", dns.port(), pos(d), format!("{path}.dns"));
            }
        }
    }

    pub(super) fn recorders(&mut self) {
        let raw = self.raw;
        for (i, r) in raw.recorders.iter().enumerate() {
            let path = format!("recorders[{i}]");
            self.unique(r.id.value.as_str(), pos(&r.id), format!("{path}.id"));
            self.region_ref(&r.region, format!("{path}.region"));
            let (http, octo) = (r.http.value, r.octo.value);
            self.claim(
                http.ip(),
                "tcp",
                http.port(),
                pos(&r.http),
                format!("{path}.http"),
            );
            self.claim(
                octo.ip(),
                "udp",
                octo.port(),
                pos(&r.octo),
                format!("{path}.octo"),
            );
            if r.capacity.value == 0 {
                self.r.error(
                    pos(&r.capacity),
                    format!("{path}.capacity"),
                    "must be at least 1 (concurrent recordings)",
                );
            }
        }
    }
}
