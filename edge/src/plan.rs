//! Pure decisions for one request: what to do with the lookup result ([`plan`]), whether a
//! client's conditional request is answered with 304 ([`not_modified`]), and which bytes a
//! `Range` asks for ([`range`], with `If-Range`).

use actix_web::http::header::{self, HeaderMap, HeaderValue};

use crate::cache::policy::Class;
use crate::headers::Fwd;

/// What the lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing under the URI.
    Miss,
    /// The URI varies, and this variant is not stored.
    VaryMiss,
    /// A stored object in this class.
    Found(Class),
}

/// The plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Serve the stored object.
    Hit,
    /// Serve the stored object, refresh in the background.
    ServeStaleAndRefresh,
    /// Revalidate (conditional fill); stale may be served if the origin fails.
    Revalidate,
    /// Fill from the origin.
    Fill(Fwd),
}

impl Plan {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Hit => "hit",
            Plan::ServeStaleAndRefresh => "stale-while-revalidate",
            Plan::Revalidate => "revalidate",
            Plan::Fill(Fwd::VaryMiss) => "fill-vary-miss",
            Plan::Fill(_) => "fill",
        }
    }
}

/// Decide.
pub fn plan(lookup: Lookup) -> Plan {
    match lookup {
        Lookup::Miss => Plan::Fill(Fwd::UriMiss),
        Lookup::VaryMiss => Plan::Fill(Fwd::VaryMiss),
        Lookup::Found(Class::Fresh) => Plan::Hit,
        Lookup::Found(Class::StaleWhileRevalidate) => Plan::ServeStaleAndRefresh,
        Lookup::Found(Class::Revalidate) => Plan::Revalidate,
    }
}

/// An `If-Match` / `If-None-Match` list (RFC 9110 §8.8.3: `*`, or `[W/]"opaque"` separated by
/// commas, which may also appear inside the quotes): `(true, [])` for `*`, else `(false,
/// tags)` with each tag as (weak, opaque with its quotes). `None` when malformed (the
/// condition is then ignored).
fn tag_list(s: &str) -> Option<(bool, Vec<(bool, &str)>)> {
    if s.trim() == "*" {
        return Some((true, Vec::new()));
    }
    let mut tags = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let weak = rest.starts_with("W/");
        if weak {
            rest = &rest[2..];
        }
        if !rest.starts_with('"') {
            return None;
        }
        let close = rest[1..].find('"')? + 2;
        tags.push((weak, &rest[..close]));
        rest = &rest[close..];
        if tags.len() > 64 {
            return None;
        }
    }
    (!tags.is_empty()).then_some((false, tags))
}

/// A stored `ETag` as (weak, opaque with its quotes).
fn stored_tag(etag: &HeaderValue) -> Option<(bool, &str)> {
    match tag_list(etag.to_str().ok()?)? {
        (false, tags) if tags.len() == 1 => Some(tags[0]),
        _ => None,
    }
}

/// RFC 9110 §13.2.2 steps 1–2, for a GET/HEAD of a stored 200: `If-Match` (strong comparison;
/// `*` matches) or, without it, `If-Unmodified-Since` against the stored `Last-Modified`. True:
/// answer 412 Precondition Failed (a download resumed against an older copy must not get bytes
/// of the new one). A malformed field, or no validator to compare, is ignored.
pub fn precondition_failed(
    req: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    if let Some(im) = req.get(header::IF_MATCH) {
        let Some((any, tags)) = im.to_str().ok().and_then(tag_list) else {
            return false;
        };
        if any {
            return false;
        }
        let held = etag.and_then(stored_tag).filter(|(weak, _)| !weak);
        return !held.is_some_and(|(_, e)| tags.iter().any(|&(weak, t)| !weak && t == e));
    }
    if let (Some(ius), Some(lm)) = (req.get(header::IF_UNMODIFIED_SINCE), last_modified) {
        let parse = |v: &HeaderValue| v.to_str().ok().and_then(crate::cache::fields::http_date_ms);
        if let (Some(ius), Some(lm)) = (parse(ius), parse(lm)) {
            return lm > ius;
        }
    }
    false
}

