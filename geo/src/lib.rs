//! # cdn-geo: where is the client, and which edges should answer it
//!
//! A pure library (no sockets, no tokio) behind every routing answer of the dns-router.
//! Modules in flow order:
//!
//! 1. [`ecs`] — EDNS Client Subnet arithmetic: validate the option ([`ecs::ecs_subnet`]); the
//!    scope to echo ([`ecs::ecs_scope`]).
//! 2. [`locate`] — IP → [`model::ClientLocation`]: the operator network map
//!    ([`locate::NetworkMap`], longest prefix, checked first), then the MaxMind database
//!    ([`locate::GeoDb`], City or Country type; country centroids in [`locate::centroids`]),
//!    then the default region. [`locate::Locator`] holds all three behind atomic swaps; the
//!    database keeps bounded lock-free lookup caches ([`locate::cache`]).
//! 3. [`select`] — [`select::choose`]: candidates → eligible (health, drain, load, manual,
//!    staleness) → ranked (great-circle distance, ordered backups) → decided (N answers,
//!    weighted spread among equal ranks seeded by the client network, all-down policy), giving a
//!    [`model::Decision`].
//! 4. [`ranking`] — the static half of `choose`: [`ranking::Ranking::build`] ranks a pool for a
//!    place once (distance, ordered backups, tie groups), [`ranking::Ranking::decide`] applies the
//!    live exclusions and picks the same answer `choose` would.
//! 5. [`table`] — the precompiled geo map: [`table::RouteTable::build`] walks every network of
//!    the database and the map once, ranks each distinct place once per pool and merges
//!    neighbouring networks that rank alike; [`table::RouteTable::lookup`] gives an address's
//!    rankings and the block that decides (its ECS scope).
//! 6. [`reload`] — [`reload::FileWatch`] / [`reload::FileStamp`]: notice a changed database or
//!    network map file, so the caller can reload it (a bad new file keeps the old one).
//!
//! [`model`] holds the data types that flow between these steps; [`error`] the crate's errors.
//!
//! ## Network map file format
//!
//! See [`locate::network_map`]: one `CIDR region-name` or `CIDR lat,lon` per line, `#`
//! comments, blank lines ignored; errors name the line.
//!
//! ## Test data
//!
//! `scripts/fetch-geolite2.sh [DIR]` fetches a 2018 GeoLite2-City database (CC BY-SA 4.0, by
//! MaxMind) into `target/testdata/`; `tests/real_db.rs`, the benchmarks and the fleet's
//! `e2e_geo_database` test use it when present (or the file named by `CDN_GEOLITE2_CITY`):
//! [`testdata::geolite2_city`] says where. Never commit the database.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ecs;
pub mod error;
pub mod locate;
pub mod model;
pub mod ranking;
pub mod reload;
pub mod select;
pub mod table;
pub mod testdata;

pub use error::{EcsError, GeoError};
