//! Configuration: loading ([`load()`]), the sections both binaries share ([`common`]), the
//! two schemas ([`router`], [`edge`]), and reading the certificate files they name
//! ([`certs`]).

pub mod bus;
pub mod certs;
pub mod cluster;
pub mod common;
pub mod compress;
pub mod edge;
pub mod host_tls;
pub mod load;
pub mod router;
pub mod tenant;

pub use load::{config_dir, load, load_str, ConfigError, Validate, ENV_PREFIX, EXIT_CONFIG};
