//! The MaxMind database (City or Country type: GeoLite2, GeoIP2, DB-IP Lite).
//!
//! A lookup walks the search tree and decodes only `location.latitude/longitude`,
//! `country.iso_code` (else `registered_country.iso_code`) and `continent.code`, borrowing the
//! strings from the database. A record without coordinates (every record of a Country-type
//! database) is placed at its country's centroid, or its continent's, from
//! [`super::centroids`].
//!
//! The file is read into memory rather than memory-mapped: `maxminddb`'s mmap constructor is
//! `unsafe` (a file truncated or rewritten in place while mapped is undefined behaviour), and
//! this crate forbids unsafe code. Reading a 57 MB GeoLite2-City takes tens of milliseconds and
//! the lookup cost is the same.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use maxminddb::Reader;
use serde::Deserialize;

use super::centroids::{continent_centroid, country_centroid};
use crate::error::GeoError;

/// How many records [`GeoDb::open`] inspects to decide whether the file has location data.
const PROBE_RECORDS: usize = 4096;

/// What a database carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// Records carry coordinates (`location.latitude/longitude`).
    City,
    /// Records carry only country/continent codes; coordinates come from centroids.
    Country,
}

/// An open MaxMind database.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
    kind: DbKind,
    path: PathBuf,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("db_type", &self.db_type())
            .finish()
    }
}

/// Where the database puts an address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoHit<'a> {
    /// Latitude (from the record, or a centroid).
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// ISO country code (`country`, else `registered_country`).
    pub country: Option<&'a str>,
    /// Continent code.
    pub continent: Option<&'a str>,
    /// The coordinates are a country or continent centroid, not the record's own.
    pub centroid: bool,
}

/// The result of a database lookup: the network the database holds for the address (with or
/// without data) and the place, when it has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoLookup<'a> {
    /// The most specific network in the database containing the address.
    pub network: IpNet,
    /// The place, when the record has usable location data.
    pub hit: Option<GeoHit<'a>>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(default)]
    location: Option<Location>,
    #[serde(borrow, default)]
    country: Option<Code<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Code<'a>>,
    #[serde(borrow, default)]
    continent: Option<Code<'a>>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Code<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

impl<'a> Record<'a> {
    fn place(&self) -> Option<GeoHit<'a>> {
        let country = self
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code));
        let continent = self.continent.as_ref().and_then(|c| c.code);
        let coords = self
            .location
            .as_ref()
            .and_then(|l| Some((l.latitude?, l.longitude?)))
            .filter(|(lat, lon)| (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon));
        let (lat, lon, centroid) = match coords {
            Some((lat, lon)) => (lat, lon, false),
            None => {
                let (lat, lon) = country
                    .and_then(country_centroid)
                    .or_else(|| continent.and_then(continent_centroid))?;
                (lat, lon, true)
            }
        };
        Some(GeoHit {
            lat,
            lon,
            country,
            continent,
            centroid,
        })
    }
}

impl GeoDb {
    /// Read and check a database file. Rejects a file that is not a MaxMind DB, and one whose
    /// first records carry neither coordinates nor country/continent codes (e.g. an ASN
    /// database).
    pub fn open(path: impl AsRef<Path>) -> Result<GeoDb, GeoError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        GeoDb::from_bytes(bytes, path)
    }

    /// Check a database already in memory; `path` is used in messages only.
    pub fn from_bytes(bytes: Vec<u8>, path: impl Into<PathBuf>) -> Result<GeoDb, GeoError> {
        let path = path.into();
        let invalid = |e: maxminddb::MaxMindDbError| GeoError::InvalidDb {
            path: path.clone(),
            reason: e.to_string(),
        };
        let reader = Reader::from_source(bytes).map_err(invalid)?;
        let kind = probe(&reader).map_err(invalid)?;
        let Some(kind) = kind else {
            return Err(GeoError::NoLocationData {
                db_type: reader.metadata().database_type.clone(),
                path,
            });
        };
        Ok(GeoDb { reader, kind, path })
    }

    /// City or Country.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The database type from its metadata (e.g. `GeoLite2-City`).
    pub fn db_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Build time, Unix seconds.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Look an address up. IPv4-mapped IPv6 addresses are looked up (and reported) as IPv4.
    /// An error means a corrupt record; callers treat it as "not located".
    pub fn lookup(&self, ip: IpAddr) -> Result<GeoLookup<'_>, GeoError> {
        let ip = ip.to_canonical();
        let invalid = |e: maxminddb::MaxMindDbError| GeoError::InvalidDb {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let result = self.reader.lookup(ip).map_err(invalid)?;
        let found = result.network().map_err(invalid)?;
        let network = match (ip, found.ip()) {
            (IpAddr::V4(_), IpAddr::V6(_)) => {
                // The tree has no IPv4 subtree and stopped above it: the record covers all
                // of IPv4 as far as this database is concerned.
                IpNet::V4(ipnet::Ipv4Net::default())
            }
            (_, net_ip) => IpNet::new(net_ip, found.prefix()).map_err(|e| GeoError::InvalidDb {
                path: self.path.clone(),
                reason: e.to_string(),
            })?,
        };
        let hit = match result.decode::<Record<'_>>().map_err(invalid)? {
            Some(record) => record.place(),
            None => None,
        };
        Ok(GeoLookup { network, hit })
    }
}

/// Inspect the first records: `Some(City)` if any has coordinates, `Some(Country)` if any has
/// a country/continent code we can place, `None` if neither.
fn probe(reader: &Reader<Vec<u8>>) -> Result<Option<DbKind>, maxminddb::MaxMindDbError> {
    let mut kind = None;
    for item in reader.networks(Default::default())?.take(PROBE_RECORDS) {
        let Some(record) = item?.decode::<Record<'_>>()? else {
            continue;
        };
        if let Some(hit) = record.place() {
            if !hit.centroid {
                return Ok(Some(DbKind::City));
            }
            kind = Some(DbKind::Country);
        }
    }
    Ok(kind)
}
