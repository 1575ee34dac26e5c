//! The static half of a selection, computed once per place: a [`Ranking`] is the ordered edge
//! list of one pool for clients at one spot, exactly as [`crate::select::choose`] ranks it
//! (distance, ordered backups, tie groups), without anything that changes at run time; and
//! [`Ranking::decide`] applies the live exclusions (health, drain, load, manual) to it and picks
//! the answer.
//!
//! For the same client, candidates, time and policy, [`Ranking::decide`] gives exactly what
//! `choose` gives: the same chosen edges in the same order, the same rule and the same client
//! dependence (`tests/ranking.rs` checks it as a property, and `tests/real_db.rs` over the real
//! database through [`crate::table`]).
//!
//! What a ranking depends on: the client's coordinates and region (which decide the home
//! region), the static fields of the candidates (id, region, coordinates, weight, `disabled`)
//! and the policy's backups. Not on the client's network: the weighted spread among equally
//! ranked edges is seeded with the network at decision time ([`crate::select::spread_seed`]),
//! and only when a tie group has more than one eligible edge. So one ranking serves every
//! network placed at the same spot, and the precompiled map ([`crate::table`]) holds few of them.
//!
//! A ranking keeps up to two orders, because `choose` ranks by one of two keys:
//! * **nearest**: by distance in whole metres, then position in the candidate slice — used when
//!   the home region has an eligible edge, when no backups are configured for it, and when no
//!   edge at all is eligible (all-down);
//! * **backup** (only when the policy lists backups for the home region): the home region's
//!   edges, then each backup region's in the configured order, then the rest by distance —
//!   used when the home region has no eligible edge.
//!
//! Edges of equal rank (same tier and same metre: in practice, one region) form a tie group;
//! the decision orders a group's eligible edges by weighted rendezvous score.

use crate::model::{AllDown, Candidate, Decision, Exclusion, Policy, Ranked, Rule};
use crate::select::{exclusion, home_region, rendezvous_score, sort_key, DistanceMemo};

/// One candidate's place in an order: its index in the candidate slice and its tie group
/// (groups are numbered in rank order; equal numbers are adjacent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    index: u32,
    group: u32,
}

/// The order used when the home region has no eligible edge and backups are configured for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Backup {
    /// Every candidate: home region first, then the backups in order, then by distance.
    order: Vec<Slot>,
    /// Tier of each candidate, by candidate index (0 home, 1..=`listed` the backups in order,
    /// `listed + 1` the rest).
    tiers: Vec<u32>,
    /// Candidates of the home region (by index).
    home: Vec<u32>,
    /// Length of the configured backup list.
    listed: u32,
}

/// The ordered edge list of one pool for clients at one spot (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ranking {
    nearest: Vec<Slot>,
    backup: Option<Backup>,
    ties: bool,
}

/// The live state of a pool's candidates, the same for every client: why each one is excluded
/// (if it is), how many are eligible, how many are usable under all-down `nearest` (not
/// disabled). Compute it once per health view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    /// [`crate::select::exclusion`] of each candidate, by index.
    pub excluded: Vec<Option<Exclusion>>,
    /// Candidates with no exclusion.
    pub eligible: usize,
    /// Candidates not disabled.
    pub usable: usize,
}

impl Eligibility {
    /// The exclusions of `edges` at `now_ms` under `policy`.
    pub fn new(edges: &[Candidate], now_ms: u64, policy: &Policy) -> Eligibility {
        let excluded: Vec<Option<Exclusion>> =
            edges.iter().map(|e| exclusion(e, now_ms, policy)).collect();
        let eligible = excluded.iter().filter(|x| x.is_none()).count();
        let usable = excluded
            .iter()
            .filter(|x| **x != Some(Exclusion::Disabled))
            .count();
        Eligibility {
            excluded,
            eligible,
            usable,
        }
    }
}

/// What [`Ranking::decide`] found, besides the chosen edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked {
    /// The rule that fired.
    pub rule: Rule,
    /// Whether the answer depends on where the client is (as `Decision::client_dependent`).
    pub client_dependent: bool,
    /// Whether the backup order was used (for showing the ranking).
    pub backup_order: bool,
}

