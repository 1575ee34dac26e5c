//! The build side of the table: walking the database's networks against the operator map's
//! blocks ([`Family`]), ranking each distinct place once per pool ([`Ranker`]), and packing
//! the merged ranges. Used by [`super::RouteTable::build`].

use super::*;

/// Where a network map entry puts its block: coordinates and region name.
pub(super) type MapPlace = (f64, f64, Option<String>);

/// Where a block of addresses stands in the database.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum DbSays {
    /// Inside database network of this length with this data.
    Network(u8, NetworkData),
    /// Not visited by the database walk (aliases, missing trees): decided per query.
    Unknown,
    /// No database, or none for this family: nothing is placed by it.
    Nothing,
}

/// Builds the ranges of one family.
pub(super) struct Family<A> {
    /// Map leaves and gap blocks, in order: (start, len, the entry's place, or `None` = gap).
    pub(super) map: Vec<(A, u8, Option<MapPlace>)>,
    pub(super) cursor: usize,
    /// Next address not yet emitted (`None` once the family is complete).
    pub(super) pos: Option<A>,
    pub(super) ranges: Ranges<A>,
}

/// Address arithmetic the build needs from `u32` and `u128`.
pub(super) trait Addr: Copy + Ord + std::fmt::Debug + Default {
    const WIDTH: u8;
    fn last(start: Self, len: u8) -> Self;
    fn next(self) -> Option<Self>;
    fn to_u128(self) -> u128;
    fn from_u128(v: u128) -> Self;
    fn to_ip(self) -> IpAddr;
}

