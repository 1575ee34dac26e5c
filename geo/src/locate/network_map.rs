//! The operator network map (like Apache Traffic Control's coverage zone file): CIDR →
//! region or coordinates, longest-prefix match, checked before the GeoIP database.
//!
//! File format, one entry per line:
//!
//! ```text
//! # comment; blank lines are ignored; text after '#' is ignored
//! 10.0.0.0/8        us-east          # a region name from [[regions]]
//! 10.20.0.0/16      eu-west          # more specific entries win
//! 2001:db8::/32     35.7,139.7       # or coordinates: lat,lon
//! 192.0.2.7         us-east          # a bare address means /32 (or /128)
//! 203.0.113.0/24    us-east country=KP   # optional: the country of the network (ISO alpha-2)
//! ```
//!
//! The optional `country=XX` is what the edge's geo rules read ([`NetworkMap::country_of`]);
//! routing ignores it. The edge parses the file with [`NetworkMap::parse_countries`], which does
//! not check region names (the edge has no `[[regions]]`).
//!
//! Prefixes with host bits set (`10.1.2.3/8`), duplicates, unknown regions and coordinates
//! out of range are rejected with the line number. IPv4-mapped IPv6 prefixes
//! (`::ffff:10.0.0.0/104`) are stored as the IPv4 prefix they denote, since clients are
//! looked up by their IPv4 address.
//!
//! ## The network that decided
//!
//! The map is compiled into a sorted list of disjoint blocks ("leaves"): an entry with more
//! specific entries inside it is split around them. A lookup returns both the operator's
//! entry (for explaining) and the leaf — the largest aligned block around the address that the
//! map places uniformly — whose length is what an ECS scope may safely claim. For an address
//! no entry covers, [`NetworkMap::gap`] gives the largest aligned block around it that holds no
//! entry, so a GeoIP or default answer never claims a scope that overlaps a map entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Place, RegionPoint};
use crate::error::GeoError;

/// One operator entry, with its place resolved to coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct MapEntry {
    /// The prefix as configured (IPv4-mapped IPv6 prefixes converted to IPv4).
    pub prefix: IpNet,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// The region name when the entry named a region.
    pub region: Option<String>,
    /// `country=XX`: the network's country (upper-case ISO 3166 alpha-2), if given.
    pub country: Option<String>,
    /// 1-based line in the file it came from, if any.
    pub line: Option<usize>,
}

/// A successful network map lookup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapMatch<'a> {
    /// The operator's entry that matched (longest prefix).
    pub entry: &'a MapEntry,
    /// The largest block around the address placed by this entry alone (≥ the entry's
    /// length): the network that decided.
    pub network: IpNet,
}

/// A disjoint block of one address family carrying an entry.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    start: u128,
    len: u8,
    entry: u32,
}

/// Sorted disjoint leaves of one family (`width` = 32 or 128).
#[derive(Debug, Clone, Default)]
struct Partition {
    leaves: Vec<Leaf>,
}

/// A compiled network map. Cheap to look up (binary search), immutable; swap a new one in
/// through [`super::Locator::swap_map`].
#[derive(Debug, Clone, Default)]
pub struct NetworkMap {
    entries: Vec<MapEntry>,
    v4: Partition,
    v6: Partition,
}

impl NetworkMap {
    /// An empty map.
    pub fn empty() -> NetworkMap {
        NetworkMap::default()
    }

    /// Build from entries (e.g. inline config), resolving region names against `regions`.
    pub fn new(
        entries: Vec<(IpNet, Place)>,
        regions: &[RegionPoint],
    ) -> Result<NetworkMap, GeoError> {
        let resolved = entries
            .into_iter()
            .map(|(prefix, place)| resolve(prefix, place, None, regions))
            .collect::<Result<Vec<_>, _>>()?;
        NetworkMap::compile(resolved)
    }

    /// Parse the file format described in the module docs. Errors name the line.
    pub fn parse(text: &str, regions: &[RegionPoint]) -> Result<NetworkMap, GeoError> {
        NetworkMap::parse_with(text, Some(regions))
    }

    /// Parse for the countries only (the edge's geo rules): the same syntax and checks, except
    /// that region names are not resolved (entries naming a region get no coordinates).
    pub fn parse_countries(text: &str) -> Result<NetworkMap, GeoError> {
        NetworkMap::parse_with(text, None)
    }

    /// The `country=` of the entry that places `ip` (longest prefix), if it has one.
    pub fn country_of(&self, ip: IpAddr) -> Option<&str> {
        self.lookup(ip).and_then(|m| m.entry.country.as_deref())
    }

