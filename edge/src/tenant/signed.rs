//! Signed URLs (token protection): verify a request's `Expires`, `KeyName` and `Signature`
//! parameters, make signatures (`edge sign-url`), and strip the parameters from the cache key
//! and the origin request.
//!
//! `Signature = base64url(HMAC-SHA256(key, S))` where S is the request's path and query up
//! to, not including, `&Signature=` (Google Cloud CDN's scheme, with SHA-256). `Signature`
//! is the last parameter. The prefix form signs `URLPrefix=<base64url path prefix>&Expires=
//! …&KeyName=…` (S starts at `URLPrefix=`), and then any path starting with the prefix is
//! allowed: one token covers a playlist's segments.
//!
//! Everything here is pure (the clock is an argument); the comparison is constant-time
//! (`ring::hmac::verify`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

use crate::normalise;

/// The query parameters that carry a signature (removed from the key and origin request).
pub const PARAMS: [&str; 4] = ["Expires", "KeyName", "Signature", "URLPrefix"];

/// Longest `Signature` value accepted (a SHA-256 MAC is 43 characters base64url).
const MAX_SIG: usize = 128;

/// A host's named keys.
#[derive(Clone)]
pub struct Keys {
    keys: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Keys").field("names", &names).finish()
    }
}

/// Decode a base64url key (padding and surrounding whitespace ignored); at least 16 bytes.
pub fn decode_key(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim().trim_end_matches('=');
    let k = URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|e| format!("not base64url: {e}"))?;
    if k.len() < 16 {
        return Err(format!("{} bytes; at least 16 are needed", k.len()));
    }
    Ok(k)
}

