//! The purge request body: the edge's `POST /api/v1/purge` contract, which the router's
//! `POST /api/v1/purge` accepts and fans out to every edge unchanged.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/purge` body (router and edge).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Exact URLs (`http(s)://host/path?query` or `host/path?query`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// URL prefixes (`host/path-prefix`; a bare `host` = the whole host).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Surrogate keys / cache tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mark stale instead of deleting.
    #[serde(default)]
    pub soft: bool,
}

impl PurgeRequest {
    /// No selector at all (the APIs refuse it with 400).
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty() && self.prefixes.is_empty() && self.tags.is_empty()
    }
}
