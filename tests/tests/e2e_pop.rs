//! Issue 16, points of presence and tiered caching on real `edge` processes: a PoP fetches
//! each object from the origin once (peer fills, `Cache-Status: fwd=peer`) and copies it to a
//! member once it is popular there; the owner killed mid-stream, the owner stopped with
//! SIGSTOP, a member joining, a shield region (and the shield down); a purge through the
//! router reaches the copies on every member.
//!
//! Bounded load is kept out of the way (`load_floor = 1e9`): these tests read owners, and the
//! bursts they send would otherwise move keys (bounded load is measured in docs/bench/pop.md).
//!
//! The owner of a key is read from the answer of a member that does not own it: its
//! `Cache-Status` says `fwd=peer` and its `Via` starts with the owner (`1.1 <owner>, 1.1
//! <member>`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use cdn_tests::harness::{binary, eventually, http, Process, Signal};
use cdn_tests::origin::OriginHandle;
use serde_json::json;

const WWW: &str = "www.example.test";
const TOKEN: &str = cdn_tests::fleet::spec::DEMO_TOKEN;
const READY: Duration = Duration::from_secs(30);

/// One edge of the test: where it is and its process (when running).
struct Member {
    id: String,
    region: String,
    http: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    proc: Option<Process>,
    /// The listeners that hold `http` and `admin` until the edge is first started (so no
    /// other test's listener takes them meanwhile).
    held: Vec<TcpListener>,
}

/// Edges in regions, with one demo origin.
struct Pop {
    _dir: tempfile::TempDir,
    origin: OriginHandle,
    members: Vec<Member>,
}

/// A free loopback port (held until the edge binds it: a race only with other tests).
fn free() -> SocketAddr {
    hold().0
}

/// A free loopback port and the listener that holds it: drop it just before the process that
/// is to bind the port starts.
fn hold() -> (SocketAddr, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    (l.local_addr().unwrap(), l)
}

fn members_toml(ms: &[&Member]) -> String {
    let v: Vec<String> = ms
        .iter()
        .map(|m| format!("{{ id = \"{}\", address = \"{}\" }}", m.id, m.http))
        .collect();
    format!("[{}]", v.join(", "))
}

impl Pop {
    /// `regions`: (name, edges); `shield`: the `www` host's shield region; `cluster_extra`
    /// more `[cluster]` keys. Nothing is started.
    fn plan(regions: &[(&str, usize)], shield: Option<&str>, cluster_extra: &str) -> Pop {
        let dir = tempfile::tempdir().unwrap();
        let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut members = Vec::new();
        for (r, n) in regions {
            for i in 1..=*n {
                let id = format!("{r}{i}");
                let ((http, h), (admin, a)) = (hold(), hold());
                members.push(Member {
                    config: dir.path().join(format!("{id}.toml")),
                    id,
                    region: r.to_string(),
                    http,
                    admin,
                    proc: None,
                    held: vec![h, a],
                });
            }
        }
        for m in &members {
            let own: Vec<&Member> = members.iter().filter(|x| x.region == m.region).collect();
            let mut t = format!(
                "[edge]\nid = \"{}\"\nregion = \"{}\"\n\n[http]\nlisten = [\"{}\"]\nworkers = 2\n\n\
                 [admin]\nlisten = \"{}\"\ntoken = \"{TOKEN}\"\n\n[cache]\nmemory = \"32MiB\"\n\n\
                 [[hosts]]\nname = \"{WWW}\"\norigin = \"{}\"\n\n\
                 [cluster]\nsecret = \"pop-test-secret-0123456789\"\nprobe_interval = \"200ms\"\n\
                 probe_timeout = \"1s\"\nfall = 3\nrise = 2\nconnect_timeout = \"300ms\"\n\
                 first_byte_timeout = \"1s\"\nmembers = {}\n{cluster_extra}\n",
                m.id,
                m.region,
                m.http,
                m.admin,
                origin.url(),
                members_toml(&own),
            );
            for (r, _) in regions.iter().filter(|(r, _)| *r != m.region) {
                let theirs: Vec<&Member> = members.iter().filter(|x| x.region == *r).collect();
                t.push_str(&format!(
                    "\n[[cluster.regions]]\nname = \"{r}\"\nmembers = {}\n",
                    members_toml(&theirs)
                ));
            }
            if let Some(s) = shield {
                t.push_str(&format!(
                    "\n[[cluster.shields]]\nhost = \"{WWW}\"\nregions = [\"{s}\"]\n"
                ));
            }
            std::fs::write(&m.config, t).unwrap();
        }
        Pop {
            _dir: dir,
            origin,
            members,
        }
    }

