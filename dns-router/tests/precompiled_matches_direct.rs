//! The DNS path answers from the precompiled geo map exactly what locating and ranking per
//! query gives: for many client prefixes (every kind of boundary of the map, random ones, IPv6,
//! IPv4-mapped, the IPv6 aliases of IPv4 the map leaves to per-query decisions, no ECS), every
//! service (one answer, two answers with all-down `none`, ECS ignored, ECS capped at /20) and
//! record type, and several health states (all up; a region down so ordered backups apply;
//! drained and overloaded edges; everything down), the service answer `handler::respond` uses
//! (addresses in order, edges, rule, region, TTL) equals the one built from `Locator::locate` +
//! `select::choose` (`route::decide_located`). Its ECS scope is the per-query one, or shorter
//! where the map merged neighbouring networks that rank alike: then the whole scope block is
//! routed as one (its first and last addresses decided per query give the same answer).
//!
//! Run twice: with several edges per region (tie groups: the spread by network keeps every
//! network exact) and with one edge per region (networks merge).
//!
//! Edges: several per region with different weights (tie groups, so the weighted spread by
//! network matters), a disabled one, some without IPv6. Geo data: the demo network map, and the
//! GeoLite2 City database when present (`scripts/fetch-geolite2.sh`).

mod dns_support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::RecordType;
use ipnet::IpNet;

use cdn_dns_router::handler::{respond, Context, ThreadCache, Transport};
use cdn_dns_router::health::{EdgeHealth, HealthView};
use cdn_dns_router::route::{
    self, answer_of, candidates, client_key, decide_located, ServiceAnswer,
};
use cdn_dns_router::snapshot::{build_snapshot, Snapshot};
use cdn_dns_router::wire::{rtype, Ecs};
use cdn_geo::model::Health;

use dns_support::{query, with_edns};

const NOW: u64 = 1_000_000;

fn config(db: Option<&Path>, tied: bool) -> String {
    let map = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/network-map.txt");
    let mut geo = format!(
        "default_region = \"sa-east\"\nnetwork_map = {:?}\n",
        map.display().to_string()
    );
    if let Some(db) = db {
        geo.push_str(&format!("database = {:?}\n", db.display().to_string()));
    }
    let mut edges = String::new();
    for (i, (region, count)) in [
        ("us-east", 3),
        ("eu-west", 2),
        ("ap-northeast", 2),
        ("sa-east", 1),
        ("eu-central", 1),
    ]
    .into_iter()
    .enumerate()
    {
        let count = if tied { count } else { 1 };
        for k in 0..count {
            let n = i * 10 + k + 1;
            let v6 = if k == 1 {
                String::new()
            } else {
                format!("ipv6 = [\"2001:db8::{n}\"]\n")
            };
            let disabled = if region == "eu-central" {
                "disabled = true\n"
            } else {
                ""
            };
            edges.push_str(&format!(
                "[[edges]]\nid = \"{region}-{k}\"\nregion = \"{region}\"\nipv4 = [\"192.0.2.{n}\"]\n{v6}\
                 weight = {}\nprobe_url = \"http://127.0.0.1:9/healthz\"\n{disabled}",
                1 + k * 2
            ));
        }
    }
    let cap_edges = if tied {
        r#"edges = ["us-east-0", "us-east-1", "eu-west-0", "ap-northeast-0", "ap-northeast-1"]"#
    } else {
        r#"edges = ["us-east-0", "eu-west-0", "ap-northeast-0"]"#
    };
    format!(
        r#"
[geo]
{geo}
[[regions]]
name = "us-east"
lat = 39.0
lon = -77.5
backups = ["sa-east"]
[[regions]]
name = "eu-west"
lat = 53.3
lon = -6.3
backups = ["eu-central", "us-east"]
[[regions]]
name = "ap-northeast"
lat = 35.7
lon = 139.7
[[regions]]
name = "sa-east"
lat = -23.5
lon = -46.6
[[regions]]
name = "eu-central"
lat = 50.1
lon = 8.7
{edges}
[[zones]]
name = "cdn.example.test"
ns = ["ns1.cdn.example.test"]
[[zones.records]]
name = "ns1"
type = "A"
data = ["192.0.2.53"]
[[services]]
name = "www.cdn.example.test"
ttl = 30
[[services]]
name = "two.cdn.example.test"
answers = 2
all_down = "none"
backups = {{ "ap-northeast" = ["us-east"] }}
[[services]]
name = "noecs.cdn.example.test"
ecs = "ignore"
[[services]]
name = "cap.cdn.example.test"
ecs_max_prefix_v4 = 20
ecs_max_prefix_v6 = 40
{cap_edges}
"#
    )
}