impl Ranking {
    /// Rank `edges` for a client at (`lat`, `lon`), placed in `region` by the network map or
    /// the default (`None` when the database placed it), under `policy`'s backups. Only the
    /// static fields of the candidates are read.
    pub fn build(
        lat: f64,
        lon: f64,
        region: Option<&str>,
        edges: &[Candidate],
        policy: &Policy,
    ) -> Ranking {
        let mut distances = DistanceMemo::new(lat, lon);
        let ranked: Vec<Ranked> = edges
            .iter()
            .enumerate()
            .map(|(index, e)| Ranked {
                index,
                distance_km: distances.get(e.lat, e.lon),
                excluded: e.disabled.then_some(Exclusion::Disabled),
            })
            .collect();
        let nearest = order(&ranked, None);
        let home = if policy.backups.is_empty() {
            ""
        } else {
            home_region(region, edges, &ranked)
        };
        let backup = policy
            .backups
            .get(home)
            .filter(|list| !list.is_empty())
            .map(|list| {
                let tiers: Vec<u32> = edges
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
                    .collect();
                Backup {
                    order: order(&ranked, Some(&tiers)),
                    home: (0..edges.len() as u32)
                        .filter(|&i| edges[i as usize].region == home)
                        .collect(),
                    tiers,
                    listed: list.len() as u32,
                }
            });
        let ties = has_ties(&nearest) || backup.as_ref().is_some_and(|b| has_ties(&b.order));
        Ranking {
            nearest,
            backup,
            ties,
        }
    }

    /// Whether some tie group holds two or more candidates (then a decision may need the
    /// client's network to spread among them).
    pub fn has_ties(&self) -> bool {
        self.ties
    }

    /// Choose the answer from this ranking: `edges` are the pool's candidates (the same slice,
    /// in the same order, the ranking was built from; their ids and weights seed the spread),
    /// `live` their current exclusions, `seed` gives [`crate::select::spread_seed`] of the
    /// client's network (called only when a tie group has more than one eligible edge). The
    /// chosen candidate indexes are written to `chosen`, in answer order.
    pub fn decide(
        &self,
        edges: &[Candidate],
        live: &Eligibility,
        policy: &Policy,
        seed: impl Fn() -> u64,
        chosen: &mut Vec<usize>,
    ) -> Picked {
        chosen.clear();
        let answers = policy.answers.max(1);
        let seed_of = seed;
        let mut seed_memo = None;
        let mut seed = || *seed_memo.get_or_insert_with(&seed_of);
        let excluded = &live.excluded;
        if live.eligible == 0 {
            let (rule, client_dependent) = if live.usable == 0 {
                (Rule::NoCandidates, false)
            } else {
                match policy.all_down {
                    AllDown::None => (Rule::AllDownNone, false),
                    AllDown::Nearest => {
                        pick(
                            &self.nearest,
                            edges,
                            |i| excluded[i] != Some(Exclusion::Disabled),
                            answers,
                            &mut seed,
                            chosen,
                        );
                        (Rule::AllDownNearest, live.usable > answers)
                    }
                }
            };
            return Picked {
                rule,
                client_dependent,
                backup_order: false,
            };
        }
        let eligible = |i: usize| excluded[i].is_none();
        let backup = self
            .backup
            .as_ref()
            .filter(|b| !b.home.iter().any(|&i| eligible(i as usize)));
        let rule = match backup {
            Some(b) => {
                pick(&b.order, edges, eligible, answers, &mut seed, chosen);
                match chosen.first() {
                    Some(&first) if (1..=b.listed).contains(&b.tiers[first]) => Rule::Backup,
                    _ => Rule::Nearest,
                }
            }
            None => {
                pick(&self.nearest, edges, eligible, answers, &mut seed, chosen);
                Rule::Nearest
            }
        };
        Picked {
            rule,
            client_dependent: live.eligible > answers,
            backup_order: backup.is_some(),
        }
    }

