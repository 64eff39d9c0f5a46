//! Faults injected into the database file's IO, to test what the service does when its disk
//! fails (a write or an fsync that errs, a full disk) without a real failing disk. Built only
//! with the `fault-injection` feature, which the end-to-end tests turn on; give a
//! [`StorageFaults`] to [`BatchConfig::storage_faults`](crate::BatchConfig) and arm it.

use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;

/// Switches for the faults of one database. Shared: arm it from the test while the service runs.
#[derive(Debug, Default)]
pub struct StorageFaults {
    /// Writes still allowed before every write fails; `u64::MAX` while disarmed.
    writes_left: AtomicU64,
    fail_syncs: AtomicBool,
    disk_full: AtomicBool,
    /// Writes and syncs that failed, so a test can tell the fault was hit.
    injected: AtomicU64,
}

impl StorageFaults {
    /// No faults until one is armed.
    pub fn new() -> Arc<Self> {
        let faults = Self::default();
        faults.writes_left.store(u64::MAX, Ordering::SeqCst);
        Arc::new(faults)
    }

    /// The next `writes` writes to the file succeed, every one after fails with an IO error.
    pub fn fail_writes_after(&self, writes: u64) {
        self.writes_left.store(writes, Ordering::SeqCst);
    }

    /// Every fsync fails (`EIO`), as a disk that lost its writes reports it.
    pub fn fail_syncs(&self) {
        self.fail_syncs.store(true, Ordering::SeqCst);
    }

    /// Every write that would grow the file fails with `ENOSPC`, as on a full disk.
    pub fn fill_disk(&self) {
        self.disk_full.store(true, Ordering::SeqCst);
    }

    /// Disarms every fault: the file works again (redb itself still refuses writes after one
    /// failed, until the database is reopened).
    pub fn heal(&self) {
        self.writes_left.store(u64::MAX, Ordering::SeqCst);
        self.fail_syncs.store(false, Ordering::SeqCst);
        self.disk_full.store(false, Ordering::SeqCst);
    }

    /// How many writes and syncs failed by injection so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn fail(&self, kind: io::ErrorKind, what: &str) -> io::Error {
        self.injected.fetch_add(1, Ordering::SeqCst);
        io::Error::new(kind, format!("injected fault: {what}"))
    }

    fn check_write(&self, grows: bool) -> io::Result<()> {
        if self.disk_full.load(Ordering::SeqCst) && grows {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let left = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                u64::MAX => Some(n),
                0 => None,
                n => Some(n - 1),
            });
        match left {
            Ok(_) => Ok(()),
            Err(_) => Err(self.fail(io::ErrorKind::Other, "write failed")),
        }
    }
}

/// redb's file backend with [`StorageFaults`] in front of its writes and syncs.
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    file: FileBackend,
    faults: Arc<StorageFaults>,
}

impl FaultyBackend {
    pub(crate) fn new(file: FileBackend, faults: Arc<StorageFaults>) -> Self {
        Self { file, faults }
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let grows = len > self.file.len()?;
        self.faults.check_write(grows)?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.faults.fail_syncs.load(Ordering::SeqCst) {
            return Err(self.faults.fail(io::ErrorKind::Other, "fsync failed"));
        }
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let grows = offset + data.len() as u64 > self.file.len()?;
        self.faults.check_write(grows)?;
        self.file.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    // The file's lock is the real one: two processes must still be kept off one database.
    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.query_lock_range(start, end)
    }
}
