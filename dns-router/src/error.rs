//! The crate's one error type.

use cdn_shared::config::ConfigError;

/// Errors of the router library.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The configuration (or a file it names: record data, network map, database) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket could not be bound or used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RouterError {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RouterError::Io {
            what: what.into(),
            source,
        }
    }
}