    fn parse_with(text: &str, regions: Option<&[RegionPoint]>) -> Result<NetworkMap, GeoError> {
        let mut resolved = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut fields = content.split_whitespace();
            let (Some(cidr), Some(place), country, None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(GeoError::MapSyntax {
                    line,
                    message: format!(
                        "expected `CIDR region` or `CIDR lat,lon` (and optionally `country=XX`), got {content:?}"
                    ),
                });
            };
            let country = match country {
                None => None,
                Some(c) => match c.strip_prefix("country=") {
                    Some(cc) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) => {
                        Some(cc.to_string())
                    }
                    _ => {
                        return Err(GeoError::MapSyntax {
                            line,
                            message: format!(
                                "{c:?}: expected `country=XX` (upper-case ISO 3166 alpha-2)"
                            ),
                        })
                    }
                },
            };
            let prefix = parse_prefix(cidr).ok_or_else(|| GeoError::MapSyntax {
                line,
                message: format!("{cidr:?} is not a CIDR prefix or an IP address"),
            })?;
            let place =
                parse_place(place).map_err(|message| GeoError::MapSyntax { line, message })?;
            let mut entry = match regions {
                Some(regions) => resolve(prefix, place, Some(line), regions)?,
                None => match place {
                    Place::Region(name) => {
                        // Only the country is read; the region is kept for display.
                        let mut e = resolve(
                            prefix,
                            Place::Coords { lat: 0.0, lon: 0.0 },
                            Some(line),
                            &[],
                        )?;
                        e.region = Some(name);
                        e
                    }
                    p => resolve(prefix, p, Some(line), &[])?,
                },
            };
            entry.country = country;
            resolved.push(entry);
        }
        NetworkMap::compile(resolved)
    }

    /// Read and parse a network map file.
    pub fn load(path: &std::path::Path, regions: &[RegionPoint]) -> Result<NetworkMap, GeoError> {
        let text = std::fs::read_to_string(path).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        NetworkMap::parse(&text, regions)
    }

    /// Both maps' entries in one map (e.g. inline config entries + the file). The same prefix
    /// in both is an error rather than a silent override.
    pub fn merged(self, other: NetworkMap) -> Result<NetworkMap, GeoError> {
        let mut entries = self.entries;
        entries.extend(other.entries);
        NetworkMap::compile(entries)
    }

    /// The operator's entries, in the order given.
    pub fn entries(&self) -> &[MapEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Longest-prefix match. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<MapMatch<'_>> {
        self.lookup_or_gap(ip).ok()
    }

    /// For an address no entry covers, the largest aligned block around it that holds no entry
    /// (`0.0.0.0/0` or `::/0` for an empty map). For a covered address, its leaf.
    pub fn gap(&self, ip: IpAddr) -> IpNet {
        match self.lookup_or_gap(ip) {
            Ok(m) => m.network,
            Err(gap) => gap,
        }
    }

    /// The match, or the gap block around an uncovered address.
    pub fn lookup_or_gap(&self, ip: IpAddr) -> Result<MapMatch<'_>, IpNet> {
        let ip = ip.to_canonical();
        let (part, width, addr) = match ip {
            IpAddr::V4(a) => (&self.v4, 32u8, u128::from(u32::from(a))),
            IpAddr::V6(a) => (&self.v6, 128u8, u128::from(a)),
        };
        let leaves = &part.leaves;
        // Index of the first leaf starting after `addr`.
        let after = leaves.partition_point(|l| l.start <= addr);
        if after > 0 {
            let leaf = leaves[after - 1];
            if addr <= last_addr(leaf.start, leaf.len, width) {
                return Ok(MapMatch {
                    entry: &self.entries[leaf.entry as usize],
                    network: to_net(leaf.start, leaf.len, width),
                });
            }
        }
        // Not covered: the block around `addr` must contain neither the end of the previous
        // leaf nor the start of the next one.
        let mut len = 0u8;
        if after > 0 {
            let prev = leaves[after - 1];
            len = len.max(common_prefix(addr, last_addr(prev.start, prev.len, width), width) + 1);
        }
        if let Some(next) = leaves.get(after) {
            len = len.max(common_prefix(addr, next.start, width) + 1);
        }
        let len = len.min(width);
        Err(to_net(addr & mask(len, width), len, width))
    }

    fn compile(entries: Vec<MapEntry>) -> Result<NetworkMap, GeoError> {
        let mut v4: Vec<(u128, u8, u32)> = Vec::new();
        let mut v6: Vec<(u128, u8, u32)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let idx = u32::try_from(i).map_err(|_| GeoError::MapSyntax {
                line: e.line.unwrap_or(0),
                message: "too many entries".into(),
            })?;
            match e.prefix {
                IpNet::V4(n) => v4.push((u128::from(u32::from(n.network())), n.prefix_len(), idx)),
                IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len(), idx)),
            }
        }
        let mut map = NetworkMap {
            v4: Partition::default(),
            v6: Partition::default(),
            entries,
        };
        for (list, width, part) in [(&mut v4, 32u8, &mut map.v4), (&mut v6, 128u8, &mut map.v6)] {
            list.sort_by_key(|&(start, len, idx)| (start, len, idx));
            for pair in list.windows(2) {
                if pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1 {
                    let second = &map.entries[pair[1].2 as usize];
                    return Err(GeoError::DuplicatePrefix {
                        prefix: second.prefix,
                        line: second.line,
                    });
                }
            }
            split(0, 0, width, None, list, &mut part.leaves);
        }
        Ok(map)
    }
}