impl Addr for u32 {
    const WIDTH: u8 = 32;
    fn last(start: u32, len: u8) -> u32 {
        start | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
    fn to_u128(self) -> u128 {
        u128::from(self)
    }
    fn from_u128(v: u128) -> u32 {
        v as u32
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}

impl Addr for u128 {
    const WIDTH: u8 = 128;
    fn last(start: u128, len: u8) -> u128 {
        start | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
    fn to_u128(self) -> u128 {
        self
    }
    fn from_u128(v: u128) -> u128 {
        v
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
}

/// Interns places → combos → rankings.
pub(super) struct Ranker<'p> {
    pub(super) pools: Vec<Pool<'p>>,
    pub(super) places: HashMap<(u64, u64, Option<String>), u32>,
    pub(super) rankings: HashMap<Ranking, u32>,
    pub(super) ranking_list: Vec<Ranking>,
    pub(super) combos: HashMap<Vec<u32>, u32>,
    pub(super) combo_list: Vec<u32>,
    /// Whether a combo's rankings have tie groups (then the spread needs the exact network).
    pub(super) combo_ties: Vec<bool>,
    /// Combo of each database record (by `NetworkData::Place::record`), once ranked.
    pub(super) record_combo: Vec<u32>,
    pub(super) default: RegionPoint,
    pub(super) default_combo: Option<u32>,
}

impl Ranker<'_> {
    pub(super) fn combo(&mut self, lat: f64, lon: f64, region: Option<&str>) -> u32 {
        let key = (lat.to_bits(), lon.to_bits(), region.map(str::to_owned));
        if let Some(&c) = self.places.get(&key) {
            return c;
        }
        let ids: Vec<u32> = self
            .pools
            .iter()
            .map(|p| {
                let r = Ranking::build(lat, lon, region, p.candidates, p.policy);
                match self.rankings.get(&r) {
                    Some(&id) => id,
                    None => {
                        let id = self.ranking_list.len() as u32;
                        self.ranking_list.push(r.clone());
                        self.rankings.insert(r, id);
                        id
                    }
                }
            })
            .collect();
        let next = self.combos.len() as u32;
        let c = *self.combos.entry(ids.clone()).or_insert_with(|| {
            self.combo_list.extend_from_slice(&ids);
            let rankings = &self.ranking_list;
            self.combo_ties
                .push(ids.iter().any(|&r| rankings[r as usize].has_ties()));
            next
        });
        self.places.insert(key, c);
        c
    }

    pub(super) fn record_combo(&mut self, record: u32, lat: f64, lon: f64) -> u32 {
        let r = record as usize;
        if let Some(&c) = self.record_combo.get(r).filter(|&&c| c != u32::MAX) {
            return c;
        }
        let c = self.combo(lat, lon, None);
        if self.record_combo.len() <= r {
            self.record_combo.resize(r + 1, u32::MAX);
        }
        self.record_combo[r] = c;
        c
    }

    pub(super) fn default_combo(&mut self) -> u32 {
        if let Some(c) = self.default_combo {
            return c;
        }
        let d = self.default.clone();
        let c = self.combo(d.lat, d.lon, Some(&d.name));
        self.default_combo = Some(c);
        c
    }
}

impl<A: Addr> Family<A> {
    pub(super) fn new(map: &NetworkMap) -> Self {
        let mut blocks = Vec::new();
        let mut addr = A::default();
        loop {
            let (start, len, place) = if A::WIDTH == 128 && addr.to_u128() >> 32 == 0xffff {
                // IPv4-mapped: `lookup_or_gap` would answer for the IPv4 address. These
                // addresses are looked up as IPv4, so the block is never consulted.
                let len = (128 - addr.to_u128().trailing_zeros().min(32)) as u8;
                (addr, len, None)
            } else {
                let (net, place) = match map.lookup_or_gap(addr.to_ip()) {
                    Ok(m) => (
                        m.network,
                        Some((m.entry.lat, m.entry.lon, m.entry.region.clone())),
                    ),
                    Err(gap) => (gap, None),
                };
                let start = A::from_u128(match net.network() {
                    IpAddr::V4(a) => u128::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a),
                });
                (start, net.prefix_len(), place)
            };
            blocks.push((start, len, place));
            match A::last(start, len).next() {
                Some(n) => addr = n,
                None => break,
            }
        }
        Family {
            map: blocks,
            cursor: 0,
            pos: Some(A::default()),
            ranges: Ranges::default(),
        }
    }

    /// Emit everything from the current position up to `last` (inclusive) as `says`.
    pub(super) fn cover(
        &mut self,
        last: A,
        says: DbSays,
        ranker: &mut Ranker<'_>,
    ) -> Result<(), TableError> {
        while let Some(pos) = self.pos {
            if pos > last {
                break;
            }
            while A::last(self.map[self.cursor].0, self.map[self.cursor].1) < pos {
                self.cursor += 1;
            }
            let (mstart, mlen, ref place) = self.map[self.cursor];
            let end = A::last(mstart, mlen).min(last);
            // (combo, length of the network `locate` reports)
            let (combo, len) = match (place, says) {
                (Some((lat, lon, region)), _) => {
                    (ranker.combo(*lat, *lon, region.as_deref()), mlen)
                }
                (None, DbSays::Unknown) => (FALLBACK_COMBO, 0),
                (None, DbSays::Nothing) | (None, DbSays::Network(_, NetworkData::Corrupt)) => {
                    (ranker.default_combo(), mlen)
                }
                (None, DbSays::Network(dlen, NetworkData::NoPlace)) => {
                    (ranker.default_combo(), dlen.max(mlen))
                }
                (None, DbSays::Network(dlen, NetworkData::Place { record, lat, lon })) => {
                    (ranker.record_combo(record, lat, lon), dlen.max(mlen))
                }
            };
            let value = if combo == FALLBACK_COMBO {
                FALLBACK
            } else if ranker.combo_ties[combo as usize] {
                // The spread seeds with the network: keep it exactly.
                pack(combo, len)?
            } else {
                pack(combo, MERGED)?
            };
            self.ranges.push(pos, value);
            self.pos = end.next();
        }
        Ok(())
    }

    /// A database network `(start, len)`: anything skipped before it is unknown.
    pub(super) fn network(
        &mut self,
        start: A,
        len: u8,
        data: NetworkData,
        ranker: &mut Ranker<'_>,
    ) -> Result<(), TableError> {
        match self.pos {
            Some(pos) if start >= pos => {}
            // Out of order or overlapping: the tree is not what we expect.
            _ => {
                return Err(TableError::Database(format!(
                    "network {start:?}/{len} out of order"
                )))
            }
        }
        if let Some(before) = start.to_u128().checked_sub(1).map(A::from_u128) {
            if self.pos.is_some_and(|p| p <= before) {
                self.cover(before, DbSays::Unknown, ranker)?;
            }
        }
        self.cover(A::last(start, len), DbSays::Network(len, data), ranker)
    }

    pub(super) fn finish(
        mut self,
        rest: DbSays,
        ranker: &mut Ranker<'_>,
    ) -> Result<Ranges<A>, TableError> {
        self.cover(A::last(A::default(), 0), rest, ranker)?;
        let mut ranges = self.ranges;
        ranges.starts.shrink_to_fit();
        ranges.values.shrink_to_fit();
        Ok(ranges)
    }
}

/// Length of the block `lookup` reports for `addr` (in a family `width` bits wide) in the range
/// `start ..` (up to `next`, the next range's start) with length byte `len`: the length itself,
/// or for a merged range the largest aligned block around `addr` inside the range (it holds
/// neither the address before the range nor the next range's start).
pub(super) fn block_len(width: u8, start: u128, next: Option<u128>, addr: u128, len: u8) -> u8 {
    if len != MERGED {
        return len;
    }
    let shift = 128 - u32::from(width);
    // Common prefix of two addresses of the family, in bits.
    let common = |x: u128, y: u128| ((x ^ y) << shift).leading_zeros().min(u32::from(width)) as u8;
    let mut len = 0u8;
    if start > 0 {
        len = len.max(common(addr, start - 1) + 1);
    }
    if let Some(next) = next {
        len = len.max(common(addr, next) + 1);
    }
    len.min(width)
}

pub(super) fn pack(combo: u32, len: u8) -> Result<u32, TableError> {
    if combo as usize >= MAX_COMBOS {
        return Err(TableError::TooManyCombos(combo as usize));
    }
    Ok(combo << 8 | u32::from(len))
}
