//! Noticing that a file changed, so the router can reload the database or the network map.
//! No timers and no tokio here: the caller polls [`FileWatch::poll`] on its own schedule
//! (`geo.reload_interval`), then loads the new file with [`crate::locate::Locator::reload_db`]
//! or [`crate::locate::Locator::reload_map`], which keep the old one if the new one is bad.
//!
//! A change is any difference in length, modification time or (on Unix) inode, so both an
//! in-place rewrite and the recommended write-then-rename are seen.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What we compare to decide a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, when the platform reports one.
    pub modified: Option<SystemTime>,
    /// Inode number (0 where not available).
    pub inode: u64,
}

impl FileStamp {
    /// The stamp of the file at `path` (following symlinks).
    pub fn of(path: &Path) -> io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: inode(&meta),
        })
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// A file and the stamp it had when last loaded.
#[derive(Debug, Clone)]
pub struct FileWatch {
    path: PathBuf,
    last: Option<FileStamp>,
}

impl FileWatch {
    /// Watch `path`, taking its current stamp as "already loaded" (call this right after the
    /// initial load). A missing file has no stamp; its appearance counts as a change.
    pub fn new(path: impl Into<PathBuf>) -> FileWatch {
        let path = path.into();
        let last = FileStamp::of(&path).ok();
        FileWatch { path, last }
    }

    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(true)` once per change since the last call (or since [`FileWatch::new`]). An error
    /// (e.g. the file is gone) leaves the remembered stamp alone, so the file's return is seen.
    /// Whether or not the reload that follows succeeds, the new stamp is remembered: a bad file
    /// is reported once, not on every poll, and the next change is tried again.
    pub fn poll(&mut self) -> io::Result<bool> {
        let now = FileStamp::of(&self.path)?;
        if self.last == Some(now) {
            return Ok(false);
        }
        self.last = Some(now);
        Ok(true)
    }
}

/// What one check of watched files decides (the router's geo watcher and the edge's
/// certificate watcher both use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Idle,
    /// A change was seen; wait one more interval for it to settle.
    Settling,
    /// The change has been stable for a whole interval: reload now.
    Reload,
}

/// The pure decision of one check: `pending` is whether the previous check saw a change not
/// yet applied, `changed` whether this check saw one (on any file), `missing` whether a
/// watched file is absent now. A change is applied once a check finds no further change, so
/// a half-written file (or one file of a pair written after the other) is not loaded.
pub fn decide(pending: bool, changed: bool, missing: bool) -> Step {
    if changed || (pending && missing) {
        Step::Settling
    } else if pending {
        Step::Reload
    } else {
        Step::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_rewrites_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.txt");
        std::fs::write(&path, "a").unwrap();
        let mut watch = FileWatch::new(&path);
        assert!(!watch.poll().unwrap());
        std::fs::write(&path, "ab").unwrap();
        assert!(watch.poll().unwrap());
        assert!(!watch.poll().unwrap());
        // same length, new inode via rename
        let tmp = dir.path().join("map.tmp");
        std::fs::write(&tmp, "cd").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(watch.poll().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(watch.poll().is_err());
        std::fs::write(&path, "cd").unwrap();
        assert!(watch.poll().unwrap());
    }

    #[test]
    fn missing_at_start_then_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.mmdb");
        let mut watch = FileWatch::new(&path);
        assert!(watch.poll().is_err());
        std::fs::write(&path, "x").unwrap();
        assert!(watch.poll().unwrap());
        assert_eq!(FileStamp::of(&path).unwrap().len, 1);
    }
}