/// Emit the leaves of block `(start, len)`: `entries` are the entries inside it (sorted by
/// start, then length), `inherited` the entry covering it from above.
fn split(
    start: u128,
    len: u8,
    width: u8,
    inherited: Option<u32>,
    entries: &[(u128, u8, u32)],
    out: &mut Vec<Leaf>,
) {
    let (here, rest) = match entries.first() {
        Some(&(s, l, idx)) if s == start && l == len => (Some(idx), &entries[1..]),
        _ => (inherited, entries),
    };
    if rest.is_empty() || len >= width {
        if let Some(entry) = here {
            out.push(Leaf { start, len, entry });
        }
        return;
    }
    let mid = start + (1u128 << (width - len - 1));
    let cut = rest.partition_point(|&(s, _, _)| s < mid);
    split(start, len + 1, width, here, &rest[..cut], out);
    split(mid, len + 1, width, here, &rest[cut..], out);
}

fn mask(len: u8, width: u8) -> u128 {
    let full = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if len == 0 {
        0
    } else {
        full & !((1u128 << (width - len)) - 1) & full
    }
}

fn last_addr(start: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        }
    } else {
        start | ((1u128 << (width - len)) - 1)
    }
}

/// Number of leading bits `a` and `b` share, within `width` bits.
fn common_prefix(a: u128, b: u128, width: u8) -> u8 {
    let x = (a ^ b) << (128 - u32::from(width));
    (x.leading_zeros() as u8).min(width)
}

fn to_net(start: u128, len: u8, width: u8) -> IpNet {
    if width == 32 {
        // `start` fits in 32 bits and `len` ≤ 32 by construction.
        let addr = Ipv4Addr::from(start as u32);
        IpNet::V4(Ipv4Net::new(addr, len).unwrap_or_default())
    } else {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(start), len).unwrap_or_default())
    }
}

fn parse_prefix(text: &str) -> Option<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

fn parse_place(text: &str) -> Result<Place, String> {
    match text.split_once(',') {
        Some((lat, lon)) => {
            let lat: f64 = lat
                .trim()
                .parse()
                .map_err(|_| format!("bad latitude in {text:?}"))?;
            let lon: f64 = lon
                .trim()
                .parse()
                .map_err(|_| format!("bad longitude in {text:?}"))?;
            Ok(Place::Coords { lat, lon })
        }
        None => Ok(Place::Region(text.to_string())),
    }
}

/// Validate one entry and resolve its place.
fn resolve(
    prefix: IpNet,
    place: Place,
    line: Option<usize>,
    regions: &[RegionPoint],
) -> Result<MapEntry, GeoError> {
    if prefix.trunc() != prefix {
        return Err(GeoError::HostBits { prefix, line });
    }
    let prefix = canonical_prefix(prefix);
    let (lat, lon, region) = match place {
        Place::Region(name) => match regions.iter().find(|r| r.name == name) {
            Some(r) => (r.lat, r.lon, Some(name)),
            None => return Err(GeoError::UnknownRegion { name, line }),
        },
        Place::Coords { lat, lon } => {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(GeoError::BadCoordinates { lat, lon, line });
            }
            (lat, lon, None)
        }
    };
    Ok(MapEntry {
        prefix,
        lat,
        lon,
        region,
        country: None,
        line,
    })
}