impl Keys {
    /// Keys from (name, raw key bytes).
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Keys {
        Keys {
            keys: keys
                .into_iter()
                .map(|(n, k)| (n, hmac::Key::new(hmac::HMAC_SHA256, &k)))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&hmac::Key> {
        self.keys.iter().find(|(n, _)| n == name).map(|(_, k)| k)
    }
}

/// Why a signed request was refused (the access log's and the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Signature` parameter.
    Missing,
    /// Parameters present but unreadable (no `Expires`/`KeyName`, bad number, bad base64).
    Malformed,
    /// `KeyName` names no configured key.
    UnknownKey,
    /// `Expires` is in the past.
    Expired,
    /// The MAC does not match.
    BadSignature,
    /// Prefix form: the path does not start with the signed prefix.
    OutsidePrefix,
}

impl Refusal {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "signature_missing",
            Refusal::Malformed => "signature_malformed",
            Refusal::UnknownKey => "signature_unknown_key",
            Refusal::Expired => "signature_expired",
            Refusal::BadSignature => "signature_invalid",
            Refusal::OutsidePrefix => "signature_outside_prefix",
        }
    }
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Check the raw request target `pq` (`/path?query`, as received) at unix time `now_s`.
pub fn verify(keys: &Keys, pq: &str, now_s: u64) -> Result<(), Refusal> {
    let Some(at) = pq.rfind("&Signature=") else {
        return Err(Refusal::Missing);
    };
    let signed = &pq[..at];
    let sig = &pq[at + "&Signature=".len()..];
    if sig.is_empty() || sig.len() > MAX_SIG || sig.contains('&') {
        return Err(Refusal::Malformed);
    }
    let (path, query) = signed.split_once('?').ok_or(Refusal::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(sig.trim_end_matches('='))
        .map_err(|_| Refusal::Malformed)?;
    // The prefix form signs from `URLPrefix=` on; the plain form the whole target. `Expires`
    // and `KeyName` are read from the signed part only: parameters before a prefix token are
    // not signed, and must not stand in for the token's own.
    let (message, token, prefix) = match query.find("URLPrefix=") {
        Some(i) if i == 0 || query.as_bytes()[i - 1] == b'&' => {
            let token = &query[i..];
            let b64 = param(token, "URLPrefix").ok_or(Refusal::Malformed)?;
            let p = URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .map_err(|_| Refusal::Malformed)?;
            (token, token, Some(p))
        }
        _ => (signed, query, None),
    };
    let expires: u64 = param(token, "Expires")
        .and_then(|e| e.parse().ok())
        .ok_or(Refusal::Malformed)?;
    let name = param(token, "KeyName").ok_or(Refusal::Malformed)?;
    let key = keys.get(name).ok_or(Refusal::UnknownKey)?;
    hmac::verify(key, message.as_bytes(), &mac).map_err(|_| Refusal::BadSignature)?;
    if expires <= now_s {
        return Err(Refusal::Expired);
    }
    if let Some(p) = prefix {
        // Compared in normal form (`crate::normalise`, as the cache key and the origin request
        // see the path): `/hls/a/../b/x` and `/hls/a/%2e%2e/b/x` are `/hls/b/x`, outside
        // `/hls/a/`.
        let p = std::str::from_utf8(&p)
            .ok()
            .and_then(|p| normalise::path(p).ok());
        match (p, normalise::path(path)) {
            (Some(p), Ok(path)) if !p.is_empty() && path.starts_with(&p) => {}
            _ => return Err(Refusal::OutsidePrefix),
        }
    }
    Ok(())
}

fn mac_b64(key: &[u8], message: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message.as_bytes());
    URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// Sign `pq` (`/path` or `/path?query`): append `Expires`, `KeyName` and `Signature`.
pub fn sign(pq: &str, key_name: &str, key: &[u8], expires: u64) -> String {
    let sep = if pq.contains('?') { '&' } else { '?' };
    let signed = format!("{pq}{sep}Expires={expires}&KeyName={key_name}");
    let sig = mac_b64(key, &signed);
    format!("{signed}&Signature={sig}")
}

/// Sign a path prefix: the query string (without `?`) that lets any path under `prefix` in.
pub fn sign_prefix(prefix: &str, key_name: &str, key: &[u8], expires: u64) -> String {
    let signed = format!(
        "URLPrefix={}&Expires={expires}&KeyName={key_name}",
        URL_SAFE_NO_PAD.encode(prefix.as_bytes())
    );
    let sig = mac_b64(key, &signed);
    format!("{signed}&Signature={sig}")
}

/// The raw query without the signature parameters (what the key and the origin see).
pub fn strip(query: &str) -> String {
    query
        .split('&')
        .filter(|p| {
            let k = p.split_once('=').map(|(k, _)| k).unwrap_or(p);
            !p.is_empty() && !PARAMS.contains(&k)
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> Keys {
        Keys::new(vec![
            ("old".into(), b"fedcba9876543210fedcba9876543210".to_vec()),
            ("demo".into(), KEY.to_vec()),
        ])
    }

    #[test]
    fn signed_url_verifies_until_it_expires() {
        let u = sign("/a/b.txt?x=1", "demo", KEY, 1000);
        assert!(u.starts_with("/a/b.txt?x=1&Expires=1000&KeyName=demo&Signature="));
        assert_eq!(verify(&keys(), &u, 999), Ok(()));
        assert_eq!(verify(&keys(), &u, 1000), Err(Refusal::Expired));
        let bare = sign("/a", "demo", KEY, 1000);
        assert!(bare.starts_with("/a?Expires=1000&"));
        assert_eq!(verify(&keys(), &bare, 5), Ok(()));
    }

    #[test]
    fn tampering_and_unknown_keys_are_refused() {
        let u = sign("/a?x=1", "demo", KEY, 1000);
        let t = u.replace("x=1", "x=2");
        assert_eq!(verify(&keys(), &t, 5), Err(Refusal::BadSignature));
        let t = u.replace("Expires=1000", "Expires=9999");
        assert_eq!(verify(&keys(), &t, 5), Err(Refusal::BadSignature));
        let t = u.replace("KeyName=demo", "KeyName=nope");
        assert_eq!(verify(&keys(), &t, 5), Err(Refusal::UnknownKey));
        // Signed with the other key of the host (rotation): both verify under their names.
        let o = sign("/a", "old", b"fedcba9876543210fedcba9876543210", 1000);
        assert_eq!(verify(&keys(), &o, 5), Ok(()));
        let wrong = o.replace("KeyName=old", "KeyName=demo");
        assert_eq!(verify(&keys(), &wrong, 5), Err(Refusal::BadSignature));
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(verify(&keys(), "/a", 5), Err(Refusal::Missing));
        assert_eq!(verify(&keys(), "/a?x=1", 5), Err(Refusal::Missing));
        for bad in [
            "/a?KeyName=demo&Signature=AAAA",
            "/a?Expires=x&KeyName=demo&Signature=AAAA",
            "/a?Expires=10&Signature=AAAA",
            "/a?Expires=10&KeyName=demo&Signature=!!",
            "/a?Expires=10&KeyName=demo&Signature=",
            "/a?Expires=10&KeyName=demo&Signature=AA&b=1",
            "/a&Signature=AAAA",
            "/a?Expires=99999999999999999999999&KeyName=demo&Signature=AAAA",
        ] {
            assert_eq!(verify(&keys(), bad, 5), Err(Refusal::Malformed), "{bad}");
        }
        let long = format!("/a?Expires=10&KeyName=demo&Signature={}", "A".repeat(200));
        assert_eq!(verify(&keys(), &long, 5), Err(Refusal::Malformed));
    }

    #[test]
    fn prefix_tokens_cover_their_prefix_only() {
        let q = sign_prefix("/hls/stream1/", "demo", KEY, 1000);
        let seg = format!("/hls/stream1/seg-7.ts?{q}");
        assert_eq!(verify(&keys(), &seg, 5), Ok(()));
        let other = format!("/hls/stream2/seg-7.ts?{q}");
        assert_eq!(verify(&keys(), &other, 5), Err(Refusal::OutsidePrefix));
        // Other parameters before the token are allowed (not signed in the prefix form).
        let extra = format!("/hls/stream1/x.ts?session=4&{q}");
        assert_eq!(verify(&keys(), &extra, 5), Ok(()));
        let forged = seg.replace(
            &URL_SAFE_NO_PAD.encode(b"/hls/stream1/"),
            &URL_SAFE_NO_PAD.encode(b"/hls/"),
        );
        assert_eq!(verify(&keys(), &forged, 5), Err(Refusal::BadSignature));
        assert_eq!(verify(&keys(), &seg, 1000), Err(Refusal::Expired));
        // Parameters before the token are not signed, so they cannot stand in for the token's:
        // an expired token stays expired and the key stays the one it names.
        let later = format!("/hls/stream1/x.ts?Expires=99999999999&{q}");
        assert_eq!(verify(&keys(), &later, 1000), Err(Refusal::Expired));
        assert_eq!(verify(&keys(), &later, 5), Ok(()));
        let named = format!("/hls/stream1/x.ts?KeyName=old&{q}");
        assert_eq!(verify(&keys(), &named, 5), Ok(()));
        let unknown = format!("/hls/stream1/x.ts?KeyName=nope&{q}");
        assert_eq!(verify(&keys(), &unknown, 5), Ok(()));
        // Dot segments are resolved before the prefix is compared, escaped ones too.
        for climb in [
            "/hls/stream1/../stream2/seg-7.ts",
            "/hls/stream1/%2e%2e/stream2/seg-7.ts",
            "/hls/stream1/%2E./secret",
            "/hls/stream1/../../etc/passwd",
        ] {
            let u = format!("{climb}?{q}");
            assert_eq!(
                verify(&keys(), &u, 5),
                Err(Refusal::OutsidePrefix),
                "{climb}"
            );
        }
        let inside = format!("/hls/stream1/a/../seg-7.ts?{q}");
        assert_eq!(verify(&keys(), &inside, 5), Ok(()));
        let spelled = format!("/hls/%73tream1/seg-7.ts?{q}");
        assert_eq!(verify(&keys(), &spelled, 5), Ok(()));
    }

    #[test]
    fn strip_removes_only_signature_params() {
        assert_eq!(
            strip("x=1&Expires=5&KeyName=demo&y=2&Signature=abc"),
            "x=1&y=2"
        );
        assert_eq!(strip("URLPrefix=L2E&Expires=5&KeyName=k&Signature=s"), "");
        assert_eq!(strip("Expiresx=1&&a"), "Expiresx=1&a");
    }

    #[test]
    fn keys_decode_base64url_of_16_bytes_or_more() {
        let k = URL_SAFE_NO_PAD.encode(KEY);
        assert_eq!(decode_key(&format!(" {k}\n")).unwrap(), KEY);
        assert_eq!(decode_key(&format!("{k}=")).unwrap(), KEY);
        assert!(decode_key("c2hvcnQ").is_err());
        assert!(decode_key("***").is_err());
    }
}
