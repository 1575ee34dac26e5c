//! Choosing edges for a client: candidates → eligible → ranked → decided, in one pure function,
//! [`choose`]. Its [`Decision`] is what the DNS answer, the explain API and the query log are
//! built from.
//!
//! 1. **Eligible**: not disabled, health not Down, not draining, not overloaded, and (when the
//!    policy sets `stale_after_ms`) for an Up edge, last evidence no older than that (an edge
//!    with no `last_seen_ms` is not stale). Unknown health is eligible, never stale. The first
//!    reason that applies, in that order, is recorded.
//! 2. **Home region**: the client's own region when the network map or the default placed it in
//!    one that has candidates; else the region of the nearest non-disabled candidate.
//! 3. **Rank**: by great-circle distance ([`distance_km`], rounded to whole metres), then
//!    position in the candidate slice. When the home region has no eligible edge and the
//!    policy lists ordered backups for it, the home region's edges come first (they are all
//!    excluded), then each backup region's edges in the configured order, then everything else
//!    by distance.
//! 4. **Decide**: walk the ranking and take the first `answers` eligible edges. Edges of equal
//!    rank (same tier, same distance: in practice, the same region) are a tie group; when a
//!    group has more eligible edges than slots left, they are picked by weighted rendezvous
//!    hashing seeded with the client's network: the same network always gets the same edges
//!    (answers stay cacheable per ECS scope), different networks spread in proportion to
//!    weight, and removing an edge moves only its own clients. A tie group that fits whole is
//!    answered in the same hashed order.
//! 5. **All down** (no eligible edge): policy `nearest` answers the nearest non-disabled edges
//!    anyway (`Rule::AllDownNearest`), policy `none` answers nothing (`Rule::AllDownNone`).
//!    An empty pool, or one where every edge is disabled, is `Rule::NoCandidates`.
//!
//! `client_dependent` is false exactly when every client, wherever it is and whatever its
//! network, would get the same set of edges: nothing is answered, or every answerable edge
//! (eligible ones; non-disabled ones under all-down `nearest`) fits in `answers` — then the
//! chosen set is all of them and only their order varies, which DNS does not promise anyway.
//! In particular a single region holding more eligible edges than `answers` is client dependent,
//! because the weighted spread picks by network.

use crate::model::{
    AllDown, Candidate, ClientLocation, Decision, Exclusion, Health, Policy, Ranked, Rule,
};

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance between two points given in degrees, in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    Point::new(lat1, lon1).distance_km(&Point::new(lat2, lon2))
}

/// A point on the unit sphere (x, y, z), so a distance costs a square root and one `asin`
/// instead of the haversine's four transcendental calls.
#[derive(Debug, Clone, Copy)]
struct Point([f64; 3]);

impl Point {
    fn new(lat: f64, lon: f64) -> Point {
        let (sin_lat, cos_lat) = lat.to_radians().sin_cos();
        let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
        Point([cos_lat * cos_lon, cos_lat * sin_lon, sin_lat])
    }

    /// Central angle from the chord length (`2·asin(c/2)`): exact for near and antipodal
    /// points alike, unlike `acos` of the dot product.
    fn distance_km(&self, other: &Point) -> f64 {
        let [a, b, c] = self.0;
        let [x, y, z] = other.0;
        let chord = ((a - x) * (a - x) + (b - y) * (b - y) + (c - z) * (c - z)).sqrt();
        2.0 * EARTH_RADIUS_KM * (chord * 0.5).min(1.0).asin()
    }

    /// The point for an edge location, memoised per thread: a pool's few distinct locations
    /// are converted once, not on every decision. The memo is exact (keyed by the bits of
    /// both coordinates), so results do not depend on it.
    fn of_edge(lat: f64, lon: f64) -> Point {
        let key = (lat.to_bits(), lon.to_bits());
        let slot = (mix(key.0 ^ key.1.rotate_left(32)) as usize) & (POINT_MEMO - 1);
        POINTS.with(|memo| {
            let mut memo = memo.borrow_mut();
            match memo[slot] {
                Some((k, p)) if k == key => p,
                _ => {
                    let p = Point::new(lat, lon);
                    memo[slot] = Some((key, p));
                    p
                }
            }
        })
    }
}

/// Slots in the per-thread edge-location memo (a power of two).
const POINT_MEMO: usize = 64;

