//! One memory-mapped MMDB file with a known schema.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use geomesh_core::GeoPoint;
use maxminddb::{LookupResult, MaxMindDbError, Mmap, Reader, WithinOptions};
use serde::de::IgnoredAny;

use crate::centroids::country_centroid;
use crate::error::{GeoIpError, LookupError};
use crate::location::{IpLocation, Source};
use crate::record::{Fields, FlatRecord, GeoIp2Record, non_empty};
use crate::schema::{Layout, Schema, Shape, TypeHint, schema_for_type};

/// At most this many records are sampled to detect and check the schema.
const SAMPLE_RECORDS: usize = 16;
/// At most this many tree leaves (with or without data) are walked to find them.
const SAMPLE_LEAVES: usize = 4096;

/// How the schema was decided (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DetectedBy {
    DatabaseType,
    DatabaseTypeAndRecordShape,
    RecordShape,
}

impl fmt::Display for DetectedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetectedBy::DatabaseType => "database_type",
            DetectedBy::DatabaseTypeAndRecordShape => "database_type + record shape",
            DetectedBy::RecordShape => "record shape",
        })
    }
}

/// A GeoIP database (MaxMind DB format), memory-mapped, with its schema
/// detected when it was opened.
///
/// The file must not be modified while it is open: replace it by writing a
/// new file and renaming it over the old one (as `geoipupdate` and
/// `scripts/fetch-geoip.sh` do), then open the new one.
pub struct Database {
    reader: Reader<Mmap>,
    path: Arc<Path>,
    schema: Schema,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .field("schema", &self.schema)
            .field("database_type", &self.database_type())
            .finish_non_exhaustive()
    }
}

/// Maps `path` and parses its metadata.
///
/// This is the crate's only `unsafe` code.
#[allow(unsafe_code)]
fn map_file(path: &Path) -> Result<Reader<Mmap>, MaxMindDbError> {
    // SAFETY: `open_mmap` requires that the file is not modified or truncated
    // while the mapping exists. geomesh only reads it, and operators replace
    // GeoIP databases by renaming a new file over the old path (a new inode),
    // never by writing into the file in place; this is documented on
    // `Database` and done by scripts/fetch-geoip.sh.
    unsafe { Reader::open_mmap(path) }
}

impl Database {
    /// Opens and memory-maps an MMDB file, detects its schema and decodes a
    /// few sample records with it.
    ///
    /// Logs (at `info`) which schema was detected and how.
    ///
    /// # Errors
    ///
    /// [`GeoIpError::Io`] if the file cannot be opened or mapped,
    /// [`GeoIpError::Invalid`] if it is not a valid MMDB file (garbage,
    /// truncated, ...), [`GeoIpError::NotLocationDatabase`] for ASN/ISP-style
    /// databases, [`GeoIpError::UnrecognisedSchema`],
    /// [`GeoIpError::SchemaMismatch`] and [`GeoIpError::SampleRecord`] when
    /// the records do not fit a schema this crate reads.
    pub fn open(path: impl AsRef<Path>) -> Result<Database, GeoIpError> {
        let path = path.as_ref();
        let owned = || path.to_path_buf();
        let reader = map_file(path).map_err(|e| match e {
            MaxMindDbError::Io(source) | MaxMindDbError::Mmap(source) => GeoIpError::Io {
                path: owned(),
                source,
            },
            source => GeoIpError::Invalid {
                path: owned(),
                source,
            },
        })?;
        let database_type = reader.metadata().database_type.clone();
        let hint = schema_for_type(&database_type);
        if hint == TypeHint::NotLocation {
            return Err(GeoIpError::NotLocationDatabase {
                path: owned(),
                database_type,
            });
        }

        let (schema, detected_by, sampled) = detect(&reader, path, hint)?;

        let md = reader.metadata();
        tracing::info!(
            path = %path.display(),
            database_type = %md.database_type,
            %schema,
            detected_by = %detected_by,
            ip_version = md.ip_version,
            node_count = md.node_count,
            build_epoch = md.build_epoch,
            sampled_records = sampled,
            "GeoIP database opened: schema {schema} (from {detected_by})"
        );
        if sampled == 0 {
            tracing::warn!(path = %path.display(), "GeoIP database has no records");
        }
        Ok(Database {
            reader,
            path: Arc::from(path),
            schema,
        })
    }

