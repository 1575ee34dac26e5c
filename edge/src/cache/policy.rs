//! RFC 9111 decisions as pure functions: may a response be stored ([`storable`]), for how
//! long is it fresh ([`freshness`]), how old is it ([`current_age_ms`]), and what to do with
//! a stored entry now ([`classify`]). `now` is always passed in.
//!
//! Freshness sources in precedence order: `CDN-Cache-Control` (RFC 9213) → `Surrogate-Control`
//! → `s-maxage` → `max-age` → `Expires` → heuristic (a fraction of `Date − Last-Modified`,
//! capped) → the host's `default_ttl`.

use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::http::Method;

/// Parsed cache directives of one header (`Cache-Control`, `CDN-Cache-Control`,
/// `Surrogate-Control`). Unknown directives are ignored; a malformed number disables its
/// directive (RFC 9111 §4.2.1: treat invalid freshness as stale → we treat it as absent,
/// except `max-age` which then forces staleness via `invalid_max_age`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `max-age=N` seconds.
    pub max_age: Option<u64>,
    /// `s-maxage=N` seconds.
    pub s_maxage: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names: we treat both as "always revalidate").
    pub no_cache: bool,
    /// `private` (with or without field names: never stored by a shared cache).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `stale-while-revalidate=N` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// A `max-age` that was present but not a valid number.
    pub invalid_max_age: bool,
    /// Any directive at all was present.
    pub present: bool,
}

impl Directives {
    /// Parse every value of header `name` in `headers` (comma-separated, case-insensitive
    /// names, optional `=value` possibly quoted).
    pub fn parse(headers: &HeaderMap, name: &HeaderName) -> Self {
        let mut d = Directives::default();
        for v in headers.get_all(name) {
            if let Ok(s) = v.to_str() {
                d.parse_str(s);
            }
        }
        d
    }

    /// Parse `CDN-Cache-Control` (RFC 9213 §2.1): every field line must be a valid Structured
    /// Fields dictionary, or the whole field is ignored (`max-age=10000, &&&&&`). Directives
    /// whose value has the wrong type are ignored (`max-age="10000"`, `no-store=5`).
    pub fn parse_structured(headers: &HeaderMap, name: &HeaderName) -> Self {
        use super::fields::{sf_dictionary, SfItem};
        let mut d = Directives::default();
        for v in headers.get_all(name) {
            let Some(members) = v.to_str().ok().and_then(sf_dictionary) else {
                return Directives::default();
            };
            for (key, item) in members {
                d.present = true;
                let secs = match item {
                    SfItem::Integer(n) => u64::try_from(n).ok(),
                    _ => None,
                };
                let flag = item == SfItem::Boolean(true);
                match key {
                    "max-age" => d.max_age = secs.or(d.max_age),
                    "s-maxage" => d.s_maxage = secs.or(d.s_maxage),
                    "stale-while-revalidate" => d.stale_while_revalidate = secs,
                    "stale-if-error" => d.stale_if_error = secs,
                    "no-store" => d.no_store |= flag,
                    "no-cache" => d.no_cache |= flag,
                    "private" => d.private |= flag,
                    "public" => d.public |= flag,
                    "must-revalidate" => d.must_revalidate |= flag,
                    "proxy-revalidate" => d.proxy_revalidate |= flag,
                    _ => {}
                }
            }
        }
        d
    }

    /// Parse one header value into `self` (cumulative).
    pub fn parse_str(&mut self, s: &str) {
        for item in split_list(s) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (item.trim(), None),
            };
            if name.is_empty() {
                continue;
            }
            self.present = true;
            let num = || value.and_then(|v| v.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "max-age" => match num() {
                    Some(n) => self.max_age = Some(self.max_age.map_or(n, |o| o.min(n))),
                    None => self.invalid_max_age = true,
                },
                "s-maxage" => {
                    if let Some(n) = num() {
                        self.s_maxage = Some(self.s_maxage.map_or(n, |o| o.min(n)));
                    }
                }
                "no-store" => self.no_store = true,
                "no-cache" => self.no_cache = true,
                "private" => self.private = true,
                "public" => self.public = true,
                "must-revalidate" => self.must_revalidate = true,
                "proxy-revalidate" => self.proxy_revalidate = true,
                "stale-while-revalidate" => self.stale_while_revalidate = num(),
                "stale-if-error" => self.stale_if_error = num(),
                _ => {}
            }
        }
    }
}