    fn start(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.held.clear();
        let mut p = Process::spawn(
            &m.id,
            &binary("edge").unwrap(),
            &["--config".into(), m.config.display().to_string()],
            &[],
        )
        .unwrap();
        p.wait_ready(READY).unwrap();
        m.proc = Some(p);
    }

    fn start_all(mut self) -> Pop {
        for i in 0..self.members.len() {
            self.start(i);
        }
        self
    }

    fn index(&self, id: &str) -> usize {
        self.members.iter().position(|m| m.id == id).unwrap()
    }

    fn get(&self, i: usize, path: &str) -> http::Reply {
        http::get(self.members[i].http, path)
            .host(WWW)
            .timeout(Duration::from_secs(20))
            .send()
            .unwrap()
    }

    fn origin_count(&self, path: &str) -> u64 {
        self.origin.stats().path(path.split('?').next().unwrap())
    }

    fn signal(&self, i: usize, sig: Signal) {
        self.members[i].proc.as_ref().unwrap().signal(sig).unwrap();
    }
}

fn cs(r: &http::Reply) -> String {
    r.cache_status().unwrap_or_default().to_string()
}

/// Who answered for `asked` (the owner named in `Via` on a peer fill, else `asked` itself).
fn owner(r: &http::Reply, asked: &str) -> String {
    if cs(r).contains("fwd=peer") {
        let via = r.header("via").unwrap_or_default();
        let first = via.split(',').next().unwrap_or_default().trim();
        first.trim_start_matches("1.1 ").to_string()
    } else {
        asked.to_string()
    }
}

#[test]
fn a_pop_fetches_each_object_once_and_copies_it_where_it_is_popular() {
    let pop = Pop::plan(&[("eu", 3)], None, "replicate_after = 2\nload_floor = 1e9").start_all();
    let mut spread = std::collections::BTreeSet::new();
    for k in 0..12 {
        let path = format!("/obj/2k/once-{k}");
        let mut peer_fills = 0;
        let mut owners = Vec::new();
        let mut seen = Vec::new();
        for i in 0..3 {
            let r = pop.get(i, &path);
            assert_eq!(r.status, 200, "{}", cs(&r));
            assert_eq!(r.body.len(), 2048);
            if cs(&r).contains("fwd=peer") {
                peer_fills += 1;
                // The first miss of a key it does not own: served, not kept.
                assert!(cs(&r).contains("detail=not-popular"), "{}", cs(&r));
            }
            owners.push(owner(&r, &pop.members[i].id));
            seen.push(format!("{} via {:?}", cs(&r), r.header("via")));
        }
        assert_eq!(
            pop.origin_count(&path),
            1,
            "one origin fetch for the PoP: {seen:?}"
        );
        assert_eq!(peer_fills, 2, "two members do not own {path}: {owners:?}");
        owners.dedup();
        assert_eq!(owners.len(), 1, "one owner: {owners:?}");
        spread.insert(owners[0].clone());
        // The second miss at a member makes the key popular there: it keeps a copy…
        let non_owner = (0..3).find(|&i| pop.members[i].id != owners[0]).unwrap();
        let r = pop.get(non_owner, &path);
        assert!(
            cs(&r).contains("fwd=peer") && cs(&r).contains("stored"),
            "{}",
            cs(&r)
        );
        // …and serves it itself from then on.
        let r = pop.get(non_owner, &path);
        assert!(r.is_hit(), "{}", cs(&r));
        assert_eq!(pop.origin_count(&path), 1);
    }
    // Keys spread over the members.
    assert!(spread.len() >= 2, "{spread:?}");
}

/// Find a path (from `stem`) that member 0 does not own, by asking member 0 for small
/// objects; returns (path, owner index). The object is then cached at its owner.
fn not_owned_by_first(pop: &Pop, stem: &str) -> (String, usize) {
    for k in 0..64 {
        let path = format!("{stem}-{k}");
        let r = pop.get(0, &path);
        assert_eq!(r.status, 200);
        let o = owner(&r, &pop.members[0].id);
        if o != pop.members[0].id {
            return (path, pop.index(&o));
        }
    }
    panic!("member 0 owns every key");
}

