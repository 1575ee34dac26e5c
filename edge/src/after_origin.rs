//! The decision taken once the origin has answered (or failed to), beside [`plan`](crate::plan)
//! which decides before: refresh a stored object on 304, serve the stale copy on an error or a
//! 5xx (stale-if-error / grace), store the response while streaming it, or stream it without
//! storing (with the reason). Pure: the caller reads the facts, this decides, the caller acts.
//!
//! Every place that can fall back to a stale copy asks here: the leader after its origin
//! fetch, a follower whose leader failed or timed out, and a request that could not start a
//! fill (too many in flight).

use crate::cache::meta::ObjectMeta;
use crate::cache::policy::{self, Freshness, NoStore};

/// What came back, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// No usable response head: connect error, timeout, reset, too many fills, or the wait
    /// for another request's fill failed. `stale_allowed` is
    /// [`EdgeError::allows_stale`](crate::error::EdgeError::allows_stale).
    Failed {
        /// May this failure be answered with a stale copy?
        stale_allowed: bool,
    },
    /// A response head.
    Head {
        /// The origin's status.
        status: u16,
        /// Its `Content-Length`, when it sent one that parses.
        content_length: Option<u64>,
        /// [`policy::storable`] for this response.
        storable: Result<Freshness, NoStore>,
    },
}

/// The stored copy the request holds while revalidating (`None` on a plain miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Nothing stored: a miss, no conditional request was sent.
    Nothing,
    /// A stale copy whose stale-if-error window is over (or that forbids stale use).
    Stale,
    /// A stale copy that may still be served on error
    /// ([`policy::stale_if_error_ok`]).
    StaleUsableOnError,
}

impl Held {
    /// The state of `stale` (the copy being revalidated, if any) at `now`.
    pub fn of(stale: Option<&ObjectMeta>, now: u64) -> Held {
        let Some(m) = stale else {
            return Held::Nothing;
        };
        let age = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now);
        if policy::stale_if_error_ok(&m.freshness, age) {
            Held::StaleUsableOnError
        } else {
            Held::Stale
        }
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterOrigin {
    /// 304 to our conditional request: refresh the stored headers and freshness, serve them.
    Refresh,
    /// Serve the stale copy (stale-if-error); `origin_status` is the 5xx that caused it, `None`
    /// for a failure without a response.
    ServeStale {
        /// The origin's 5xx status, if it answered.
        origin_status: Option<u16>,
    },
    /// Answer the failure as an error.
    Fail,
    /// Store the response (chunks, then meta) while streaming it.
    Store(Freshness),
    /// Stream the response without storing it, for this reason.
    Stream(NoStore),
}

impl AfterOrigin {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AfterOrigin::Refresh => "refresh",
            AfterOrigin::ServeStale { .. } => "stale-if-error",
            AfterOrigin::Fail => "error",
            AfterOrigin::Store(_) => "store",
            AfterOrigin::Stream(_) => "no-store",
        }
    }
}

