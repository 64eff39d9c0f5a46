//! Each attempt's private scratch directory (`/scratch` in the guest), under
//! `<data_dir>/scratch`. An attempt that leaves its directory empty hands it back for the next
//! one, because making and removing a directory costs more than the rest of a small job; one
//! that leaves files has its directory removed off the async workers.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct ScratchDirs {
    root: PathBuf,
    /// Makes directory names unique across processes sharing a data dir.
    prefix: String,
    seq: AtomicU64,
    keep: bool,
    /// Empty directories ready for the next attempt.
    idle: Mutex<Vec<PathBuf>>,
    max_idle: usize,
}

impl ScratchDirs {
    pub(crate) fn new(root: PathBuf, keep: bool, max_idle: usize) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            root,
            prefix: format!("{}-{}", std::process::id(), started.as_nanos()),
            seq: AtomicU64::new(0),
            keep,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An empty directory for one attempt; it goes back when the returned guard drops.
    pub(crate) fn take(&self) -> io::Result<Scratch<'_>> {
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let path = match reused {
            Some(path) => path,
            None => {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let path = self.root.join(format!("{}-{seq}", self.prefix));
                // 0700: the guest's files are the job's, not other local users'.
                crate::private_files::create_dir(&path)?;
                path
            }
        };
        Ok(Scratch { dirs: self, path })
    }

    fn give_back(&self, path: PathBuf) {
        if self.keep {
            return;
        }
        if is_empty(&path) {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.max_idle {
                idle.push(path);
                return;
            }
            drop(idle);
            if std::fs::remove_dir(&path).is_ok() {
                return;
            }
        }
        // What the guest left may be large; remove it on the blocking pool.
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), "could not remove scratch directory: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

impl Drop for ScratchDirs {
    fn drop(&mut self) {
        for path in self
            .idle
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = std::fs::remove_dir(path);
        }
    }
}

fn is_empty(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// One attempt's scratch directory; handed back (or removed) when dropped.
pub(crate) struct Scratch<'a> {
    dirs: &'a ScratchDirs,
    path: PathBuf,
}

impl Scratch<'_> {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        self.dirs.give_back(std::mem::take(&mut self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_directory_is_reused_and_a_used_one_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dirs = ScratchDirs::new(root.path().to_path_buf(), false, 4);
        let first = dirs.take().unwrap();
        let first_path = first.path().to_path_buf();
        drop(first);
        let second = dirs.take().unwrap();
        assert_eq!(second.path(), first_path, "an empty directory is reused");
        std::fs::write(second.path().join("left-behind"), "x").unwrap();
        drop(second);
        assert!(
            !first_path.exists(),
            "a directory with files is removed, not reused"
        );
        let third = dirs.take().unwrap();
        assert_ne!(third.path(), first_path);
        assert!(std::fs::read_dir(third.path()).unwrap().next().is_none());
    }

    #[test]
    fn kept_directories_stay_and_are_never_reused() {
        let root = tempfile::tempdir().unwrap();
        let dirs = ScratchDirs::new(root.path().to_path_buf(), true, 4);
        let first = dirs.take().unwrap().path().to_path_buf();
        let second = dirs.take().unwrap().path().to_path_buf();
        assert_ne!(first, second);
        assert!(first.exists() && second.exists());
    }
}
