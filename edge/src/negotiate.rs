//! `Accept-Encoding` (RFC 9110 §12.5.3), pure: the request's field lines
//! ([`accept_encoding`]), which coding to send ([`choose`], for [`crate::compress`]) and the
//! bucket a request falls into when a response varies on it ([`bucket`], for
//! [`crate::cache::key`]).
//!
//! Parsing is lenient and bounded: at most [`MAX_ELEMENTS`] list elements are read; an
//! element with a malformed `q` is ignored (as if absent); codings compare
//! case-insensitively; `x-gzip` is `gzip` (RFC 9110 §8.4.1.3).

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderMap};
use cdn_shared::config::compress::Encoding;

/// List elements read from one request (the rest are ignored).
pub const MAX_ELEMENTS: usize = 64;

/// A qvalue in thousandths (0..=1000).
type Q = u16;

/// What a request says about the codings the edge knows (`None` = not mentioned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Said {
    br: Option<Q>,
    zstd: Option<Q>,
    gzip: Option<Q>,
    deflate: Option<Q>,
    star: Option<Q>,
}

impl Said {
    fn slot(&mut self, coding: &str) -> Option<&mut Option<Q>> {
        let eq = |s: &str| coding.eq_ignore_ascii_case(s);
        if eq("br") {
            Some(&mut self.br)
        } else if eq("zstd") {
            Some(&mut self.zstd)
        } else if eq("gzip") || eq("x-gzip") {
            Some(&mut self.gzip)
        } else if eq("deflate") {
            Some(&mut self.deflate)
        } else if coding == "*" {
            Some(&mut self.star)
        } else {
            None
        }
    }

    /// The q of a coding: its own element, else `*`'s, else 0 (not acceptable).
    fn q(&self, own: Option<Q>) -> Q {
        own.or(self.star).unwrap_or(0)
    }

    fn of(&self, e: Encoding) -> Q {
        self.q(match e {
            Encoding::Br => self.br,
            Encoding::Zstd => self.zstd,
            Encoding::Gzip => self.gzip,
        })
    }
}

/// Parse a qvalue: `0`, `0.d`, `0.dd`, `0.ddd`, `1`, `1.`, `1.0`… (RFC 9110 §12.4.2).
fn qvalue(s: &str) -> Option<Q> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "0" => {
            let mut q: Q = 0;
            for (i, b) in frac.bytes().enumerate() {
                q += Q::from(b - b'0') * [100, 10, 1][i];
            }
            Some(q)
        }
        "1" if frac.bytes().all(|b| b == b'0') => Some(1000),
        _ => None,
    }
}

/// Read the elements of an `Accept-Encoding` value (all field lines joined by `,`).
fn parse(value: &str) -> Said {
    let mut said = Said::default();
    for element in value.split(',').take(MAX_ELEMENTS) {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("q") {
                q = qvalue(v);
            }
        }
        let Some(q) = q else { continue };
        if let Some(slot) = said.slot(coding) {
            // The first element for a coding counts; repeats are ignored.
            if slot.is_none() {
                *slot = Some(q);
            }
        }
    }
    said
}

/// The coding to send for a request's `Accept-Encoding` (`None` = the header is absent),
/// among `offered` (in the server's order of preference): the highest q above 0, ties going
/// to the earlier in `offered`. `None` = identity — also when the client refuses identity
/// (`identity;q=0`, `*;q=0`) and accepts nothing offered: the edge then sends identity
/// anyway (RFC 9110 §12.5.3 allows it; a 406 would break more clients than it helps).
pub fn choose(accept_encoding: Option<&str>, offered: &[Encoding]) -> Option<Encoding> {
    let said = parse(accept_encoding?);
    let mut best: Option<(Encoding, Q)> = None;
    for &e in offered {
        let q = said.of(e);
        if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((e, q));
        }
    }
    best.map(|(e, _)| e)
}