#[test]
fn the_owner_stopped_with_sigstop_costs_a_timeout_not_a_failure() {
    let mut pop = Pop::plan(
        &[("eu", 3)],
        None,
        "replicate_after = 1000\nload_floor = 1e9",
    )
    .start_all();
    let (path, o) = not_owned_by_first(&pop, "/obj/1k/stop");
    pop.signal(o, Signal::STOP);
    // Member 0 asks the stopped owner, waits past first_byte_timeout (1 s) until the probes
    // mark it down, and fills from the next member or the origin: a 200, never an error.
    for k in 0..3 {
        let p = format!("{path}?again={k}");
        let r = pop.get(0, &p);
        assert_eq!(r.status, 200, "{}", cs(&r));
        assert_eq!(r.body.len(), 1024);
    }
    let r = pop.get(0, &path);
    assert_eq!(r.status, 200, "{}", cs(&r));
    assert_ne!(owner(&r, "eu1"), pop.members[o].id, "{}", cs(&r));
    // Back: the probes see it again and it owns its keys again.
    pop.signal(o, Signal::CONT);
    let id = pop.members[o].id.clone();
    eventually("the owner is back", Duration::from_secs(10), || {
        let r = pop.get(0, &path);
        anyhow::ensure!(owner(&r, "eu1") == id, "{}", cs(&r));
        Ok(())
    })
    .unwrap();
    pop.members[o].proc.as_mut().unwrap().kill();
}

/// Read an HTTP/1.1 response head from `s`: (head text, bytes of body read with it).
fn read_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_string();
            return (head, buf[p + 4..].to_vec());
        }
    }
}

