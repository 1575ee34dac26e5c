//! Locating a client: IP address → [`ClientLocation`].
//!
//! Order: the operator [`NetworkMap`] (longest prefix) → the MaxMind [`GeoDb`] → the
//! configured default region. IPv4-mapped IPv6 addresses are treated as IPv4 throughout.
//!
//! `ClientLocation::network` is the network that decided, and its length is what an ECS
//! scope may claim (see [`crate::ecs::ecs_scope`]):
//! * network map: the matched entry, minus any more specific entries inside it (see
//!   [`network_map`]);
//! * database: the database's network for the address, narrowed so it overlaps no network map
//!   entry;
//! * default: the block around the address that neither the map nor the database places (the
//!   database's empty network narrowed by the map); `0.0.0.0/0` / `::/0` when there is neither
//!   a map entry nor a database.
//!
//! The map and the database sit behind [`ArcSwap`]s: [`Locator::swap_map`] and
//! [`Locator::swap_db`] replace them whole, and lookups in flight finish on the old ones.
//! [`Locator::reload_db`] and [`Locator::reload_map`] open the new file first and keep the
//! old one when the new one is bad.

pub mod cache;
pub mod centroids;
pub mod geodb;
pub mod network_map;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use ipnet::IpNet;

pub use geodb::{DbKind, GeoDb, GeoHit, GeoLookup};
pub use network_map::{MapEntry, MapMatch, NetworkMap};

use crate::error::GeoError;
use crate::model::{ClientLocation, LocationSource};

/// A named place (a configured region).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionPoint {
    /// Region name.
    pub name: String,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// Where a network map entry puts its prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// A configured region (its coordinates are used).
    Region(String),
    /// Explicit coordinates.
    Coords {
        /// Latitude in degrees.
        lat: f64,
        /// Longitude in degrees.
        lon: f64,
    },
}

/// Network map + database + default region, each swappable at run time.
pub struct Locator {
    map: ArcSwap<NetworkMap>,
    db: ArcSwapOption<GeoDb>,
    default: ArcSwap<RegionPoint>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("map_entries", &self.map.load().len())
            .field(
                "db",
                &self.db.load().as_ref().map(|d| d.path().to_path_buf()),
            )
            .field("default", &self.default.load().name)
            .finish()
    }
}

impl Locator {
    /// A locator over `map`, an optional database, and the region used when neither places
    /// a client.
    pub fn new(map: NetworkMap, db: Option<GeoDb>, default: RegionPoint) -> Locator {
        Locator {
            map: ArcSwap::from_pointee(map),
            db: ArcSwapOption::new(db.map(Arc::new)),
            default: ArcSwap::from_pointee(default),
        }
    }

    /// Where `ip` is. Never fails: an address nothing places gets the default region
    /// (`source = Default`); a corrupt database record counts as "not placed".
    pub fn locate(&self, ip: IpAddr) -> ClientLocation {
        let ip = ip.to_canonical();
        let map = self.map.load();
        let gap = match map.lookup_or_gap(ip) {
            Ok(m) => {
                return ClientLocation {
                    lat: m.entry.lat,
                    lon: m.entry.lon,
                    country: None,
                    continent: None,
                    region: m.entry.region.clone(),
                    network: m.network,
                    source: LocationSource::NetworkMap,
                }
            }
            Err(gap) => gap,
        };
        let mut network = gap;
        if let Some(db) = self.db.load().as_deref() {
            if let Ok(found) = db.lookup(ip) {
                network = more_specific(found.network, gap);
                if let Some(hit) = found.hit {
                    return ClientLocation {
                        lat: hit.lat,
                        lon: hit.lon,
                        country: hit.country.map(str::to_owned),
                        continent: hit.continent.map(str::to_owned),
                        region: None,
                        network,
                        source: LocationSource::GeoIp,
                    };
                }
            }
        }
        let default = self.default.load();
        ClientLocation {
            lat: default.lat,
            lon: default.lon,
            country: None,
            continent: None,
            region: Some(default.name.clone()),
            network,
            source: LocationSource::Default,
        }
    }

    /// Replace the network map; lookups in flight finish on the old one.
    pub fn swap_map(&self, map: NetworkMap) {
        self.map.store(Arc::new(map));
    }