/// Split a comma list, respecting double quotes (`no-cache="a, b"`).
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// Why a response is not stored (metric label / `Cache-Status` detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStore {
    /// Request method is not GET/HEAD.
    Method,
    /// Status code not cacheable by default.
    Status,
    /// `no-store`.
    NoStoreDirective,
    /// `private`.
    Private,
    /// Request had Authorization and the response did not allow sharing.
    Authorization,
    /// Response sets a cookie and the host does not allow caching those.
    SetCookie,
    /// `Vary: *`.
    VaryStar,
    /// No explicit or heuristic freshness and no default TTL.
    NoFreshness,
    /// Larger than the maximum object size.
    TooLarge,
    /// Partial content answered to a request that did not ask for a range.
    Partial,
}

impl NoStore {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NoStore::Method => "method",
            NoStore::Status => "status",
            NoStore::NoStoreDirective => "no-store",
            NoStore::Private => "private",
            NoStore::Authorization => "authorization",
            NoStore::SetCookie => "set-cookie",
            NoStore::VaryStar => "vary-star",
            NoStore::NoFreshness => "no-freshness",
            NoStore::TooLarge => "too-large",
            NoStore::Partial => "partial",
        }
    }
}

/// Status codes cacheable by default (RFC 9110 §15.1, "heuristically cacheable").
pub fn status_cacheable_by_default(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The cache-relevant facts of one origin response, parsed once.
#[derive(Debug, Clone, Default)]
pub struct ResponseFacts {
    /// `CDN-Cache-Control` (RFC 9213); when present it replaces `Cache-Control` for us.
    pub cdn: Directives,
    /// `Surrogate-Control` (only `max-age`, `no-store` are honoured).
    pub surrogate: Directives,
    /// `Cache-Control`.
    pub cc: Directives,
    /// `Expires` in Unix ms (`Some(0)` for an invalid date: already expired).
    pub expires_ms: Option<u64>,
    /// `Date` in Unix ms.
    pub date_ms: Option<u64>,
    /// `Last-Modified` in Unix ms.
    pub last_modified_ms: Option<u64>,
    /// `Age` in seconds.
    pub age_s: u64,
    /// Has `Set-Cookie`.
    pub set_cookie: bool,
    /// `Vary: *`.
    pub vary_star: bool,
    /// Lower-cased `Vary` field names (sorted, deduplicated).
    pub vary: Vec<String>,
}

/// `CDN-Cache-Control`.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Control`.
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

impl ResponseFacts {
    /// Parse the relevant headers.
    pub fn parse(h: &HeaderMap) -> Self {
        use actix_web::http::header;
        let date = |n: &HeaderName| {
            h.get(n).map(|v| {
                v.to_str()
                    .ok()
                    .and_then(super::fields::http_date_ms)
                    .unwrap_or(0)
            })
        };
        let mut vary = Vec::new();
        let mut vary_star = false;
        for v in h.get_all(header::VARY) {
            if let Ok(s) = v.to_str() {
                for f in s.split(',') {
                    let f = f.trim().to_ascii_lowercase();
                    if f == "*" {
                        vary_star = true;
                    } else if !f.is_empty() {
                        vary.push(f);
                    }
                }
            }
        }
        vary.sort();
        vary.dedup();
        ResponseFacts {
            cdn: Directives::parse_structured(h, &CDN_CACHE_CONTROL),
            surrogate: Directives::parse(h, &SURROGATE_CONTROL),
            cc: Directives::parse(h, &header::CACHE_CONTROL),
            expires_ms: date(&header::EXPIRES),
            date_ms: date(&header::DATE).filter(|d| *d > 0),
            last_modified_ms: date(&header::LAST_MODIFIED).filter(|d| *d > 0),
            age_s: h
                .get(header::AGE)
                .and_then(|v| v.to_str().ok())
                .and_then(super::fields::age_s)
                .unwrap_or(0),
            set_cookie: h.contains_key(header::SET_COOKIE),
            vary_star,
            vary,
        }
    }

    /// RFC 9110 §6.6.1: a response without a valid `Date` is dated when it was received
    /// (`now`), so `Expires` counts from then instead of giving no freshness.
    pub fn received_at(mut self, now_ms: u64) -> Self {
        self.date_ms.get_or_insert(now_ms);
        self
    }

    /// The directives that govern us: `CDN-Cache-Control` when present, else
    /// `Surrogate-Control` when present (it targets surrogates and overrides
    /// `Cache-Control`), else `Cache-Control`.
    pub fn governing(&self) -> &Directives {
        if self.cdn.present {
            &self.cdn
        } else if self.surrogate.present {
            &self.surrogate
        } else {
            &self.cc
        }
    }
}

/// Host-level knobs that affect storing and freshness.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostPolicy {
    /// TTL when the origin gives none.
    pub default_ttl_ms: Option<u64>,
    /// Stale window when the origin gives none.
    pub grace_ms: Option<u64>,
    /// Store responses with Set-Cookie (the header itself is never stored).
    pub cache_set_cookie: bool,
    /// Heuristic fraction of `Date − Last-Modified`.
    pub heuristic_fraction: f64,
    /// Heuristic cap.
    pub heuristic_max_ms: u64,
}