/// RFC 9110 §13.2.2: answer a GET/HEAD for a stored 200 with 304? `If-None-Match` (weak
/// comparison) takes precedence over `If-Modified-Since`.
pub fn not_modified(
    req: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Some((any, tags)) = inm.to_str().ok().and_then(tag_list) else {
            return false;
        };
        // `*`: the stored 200 is a current representation.
        if any {
            return true;
        }
        let Some((_, e)) = etag.and_then(stored_tag) else {
            return false;
        };
        return tags.iter().any(|&(_, t)| t == e);
    }
    if let (Some(ims), Some(lm)) = (req.get(header::IF_MODIFIED_SINCE), last_modified) {
        let parse = |v: &HeaderValue| v.to_str().ok().and_then(crate::cache::fields::http_date_ms);
        if let (Some(ims), Some(lm)) = (parse(ims), parse(lm)) {
            return lm <= ims;
        }
    }
    false
}

/// Which bytes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangePlan {
    /// The whole body (no Range, an ignored Range, or If-Range not matching).
    Full,
    /// Bytes `[start, end)` (206).
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Evaluate `Range` (single `bytes=` ranges; multi-range requests get the full body) and
/// `If-Range` (strong ETag or exact Last-Modified) against a body of `len` bytes.
pub fn range(
    req: &HeaderMap,
    len: u64,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> RangePlan {
    let Some(r) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangePlan::Full;
    };
    if let Some(ir) = req.get(header::IF_RANGE) {
        let ir = ir.as_bytes();
        let ok = if ir.starts_with(b"\"") {
            etag.is_some_and(|e| e.as_bytes() == ir)
        } else {
            last_modified.is_some_and(|lm| lm.as_bytes() == ir)
        };
        if !ok {
            return RangePlan::Full;
        }
    }
    // The range unit is case-insensitive (RFC 9110 §14.1).
    let r = r.trim();
    let Some(spec) = r
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| &r[6..])
    else {
        return RangePlan::Full;
    };
    if spec.contains(',') {
        return RangePlan::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangePlan::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangePlan::Full;
        };
        if n == 0 || len == 0 {
            return RangePlan::Unsatisfiable;
        }
        return RangePlan::Partial(len.saturating_sub(n), len);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangePlan::Full;
    };
    let end = if b.is_empty() {
        len
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.saturating_add(1).min(len),
            _ => return RangePlan::Full,
        }
    };
    if start >= len {
        return RangePlan::Unsatisfiable;
    }
    RangePlan::Partial(start, end)
}

