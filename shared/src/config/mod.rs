//! Configuration: loading ([`load()`]), the sections both binaries share ([`common`]), the
//! two schemas ([`router`]; [`edge`] with its [`edge_cache`] and [`edge_host`] sections), and
//! reading the certificate files they name
//! ([`certs`]).

pub mod bus;
pub mod certs;
pub mod cluster;
pub mod common;
pub mod compress;
pub mod edge;
pub mod edge_cache;
pub mod edge_host;
pub mod host_tls;
pub mod load;
pub mod router;
pub mod tenant;

pub use load::{config_dir, load, load_str, ConfigError, Validate, ENV_PREFIX, EXIT_CONFIG};
