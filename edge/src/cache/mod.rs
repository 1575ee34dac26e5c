//! The cache: keys ([`key`]), RFC 9111 decisions ([`policy`]), what is stored ([`meta`]),
//! field-value parsers ([`fields`]: HTTP-date, Age, Structured Fields), the foyer store ([`store`]), hit counts that decide when a chunk enters memory ([`hot`]) and
//! reading bodies by range ([`chunks`]); [`sim`] replays request traces through the store
//! (the `cache-sim` binary).

pub mod chunks;
pub mod fields;
pub mod hot;
pub mod key;
pub mod meta;
pub mod policy;
pub mod sim;
pub mod store;
