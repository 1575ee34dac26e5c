//! bootstrap
pub mod access_log;
pub mod admin;
pub mod drain;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod purge;
pub mod report;