#[test]
fn the_owner_killed_mid_stream_the_client_gets_every_byte() {
    let mut pop = Pop::plan(
        &[("eu", 3)],
        None,
        "replicate_after = 1000\nload_floor = 1e9",
    )
    .start_all();
    // 1 MiB in 64 KiB frames, 150 ms apart: 2.4 s of streaming.
    for k in 0..32 {
        let path = format!("/obj/1m/killed-{k}?throttle_ms=150");
        let mut s = TcpStream::connect(pop.members[0].http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {WWW}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (head, mut body) = read_head(&mut s);
        let lower = head.to_ascii_lowercase();
        if !lower.contains("fwd=peer") {
            // Member 0 owns this one: read it out and try another key.
            s.read_to_end(&mut body).unwrap();
            continue;
        }
        let via = lower
            .lines()
            .find_map(|l| l.strip_prefix("via:"))
            .unwrap()
            .trim()
            .to_string();
        let owner_id = via
            .split(',')
            .next()
            .unwrap()
            .trim()
            .trim_start_matches("1.1 ");
        let o = pop.index(owner_id);
        pop.members[o].proc.as_mut().unwrap().kill();
        s.read_to_end(&mut body).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let want = http::get(pop.origin.addr(), &path).send().unwrap().body;
        assert_eq!(body.len(), want.len(), "every byte arrived");
        assert!(body == want, "the same bytes as the origin's");
        let metrics = http::get(pop.members[0].admin, "/metrics")
            .send()
            .unwrap()
            .text();
        assert!(
            metrics.contains("cdn_edge_pop_resumes_total{result=\"ok\"} 1"),
            "the rest came from the origin: {metrics}"
        );
        return;
    }
    panic!("member 0 owned every key");
}

#[test]
fn a_member_joining_takes_only_its_share_of_keys() {
    let mut pop = Pop::plan(
        &[("eu", 3)],
        None,
        "replicate_after = 1000\nload_floor = 1e9",
    );
    // eu3 is in everyone's list but not running: the probes mark it down; nothing fails.
    pop.start(0);
    pop.start(1);
    let keys: Vec<String> = (0..24).map(|k| format!("/obj/1k/join-{k}")).collect();
    let owners = |pop: &Pop| -> Vec<String> {
        keys.iter()
            .map(|p| {
                // Ask both running members: the one that does not own the key names its owner.
                let a = pop.get(0, p);
                let b = pop.get(1, p);
                assert_eq!((a.status, b.status), (200, 200));
                let (oa, ob) = (owner(&a, "eu1"), owner(&b, "eu2"));
                if oa != "eu1" {
                    oa
                } else {
                    ob
                }
            })
            .collect()
    };
    let before = eventually("eu3 is down for both", Duration::from_secs(10), || {
        let o = owners(&pop);
        anyhow::ensure!(o.iter().all(|x| x != "eu3"), "{o:?}");
        Ok(o)
    })
    .unwrap();
    pop.start(2);
    let after = eventually("eu3 owns some keys", Duration::from_secs(10), || {
        let o = owners(&pop);
        anyhow::ensure!(o.iter().any(|x| x == "eu3"), "{o:?}");
        Ok(o)
    })
    .unwrap();
    for ((k, b), a) in keys.iter().zip(&before).zip(&after) {
        assert!(a == b || a == "eu3", "{k} moved from {b} to {a}");
    }
}

#[test]
fn a_shield_region_fills_the_others_and_the_origin_takes_over_when_it_is_down() {
    let mut pop = Pop::plan(
        &[("us", 1), ("eu", 1), ("ap", 1)],
        Some("us"),
        "load_floor = 1e9",
    );
    pop = pop.start_all();
    // First asked in three regions at once: one origin fetch.
    let path = "/obj/4k/shielded?delay_ms=300";
    let got: Vec<http::Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                s.spawn({
                    let pop = &pop;
                    move || pop.get(i, path)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", cs(r));
        assert_eq!(r.body.len(), 4096);
        if pop.members[i].region != "us" {
            assert!(
                cs(r).contains("fwd=shield"),
                "{}: {}",
                pop.members[i].id,
                cs(r)
            );
        }
    }
    assert_eq!(
        pop.origin_count(path),
        1,
        "one origin fetch for three regions"
    );
    // Each region keeps its copy.
    for i in 0..3 {
        assert!(pop.get(i, path).is_hit());
    }
    // The shield down: the other regions fill from the origin.
    let us = pop.index("us1");
    pop.members[us].proc.as_mut().unwrap().kill();
    let eu = pop.index("eu1");
    for k in 0..3 {
        let p = format!("/obj/4k/unshielded-{k}");
        let r = pop.get(eu, &p);
        assert_eq!(r.status, 200, "{}", cs(&r));
        assert!(!cs(&r).contains("fwd=shield"), "{}", cs(&r));
        assert_eq!(pop.origin_count(&p), 1);
    }
}

#[test]
fn a_purge_through_the_router_reaches_the_copies_on_every_member() {
    use cdn_tests::fleet::config::router_toml;
    use cdn_tests::fleet::spec::FleetSpec;
    use cdn_tests::fleet::EdgePlan;
    let pop = Pop::plan(
        &[("us-east", 3)],
        None,
        "replicate_after = 1\nload_floor = 1e9",
    )
    .start_all();
    let spec = FleetSpec::default();
    let plans: Vec<EdgePlan> = pop
        .members
        .iter()
        .map(|m| EdgePlan {
            id: m.id.clone(),
            region: m.region.clone(),
            ip: std::net::Ipv4Addr::LOCALHOST,
            http: m.http,
            admin: m.admin,
            probe_override: None,
        })
        .collect();
    let (dns, admin) = (free(), free());
    let file = pop._dir.path().join("router.toml");
    std::fs::write(&file, router_toml(&spec, &plans, dns, admin)).unwrap();
    let mut router = Process::spawn(
        "router",
        &binary("dns-router").unwrap(),
        &["--config".into(), file.display().to_string()],
        &[],
    )
    .unwrap();
    router.wait_ready(READY).unwrap();
    // Every member keeps a copy (replicate_after = 1), tagged by the origin.
    let path = "/obj/1k/purged?tag=red";
    let etag = |r: &http::Reply| r.header("etag").unwrap_or_default().to_string();
    let old = etag(&pop.get(0, path));
    for i in 0..3 {
        assert_eq!(pop.get(i, path).status, 200);
        assert!(pop.get(i, path).is_hit(), "member {i} keeps a copy");
    }
    assert_eq!(pop.origin_count(path), 1);
    // The origin changes the object, then the purge.
    pop.origin.state().set_version(2);
    let r = http::post(admin, "/api/v1/purge")
        .bearer(&spec.token)
        .json(&json!({"tags": ["red"]}))
        .send()
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = r.json().unwrap();
    for m in &pop.members {
        let res = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["edge"] == m.id.as_str())
            .unwrap_or_else(|| panic!("{v}"));
        assert_eq!(res["purged"], 1, "{}: {v}", m.id);
    }
    // No member serves the old copy any more; the PoP fetched the new one once.
    for i in 0..3 {
        let r = pop.get(i, path);
        assert_eq!(r.status, 200);
        assert_ne!(
            etag(&r),
            old,
            "member {i} served the purged copy: {}",
            cs(&r)
        );
    }
    assert_eq!(pop.origin_count(path), 2);
    drop(router);
}

#[test]
fn a_cold_object_asked_of_every_member_at_once_costs_one_origin_fetch() {
    let pop = Pop::plan(&[("eu", 3)], None, "replicate_after = 2\nload_floor = 1e9").start_all();
    let path = "/obj/64k/burst?delay_ms=500";
    let got: Vec<http::Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..18)
            .map(|k| {
                let pop = &pop;
                s.spawn(move || pop.get(k % 3, path))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &got {
        assert_eq!(r.status, 200, "{}", cs(r));
        assert_eq!(r.body.len(), 64 * 1024);
    }
    assert_eq!(pop.origin_count(path), 1, "the owner's fill serves the PoP");
}

#[test]
fn an_origin_slower_than_first_byte_timeout_is_still_asked_once() {
    // The origin takes 2.5 s, the members' cluster.first_byte_timeout is 1 s: a member asking
    // the owner keeps waiting while the probes say the owner is up, instead of fetching the
    // object from the origin beside the owner's own fill.
    let pop = Pop::plan(
        &[("eu", 3)],
        None,
        "replicate_after = 1000\nload_floor = 1e9",
    )
    .start_all();
    let me = pop.members[0].id.clone();
    let mut through_peer = 0;
    for k in 0..8 {
        let path = format!("/obj/1k/slow-{k}?delay_ms=2500");
        let r = pop.get(0, &path);
        assert_eq!(r.status, 200, "{}", cs(&r));
        assert_eq!(r.body.len(), 1024);
        assert_eq!(pop.origin_count(&path), 1, "{path}: {}", cs(&r));
        if owner(&r, &me) != me {
            through_peer += 1;
            if through_peer == 2 {
                break;
            }
        }
    }
    assert_eq!(
        through_peer, 2,
        "two of the keys are owned by another member"
    );
}

#[test]
fn a_dead_owner_is_skipped_and_a_peer_5xx_lets_stale_if_error_answer() {
    let mut pop =
        Pop::plan(&[("eu", 3)], None, "replicate_after = 1\nload_floor = 1e9").start_all();
    // Member 0 keeps a copy (replicate_after = 1) that may be served stale on error for 60 s.
    let (path, o) = not_owned_by_first(
        &pop,
        "/obj/1k/sie?cc=public,%20max-age=1,%20stale-if-error=60&k=",
    );
    assert_eq!(pop.get(0, &path).status, 200);
    // The owner forgets it and the origin fails: the owner answers 5xx, which member 0 treats
    // as an origin error: its stale copy.
    let r = http::post(pop.members[o].admin, "/api/v1/purge")
        .bearer(TOKEN)
        .json(&json!({"urls": [format!("http://{WWW}{path}")]}))
        .send()
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    pop.origin
        .state()
        .set_fail(Some(cdn_tests::origin::FailMode::Unavailable));
    let r = eventually("stale from member 0", Duration::from_secs(5), || {
        let r = pop.get(0, &path);
        anyhow::ensure!(r.status == 200, "{} {}", r.status, cs(&r));
        anyhow::ensure!(cs(&r).contains("stale-if-error"), "{}", cs(&r));
        Ok(r)
    })
    .unwrap();
    assert_eq!(r.body.len(), 1024);
    pop.origin.state().set_fail(None);
    // The owner killed: its keys are filled by the next member or the asker, at once.
    let id = pop.members[o].id.clone();
    pop.members[o].proc.as_mut().unwrap().kill();
    for k in 0..6 {
        let p = format!("/obj/1k/dead-{k}");
        for i in (0..3).filter(|&i| i != o) {
            let r = pop.get(i, &p);
            assert_eq!(r.status, 200, "{}", cs(&r));
            assert_ne!(owner(&r, &pop.members[i].id), id);
        }
    }
}

#[test]
fn a_bad_cluster_section_exits_64_naming_the_key() {
    let pop = Pop::plan(&[("eu", 2)], Some("eu"), "");
    let good = std::fs::read_to_string(&pop.members[0].config).unwrap();
    let run = |text: &str| {
        let file = pop._dir.path().join("check.toml");
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(binary("edge").unwrap())
            .args(["--check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    assert_eq!(run(&good).0, Some(0), "{}", run(&good).1);
    for (from, to, key) in [
        ("fall = 3", "fall = 0", "cluster.fall"),
        (
            "secret = \"pop-test-secret-0123456789\"",
            "secret = \"short\"",
            "cluster.secret",
        ),
        (
            "[cluster]\n",
            "[cluster]\nload_epsilon = -1.0\n",
            "cluster.load_epsilon",
        ),
        (
            "regions = [\"eu\"]",
            "regions = [\"mars\"]",
            "cluster.shields[0].regions[0]",
        ),
    ] {
        assert!(good.contains(from), "{from}");
        let (code, out) = run(&good.replacen(from, to, 1));
        assert_eq!(code, Some(64), "{key}: {out}");
        assert!(out.contains(key), "{key}: {out}");
    }
}

#[test]
fn requests_collapsed_on_a_peer_fill_say_fwd_peer() {
    let pop = Pop::plan(&[("eu", 3)], None, "replicate_after = 1\nload_floor = 1e9").start_all();
    for k in 0..16 {
        let path = format!("/obj/8k/collapse-{k}?delay_ms=400");
        let got: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    let (pop, path) = (&pop, &path);
                    s.spawn(move || cs(&pop.get(0, path)))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        if got.iter().all(|c| !c.contains("fwd=peer")) {
            continue; // member 0 owns this key
        }
        assert!(got.iter().all(|c| c.contains("fwd=peer")), "{got:?}");
        assert!(got.iter().any(|c| c.contains("collapsed")), "{got:?}");
        assert_eq!(pop.origin_count(&path), 1);
        return;
    }
    panic!("member 0 owned every key");
}

#[test]
fn members_that_each_take_the_other_for_the_owner_still_answer_at_once() {
    // Two members disagree about a key's owner: each puts the other first. Bounded load does
    // this when one member finds itself over its bound before the other's probe has seen it;
    // so does a rolling change of weights (here: each config weighs the other member 1000).
    // A miss asked of both at once leads a fill at each, and each fill asks the other, whose
    // peer request joins its own fill: the two wait on each other. Past
    // cluster.first_byte_timeout (1 s) each must give up on the other and fill from the
    // origin, not wait for the other's followers to time out (fill_wait_timeout, 10 s → 504).
    let pop = Pop::plan(
        &[("eu", 2)],
        None,
        "replicate_after = 1000\nload_floor = 1e9",
    );
    for (me, other) in [(0, 1), (1, 0)] {
        let o = &pop.members[other];
        let from = format!("{{ id = \"{}\", address = \"{}\" }}", o.id, o.http);
        let to = format!(
            "{{ id = \"{}\", address = \"{}\", weight = 1000.0 }}",
            o.id, o.http
        );
        let t = std::fs::read_to_string(&pop.members[me].config).unwrap();
        assert!(t.contains(&from));
        std::fs::write(&pop.members[me].config, t.replace(&from, &to)).unwrap();
    }
    let pop = pop.start_all();
    for k in 0..4 {
        let path = format!("/obj/1k/cycle-{k}");
        let t0 = std::time::Instant::now();
        let barrier = std::sync::Barrier::new(2);
        let got: Vec<http::Reply> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|i| {
                    let (pop, path, b) = (&pop, &path, &barrier);
                    s.spawn(move || {
                        b.wait();
                        pop.get(i, path)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let took = t0.elapsed();
        for r in &got {
            assert_eq!(r.status, 200, "{path}: {} after {took:?}", cs(r));
            assert_eq!(r.body.len(), 1024);
        }
        assert!(took < Duration::from_secs(6), "{path}: {took:?}");
    }
}
