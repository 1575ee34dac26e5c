//! Trace sources: the yardstick's Zipf workload, and an edge access log.

use std::io::BufRead;

use super::Request;

/// The yardstick's long-tail workload (`../shared/bench/http/lua/zipf.lua`): Zipf(`s`) over
/// `n` objects; popularity rank `r` (1-based) is object id `(r * 7919) % n`; the size of id
/// comes from a multiplicative hash of the id: 50 % 4 KiB, 30 % 32 KiB, 15 % 128 KiB,
/// 5 % 1 MiB (the origin's `/obj/<size>/z<id>`). Like wrk's threads, `streams` generators
/// seeded `seed * 1000 + t` (t = 1..=streams) take turns; the generator is splitmix64, not
/// LuaJIT's, so the draws are the same distribution but not the same sequence as wrk's.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// Object count.
    pub n: u64,
    /// Exponent.
    pub s: f64,
    /// Query string appended to every path (e.g. `?max_age=3600`, or empty).
    pub qs: String,
    cdf: Vec<f64>,
}

/// Size of object `id`, as `zipf.lua`'s `size_of` (bytes, and the path's size label).
pub fn zipf_size_of(id: u64) -> (u64, &'static str) {
    let h = id.wrapping_mul(2_654_435_761) % 4_294_967_296;
    match h % 100 {
        0..50 => (4 * 1024, "4k"),
        50..80 => (32 * 1024, "32k"),
        80..95 => (128 * 1024, "128k"),
        _ => (1024 * 1024, "1m"),
    }
}

impl Zipf {
    /// The workload over `n` objects with exponent `s`.
    pub fn new(n: u64, s: f64, qs: &str) -> Zipf {
        let n = n.max(1);
        let sum: f64 = (1..=n).map(|r| 1.0 / (r as f64).powf(s)).sum();
        let mut acc = 0.0;
        let cdf = (1..=n)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(s) / sum;
                acc
            })
            .collect();
        Zipf {
            n,
            s,
            qs: qs.to_string(),
            cdf,
        }
    }

    /// The request for popularity rank `r` (1-based).
    pub fn request(&self, r: u64) -> Request {
        let id = (r * 7919) % self.n;
        let (size, label) = zipf_size_of(id);
        Request {
            key: format!("http://127.0.0.1/obj/{label}/z{id}{}", self.qs),
            size,
        }
    }

    /// Rank for a uniform draw `u` in [0, 1) (binary search of the CDF, as `zipf.lua`).
    pub fn rank(&self, u: f64) -> u64 {
        let i = self.cdf.partition_point(|&c| c < u);
        (i as u64 + 1).min(self.n)
    }

    /// `count` requests from `streams` generators seeded from `seed`, taking turns.
    pub fn trace(&self, seed: u64, streams: u64, count: usize) -> Vec<Request> {
        let mut gens: Vec<SplitMix> = (1..=streams.max(1))
            .map(|t| SplitMix(seed * 1000 + t))
            .collect();
        let k = gens.len();
        (0..count)
            .map(|i| {
                let u = gens[i % k].uniform();
                self.request(self.rank(u))
            })
            .collect()
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): small, seeded, deterministic.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An edge access log read as a trace.
#[derive(Debug, Default)]
pub struct AccessLog {
    /// The requests, in log order.
    pub requests: Vec<Request>,
    /// Per request, whether the server that wrote the log answered it from its cache
    /// (`HIT`, `STALE`: yes; `MISS`, `REVALIDATED`: no; anything else: unknown).
    pub recorded: Vec<Option<bool>>,
    /// Lines skipped.
    pub skipped: u64,
}

/// Requests of an edge access log (`[access_log]`, `json` or `combined`, detected per line):
/// GET responses with status 200 and a known body length (`bytes` > 0), keyed by host + path
/// (`combined` lines carry no host: path only). Other lines (HEAD, 206, 304, errors, lines
/// that do not parse) are skipped and counted.
pub fn access_log(r: impl BufRead) -> std::io::Result<AccessLog> {
    let mut out = AccessLog::default();
    for line in r.lines() {
        match parse_line(&line?) {
            Some((req, hit)) => {
                out.requests.push(req);
                out.recorded.push(hit);
            }
            None => out.skipped += 1,
        }
    }
    Ok(out)
}

fn outcome(cache: &str) -> Option<bool> {
    match cache {
        "HIT" | "STALE" => Some(true),
        "MISS" | "REVALIDATED" => Some(false),
        _ => None,
    }
}