/// The normalised value of `Accept-Encoding` in a cache key when a response varies on it:
/// the set of acceptable codings among `br`, `deflate`, `gzip`, `zstd` (q > 0, directly or
/// through `*`), comma-joined in that order; `""` when none (including an absent header).
/// So `gzip, deflate, br`, `br;q=1.0, gzip;q=0.8, *;q=0.1` and `BR,GZIP,deflate` share the
/// bucket `br,deflate,gzip`: at most 16 buckets instead of one per client spelling. q-value
/// order is not kept: an origin choosing among them may pick another acceptable coding, never
/// an unacceptable one. Codings outside the four are not kept either.
pub fn bucket(accept_encoding: &str) -> &'static str {
    const BUCKETS: [&str; 16] = [
        "",
        "br",
        "deflate",
        "br,deflate",
        "gzip",
        "br,gzip",
        "deflate,gzip",
        "br,deflate,gzip",
        "zstd",
        "br,zstd",
        "deflate,zstd",
        "br,deflate,zstd",
        "gzip,zstd",
        "br,gzip,zstd",
        "deflate,gzip,zstd",
        "br,deflate,gzip,zstd",
    ];
    let said = parse(accept_encoding);
    let bit = |own: Option<Q>, b: usize| if said.q(own) > 0 { b } else { 0 };
    let mask = bit(said.br, 1) | bit(said.deflate, 2) | bit(said.gzip, 4) | bit(said.zstd, 8);
    BUCKETS[mask]
}