    /// The whole [`Decision`] for what [`Ranking::decide`] `picked` (and left in `chosen`): the
    /// chosen edges, the rule, and the ranked list explain shows.
    pub fn decision(
        &self,
        lat: f64,
        lon: f64,
        edges: &[Candidate],
        live: &Eligibility,
        picked: &Picked,
        chosen: Vec<usize>,
    ) -> Decision {
        Decision {
            ranked: self.ranked(lat, lon, edges, live, picked),
            chosen,
            rule: picked.rule,
            client_dependent: picked.client_dependent,
        }
    }

    /// The ranking a decision used, as `Decision::ranked` shows it: every candidate in rank
    /// order with its distance from (`lat`, `lon`) (computed here, for display) and its
    /// exclusion.
    pub fn ranked(
        &self,
        lat: f64,
        lon: f64,
        edges: &[Candidate],
        live: &Eligibility,
        picked: &Picked,
    ) -> Vec<Ranked> {
        let order = match (&self.backup, picked.backup_order) {
            (Some(b), true) => &b.order,
            _ => &self.nearest,
        };
        let mut distances = DistanceMemo::new(lat, lon);
        order
            .iter()
            .filter_map(|s| {
                let i = s.index as usize;
                let e = edges.get(i)?;
                Some(Ranked {
                    index: i,
                    distance_km: distances.get(e.lat, e.lon),
                    excluded: live.excluded.get(i).copied().flatten(),
                })
            })
            .collect()
    }

    /// Heap bytes held (for the table's memory figure).
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<Slot>();
        self.nearest.capacity() * slot
            + self.backup.as_ref().map_or(0, |b| {
                b.order.capacity() * slot + (b.tiers.capacity() + b.home.capacity()) * 4
            })
    }
}

/// Candidates sorted by [`sort_key`] (the key `choose` sorts by), with tie groups numbered.
fn order(ranked: &[Ranked], tiers: Option<&[u32]>) -> Vec<Slot> {
    let mut keyed: Vec<(u64, u32)> = ranked
        .iter()
        .map(|r| (sort_key(r, tiers), r.index as u32))
        .collect();
    keyed.sort_unstable();
    let mut group = 0u32;
    let mut prev = None;
    keyed
        .into_iter()
        .map(|(key, index)| {
            if prev.is_some_and(|p| p != key >> 22) {
                group += 1;
            }
            prev = Some(key >> 22);
            Slot { index, group }
        })
        .collect()
}

fn has_ties(order: &[Slot]) -> bool {
    order.windows(2).any(|w| w[0].group == w[1].group)
}