type PointSlot = Option<((u64, u64), Point)>;

thread_local! {
    static POINTS: std::cell::RefCell<[PointSlot; POINT_MEMO]> =
        const { std::cell::RefCell::new([None; POINT_MEMO]) };
}

/// Why `edge` may not be answered now, if it may not.
pub fn exclusion(edge: &Candidate, now_ms: u64, policy: &Policy) -> Option<Exclusion> {
    if edge.disabled {
        return Some(Exclusion::Disabled);
    }
    if edge.health == Health::Down {
        return Some(Exclusion::Down);
    }
    if edge.draining {
        return Some(Exclusion::Draining);
    }
    if edge.overloaded {
        return Some(Exclusion::Overloaded);
    }
    if let (Health::Up, Some(limit), Some(seen)) =
        (edge.health, policy.stale_after_ms, edge.last_seen_ms)
    {
        if now_ms.saturating_sub(seen) > limit {
            return Some(Exclusion::Stale);
        }
    }
    None
}

/// Choose the edges to answer `client` with. Pure: same inputs, same decision.
pub fn choose(
    client: &ClientLocation,
    edges: &[Candidate],
    now_ms: u64,
    policy: &Policy,
) -> Decision {
    let mut distances = DistanceMemo::new(client.lat, client.lon);
    let mut ranked: Vec<Ranked> = edges
        .iter()
        .enumerate()
        .map(|(index, e)| Ranked {
            index,
            distance_km: distances.get(e.lat, e.lon),
            excluded: exclusion(e, now_ms, policy),
        })
        .collect();
    let answers = policy.answers.max(1);
    let eligible = ranked.iter().filter(|r| r.excluded.is_none()).count();
    let seed = network_seed(client);

    if eligible == 0 {
        let keys = rank(&mut ranked, None);
        let usable = |r: &Ranked| r.excluded != Some(Exclusion::Disabled);
        let usable_count = ranked.iter().filter(|r| usable(r)).count();
        if usable_count == 0 {
            return Decision {
                chosen: Vec::new(),
                ranked,
                rule: Rule::NoCandidates,
                client_dependent: false,
            };
        }
        return match policy.all_down {
            AllDown::None => Decision {
                chosen: Vec::new(),
                ranked,
                rule: Rule::AllDownNone,
                client_dependent: false,
            },
            AllDown::Nearest => Decision {
                chosen: pick(&ranked, &keys, edges, usable, answers, seed),
                ranked,
                rule: Rule::AllDownNearest,
                client_dependent: usable_count > answers,
            },
        };
    }

    // Backups only matter when some are configured and the home region has nothing to offer.
    let home = if policy.backups.is_empty() {
        ""
    } else {
        home_region(client.region.as_deref(), edges, &ranked)
    };
    let backups = policy
        .backups
        .get(home)
        .filter(|list| !list.is_empty())
        .filter(|_| {
            !ranked
                .iter()
                .any(|r| r.excluded.is_none() && edges[r.index].region == home)
        });
    let tiers: Option<Vec<u32>> = backups.map(|list| {
        edges
            .iter()
            .map(|e| {
                if e.region == home {
                    0
                } else {
                    match list.iter().position(|b| *b == e.region) {
                        Some(k) => 1 + k as u32,
                        None => 1 + list.len() as u32,
                    }
                }
            })
            .collect()
    });
    let keys = rank(&mut ranked, tiers.as_deref());
    let chosen = pick(
        &ranked,
        &keys,
        edges,
        |r| r.excluded.is_none(),
        answers,
        seed,
    );
    let rule = match (backups, &tiers, chosen.first()) {
        (Some(list), Some(tiers), Some(&first))
            if (1..=list.len() as u32).contains(&tiers[first]) =>
        {
            Rule::Backup
        }
        _ => Rule::Nearest,
    };
    Decision {
        chosen,
        ranked,
        rule,
        client_dependent: eligible > answers,
    }
}

/// Distances from one point, computed once per distinct edge location (edges of a region
/// share its coordinates). Remembers the last [`MEMO`] locations.
pub(crate) struct DistanceMemo {
    origin: Point,
    seen: [(u64, u64, f64); MEMO],
    len: usize,
    next: usize,
}

const MEMO: usize = 8;

impl DistanceMemo {
    pub(crate) fn new(lat: f64, lon: f64) -> DistanceMemo {
        DistanceMemo {
            origin: Point::new(lat, lon),
            seen: [(0, 0, 0.0); MEMO],
            len: 0,
            next: 0,
        }
    }

