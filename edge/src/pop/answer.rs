//! What an owner adds to its answer to a peer (or a shield's to an edge of another region),
//! beyond what clients see: the stored object's purge tags (clients never see them, but the
//! member keeping a copy must index them so tag purges reach it) and, when the freshness came
//! from `Surrogate-Control` (which clients never see either), a `Surrogate-Control` giving
//! the same lifetime. Everything else the receiver needs (`Age`, `Cache-Control`,
//! `CDN-Cache-Control`, validators) is already in the answer. Pure.

use actix_web::http::header::{HeaderName, HeaderValue};

use crate::cache::policy::{Freshness, FreshnessSource, SURROGATE_CONTROL};
use crate::headers::{CACHE_TAG, SURROGATE_KEY};

/// The extra headers for a peer: `Surrogate-Key` for tags without whitespace (they may hold
/// commas), `Cache-Tag` for the others (they came from `Cache-Tag`, so hold no commas), and
/// `Surrogate-Control` when `fr` came from it.
pub fn peer_headers(tags: &[String], fr: &Freshness) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let (plain, spaced): (Vec<&String>, Vec<&String>) =
        tags.iter().partition(|t| !t.contains(char::is_whitespace));
    let join =
        |v: &[&String], sep: &str| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(sep);
    if !plain.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&join(&plain, " ")) {
            out.push((SURROGATE_KEY, v));
        }
    }
    if !spaced.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&join(&spaced, ", ")) {
            out.push((CACHE_TAG, v));
        }
    }
    if fr.source == FreshnessSource::SurrogateControl {
        let mut s = format!("max-age={}", fr.lifetime_ms / 1000);
        if fr.swr_ms > 0 {
            s.push_str(&format!(", stale-while-revalidate={}", fr.swr_ms / 1000));
        }
        if fr.sie_ms > 0 {
            s.push_str(&format!(", stale-if-error={}", fr.sie_ms / 1000));
        }
        if fr.no_cache {
            s.push_str(", no-cache");
        }
        if fr.forbid_stale {
            s.push_str(", must-revalidate");
        }
        if let Ok(v) = HeaderValue::from_str(&s) {
            out.push((SURROGATE_CONTROL, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{self, HostPolicy, ResponseFacts};
    use crate::headers::purge_tags;
    use actix_web::http::header::HeaderMap;

    fn fr(source: FreshnessSource) -> Freshness {
        Freshness {
            lifetime_ms: 60_000,
            source,
            swr_ms: 5_000,
            sie_ms: 0,
            no_cache: false,
            forbid_stale: false,
        }
    }

    fn map(h: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in h {
            m.append(n, v);
        }
        m
    }

    #[test]
    fn tags_round_trip_through_the_receivers_parser() {
        let tags: Vec<String> = ["a,b", "plain", "with space", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let h = map(peer_headers(&tags, &fr(FreshnessSource::MaxAge)));
        assert_eq!(purge_tags(&h), tags);
        assert!(h.get(SURROGATE_CONTROL).is_none());
        assert!(peer_headers(&[], &fr(FreshnessSource::MaxAge)).is_empty());
    }

    #[test]
    fn surrogate_freshness_round_trips() {
        let f = fr(FreshnessSource::SurrogateControl);
        let h = map(peer_headers(&[], &f));
        let got = policy::freshness(&ResponseFacts::parse(&h), &HostPolicy::default());
        assert_eq!(got.lifetime_ms, f.lifetime_ms);
        assert_eq!(got.source, FreshnessSource::SurrogateControl);
        assert_eq!(got.swr_ms, f.swr_ms);
        let strict = Freshness {
            no_cache: true,
            forbid_stale: true,
            ..f
        };
        let h = map(peer_headers(&[], &strict));
        let got = policy::freshness(&ResponseFacts::parse(&h), &HostPolicy::default());
        assert!(got.no_cache && got.forbid_stale);
    }
}
