//! placeholder during bootstrap
pub mod model;