/// Where a freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessSource {
    /// `CDN-Cache-Control: max-age`.
    CdnCacheControl,
    /// `Surrogate-Control: max-age`.
    SurrogateControl,
    /// `Cache-Control: s-maxage`.
    SMaxAge,
    /// `Cache-Control: max-age`.
    MaxAge,
    /// `Expires − Date`.
    Expires,
    /// 10 % (configurable) of `Date − Last-Modified`.
    Heuristic,
    /// The host's `default_ttl`.
    DefaultTtl,
    /// Nothing: not storable.
    None,
}

impl FreshnessSource {
    /// Label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FreshnessSource::CdnCacheControl => "cdn-cache-control",
            FreshnessSource::SurrogateControl => "surrogate-control",
            FreshnessSource::SMaxAge => "s-maxage",
            FreshnessSource::MaxAge => "max-age",
            FreshnessSource::Expires => "expires",
            FreshnessSource::Heuristic => "heuristic",
            FreshnessSource::DefaultTtl => "default-ttl",
            FreshnessSource::None => "none",
        }
    }
}

/// Freshness facts stored with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime.
    pub lifetime_ms: u64,
    /// Where it came from.
    pub source: FreshnessSource,
    /// Serve-stale-while-revalidating window after expiry.
    pub swr_ms: u64,
    /// Serve-stale-on-error window after expiry.
    pub sie_ms: u64,
    /// Always revalidate before use (`no-cache`).
    pub no_cache: bool,
    /// Never serve stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
    pub forbid_stale: bool,
}

/// Compute the freshness of a response (RFC 9111 §4.2.1, RFC 9213, RFC 5861).
pub fn freshness(f: &ResponseFacts, host: &HostPolicy) -> Freshness {
    let g = f.governing();
    let s = |n: u64| n.saturating_mul(1000);
    let (lifetime_ms, source) = if f.cdn.present && f.cdn.s_maxage.or(f.cdn.max_age).is_some() {
        (
            s(f.cdn.s_maxage.or(f.cdn.max_age).unwrap_or(0)),
            FreshnessSource::CdnCacheControl,
        )
    } else if let Some(m) = f.surrogate.max_age {
        (s(m), FreshnessSource::SurrogateControl)
    } else if let Some(m) = f.cc.s_maxage {
        (s(m), FreshnessSource::SMaxAge)
    } else if f.cc.invalid_max_age {
        (0, FreshnessSource::MaxAge)
    } else if let Some(m) = f.cc.max_age {
        (s(m), FreshnessSource::MaxAge)
    } else if let Some(exp) = f.expires_ms {
        let date = f.date_ms.unwrap_or(exp);
        (exp.saturating_sub(date), FreshnessSource::Expires)
    } else if let (Some(lm), Some(date)) = (f.last_modified_ms, f.date_ms) {
        let h = (date.saturating_sub(lm) as f64 * host.heuristic_fraction) as u64;
        (h.min(host.heuristic_max_ms), FreshnessSource::Heuristic)
    } else if let Some(ttl) = host.default_ttl_ms {
        (ttl, FreshnessSource::DefaultTtl)
    } else {
        (0, FreshnessSource::None)
    };
    let grace = host.grace_ms.unwrap_or(0);
    let forbid_stale =
        g.must_revalidate || g.proxy_revalidate || (!f.cdn.present && f.cc.s_maxage.is_some());
    Freshness {
        lifetime_ms,
        source,
        swr_ms: g.stale_while_revalidate.map(s).unwrap_or(grace),
        sie_ms: g.stale_if_error.map(s).unwrap_or(grace),
        no_cache: g.no_cache,
        forbid_stale,
    }
}

