//! `[hosts.compress]`: compression of uncompressed, compressible responses at the edge
//! (issue 14 point 5). Present = on for that host.
//!
//! ```toml
//! [[hosts]]
//! name = "www.example"
//! origin = "http://127.0.0.1:8080"
//! [hosts.compress]
//! types = ["text/*", "application/json", "application/javascript"]  # default: see below
//! min_size = "1 KiB"
//! max_size = "8 MiB"
//! encodings = ["br", "zstd", "gzip"]   # server preference when the client's q-values tie
//! br_level = 5
//! zstd_level = 3
//! gzip_level = 6
//! ```

use bytesize::ByteSize;
use serde::Deserialize;

use super::ConfigError;

/// A content coding the edge produces.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Brotli (RFC 7932), `br`.
    Br,
    /// Zstandard (RFC 8878), `zstd`.
    Zstd,
    /// gzip (RFC 1952), `gzip` (also accepted from clients as `x-gzip`).
    Gzip,
}

impl Encoding {
    /// The token in `Accept-Encoding` / `Content-Encoding`, and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// All of them, in the default preference order.
    pub const ALL: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];
}

/// Media types compressed by default: text, JSON, JavaScript, XML, SVG, wasm, web fonts
/// that are not already compressed, icons.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
    "application/wasm",
    "application/x-ndjson",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

/// `[hosts.compress]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Compress {
    /// Media types compressed: `type/subtype`, `type/*`, or `type/*+suffix`
    /// (lower-case; parameters such as `charset` are ignored when matching). Default
    /// [`DEFAULT_TYPES`]. `text/event-stream` is never compressed.
    pub types: Vec<String>,
    /// Bodies shorter than this are served as they are. Default 1 KiB.
    pub min_size: ByteSize,
    /// Bodies longer than this are served as they are (bounds the work and memory of one
    /// compression). Default 8 MiB, at most 32 MiB.
    pub max_size: ByteSize,
    /// Codings offered, in the server's order of preference (used when the client's q-values
    /// tie). Default `["br", "zstd", "gzip"]`; at least one.
    pub encodings: Vec<Encoding>,
    /// Brotli quality, 0–11. Default 5.
    pub br_level: u32,
    /// Zstandard level, 1–19. Default 3.
    pub zstd_level: i32,
    /// gzip level, 1–9. Default 6.
    pub gzip_level: u32,
}

impl Default for Compress {
    fn default() -> Self {
        Compress {
            types: DEFAULT_TYPES.iter().map(|s| s.to_string()).collect(),
            min_size: ByteSize::kib(1),
            max_size: ByteSize::mib(8),
            encodings: Encoding::ALL.to_vec(),
            br_level: 5,
            zstd_level: 3,
            gzip_level: 6,
        }
    }
}

impl Compress {
    /// Check every key; errors name `<key>.compress.<field>` (`key` is e.g. `hosts[0]`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let k = |f: &str| format!("{key}.compress.{f}");
        for (i, t) in self.types.iter().enumerate() {
            if !valid_type_pattern(t) {
                return Err(ConfigError::new(
                    format!("{}[{i}]", k("types")),
                    format!("`{t}` is not a lower-case media type, `type/*` or `type/*+suffix`"),
                ));
            }
        }
        if self.max_size.as_u64() > 32 * 1024 * 1024 {
            return Err(ConfigError::new(k("max_size"), "must be at most 32 MiB"));
        }
        if self.min_size > self.max_size {
            return Err(ConfigError::new(
                k("min_size"),
                "must not be larger than max_size",
            ));
        }
        if self.encodings.is_empty() {
            return Err(ConfigError::new(k("encodings"), "must name at least one"));
        }
        for (i, e) in self.encodings.iter().enumerate() {
            if self.encodings[..i].contains(e) {
                return Err(ConfigError::new(
                    k("encodings"),
                    format!("`{}` is listed twice", e.as_str()),
                ));
            }
        }
        if self.br_level > 11 {
            return Err(ConfigError::new(k("br_level"), "must be in 0..=11"));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(ConfigError::new(k("zstd_level"), "must be in 1..=19"));
        }
        if !(1..=9).contains(&self.gzip_level) {
            return Err(ConfigError::new(k("gzip_level"), "must be in 1..=9"));
        }
        Ok(())
    }

    /// Whether a response of this `Content-Type` value is compressed.
    pub fn compressible(&self, content_type: &str) -> bool {
        let mt = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mt == "text/event-stream" {
            return false;
        }
        let Some((ty, sub)) = mt.split_once('/') else {
            return false;
        };
        self.types.iter().any(|p| type_matches(p, ty, sub))
    }
}

fn valid_type_pattern(p: &str) -> bool {
    let tok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    let Some((ty, sub)) = p.split_once('/') else {
        return false;
    };
    if !tok(ty) {
        return false;
    }
    match sub.strip_prefix('*') {
        Some("") => true,
        Some(rest) => rest.strip_prefix('+').is_some_and(tok),
        None => tok(sub),
    }
}

fn type_matches(pattern: &str, ty: &str, sub: &str) -> bool {
    let Some((pty, psub)) = pattern.split_once('/') else {
        return false;
    };
    if pty != ty {
        return false;
    }
    match psub.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => sub.len() > suffix.len() && sub.ends_with(suffix),
        None => psub == sub,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_types() {
        let c = Compress::default();
        assert!(c.compressible("text/plain; charset=utf-8"));
        assert!(c.compressible("Text/HTML"));
        assert!(c.compressible("application/json"));
        assert!(c.compressible("application/ld+json"));
        assert!(c.compressible("image/svg+xml"));
        assert!(c.compressible("application/wasm"));
        assert!(!c.compressible("application/+json"));
        assert!(!c.compressible("image/png"));
        assert!(!c.compressible("application/octet-stream"));
        assert!(!c.compressible("text/event-stream"));
        assert!(!c.compressible(""));
        assert!(!c.compressible("text"));
    }

    #[test]
    fn validation_names_the_key() {
        let bad = |f: &dyn Fn(&mut Compress)| {
            let mut c = Compress::default();
            f(&mut c);
            c.validate("hosts[2]").unwrap_err().to_string()
        };
        assert!(bad(&|c| c.types = vec!["Text/*".into()]).contains("hosts[2].compress.types[0]"));
        assert!(bad(&|c| c.types = vec!["text".into()]).contains("compress.types[0]"));
        assert!(bad(&|c| c.types = vec!["*/*".into()]).contains("compress.types[0]"));
        assert!(bad(&|c| c.br_level = 12).contains("hosts[2].compress.br_level"));
        assert!(bad(&|c| c.zstd_level = 0).contains("compress.zstd_level"));
        assert!(bad(&|c| c.gzip_level = 10).contains("compress.gzip_level"));
        assert!(bad(&|c| c.encodings.clear()).contains("compress.encodings"));
        assert!(
            bad(&|c| c.encodings = vec![Encoding::Br, Encoding::Br]).contains("compress.encodings")
        );
        assert!(bad(&|c| c.max_size = ByteSize::mib(64)).contains("compress.max_size"));
        assert!(bad(&|c| c.min_size = ByteSize::mib(9)).contains("compress.min_size"));
        assert!(Compress::default().validate("hosts[0]").is_ok());
        let ok = Compress {
            types: vec!["application/*+xml".into(), "font/woff".into()],
            ..Compress::default()
        };
        assert!(ok.validate("hosts[0]").is_ok());
    }
}
