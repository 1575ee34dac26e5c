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

/// The freshness of a stored object refreshed by a 304: `computed` from the merged headers,
/// except that a lifetime the stored response took from `Surrogate-Control` (a header the edge
/// uses but does not store) still holds when the 304 carries none and nothing stronger
/// (`CDN-Cache-Control`) came with it: the stored field is unchanged by such a 304.
pub(crate) fn refreshed_freshness(
    old: &crate::cache::policy::Freshness,
    computed: crate::cache::policy::Freshness,
    has_surrogate: bool,
) -> crate::cache::policy::Freshness {
    use crate::cache::policy::FreshnessSource as S;
    if !has_surrogate && old.source == S::SurrogateControl && computed.source != S::CdnCacheControl
    {
        return crate::cache::policy::Freshness {
            lifetime_ms: old.lifetime_ms,
            source: S::SurrogateControl,
            ..computed
        };
    }
    computed
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
    fn a_304_without_surrogate_control_keeps_the_lifetime_it_gave() {
        use crate::cache::policy::{Freshness, FreshnessSource as S};
        let f = |lifetime_ms, source| Freshness {
            lifetime_ms,
            source,
            swr_ms: 0,
            sie_ms: 0,
            no_cache: false,
            forbid_stale: false,
        };
        let old = f(60_000, S::SurrogateControl);
        // `Cache-Control: max-age=0` + a stored `Surrogate-Control: max-age=60`.
        assert_eq!(
            refreshed_freshness(&old, f(0, S::MaxAge), false),
            f(60_000, S::SurrogateControl)
        );
        // The 304 sends its own Surrogate-Control, or a CDN-Cache-Control: that one rules.
        assert_eq!(
            refreshed_freshness(&old, f(5_000, S::SurrogateControl), true),
            f(5_000, S::SurrogateControl)
        );
        assert_eq!(
            refreshed_freshness(&old, f(9_000, S::CdnCacheControl), false),
            f(9_000, S::CdnCacheControl)
        );
        // A lifetime from Cache-Control is recomputed as before.
        assert_eq!(
            refreshed_freshness(&f(60_000, S::MaxAge), f(0, S::MaxAge), false),
            f(0, S::MaxAge)
        );
    }

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