/// May this response be stored by a shared cache (RFC 9111 §3)?
pub fn storable(
    method: &Method,
    request_has_authorization: bool,
    status: u16,
    f: &ResponseFacts,
    host: &HostPolicy,
) -> Result<Freshness, NoStore> {
    if method != Method::GET && method != Method::HEAD {
        return Err(NoStore::Method);
    }
    let g = f.governing();
    if g.no_store || f.surrogate.no_store {
        return Err(NoStore::NoStoreDirective);
    }
    if g.private {
        return Err(NoStore::Private);
    }
    if f.vary_star {
        return Err(NoStore::VaryStar);
    }
    if f.set_cookie && !host.cache_set_cookie {
        return Err(NoStore::SetCookie);
    }
    // §3.5: with Authorization only when must-revalidate, public or s-maxage allow it.
    if request_has_authorization && !(g.public || g.must_revalidate || g.s_maxage.is_some()) {
        return Err(NoStore::Authorization);
    }
    let explicit = g.max_age.is_some()
        || g.s_maxage.is_some()
        || f.surrogate.max_age.is_some()
        || f.expires_ms.is_some()
        || g.public
        || g.no_cache;
    // Server errors are never stored (a CDN must not pin an origin outage), except 501
    // which is cacheable by default.
    if (!status_cacheable_by_default(status) && !explicit) || (status >= 500 && status != 501) {
        return Err(NoStore::Status);
    }
    if status == 206 {
        return Err(NoStore::Partial);
    }
    let fr = freshness(f, host);
    // A response with no freshness at all is only worth storing when it can be
    // revalidated or served stale; without any of those there is nothing to reuse.
    if fr.source == FreshnessSource::None && !g.no_cache {
        return Err(NoStore::NoFreshness);
    }
    Ok(fr)
}

/// Corrected initial age at store time (RFC 9111 §4.2.3), in ms.
pub fn initial_age_ms(f: &ResponseFacts, request_time_ms: u64, response_time_ms: u64) -> u64 {
    let apparent = f
        .date_ms
        .map(|d| response_time_ms.saturating_sub(d))
        .unwrap_or(0);
    let delay = response_time_ms.saturating_sub(request_time_ms);
    let corrected_age_value = f.age_s.saturating_mul(1000).saturating_add(delay);
    apparent.max(corrected_age_value)
}

/// Current age of a stored entry.
pub fn current_age_ms(initial_age_ms: u64, response_time_ms: u64, now_ms: u64) -> u64 {
    initial_age_ms.saturating_add(now_ms.saturating_sub(response_time_ms))
}

/// What a stored entry is good for right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Serve as is.
    Fresh,
    /// Stale, inside stale-while-revalidate: serve and refresh in the background.
    StaleWhileRevalidate,
    /// Must be revalidated with the origin before use (stale, `no-cache`, or purged softly);
    /// may still be served if the origin fails and `stale_if_error` allows.
    Revalidate,
}

impl Class {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Fresh => "fresh",
            Class::StaleWhileRevalidate => "stale-while-revalidate",
            Class::Revalidate => "revalidate",
        }
    }
}

/// Classify an entry of age `age_ms` with freshness `fr`; `invalidated` is a soft purge.
pub fn classify(fr: &Freshness, age_ms: u64, invalidated: bool) -> Class {
    if fr.no_cache || invalidated {
        return Class::Revalidate;
    }
    if age_ms < fr.lifetime_ms {
        return Class::Fresh;
    }
    if !fr.forbid_stale && age_ms < fr.lifetime_ms.saturating_add(fr.swr_ms) {
        return Class::StaleWhileRevalidate;
    }
    Class::Revalidate
}

/// May a stale entry be served because the origin failed (RFC 5861 `stale-if-error`)?
pub fn stale_if_error_ok(fr: &Freshness, age_ms: u64) -> bool {
    !fr.forbid_stale && age_ms < fr.lifetime_ms.saturating_add(fr.sie_ms)
}

