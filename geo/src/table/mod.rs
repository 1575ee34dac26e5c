//! The precompiled geo map: every client network → the [`Ranking`] of each pool, built once
//! from a [`Locator`] (network map, MaxMind database, default region), so that routing a query
//! is one range lookup plus the first eligible edges of a ranking, instead of a walk of the
//! MaxMind tree, a record decode and a distance ranking per query.
//!
//! ## Build ([`RouteTable::build`])
//!
//! 1. The operator map is cut into its leaves and the gap blocks between them
//!    ([`NetworkMap::lookup_or_gap`] from address 0 to the end of each family).
//! 2. Every network of the database is visited once in address order
//!    (`GeoDb::for_each_network`: networks without data included, each record decoded once)
//!    and intersected with the map's blocks, which gives for every address exactly what
//!    [`Locator::locate`] gives: the place (map entry, database record or default region) and
//!    the network that decided (a map leaf whole; a database network narrowed by the map's gap
//!    block; the gap block when the database has nothing usable).
//! 3. Each distinct place (coordinates and region) is ranked once per distinct pool
//!    ([`Ranking::build`]); rankings are interned (few distinct orders exist) and so are the
//!    per-place tuples of rankings ("combos").
//! 4. Adjacent addresses with the same combo are merged into one range: a sorted array of range
//!    starts per family, each with `combo << 8 | length`. When a combo's rankings have tie groups
//!    the weighted spread among equal ranks is seeded by the network that decided, so there only
//!    networks of the same length merge and the length byte is that network's; otherwise the
//!    length byte is "merged" and the block is derived from the range's bounds. IPv4 also gets a
//!    direct index by /20: an entry holds the answer itself (combo and block length, the same for
//!    every address of the /20) when the /20 lies in one range, else where to start searching.
//!
//! ## Lookup ([`RouteTable::lookup`])
//!
//! The range holding the address gives the combo and the block that decides ([`Hit::network`]):
//! for a combo with tie groups, exactly `Locator::locate(addr).network` (the address cut to the
//! stored length), whose seed spreads clients among equal edges as `choose` does; otherwise the
//! largest aligned block around the address inside its range — it holds the network `locate`
//! reports and only addresses ranked the same way, so every address of it gets the same answer
//! under any health state, and a resolver may cache the answer for all of it (the ECS scope).
//! The chosen edges, their order and the rule are exactly what deciding per query gives.
//!
//! What is not precompiled: the IPv6 prefixes that alias the IPv4 tree inside the database
//! (`::/96`, `2001::/32`, `2002::/16` in GeoLite2) and any space the database's tree does not
//! cover as expected. There the lookup returns `None` and the caller decides per query (locate
//! and `select::choose`): rare addresses, still exact. IPv4-mapped IPv6 addresses are looked up
//! as IPv4, as `locate` does.
//!
//! The table reflects the locator's map, database and default region at build time: build a new
//! table whenever any of them changes (the router builds one per snapshot, and a snapshot's
//! locator never changes).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::locate::geodb::NetworkData;
use crate::locate::{Locator, NetworkMap, RegionPoint};
use crate::model::{Candidate, Policy};
use crate::ranking::Ranking;

mod build;
mod ranges;
use build::{block_len, DbSays, Family, Ranker};
use ranges::{Ranges, V4Ranges};

/// One pool to precompile: candidates (only their static fields are read: id, region,
/// coordinates, weight, `disabled`) and the policy (its backups).
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    /// The candidates, in the order decisions will index them.
    pub candidates: &'a [Candidate],
    /// The policy.
    pub policy: &'a Policy,
}

/// A precompiled answer source for one address: which combo, and the block that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index of the tuple of rankings (one per pool) for this address.
    pub combo: u32,
    /// The block routed as one around the address (see the module docs): it holds
    /// `Locator::locate(addr).network`, and is exactly that network when a ranking of the combo
    /// has tie groups. Its length is what an ECS scope may claim; it seeds the spread.
    pub network: IpNet,
}

