//! The MaxMind database (City or Country type: GeoLite2, GeoIP2, DB-IP Lite).
//!
//! A lookup walks the search tree and decodes only `location.latitude/longitude`,
//! `country.iso_code` (else `registered_country.iso_code`) and `continent.code`, borrowing the
//! strings from the database. A record without coordinates (every record of a Country-type
//! database) is placed at its country's centroid, or its continent's, from
//! [`super::centroids`].
//!
//! Two bounded lock-free caches ([`super::cache`]) keep the hot path short: client block
//! (IPv4 /24, IPv6 /56) → lookup result, stored only when the database's network covers the
//! whole block (so it is exact), which skips the tree walk (~0.2 µs); and record offset →
//! decoded place, which skips the decode (~1 µs) for every other network of the same record.
//! Only places whose country and continent codes are in the centroid tables are cached (their
//! codes then come back as `&'static str`).
//!
//! The file is read into memory rather than memory-mapped: `maxminddb`'s mmap constructor is
//! `unsafe` (a file truncated or rewritten in place while mapped is undefined behaviour), and
//! this crate forbids unsafe code. Reading the 57 MB GeoLite2-City takes ~0.1 s and 57 MB of
//! memory (twice that briefly during a reload); the lookup cost is the same.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use maxminddb::Reader;
use serde::Deserialize;

use super::cache::SeqCache;
use super::centroids::{continent_at, continent_index, country_at, country_index};
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
    /// Client block (/24, /56) → the lookup, for blocks the database places whole.
    blocks: SeqCache<4>,
    /// Record offset → the decoded place.
    records: SeqCache<3>,
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
        Ok(GeoDb {
            reader,
            kind,
            path,
            blocks: SeqCache::new(CACHE_BITS),
            records: SeqCache::new(CACHE_BITS),
        })
    }

    /// City or Country.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The database type from its metadata (e.g. `GeoLite2-City`).
    pub fn db_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The database's IP version (4: IPv4 only; 6: both).
    pub(crate) fn ip_version(&self) -> u16 {
        self.reader.metadata().ip_version
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
        let block = block_key(ip);
        if let Some(found) = self.blocks.get(block).and_then(|v| unpack_block(ip, v)) {
            return Ok(found);
        }
        let found = self.walk(ip, true)?;
        if found.network.prefix_len() <= block_len(ip) {
            if let Some(words) = pack_block(&found) {
                self.blocks.put(block, words);
            }
        }
        Ok(found)
    }

    /// [`GeoDb::lookup`] without the caches: walk the tree and decode the record every time
    /// (the reference the caches are tested against, and the cold-path benchmark).
    pub fn lookup_uncached(&self, ip: IpAddr) -> Result<GeoLookup<'_>, GeoError> {
        self.walk(ip.to_canonical(), false)
    }

    /// Walk the tree, then decode the record (or take it from the record cache when
    /// `use_records`).
    fn walk(&self, ip: IpAddr, use_records: bool) -> Result<GeoLookup<'_>, GeoError> {
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
        let Some(offset) = result.offset() else {
            return Ok(GeoLookup { network, hit: None });
        };
        let key = offset as u64 + 1;
        if use_records {
            if let Some(hit) = self
                .records
                .get(key)
                .and_then(|[lat, lon, codes]| unpack_hit(lat, lon, codes))
            {
                return Ok(GeoLookup { network, hit });
            }
        }
        let hit = match result.decode::<Record<'_>>().map_err(invalid)? {
            Some(record) => record.place(),
            None => None,
        };
        if use_records {
            if let Some((lat, lon, codes)) = pack_hit(&hit) {
                self.records.put(key, [lat, lon, codes]);
            }
        }
        Ok(GeoLookup { network, hit })
    }
}

/// What the database says about one of its networks, as [`GeoDb::for_each_network`] reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NetworkData {
    /// A record with a usable place (what [`GeoDb::lookup`] returns as the hit).
    Place {
        /// Dense number of the record among those visited so far (0, 1, 2… in order of first
        /// appearance), so callers can keep per-record results in a vector.
        record: u32,
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
    },
    /// No record, or a record without a usable place: the lookup finds the network, no hit.
    NoPlace,
    /// The record does not decode: the lookup fails (callers treat the address as not placed
    /// by the database at all).
    Corrupt,
}

