//! Finding the binaries under test. Cargo sets `CARGO_BIN_EXE_<name>` only for the package
//! whose tests run, so `dns-router` and `edge` are looked up next to the running executable
//! (`target/<profile>/`, or `$CDN_BIN_DIR` when set). A missing binary is built with
//! `cargo build` in the same profile (its progress shown on stderr); a build failure is an
//! error naming the binary, never a silent skip. `CDN_TEST_REBUILD=1` rebuilds (a no-op when
//! up to date) even when present.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context};

/// The package that owns each binary we start.
pub fn package_of(bin: &str) -> Option<&'static str> {
    match bin {
        "dns-router" => Some("cdn-dns-router"),
        "edge" => Some("cdn-edge"),
        "demo-origin" | "fleet" | "soak" => Some("cdn-tests"),
        _ => None,
    }
}

/// The directory the running executable's sibling binaries live in: `target/<profile>/`
/// for both a test (`target/<profile>/deps/<test>-<hash>`) and a binary
/// (`target/<profile>/<bin>`).
pub fn profile_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("CDN_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut dir = exe
        .parent()
        .context("the current executable has no parent directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Whether `dir` is a release profile directory.
pub fn is_release(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "release")
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Path of the binary `name` (`dns-router`, `edge`, `demo-origin`, `fleet`), building it
/// when missing.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let Some(package) = package_of(name) else {
        bail!("unknown binary `{name}` (expected dns-router, edge, demo-origin or fleet)");
    };
    let dir = profile_dir()?;
    let path = dir.join(name);
    let rebuild = std::env::var("CDN_TEST_REBUILD").is_ok_and(|v| v == "1");
    if path.is_file() && !rebuild {
        return Ok(path);
    }
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if path.is_file() && !rebuild {
        return Ok(path);
    }
    eprintln!(
        "`{name}` not found in {} (run `cargo build --workspace --bins` first to skip this); building it",
        dir.display()
    );
    build(&[(package, name)], is_release(&dir))?;
    if !path.is_file() {
        bail!(
            "cargo built `{name}` but it is not in {} (is CARGO_TARGET_DIR different from the \
             one the tests were built in? set CDN_BIN_DIR)",
            dir.display()
        );
    }
    Ok(path)
}

/// `cargo build [--release] -p <package> --bin <bin>…` in this workspace, progress on stderr.
///
/// Run from `cargo run` or `cargo test`, this process has the variables cargo sets for *its*
/// package (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …); they are not passed on: build scripts
/// that track them (ring's tracks `CARGO_MANIFEST_DIR`) would see them change between this
/// build and the user's own, and cargo would rebuild ring, rustls and everything above them
/// both times (the fleet's first start took ~4 minutes longer).
pub fn build(targets: &[(&str, &str)], release: bool) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(&cargo);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(is_package_variable) {
            cmd.env_remove(&k);
        }
    }
    cmd.arg("build").arg("--manifest-path").arg(&manifest);
    if release {
        cmd.arg("--release");
    }
    for (package, bin) in targets {
        cmd.args(["-p", package, "--bin", bin]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {cmd:?} (is cargo installed and on PATH?)"))?;
    if !status.success() {
        let names: Vec<&str> = targets.iter().map(|(_, b)| *b).collect();
        bail!(
            "building {} failed ({status}); see cargo's output above",
            names.join(", ")
        );
    }
    Ok(())
}

/// A variable cargo sets for the package whose program or test it runs (not one that
/// configures cargo itself, such as `CARGO_TARGET_DIR` or `CARGO_HOME`).
fn is_package_variable(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name == "CARGO_PRIMARY_PACKAGE"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_variables_are_told_from_cargo_settings() {
        for v in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(is_package_variable(v), "{v}");
        }
        for v in [
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO",
            "CARGO_INCREMENTAL",
            "PATH",
        ] {
            assert!(!is_package_variable(v), "{v}");
        }
    }

    #[test]
    fn the_profile_dir_is_next_to_deps() {
        let dir = profile_dir().unwrap();
        assert!(dir.is_dir());
        assert_ne!(dir.file_name().unwrap(), "deps");
        assert_eq!(package_of("edge"), Some("cdn-edge"));
        assert!(binary("no-such-binary").is_err());
    }
}