/// `::ffff:a.b.c.d/(96+n)` → `a.b.c.d/n`; everything else unchanged.
fn canonical_prefix(prefix: IpNet) -> IpNet {
    if let IpNet::V6(n) = prefix {
        if n.prefix_len() >= 96 {
            if let Some(v4) = n.network().to_ipv4_mapped() {
                if let Ok(net) = Ipv4Net::new(v4, n.prefix_len() - 96) {
                    return IpNet::V4(net);
                }
            }
        }
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Vec<RegionPoint> {
        vec![
            RegionPoint {
                name: "us-east".into(),
                lat: 39.0,
                lon: -77.5,
            },
            RegionPoint {
                name: "eu-west".into(),
                lat: 53.3,
                lon: -6.3,
            },
        ]
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    const MAP: &str = "\
# operator coverage
10.0.0.0/8      us-east
10.20.0.0/16    eu-west   # nested

2001:db8::/32   35.7,139.7
192.0.2.7       us-east
::ffff:198.51.100.0/120 eu-west
";

    #[test]
    fn parses_and_matches_longest_prefix() {
        let map = NetworkMap::parse(MAP, &regions()).unwrap();
        assert_eq!(map.len(), 5);
        let m = map.lookup(ip("10.1.2.3")).unwrap();
        assert_eq!(m.entry.region.as_deref(), Some("us-east"));
        assert_eq!(m.entry.prefix, net("10.0.0.0/8"));
        assert_eq!(m.entry.line, Some(2));
        let m = map.lookup(ip("10.20.9.9")).unwrap();
        assert_eq!(m.entry.region.as_deref(), Some("eu-west"));
        assert_eq!(m.network, net("10.20.0.0/16"));
        let m = map.lookup(ip("2001:db8:1::1")).unwrap();
        assert_eq!((m.entry.lat, m.entry.lon), (35.7, 139.7));
        assert_eq!(m.entry.region, None);
        assert_eq!(
            map.lookup(ip("192.0.2.7")).unwrap().network,
            net("192.0.2.7/32")
        );
        assert!(map.lookup(ip("192.0.2.8")).is_none());
        assert!(map.lookup(ip("11.0.0.1")).is_none());
        // mapped entry stored as IPv4; mapped lookups treated as IPv4
        assert_eq!(
            map.lookup(ip("198.51.100.9")).unwrap().entry.prefix,
            net("198.51.100.0/24")
        );
        assert_eq!(
            map.lookup(ip("::ffff:10.20.1.1")).unwrap().network,
            net("10.20.0.0/16")
        );
    }

    #[test]
    fn leaf_of_a_split_entry_excludes_the_nested_entry() {
        let map = NetworkMap::parse(MAP, &regions()).unwrap();
        // 10.0.0.0/8 minus 10.20.0.0/16: 10.1.2.3 shares 11 bits with 10.20.0.0 → /12.
        let m = map.lookup(ip("10.1.2.3")).unwrap();
        assert_eq!(m.network, net("10.0.0.0/12"));
        assert!(!m.network.contains(&net("10.20.0.0/16")));
        let m = map.lookup(ip("10.200.0.1")).unwrap();
        assert_eq!(m.network, net("10.128.0.0/9"));
    }

    #[test]
    fn gap_blocks_avoid_entries() {
        let map = NetworkMap::parse(MAP, &regions()).unwrap();
        let g = map.gap(ip("11.0.0.1"));
        assert!(g.contains(&ip("11.0.0.1")));
        assert!(!g.contains(&net("10.0.0.0/8")));
        assert_eq!(g, net("11.0.0.0/8"));
        let g = map.gap(ip("192.0.2.8"));
        assert_eq!(g, net("192.0.2.8/29"));
        assert_eq!(NetworkMap::empty().gap(ip("1.2.3.4")), net("0.0.0.0/0"));
        assert_eq!(NetworkMap::empty().gap(ip("::1")), net("::/0"));
        assert_eq!(map.gap(ip("2001:db9::1")), net("2001:db9::/32"));
    }

    #[test]
    fn errors_name_the_line() {
        let r = regions();
        let cases = [
            ("10.0.0.0/8 us-east extra", "line 1", "expected"),
            ("\n10.0.0.0/33 us-east", "line 2", "not a CIDR"),
            ("10.0.0.0/8 mars", "line 1", "unknown region \"mars\""),
            ("10.1.2.3/8 us-east", "line 1", "did you mean 10.0.0.0/8"),
            (
                "10.0.0.0/8 us-east\n10.0.0.0/8 eu-west",
                "line 2",
                "duplicate prefix 10.0.0.0/8",
            ),
            ("10.0.0.0/8 91,0", "line 1", "out of range"),
            ("10.0.0.0/8 1,x", "line 1", "bad longitude"),
            ("10.0.0.0/8", "line 1", "expected"),
        ];
        for (text, line, what) in cases {
            let err = NetworkMap::parse(text, &r).unwrap_err().to_string();
            assert!(err.contains(line) && err.contains(what), "{text:?}: {err}");
        }
    }

    #[test]
    fn merged_combines_and_rejects_duplicates() {
        let r = regions();
        let inline = NetworkMap::new(
            vec![(net("10.0.0.0/8"), Place::Region("eu-west".into()))],
            &r,
        )
        .unwrap();
        let file = NetworkMap::parse("10.1.0.0/16 us-east", &r).unwrap();
        let both = inline.clone().merged(file).unwrap();
        assert_eq!(
            both.lookup(ip("10.1.0.1")).unwrap().entry.region.as_deref(),
            Some("us-east")
        );
        assert_eq!(
            both.lookup(ip("10.2.0.1")).unwrap().entry.region.as_deref(),
            Some("eu-west")
        );
        let dup = NetworkMap::parse("10.0.0.0/8 us-east", &r).unwrap();
        assert!(matches!(
            inline.merged(dup),
            Err(GeoError::DuplicatePrefix { .. })
        ));
    }

    #[test]
    fn default_route_entries() {
        let r = regions();
        let map =
            NetworkMap::parse("0.0.0.0/0 us-east\n::/0 eu-west\n10.0.0.0/8 eu-west", &r).unwrap();
        assert_eq!(map.lookup(ip("1.1.1.1")).unwrap().network, net("0.0.0.0/5"));
        assert_eq!(
            map.lookup(ip("200.1.1.1")).unwrap().network,
            net("128.0.0.0/1")
        );
        assert_eq!(map.lookup(ip("2001::1")).unwrap().network, net("::/0"));
    }

    /// Brute-force check of the partition against a linear longest-prefix scan.
    #[test]
    fn partition_agrees_with_linear_scan() {
        let r = regions();
        let text = "10.0.0.0/8 us-east\n10.128.0.0/9 eu-west\n10.130.0.0/16 us-east\n\
                    10.130.5.0/24 eu-west\n10.0.0.0/30 eu-west\n11.0.0.0/8 eu-west";
        let map = NetworkMap::parse(text, &r).unwrap();
        let mut x: u32 = 0x0900_0000;
        while x < 0x0c00_0000 {
            let a = IpAddr::V4(Ipv4Addr::from(x));
            let want = map
                .entries()
                .iter()
                .filter(|e| e.prefix.contains(&a))
                .max_by_key(|e| e.prefix.prefix_len());
            match (map.lookup_or_gap(a), want) {
                (Ok(m), Some(w)) => {
                    assert_eq!(m.entry, w, "{a}");
                    assert!(m.network.contains(&a) && w.prefix.contains(&m.network));
                    for e in map.entries() {
                        if e.prefix.prefix_len() > w.prefix.prefix_len() {
                            assert!(
                                !m.network.contains(&e.prefix),
                                "{a}: {} covers {}",
                                m.network,
                                e.prefix
                            );
                        }
                    }
                }
                (Err(gap), None) => {
                    assert!(gap.contains(&a));
                    assert!(map
                        .entries()
                        .iter()
                        .all(|e| !gap.contains(&e.prefix) && !e.prefix.contains(&gap)));
                }
                (got, want) => panic!("{a}: {got:?} vs {want:?}"),
            }
            x = x.wrapping_add(0x0000_3f01);
        }
    }

    #[test]
    fn countries_are_optional_and_checked() {
        let text =
            "10.0.0.0/8 us-east\n10.9.0.0/16 us-east country=KP\n2001:db8::/32 1,2 country=DE\n";
        let m = NetworkMap::parse(text, &regions()).unwrap();
        assert_eq!(m.country_of(ip("10.9.1.1")), Some("KP"));
        assert_eq!(m.country_of(ip("10.8.1.1")), None);
        assert_eq!(m.country_of(ip("2001:db8::1")), Some("DE"));
        assert_eq!(m.country_of(ip("192.0.2.1")), None);
        for bad in [
            "10.0.0.0/8 us-east country=kp",
            "10.0.0.0/8 us-east KP",
            "10.0.0.0/8 us-east country=KP x",
        ] {
            assert!(
                matches!(
                    NetworkMap::parse(bad, &regions()),
                    Err(GeoError::MapSyntax { line: 1, .. })
                ),
                "{bad}"
            );
        }
        // The edge's parse does not know regions, and still checks everything else.
        let m = NetworkMap::parse_countries("127.0.99.0/24 nowhere country=KP").unwrap();
        assert_eq!(m.country_of(ip("127.0.99.7")), Some("KP"));
        assert!(NetworkMap::parse("127.0.99.0/24 nowhere country=KP", &regions()).is_err());
        assert!(NetworkMap::parse_countries("127.0.99.1/24 x country=KP").is_err());
    }
}
