//! `cache-sim`: replay a request trace through the edge's cache core (`cdn_edge::cache::sim`)
//! and print request and byte hit ratio next to LRU, Belady and the compulsory-miss limit for
//! the same trace and capacity.
//!
//! ```text
//! cargo build -p cdn-edge --release --bin cache-sim
//! target/release/cache-sim                                   # the yardstick's long tail
//! target/release/cache-sim --trace log:/var/log/edge/access.log --warm 10000
//! target/release/cache-sim --low-hint-from off --disk-only-from 131072   # a policy variant
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use cdn_edge::cache::sim::{offline, replay, trace, Ratios, Request, Tally};
use cdn_edge::cache::store::{MemoryEviction, Placement};
use cdn_shared::config::edge::CacheSection;
use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(about = "Replay a request trace through the edge's cache (foyer memory + disk)")]
struct Args {
    /// `zipf` (the yardstick's lua/zipf.lua workload) or `log:<path>` (an edge access log,
    /// JSON or combined format).
    #[arg(long, default_value = "zipf")]
    trace: String,
    /// Zipf: objects.
    #[arg(long, default_value_t = 10_000)]
    n: u64,
    /// Zipf: exponent.
    #[arg(long, default_value_t = 1.0)]
    s: f64,
    /// Zipf: seed of the measured requests (the yardstick's round 1 uses ZIPF_SEED=1).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf: seed of the warm-up requests (the yardstick's warm-up uses ZIPF_SEED=100).
    #[arg(long, default_value_t = 100)]
    warm_seed: u64,
    /// Zipf: interleaved generators (wrk threads).
    #[arg(long, default_value_t = 2)]
    streams: u64,
    /// Warm-up requests (not counted). For a log: its first N lines.
    #[arg(long, default_value_t = 16_000)]
    warm: usize,
    /// Zipf: measured requests.
    #[arg(long, default_value_t = 80_000)]
    requests: usize,
    /// Memory tier, MiB.
    #[arg(long, default_value_t = 128)]
    memory_mib: u64,
    /// Disk tier, MiB (0: memory only).
    #[arg(long, default_value_t = 128)]
    disk_mib: u64,
    /// Chunk size, KiB.
    #[arg(long, default_value_t = 1024)]
    chunk_kib: u64,
    /// Capacity of the LRU/Belady references, MiB (default: memory + disk).
    #[arg(long)]
    ref_mib: Option<u64>,
    /// Directory for the disk tier (a fresh subdirectory is made and removed).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Virtual request rate, requests/s (ages objects: see --max-age).
    #[arg(long, default_value_t = 2800.0)]
    rate: f64,
    /// Freshness lifetime of every object, seconds.
    #[arg(long, default_value_t = 3600)]
    max_age: u64,
    /// Do not wait for foyer's disk flush after each fill (writes may be dropped).
    #[arg(long)]
    no_settle: bool,
    /// Only the LRU/Belady/limit references (no replay through the store).
    #[arg(long)]
    offline_only: bool,
    /// Also print every model's request hit ratio by size class.
    #[arg(long)]
    classes: bool,
    /// Also print greedy-dual references (priority = frequency / size^alpha, aged) for these
    /// exponents, comma-separated (0: LFU, 1: GDSF), with known and with counted frequencies.
    #[arg(long, value_delimiter = ',')]
    gd_alpha: Vec<f64>,
    /// Placement: inline bodies ≥ this many bytes enter memory with the low hint (`off`).
    #[arg(long)]
    low_hint_from: Option<String>,
    /// Placement: inline bodies ≥ this many bytes are written to disk only (`off`).
    #[arg(long)]
    disk_only_from: Option<String>,
    /// Placement: inline bodies < this many bytes are kept in memory only.
    #[arg(long)]
    memory_only_below: Option<u64>,
    /// Placement: bodies ≥ this many bytes are stored on their second request only (`off`).
    #[arg(long)]
    second_hit_from: Option<String>,
    /// Placement: hits of inline bodies ≥ this many bytes are counted (for disk reinsertion)
    /// (`off`)
    #[arg(long)]
    count_inline_from: Option<String>,
    /// Placement: reinsert disk entries with at least this many hits when their block is
    /// reclaimed (0: off).
    #[arg(long)]
    disk_reinsert_hits: Option<u8>,
    /// Placement: foyer's disk block size, KiB.
    #[arg(long)]
    disk_block_kib: Option<usize>,
    /// Placement: a disk-only chunk enters memory on this hit.
    #[arg(long)]
    promote_after: Option<u8>,
    /// Placement: memory-tier eviction.
    #[arg(long, value_enum)]
    memory_eviction: Option<Eviction>,
    /// Placement: foyer's disk FIFO probation share (0..1).
    #[arg(long)]
    disk_fifo_probation: Option<f64>,
    /// Placement: foyer's disk invalid-ratio picker threshold (0..1).
    #[arg(long)]
    disk_invalid_ratio: Option<f64>,
    /// A label printed with the replay's line.
    #[arg(long, default_value = "edge store")]
    label: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Eviction {
    Lru,
    S3fifo,
    Lfu,
}

fn bytes_or_off(v: &Option<String>, default: u64) -> Result<u64, String> {
    match v.as_deref() {
        None => Ok(default),
        Some("off") => Ok(u64::MAX),
        Some(s) => s
            .parse()
            .map_err(|_| format!("not a byte count or `off`: {s}")),
    }
}

fn line(name: &str, r: &Ratios) {
    println!(
        "{name:<32} request hit {:.3}  byte hit {:.3}  ({} hits / {} requests, origin {} MiB of {} MiB)",
        r.hit_ratio(),
        r.byte_hit_ratio(),
        r.hits,
        r.requests,
        r.origin_bytes >> 20,
        r.bytes >> 20
    );
}

/// The trace, its warm-up length, and (for a log) what the recording server answered from cache.
type Loaded = (Vec<Request>, usize, Option<Vec<Option<bool>>>);

/// The recording server's own figures over the measured lines (lines with a cache status).
fn recorded_line(reqs: &[Request], rec: &[Option<bool>]) {
    let mut r = Ratios::default();
    let mut unknown = 0u64;
    for (q, hit) in reqs.iter().zip(rec) {
        let Some(hit) = *hit else {
            unknown += 1;
            continue;
        };
        r.count(q.size, hit);
    }
    line("recorded (the logging server)", &r);
    if unknown > 0 {
        println!("  {unknown} measured lines without a hit/miss cache status not counted");
    }
}

fn load(a: &Args) -> Result<Loaded, String> {
    if let Some(path) = a.trace.strip_prefix("log:") {
        let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let log =
            trace::access_log(std::io::BufReader::new(f)).map_err(|e| format!("{path}: {e}"))?;
        eprintln!(
            "{path}: {} requests, {} lines skipped",
            log.requests.len(),
            log.skipped
        );
        let warm = a.warm.min(log.requests.len());
        return Ok((log.requests, warm, Some(log.recorded)));
    }
    if a.trace != "zipf" {
        return Err(format!("unknown trace {}", a.trace));
    }
    let z = trace::Zipf::new(a.n, a.s, "");
    let mut reqs = z.trace(a.warm_seed, a.streams, a.warm);
    reqs.extend(z.trace(a.seed, a.streams, a.requests));
    Ok((reqs, a.warm, None))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cache-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), String> {
    let a = Args::parse();
    let (reqs, warm, recorded) = load(&a)?;
    let mib = 1u64 << 20;
    let ref_cap = a.ref_mib.unwrap_or(a.memory_mib + a.disk_mib) * mib;
    println!(
        "trace {}: {} requests ({} warm-up, not counted), {} objects; cache {} MiB memory + {} MiB disk, chunk {} KiB; references at {} MiB",
        a.trace,
        reqs.len(),
        warm,
        reqs.iter().map(|r| r.key.as_str()).collect::<std::collections::HashSet<_>>().len(),
        a.memory_mib,
        a.disk_mib,
        a.chunk_kib,
        ref_cap / mib
    );
    if let Some(rec) = &recorded {
        recorded_line(&reqs[warm..], &rec[warm..]);
    }
    // (short name for the class table, tally)
    let mut models: Vec<(String, Tally)> = Vec::new();
    let limit = offline::infinite(&reqs, warm);
    line("limit (every object seen before)", &limit.all);
    models.push(("limit".into(), limit));
    let belady = offline::belady(&reqs, warm, ref_cap);
    line("Belady (furthest next use)", &belady.all);
    models.push(("Belady".into(), belady));
    let lru = offline::lru(&reqs, warm, ref_cap);
    line("LRU", &lru.all);
    models.push(("LRU".into(), lru));
    for &alpha in &a.gd_alpha {
        if !(0.0..=4.0).contains(&alpha) {
            return Err(format!("--gd-alpha {alpha}: expected 0..=4"));
        }
        for (f, name) in [
            (offline::Frequency::Known, "known"),
            (offline::Frequency::Counted, "counted"),
        ] {
            let t = offline::greedy_dual(&reqs, warm, ref_cap, alpha, f);
            line(&format!("greedy-dual a={alpha} ({name} freq)"), &t.all);
            models.push((format!("GD{alpha}/{name}"), t));
        }
    }
    if a.offline_only {
        if a.classes {
            classes(&models);
        }
        return Ok(());
    }

    let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("cache-sim-{}", std::process::id()));
    let mut cache: CacheSection = serde_json::from_value(serde_json::json!({
        "memory": a.memory_mib * mib,
        "disk": a.disk_mib.max(1) * mib,
        "chunk_size": a.chunk_kib * 1024,
    }))
    .map_err(|e| format!("cache config: {e}"))?;
    if a.disk_mib > 0 {
        cache.disk_path = Some(dir.clone());
    }
    let mut p = Placement::for_config(&cache);
    p.low_hint_from = bytes_or_off(&a.low_hint_from, p.low_hint_from)?;
    p.disk_only_from = bytes_or_off(&a.disk_only_from, p.disk_only_from)?;
    p.second_hit_from = bytes_or_off(&a.second_hit_from, p.second_hit_from)?;
    p.count_inline_from = bytes_or_off(&a.count_inline_from, p.count_inline_from)?;
    p.disk_reinsert_hits = a.disk_reinsert_hits.unwrap_or(p.disk_reinsert_hits);
    p.disk_block_size = a.disk_block_kib.map(|k| k * 1024).or(p.disk_block_size);
    p.memory_only_below = a.memory_only_below.unwrap_or(p.memory_only_below);
    p.promote_after = a.promote_after.unwrap_or(p.promote_after);
    p.disk_fifo_probation = a.disk_fifo_probation.unwrap_or(p.disk_fifo_probation);
    p.disk_invalid_ratio = a.disk_invalid_ratio.unwrap_or(p.disk_invalid_ratio);
    if let Some(e) = a.memory_eviction {
        p.memory_eviction = match e {
            Eviction::Lru => MemoryEviction::Lru,
            Eviction::S3fifo => MemoryEviction::S3Fifo,
            Eviction::Lfu => MemoryEviction::Lfu,
        };
    }
    eprintln!("placement: {p:?}");
    let cfg = replay::Replay {
        cache,
        placement: p,
        rate: a.rate,
        max_age_s: a.max_age,
        settle: !a.no_settle,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let out = rt.block_on(replay::run(&reqs, warm, &cfg));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.map_err(|e| e.to_string())?;
    line(&a.label, &out.ratios);
    let t = &out.tiers;
    let pct = |x: u64, y: u64| if y == 0 { 0.0 } else { x as f64 / y as f64 };
    println!(
        "  served from memory {} requests / {} MiB, with disk reads {} requests / {} MiB; origin requests {} ({} refills of bodies gone, {} chunk refetches)",
        t.memory_requests,
        t.memory_bytes >> 20,
        t.disk_requests,
        t.disk_bytes >> 20,
        t.origin_requests,
        t.refills,
        t.refetches
    );
    println!(
        "  disk tier's own hit ratio (lookups that missed memory): {:.3} by lookups ({} / {}), {:.3} by bytes",
        pct(t.disk_found, t.disk_lookups),
        t.disk_found,
        t.disk_lookups,
        pct(t.disk_found_bytes, t.disk_lookup_bytes)
    );
    for c in &out.by_size {
        let r = &c.ratios;
        println!(
            "  objects of at most {} KiB: {} requests, request hit {:.3} (limit {:.3}), byte hit {:.3}, origin {} MiB",
            c.size >> 10,
            r.requests,
            r.hit_ratio(),
            1.0 - pct(c.first, r.requests),
            r.byte_hit_ratio(),
            r.origin_bytes >> 20
        );
    }
    println!(
        "  memory tier at the end {} MiB; replay wall time {:.1} s",
        out.memory_used >> 20,
        out.wall.as_secs_f64()
    );
    if let Some((before, end, peak)) = out.rss {
        println!(
            "  process RSS: {} MiB before the store opened (trace), {} MiB at the end, peak {} MiB",
            before >> 20,
            end >> 20,
            peak >> 20
        );
    }
    if a.classes {
        let mut edge = Tally {
            all: out.ratios,
            ..Default::default()
        };
        for c in &out.by_size {
            edge.by_size.insert(c.size, c.ratios);
        }
        models.push((a.label.clone(), edge));
        classes(&models);
    }
    Ok(())
}

/// Request hit ratio of every model by size class, one row per class.
fn classes(models: &[(String, Tally)]) {
    let mut head = format!("{:<10} {:>9}", "class", "requests");
    for (name, _) in models {
        head.push_str(&format!(" {name:>16}"));
    }
    println!("request hit ratio by size class:\n{head}");
    let Some((_, first)) = models.first() else {
        return;
    };
    for (&class, r) in &first.by_size {
        let mut row = format!("<= {:>4} KiB {:>9}", class >> 10, r.requests);
        for (_, t) in models {
            let h = t.by_size.get(&class).map_or(0.0, |r| r.hit_ratio());
            row.push_str(&format!(" {h:>16.3}"));
        }
        println!("{row}");
    }
}