/// Figures of a built table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Database networks visited (both families, networks without data included).
    pub networks: usize,
    /// IPv4 ranges kept after merging.
    pub v4_ranges: usize,
    /// IPv6 ranges kept after merging.
    pub v6_ranges: usize,
    /// Distinct places ranked.
    pub places: usize,
    /// Distinct rankings.
    pub rankings: usize,
    /// Distinct tuples of rankings.
    pub combos: usize,
    /// Pools given, and distinct pools after merging identical ones.
    pub pools: (usize, usize),
    /// Bytes held by the table.
    pub bytes: usize,
    /// Wall time of the build.
    pub build_time: Duration,
}

/// Why a table could not be built (the caller decides per query instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The database's search tree did not iterate.
    #[error("the database could not be walked: {0}")]
    Database(String),
    /// More distinct place/ranking tuples than a range can refer to.
    #[error("too many distinct routing results ({0})")]
    TooManyCombos(usize),
}

/// The precompiled geo map (see the module docs).
#[derive(Debug, Clone)]
pub struct RouteTable {
    v4: V4Ranges,
    v6: Ranges<u128>,
    /// For each pool given to `build`, its distinct pool.
    pool_of: Vec<u32>,
    distinct_pools: usize,
    /// Ranking ids, `combos[combo * distinct_pools + pool]`.
    combos: Vec<u32>,
    rankings: Vec<Ranking>,
    stats: TableStats,
}

