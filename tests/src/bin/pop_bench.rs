//! `pop-bench`: the three benchmarks of issue 16 (points of presence), on real `edge`
//! processes on loopback with the in-process demo origin. Figures are printed as Markdown
//! (docs/bench/pop.md has the runs), with `uptime` before and after.
//!
//! * `longtail`: Zipf 1.0 over `--objects` objects (the yardstick's sizes: 50 % 4 KiB, 30 %
//!   32 KiB, 15 % 128 KiB, 5 % 1 MiB), clients spread evenly over three edges of 128 MiB
//!   memory + 128 MiB disk each, clustered and not, then one edge with 3× the cache: origin
//!   requests and hit ratios (local: `Cache-Status: hit` at the edge asked; PoP: 1 − origin
//!   requests / client requests).
//! * `hotset`: Zipf 1.2 over `--objects` 4 KiB objects for `--seconds`: requests served by
//!   each member (client and peer requests, from `cdn_edge_requests_total`), busiest / mean,
//!   for copies-when-popular with bounded load, and without copies with and without bounded
//!   load.
//! * `latency`: one keep-alive client, a 4 KiB object: a local hit (at its owner) and a peer
//!   hit (at a member that does not keep copies: the owner's hit through a peer fill), p50 and
//!   p99.
//!
//! `cargo run --release --bin pop-bench -- longtail --edge-bin target/release/edge`

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cdn_tests::harness::{binary, Process};
use cdn_tests::origin::OriginHandle;
use clap::{Parser, Subcommand};

const WWW: &str = "www.example.test";

