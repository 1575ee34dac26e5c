//! The real `edge` binary: ports read from its `listening` log lines, MISS then HIT, a
//! graceful SIGTERM, and persistence of the disk cache across a SIGTERM restart and a
//! `kill -9` restart.

mod cache_support;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_support::*;

struct Proc {
    child: Child,
    http: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    fn start(config: &std::path::Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
            .arg("--config")
            .arg(config)
            .arg("--log-level")
            .arg("info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("edge binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            let mut http = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if http.is_none() && line.contains("listening") {
                    let l = line.replace('"', "");
                    if l.contains("name=http ") {
                        http = l
                            .split("addr=")
                            .nth(1)
                            .and_then(|a| a.split_whitespace().next())
                            .and_then(|a| a.parse::<SocketAddr>().ok());
                    }
                }
                if line.contains("ready") {
                    if let Some(a) = http {
                        let _ = tx.send(a);
                    }
                }
                l2.lock().unwrap().push(line);
            }
        });
        let http = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("edge not ready; log:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Proc { child, http, log }
    }

    fn get(&self, path: &str) -> Resp {
        request(self.http, "GET", path, &[("host", "example.test")], b"").unwrap()
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "edge did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if std::thread::panicking() {
                eprintln!("edge log:\n{}", self.log.lock().unwrap().join("\n"));
            }
        }
    }
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

#[test]
fn binary_serves_and_keeps_its_cache_across_sigterm_and_kill9() {
    let origin = Origin::start(|r, _| {
        let body = if r.path == "/big" {
            body_of(300_000, 2)
        } else {
            format!("object {}", r.path).into_bytes()
        };
        OriginResp::new(200, &[("cache-control", "max-age=3600")], body)
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &origin.url());

    let p = Proc::start(&cfg);
    assert_eq!(p.get("/a").x_cache(), "MISS");
    assert_eq!(p.get("/a").x_cache(), "HIT");
    assert!(p.get("/big").body == body_of(300_000, 2));
    assert!(p.sigterm().success(), "graceful exit");

    // Restart after SIGTERM: hits, no origin fetch.
    let fetched = origin.seen.lock().unwrap().len();
    let p = Proc::start(&cfg);
    assert_eq!(p.get("/a").x_cache(), "HIT");
    let r = p.get("/big");
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body == body_of(300_000, 2));
    assert_eq!(origin.seen.lock().unwrap().len(), fetched);

    // Store 40 more objects, give foyer a moment to write them, then kill -9.
    for i in 0..40 {
        assert_eq!(p.get(&format!("/k{i}")).x_cache(), "MISS");
    }
    std::thread::sleep(Duration::from_millis(1000));
    p.kill9();
    let fetched = origin.seen.lock().unwrap().len();
    let p = Proc::start(&cfg);
    let hits = (0..40)
        .filter(|i| {
            let r = p.get(&format!("/k{i}"));
            assert_eq!(r.body, format!("object /k{i}").as_bytes());
            r.x_cache() == "HIT"
        })
        .count();
    assert!(hits >= 38, "{hits}/40 hits after kill -9");
    assert_eq!(origin.seen.lock().unwrap().len(), fetched + (40 - hits));
    assert!(p.sigterm().success());
}