/// Health views: all up; one region down in turn; some drained or overloaded; all down.
fn views(snap: &Snapshot) -> Vec<HealthView> {
    let ids: Vec<(String, String)> = snap
        .edges
        .iter()
        .map(|e| (e.id.clone(), e.region.clone()))
        .collect();
    let view = |f: &dyn Fn(usize, &str, &mut EdgeHealth), generation: u64| HealthView {
        generation,
        edges: ids
            .iter()
            .enumerate()
            .map(|(i, (id, region))| {
                let mut h = EdgeHealth::unknown(0);
                h.health = Health::Up;
                h.last_seen_ms = Some(NOW);
                f(i, region, &mut h);
                (id.clone(), h)
            })
            .collect::<HashMap<_, _>>(),
    };
    let mut out = vec![view(&|_, _, _| {}, 1)];
    for (g, down) in ["us-east", "eu-west", "ap-northeast"]
        .into_iter()
        .enumerate()
    {
        out.push(view(
            &|_, region, h| {
                if region == down {
                    h.health = Health::Down;
                }
            },
            2 + g as u64,
        ));
    }
    out.push(view(
        &|i, _, h| {
            h.draining = i % 3 == 0;
            h.overloaded = i % 3 == 1;
        },
        10,
    ));
    out.push(view(&|_, _, h| h.health = Health::Down, 11));
    out
}

/// ECS prefixes to ask with: around the map's range boundaries (sampled), random, and special.
fn prefixes(snap: &Snapshot) -> Vec<Option<(IpAddr, u8)>> {
    let mut out: Vec<Option<(IpAddr, u8)>> = vec![None];
    let table = snap.table.get().expect("precompiled");
    let starts: Vec<IpAddr> = table.range_starts().collect();
    let step = (starts.len() / 3_000).max(1);
    for (i, a) in starts.iter().step_by(step).enumerate() {
        let lens: &[u8] = match a {
            IpAddr::V4(_) => &[24, 20, 32, 16],
            IpAddr::V6(_) => &[48, 56, 32, 64],
        };
        let len = lens[i % lens.len()];
        out.push(Some((route::truncate(*a, len), len)));
    }
    let mut s = 99u64;
    for _ in 0..2_000 {
        let x = next(&mut s);
        out.push(Some((IpAddr::V4(Ipv4Addr::from(x as u32)), 24)));
        let v6 = (u128::from(x) << 64 | u128::from(next(&mut s))) >> 3 | 1 << 125;
        out.push(Some((IpAddr::V6(Ipv6Addr::from(v6)), 48)));
    }
    for (a, len) in [
        ("8.8.8.0", 24),
        ("81.2.69.0", 24),
        ("1.0.16.0", 24),
        ("10.1.2.0", 24),
        ("2001:db8:e00::", 56),
        ("::ffff:81.2.69.0", 120),
        ("2002:808:808::", 48),
        ("2001:0:808:808::", 64),
        ("::8.8.8.0", 120),
        ("0.0.0.0", 0),
    ] {
        out.push(Some((a.parse().unwrap(), len)));
    }
    out
}

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn the_dns_path_answers_what_locating_per_query_answers_with_tie_groups() {
    compare(true);
}

#[test]
fn the_dns_path_answers_what_locating_per_query_answers_one_edge_per_region() {
    compare(false);
}

/// The per-query answer for the client `key` (its address moved to `addr`).
fn direct(
    snap: &Snapshot,
    view: &HealthView,
    svc: usize,
    t: u16,
    key: route::ClientKey,
) -> cdn_dns_router::route::ServiceAnswer {
    let location = Arc::new(snap.locator.locate(key.addr));
    let cands = Arc::new(candidates(snap, &snap.services[svc], t, view));
    let d = decide_located(snap, svc, key, location, cands, NOW);
    answer_of(snap, svc, t, &d)
}

