//! Fuzz the edge's per-tenant request checks with arbitrary request targets and headers:
//! signed URLs (`tenant::signed::verify`, plain and prefix form), the client address behind
//! trusted proxies (`tenant::client::client_ip`) and `Accept-Encoding` negotiation
//! (`negotiate::choose`, `negotiate::bucket`).
//!
//! Input: lines. Line 1 is the request target, line 2 a Unix time (digits, else 1000), then
//! `X-Forwarded-For` values and, after a line `AE`, `Accept-Encoding` values. Invariants: no
//! panic; a target `verify` accepts in the prefix form lies under its prefix once normalised,
//! and its token's `Expires` is after the time; a target signed by `sign` / `sign_prefix`
//! (with the input's path) is accepted before it expires and refused after; the client address
//! is the peer or one of the addresses the headers name.
#![no_main]

use std::net::IpAddr;

use actix_http::header::{HeaderMap, HeaderName, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cdn_edge::negotiate;
use cdn_edge::normalise;
use cdn_edge::tenant::client::client_ip;
use cdn_edge::tenant::signed::{sign, sign_prefix, verify, Keys};
use cdn_shared::config::compress::Encoding;
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn keys() -> Keys {
    Keys::new(vec![("k".into(), KEY.to_vec())])
}

/// The value of `name` in `query` (first occurrence), as the verifier reads parameters.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then_some(v)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/");
    let now: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(1000);
    let mut xff = HeaderMap::new();
    let mut ae = HeaderMap::new();
    let mut in_ae = false;
    for l in lines {
        if l == "AE" {
            in_ae = true;
            continue;
        }
        let Ok(v) = HeaderValue::from_bytes(l.as_bytes()) else {
            continue;
        };
        if in_ae {
            ae.append(HeaderName::from_static("accept-encoding"), v);
        } else {
            xff.append(HeaderName::from_static("x-forwarded-for"), v);
        }
    }

    // Whatever verify accepts in the prefix form is under the prefix and not expired.
    let keys = keys();
    if verify(&keys, target, now).is_ok() {
        let signed = &target[..target.rfind("&Signature=").unwrap()];
        let (path, query) = signed.split_once('?').unwrap();
        let token = match query.find("URLPrefix=") {
            Some(i) if i == 0 || query.as_bytes()[i - 1] == b'&' => Some(&query[i..]),
            _ => None,
        };
        let expires: u64 = param(token.unwrap_or(query), "Expires")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            expires > now,
            "accepted an expired target {target:?} at {now}"
        );
        if let Some(token) = token {
            let b64 = param(token, "URLPrefix").unwrap();
            let prefix = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).unwrap();
            let prefix = normalise::path(std::str::from_utf8(&prefix).unwrap()).unwrap();
            let path = normalise::path(path).unwrap();
            assert!(path.starts_with(&prefix), "{path:?} is outside {prefix:?}");
        }
    }

    // Signing the input's path round-trips (when it is a path a client could send).
    let path = target.split(['?', '#']).next().unwrap_or("/");
    if path.starts_with('/')
        && !path.contains("&Signature=")
        && normalise::path(path).is_ok()
        && now < 1 << 40
    {
        let expires = now.saturating_add(60);
        let u = sign(path, "k", KEY, expires);
        assert!(verify(&keys, &u, now).is_ok(), "{u:?}");
        assert!(
            verify(&keys, &u, expires).is_err(),
            "{u:?} after it expired"
        );
        let q = sign_prefix(path, "k", KEY, expires);
        let under = format!("{path}?{q}");
        assert!(verify(&keys, &under, now).is_ok(), "{under:?}");
    }

    // The client address is the peer or an address the headers name.
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let trusted = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let got = client_ip(peer, &xff, &trusted);
    if got != peer {
        let named = xff
            .get_all("x-forwarded-for")
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|h| std::str::from_utf8(h).ok())
            .any(|h| {
                let h = h.trim();
                h.parse::<IpAddr>().map(|i| i.to_canonical()) == Ok(got)
                    || h.parse::<std::net::SocketAddr>()
                        .map(|s| s.ip().to_canonical())
                        == Ok(got)
            });
        assert!(named, "{got} is neither the peer nor in the headers");
    }

    // Accept-Encoding: bounded and total.
    let joined = negotiate::accept_encoding(&ae);
    let offered = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];
    let _ = negotiate::choose(joined.as_deref(), &offered);
    let _ = negotiate::bucket(joined.as_deref().unwrap_or(""));
});