impl GeoDb {
    /// Visit every network of the search tree once, in address order within each family, with
    /// what [`GeoDb::lookup`] would find for any address in it: `visit(start, len, data)`, with
    /// IPv4 networks (the IPv4 subtree) as [`IpAddr::V4`] starts and the rest of the IPv6 tree
    /// as [`IpAddr::V6`] starts.
    /// Networks without data are included. Not visited (the caller must not assume anything
    /// there): the IPv6 prefixes that alias the IPv4 subtree (`::/96`, `::ffff:0:0/96`, and
    /// e.g. `2001::/32`, `2002::/16` when the database has those aliases), the IPv4 space of an
    /// IPv6 database without an IPv4 subtree, and the IPv6 space of an IPv4 database. Each
    /// distinct record is decoded once. An error means the tree itself is corrupt.
    pub(crate) fn for_each_network(
        &self,
        mut visit: impl FnMut(IpAddr, u8, NetworkData),
    ) -> Result<(), GeoError> {
        let invalid = |e: maxminddb::MaxMindDbError| GeoError::InvalidDb {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let options = maxminddb::WithinOptions::default().include_networks_without_data();
        let mut decoded: std::collections::HashMap<usize, NetworkData> =
            std::collections::HashMap::new();
        let mut records = 0u32;
        for item in self.reader.networks(options).map_err(invalid)? {
            let result = item.map_err(invalid)?;
            let network = result.network().map_err(invalid)?;
            let data =
                match result.offset() {
                    None => NetworkData::NoPlace,
                    Some(offset) => *decoded.entry(offset).or_insert_with(|| {
                        match result.decode::<Record<'_>>() {
                            Ok(Some(record)) => match record.place() {
                                Some(hit) => {
                                    records += 1;
                                    NetworkData::Place {
                                        record: records - 1,
                                        lat: hit.lat,
                                        lon: hit.lon,
                                    }
                                }
                                None => NetworkData::NoPlace,
                            },
                            Ok(None) => NetworkData::NoPlace,
                            Err(_) => NetworkData::Corrupt,
                        }
                    }),
                };
            visit(network.ip(), network.prefix(), data);
        }
        Ok(())
    }
}

/// Each cache has 2^16 slots: 48 + 40 bytes each, ≈ 5.5 MiB per open database.
const CACHE_BITS: u32 = 16;

/// Client blocks the network cache is keyed by: /24 for IPv4, /56 for IPv6 (the ECS source
/// prefixes resolvers commonly send).
const V4_BLOCK: u8 = 24;
const V6_BLOCK: u8 = 56;

const HAS_HIT: u64 = 1 << 40;
const CENTROID: u64 = 1 << 41;
const LEN_SHIFT: u32 = 48;

fn block_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => V4_BLOCK,
        IpAddr::V6(_) => V6_BLOCK,
    }
}

/// Nonzero, distinct for every IPv4 /24 and IPv6 /56.
fn block_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => (1 << 63) | u64::from(u32::from(a) >> (32 - V4_BLOCK)),
        IpAddr::V6(a) => (1 << 63) | (1 << 62) | (u128::from(a) >> (128 - V6_BLOCK)) as u64,
    }
}

/// `[network address bits, lat, lon, codes | prefix length]`; the network's address fits in
/// 64 bits because its length is at most the block's.
fn pack_block(found: &GeoLookup<'_>) -> Option<[u64; 4]> {
    let (lat, lon, codes) = pack_hit(&found.hit)?;
    let addr = match found.network {
        IpNet::V4(n) => u64::from(u32::from(n.network())),
        IpNet::V6(n) => (u128::from(n.network()) >> 64) as u64,
    };
    Some([
        addr,
        lat,
        lon,
        codes | (u64::from(found.network.prefix_len()) << LEN_SHIFT),
    ])
}

fn unpack_block(ip: IpAddr, [addr, lat, lon, codes]: [u64; 4]) -> Option<GeoLookup<'static>> {
    let len = (codes >> LEN_SHIFT) as u8;
    let network = match ip {
        IpAddr::V4(_) => {
            IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(addr as u32), len).ok()?)
        }
        IpAddr::V6(_) => IpNet::V6(
            ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(u128::from(addr) << 64), len).ok()?,
        ),
    };
    let hit = unpack_hit(lat, lon, codes & ((1 << LEN_SHIFT) - 1))?;
    Some(GeoLookup { network, hit })
}

/// `(lat bits, lon bits, codes)`: codes = country index + 1 (bits 0..16, 0 = none), continent
/// index + 1 (16..32), flags. `None` when a code is not in the centroid tables (not cached).
fn pack_hit(hit: &Option<GeoHit<'_>>) -> Option<(u64, u64, u64)> {
    let Some(hit) = hit else {
        return Some((0, 0, 0));
    };
    let country = match hit.country {
        Some(c) => u64::from(country_index(c)?) + 1,
        None => 0,
    };
    let continent = match hit.continent {
        Some(c) => u64::from(continent_index(c)?) + 1,
        None => 0,
    };
    let flags = HAS_HIT | if hit.centroid { CENTROID } else { 0 };
    Some((
        hit.lat.to_bits(),
        hit.lon.to_bits(),
        country | (continent << 16) | flags,
    ))
}

/// The inverse of [`pack_hit`]; the outer `None` means "not a valid entry".
fn unpack_hit(lat: u64, lon: u64, codes: u64) -> Option<Option<GeoHit<'static>>> {
    if codes & HAS_HIT == 0 {
        return Some(None);
    }
    let country = match (codes & 0xffff) as u16 {
        0 => None,
        i => Some(country_at(i - 1)?.0),
    };
    let continent = match ((codes >> 16) & 0xffff) as u16 {
        0 => None,
        i => Some(continent_at(i - 1)?.0),
    };
    Some(Some(GeoHit {
        lat: f64::from_bits(lat),
        lon: f64::from_bits(lon),
        country,
        continent,
        centroid: codes & CENTROID != 0,
    }))
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
