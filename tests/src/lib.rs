//! The CDN's test bench: everything needed to run the real binaries together on loopback.
//!
//! * [`origin`]: the demo origin (generated objects, fail switch, request counters), used
//!   in-process by tests and the fleet, and as the `demo-origin` binary by load scripts.
//! * [`harness`]: start real binaries, read their ports, poll with deadlines, DNS and HTTP
//!   clients.
//! * [`fleet`]: origin + routers + edges on loopback, wired by generated configs (the tests'
//!   and the README's local fleet).
//!
//! Binaries: `demo-origin`, `fleet` (the README's local fleet), `soak` (bounded soak of the
//! local fleet with an edge kill/restart and a purge; prints figures).
//!
//! Integration tests (`tests/`): `origin` (the demo origin over HTTP), `config_cli` (config
//! errors through the real binaries), `fleet_smoke` (resolve then fetch, MISS then HIT),
//! `fleet_binary` (the README command's printed tour), and issue 7's end-to-end tests
//! `e2e_failover`, `e2e_load_spill`, `e2e_drain`, `e2e_purge`, `e2e_origin_down`,
//! `e2e_routers`, `e2e_restart`, `e2e_reload`, `e2e_geo_database`.
//!
//! # Environment
//!
//! * `CDN_TEST_PATIENCE=<float>`: multiply every deadline (slow machines).
//! * `CDN_TEST_LOG=1`: print every child process's log when it is dropped (always printed
//!   when a test fails).
//! * `CDN_TEST_LOG_LEVEL=<filter>`: `--log-level` of the routers and edges (default `info`).
//! * `CDN_BIN_DIR=<dir>`: where `dns-router` and `edge` are (default: next to the test
//!   executable, `target/<profile>/`); a missing binary is built with cargo.
//! * `CDN_TEST_REBUILD=1`: run `cargo build` for each binary even when present.
//! * `CDN_GEOLITE2_CITY=<file>`: the GeoLite2 City database for `e2e_geo_database`
//!   (default `target/testdata/GeoLite2-City.mmdb`, from `scripts/fetch-geolite2.sh`).
//!
//! Child processes never inherit `CDN_*` variables (they would be config overrides).
#![forbid(unsafe_code)]

pub mod fleet;
pub mod harness;
pub mod origin;