    /// The record schema.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The file this database was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `database_type` from the file's metadata.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Looks `ip` up in this database alone.
    ///
    /// IPv4-mapped IPv6 addresses are looked up as IPv4; an IPv6 address in
    /// an IPv4-only database is simply not found. A record with coordinates
    /// gives [`Source::Database`]; a record with only a country gives that
    /// country's representative point and [`Source::CountryCentroid`].
    ///
    /// Returns `Ok(None)` if there is no record, or the record has neither
    /// coordinates nor a country in the centroid table.
    ///
    /// # Errors
    ///
    /// [`LookupError::Decode`] if the record does not decode,
    /// [`LookupError::BadCoordinates`] if its coordinates are out of range or
    /// only one of the two is present.
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<IpLocation>, LookupError> {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(None);
        }
        let decode_err = |source| LookupError::Decode {
            ip,
            path: self.path.to_path_buf(),
            source,
        };
        let result = self.reader.lookup(ip).map_err(decode_err)?;
        let fields = match self.schema.layout() {
            Layout::GeoIp2 => result
                .decode::<GeoIp2Record<'_>>()
                .map_err(decode_err)?
                .map(|r| r.fields()),
            Layout::Flat => result
                .decode::<FlatRecord<'_>>()
                .map_err(decode_err)?
                .map(|r| r.fields()),
        };
        match fields {
            Some(fields) => self.locate(ip, &fields),
            None => Ok(None),
        }
    }

    /// Turns a record's fields into a location.
    fn locate(&self, ip: IpAddr, f: &Fields<'_>) -> Result<Option<IpLocation>, LookupError> {
        let bad = || LookupError::BadCoordinates {
            ip,
            path: self.path.to_path_buf(),
            lat: f.latitude,
            lon: f.longitude,
        };
        let country = non_empty(f.country);
        let (point, source) = match (f.latitude, f.longitude) {
            (Some(lat), Some(lon)) => (
                GeoPoint::new(lat, lon).map_err(|_| bad())?,
                Source::Database {
                    path: self.path.clone(),
                    schema: self.schema,
                },
            ),
            (None, None) => {
                let Some(point) = country.and_then(country_centroid) else {
                    return Ok(None);
                };
                (
                    point,
                    Source::CountryCentroid {
                        path: self.path.clone(),
                        schema: self.schema,
                    },
                )
            }
            _ => return Err(bad()),
        };
        Ok(Some(IpLocation {
            point,
            country: country.map(str::to_owned),
            continent: non_empty(f.continent).map(str::to_owned),
            city: non_empty(f.city).map(str::to_owned),
            accuracy_radius_km: f.accuracy_radius_km,
            region: None,
            source,
        }))
    }
}

/// Detects the schema from the type hint and the first records, and checks
/// that those records decode with it. Returns the schema, how it was decided
/// and how many records were sampled.
fn detect(
    reader: &Reader<Mmap>,
    path: &Path,
    hint: TypeHint,
) -> Result<(Schema, DetectedBy, usize), GeoIpError> {
    let owned = || path.to_path_buf();
    let database_type = &reader.metadata().database_type;
    let samples = sample(reader).map_err(|source| GeoIpError::Invalid {
        path: owned(),
        source,
    })?;
    let sample_err = |source| GeoIpError::SampleRecord {
        path: owned(),
        source,
    };
    let mut shape = Shape::default();
    for record in &samples {
        // Present: `sample` keeps only records with data.
        let keys = record
            .decode::<BTreeMap<&str, IgnoredAny>>()
            .map_err(sample_err)?
            .unwrap_or_default();
        shape.add(keys.keys().copied());
    }

    let unrecognised = || GeoIpError::UnrecognisedSchema {
        path: owned(),
        database_type: database_type.clone(),
        keys: shape.keys(),
    };
    let (schema, detected_by) = match hint {
        TypeHint::Known(schema) => match shape.layout() {
            Some(found) if found != schema.layout() => {
                return Err(GeoIpError::SchemaMismatch {
                    path: owned(),
                    database_type: database_type.clone(),
                    expected: schema,
                    found,
                });
            }
            _ => (schema, DetectedBy::DatabaseType),
        },
        TypeHint::Granularity { city } => (
            shape
                .schema_with_granularity(city)
                .ok_or_else(unrecognised)?,
            DetectedBy::DatabaseTypeAndRecordShape,
        ),
        TypeHint::Unknown | TypeHint::NotLocation => (
            shape.schema().ok_or_else(unrecognised)?,
            DetectedBy::RecordShape,
        ),
    };

    for record in &samples {
        let decoded = match schema.layout() {
            Layout::GeoIp2 => record.decode::<GeoIp2Record<'_>>().map(|_| ()),
            Layout::Flat => record.decode::<FlatRecord<'_>>().map(|_| ()),
        };
        decoded.map_err(sample_err)?;
    }
    Ok((schema, detected_by, samples.len()))
}

/// The first few distinct records, walking a bounded number of tree leaves.
fn sample(reader: &Reader<Mmap>) -> Result<Vec<LookupResult<'_, Mmap>>, MaxMindDbError> {
    let mut out: Vec<LookupResult<'_, Mmap>> = Vec::with_capacity(SAMPLE_RECORDS);
    let leaves = reader.networks(WithinOptions::default().include_networks_without_data())?;
    for leaf in leaves.take(SAMPLE_LEAVES) {
        let leaf = leaf?;
        let Some(offset) = leaf.offset() else {
            continue;
        };
        if out.iter().all(|r| r.offset() != Some(offset)) {
            out.push(leaf);
            if out.len() == SAMPLE_RECORDS {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_io_error() {
        let err = Database::open("/nonexistent/geomesh/GeoLite2-City.mmdb").unwrap_err();
        assert!(matches!(err, GeoIpError::Io { .. }), "{err:?}");
    }
}
