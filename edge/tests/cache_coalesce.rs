//! Coalescing: concurrent misses → one origin fetch, followers stream the same bytes while
//! the fill runs; a failing leader; the wait timeout.

mod cache_support;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cache_support::*;

/// `n` GETs of `path`, sent at once from `n` threads; their responses.
fn gets_at_once(edge: &Arc<Edge>, n: usize, path: &'static str) -> Vec<Resp> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (e, b) = (edge.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                e.get(path, &[])
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn concurrent_misses_make_one_origin_fetch() {
    let body = body_of(300_000, 3);
    let b2 = body.clone();
    let origin = Origin::start(move |_, _| {
        let mut r = OriginResp::new(200, &[("cache-control", "max-age=60")], b2.clone());
        r.head_delay = Duration::from_millis(300);
        r.piece = 50_000;
        r.piece_delay = Duration::from_millis(20);
        r
    });
    let edge = Arc::new(Edge::start(config(&origin.url(), "", "")));
    let n = 40;
    let resps = gets_at_once(&edge, n, "/big");
    assert_eq!(origin.count("/big"), 1, "exactly one origin fetch");
    let mut collapsed = 0;
    for r in &resps {
        assert_eq!(r.status, 200);
        assert!(!r.truncated);
        assert!(r.body == body, "every client gets the same bytes");
        if r.cache_status().contains("collapsed") {
            collapsed += 1;
        }
    }
    assert!(
        collapsed >= n - 2,
        "followers are marked collapsed: {collapsed}"
    );
    assert_eq!(edge.get("/big", &[]).x_cache(), "HIT");
}

#[test]
fn body_streams_before_the_fill_ends() {
    let body = body_of(200_000, 9);
    let b2 = body.clone();
    let origin = Origin::start(move |_, _| {
        let mut r = OriginResp::new(200, &[("cache-control", "max-age=60")], b2.clone());
        r.piece = 20_000;
        r.piece_delay = Duration::from_millis(150);
        r
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    // Read the first bytes through a raw socket and time them.
    use std::io::{Read, Write};
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(edge.http).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(n > 0);
    let first = t0.elapsed();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let total = t0.elapsed();
    assert!(
        first < Duration::from_millis(800) && total > Duration::from_millis(1300),
        "first byte {first:?} must come long before the end {total:?}"
    );
    let r = edge.get("/slow", &[]);
    assert_eq!((r.x_cache(), r.body == body), ("HIT", true));
}

#[test]
fn leader_failure_lets_a_follower_retry() {
    // First origin request fails after the head (reset mid-body); later ones succeed.
    let origin = Origin::start(|_, i| {
        let mut r = OriginResp::new(200, &[("cache-control", "max-age=60")], body_of(100_000, 1));
        if i == 0 {
            r.head_delay = Duration::from_millis(300);
            r.cut_after = Some(10);
        }
        r
    });
    let edge = Arc::new(Edge::start(config(&origin.url(), "", "")));
    let addr = edge.http;
    let get = move || request(addr, "GET", "/f", &[("host", "example.test")], b"");
    let leader = std::thread::spawn(get);
    // The leader holds the fill once its request reached the origin (which then waits 300 ms
    // before the head): the next request is a follower.
    assert!(
        wait_until(Duration::from_secs(5), || origin.count("/f") >= 1),
        "the leader's request reached the origin"
    );
    let follower = std::thread::spawn(get);
    // Both clients see a failed response (no head, or a truncated body) — never wrong bytes
    // presented as complete.
    let broken = |r: &std::io::Result<Resp>| match r {
        Err(_) => true,
        Ok(r) => r.truncated || r.status >= 500 || r.body == body_of(100_000, 1),
    };
    let l = leader.join().unwrap();
    let f = follower.join().unwrap();
    assert!(broken(&l), "{l:?}");
    assert!(l.as_ref().map_or(true, |r| r.body != body_of(100_000, 1)));
    assert!(broken(&f), "{f:?}");
    // Nothing broken was stored: the next request fetches again and gets the whole body.
    let r = edge.get("/f", &[]);
    assert_eq!(r.body, body_of(100_000, 1));
    assert!(origin.count("/f") >= 2);
    assert_eq!(edge.get("/f", &[]).x_cache(), "HIT");
}

#[test]
fn head_failure_before_headers_follower_retries_and_succeeds() {
    let origin = Origin::start(|_, i| {
        // The leader's request and its one retry (origin.rs `should_retry`) both fail.
        if i < 2 {
            let mut r = OriginResp::new(200, &[], "");
            r.head_delay = Duration::from_millis(400);
            r.hang_up = true; // connection closed before any response head
            return r;
        }
        OriginResp::new(200, &[("cache-control", "max-age=60")], "good")
    });
    let edge = Arc::new(Edge::start(config(&origin.url(), "", "")));
    let e2 = edge.clone();
    let leader = std::thread::spawn(move || e2.get("/h", &[]));
    assert!(
        wait_until(Duration::from_secs(5), || origin.count("/h") >= 1),
        "the leader's request reached the origin"
    );
    let f = edge.get("/h", &[]);
    let l = leader.join().unwrap();
    assert_eq!(l.status, 502, "{l:?}");
    assert_eq!(
        (f.status, f.body.as_slice()),
        (200, &b"good"[..]),
        "follower retried"
    );
}

#[test]
fn fill_wait_timeout_answers_504() {
    let origin = Origin::start(|_, _| {
        let mut r = OriginResp::new(200, &[("cache-control", "max-age=60")], "late");
        r.head_delay = Duration::from_millis(2500);
        r
    });
    let edge = Arc::new(Edge::start(config(
        &origin.url(),
        "",
        "max_inflight_fills = 16",
    )));
    // fill_wait_timeout is 5 s in the test config; use a dedicated edge with 1 s.
    drop(edge);
    let mut cfg = config(&origin.url(), "", "");
    cfg.cache.fill_wait_timeout = Duration::from_secs(1);
    let edge = Arc::new(Edge::start(cfg));
    let e2 = edge.clone();
    let leader = std::thread::spawn(move || e2.get("/w", &[]));
    assert!(
        wait_until(Duration::from_secs(5), || origin.count("/w") >= 1),
        "the leader's request reached the origin"
    );
    let t0 = Instant::now();
    let f = edge.get("/w", &[]);
    assert_eq!(f.status, 504);
    assert!(t0.elapsed() < Duration::from_millis(2000));
    assert!(f.cache_status().contains("detail=fill-timeout"));
    assert_eq!(leader.join().unwrap().status, 200);
}

/// Hit-for-miss: once a URL's answer was `private`, concurrent misses on it go to the origin
/// together instead of queueing behind one another's fills; once the origin lets it be
/// stored, the next such fetch stores it.
#[test]
fn misses_on_a_url_that_could_not_be_stored_are_not_queued() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};
    let n = 8;
    // In flight at the origin now, and the most seen at once.
    let gate = Arc::new((Mutex::new((0usize, 0usize)), Condvar::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let cacheable = Arc::new(AtomicBool::new(false));
    let (g2, c2, k2) = (gate.clone(), calls.clone(), cacheable.clone());
    let origin = Origin::start(move |_, _| {
        let cc = if k2.load(Ordering::SeqCst) {
            "max-age=60"
        } else {
            "private, max-age=60"
        };
        if c2.fetch_add(1, Ordering::SeqCst) > 0 && !k2.load(Ordering::SeqCst) {
            // Hold each request until all n are here together (or 3 s pass).
            let (lock, cv) = &*g2;
            let mut st = lock.lock().unwrap();
            st.0 += 1;
            st.1 = st.1.max(st.0);
            cv.notify_all();
            let deadline = Instant::now() + Duration::from_secs(3);
            while st.1 < n && Instant::now() < deadline {
                st = cv.wait_timeout(st, Duration::from_millis(50)).unwrap().0;
            }
            st.0 -= 1;
        }
        OriginResp::new(200, &[("cache-control", cc)], body_of(1000, 1))
    });
    let edge = Arc::new(Edge::start(config(&origin.url(), "", "")));
    // Learn that /api may not be stored.
    let r = edge.get("/api", &[]);
    assert_eq!(r.status, 200);
    for r in gets_at_once(&edge, n, "/api") {
        assert_eq!(r.status, 200);
        assert!(
            !r.cache_status().contains("collapsed"),
            "{}",
            r.cache_status()
        );
    }
    assert_eq!(
        gate.0.lock().unwrap().1,
        n,
        "all {n} misses reached the origin at once"
    );
    assert_eq!(calls.load(Ordering::SeqCst), n + 1);
    // The origin now allows storing: the next miss stores it, and it is a hit after that.
    cacheable.store(true, Ordering::SeqCst);
    assert_ne!(edge.get("/api", &[]).x_cache(), "HIT");
    assert_eq!(edge.get("/api", &[]).x_cache(), "HIT");
    assert_eq!(calls.load(Ordering::SeqCst), n + 2);
}
