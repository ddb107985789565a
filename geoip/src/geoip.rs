//! The resolver: overrides first, then the databases in order.

use std::net::IpAddr;

use geomesh_core::GeoPoint;
use geomesh_core::topology::{GeoIpOverride, GeoIpSettings};

use crate::database::Database;
use crate::error::{GeoIpError, LookupError};
use crate::location::{IpLocation, Source};
use crate::overrides::Overrides;

/// IP → location resolver built from the topology's `geoip` section.
///
/// Resolution order for an address (IPv4-mapped IPv6 is taken as IPv4):
///
/// 1. the most specific CIDR override containing it;
/// 2. the first database, in configured order, whose record has coordinates;
/// 3. otherwise the first database whose record names a country: that
///    country's representative point;
/// 4. otherwise [`LookupError::Unknown`]; callers then use
///    [`GeoIp::default_location`] if the topology sets one.
///
/// `GeoIp` is `Send + Sync`; lookups take `&self` and never block.
#[derive(Debug)]
pub struct GeoIp {
    databases: Vec<Database>,
    overrides: Overrides,
    default_location: Option<GeoPoint>,
}

impl GeoIp {
    /// Opens every database in `settings.databases`, in order, and builds
    /// the override table.
    ///
    /// # Errors
    ///
    /// The first database that fails to open (see [`Database::open`]).
    pub fn from_settings(settings: &GeoIpSettings) -> Result<GeoIp, GeoIpError> {
        let databases = settings
            .databases
            .iter()
            .map(Database::open)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GeoIp::new(
            databases,
            settings.overrides.clone(),
            settings.default_location,
        ))
    }

    /// A resolver over already opened databases (tried in this order),
    /// overrides and an optional default location.
    pub fn new(
        databases: Vec<Database>,
        overrides: Vec<GeoIpOverride>,
        default_location: Option<GeoPoint>,
    ) -> GeoIp {
        GeoIp {
            databases,
            overrides: Overrides::new(overrides),
            default_location,
        }
    }

    /// Where `ip` is.
    ///
    /// # Errors
    ///
    /// [`LookupError::Unknown`] if no override and no database knows the
    /// address; [`LookupError::Decode`] or [`LookupError::BadCoordinates`]
    /// if a database's record for it is broken (later databases are then not
    /// consulted: a broken database is reported, not papered over).
    pub fn lookup(&self, ip: IpAddr) -> Result<IpLocation, LookupError> {
        let ip = ip.to_canonical();
        if let Some(o) = self.overrides.lookup(ip) {
            tracing::trace!(%ip, cidr = %o.cidr, "GeoIP override");
            return Ok(IpLocation {
                point: o.location,
                country: None,
                continent: None,
                city: None,
                accuracy_radius_km: None,
                region: o.region.clone(),
                source: Source::Override { cidr: o.cidr },
            });
        }
        let mut centroid = None;
        for db in &self.databases {
            match db.lookup(ip)? {
                Some(loc) if loc.source.is_centroid() => {
                    centroid.get_or_insert(loc);
                }
                Some(loc) => return Ok(loc),
                None => {}
            }
        }
        centroid.ok_or(LookupError::Unknown { ip })
    }

    /// Where to assume a client is when [`GeoIp::lookup`] says
    /// [`LookupError::Unknown`]: the topology's `geoip.default_location`.
    pub fn default_location(&self) -> Option<GeoPoint> {
        self.default_location
    }

    /// The databases, in lookup order.
    pub fn databases(&self) -> &[Database] {
        &self.databases
    }

    /// The override table.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<GeoIp>();
        send_sync::<Database>();
    }
}