#[derive(Debug, Parser)]
#[command(name = "pop-bench")]
struct Args {
    /// The edge binary (default: the one next to this binary).
    #[arg(long, global = true)]
    edge_bin: Option<PathBuf>,
    /// Client threads.
    #[arg(long, global = true, default_value_t = 12)]
    clients: usize,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Long tail: clustered vs not vs one edge with 3× the cache.
    Longtail {
        /// Distinct objects.
        #[arg(long, default_value_t = 10_000)]
        objects: u64,
        /// Warm-up requests (not counted).
        #[arg(long, default_value_t = 16_000)]
        warm: u64,
        /// Measured requests.
        #[arg(long, default_value_t = 48_000)]
        requests: u64,
    },
    /// Hot set: requests served per member.
    Hotset {
        /// Distinct objects.
        #[arg(long, default_value_t = 1000)]
        objects: u64,
        /// Seconds per variant.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Latency of a peer hit over a local hit.
    Latency {
        /// Requests per kind.
        #[arg(long, default_value_t = 3000)]
        requests: usize,
    },
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn free() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Edges on loopback around one demo origin.
struct Pop {
    _dir: tempfile::TempDir,
    origin: OriginHandle,
    edges: Vec<(String, SocketAddr, SocketAddr, Process)>,
}

impl Pop {
    /// `n` edges with `memory`/`disk` each; `cluster` = the `[cluster]` keys beyond members
    /// and secret (`None`: no `[cluster]`).
    fn start(
        edge_bin: &std::path::Path,
        n: usize,
        memory: &str,
        disk: &str,
        cluster: Option<&str>,
    ) -> anyhow::Result<Pop> {
        let dir = tempfile::tempdir()?;
        let origin = OriginHandle::start("127.0.0.1:0".parse()?)?;
        let addrs: Vec<(String, SocketAddr, SocketAddr)> = (1..=n)
            .map(|i| (format!("pop{i}"), free(), free()))
            .collect();
        let members: Vec<String> = addrs
            .iter()
            .map(|(id, a, _)| format!("{{ id = \"{id}\", address = \"{a}\" }}"))
            .collect();
        let mut edges = Vec::new();
        for (id, http, admin) in &addrs {
            let cache = dir.path().join(format!("cache-{id}"));
            std::fs::create_dir_all(&cache)?;
            let mut t = format!(
                "[edge]\nid = \"{id}\"\nregion = \"bench\"\n\n[http]\nlisten = [\"{http}\"]\n\
                 workers = 1\n\n[admin]\nlisten = \"{admin}\"\n\n[cache]\nmemory = \"{memory}\"\n\
                 disk_path = {:?}\ndisk = \"{disk}\"\n\n[access_log]\nenabled = false\n\n\
                 [[hosts]]\nname = \"{WWW}\"\norigin = \"{}\"\n",
                cache.display().to_string(),
                origin.url()
            );
            if let Some(extra) = cluster {
                t.push_str(&format!(
                    "\n[cluster]\nsecret = \"bench-secret-0123456789\"\nmembers = [{}]\n{extra}\n",
                    members.join(", ")
                ));
            }
            let file = dir.path().join(format!("{id}.toml"));
            std::fs::write(&file, t)?;
            let mut p = Process::spawn(
                id,
                edge_bin,
                &["--config".into(), file.display().to_string()],
                &[],
            )?;
            p.wait_ready(Duration::from_secs(60))?;
            edges.push((id.clone(), *http, *admin, p));
        }
        Ok(Pop {
            _dir: dir,
            origin,
            edges,
        })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.edges.iter().map(|e| e.1).collect()
    }

    /// `cdn_edge_requests_total` summed over labels, per edge.
    fn served(&self) -> Vec<f64> {
        self.edges
            .iter()
            .map(|(_, _, admin, _)| {
                let page = agent()
                    .get(&format!("http://{admin}/metrics"))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
                    .unwrap_or_default();
                page.lines()
                    .filter(|l| l.starts_with("cdn_edge_requests_total{"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .collect()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Zipf(s) over `n` ranks: a CDF to draw from.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    /// Rank (0-based) for a uniform `u` in [0, 1).
    fn rank(&self, u: f64) -> u64 {
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The yardstick's object for rank `r` of `n`: id (r·7919) mod n, size by the id's hash.
fn object(r: u64, n: u64, sized: bool) -> String {
    let id = (r.wrapping_mul(7919)) % n;
    let size = if !sized {
        "4k"
    } else {
        match splitmix(id) % 100 {
            0..=49 => "4k",
            50..=79 => "32k",
            80..=94 => "128k",
            _ => "1m",
        }
    };
    format!("/obj/{size}/lt-{id}")
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    requests: u64,
    hits: u64,
    errors: u64,
}

/// What clients ask for: Zipf over `n` objects (sized like the yardstick, or all 4 KiB),
/// seeded by `seed`, from `clients` threads (thread `i` on edge `i % edges`).
struct Workload {
    zipf: Arc<Zipf>,
    n: u64,
    sized: bool,
    seed: u64,
    clients: usize,
}

/// `total` requests (or requests until `deadline`) of workload `w` spread over `addrs`.
fn run_zipf(addrs: &[SocketAddr], w: &Workload, total: u64, deadline: Option<Duration>) -> Tally {
    let (clients, n, sized, seed) = (w.clients, w.n, w.sized, w.seed);
    let per = total / clients as u64;
    let started = Instant::now();
    let hs: Vec<_> = (0..clients)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let zipf = w.zipf.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut t = Tally::default();
                let mut state = seed.wrapping_mul(1000).wrapping_add(i as u64);
                let mut k = 0;
                loop {
                    if deadline.map_or(k >= per, |d| started.elapsed() >= d) {
                        break;
                    }
                    k += 1;
                    state = splitmix(state);
                    let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                    let path = object(zipf.rank(u), n, sized);
                    let res = agent
                        .get(&format!("http://{addr}{path}"))
                        .header("host", WWW)
                        .call();
                    t.requests += 1;
                    match res {
                        Ok(mut r) if r.status() == 200 => {
                            let hit = r
                                .headers()
                                .get("cache-status")
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|cs| {
                                    cs.split(',').next().unwrap_or("").contains("; hit")
                                });
                            let mut sink = Vec::new();
                            let ok = r
                                .body_mut()
                                .with_config()
                                .limit(u64::MAX)
                                .reader()
                                .read_to_end(&mut sink)
                                .is_ok();
                            if !ok {
                                t.errors += 1;
                            } else if hit {
                                t.hits += 1;
                            }
                        }
                        _ => t.errors += 1,
                    }
                }
                t
            })
        })
        .collect();
    hs.into_iter().fold(Tally::default(), |a, h| {
        let b = h.join().unwrap_or_default();
        Tally {
            requests: a.requests + b.requests,
            hits: a.hits + b.hits,
            errors: a.errors + b.errors,
        }
    })
}

fn longtail(
    args: &Args,
    edge_bin: &std::path::Path,
    objects: u64,
    warm: u64,
    requests: u64,
) -> anyhow::Result<()> {
    let zipf = Arc::new(Zipf::new(objects, 1.0));
    println!("## Long tail: Zipf 1.0 over {objects} objects ({warm} warm-up + {requests} measured requests, {} clients)\n", args.clients);
    println!("`{}` (before)\n", uptime());
    println!("| variant | origin requests | × one big edge | local hit ratio | PoP hit ratio | errors | seconds |");
    println!("|---|---|---|---|---|---|---|");
    let variants: [(&str, usize, &str, &str, Option<&str>); 3] = [
        (
            "one edge, 384 MiB memory + 384 MiB disk",
            1,
            "384MiB",
            "384MiB",
            None,
        ),
        (
            "3 edges × (128 MiB + 128 MiB), clustered",
            3,
            "128MiB",
            "128MiB",
            Some(""),
        ),
        (
            "3 edges × (128 MiB + 128 MiB), not clustered",
            3,
            "128MiB",
            "128MiB",
            None,
        ),
    ];
    let mut big = None;
    for (name, n, mem, disk, cluster) in variants {
        let pop = Pop::start(edge_bin, n, mem, disk, cluster)?;
        let addrs = pop.addrs();
        let mut w = Workload {
            zipf: zipf.clone(),
            n: objects,
            sized: true,
            seed: 100,
            clients: args.clients,
        };
        run_zipf(&addrs, &w, warm, None);
        pop.origin.state().reset_stats();
        let t0 = Instant::now();
        w.seed = 1;
        let t = run_zipf(&addrs, &w, requests, None);
        let secs = t0.elapsed().as_secs_f64();
        let origin = pop.origin.stats().total;
        let big_origin = *big.get_or_insert(origin);
        println!(
            "| {name} | {origin} | {:.2} | {:.3} | {:.3} | {} | {secs:.0} |",
            origin as f64 / big_origin.max(1) as f64,
            t.hits as f64 / t.requests.max(1) as f64,
            1.0 - origin as f64 / t.requests.max(1) as f64,
            t.errors
        );
    }
    println!("\n`{}` (after)\n", uptime());
    Ok(())
}

fn hotset(
    args: &Args,
    edge_bin: &std::path::Path,
    objects: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    let zipf = Arc::new(Zipf::new(objects, 1.2));
    println!("## Hot set: Zipf 1.2 over {objects} 4 KiB objects, {seconds} s per variant, {} clients spread over 3 members\n", args.clients);
    println!("`{}` (before)\n", uptime());
    println!("| variant | requests served per member | busiest / mean | client req/s | errors |");
    println!("|---|---|---|---|---|");
    let variants = [
        (
            "copies when popular (replicate_after 2), bounded load ε 0.25",
            "load_floor = 1.0\nload_epsilon = 0.25",
        ),
        (
            "no copies (replicate_after 10⁹), bounded load off",
            "replicate_after = 1000000000\nload_floor = 1e9",
        ),
        (
            "no copies (replicate_after 10⁹), bounded load ε 0.25",
            "replicate_after = 1000000000\nload_floor = 1.0\nload_epsilon = 0.25",
        ),
    ];
    for (name, extra) in variants {
        let pop = Pop::start(edge_bin, 3, "64MiB", "64MiB", Some(extra))?;
        let addrs = pop.addrs();
        let before = pop.served();
        let t0 = Instant::now();
        let w = Workload {
            zipf: zipf.clone(),
            n: objects,
            sized: false,
            seed: 7,
            clients: args.clients,
        };
        let t = run_zipf(&addrs, &w, 0, Some(Duration::from_secs(seconds)));
        let secs = t0.elapsed().as_secs_f64();
        let after = pop.served();
        let served: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let mean = served.iter().sum::<f64>() / served.len() as f64;
        let max = served.iter().cloned().fold(0.0, f64::max);
        println!(
            "| {name} | {} | {:.2} | {:.0} | {} |",
            served
                .iter()
                .map(|s| format!("{s:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            max / mean.max(1.0),
            t.requests as f64 / secs,
            t.errors
        );
    }
    println!("\n`{}` (after)\n", uptime());
    Ok(())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn latency(edge_bin: &std::path::Path, requests: usize) -> anyhow::Result<()> {
    let pop = Pop::start(
        edge_bin,
        3,
        "64MiB",
        "64MiB",
        Some("replicate_after = 1000000000\nload_floor = 1e9"),
    )?;
    let agent = agent();
    let get = |addr: SocketAddr, path: &str| -> anyhow::Result<(f64, String, String)> {
        let t0 = Instant::now();
        let mut r = agent
            .get(&format!("http://{addr}{path}"))
            .header("host", WWW)
            .call()?;
        let cs = r
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let via = r
            .headers()
            .get("via")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        r.body_mut().read_to_vec()?;
        Ok((t0.elapsed().as_secs_f64() * 1000.0, cs, via))
    };
    // A key whose owner is not pop1: pop1's answer names the owner first in Via.
    let addrs = pop.addrs();
    let (path, owner) = (0..100)
        .find_map(|k| {
            let p = format!("/obj/4k/lat-{k}");
            let (_, cs, via) = get(addrs[0], &p).ok()?;
            let o = via
                .split(',')
                .next()?
                .trim()
                .trim_start_matches("1.1 ")
                .to_string();
            (cs.contains("fwd=peer")).then_some((p, o))
        })
        .context("pop1 owns every key")?;
    let oi = pop
        .edges
        .iter()
        .position(|e| e.0 == owner)
        .context("owner")?;
    println!("## Latency: local hit (at the owner {owner}) vs peer hit (pop1 → {owner}), 4 KiB, one keep-alive client, {requests} requests each, interleaved\n");
    println!("`{}` (before)\n", uptime());
    let (mut local, mut peer) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        let (ms, cs, _) = get(addrs[oi], &path)?;
        anyhow::ensure!(cs.contains("; hit"), "not a local hit: {cs}");
        local.push(ms);
        let (ms, cs, _) = get(addrs[0], &path)?;
        anyhow::ensure!(cs.contains("fwd=peer"), "not a peer hit: {cs}");
        peer.push(ms);
    }
    let (l50, l99) = (percentile(&mut local, 0.5), percentile(&mut local, 0.99));
    let (p50, p99) = (percentile(&mut peer, 0.5), percentile(&mut peer, 0.99));
    println!("| kind | p50 ms | p99 ms |\n|---|---|---|");
    println!("| local hit | {l50:.3} | {l99:.3} |");
    println!("| peer hit | {p50:.3} | {p99:.3} |");
    println!("| overhead | {:.3} | {:.3} |", p50 - l50, p99 - l99);
    println!("\n`{}` (after)\n", uptime());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let edge_bin = match &args.edge_bin {
        Some(p) => p.clone(),
        None => binary("edge")?,
    };
    match args.what {
        What::Longtail {
            objects,
            warm,
            requests,
        } => longtail(&args, &edge_bin, objects, warm, requests),
        What::Hotset { objects, seconds } => hotset(&args, &edge_bin, objects, seconds),
        What::Latency { requests } => latency(&edge_bin, requests),
    }
}