/// Walk `order` in tie groups and take up to `answers` candidates accepted by `ok`, ordering
/// each group by weighted rendezvous score (highest first, then candidate index): the same
/// walk as `select::pick`.
fn pick(
    order: &[Slot],
    edges: &[Candidate],
    ok: impl Fn(usize) -> bool,
    answers: usize,
    seed: &mut impl FnMut() -> u64,
    chosen: &mut Vec<usize>,
) {
    let mut start = 0;
    while start < order.len() && chosen.len() < answers {
        let group = order[start].group;
        let mut end = start + 1;
        while end < order.len() && order[end].group == group {
            end += 1;
        }
        let members = &order[start..end];
        let ok_count = members.iter().filter(|s| ok(s.index as usize)).count();
        if ok_count == 1 {
            if let Some(s) = members.iter().find(|s| ok(s.index as usize)) {
                chosen.push(s.index as usize);
            }
        } else if ok_count > 1 {
            let seed = seed();
            let scores = members
                .iter()
                .map(|s| s.index as usize)
                .filter(|&i| ok(i))
                .map(|i| (rendezvous_score(seed, &edges[i]), i));
            let room = answers - chosen.len();
            crate::select::take_top_scored(scores, ok_count, room, chosen);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::{ClientLocation, Health, LocationSource};
    use crate::select::tests::edge;
    use crate::select::{choose, spread_seed};

    fn client(lat: f64, lon: f64, region: Option<&str>, network: &str) -> ClientLocation {
        ClientLocation {
            lat,
            lon,
            country: None,
            continent: None,
            region: region.map(str::to_owned),
            network: network.parse().unwrap(),
            source: LocationSource::GeoIp,
        }
    }

    /// `decide` on the ranking gives what `choose` gives, ranking included.
    fn same(c: &ClientLocation, edges: &[Candidate], now: u64, policy: &Policy) {
        let want = choose(c, edges, now, policy);
        let ranking = Ranking::build(c.lat, c.lon, c.region.as_deref(), edges, policy);
        let live = Eligibility::new(edges, now, policy);
        let mut chosen = Vec::new();
        let picked = ranking.decide(edges, &live, policy, || spread_seed(c.network), &mut chosen);
        assert_eq!(chosen, want.chosen, "{c:?}");
        assert_eq!(picked.rule, want.rule);
        assert_eq!(picked.client_dependent, want.client_dependent);
        assert_eq!(
            ranking.ranked(c.lat, c.lon, edges, &live, &picked),
            want.ranked
        );
    }

    #[test]
    fn agrees_with_choose_on_spread_backups_and_all_down() {
        let mut edges = vec![
            edge("a", "eu", 50.0, 8.0),
            edge("b", "eu", 50.0, 8.0),
            edge("c", "eu", 50.0, 8.0),
            edge("use1", "us-east", 39.0, -77.5),
            edge("apne1", "ap", 35.7, 139.7),
        ];
        edges[2].weight = 3;
        let mut policy = Policy {
            answers: 2,
            all_down: AllDown::Nearest,
            backups: HashMap::new(),
            stale_after_ms: Some(5_000),
        };
        for i in 0..64u32 {
            let net = format!("10.{}.{}.0/24", i / 8, i % 8);
            same(&client(48.0, 2.0, None, &net), &edges, 2_000, &policy);
        }
        policy
            .backups
            .insert("eu".into(), vec!["ap".into(), "us-east".into()]);
        for e in &mut edges[..3] {
            e.health = Health::Down;
        }
        for n in ["10.0.0.0/24", "2001:db8::/48"] {
            same(&client(48.0, 2.0, None, n), &edges, 2_000, &policy);
            same(
                &client(48.0, 2.0, Some("us-east"), n),
                &edges,
                2_000,
                &policy,
            );
        }
        edges[4].draining = true;
        edges[3].last_seen_ms = Some(0);
        same(
            &client(48.0, 2.0, None, "10.0.0.0/24"),
            &edges,
            9_000,
            &policy,
        );
        policy.all_down = AllDown::None;
        same(
            &client(48.0, 2.0, None, "10.0.0.0/24"),
            &edges,
            9_000,
            &policy,
        );
        for e in &mut edges {
            e.disabled = true;
        }
        same(
            &client(48.0, 2.0, None, "10.0.0.0/24"),
            &edges,
            9_000,
            &policy,
        );
        same(&client(48.0, 2.0, None, "10.0.0.0/24"), &[], 9_000, &policy);
    }

    #[test]
    fn ties_need_the_network_only_inside_groups() {
        let edges = vec![
            edge("a", "eu", 50.0, 8.0),
            edge("b", "eu", 50.0, 8.0),
            edge("far", "us", 39.0, -77.5),
        ];
        let policy = Policy {
            answers: 1,
            all_down: AllDown::Nearest,
            backups: HashMap::new(),
            stale_after_ms: None,
        };
        let r = Ranking::build(48.0, 2.0, None, &edges, &policy);
        assert!(r.has_ties());
        let mut live = Eligibility::new(&edges, 0, &policy);
        let mut chosen = Vec::new();
        // Only `a` eligible in the group: no seed needed.
        live.excluded[1] = Some(Exclusion::Down);
        live.eligible = 2;
        r.decide(&edges, &live, &policy, || panic!("seed asked"), &mut chosen);
        assert_eq!(chosen, [0]);
        let single = Ranking::build(48.0, 2.0, None, &edges[1..], &policy);
        assert!(!single.has_ties());
    }
}