/// Value of a range nobody precompiled (`lookup` returns `None`).
const FALLBACK: u32 = u32::MAX;
/// Combo standing for [`FALLBACK`] while building.
const FALLBACK_COMBO: u32 = u32::MAX;
/// Length byte of a range whose combo has no tie groups: merged with its neighbours of the same
/// combo; the block is derived from the range's bounds.
const MERGED: u8 = u8::MAX;
/// Most combos a range value can name (24 bits).
const MAX_COMBOS: usize = (1 << 23) - 1;
/// IPv4 direct index: by the top this-many bits (a /20 per entry, 4 MiB).
const V4_INDEX_BITS: u32 = 20;
impl RouteTable {
    /// Precompile `locator`'s current map, database and default region for `pools` (see the
    /// module docs). Takes about a second and 6–30 MB (more when pools have tie groups) for
    /// GeoLite2 City; run it off the query path.
    pub fn build(locator: &Locator, pools: &[Pool<'_>]) -> Result<RouteTable, TableError> {
        let started = Instant::now();
        // Identical pools (services over the same edges, A and AAAA when every edge has both)
        // share their rankings.
        let mut distinct: Vec<Pool<'_>> = Vec::new();
        let pool_of: Vec<u32> = pools
            .iter()
            .map(|p| {
                let same = |q: &Pool<'_>| {
                    q.candidates.len() == p.candidates.len()
                        && q.candidates.iter().zip(p.candidates).all(|(a, b)| {
                            a.id == b.id
                                && a.region == b.region
                                && a.lat.to_bits() == b.lat.to_bits()
                                && a.lon.to_bits() == b.lon.to_bits()
                                && a.weight == b.weight
                                && a.disabled == b.disabled
                        })
                        && q.policy.backups == p.policy.backups
                };
                match distinct.iter().position(same) {
                    Some(i) => i as u32,
                    None => {
                        distinct.push(*p);
                        (distinct.len() - 1) as u32
                    }
                }
            })
            .collect();
        let distinct_pools = distinct.len();
        let mut ranker = Ranker {
            pools: distinct,
            places: HashMap::new(),
            rankings: HashMap::new(),
            ranking_list: Vec::new(),
            combos: HashMap::new(),
            combo_list: Vec::new(),
            combo_ties: Vec::new(),
            record_combo: Vec::new(),
            default_combo: None,
            default: (*locator.default_region()).clone(),
        };
        let map = locator.map();
        let mut v4: Family<u32> = Family::new(&map);
        let mut v6: Family<u128> = Family::new(&map);
        let mut networks = 0usize;
        let (rest4, rest6) = match locator.db() {
            Some(db) => {
                let mut failed: Option<TableError> = None;
                let walked = db.for_each_network(|start, len, data| {
                    networks += 1;
                    if failed.is_none() {
                        failed = match start {
                            IpAddr::V4(a) => v4.network(u32::from(a), len, data, &mut ranker),
                            IpAddr::V6(a) => v6.network(u128::from(a), len, data, &mut ranker),
                        }
                        .err();
                    }
                });
                if let Err(e) = walked {
                    return Err(TableError::Database(e.to_string()));
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                // What the walk did not visit is decided per query, except the IPv6 space of
                // an IPv4 database, where lookups fail (nothing is placed by the database).
                let rest6 = if db.ip_version() == 4 {
                    DbSays::Nothing
                } else {
                    DbSays::Unknown
                };
                (DbSays::Unknown, rest6)
            }
            None => (DbSays::Nothing, DbSays::Nothing),
        };
        let v4 = V4Ranges::new(v4.finish(rest4, &mut ranker)?);
        let v6 = v6.finish(rest6, &mut ranker)?;

        let mut table = RouteTable {
            v4,
            v6,
            pool_of,
            distinct_pools,
            combos: ranker.combo_list,
            rankings: ranker.ranking_list,
            stats: TableStats::default(),
        };
        table.stats = TableStats {
            networks,
            v4_ranges: table.v4.ranges.starts.len(),
            v6_ranges: table.v6.starts.len(),
            places: ranker.places.len(),
            rankings: table.rankings.len(),
            combos: ranker.combos.len(),
            pools: (pools.len(), distinct_pools),
            bytes: table.v4.bytes()
                + table.v6.bytes()
                + table.combos.capacity() * 4
                + table.pool_of.capacity() * 4
                + table
                    .rankings
                    .iter()
                    .map(|r| std::mem::size_of::<Ranking>() + r.heap_bytes())
                    .sum::<usize>(),
            build_time: started.elapsed(),
        };
        Ok(table)
    }

    /// The combo and deciding network for `ip`; `None` where nothing was precompiled (decide
    /// per query there). IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<Hit> {
        let (value, network) = match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let (value, len) = self.v4.find(a);
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let net = Ipv4Net::new(Ipv4Addr::from(a & mask), len).ok()?;
                (value, IpNet::V4(net))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                let i = self.v6.find(a);
                let value = self.v6.values[i];
                let next = self.v6.starts.get(i + 1).copied();
                let len = block_len(128, self.v6.starts[i], next, a, (value & 0xff) as u8);
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let net = Ipv6Net::new(Ipv6Addr::from(a & mask), len).ok()?;
                (value, IpNet::V6(net))
            }
        };
        if value == FALLBACK {
            return None;
        }
        Some(Hit {
            combo: value >> 8,
            network,
        })
    }

    /// Read the first word a lookup of `ip` reads (the IPv4 index entry), without acting on it:
    /// a caller about to look up many addresses touches them all first, so that their cache
    /// misses overlap instead of stalling each lookup in turn. Returns the word (feed it to
    /// `std::hint::black_box`).
    #[inline]
    pub fn touch(&self, ip: IpAddr) -> u32 {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.index[(u32::from(a) >> (32 - V4_INDEX_BITS)) as usize],
            IpAddr::V6(_) => 0,
        }
    }

    /// The ranking of pool `pool` (an index into the pools given to `build`) in `combo`.
    pub fn ranking(&self, combo: u32, pool: usize) -> &Ranking {
        let p = self.pool_of[pool] as usize;
        &self.rankings[self.combos[combo as usize * self.distinct_pools + p] as usize]
    }

    /// Where each range begins, IPv4 then IPv6 (for tests and tools that probe boundaries).
    pub fn range_starts(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self
            .v4
            .ranges
            .starts
            .iter()
            .map(|&a| IpAddr::V4(Ipv4Addr::from(a)));
        let v6 = self
            .v6
            .starts
            .iter()
            .map(|&a| IpAddr::V6(Ipv6Addr::from(a)));
        v4.chain(v6)
    }

    /// Number of pools the table was built for.
    pub fn pools(&self) -> usize {
        self.pool_of.len()
    }

    /// Figures of the build.
    pub fn stats(&self) -> TableStats {
        self.stats
    }
}
