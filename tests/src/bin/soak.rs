//! `soak`: a bounded soak of the local fleet (issue 7 §10). Steady DNS + HTTP load while one
//! edge is killed and restarted and a fleet purge runs; afterwards it counts errors (expected:
//! none outside the failover window) and compares process RSS before and after.
//!
//! `cargo run --release --bin soak -- --duration 120s` (uses the release
//! binaries next to it; `cargo build --release --workspace --bins` first). Figures are
//! printed as a Markdown block (and written to `--report FILE` when given).
//!
//! Clients behave like a stub resolver with a 1 s cache in front of HTTP: each HTTP worker
//! re-resolves its region's name at most once a second (with ECS for its region) and fetches
//! from the answered edge. So after an edge dies, its clients fail until the router drops
//! it (probe interval × fall) plus at most one re-resolve: that is the failover window.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cdn_tests::fleet::{spec, Fleet, FleetSpec, SERVICE};
use cdn_tests::harness::dns::hickory_proto::op::ResponseCode;
use cdn_tests::harness::dns::hickory_proto::rr::RecordType;
use cdn_tests::harness::dns::{self, DnsQuery};
use cdn_tests::harness::http;
use clap::Parser;
use serde_json::json;

/// Soak the local fleet.
#[derive(Debug, Parser)]
#[command(name = "soak", version)]
struct Args {
    /// How long to run (e.g. `120s`, `3m`).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// DNS queries per second (spread over the three regions' subnets).
    #[arg(long, default_value_t = 200)]
    dns_qps: u32,
    /// HTTP requests per second (spread over three client workers, one per region).
    #[arg(long, default_value_t = 150)]
    http_rps: u32,
    /// Distinct objects requested (1–64 KiB each).
    #[arg(long, default_value_t = 300)]
    objects: u32,
    /// Also write the figures to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: Vec<(Duration, String)>,
    hits: u64,
    latencies_ms: Vec<f64>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rss_all(fleet: &Fleet) -> BTreeMap<String, Option<u64>> {
    let mut m = BTreeMap::new();
    for r in fleet.routers() {
        if let Some(p) = r.process() {
            m.insert(format!("router-{}", r.index), rss_kib(p.pid()));
        }
    }
    for e in fleet.edges() {
        if let Some(p) = e.process() {
            m.insert(format!("edge {}", e.id()), rss_kib(p.pid()));
        }
    }
    m
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Run `f` `rate` times per second until `stop`, paced against the start time.
fn paced(rate: f64, stop: &AtomicBool, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        f();
        n += 1;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spec = FleetSpec {
        edge_workers: 2,
        echo: cdn_tests::harness::process::Echo::Problems,
        ..FleetSpec::default()
    };
    eprintln!("starting the fleet…");
    let mut fleet = spec.start().context("starting the fleet")?;
    fleet.wait_all_up(Duration::from_secs(10))?;
    let dns_addr = fleet.router_dns();
    let regions: Vec<(String, &'static str)> = ["us-east", "eu-west", "ap-northeast"]
        .iter()
        .map(|r| (r.to_string(), spec::demo_subnet(r).expect("demo subnet")))
        .collect();
    let edges: Vec<(Ipv4Addr, SocketAddr)> = fleet
        .edges()
        .iter()
        .map(|e| (e.ip(), e.http_addr()))
        .collect();

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let dns_tally = Arc::new(Mutex::new(Tally::default()));
    let http_tally = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();

    // DNS load: one paced thread cycling over the three subnets.
    {
        let (stop, tally, regions) = (stop.clone(), dns_tally.clone(), regions.clone());
        let rate = f64::from(args.dns_qps.max(1));
        workers.push(std::thread::spawn(move || {
            let mut i = 0usize;
            paced(rate, &stop, || {
                let subnet = regions[i % regions.len()].1;
                i += 1;
                let t = Instant::now();
                let r = DnsQuery::new(SERVICE, RecordType::A)
                    .subnet(subnet)
                    .timeout(Duration::from_secs(1))
                    .udp(dns_addr);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let mut tl = tally.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(m)
                        if m.metadata.response_code == ResponseCode::NoError
                            && !dns::a_records(&m).is_empty() =>
                    {
                        tl.ok += 1;
                        tl.latencies_ms.push(ms);
                    }
                    Ok(m) => tl.errors.push((
                        t0.elapsed(),
                        format!("{} {:?}", m.metadata.response_code, dns::a_records(&m)),
                    )),
                    Err(e) => tl.errors.push((t0.elapsed(), format!("{e:#}"))),
                }
            });
        }));
    }

    // HTTP load: one paced client per region, re-resolving at most once a second.
    for (wi, (_, subnet)) in regions.iter().enumerate() {
        let (stop, tally, edges) = (stop.clone(), http_tally.clone(), edges.clone());
        let subnet = *subnet;
        let rate = f64::from(args.http_rps.max(3)) / regions.len() as f64;
        let objects = args.objects.max(1);
        workers.push(std::thread::spawn(move || {
            let mut answer: Option<(Instant, SocketAddr)> = None;
            let mut n: u64 = wi as u64 * 7919;
            paced(rate, &stop, || {
                n += 1;
                let stale = answer.is_none_or(|(at, _)| at.elapsed() >= Duration::from_secs(1));
                if stale {
                    if let Ok(m) = DnsQuery::new(SERVICE, RecordType::A)
                        .subnet(subnet)
                        .timeout(Duration::from_secs(1))
                        .udp(dns_addr)
                    {
                        if let Some(ip) = dns::a_records(&m).first() {
                            if let Some((_, addr)) = edges.iter().find(|(e, _)| e == ip) {
                                answer = Some((Instant::now(), *addr));
                            }
                        }
                    }
                }
                let Some((_, addr)) = answer else {
                    let mut tl = tally.lock().unwrap_or_else(|e| e.into_inner());
                    tl.errors.push((t0.elapsed(), "no DNS answer".into()));
                    return;
                };
                let id = (n * 2_654_435_761) % u64::from(objects);
                let size = 1 + id % 64;
                let path = format!("/obj/{size}k/soak-{id}");
                let t = Instant::now();
                let r = http::get(addr, &path)
                    .host(SERVICE)
                    .timeout(Duration::from_secs(5))
                    .send();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let mut tl = tally.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(r) if r.status == 200 && r.body.len() as u64 == size * 1024 => {
                        tl.ok += 1;
                        tl.latencies_ms.push(ms);
                        if r.is_hit() {
                            tl.hits += 1;
                        }
                    }
                    Ok(r) => tl
                        .errors
                        .push((t0.elapsed(), format!("{addr}: status {}", r.status))),
                    Err(e) => tl.errors.push((t0.elapsed(), format!("{addr}: {e:#}"))),
                }
            });
        }));
    }

    // Warm up, then take the "before" RSS.
    let d = args.duration;
    std::thread::sleep(d.mul_f64(0.2));
    let rss_before = rss_all(&fleet);

    std::thread::sleep(d.mul_f64(0.1));
    let killed_at = t0.elapsed();
    eprintln!("{killed_at:.1?}: killing edge us-east");
    fleet.kill_edge("us-east")?;

    std::thread::sleep(d.mul_f64(0.2));
    let restart_at = t0.elapsed();
    eprintln!("{restart_at:.1?}: restarting edge us-east");
    fleet.restart_edge("us-east")?;
    let us_ip = fleet.edge("us-east").ip();
    let back = Instant::now();
    cdn_tests::harness::eventually("us-east answered again", Duration::from_secs(10), || {
        anyhow::ensure!(fleet.resolve("8.8.8.0/24")? == [us_ip]);
        Ok(())
    })?;
    // Clients may hold the old answer for up to 1 s more.
    let window_end = t0.elapsed() + Duration::from_millis(1100);
    eprintln!(
        "{:.1?}: us-east answered again ({:.1?} after ready)",
        t0.elapsed(),
        back.elapsed()
    );

    std::thread::sleep(d.mul_f64(0.15));
    let purge_at = t0.elapsed();
    let tp = Instant::now();
    let pr = fleet.admin_post(
        0,
        "/api/v1/purge",
        &json!({"prefixes": [format!("{SERVICE}/obj/")]}),
    )?;
    let purge_ms = tp.elapsed().as_secs_f64() * 1000.0;
    let pv: serde_json::Value = pr.json()?;
    let acked = pv["results"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["ok"] == true).count())
        .unwrap_or(0);
    let purged: u64 = pv["results"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["purged"].as_u64()).sum())
        .unwrap_or(0);
    eprintln!(
        "{purge_at:.1?}: purge → {acked}/3 acknowledged in {purge_ms:.1} ms ({purged} objects)"
    );

    let remaining = d.saturating_sub(t0.elapsed());
    std::thread::sleep(remaining);
    let rss_after = rss_all(&fleet);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let total = t0.elapsed();

    let window = (killed_at, window_end);
    let in_window = |t: &Duration| *t >= window.0 && *t <= window.1;
    let mut dt = std::mem::take(&mut *dns_tally.lock().unwrap_or_else(|e| e.into_inner()));
    let mut ht = std::mem::take(&mut *http_tally.lock().unwrap_or_else(|e| e.into_inner()));
    let dns_out: Vec<_> = dt.errors.iter().filter(|(t, _)| !in_window(t)).collect();
    let http_out: Vec<_> = ht.errors.iter().filter(|(t, _)| !in_window(t)).collect();

    let mut out = String::new();
    out.push_str(&format!(
        "### Soak ({} build, {:.0} s, {} DNS q/s, {} HTTP req/s, {} objects)\n\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        total.as_secs_f64(),
        args.dns_qps,
        args.http_rps,
        args.objects
    ));
    out.push_str(&format!(
        "* events: us-east killed at {:.1} s, restarted at {:.1} s, answered again at {:.1} s; \
         prefix purge at {:.1} s: {acked}/3 edges acknowledged in {purge_ms:.1} ms ({purged} objects)\n",
        killed_at.as_secs_f64(),
        restart_at.as_secs_f64(),
        (window_end - Duration::from_millis(1100)).as_secs_f64(),
        purge_at.as_secs_f64()
    ));
    out.push_str(&format!(
        "* DNS: {} ok, {} errors ({} outside the failover window); latency p50 {:.2} ms, p99 {:.2} ms\n",
        dt.ok,
        dt.errors.len(),
        dns_out.len(),
        pct(&mut dt.latencies_ms, 0.5),
        pct(&mut dt.latencies_ms, 0.99)
    ));
    let span = |t: &Tally| {
        let min = t.errors.iter().map(|e| e.0).min();
        let max = t.errors.iter().map(|e| e.0).max();
        match (min, max) {
            (Some(a), Some(b)) => format!(
                ", all between {:.1} and {:.1} s",
                a.as_secs_f64(),
                b.as_secs_f64()
            ),
            _ => String::new(),
        }
    };
    out.push_str(&format!(
        "* HTTP: {} ok ({:.1}% hits), {} errors{} ({} outside the failover window {:.1}–{:.1} s); latency p50 {:.2} ms, p99 {:.2} ms\n",
        ht.ok,
        100.0 * ht.hits as f64 / ht.ok.max(1) as f64,
        ht.errors.len(),
        span(&ht),
        http_out.len(),
        window.0.as_secs_f64(),
        window.1.as_secs_f64(),
        pct(&mut ht.latencies_ms, 0.5),
        pct(&mut ht.latencies_ms, 0.99)
    ));
    out.push_str("\n| process | RSS before (MiB) | RSS after (MiB) |\n|---|---|---|\n");
    let mib = |v: Option<&Option<u64>>| match v.copied().flatten() {
        Some(k) => format!("{:.1}", k as f64 / 1024.0),
        None => "-".into(),
    };
    for name in rss_before
        .keys()
        .chain(rss_after.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let note = if name == "edge use1" {
            " (restarted in between)"
        } else {
            ""
        };
        out.push_str(&format!(
            "| {name}{note} | {} | {} |\n",
            mib(rss_before.get(name)),
            mib(rss_after.get(name))
        ));
    }
    for (t, e) in dns_out.iter().chain(http_out.iter()).take(10) {
        out.push_str(&format!(
            "\nerror outside the window at {:.2} s: {e}",
            t.as_secs_f64()
        ));
    }
    println!("{out}");
    if let Some(path) = &args.report {
        std::fs::write(path, &out).with_context(|| format!("writing {}", path.display()))?;
    }
    fleet.stop();
    if !dns_out.is_empty() || !http_out.is_empty() {
        anyhow::bail!("errors outside the failover window");
    }
    Ok(())
}