fn parse_line(line: &str) -> Option<(Request, Option<bool>)> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("method")?.as_str()? != "GET" || v.get("status")?.as_u64()? != 200 {
            return None;
        }
        let size = v.get("bytes")?.as_u64().filter(|&b| b > 0)?;
        let host = v.get("host").and_then(|h| h.as_str()).unwrap_or("");
        let path = v.get("path")?.as_str()?;
        let hit = v.get("cache").and_then(|c| c.as_str()).and_then(outcome);
        return Some((
            Request {
                key: format!("{host}{path}"),
                size,
            },
            hit,
        ));
    }
    // combined: `addr - - [date] "GET /a HTTP/1.1" 200 1024 "-" "ua" HIT 0.420 -`
    let (_, rest) = line.split_once('"')?;
    let (request_line, rest) = rest.split_once('"')?;
    let mut rl = request_line.split_whitespace();
    if rl.next()? != "GET" {
        return None;
    }
    let path = rl.next()?;
    let mut f = rest.split_whitespace();
    if f.next()? != "200" {
        return None;
    }
    let size = f.next()?.parse::<u64>().ok().filter(|&b| b > 0)?;
    // The line ends with the cache status, ms and origin ms (the user agent before them may
    // hold escaped quotes, so count from the end).
    let hit = line.split_whitespace().rev().nth(2).and_then(outcome);
    Some((
        Request {
            key: path.to_string(),
            size,
        },
        hit,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_matches_the_lua_generator_shape() {
        // zipf.lua: id = (r * 7919) % N; size_of by the multiplicative hash.
        let z = Zipf::new(10_000, 1.0, "");
        assert_eq!(z.request(1).key, "http://127.0.0.1/obj/4k/z7919");
        assert_eq!(zipf_size_of(7919), (4096, "4k")); // 7919 * 2654435761 % 2^32 % 100 = 35
        assert_eq!(zipf_size_of(1), (32 * 1024, "32k")); // 2654435761 % 100 = 61
        assert_eq!(z.rank(0.0), 1);
        assert_eq!(z.rank(0.999_999_999), 10_000);
        // Mixed sizes over all ids: about 82 KiB mean, about 800 MiB in total.
        let total: u64 = (0..10_000).map(|id| zipf_size_of(id).0).sum();
        assert!((780..=830).contains(&(total >> 20)), "{} MiB", total >> 20);
        // Same seed, same trace; another seed, another trace; rank 1 is the most requested.
        let a = z.trace(1, 2, 5000);
        assert_eq!(a, z.trace(1, 2, 5000));
        assert_ne!(a, z.trace(2, 2, 5000));
        let top = a.iter().filter(|r| r.key == z.request(1).key).count();
        // P(rank 1) = 1 / H(10000) ≈ 0.1020.
        assert!((400..=620).contains(&top), "{top}");
    }

    #[test]
    fn access_log_lines_of_both_formats() {
        let log = concat!(
            r#"{"ts":"2026-11-22T01:02:03.456Z","client":"127.0.0.1","method":"GET","host":"cdn.example","path":"/a?b=1","proto":"HTTP/1.1","status":200,"bytes":1024,"ms":0.42,"cache":"HIT","origin_ms":null,"referer":null,"ua":"curl/8"}"#,
            "\n",
            r#"{"ts":"2026-11-22T01:02:03.456Z","client":"127.0.0.1","method":"HEAD","host":"cdn.example","path":"/a","proto":"HTTP/1.1","status":200,"bytes":1024,"ms":0.42,"cache":"HIT","origin_ms":null,"referer":null,"ua":"curl/8"}"#,
            "\n",
            "127.0.0.1 - - [22/Nov/2026:01:02:03 +0000] \"GET /b HTTP/1.1\" 200 4096 \"-\" \"curl/8\" MISS 1.000 0.900\n",
            "127.0.0.1 - - [22/Nov/2026:01:02:03 +0000] \"GET /c HTTP/1.1\" 206 10 \"-\" \"curl/8\" HIT 0.100 -\n",
            "garbage\n",
        );
        let log = access_log(log.as_bytes()).unwrap();
        assert_eq!(log.recorded, vec![Some(true), Some(false)]);
        assert_eq!(
            log.requests,
            vec![
                Request {
                    key: "cdn.example/a?b=1".into(),
                    size: 1024
                },
                Request {
                    key: "/b".into(),
                    size: 4096
                },
            ]
        );
        assert_eq!(log.skipped, 3);
    }
}