/// The request's `Accept-Encoding`, its field lines joined by `,` (`None` when absent).
pub fn accept_encoding(h: &HeaderMap) -> Option<Cow<'_, str>> {
    let mut it = h.get_all(header::ACCEPT_ENCODING);
    let first = it.next()?;
    let first = String::from_utf8_lossy(first.as_bytes());
    let rest: Vec<_> = it.collect();
    if rest.is_empty() {
        return Some(first);
    }
    let mut all = first.into_owned();
    for v in rest {
        all.push(',');
        all.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(Cow::Owned(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Encoding::*;

    const ALL: &[Encoding] = &Encoding::ALL;

    fn c(v: &str) -> Option<Encoding> {
        choose(Some(v), ALL)
    }

    #[test]
    fn chooses_by_q_then_server_order() {
        assert_eq!(choose(None, ALL), None, "no header: identity");
        assert_eq!(c(""), None);
        assert_eq!(c("identity"), None);
        assert_eq!(c("gzip, deflate, br"), Some(Br));
        assert_eq!(c("gzip, deflate, br, zstd"), Some(Br));
        assert_eq!(c("gzip, deflate"), Some(Gzip));
        assert_eq!(c("zstd, gzip"), Some(Zstd));
        assert_eq!(c("gzip;q=1.0, br;q=0.5"), Some(Gzip));
        assert_eq!(c("gzip;q=0, br"), Some(Br));
        assert_eq!(c("br;q=0, gzip;q=0.001"), Some(Gzip));
        assert_eq!(c("*"), Some(Br));
        assert_eq!(c("*;q=0"), None);
        assert_eq!(c("*;q=0, identity"), None);
        assert_eq!(c("br;q=0, *"), Some(Zstd));
        assert_eq!(c("*;q=0.5, gzip"), Some(Gzip));
        assert_eq!(c("x-gzip"), Some(Gzip));
        assert_eq!(c("GZIP"), Some(Gzip));
        assert_eq!(c(" gzip ; q=0.9 ,br ; Q=0.8"), Some(Gzip));
        assert_eq!(c("deflate"), None);
        assert_eq!(c("compress, identity;q=0"), None, "identity fallback");
        // Malformed q: the element is ignored.
        assert_eq!(c("br;q=2, gzip"), Some(Gzip));
        assert_eq!(c("br;q=0.5555, gzip;q=0.1"), Some(Gzip));
        assert_eq!(c("br;q=abc"), None);
        assert_eq!(c("br;q=1.001"), None);
        assert_eq!(c("br;q=1.000"), Some(Br));
        // First element for a coding wins.
        assert_eq!(c("br;q=0, br;q=1, gzip"), Some(Gzip));
        // Only what is offered.
        assert_eq!(choose(Some("br, gzip"), &[Gzip, Br]), Some(Gzip));
        assert_eq!(choose(Some("br"), &[Gzip]), None);
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("0.123"), Some(123));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.00"), Some(1000));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue("-0"), None);
        assert_eq!(qvalue(""), None);
        assert_eq!(qvalue("0.a"), None);
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket(""), "");
        assert_eq!(bucket("identity"), "");
        assert_eq!(bucket("gzip, deflate, br"), "br,deflate,gzip");
        assert_eq!(
            bucket("br;q=1.0, gzip;q=0.8, *;q=0.1"),
            "br,deflate,gzip,zstd"
        );
        assert_eq!(bucket("BR,GZIP,deflate"), "br,deflate,gzip");
        assert_eq!(bucket("gzip,  deflate,br"), "br,deflate,gzip");
        assert_eq!(bucket("gzip;q=0, br"), "br");
        assert_eq!(bucket("*;q=0"), "");
        assert_eq!(bucket("x-gzip"), "gzip");
        assert_eq!(bucket("zstd;q=0.2,gzip"), "gzip,zstd");
        assert_eq!(bucket("compress"), "");
    }

    /// One element as clients might spell it: a coding, optional whitespace, an optional
    /// (possibly malformed) q parameter and other parameters.
    fn element() -> impl Strategy<Value = String> {
        let coding = prop_oneof![
            Just("br"),
            Just("BR"),
            Just("gzip"),
            Just("x-gzip"),
            Just("zstd"),
            Just("deflate"),
            Just("identity"),
            Just("*"),
            Just("compress"),
            Just(""),
        ];
        let q = prop_oneof![
            Just(String::new()),
            (0u16..=1000).prop_map(|q| format!(";q={}.{:03}", q / 1000, q % 1000)),
            "[ -~]{0,8}".prop_map(|s| format!(";q={s}")),
            Just(";level=3".to_string()),
        ];
        (coding, q, " {0,2}").prop_map(|(c, q, ws)| format!("{ws}{c}{q}{ws}"))
    }

    proptest! {
        /// Any printable input: never panics, the choice is offered and acceptable (q > 0
        /// for it, directly or via `*`), and no offered coding has a higher q.
        #[test]
        fn any_input_is_safe(v in "[ -~]{0,200}") {
            let got = choose(Some(&v), ALL);
            let said = parse(&v);
            if let Some(e) = got {
                prop_assert!(said.of(e) > 0);
                for o in ALL {
                    prop_assert!(said.of(*o) <= said.of(e));
                }
            } else {
                for o in ALL {
                    prop_assert_eq!(said.of(*o), 0);
                }
            }
            let _ = bucket(&v);
        }

        /// Realistic lists: the choice never is a coding the client refused, and the bucket
        /// holds exactly the accepted codings, whatever the spelling and order.
        #[test]
        fn lists(elems in proptest::collection::vec(element(), 0..8), rot in 0usize..8) {
            let v = elems.join(",");
            if let Some(e) = choose(Some(&v), ALL) {
                prop_assert!(parse(&v).of(e) > 0, "{v:?} chose refused {e:?}");
            }
            let b = bucket(&v);
            let said = parse(&v);
            for (name, own) in [("br", said.br), ("deflate", said.deflate), ("gzip", said.gzip), ("zstd", said.zstd)] {
                prop_assert_eq!(b.split(',').any(|x| x == name), said.q(own) > 0, "{:?} → {:?}", v, b);
            }
            // Case does not change the bucket; order does not either when each coding appears
            // once.
            prop_assert_eq!(bucket(&v.to_ascii_uppercase()), b);
            let mut seen = std::collections::HashSet::new();
            let distinct = elems.iter().all(|e| {
                let c = e.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                let c = if c == "x-gzip" { "gzip".to_string() } else { c };
                seen.insert(c)
            });
            if distinct && !elems.is_empty() {
                let mut r = elems.clone();
                let n = rot % r.len();
                r.rotate_left(n);
                prop_assert_eq!(bucket(&r.join(",")), b);
            }
        }
    }

    #[test]
    fn accept_encoding_lines_are_joined() {
        use actix_web::http::header::HeaderValue;
        let mut h = HeaderMap::new();
        assert!(accept_encoding(&h).is_none());
        h.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert_eq!(accept_encoding(&h).as_deref(), Some("gzip;q=0"));
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(accept_encoding(&h).as_deref(), Some("gzip;q=0,br"));
    }
}
