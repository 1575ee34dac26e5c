//! Where the optional GeoLite2 City database used by tests and benchmarks is:
//! `$CDN_GEOLITE2_CITY`, else `target/testdata/GeoLite2-City.mmdb` in the workspace (fetched by
//! `scripts/fetch-geolite2.sh`; never committed).

use std::path::PathBuf;

/// The environment variable that names the database file.
pub const ENV: &str = "CDN_GEOLITE2_CITY";

/// The database path to use: `$CDN_GEOLITE2_CITY`, else the workspace's
/// `target/testdata/GeoLite2-City.mmdb`.
pub fn geolite2_city_path() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testdata/GeoLite2-City.mmdb")
        }
    }
}

/// [`geolite2_city_path`] when that file exists; otherwise `None`, after printing
/// `skipped: file absent: …` to stderr (callers skip what needs the database).
pub fn geolite2_city() -> Option<PathBuf> {
    let path = geolite2_city_path();
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: file absent: {} (run scripts/fetch-geolite2.sh or set {ENV})",
            path.display()
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_path_is_in_the_workspace_target_dir() {
        if std::env::var_os(ENV).is_none() {
            let p = geolite2_city_path();
            assert!(p.ends_with("target/testdata/GeoLite2-City.mmdb"), "{p:?}");
            assert!(p.starts_with(env!("CARGO_MANIFEST_DIR")), "{p:?}");
        }
    }
}