/// The in-memory span of `[start, end)` over a body of `len` bytes, clamped so it can always
/// be sliced: `start <= end <= len`, whatever the inputs (they come from `Range`).
pub fn span(start: u64, end: u64, len: usize) -> std::ops::Range<usize> {
    let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).min(len);
    let e = clamp(end);
    clamp(start).min(e)..e
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;
    use proptest::prelude::*;

    proptest! {
        /// Any `Range` value against any length: a partial answer is a non-empty span inside
        /// the body, and slicing it never panics.
        #[test]
        fn range_is_always_inside_the_body(v in "[ -~]{0,40}", len in 0u64..1_000_000) {
            check_range(&v, len)?;
        }

        #[test]
        fn byte_ranges_with_any_numbers(
            a in any::<u64>(), b in any::<u64>(), len in any::<u64>(),
            form in 0u8..4, extra in any::<u64>(),
        ) {
            let v = match form {
                0 => format!("bytes={a}-{b}"),
                1 => format!("bytes={a}-"),
                2 => format!("bytes=-{b}"),
                _ => format!("bytes={a}-{b}, {extra}-"),
            };
            check_range(&v, len)?;
            if form == 2 && b > 0 && len > 0 {
                prop_assert_eq!(
                    range(&h(&[("range", &v)]), len, None, None),
                    RangePlan::Partial(len.saturating_sub(b), len)
                );
            }
        }

        /// Any `If-Match` / `If-None-Match` value and stored ETag: the conditionals never
        /// panic, and a tag list round-trips its own tags.
        #[test]
        fn conditionals_on_any_entity_tags(list in "[ -~]{0,60}", etag in "[ -~]{0,20}") {
            if let (Ok(l), Ok(e)) = (HeaderValue::from_str(&list), HeaderValue::from_str(&etag)) {
                let mut m = HeaderMap::new();
                m.insert(header::IF_MATCH, l.clone());
                m.insert(header::IF_NONE_MATCH, l);
                let _ = precondition_failed(&m, Some(&e), Some(&e));
                let _ = not_modified(&m, Some(&e), Some(&e));
            }
            if let Some((false, tags)) = tag_list(&list) {
                prop_assert!(!tags.is_empty() && tags.len() <= 65);
                for (_, t) in tags {
                    prop_assert!(t.len() >= 2 && t.starts_with('"') && t.ends_with('"'));
                }
            }
        }

        #[test]
        fn span_is_sliceable(a in any::<u64>(), e in any::<u64>(), len in 0usize..10_000) {
            let r = span(a, e, len);
            prop_assert!(r.start <= r.end && r.end <= len);
            let body = vec![0u8; len];
            prop_assert_eq!(body[r.clone()].len(), r.end - r.start);
        }
    }

    fn check_range(v: &str, len: u64) -> Result<(), TestCaseError> {
        let Ok(hv) = HeaderValue::from_str(v) else {
            return Ok(());
        };
        let mut m = HeaderMap::new();
        m.insert(header::RANGE, hv);
        match range(&m, len, None, None) {
            RangePlan::Partial(a, b) => {
                prop_assert!(a < b && b <= len, "{v:?} len {len}: {a}..{b}");
            }
            RangePlan::Unsatisfiable => {}
            RangePlan::Full => {}
        }
        Ok(())
    }

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn plans() {
        assert_eq!(plan(Lookup::Miss), Plan::Fill(Fwd::UriMiss));
        assert_eq!(plan(Lookup::VaryMiss), Plan::Fill(Fwd::VaryMiss));
        assert_eq!(plan(Lookup::Found(Class::Fresh)), Plan::Hit);
        assert_eq!(
            plan(Lookup::Found(Class::StaleWhileRevalidate)),
            Plan::ServeStaleAndRefresh
        );
        assert_eq!(plan(Lookup::Found(Class::Revalidate)), Plan::Revalidate);
    }

    #[test]
    fn preconditions() {
        let etag = HeaderValue::from_static("\"v1\"");
        let weak = HeaderValue::from_static("W/\"v1\"");
        let lm = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        let failed = |pairs: &[(&str, &str)], e: Option<&HeaderValue>| {
            precondition_failed(&h(pairs), e, Some(&lm))
        };
        // If-Match: strong comparison; `*` and a listed tag pass.
        assert!(!failed(&[("if-match", "\"v1\"")], Some(&etag)));
        assert!(!failed(&[("if-match", "\"x\", \"v1\"")], Some(&etag)));
        assert!(!failed(&[("if-match", "*")], Some(&etag)));
        assert!(failed(&[("if-match", "\"v2\"")], Some(&etag)));
        assert!(failed(&[("if-match", "W/\"v1\"")], Some(&etag)));
        assert!(failed(&[("if-match", "\"v1\"")], Some(&weak)));
        assert!(failed(&[("if-match", "\"v1\"")], None));
        // A comma inside an entity-tag is part of it.
        let odd = HeaderValue::from_static("\"a,b\"");
        assert!(!failed(&[("if-match", "\"a,b\"")], Some(&odd)));
        assert!(failed(&[("if-match", "\"a\"")], Some(&odd)));
        // Malformed: ignored.
        assert!(!failed(&[("if-match", "v1")], Some(&etag)));
        // If-Unmodified-Since: only without If-Match, only with a Last-Modified.
        assert!(!failed(
            &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
            None
        ));
        assert!(!failed(
            &[("if-unmodified-since", "Mon, 07 Nov 1994 08:49:37 GMT")],
            None
        ));
        assert!(failed(
            &[("if-unmodified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
            None
        ));
        assert!(!failed(&[("if-unmodified-since", "yesterday")], None));
        assert!(!precondition_failed(
            &h(&[("if-unmodified-since", "Sat, 05 Nov 1994 08:49:37 GMT")]),
            None,
            None
        ));
        assert!(!failed(
            &[
                ("if-match", "\"v1\""),
                ("if-unmodified-since", "Sat, 05 Nov 1994 08:49:37 GMT")
            ],
            Some(&etag)
        ));
        // If-None-Match `*` matches a stored 200 with or without an ETag.
        assert!(not_modified(&h(&[("if-none-match", "*")]), None, None));
        assert!(!not_modified(
            &h(&[("if-none-match", "\"a\"")]),
            Some(&odd),
            None
        ));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\", W/\"a,b\"")]),
            Some(&odd),
            None
        ));
    }

    #[test]
    fn conditionals() {
        let etag = HeaderValue::from_static("\"v1\"");
        let lm = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(not_modified(
            &h(&[("if-none-match", "\"v1\"")]),
            Some(&etag),
            None
        ));
        assert!(not_modified(
            &h(&[("if-none-match", "W/\"v1\", \"x\"")]),
            Some(&etag),
            None
        ));
        assert!(not_modified(
            &h(&[("if-none-match", "*")]),
            Some(&etag),
            None
        ));
        assert!(!not_modified(
            &h(&[("if-none-match", "\"v2\"")]),
            Some(&etag),
            Some(&lm)
        ));
        // INM present → IMS ignored.
        assert!(!not_modified(
            &h(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            Some(&etag),
            Some(&lm)
        ));
        assert!(not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            None,
            Some(&lm)
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT")]),
            None,
            Some(&lm)
        ));
        assert!(!not_modified(&h(&[]), Some(&etag), Some(&lm)));
    }

    #[test]
    fn ranges() {
        let r = |v: &str| range(&h(&[("range", v)]), 100, None, None);
        assert_eq!(r("bytes=0-9"), RangePlan::Partial(0, 10));
        assert_eq!(r("bytes=90-"), RangePlan::Partial(90, 100));
        assert_eq!(r("bytes=-10"), RangePlan::Partial(90, 100));
        assert_eq!(r("bytes=-1000"), RangePlan::Partial(0, 100));
        assert_eq!(r("bytes=50-1000"), RangePlan::Partial(50, 100));
        assert_eq!(r("bytes=100-"), RangePlan::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangePlan::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), RangePlan::Full);
        assert_eq!(r("items=0-1"), RangePlan::Full);
        assert_eq!(r("Bytes=0-1"), RangePlan::Partial(0, 2));
        assert_eq!(
            r("bytes=1-18446744073709551615"),
            RangePlan::Partial(1, 100)
        );
        assert_eq!(r("bytes=18446744073709551615-"), RangePlan::Unsatisfiable);
        assert_eq!(r("bytes=-18446744073709551615"), RangePlan::Partial(0, 100));
        assert_eq!(r("bytes=5-1"), RangePlan::Full);
        assert_eq!(range(&h(&[]), 100, None, None), RangePlan::Full);
        // A last-byte position at u64::MAX (from the network) must not overflow.
        assert_eq!(
            r("bytes=5-18446744073709551615"),
            RangePlan::Partial(5, 100)
        );
        assert_eq!(r("bytes=5-18446744073709551616"), RangePlan::Full);
    }

    #[test]
    fn if_range() {
        let etag = HeaderValue::from_static("\"v1\"");
        let lm = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        let req = h(&[("range", "bytes=0-0"), ("if-range", "\"v1\"")]);
        assert_eq!(range(&req, 10, Some(&etag), None), RangePlan::Partial(0, 1));
        let req = h(&[("range", "bytes=0-0"), ("if-range", "\"v0\"")]);
        assert_eq!(range(&req, 10, Some(&etag), None), RangePlan::Full);
        let req = h(&[
            ("range", "bytes=0-0"),
            ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert_eq!(range(&req, 10, None, Some(&lm)), RangePlan::Partial(0, 1));
    }
}
