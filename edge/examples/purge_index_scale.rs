//! Measure the purge index at scale: `cargo run --release -p cdn-edge --example purge_index_scale [N]`.
//! Records N keys (URLs over 100 hosts, 1 000 tags), then times lookups, a restart (replay) and
//! reports the process RSS. Numbers are written to docs/bench/edge.md.

use std::time::Instant;

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let rss0 = rss_mib();
    let t = Instant::now();
    {
        let ix = cdn_edge::purge::Index::open(dir.path(), Default::default())?;
        for i in 0..n {
            let url = format!(
                "host{}.example/static/dir{}/file-{i}.js?v=3",
                i % 100,
                i % 1000
            );
            let key = format!("https://{url}");
            ix.record(
                &key,
                &url,
                &[format!("tag-{}", i % 1000), "all".to_string()],
            );
        }
        ix.sync();
        let rec = t.elapsed();
        println!(
            "record {n} keys: {:.2} s ({:.0} ns/key), rss +{} MiB, log {} MiB",
            rec.as_secs_f64(),
            rec.as_nanos() as f64 / n as f64,
            rss_mib() - rss0,
            std::fs::metadata(ix.path().unwrap())?.len() >> 20
        );
        let t = Instant::now();
        let k = ix.keys_for_url("host7.example/static/dir7/file-7.js?v=3");
        println!("keys_for_url: {} key(s) in {:?}", k.len(), t.elapsed());
        let t = Instant::now();
        let k = ix.keys_with_prefix("host7.example/static/dir107/");
        println!("keys_with_prefix: {} keys in {:?}", k.len(), t.elapsed());
        let t = Instant::now();
        let k = ix.keys_for_tag("tag-42");
        println!("keys_for_tag: {} keys in {:?}", k.len(), t.elapsed());
    }
    let t = Instant::now();
    let ix = cdn_edge::purge::Index::open(dir.path(), Default::default())?;
    println!(
        "reopen (replay {} keys): {:.2} s",
        ix.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
