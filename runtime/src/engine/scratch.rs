//! Each attempt's private scratch directory (`/scratch` in the guest), under
//! `<data_dir>/scratch`. An attempt that leaves its directory empty hands it back for the next
//! one, because making and removing a directory costs more than the rest of a small job; one
//! that leaves files has its directory removed off the async workers. A directory is kept open
//! while it is in use or idle, so that seeing whether it was left empty reads the open handle
//! (lseek and getdents64) instead of opening it by path again (issue 18: the check by path was
//! an eighth of a warm hello's time).

use std::fs::File;
use std::io::{self, Seek as _};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct ScratchDirs {
    root: PathBuf,
    /// Makes directory names unique across processes sharing a data dir.
    prefix: String,
    seq: AtomicU64,
    keep: bool,
    /// Empty directories ready for the next attempt, each with its open handle.
    idle: Mutex<Vec<(PathBuf, File)>>,
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
        let (path, handle) = match reused {
            Some(reused) => reused,
            None => {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let path = self.root.join(format!("{}-{seq}", self.prefix));
                // 0700: the guest's files are the job's, not other local users'.
                crate::private_files::create_dir(&path)?;
                let handle = File::open(&path)?;
                (path, handle)
            }
        };
        Ok(Scratch {
            dirs: self,
            path,
            handle: Some(handle),
        })
    }

    fn give_back(&self, path: PathBuf, handle: Option<File>) {
        if self.keep {
            return;
        }
        if let Some(mut handle) = handle
            && is_empty(&mut handle, &path)
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.max_idle {
                idle.push((path, handle));
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
            let _ = std::fs::remove_dir(path.0);
        }
    }
}

/// Whether the directory open as `handle` holds nothing but `.` and `..`: read from its start
/// (which the last look moved). Any failure counts as not empty, so the directory is removed
/// rather than reused.
#[cfg(target_os = "linux")]
fn is_empty(handle: &mut File, _path: &Path) -> bool {
    if handle.rewind().is_err() {
        return false;
    }
    // Room for `.`, `..` and the first real entry of any name length.
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let mut entries = rustix::fs::RawDir::new(&*handle, &mut buf);
    while let Some(entry) = entries.next() {
        match entry {
            Ok(entry) if matches!(entry.file_name().to_bytes(), b"." | b"..") => {}
            _ => return false,
        }
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn is_empty(_handle: &mut File, path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// One attempt's scratch directory; handed back (or removed) when dropped.
pub(crate) struct Scratch<'a> {
    dirs: &'a ScratchDirs,
    path: PathBuf,
    /// The directory, open, for [`is_empty`].
    handle: Option<File>,
}

impl Scratch<'_> {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        self.dirs
            .give_back(std::mem::take(&mut self.path), self.handle.take());
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
        // Written to and emptied again, by files and a directory: empty, so reused, however
        // often its handle was read before.
        let third_path = third.path().to_path_buf();
        drop(third);
        for _ in 0..3 {
            let again = dirs.take().unwrap();
            assert_eq!(again.path(), third_path);
            std::fs::write(again.path().join("a"), "x").unwrap();
            std::fs::create_dir(again.path().join("d")).unwrap();
            std::fs::remove_file(again.path().join("a")).unwrap();
            std::fs::remove_dir(again.path().join("d")).unwrap();
        }
        // Only a subdirectory left: not empty.
        let last = dirs.take().unwrap();
        std::fs::create_dir(last.path().join("left")).unwrap();
        drop(last);
        assert!(!third_path.exists(), "a directory left inside is removed");
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
