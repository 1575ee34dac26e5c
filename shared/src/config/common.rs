//! Sections and helpers both binaries use.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[lifecycle]`: how the process stops.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleSection {
    /// After SIGTERM/SIGINT, how long in-flight work may take before the process exits.
    /// Default `10s`.
    #[serde(with = "crate::config::common::duration")]
    pub shutdown_grace: Duration,
}

impl Default for LifecycleSection {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Durations in the config (`"30s"`, `"7d"`, humantime syntax), at most [`duration::MAX`]:
/// `#[serde(with = "crate::config::common::duration")]` on `Duration` and `Option<Duration>`
/// fields. A longer one ("300000000000y") is refused with the key named, since the servers add
/// configured durations to clock readings.
pub mod duration {
    use std::time::Duration;

    use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

    /// The longest duration a key accepts: 100 years.
    pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// A duration value or an optional one.
    pub trait Capped {
        /// The duration, when set.
        fn get(&self) -> Option<Duration>;
    }
    impl Capped for Duration {
        fn get(&self) -> Option<Duration> {
            Some(*self)
        }
    }
    impl Capped for Option<Duration> {
        fn get(&self) -> Option<Duration> {
            *self
        }
    }

    /// As `humantime_serde::serialize`.
    pub fn serialize<T, S>(d: &T, s: S) -> Result<S::Ok, S::Error>
    where
        for<'a> humantime_serde::Serde<&'a T>: Serialize,
        S: Serializer,
    {
        humantime_serde::serialize(d, s)
    }

    /// As `humantime_serde::deserialize`, refusing a duration over [`MAX`].
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        humantime_serde::Serde<T>: Deserialize<'de>,
        T: Capped,
        D: Deserializer<'de>,
    {
        let v: T = humantime_serde::deserialize(d)?;
        match v.get() {
            Some(x) if x > MAX => Err(D::Error::custom(format!(
                "duration {} is longer than the longest accepted (100 years)",
                humantime_serde::re::humantime::format_duration(x)
            ))),
            _ => Ok(v),
        }
    }
}

/// `p`, when relative, resolved against `base` (the config file's directory, [`super::config_dir`]).
pub fn resolve_path(base: &std::path::Path, p: &mut std::path::PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

/// [`resolve_path`] on an optional path.
pub fn resolve_opt(base: &std::path::Path, p: &mut Option<std::path::PathBuf>) {
    if let Some(p) = p {
        resolve_path(base, p);
    }
}

/// Reject two listeners on the same address: `addrs` is every (key, address) of one protocol
/// (TCP listeners together); the later key is named. Port 0 (the kernel picks) never clashes.
/// An unspecified address (`0.0.0.0:p`, `[::]:p`) clashes with every address of its family on
/// the same port.
pub fn require_distinct_listeners(
    addrs: &[(String, std::net::SocketAddr)],
) -> Result<(), ConfigError> {
    for (i, (key, a)) in addrs.iter().enumerate() {
        if a.port() == 0 {
            continue;
        }
        let clash = addrs[..i].iter().find(|(_, b)| {
            b.port() == a.port()
                && b.is_ipv4() == a.is_ipv4()
                && (b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified())
        });
        if let Some((other, _)) = clash {
            return Err(ConfigError::new(
                key.clone(),
                format!("{a} is also `{other}`: two listeners cannot share an address"),
            ));
        }
    }
    Ok(())
}

/// Reject an empty list at `key`.
pub fn require_nonempty<T>(key: &str, items: &[T]) -> Result<(), ConfigError> {
    if items.is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    Ok(())
}

/// Reject duplicate values; `key_of(i)` names the offending entry.
pub fn require_unique<'a>(
    values: impl IntoIterator<Item = &'a str>,
    key_of: impl Fn(usize) -> String,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, v) in values.into_iter().enumerate() {
        if !seen.insert(v.to_ascii_lowercase()) {
            return Err(ConfigError::new(
                key_of(i),
                format!("duplicate value `{v}`"),
            ));
        }
    }
    Ok(())
}

/// Reject a zero duration at `key`.
pub fn require_positive(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(key, "must be greater than zero"));
    }
    Ok(())
}

/// A DNS-ish identifier: ASCII letters, digits, `-`, `_`, `.`; 1..=63 chars.
pub fn require_ident(key: &str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        return Err(ConfigError::new(
            key,
            format!("`{v}` is not a valid identifier (1-63 of A-Z a-z 0-9 - _ .)"),
        ));
    }
    Ok(())
}

/// Latitude in [-90, 90] and longitude in [-180, 180].
pub fn require_coordinates(key: &str, lat: f64, lon: f64) -> Result<(), ConfigError> {
    if !(-90.0..=90.0).contains(&lat) || !lat.is_finite() {
        return Err(ConfigError::new(
            format!("{key}.lat"),
            "latitude must be in [-90, 90]",
        ));
    }
    if !(-180.0..=180.0).contains(&lon) || !lon.is_finite() {
        return Err(ConfigError::new(
            format!("{key}.lon"),
            "longitude must be in [-180, 180]",
        ));
    }
    Ok(())
}

/// A DNS name: labels of 1..=63 chars, total ≤ 253, optional trailing dot, optional leading
/// `*.` when `wildcard_ok`.
pub fn require_dns_name(key: &str, name: &str, wildcard_ok: bool) -> Result<(), ConfigError> {
    let n = name.strip_suffix('.').unwrap_or(name);
    let n = if wildcard_ok {
        n.strip_prefix("*.").unwrap_or(n)
    } else {
        n
    };
    let bad = n.is_empty()
        || n.len() > 253
        || n.split('.').any(|l| {
            l.is_empty()
                || l.len() > 63
                || !l
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if bad {
        return Err(ConfigError::new(
            key,
            format!("`{name}` is not a valid DNS name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_may_not_share_an_address() {
        let l = |k: &str, a: &str| (k.to_string(), a.parse::<std::net::SocketAddr>().unwrap());
        assert!(
            require_distinct_listeners(&[l("a", "127.0.0.1:80"), l("b", "127.0.0.1:81")]).is_ok()
        );
        assert!(
            require_distinct_listeners(&[l("a", "127.0.0.1:0"), l("b", "127.0.0.1:0")]).is_ok()
        );
        assert!(require_distinct_listeners(&[l("a", "127.0.0.1:80"), l("b", "[::1]:80")]).is_ok());
        let e = require_distinct_listeners(&[l("a", "127.0.0.1:80"), l("b", "127.0.0.1:80")])
            .unwrap_err();
        assert_eq!(e.key, "b");
        let e = require_distinct_listeners(&[l("a", "0.0.0.0:80"), l("b", "127.0.0.2:80")])
            .unwrap_err();
        assert!(e.message.contains("`a`"), "{}", e.message);
    }
}