    pub(crate) fn get(&mut self, lat: f64, lon: f64) -> f64 {
        let (a, b) = (lat.to_bits(), lon.to_bits());
        if let Some(&(_, _, d)) = self.seen[..self.len]
            .iter()
            .find(|&&(x, y, _)| x == a && y == b)
        {
            return d;
        }
        let d = self.origin.distance_km(&Point::of_edge(lat, lon));
        self.seen[self.next] = (a, b, d);
        self.next = (self.next + 1) % MEMO;
        self.len = (self.len + 1).min(MEMO);
        d
    }
}

/// The client's region if the map/default placed it in one the pool has; else the region of
/// the nearest non-disabled candidate (any candidate if all are disabled).
pub(crate) fn home_region<'a>(
    own_region: Option<&str>,
    edges: &'a [Candidate],
    ranked: &[Ranked],
) -> &'a str {
    if let Some(own) = own_region {
        if let Some(e) = edges.iter().find(|e| e.region == own) {
            return &e.region;
        }
    }
    let nearest = ranked
        .iter()
        .filter(|r| r.excluded != Some(Exclusion::Disabled))
        .min_by_key(|r| sort_key(r, None))
        .or_else(|| ranked.iter().min_by_key(|r| sort_key(r, None)));
    nearest
        .map(|r| edges[r.index].region.as_str())
        .unwrap_or("")
}

/// The ranking key, packed so a plain integer sort ranks: tier (top 16 bits), distance in
/// whole metres (26 bits, up to 67,000 km: "equal rank" means the same metre), position in the
/// candidate slice (low 22 bits) as the deterministic tie-break. `key >> 22` identifies a tie
/// group.
pub(crate) fn sort_key(r: &Ranked, tiers: Option<&[u32]>) -> u64 {
    let tier = u64::from(tiers.map_or(0, |t| t[r.index]).min(0xffff));
    // distances are finite and non-negative (≤ ~20,040 km): +0.5 then truncate rounds
    let metres = ((r.distance_km * 1000.0 + 0.5) as u64).min((1 << 26) - 1);
    (tier << 48) | (metres << 22) | (r.index as u64 & ((1 << 22) - 1))
}

/// Sort into rank order; returns the keys, indexed by candidate position.
fn rank(ranked: &mut [Ranked], tiers: Option<&[u32]>) -> Vec<u64> {
    // `ranked` is still in candidate order here, so `keys[i]` belongs to candidate `i`.
    let keys: Vec<u64> = ranked.iter().map(|r| sort_key(r, tiers)).collect();
    ranked.sort_unstable_by_key(|r| keys[r.index]);
    keys
}

/// Walk the ranking in tie groups and take up to `answers` entries accepted by `ok`, ordering
/// each group by weighted rendezvous score.
fn pick(
    ranked: &[Ranked],
    keys: &[u64],
    edges: &[Candidate],
    ok: impl Fn(&Ranked) -> bool,
    answers: usize,
    seed: u64,
) -> Vec<usize> {
    let mut chosen = Vec::with_capacity(answers.min(ranked.len()));
    let mut start = 0;
    while start < ranked.len() && chosen.len() < answers {
        let group_key = keys[ranked[start].index] >> 22;
        let mut end = start + 1;
        while end < ranked.len() && keys[ranked[end].index] >> 22 == group_key {
            end += 1;
        }
        let group = &ranked[start..end];
        let ok_count = group.iter().filter(|r| ok(r)).count();
        if ok_count == 1 {
            if let Some(r) = group.iter().find(|r| ok(r)) {
                chosen.push(r.index);
            }
        } else if ok_count > 1 {
            let scores = group
                .iter()
                .filter(|r| ok(r))
                .map(|r| (rendezvous_score(seed, &edges[r.index]), r.index));
            let room = answers - chosen.len();
            take_top_scored(scores, ok_count, room, &mut chosen);
        }
        start = end;
    }
    chosen
}

/// Tie groups up to this size are scored in a stack buffer.
const SMALL_GROUP: usize = 16;

