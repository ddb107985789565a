//! The two error kinds: opening a database, and looking an address up.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::schema::{Layout, Schema};

/// Why a GeoIP database could not be opened.
///
/// Every problem with a file (missing, unreadable, garbage, truncated, not a
/// location database, a schema this crate does not understand) is reported
/// here, when the database is opened, never later as a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoIpError {
    /// The file could not be opened or memory-mapped.
    #[error("GeoIP database {path}: cannot open: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid MaxMind DB (no metadata, bad metadata, a
    /// search tree that does not fit the file, ...).
    #[error("GeoIP database {path}: not a valid MMDB file: {source}")]
    Invalid {
        /// The database file.
        path: PathBuf,
        /// What the reader found wrong.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// A valid MMDB file whose type says it holds no locations (ASN, ISP,
    /// anonymous-IP, ...).
    #[error("GeoIP database {path}: database type {database_type:?} holds no locations")]
    NotLocationDatabase {
        /// The database file.
        path: PathBuf,
        /// `database_type` from the metadata.
        database_type: String,
    },
    /// The database type is not one this crate knows, and its records have
    /// neither the GeoIP2 shape (`country`/`location` maps) nor the flat shape
    /// (`country_code`, `latitude`, `longitude`).
    #[error(
        "GeoIP database {path}: cannot tell its schema: database type {database_type:?} is not \
         recognised and its first records have top-level keys {keys:?}"
    )]
    UnrecognisedSchema {
        /// The database file.
        path: PathBuf,
        /// `database_type` from the metadata.
        database_type: String,
        /// The top-level keys seen in the sampled records (sorted, at most 32).
        keys: Vec<String>,
    },
    /// The database type names one schema but the records have the other
    /// layout.
    #[error(
        "GeoIP database {path}: database type {database_type:?} means schema {expected}, \
         but its records have the {found} layout"
    )]
    SchemaMismatch {
        /// The database file.
        path: PathBuf,
        /// `database_type` from the metadata.
        database_type: String,
        /// The schema the type names.
        expected: Schema,
        /// The layout the records have.
        found: Layout,
    },
    /// A sampled record could not be read: the data section is corrupt, a
    /// record is not a map, or a field has the wrong type for the detected
    /// schema (`country` holding a string, say).
    #[error("GeoIP database {path}: a sample record does not decode: {source}")]
    SampleRecord {
        /// The database file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
}

/// Why an address has no location.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No override and no database knows where this address is. Callers
    /// fall back to [`GeoIp::default_location`](crate::GeoIp::default_location).
    #[error("no location known for {ip}")]
    Unknown {
        /// The address (IPv4-mapped IPv6 addresses are reported as IPv4).
        ip: IpAddr,
    },
    /// The database has a record for the address, but it does not decode.
    #[error("GeoIP database {path}: record for {ip} does not decode: {source}")]
    Decode {
        /// The address.
        ip: IpAddr,
        /// The database file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// The record decodes but its coordinates are out of range or only half
    /// there.
    #[error("GeoIP database {path}: record for {ip} has bad coordinates {lat:?}, {lon:?}")]
    BadCoordinates {
        /// The address.
        ip: IpAddr,
        /// The database file.
        path: PathBuf,
        /// Latitude as stored.
        lat: Option<f64>,
        /// Longitude as stored.
        lon: Option<f64>,
    },
}
