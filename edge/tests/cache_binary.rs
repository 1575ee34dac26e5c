//! The real `edge` binary: ports read from its `listening` log lines, MISS then HIT, a
//! graceful SIGTERM, and persistence of the disk cache across a SIGTERM restart and a
//! `kill -9` restart.

mod cache_support;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cache_support::*;
use cdn_tests::harness::{wait_until, Process, Signal};

/// The `edge` binary under the shared process harness (ports from its `listening` lines,
/// killed and its log printed on drop).
struct Proc {
    p: Process,
    http: SocketAddr,
}

impl Proc {
    fn start(config: &Path) -> Proc {
        let args = [
            "--config".to_string(),
            config.display().to_string(),
            "--log-level".to_string(),
            "info".to_string(),
        ];
        let mut p = Process::spawn("edge", Path::new(env!("CARGO_BIN_EXE_edge")), &args, &[])
            .expect("edge binary starts");
        p.wait_ready(Duration::from_secs(30)).expect("edge ready");
        let http = p.addr("http", "http").expect("http listener");
        Proc { p, http }
    }

    fn get(&self, path: &str) -> Resp {
        request(self.http, "GET", path, &[("host", "example.test")], b"").unwrap()
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        self.p.signal(Signal::TERM).unwrap();
        self.p
            .wait_exit(Duration::from_secs(20))
            .expect("edge exits after SIGTERM")
    }

    fn kill9(mut self) {
        self.p.kill();
    }
}

/// The small objects' bodies found in the files under `dir`: the disk tier writes entries
/// unencoded, so a stored body's bytes appear verbatim in its (sparse) block file. Zero
/// pieces are skipped so a poll stays cheap in a debug build.
fn bodies_on_disk(dir: &Path) -> std::collections::HashSet<Vec<u8>> {
    use std::io::Read;
    const PIECE: usize = 64 * 1024;
    let mut data = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            let mut piece = vec![0u8; PIECE];
            loop {
                let n = match f.read(&mut piece) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let words = piece[..n].chunks_exact(8);
                let tail_nonzero = words.remainder().iter().any(|&b| b != 0);
                if tail_nonzero || words.into_iter().any(|c| c != [0u8; 8]) {
                    data.extend_from_slice(&piece[..n]);
                } else {
                    data.push(0); // keeps pieces on either side of a hole apart
                }
            }
            data.push(0);
        }
    }
    let prefix = b"object /k";
    let mut found = std::collections::HashSet::new();
    let mut i = 0;
    while i + prefix.len() <= data.len() {
        if data[i] == b'o' && data[i..].starts_with(prefix) {
            if let Some(dot) = data[i..].iter().take(32).position(|&b| b == b'.') {
                found.insert(data[i..i + dot + 1].to_vec());
            }
        }
        i += 1;
    }
    found
}

fn write_config(dir: &std::path::Path, origin: &str) -> std::path::PathBuf {
    let path = dir.join("edge.toml");
    let cache = dir.join("cache");
    std::fs::write(
        &path,
        format!(
            r#"
[edge]
id = "bin1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 2
[admin]
listen = "127.0.0.1:0"
[cache]
memory = "32 MiB"
disk_path = "{}"
disk = "64 MiB"
chunk_size = "64 KiB"
[lifecycle]
shutdown_grace = "2s"
[[hosts]]
name = "example.test"
origin = "{origin}"
"#,
            cache.display()
        ),
    )
    .unwrap();
    path
}

/// The small objects' bodies: `object <path>.` (the final dot keeps `/k1` from matching
/// inside `/k10` when looking for it in the disk files).
fn body_for(path: &str) -> Vec<u8> {
    format!("object {path}.").into_bytes()
}

#[test]
fn binary_serves_and_keeps_its_cache_across_sigterm_and_kill9() {
    let origin = Origin::start(|r, _| {
        let body = if r.path == "/big" {
            body_of(300_000, 2)
        } else {
            body_for(&r.path)
        };
        OriginResp::new(200, &[("cache-control", "max-age=3600")], body)
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &origin.url());

    let p = Proc::start(&cfg);
    assert_eq!(p.get("/a").x_cache(), "MISS");
    assert_eq!(p.get("/a").x_cache(), "HIT");
    assert!(p.get("/big").body == body_of(300_000, 2));
    // The draining gauge is exported from the start (0), not only once draining begins.
    let admin = p.p.addr("http", "admin").expect("admin listener");
    let page = metrics_page(admin);
    assert_eq!(sample(&page, "cdn_edge_draining"), Some(0.0), "{page}");
    // SIGHUP (a reload, a logrotate postrotate) does not end an edge without TLS.
    p.p.signal(Signal::HUP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.get("/a").x_cache(), "HIT", "still serving after SIGHUP");
    assert!(p.sigterm().success(), "graceful exit");

    // Restart after SIGTERM: hits, no origin fetch.
    let fetched = origin.seen.lock().unwrap().len();
    let p = Proc::start(&cfg);
    assert_eq!(p.get("/a").x_cache(), "HIT");
    let r = p.get("/big");
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body == body_of(300_000, 2));
    assert_eq!(origin.seen.lock().unwrap().len(), fetched);

    // Store 40 more objects, wait until foyer has written them to its block files (the
    // disk write is asynchronous), then kill -9.
    for i in 0..40 {
        assert_eq!(p.get(&format!("/k{i}")).x_cache(), "MISS");
    }
    let bodies: Vec<Vec<u8>> = (0..40).map(|i| body_for(&format!("/k{i}"))).collect();
    let cache_dir = dir.path().join("cache");
    wait_until(
        "the 40 bodies are in the disk cache files",
        Duration::from_secs(10),
        || {
            let on_disk = bodies_on_disk(&cache_dir);
            bodies.iter().all(|b| on_disk.contains(b))
        },
    )
    .unwrap();
    p.kill9();
    let fetched = origin.seen.lock().unwrap().len();
    let p = Proc::start(&cfg);
    let hits = (0..40)
        .filter(|i| {
            let r = p.get(&format!("/k{i}"));
            assert_eq!(r.body, body_for(&format!("/k{i}")));
            r.x_cache() == "HIT"
        })
        .count();
    assert!(hits >= 38, "{hits}/40 hits after kill -9");
    assert_eq!(origin.seen.lock().unwrap().len(), fetched + (40 - hits));
    assert!(p.sigterm().success());
}