/// Decide (RFC 9111 §4.3.4 for 304; RFC 5861 §4 stale-if-error for errors and 5xx answers;
/// RFC 9111 §3 via `storable`; `max_object_size` for a declared length above it).
pub fn after_origin(reply: Reply, held: Held, max_object_size: u64) -> AfterOrigin {
    let usable = held == Held::StaleUsableOnError;
    match reply {
        Reply::Failed { stale_allowed } if stale_allowed && usable => AfterOrigin::ServeStale {
            origin_status: None,
        },
        Reply::Failed { .. } => AfterOrigin::Fail,
        Reply::Head { status: 304, .. } if held != Held::Nothing => AfterOrigin::Refresh,
        Reply::Head { status, .. } if status >= 500 && usable => AfterOrigin::ServeStale {
            origin_status: Some(status),
        },
        Reply::Head {
            storable: Err(reason),
            ..
        } => AfterOrigin::Stream(reason),
        Reply::Head {
            content_length: Some(len),
            ..
        } if len > max_object_size => AfterOrigin::Stream(NoStore::TooLarge),
        Reply::Head {
            storable: Ok(fr), ..
        } => AfterOrigin::Store(fr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::FreshnessSource;

    const FR: Freshness = Freshness {
        lifetime_ms: 60_000,
        source: FreshnessSource::MaxAge,
        swr_ms: 0,
        sie_ms: 0,
        no_cache: false,
        forbid_stale: false,
    };
    const MAX: u64 = 1000;

    fn head(status: u16, len: Option<u64>, storable: Result<Freshness, NoStore>) -> Reply {
        Reply::Head {
            status,
            content_length: len,
            storable,
        }
    }

    const ALL_HELD: [Held; 3] = [Held::Nothing, Held::Stale, Held::StaleUsableOnError];

    #[test]
    fn not_modified_refreshes_only_what_is_held() {
        for held in [Held::Stale, Held::StaleUsableOnError] {
            assert_eq!(
                after_origin(head(304, None, Err(NoStore::Status)), held, MAX),
                AfterOrigin::Refresh
            );
        }
        // No conditional was sent: a 304 is just a response that is not stored.
        assert_eq!(
            after_origin(head(304, None, Err(NoStore::Status)), Held::Nothing, MAX),
            AfterOrigin::Stream(NoStore::Status)
        );
    }

    #[test]
    fn stale_if_error_needs_a_usable_copy_and_a_staleable_failure() {
        let failed = |stale_allowed| Reply::Failed { stale_allowed };
        assert_eq!(
            after_origin(failed(true), Held::StaleUsableOnError, MAX),
            AfterOrigin::ServeStale {
                origin_status: None
            }
        );
        assert_eq!(
            after_origin(failed(false), Held::StaleUsableOnError, MAX),
            AfterOrigin::Fail
        );
        for held in [Held::Nothing, Held::Stale] {
            assert_eq!(after_origin(failed(true), held, MAX), AfterOrigin::Fail);
        }
        for status in [500, 502, 503, 504, 599] {
            assert_eq!(
                after_origin(
                    head(status, None, Err(NoStore::Status)),
                    Held::StaleUsableOnError,
                    MAX
                ),
                AfterOrigin::ServeStale {
                    origin_status: Some(status)
                }
            );
            // Without a usable copy the 5xx goes to the client, unstored.
            assert_eq!(
                after_origin(head(status, None, Err(NoStore::Status)), Held::Stale, MAX),
                AfterOrigin::Stream(NoStore::Status)
            );
        }
        // A 4xx is an answer, not an error: it replaces the stale copy when storable.
        assert_eq!(
            after_origin(head(404, None, Ok(FR)), Held::StaleUsableOnError, MAX),
            AfterOrigin::Store(FR)
        );
    }

    #[test]
    fn storable_responses_are_stored_unless_too_large() {
        for held in ALL_HELD {
            assert_eq!(
                after_origin(head(200, Some(MAX), Ok(FR)), held, MAX),
                AfterOrigin::Store(FR)
            );
            assert_eq!(
                after_origin(head(200, None, Ok(FR)), held, MAX),
                AfterOrigin::Store(FR),
                "unknown length: the writer enforces the limit as bytes arrive"
            );
            assert_eq!(
                after_origin(head(200, Some(MAX + 1), Ok(FR)), held, MAX),
                AfterOrigin::Stream(NoStore::TooLarge)
            );
            // The policy's reason wins over the size.
            assert_eq!(
                after_origin(head(200, Some(MAX + 1), Err(NoStore::Private)), held, MAX),
                AfterOrigin::Stream(NoStore::Private)
            );
        }
    }

    #[test]
    fn labels() {
        assert_eq!(AfterOrigin::Refresh.as_str(), "refresh");
        assert_eq!(
            AfterOrigin::ServeStale {
                origin_status: None
            }
            .as_str(),
            "stale-if-error"
        );
        assert_eq!(AfterOrigin::Fail.as_str(), "error");
        assert_eq!(AfterOrigin::Store(FR).as_str(), "store");
        assert_eq!(AfterOrigin::Stream(NoStore::TooLarge).as_str(), "no-store");
    }
}
