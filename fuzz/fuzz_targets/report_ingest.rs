//! Fuzz the router's report ingestion with arbitrary edge reports: JSON parsing into
//! `HealthReport` (every number an edge can send: sequence, boot id, send time, loads,
//! capacities, cache figures), the version and region checks, clock skew, ordering across
//! boots, the overload decision and the health view built after each report, with the
//! router's clock moving as the input says.
//!
//! Input: lines; each line is `<now_ms> <report JSON>` (a line without a number keeps the
//! previous time). Invariants: no panic, no unbounded allocation; both configured edges stay
//! in the health view whatever is reported.
#![no_main]

use std::sync::OnceLock;

use cdn_dns_router::health::ingest::ingest;
use cdn_dns_router::health::state::HealthState;
use cdn_shared::config::router::RouterConfig;
use libfuzzer_sys::fuzz_target;

fn config() -> &'static RouterConfig {
    static C: OnceLock<RouterConfig> = OnceLock::new();
    C.get_or_init(|| {
        cdn_shared::config::load_str(
            "[[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
             [[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n\
             [[edges]]\nid = \"e1\"\nregion = \"r\"\nipv4 = [\"127.0.0.1\"]\n\
             [[edges]]\nid = \"e2\"\nregion = \"r\"\nipv4 = [\"127.0.0.2\"]\n",
        )
        .expect("fuzz config")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let state = HealthState::new_at(config(), 0);
    let mut now: u64 = 1_000;
    for line in text.split('\n').take(64) {
        let (head, body) = line.split_once(' ').unwrap_or(("", line));
        if let Ok(t) = head.parse::<u64>() {
            now = t;
        }
        let _ = ingest(&state, config(), body.as_bytes(), now);
        state.tick(now);
        let view = state.view();
        for id in ["e1", "e2"] {
            assert!(view.edges.contains_key(id), "{id} left the view");
        }
    }
});
