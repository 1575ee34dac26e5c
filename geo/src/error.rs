//! The crate's errors: [`GeoError`] for loading locating data (database, network map),
//! [`EcsError`] for a malformed EDNS Client Subnet option.

use std::path::PathBuf;

use ipnet::IpNet;

/// Loading a MaxMind database or a network map failed. Every message names the file (or the
/// network map line) and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a MaxMind DB (or is corrupt).
    #[error("{path} is not a valid MaxMind DB: {reason}", path = path.display())]
    InvalidDb {
        /// The file.
        path: PathBuf,
        /// What the reader reported.
        reason: String,
    },
    /// The file is a MaxMind DB but carries no location data we can use (e.g. an ASN database).
    #[error(
        "{path} (database type {db_type:?}) has no usable location data: need a City-type \
         database (location.latitude/longitude) or a Country-type one (country.iso_code)",
        path = path.display()
    )]
    NoLocationData {
        /// The file.
        path: PathBuf,
        /// The database type from its metadata.
        db_type: String,
    },
    /// A network map line does not parse.
    #[error("network map line {line}: {message}")]
    MapSyntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A network map entry names a region that is not configured.
    #[error("network map{at}: unknown region {name:?} (not in [[regions]])", at = line_suffix(*line))]
    UnknownRegion {
        /// The region name.
        name: String,
        /// 1-based line number, when the entry came from a file.
        line: Option<usize>,
    },
    /// The same prefix appears twice in the network map.
    #[error("network map{at}: duplicate prefix {prefix}", at = line_suffix(*line))]
    DuplicatePrefix {
        /// The prefix.
        prefix: IpNet,
        /// 1-based line number of the second occurrence, when known.
        line: Option<usize>,
    },
    /// A network map prefix has bits set beyond its length (e.g. `10.1.2.3/8`).
    #[error(
        "network map{at}: prefix {prefix} has host bits set (did you mean {trunc}?)",
        at = line_suffix(*line),
        trunc = prefix.trunc()
    )]
    HostBits {
        /// The prefix as written.
        prefix: IpNet,
        /// 1-based line number, when known.
        line: Option<usize>,
    },
    /// Coordinates out of range.
    #[error("network map{at}: coordinates {lat},{lon} out of range (lat -90..90, lon -180..180)", at = line_suffix(*line))]
    BadCoordinates {
        /// Latitude given.
        lat: f64,
        /// Longitude given.
        lon: f64,
        /// 1-based line number, when known.
        line: Option<usize>,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    match line {
        Some(n) => format!(" line {n}"),
        None => String::new(),
    }
}

/// An EDNS Client Subnet option (RFC 7871) that must be answered with FORMERR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    /// SOURCE PREFIX-LENGTH longer than the address family allows.
    #[error("ECS source prefix /{prefix} is longer than {max} bits")]
    PrefixTooLong {
        /// The source prefix length given.
        prefix: u8,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// ADDRESS has bits set beyond SOURCE PREFIX-LENGTH (RFC 7871 §6).
    #[error("ECS address {addr} has bits set beyond the source prefix /{prefix}")]
    HostBits {
        /// The address given.
        addr: std::net::IpAddr,
        /// The source prefix length given.
        prefix: u8,
    },
}
