//! A checked file into a [`Topology`]: defaults filled in, paths resolved
//! against the file's directory.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::super::file::RawTopology;
use super::super::{
    Access, AccessKey, Cluster, DEFAULT_MEDIA_PORT, Edge, GeoIpOverride, GeoIpSettings,
    KeyMaterial, Policy, Recorder, Region, Selector, TlsSettings, Topology,
};
use super::settings::AccessParts;

pub(super) fn topology(
    raw: RawTopology,
    base_dir: &Path,
    policy: Policy,
    overrides: Vec<GeoIpOverride>,
    access: AccessParts,
) -> Topology {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    Topology {
        cluster: Cluster {
            name: raw.cluster.name.value,
            domain: raw.cluster.domain.map(|d| d.value),
        },
        policy,
        tls: TlsSettings {
            dir: resolve(&raw.tls.dir.value),
        },
        access: Access {
            mode: access.mode,
            keys: access
                .keys
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
        recorders: raw
            .recorders
            .into_iter()
            .map(|x| Recorder {
                id: x.id.value,
                region: x.region.value,
                bind_ip: x
                    .bind_ip
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |b| b.value),
                http: x.http.value,
                octo: x.octo.value,
                capacity: x.capacity.value,
            })
            .collect(),
    }
}
