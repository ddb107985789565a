//! # geomesh-geoip
//!
//! Where is this client, and which region is nearest to it?
//!
//! This crate **owns**:
//!
//! - reading GeoIP databases in the MaxMind DB format ([`Database`], with
//!   `maxminddb`, memory-mapped): MaxMind GeoIP2/GeoLite2 City and Country,
//!   and the flat schema of ip-location-db and DB-IP lite, detected from the
//!   metadata or the records ([`Schema`]);
//! - country-only answers via an embedded country → representative point
//!   table ([`centroids`], mledoze/countries, ODbL);
//! - the topology's CIDR overrides, most specific prefix first
//!   ([`Overrides`]);
//! - resolving an address with all of these ([`GeoIp::lookup`] →
//!   [`IpLocation`], or [`LookupError::Unknown`] and then
//!   [`GeoIp::default_location`]);
//! - great-circle distance ([`haversine_km`]) and the nearest region
//!   ([`nearest_region`]);
//! - the world's land outline for maps ([`world`]: Natural Earth 1:110m,
//!   embedded).
//!
//! It does **not** own placement or scoring (`geomesh-selector`), the
//! topology schema and its validation (`geomesh-core`), or fetching and
//! updating database files (`scripts/fetch-geoip.sh`, the operator).
//!
//! ## Use
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use geomesh_geoip::{GeoIp, LookupError, nearest_region};
//! # let topology: geomesh_core::Topology = unimplemented!();
//! let geoip = GeoIp::from_settings(&topology.geoip)?; // opens every database
//! let ip = "193.0.6.139".parse()?;
//! let point = match geoip.lookup(ip) {
//!     Ok(loc) => Some(loc.point),
//!     Err(LookupError::Unknown { .. }) => geoip.default_location(),
//!     Err(e) => return Err(e.into()),
//! };
//! if let Some(point) = point {
//!     let (region, km) = nearest_region(point, &topology.regions).expect("regions");
//!     println!("{ip} → {} ({km:.0} km)", region.id.as_str());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Lookups take `&self`, do no I/O beyond reading the mapped file, and never
//! panic on a bad file or record: those are [`GeoIpError`] at open time and
//! [`LookupError`] at lookup time.
//!
//! The one `unsafe` block (memory-mapping the file) is in
//! `database::map_file`; databases must be replaced by rename, never
//! rewritten in place.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod centroids;
mod database;
mod distance;
mod error;
mod geoip;
mod location;
mod overrides;
mod record;
mod schema;
pub mod world;

pub use centroids::country_centroid;
pub use database::Database;
pub use distance::{EARTH_MEAN_RADIUS_KM, haversine_km, nearest_region};
pub use error::{GeoIpError, LookupError};
pub use geoip::GeoIp;
pub use location::{IpLocation, Source};
pub use overrides::Overrides;
pub use schema::{Layout, Schema};
