//! `geomesh geoip …`

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use geomesh_core::topology::GeoIpSettings;
use geomesh_geoip::{GeoIp, LookupError, nearest_region};
use serde_json::json;

/// GeoIP subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Locate addresses; prints one JSON object per address.
    ///
    /// With --topology, its GeoIP databases and CIDR overrides are used and
    /// the nearest region is reported; --db replaces the topology's
    /// databases (repeat it for several files, e.g. IPv4 and IPv6).
    Lookup {
        /// Addresses to locate.
        #[arg(required = true)]
        ips: Vec<IpAddr>,
        /// MMDB database file(s).
        #[arg(long)]
        db: Vec<PathBuf>,
        /// A topology with GeoIP settings and regions.
        #[arg(long)]
        topology: Option<PathBuf>,
    },
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Command::Lookup { ips, db, topology } = self;
        let topology = topology.map(|t| super::load_topology(&t)).transpose()?;
        let mut settings = topology
            .as_ref()
            .map_or_else(GeoIpSettings::default, |t| t.geoip.clone());
        if !db.is_empty() {
            settings.databases = db;
        }
        if settings.databases.is_empty() && settings.overrides.is_empty() {
            anyhow::bail!("no GeoIP database: pass --db FILE or a --topology that lists one");
        }
        let geoip = GeoIp::from_settings(&settings)?;
        let mut unknown = 0;
        for ip in ips {
            let line = match geoip.lookup(ip) {
                Ok(loc) => {
                    let mut v = json!({ "ip": ip, "found": true });
                    v.as_object_mut().expect("json! object").extend(
                        serde_json::to_value(&loc)?
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    );
                    if let Some(t) = &topology
                        && let Some((r, km)) = nearest_region(loc.point, &t.regions)
                    {
                        v["nearest_region"] =
                            json!({ "id": r.id, "distance_km": (km * 10.0).round() / 10.0 });
                    }
                    v
                }
                Err(LookupError::Unknown { .. }) => {
                    unknown += 1;
                    let mut v = json!({ "ip": ip, "found": false, "error": "unknown address" });
                    if let Some(p) = geoip.default_location() {
                        v["default_location"] = json!(p);
                    }
                    v
                }
                Err(e) => {
                    unknown += 1;
                    json!({ "ip": ip, "found": false, "error": e.to_string() })
                }
            };
            println!("{line}");
        }
        tracing::debug!(unknown, "lookups done");
        Ok(ExitCode::SUCCESS)
    }
}