/// Weighted rendezvous (highest random weight) score: `weight / -ln(u)` with `u` in (0, 1)
/// hashed from the client's network and the edge id. Higher wins.
pub(crate) fn rendezvous_score(seed: u64, edge: &Candidate) -> f64 {
    let h = mix(fnv1a(seed, edge.id.as_bytes()));
    // 53 random bits → u in (0, 1), never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(edge.weight) / -u.ln()
}

/// A stable seed from the client's network (address and length). Stable across processes and
/// builds, so every router instance spreads the same way.
fn network_seed(client: &ClientLocation) -> u64 {
    spread_seed(client.network)
}

/// The seed of the weighted spread among equally ranked edges for clients located by
/// `network` (its address and length): what [`choose`] uses, for callers that rank without a
/// [`ClientLocation`] (see [`crate::ranking`]).
pub fn spread_seed(network: ipnet::IpNet) -> u64 {
    let (bytes, len): ([u8; 16], u8) = match network {
        ipnet::IpNet::V4(n) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&n.network().octets());
            (b, n.prefix_len())
        }
        // 128 + length, modulo 256 (a /128 gives 0, as it always has in release builds).
        ipnet::IpNet::V6(n) => (n.network().octets(), 128u8.wrapping_add(n.prefix_len())),
    };
    mix(fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, &bytes), &[len]))
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64 finaliser: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Append to `chosen` the `room` best of `scores` (`ok_count` of them) by rendezvous score,
/// highest first, ties by index. Small groups (the usual case: a few edges per region) are
/// sorted on the stack. Shared by [`choose`] and [`crate::ranking::Ranking::decide`].
pub(crate) fn take_top_scored(
    scores: impl Iterator<Item = (f64, usize)>,
    ok_count: usize,
    room: usize,
    chosen: &mut Vec<usize>,
) {
    let by_score = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if ok_count <= SMALL_GROUP {
        let mut buf = [(0.0f64, 0usize); SMALL_GROUP];
        for (slot, item) in buf.iter_mut().zip(scores) {
            *slot = item;
        }
        let scored = &mut buf[..ok_count];
        scored.sort_unstable_by(by_score);
        chosen.extend(scored.iter().take(room).map(|&(_, i)| i));
    } else {
        let mut scored: Vec<(f64, usize)> = scores.collect();
        scored.sort_unstable_by(by_score);
        chosen.extend(scored.iter().take(room).map(|&(_, i)| i));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::LocationSource;

    pub(crate) fn edge(id: &str, region: &str, lat: f64, lon: f64) -> Candidate {
        Candidate {
            id: id.into(),
            region: region.into(),
            lat,
            lon,
            ipv4: vec![],
            ipv6: vec![],
            weight: 1,
            health: Health::Up,
            draining: false,
            overloaded: false,
            disabled: false,
            last_seen_ms: Some(1_000),
        }
    }

    fn client(lat: f64, lon: f64, network: &str) -> ClientLocation {
        ClientLocation {
            lat,
            lon,
            country: None,
            continent: None,
            region: None,
            network: network.parse().unwrap(),
            source: LocationSource::GeoIp,
        }
    }

    fn policy(answers: usize) -> Policy {
        Policy {
            answers,
            all_down: AllDown::Nearest,
            backups: HashMap::new(),
            stale_after_ms: None,
        }
    }

    /// us-east, eu-west, ap-northeast.
    fn fleet() -> Vec<Candidate> {
        vec![
            edge("use1", "us-east", 39.0, -77.5),
            edge("euw1", "eu-west", 53.3, -6.3),
            edge("apne1", "ap-northeast", 35.7, 139.7),
        ]
    }

    #[test]
    fn distances() {
        assert!(distance_km(0.0, 0.0, 0.0, 0.0).abs() < 1e-9);
        // London – New York ≈ 5570 km
        let d = distance_km(51.5074, -0.1278, 40.7128, -74.0060);
        assert!((d - 5570.0).abs() < 15.0, "{d}");
        // antipodes ≈ half the circumference
        let d = distance_km(0.0, 0.0, 0.0, 180.0);
        assert!((d - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
        // across the date line
        let d = distance_km(0.0, 179.5, 0.0, -179.5);
        assert!((d - 111.2).abs() < 0.5, "{d}");
        assert!(
            (distance_km(10.0, 20.0, -30.0, 40.0) - distance_km(-30.0, 40.0, 10.0, 20.0)).abs()
                < 1e-9
        );
    }

    #[test]
    fn nearest_wins() {
        let edges = fleet();
        let d = choose(
            &client(48.9, 2.4, "192.0.2.0/24"),
            &edges,
            2_000,
            &policy(1),
        );
        assert_eq!(d.chosen, vec![1]);
        assert_eq!(d.rule, Rule::Nearest);
        assert!(d.client_dependent);
        assert_eq!(
            d.ranked.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![1, 0, 2]
        );
        let d = choose(
            &client(35.0, 135.0, "192.0.2.0/24"),
            &edges,
            2_000,
            &policy(2),
        );
        assert_eq!(d.chosen, vec![2, 1]);
    }

    #[test]
    fn exclusions_in_precedence_order() {
        let mut p = policy(1);
        p.stale_after_ms = Some(5_000);
        let mut e = edge("a", "r", 0.0, 0.0);
        assert_eq!(exclusion(&e, 2_000, &p), None);
        assert_eq!(exclusion(&e, 6_001, &p), Some(Exclusion::Stale));
        e.health = Health::Unknown;
        assert_eq!(
            exclusion(&e, 60_000, &p),
            None,
            "unknown is never stale or down"
        );
        e.overloaded = true;
        assert_eq!(exclusion(&e, 0, &p), Some(Exclusion::Overloaded));
        e.draining = true;
        assert_eq!(exclusion(&e, 0, &p), Some(Exclusion::Draining));
        e.health = Health::Down;
        assert_eq!(exclusion(&e, 0, &p), Some(Exclusion::Down));
        e.disabled = true;
        assert_eq!(exclusion(&e, 0, &p), Some(Exclusion::Disabled));
    }

    #[test]
    fn spills_past_unusable_edges() {
        let mut edges = fleet();
        edges[1].overloaded = true;
        let d = choose(
            &client(48.9, 2.4, "192.0.2.0/24"),
            &edges,
            2_000,
            &policy(1),
        );
        assert_eq!(d.chosen, vec![0]);
        assert_eq!(d.rule, Rule::Nearest);
        let euw = d.ranked.iter().find(|r| r.index == 1).unwrap();
        assert_eq!(euw.excluded, Some(Exclusion::Overloaded));
    }

    #[test]
    fn ordered_backups_before_distance() {
        let mut edges = fleet();
        edges[1].health = Health::Down;
        let mut p = policy(1);
        p.backups.insert(
            "eu-west".into(),
            vec!["ap-northeast".into(), "us-east".into()],
        );
        let d = choose(&client(48.9, 2.4, "192.0.2.0/24"), &edges, 2_000, &p);
        assert_eq!(d.chosen, vec![2]);
        assert_eq!(d.rule, Rule::Backup);
        assert_eq!(
            d.ranked.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![1, 2, 0]
        );
        // first backup down too → next backup
        edges[2].draining = true;
        let d = choose(&client(48.9, 2.4, "192.0.2.0/24"), &edges, 2_000, &p);
        assert_eq!(d.chosen, vec![0]);
        assert_eq!(d.rule, Rule::Backup);
        // home healthy → backups ignored
        let d = choose(&client(48.9, 2.4, "192.0.2.0/24"), &fleet(), 2_000, &p);
        assert_eq!((d.chosen.clone(), d.rule), (vec![1], Rule::Nearest));
    }

    #[test]
    fn client_region_is_home() {
        let mut edges = fleet();
        edges[0].health = Health::Down;
        let mut p = policy(1);
        p.backups
            .insert("us-east".into(), vec!["ap-northeast".into()]);
        // Coordinates in Europe, but the network map put the client in us-east.
        let mut c = client(48.9, 2.4, "10.0.0.0/8");
        c.region = Some("us-east".into());
        c.source = LocationSource::NetworkMap;
        let d = choose(&c, &edges, 2_000, &p);
        assert_eq!((d.chosen.clone(), d.rule), (vec![2], Rule::Backup));
    }

    #[test]
    fn all_down_policies() {
        let mut edges = fleet();
        for e in &mut edges {
            e.health = Health::Down;
        }
        let c = client(48.9, 2.4, "192.0.2.0/24");
        let d = choose(&c, &edges, 2_000, &policy(1));
        assert_eq!(
            (d.chosen.clone(), d.rule, d.client_dependent),
            (vec![1], Rule::AllDownNearest, true)
        );
        let mut p = policy(1);
        p.all_down = AllDown::None;
        let d = choose(&c, &edges, 2_000, &p);
        assert_eq!(
            (d.chosen.clone(), d.rule, d.client_dependent),
            (vec![], Rule::AllDownNone, false)
        );
        assert_eq!(d.ranked.len(), 3);
        for e in &mut edges {
            e.disabled = true;
        }
        let d = choose(&c, &edges, 2_000, &policy(1));
        assert_eq!((d.chosen.clone(), d.rule), (vec![], Rule::NoCandidates));
        let d = choose(&c, &[], 2_000, &policy(1));
        assert_eq!(
            (d.chosen.len(), d.ranked.len(), d.rule, d.client_dependent),
            (0, 0, Rule::NoCandidates, false)
        );
    }

    #[test]
    fn client_independent_when_everything_fits() {
        let edges = fleet();
        let c = client(48.9, 2.4, "192.0.2.0/24");
        assert!(!choose(&c, &edges[..1], 0, &policy(1)).client_dependent);
        assert!(!choose(&c, &edges, 0, &policy(3)).client_dependent);
        assert!(choose(&c, &edges, 0, &policy(2)).client_dependent);
        let mut two_down = edges.clone();
        two_down[0].health = Health::Down;
        two_down[2].draining = true;
        assert!(!choose(&c, &two_down, 0, &policy(1)).client_dependent);
    }

    #[test]
    fn weighted_spread_is_deterministic_and_proportional() {
        let mut edges = vec![
            edge("a", "eu", 50.0, 8.0),
            edge("b", "eu", 50.0, 8.0),
            edge("c", "eu", 50.0, 8.0),
            edge("far", "us", 39.0, -77.5),
        ];
        edges[2].weight = 2;
        let p = policy(1);
        let mut counts = [0usize; 4];
        for i in 0..4000u32 {
            let net = format!("{}.{}.{}.0/24", 10 + (i >> 16), (i >> 8) & 255, i & 255);
            let c = client(48.0, 2.0, &net);
            let d = choose(&c, &edges, 0, &p);
            assert_eq!(
                d.chosen,
                choose(&c, &edges, 0, &p).chosen,
                "same network, same edge"
            );
            assert!(d.client_dependent);
            counts[d.chosen[0]] += 1;
        }
        assert_eq!(counts[3], 0);
        // expected 1000 / 1000 / 2000
        assert!((850..1150).contains(&counts[0]), "{counts:?}");
        assert!((850..1150).contains(&counts[1]), "{counts:?}");
        assert!((1800..2200).contains(&counts[2]), "{counts:?}");

        // Consistency: removing `a` moves only a's clients.
        let without_a: Vec<Candidate> = edges[1..].to_vec();
        for i in 0..500u32 {
            let c = client(48.0, 2.0, &format!("10.0.{}.0/24", i & 255));
            let before = edges[choose(&c, &edges, 0, &p).chosen[0]].id.clone();
            let after = without_a[choose(&c, &without_a, 0, &p).chosen[0]]
                .id
                .clone();
            if before != "a" {
                assert_eq!(before, after);
            }
        }
    }

    /// The spread is a fixed function of (network, edge ids, weights): pinned so that a change
    /// to the hashing, which would move every client, is a deliberate one.
    #[test]
    fn spread_is_pinned() {
        let mut edges = vec![
            edge("a", "eu", 50.0, 8.0),
            edge("b", "eu", 50.0, 8.0),
            edge("c", "eu", 50.0, 8.0),
        ];
        edges[2].weight = 2;
        let got: String = (0..12)
            .map(|i| {
                let c = client(48.0, 2.0, &format!("10.0.{i}.0/24"));
                edges[choose(&c, &edges, 0, &policy(1)).chosen[0]]
                    .id
                    .clone()
            })
            .collect();
        assert_eq!(got, PINNED_SPREAD);
    }

    const PINNED_SPREAD: &str = "accccbacbbcc";

    #[test]
    fn whole_tie_group_then_next() {
        let edges = vec![
            edge("a", "eu", 50.0, 8.0),
            edge("b", "eu", 50.0, 8.0),
            edge("far", "us", 39.0, -77.5),
        ];
        let d = choose(&client(48.0, 2.0, "192.0.2.0/24"), &edges, 0, &policy(3));
        assert_eq!(d.chosen.len(), 3);
        assert_eq!(d.chosen[2], 2);
        assert!(!d.client_dependent);
    }
}
