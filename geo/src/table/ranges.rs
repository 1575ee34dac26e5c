//! The lookup side of the table: sorted range starts per family with their values, and the
//! IPv4 direct index by /20 ([`V4Ranges`]); searched by [`search_from`]. Built by
//! [`super::Family`], read by [`super::RouteTable::lookup`].

use super::*;

/// An index entry holding the answer itself: `DIRECT | combo << 8 | block length`.
const DIRECT: u32 = 1 << 31;

/// Sorted range starts of one family (the first is 0) with `combo << 8 | len` values.
#[derive(Debug, Clone, Default)]
pub(super) struct Ranges<A> {
    pub(super) starts: Vec<A>,
    pub(super) values: Vec<u32>,
}

impl<A: Copy + Ord> Ranges<A> {
    pub(super) fn push(&mut self, start: A, value: u32) {
        if self.values.last() != Some(&value) {
            self.starts.push(start);
            self.values.push(value);
        }
    }

    /// Index of the range holding `addr`.
    pub(super) fn find(&self, addr: A) -> usize {
        self.starts.partition_point(|&s| s <= addr) - 1
    }

    pub(super) fn bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<A>() + self.values.capacity() * 4
    }
}

/// IPv4 ranges with a direct index by the top [`V4_INDEX_BITS`] bits. A /20 that lies in one
/// range (nearly all of them) has its answer in its index entry (`DIRECT | combo << 8 |
/// length`, the length being the block's: the same for every address of the /20), so most
/// lookups read one word; otherwise the entry is the range holding the /20's first address and
/// the search runs from there.
#[derive(Debug, Clone, Default)]
pub(super) struct V4Ranges {
    pub(super) ranges: Ranges<u32>,
    pub(super) index: Vec<u32>,
}

impl V4Ranges {
    pub(super) fn new(ranges: Ranges<u32>) -> V4Ranges {
        let buckets = 1usize << V4_INDEX_BITS;
        let span = 32 - V4_INDEX_BITS;
        let starts = &ranges.starts;
        let mut index = Vec::with_capacity(buckets);
        let mut i = 0usize;
        for b in 0..buckets {
            let first = (b as u32) << span;
            let last = first | ((1u32 << span) - 1);
            while i + 1 < starts.len() && starts[i + 1] <= first {
                i += 1;
            }
            let next = starts.get(i + 1).copied();
            let value = ranges.values[i];
            let whole = next.is_none_or(|n| n > last);
            index.push(if whole && value != FALLBACK {
                let len = block_len(
                    32,
                    u128::from(starts[i]),
                    next.map(u128::from),
                    u128::from(first),
                    (value & 0xff) as u8,
                );
                DIRECT | (value & !0xff) | u32::from(len)
            } else {
                i as u32
            });
        }
        V4Ranges { ranges, index }
    }

    /// `(value, length)` for `a`: length is the block's (merged ranges) or the network's.
    pub(super) fn find(&self, a: u32) -> (u32, u8) {
        let entry = self.index[(a >> (32 - V4_INDEX_BITS)) as usize];
        if entry & DIRECT != 0 {
            return (entry & !DIRECT & !0xff, (entry & 0xff) as u8);
        }
        let starts = &self.ranges.starts;
        let i = search_from(starts, entry as usize, a);
        let value = self.ranges.values[i];
        let next = starts.get(i + 1).map(|&n| u128::from(n));
        let len = block_len(
            32,
            u128::from(starts[i]),
            next,
            u128::from(a),
            (value & 0xff) as u8,
        );
        (value, len)
    }

    pub(super) fn bytes(&self) -> usize {
        self.ranges.bytes() + self.index.capacity() * 4
    }
}

/// The last range at or after `lo` starting at or before `a` (`starts[lo] <= a`): a galloping
/// search, so a neighbourhood of few ranges costs few reads.
fn search_from<A: Copy + Ord>(starts: &[A], lo: usize, a: A) -> usize {
    let mut at = lo;
    let mut step = 1;
    while at + step < starts.len() && starts[at + step] <= a {
        at += step;
        step *= 2;
    }
    let end = (at + step).min(starts.len());
    at + starts[at..end].partition_point(|&s| s <= a) - 1
}