/// Remaining freshness in seconds, rounded (negative when stale), for `Cache-Status: ttl`.
pub fn ttl_s(fr: &Freshness, age_ms: u64) -> i64 {
    (fr.lifetime_ms as i64 - age_ms as i64 + 500).div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderValue, AUTHORIZATION};

    fn facts(pairs: &[(&str, &str)]) -> ResponseFacts {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        ResponseFacts::parse(&h)
    }
    fn host() -> HostPolicy {
        HostPolicy {
            heuristic_fraction: 0.1,
            heuristic_max_ms: 86_400_000,
            ..Default::default()
        }
    }
    fn store(pairs: &[(&str, &str)]) -> Result<Freshness, NoStore> {
        storable(&Method::GET, false, 200, &facts(pairs), &host())
    }

    #[test]
    fn parses_lists_and_quotes() {
        let mut d = Directives::default();
        d.parse_str(r#"public, max-age=60, no-cache="set-cookie, x", S-MAXAGE=30"#);
        assert!(d.public && d.no_cache);
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(30));
        assert!(!d.private);
    }

    #[test]
    fn max_age_gives_lifetime() {
        let f = store(&[("cache-control", "max-age=60")]).unwrap();
        assert_eq!(f.lifetime_ms, 60_000);
        assert_eq!(f.source, FreshnessSource::MaxAge);
        assert!(!f.forbid_stale);
    }

    #[test]
    fn s_maxage_beats_max_age_and_forbids_stale() {
        let f = store(&[("cache-control", "max-age=60, s-maxage=10")]).unwrap();
        assert_eq!(f.lifetime_ms, 10_000);
        assert_eq!(f.source, FreshnessSource::SMaxAge);
        assert!(f.forbid_stale);
    }

    #[test]
    fn cdn_cache_control_beats_everything() {
        let f = store(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=300"),
            ("surrogate-control", "max-age=5"),
        ])
        .unwrap();
        assert_eq!(f.lifetime_ms, 300_000);
        assert_eq!(f.source, FreshnessSource::CdnCacheControl);
        // ... and CDN-Cache-Control: no-store wins over a permissive Cache-Control.
        assert_eq!(
            store(&[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ]),
            Err(NoStore::NoStoreDirective)
        );
    }

    #[test]
    fn surrogate_control_beats_cache_control() {
        let f = store(&[
            ("cache-control", "max-age=60"),
            ("surrogate-control", "max-age=5"),
        ])
        .unwrap();
        assert_eq!(
            (f.lifetime_ms, f.source),
            (5000, FreshnessSource::SurrogateControl)
        );
        assert_eq!(
            store(&[
                ("cache-control", "max-age=60"),
                ("surrogate-control", "no-store")
            ]),
            Err(NoStore::NoStoreDirective)
        );
    }

    #[test]
    fn surrogate_control_overrides_cache_control_no_store() {
        let f = store(&[
            ("cache-control", "no-store, private"),
            ("surrogate-control", "max-age=30"),
        ])
        .unwrap();
        assert_eq!(f.lifetime_ms, 30_000);
    }

    #[test]
    fn expires_minus_date() {
        let f = store(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
        ])
        .unwrap();
        assert_eq!(
            (f.lifetime_ms, f.source),
            (60_000, FreshnessSource::Expires)
        );
        // An invalid Expires means already expired (stored, but stale at once).
        let f = store(&[("expires", "0")]).unwrap();
        assert_eq!(f.lifetime_ms, 0);
    }

    #[test]
    fn heuristic_is_fraction_of_last_modified_age_capped() {
        let f = store(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("last-modified", "Sun, 06 Nov 1994 07:49:37 GMT"),
        ])
        .unwrap();
        assert_eq!(
            (f.lifetime_ms, f.source),
            (360_000, FreshnessSource::Heuristic)
        );
        let mut h = host();
        h.heuristic_max_ms = 1000;
        let f = storable(
            &Method::GET,
            false,
            200,
            &facts(&[
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("last-modified", "Sun, 06 Nov 1994 07:49:37 GMT"),
            ]),
            &h,
        )
        .unwrap();
        assert_eq!(f.lifetime_ms, 1000);
    }

    #[test]
    fn nothing_means_not_stored_unless_default_ttl() {
        assert_eq!(store(&[]), Err(NoStore::NoFreshness));
        let mut h = host();
        h.default_ttl_ms = Some(7000);
        let f = storable(&Method::GET, false, 200, &facts(&[]), &h).unwrap();
        assert_eq!(
            (f.lifetime_ms, f.source),
            (7000, FreshnessSource::DefaultTtl)
        );
    }

    #[test]
    fn no_store_private_vary_star_set_cookie() {
        assert_eq!(
            store(&[("cache-control", "no-store, max-age=60")]),
            Err(NoStore::NoStoreDirective)
        );
        assert_eq!(
            store(&[("cache-control", "private, max-age=60")]),
            Err(NoStore::Private)
        );
        assert_eq!(
            store(&[("cache-control", "private=\"x\", max-age=60")]),
            Err(NoStore::Private)
        );
        assert_eq!(
            store(&[("cache-control", "max-age=60"), ("vary", "*")]),
            Err(NoStore::VaryStar)
        );
        assert_eq!(
            store(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
            Err(NoStore::SetCookie)
        );
        let mut h = host();
        h.cache_set_cookie = true;
        assert!(storable(
            &Method::GET,
            false,
            200,
            &facts(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
            &h
        )
        .is_ok());
    }

    #[test]
    fn no_cache_is_stored_but_always_revalidated() {
        let f = store(&[("cache-control", "no-cache, max-age=60")]).unwrap();
        assert!(f.no_cache);
        assert_eq!(classify(&f, 0, false), Class::Revalidate);
        let f = store(&[("cache-control", "no-cache")]).unwrap();
        assert_eq!(classify(&f, 0, false), Class::Revalidate);
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        let _ = AUTHORIZATION;
        let f = facts(&[("cache-control", "max-age=60")]);
        assert_eq!(
            storable(&Method::GET, true, 200, &f, &host()),
            Err(NoStore::Authorization)
        );
        for ok in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            let f = facts(&[("cache-control", ok)]);
            assert!(
                storable(&Method::GET, true, 200, &f, &host()).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn methods_and_statuses() {
        let f = facts(&[("cache-control", "max-age=60")]);
        assert_eq!(
            storable(&Method::POST, false, 200, &f, &host()),
            Err(NoStore::Method)
        );
        for s in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert!(storable(&Method::GET, false, s, &f, &host()).is_ok(), "{s}");
        }
        let bare = facts(&[("last-modified", "Sun, 06 Nov 1994 07:49:37 GMT")]);
        for s in [302, 307, 500, 502, 503] {
            assert_eq!(
                storable(&Method::GET, false, s, &bare, &host()),
                Err(NoStore::Status),
                "{s}"
            );
        }
        // Explicit freshness makes other statuses storable (§3 "explicit") — but never 5xx.
        assert!(storable(&Method::GET, false, 302, &f, &host()).is_ok());
        assert_eq!(
            storable(&Method::GET, false, 503, &f, &host()),
            Err(NoStore::Status)
        );
        assert_eq!(
            storable(&Method::GET, false, 206, &f, &host()),
            Err(NoStore::Partial)
        );
    }

    #[test]
    fn must_revalidate_and_proxy_revalidate_forbid_stale() {
        for d in ["max-age=1, must-revalidate", "max-age=1, proxy-revalidate"] {
            let mut h = host();
            h.grace_ms = Some(60_000);
            let f = storable(
                &Method::GET,
                false,
                200,
                &facts(&[("cache-control", d)]),
                &h,
            )
            .unwrap();
            assert!(f.forbid_stale);
            assert_eq!(classify(&f, 2000, false), Class::Revalidate);
            assert!(!stale_if_error_ok(&f, 2000));
        }
    }

    #[test]
    fn stale_while_revalidate_and_if_error_windows() {
        let f = store(&[(
            "cache-control",
            "max-age=10, stale-while-revalidate=5, stale-if-error=100",
        )])
        .unwrap();
        assert_eq!(classify(&f, 9_999, false), Class::Fresh);
        assert_eq!(classify(&f, 10_000, false), Class::StaleWhileRevalidate);
        assert_eq!(classify(&f, 15_000, false), Class::Revalidate);
        assert!(stale_if_error_ok(&f, 109_000));
        assert!(!stale_if_error_ok(&f, 110_000));
        // Soft purge forces revalidation but keeps stale-if-error.
        assert_eq!(classify(&f, 0, true), Class::Revalidate);
        assert!(stale_if_error_ok(&f, 0));
    }

    #[test]
    fn grace_applies_when_origin_gives_no_window() {
        let mut h = host();
        h.grace_ms = Some(30_000);
        let f = storable(
            &Method::GET,
            false,
            200,
            &facts(&[("cache-control", "max-age=10")]),
            &h,
        )
        .unwrap();
        assert_eq!((f.swr_ms, f.sie_ms), (30_000, 30_000));
    }

    #[test]
    fn age_is_corrected() {
        let f = facts(&[("age", "5"), ("date", "Thu, 01 Jan 1970 00:00:10 GMT")]);
        // request at 10.0 s, response at 10.5 s, Age: 5 → 5.5 s.
        assert_eq!(initial_age_ms(&f, 10_000, 10_500), 5_500);
        assert_eq!(current_age_ms(5_500, 10_500, 12_500), 7_500);
        // A Date far in the past dominates.
        let f = facts(&[("date", "Thu, 01 Jan 1970 00:00:01 GMT")]);
        assert_eq!(initial_age_ms(&f, 10_000, 10_000), 9_000);
    }

    #[test]
    fn age_uses_the_first_value_and_saturates() {
        assert_eq!(facts(&[("age", "7200, 0")]).age_s, 7200);
        let f = facts(&[
            ("age", "18446744073709551615"),
            ("cache-control", "max-age=60"),
        ]);
        assert_eq!(f.age_s, u64::MAX);
        let age = initial_age_ms(&f, 1_000, 2_000);
        assert_eq!(age, u64::MAX);
        assert_eq!(current_age_ms(age, 2_000, 9_000), u64::MAX);
        let fr = freshness(&f, &host());
        assert_eq!(classify(&fr, age, false), Class::Revalidate);
    }

    #[test]
    fn invalid_cdn_cache_control_is_ignored() {
        for bad in ["max-age=10000, &&&&&", "max-age=\"10000\""] {
            let f = store(&[("cdn-cache-control", bad), ("cache-control", "max-age=5")]).unwrap();
            assert_eq!(f.lifetime_ms, 5_000, "{bad}");
            assert_eq!(f.source, FreshnessSource::MaxAge, "{bad}");
        }
        let f = store(&[
            ("cdn-cache-control", "max-age=10000"),
            ("cache-control", "max-age=5"),
        ]);
        assert_eq!(f.unwrap().lifetime_ms, 10_000_000);
        assert_eq!(
            store(&[
                ("cdn-cache-control", "no-store"),
                ("cache-control", "max-age=5")
            ]),
            Err(NoStore::NoStoreDirective)
        );
        // A second, invalid field line voids the whole field.
        let f = store(&[
            ("cdn-cache-control", "no-store"),
            ("cdn-cache-control", "&&"),
            ("cache-control", "max-age=5"),
        ]);
        assert_eq!(f.unwrap().lifetime_ms, 5_000);
    }

    #[test]
    fn expires_without_a_valid_date_counts_from_reception() {
        let now = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        for date in [None, Some("garbage")] {
            let mut pairs = vec![("expires", "Sun, 06 Nov 1994 08:50:37 GMT")];
            if let Some(d) = date {
                pairs.push(("date", d));
            }
            let f = facts(&pairs).received_at(now);
            let fr = freshness(&f, &host());
            assert_eq!(fr.lifetime_ms, 60_000, "{date:?}");
            assert_eq!(fr.source, FreshnessSource::Expires);
        }
        // A valid Date is kept.
        let f = facts(&[
            ("expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
            ("date", "Sun, 06 Nov 1994 08:50:07 GMT"),
        ])
        .received_at(now);
        assert_eq!(freshness(&f, &host()).lifetime_ms, 30_000);
    }

    #[test]
    fn dates_are_lenient_about_case_and_weekday() {
        let f = facts(&[
            ("expires", "mon, 06 nov 1994 08:50:37 gmt"),
            ("date", "SUN, 06 NOV 1994 08:49:37 GMT"),
        ]);
        assert_eq!(freshness(&f, &host()).lifetime_ms, 60_000);
    }

    #[test]
    fn vary_is_parsed_and_sorted() {
        let f = facts(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "x-a"),
        ]);
        assert_eq!(f.vary, vec!["accept-encoding", "accept-language", "x-a"]);
        assert!(!f.vary_star);
    }
}
