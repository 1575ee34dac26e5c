//! A PoP member asked for a key waits past `cluster.first_byte_timeout` while its probes pass
//! (upstream.rs `patient`): the owner is most likely filling the key from a slow origin. A
//! member whose probes pass but which answers no request (request handling wedged: a stalled
//! disk, say, under a `/healthz` that still answers) costs the whole patience once, not on
//! every miss of every key it owns.

mod cache_support;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_support::*;

/// A member that answers its probes (`/healthz`) and nothing else: every other request is
/// read and left without an answer. Counts both.
struct WedgedMember {
    addr: SocketAddr,
    probes: Arc<AtomicUsize>,
    asked: Arc<AtomicUsize>,
}

impl WedgedMember {
    fn start() -> WedgedMember {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (probes, asked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (p, a) = (probes.clone(), asked.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let (p, a) = (p.clone(), a.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        // The rest of the head (no bodies: GET only).
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        if line.starts_with("GET /healthz ") {
                            p.fetch_add(1, Ordering::SeqCst);
                            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if s.write_all(ok.as_bytes()).is_err() {
                                return;
                            }
                        } else {
                            a.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                    }
                });
            }
        });
        WedgedMember {
            addr,
            probes,
            asked,
        }
    }
}

#[test]
fn a_member_whose_probes_pass_but_that_answers_nothing_costs_its_patience_once() {
    let origin = Origin::start(|_, _| {
        OriginResp::new(200, &[("cache-control", "max-age=60")], body_of(1000, 7))
    });
    let wedged = WedgedMember::start();
    // The wedged member weighs 1000: it owns (nearly) every key. The host's origin
    // first_byte_timeout is 3 s (cache_support::config), the cluster's 300 ms.
    let cluster = format!(
        "\n[cluster]\nsecret = \"pop-test-secret-0123456789\"\nprobe_interval = \"100ms\"\n\
         probe_timeout = \"500ms\"\nfall = 2\nrise = 1\nconnect_timeout = \"300ms\"\n\
         first_byte_timeout = \"300ms\"\nreplicate_after = 1000\nload_floor = 1e9\n\
         members = [{{ id = \"e1\", address = \"127.0.0.1:9\" }}, \
         {{ id = \"wedged\", address = \"{}\", weight = 1000.0 }}]\n",
        wedged.addr
    );
    let edge = Edge::start(config(&origin.url(), &cluster, ""));
    assert!(
        wait_until(Duration::from_secs(5), || wedged
            .probes
            .load(Ordering::SeqCst)
            >= 2),
        "probed"
    );
    // The first miss waits its whole patience (300 ms + 3 s), then fills from the origin.
    let t = Instant::now();
    let r = edge.get("/first", &[]);
    let first = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.cache_status());
    assert_eq!(
        wedged.asked.load(Ordering::SeqCst),
        1,
        "the owner was asked"
    );
    assert!(first >= Duration::from_secs(3), "{first:?}");
    // The member is still up (its probes pass), but it answered nothing in the longest a
    // member filling from the origin takes: the next misses wait only first_byte_timeout.
    let mut slow = Vec::new();
    for k in 0..3 {
        let path = format!("/next-{k}");
        let t = Instant::now();
        let r = edge.get(&path, &[]);
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.cache_status());
        if took >= Duration::from_millis(2_000) {
            slow.push((path, took));
        }
    }
    assert!(
        slow.is_empty(),
        "misses after the first still waited the whole patience: {slow:?}"
    );
    assert_eq!(origin.count("/first"), 1);
}