    /// Replace (or remove) the database; lookups in flight finish on the old one.
    pub fn swap_db(&self, db: Option<GeoDb>) {
        self.db.store(db.map(Arc::new));
    }

    /// Replace the default region.
    pub fn set_default(&self, default: RegionPoint) {
        self.default.store(Arc::new(default));
    }

    /// Open the database at `path` and swap it in. On error the current database stays.
    pub fn reload_db(&self, path: &Path) -> Result<(), GeoError> {
        let db = GeoDb::open(path)?;
        self.swap_db(Some(db));
        Ok(())
    }

    /// Load the network map file at `path`, merge it with `inline` entries (from config), and
    /// swap it in. On error the current map stays.
    pub fn reload_map(
        &self,
        path: &Path,
        inline: &NetworkMap,
        regions: &[RegionPoint],
    ) -> Result<(), GeoError> {
        let file = NetworkMap::load(path, regions)?;
        let map = inline.clone().merged(file)?;
        self.swap_map(map);
        Ok(())
    }

    /// The current network map.
    pub fn map(&self) -> Arc<NetworkMap> {
        self.map.load_full()
    }

    /// The current database, if any.
    pub fn db(&self) -> Option<Arc<GeoDb>> {
        self.db.load_full()
    }

    /// The current default region.
    pub fn default_region(&self) -> Arc<RegionPoint> {
        self.default.load_full()
    }
}

/// Of two networks that both contain the same address, the smaller one.
fn more_specific(a: IpNet, b: IpNet) -> IpNet {
    if a.prefix_len() >= b.prefix_len() {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, lat: f64, lon: f64) -> RegionPoint {
        RegionPoint {
            name: name.into(),
            lat,
            lon,
        }
    }

    #[test]
    fn map_then_default() {
        let regions = [
            region("us-east", 39.0, -77.5),
            region("eu-west", 53.3, -6.3),
        ];
        let map = NetworkMap::parse("10.0.0.0/8 eu-west\n2001:db8::/32 1.5,2.5", &regions).unwrap();
        let loc = Locator::new(map, None, regions[0].clone());

        let l = loc.locate("10.9.9.9".parse().unwrap());
        assert_eq!(l.source, LocationSource::NetworkMap);
        assert_eq!(l.region.as_deref(), Some("eu-west"));
        assert_eq!(l.network, "10.0.0.0/8".parse::<IpNet>().unwrap());

        let l = loc.locate("::ffff:10.9.9.9".parse().unwrap());
        assert_eq!(l.network, "10.0.0.0/8".parse::<IpNet>().unwrap());

        let l = loc.locate("2001:db8::5".parse().unwrap());
        assert_eq!((l.lat, l.lon, l.region.clone()), (1.5, 2.5, None));

        let l = loc.locate("192.0.2.1".parse().unwrap());
        assert_eq!(l.source, LocationSource::Default);
        assert_eq!(l.region.as_deref(), Some("us-east"));
        assert_eq!(l.network, "128.0.0.0/1".parse::<IpNet>().unwrap());

        let empty = Locator::new(NetworkMap::empty(), None, regions[1].clone());
        let l = empty.locate("192.0.2.1".parse().unwrap());
        assert_eq!(l.network, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(l.region.as_deref(), Some("eu-west"));
        let l = empty.locate("2001:db8::1".parse().unwrap());
        assert_eq!(l.network, "::/0".parse::<IpNet>().unwrap());
    }

    #[test]
    fn swaps_take_effect() {
        let regions = [region("a", 0.0, 0.0), region("b", 10.0, 10.0)];
        let loc = Locator::new(NetworkMap::empty(), None, regions[0].clone());
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        assert_eq!(loc.locate(ip).source, LocationSource::Default);
        loc.swap_map(NetworkMap::parse("10.0.0.0/8 b", &regions).unwrap());
        assert_eq!(loc.locate(ip).region.as_deref(), Some("b"));
        loc.set_default(regions[1].clone());
        assert_eq!(
            loc.locate("11.0.0.1".parse().unwrap()).region.as_deref(),
            Some("b")
        );
    }
}
