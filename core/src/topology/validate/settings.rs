//! `geoip` (overrides of the database per address range) and `access`
//! (who may join: application keys or open mode).

use std::collections::HashMap;

use super::super::file::pos;
use super::super::{AccessKey, AccessMode, GeoIpOverride, KeyMaterial};
use super::Checker;

/// Access as the file states it (key paths still relative).
pub(super) struct AccessParts {
    pub mode: AccessMode,
    pub keys: Vec<AccessKey>,
}

impl Checker<'_> {
    pub(super) fn geoip(&mut self) -> Vec<GeoIpOverride> {
        let raw = self.raw;
        let mut cidrs: HashMap<ipnet::IpNet, String> = HashMap::new();
        let mut overrides = Vec::new();
        for (i, o) in raw.geoip.overrides.iter().enumerate() {
            let path = format!("geoip.overrides[{i}]");
            let cidr = o.cidr.value.trunc();
            if cidr != o.cidr.value {
                self.r.warning(
                    pos(&o.cidr),
                    format!("{path}.cidr"),
                    format!("{} has host bits set; read as {cidr}", o.cidr.value),
                );
            }
            if let Some(first) = cidrs.get(&cidr) {
                self.r.error(
                    pos(&o.cidr),
                    format!("{path}.cidr"),
                    format!("{cidr} is already overridden by {first}"),
                );
            } else {
                cidrs.insert(cidr, path.clone());
            }
            if let Some(reg) = &o.region {
                self.region_ref(reg, format!("{path}.region"));
            }
            if let Some(l) = &o.location {
                self.point(l, &format!("{path}.location"));
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
                    self.r
                        .error(pos(&o.cidr), path.clone(), "needs a region or a location");
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
            self.point(l, "geoip.default_location");
        }
        overrides
    }

    pub(super) fn access(&mut self) -> AccessParts {
        let raw = self.raw;
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
                    self.r.error(
                        pos(&k.id),
                        format!("{path}.id"),
                        "1-64 letters, digits, '.', '_' or '-'",
                    );
                }
                if a.value.keys[..i].iter().any(|o| o.id.value == k.id.value) {
                    self.r.error(
                        pos(&k.id),
                        format!("{path}.id"),
                        format!("key id {:?} appears twice", k.id.value),
                    );
                }
                let material = match (&k.secret_file, &k.public_key_file) {
                    (Some(f), None) => Some(KeyMaterial::Secret(f.value.clone())),
                    (None, Some(f)) => Some(KeyMaterial::PublicKey(f.value.clone())),
                    _ => {
                        self.r.error(
                            pos(&k.id),
                            path,
                            "give exactly one of secret_file (HS256) or public_key_file (Ed25519)",
                        );
                        None
                    }
                };
                if let Some(material) = material {
                    keys.push(AccessKey {
                        id: k.id.value.clone(),
                        material,
                    });
                }
            }
            if mode == AccessMode::Open && !a.value.keys.is_empty() {
                self.r.warning(
                    pos(a),
                    "access.keys",
                    "mode is open: keys are not used (anyone may join)",
                );
            }
        }
        if mode == AccessMode::Grants && keys.is_empty() {
            let at = raw.access.as_ref().map_or(pos(&raw.version), pos);
            self.r.warning(
                at,
                "access",
                "no application key: nobody can join (add access.keys, or access: { mode: open } for a demo)",
            );
        }
        AccessParts { mode, keys }
    }
}
