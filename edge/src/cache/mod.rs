//! The cache: keys ([`key`]), RFC 9111 decisions ([`policy`]), what is stored ([`meta`]),
//! field-value parsers ([`fields`]: HTTP-date, Age, Structured Fields), where objects go in
//! the two tiers ([`placement`]), the foyer store ([`store`]) and the hit counts that decide
//! when a chunk enters memory ([`hot`]);
//! [`sim`] replays request traces through the store (the `cache-sim` binary). Reading bodies
//! by range (fill, chunks or origin) is the [`body`](crate::body) step, outside the cache.

pub mod fields;
pub mod hot;
pub mod key;
pub mod meta;
pub mod placement;
pub mod policy;
pub mod sim;
pub mod store;