fn compare(tied: bool) {
    let db = cdn_geo::testdata::geolite2_city();
    let config = cdn_shared::config::load_str(&config(db.as_deref(), tied)).unwrap();
    let snap = build_snapshot(&config, Path::new("."), 1).unwrap();
    assert!(snap.precompile(), "the map builds");
    let resolver: IpAddr = "192.0.2.250".parse().unwrap();
    let names = [
        "www.cdn.example.test",
        "two.cdn.example.test",
        "noecs.cdn.example.test",
        "cap.cdn.example.test",
    ];
    let mut compared = 0usize;
    let mut precompiled = 0usize;
    let mut differ = Vec::new();
    let mut edges_seen = std::collections::BTreeSet::new();
    let mut merged = 0usize;
    let prefixes = prefixes(&snap);
    for view in views(&snap) {
        let mut cache = ThreadCache::new();
        let ctx = Context {
            snap: &snap,
            view: &view,
            now_ms: NOW,
        };
        for ecs in &prefixes {
            let ecs_text = ecs.map(|(a, len)| format!("{a}/{len}"));
            let wire_ecs = ecs.map(|(addr, source_prefix)| Ecs {
                family: if addr.is_ipv4() { 1 } else { 2 },
                source_prefix,
                addr,
            });
            for (svc, name) in names.iter().enumerate() {
                for (rt, t) in [(RecordType::A, rtype::A), (RecordType::AAAA, rtype::AAAA)] {
                    let packet = with_edns(query(name, rt), ecs_text.as_deref())
                        .to_vec()
                        .unwrap();
                    let mut out = Vec::new();
                    let outcome =
                        respond(ctx, &mut cache, &packet, resolver, Transport::Tcp, &mut out)
                            .expect("answered");
                    let got = outcome.answer.clone().unwrap_or_else(|| {
                        panic!("{name} {rt} ecs={ecs_text:?}: no service answer: {outcome:?}")
                    });

                    let key = client_key(&snap.services[svc], resolver, wire_ecs.as_ref());
                    let want = direct(&snap, &view, svc, t, key);

                    compared += 1;
                    if snap.table.get().and_then(|m| m.lookup(key.addr)).is_some() {
                        precompiled += 1;
                    }
                    edges_seen.extend(got.edges.iter().cloned());
                    let same_but_scope = ServiceAnswer {
                        scope: want.scope,
                        ..(*got).clone()
                    } == want;
                    let mut wrong = !same_but_scope || got.scope > want.scope;
                    if !wrong && got.scope < want.scope {
                        // Merged: the whole scope block answers alike.
                        merged += 1;
                        // In the family of `key.addr` (an IPv4-mapped ECS scope is 96 longer).
                        let block =
                            IpNet::new(key.addr, got.scope.saturating_sub(key.scope_offset))
                                .unwrap()
                                .trunc();
                        for addr in [block.network(), block.broadcast()] {
                            let there =
                                direct(&snap, &view, svc, t, route::ClientKey { addr, ..key });
                            wrong |= there.edges != want.edges || there.rule != want.rule;
                        }
                    }
                    if wrong {
                        differ.push(format!(
                            "{name} {rt} ecs={ecs_text:?} generation {}:\n  dns    {got:?}\n  direct {want:?}",
                            view.generation
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "{compared} answers compared ({precompiled} from the precompiled map, {merged} with a merged scope; GeoLite2 {}), {} differ; edges answered: {edges_seen:?}",
        if db.is_some() { "loaded" } else { "absent" },
        differ.len()
    );
    if tied {
        assert_eq!(merged, 0, "tie groups keep every network exact");
    } else {
        assert!(merged > 0, "one edge per region: networks merge");
    }
    assert!(
        differ.is_empty(),
        "{} differ, first ones:\n{}",
        differ.len(),
        differ[..differ.len().min(10)].join("\n")
    );
    assert!(
        precompiled * 10 > compared * 9,
        "{precompiled} of {compared}"
    );
    assert!(
        edges_seen.len() >= if tied { 6 } else { 3 },
        "{edges_seen:?}"
    );
}
