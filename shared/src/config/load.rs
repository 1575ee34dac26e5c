//! Loading: TOML file + `CDN_<SECTION>__<KEY>` environment overrides (figment), unknown keys
//! rejected by serde, then [`Validate`] turns the raw values into a checked config.
//!
//! Every failure becomes one [`ConfigError`] that names the file and the key, so `main` can
//! print it and exit with [`EXIT_CONFIG`].

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;

/// Exit status for any configuration error (`EX_USAGE` in sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Prefix of environment overrides: `CDN_DNS__LISTEN='["127.0.0.1:53"]'` sets `dns.listen`.
pub const ENV_PREFIX: &str = "CDN_";

/// One configuration error: where it came from and which key is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `environment`) the bad value came from, when known.
    pub file: Option<String>,
    /// Dotted key path, e.g. `edges[1].id` or `dns.listen`; empty when the whole file is bad.
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// An error about `key` with `message`; the source is filled in by [`load`].
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            key: key.into(),
            message: message.into(),
        }
    }

    fn with_source(mut self, source: &str) -> Self {
        if self.file.is_none() {
            self.file = Some(source.to_string());
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error")?;
        if let Some(src) = &self.file {
            write!(f, " in {src}")?;
        }
        if !self.key.is_empty() {
            write!(f, " at key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A raw (deserialized) config that can check itself: cross-field rules that serde cannot
/// express (duplicate ids, references to unknown regions, ranges).
pub trait Validate {
    /// Check the whole config; the first problem found is returned with its key.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Load `T` from `path` (if any) with `CDN_` environment overrides, then validate it.
pub fn load<T: DeserializeOwned + Validate>(path: Option<&Path>) -> Result<T, ConfigError> {
    load_with_env(path, CdnEnv(Env::prefixed(ENV_PREFIX).split("__")))
}

/// Keys whose values are secrets: always text, whatever they look like (`CDN_REPORT__TOKEN=
/// 12345` is the token "12345", not a number refused with the secret echoed in the error).
const SECRET_KEYS: &[&str] = &[
    "token",
    "purge_token",
    "password",
    "user",
    "nkey",
    "secret",
    "key",
];

/// The `CDN_<SECTION>__<KEY>` overrides: figment's environment provider, except that variables
/// without a `__` (`CDN_HOME`, set for something else) are not config keys and are ignored, and
/// [`SECRET_KEYS`] keep their text as it is.
struct CdnEnv(Env);

impl figment::Provider for CdnEnv {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Value};
        fn merge(into: &mut Dict, from: Dict) {
            for (k, v) in from {
                match (into.get_mut(&k), v) {
                    (Some(Value::Dict(_, a)), Value::Dict(_, b)) => merge(a, b),
                    (_, v) => {
                        into.insert(k, v);
                    }
                }
            }
        }
        let mut dict = Dict::new();
        for (k, v) in self.0.iter() {
            let key = k.as_str();
            let Some((_, last)) = key.rsplit_once('.') else {
                continue;
            };
            let value = if SECRET_KEYS.contains(&last) {
                Value::from(v)
            } else {
                v.parse().expect("parsing an env value is infallible")
            };
            if let Some(nested) = figment::util::nest(key, value).into_dict() {
                merge(&mut dict, nested);
            }
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Load from a TOML string (tests and embedded configs); no environment overrides.
pub fn load_str<T: DeserializeOwned + Validate>(toml: &str) -> Result<T, ConfigError> {
    let fig = Figment::from(Toml::string(toml));
    extract(fig, "<inline>")
}

fn load_with_env<T: DeserializeOwned + Validate>(
    path: Option<&Path>,
    env: impl figment::Provider,
) -> Result<T, ConfigError> {
    let source = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<defaults>".to_string());
    let mut fig = Figment::new();
    if let Some(p) = path {
        if !p.is_file() {
            return Err(ConfigError {
                file: Some(source),
                key: String::new(),
                message: "file not found or not a regular file".into(),
            });
        }
        // Read it ourselves so a TOML syntax error is reported with the file name.
        let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
            file: Some(source.clone()),
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        fig = fig.merge(Toml::string(&text));
    }
    fig = fig.merge(env);
    extract(fig, &source)
}

fn extract<T: DeserializeOwned + Validate>(fig: Figment, source: &str) -> Result<T, ConfigError> {
    let value: T = fig.extract().map_err(|e| from_figment(e, source))?;
    value.validate().map_err(|e| e.with_source(source))?;
    Ok(value)
}

fn from_figment(err: figment::Error, source: &str) -> ConfigError {
    // figment may chain several errors; report the first, it names its key.
    let first = err.into_iter().next();
    let Some(e) = first else {
        return ConfigError::new("", "invalid configuration").with_source(source);
    };
    let from_env = e
        .metadata
        .as_ref()
        .map(|m| m.name.to_lowercase().contains("environment"))
        .unwrap_or(false);
    let key = join_path(&e.path);
    let message = match &e.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            let full = if key.is_empty() {
                field.clone()
            } else if key == *field || key.ends_with(&format!(".{field}")) {
                key.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError {
                file: Some(source_name(from_env, source)),
                key: full,
                message: format!("unknown key (expected one of: {})", expected.join(", ")),
            };
        }
        figment::error::Kind::MissingField(field) => {
            let full = if key.is_empty() || key.ends_with(field.as_ref()) {
                if key.is_empty() {
                    field.to_string()
                } else {
                    key.clone()
                }
            } else {
                format!("{key}.{field}")
            };
            return ConfigError {
                file: Some(source_name(from_env, source)),
                key: full,
                message: "required key is missing".into(),
            };
        }
        other => other.to_string(),
    };
    ConfigError {
        file: Some(source_name(from_env, source)),
        key,
        message,
    }
}

/// `["zones", "0", "ns"]` → `zones[0].ns`, the same shape validation errors use.
fn join_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

fn source_name(from_env: bool, file: &str) -> String {
    if from_env {
        "environment (CDN_*)".to_string()
    } else {
        file.to_string()
    }
}

/// Where to find a config file named on the command line, relative paths resolved against the
/// current directory (used for relative paths *inside* the config too).
pub fn config_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(|p| p.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."))
}
