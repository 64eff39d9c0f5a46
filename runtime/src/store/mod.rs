//! Durable state in redb: the table definitions, the store's format version (and the upgrade
//! from older ones at open), the single writer thread with group commit, and the start-up read
//! of everything stored. `ledger` keeps the compiled artifacts' digests here; `ranges` reads part
//! of a table (a log's chunks).
//!
//! Every write goes through one thread, which takes all writes waiting in its channel, applies
//! them in one transaction and commits once, then answers each caller. So a thousand concurrent
//! submits cost one fsync, not a thousand, and writes from one caller are applied in the order
//! they were sent. Callers await [`Store::write`], which resolves only after the commit that
//! includes their records.

#[cfg(feature = "fault-injection")]
pub mod faults;
mod ledger;
mod ranges;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{oneshot, watch};

pub(crate) use ledger::StoredLedger;

/// The layout of the tables this code writes. A data dir outlives the binary that wrote it, so
/// [`Store::open`] reads any older format (and upgrades it in place) and refuses a newer one.
///
/// - 1: the tables up to `LogChunks`; no `meta` table (a database without one is format 1).
/// - 2: adds `CompiledArtifacts` and `meta`. A format-1 database has no digests, so every
///   compiled artifact is compiled again once.
/// - 3: adds `ArrayChildren`: an array child keeps only what is its own there (its status,
///   attempts, times), and its parent's record in `Jobs` holds what they share (issue 14).
///   Formats 1 and 2 kept each child whole in `Jobs`; recovery reads such a child in any format
///   and moves it (`batch::recover`), in the first transaction after the open.
/// - 4: adds `SchedulingPolicies`. Older formats had none, so it starts empty.
/// - 5: adds `JobEvents`. Older formats recorded none, so it starts empty and the sequence
///   at 1.
/// - 6: a record in `Modules` carries `tags` (tag → digest), and `NAME` means `NAME:latest`.
///   Before, `NAME` meant the name's latest push, so the upgrade tags that push `latest`
///   ([`tag_latest_pushes`]); a format-5 binary would read a tagged record as if its latest
///   push were what `NAME` runs, so it is refused a format-6 store.
pub(crate) const FORMAT_VERSION: u64 = 6;

/// `format` → the [`FORMAT_VERSION`] the database was last opened with.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";

/// The tables. Keys are names or ids; values are JSON, so a record can be read by people and by
/// later versions that add fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    ComputeEnvironments,
    JobQueues,
    /// Keyed `name:revision`.
    JobDefinitions,
    /// Single jobs and array parents, whole (`model::Job`), keyed by submission sequence (see
    /// `batch::state::job_key`).
    Jobs,
    /// Module name → its pushes (digest, size, time).
    Modules,
    /// `<log key><chunk number, 10 digits>` → a chunk of an attempt's log events (`logs`).
    LogChunks,
    /// A compiled artifact's file name under `compiled/` → its sha256 and length, recorded when
    /// it was written (format 2).
    CompiledArtifacts,
    /// An array child's own part (`batch::job_slot::StoredChild`), keyed as `Jobs` is (format 3).
    ArrayChildren,
    /// Scheduling policies by name (format 4).
    SchedulingPolicies,
    /// Job state change events by sequence, 20 digits (`batch::events`; format 5).
    JobEvents,
}

impl Table {
    const ALL: [Table; 10] = [
        Table::ComputeEnvironments,
        Table::JobQueues,
        Table::JobDefinitions,
        Table::Jobs,
        Table::Modules,
        Table::LogChunks,
        Table::CompiledArtifacts,
        Table::ArrayChildren,
        Table::SchedulingPolicies,
        Table::JobEvents,
    ];

    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(match self {
            Table::ComputeEnvironments => "compute_environments",
            Table::JobQueues => "job_queues",
            Table::JobDefinitions => "job_definitions",
            Table::Jobs => "jobs",
            Table::Modules => "modules",
            Table::LogChunks => "log_chunks",
            Table::CompiledArtifacts => "compiled_artifacts",
            Table::ArrayChildren => "array_children",
            Table::SchedulingPolicies => "scheduling_policies",
            Table::JobEvents => "job_events",
        })
    }
}

/// One change to one table.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    Put {
        table: Table,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: String,
    },
    /// Deletes every key from `start` (included) to `end` (excluded): a log's chunks, whose
    /// keys the caller need not know one by one.
    DeleteRange {
        table: Table,
        start: String,
        end: String,
    },
}

impl Record {
    /// A put of `value` encoded as JSON.
    pub(crate) fn put(table: Table, key: impl Into<String>, value: &impl serde::Serialize) -> Self {
        Record::Put {
            table,
            key: key.into(),
            value: serde_json::to_vec(value).expect("model types always encode"),
        }
    }
}

/// Why the store failed. Any of these is the service's fault, not the caller's.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or read.
    #[error("cannot open the database {path}: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// redb's message.
        reason: String,
    },
    /// The database was written by a newer wasmbatch, in a format this one cannot read.
    #[error(
        "cannot open the database {path}: it is in store format {found}, written by a newer \
         wasmbatch; this one reads formats up to {supported}"
    )]
    NewerFormat {
        /// The database file.
        path: String,
        /// The format recorded in it.
        found: u64,
        /// The newest format this build reads ([`FORMAT_VERSION`]).
        supported: u64,
    },
    /// A transaction failed; nothing of it was written.
    #[error("storage write failed: {0}")]
    Write(String),
    /// A stored record could not be read back.
    #[error("storage read failed: {0}")]
    Read(String),
    /// A commit failed earlier, so the store takes no more writes until the service is
    /// restarted (fail-stop): nothing is acknowledged that a crash could lose.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The writer thread is gone (the store is shutting down).
    #[error("the store is closed")]
    Closed,
}

struct WriteRequest {
    /// Its place in the order of writes: the writer commits tickets in increasing order.
    ticket: u64,
    records: Vec<Record>,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

enum Message {
    Write(WriteRequest),
    /// Commit what came before, release the database and end the writer thread.
    Close(oneshot::Sender<()>),
}

/// How far the writer has got, for those waiting on a ticket and on the service's health.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Every write with a ticket up to this one is committed.
    pub(crate) through: u64,
    /// Why the store stopped taking writes, once a commit failed (fail-stop: redb answers every
    /// write after a failed one with `PreviousIo`, so nothing after it can be made durable).
    pub(crate) failed: Option<String>,
    /// The writer has ended ([`Store::close`]).
    pub(crate) closed: bool,
}

/// How a [`Store`] is opened.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    /// Most changes waiting for their commit at once (see [`Store::queue_slot`]).
    pub(crate) max_pending_changes: usize,
    /// Faults to inject into the database file's IO (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: Option<Arc<faults::StorageFaults>>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_pending_changes: DEFAULT_MAX_PENDING_CHANGES,
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }
}

/// The default of [`StoreConfig::max_pending_changes`]: far more than the writer's group needs to
/// stay full at 128 concurrent callers, far less than would hold a meaningful share of memory.
pub(crate) const DEFAULT_MAX_PENDING_CHANGES: usize = 4096;

/// The sending half of the writer's channel with the ticket counter, under one lock so that
/// tickets are handed out in the order requests enter the channel.
struct Sending {
    writes: mpsc::Sender<Message>,
    last_ticket: u64,
}

struct Inner {
    /// Taken by [`Store::close`]; readers clone the handle for the length of one read.
    db: std::sync::Mutex<Option<Arc<Database>>>,
    sending: std::sync::Mutex<Sending>,
    progress: watch::Sender<Progress>,
    /// One permit per change waiting for its commit: callers wait for one before they change
    /// anything, so a flood of requests waits at the door instead of growing the writer's queue.
    pending: Arc<tokio::sync::Semaphore>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    commits: CommitMetrics,
}

/// How the writer's commits go, for the service's metrics: each commit's time (the redb
/// transaction, its fsync included) and how many records it carried.
#[derive(Clone)]
pub(crate) struct CommitMetrics {
    pub(crate) seconds: Histogram,
    pub(crate) records: Histogram,
}

impl CommitMetrics {
    fn new() -> Self {
        Self {
            // 50 µs to ~3 s.
            seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
            // 1 to 8,192 records (the writer's largest group is of requests, each of several).
            records: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
        }
    }
}

/// Handle to the database and its writer thread. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

/// Most write requests folded into one transaction.
const MAX_GROUP: usize = 8192;

/// redb's page cache. Every record is also held in memory as state and only read back at
/// start, so the cache mostly serves the B-tree paths writes walk; redb's default (1 GiB) would
/// keep a second copy of every job in RAM.
const CACHE_BYTES: usize = 16 << 20;

impl Store {
    /// [`Store::open_with`] the default settings.
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &StoreConfig::default())
    }

    /// Opens (or creates) the database and starts the writer thread. Blocking: call it off the
    /// async workers.
    pub(crate) fn open_with(path: &Path, config: &StoreConfig) -> Result<Self, StoreError> {
        let open_error = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        // Opened by us rather than by redb, so that a new database is created 0600 (redb's
        // own create follows the umask); one made looser by an older version is tightened.
        let file = crate::private_files::open_or_create(path).map_err(|e| open_error(&e))?;
        match crate::private_files::tighten(path) {
            Ok(true) => tracing::warn!(
                path = %path.display(),
                "the database was readable by others; made it private (0600)"
            ),
            Ok(false) => {}
            Err(e) => return Err(open_error(&e)),
        }
        let backend = redb::backends::FileBackend::new(file).map_err(|e| open_error(&e))?;
        #[cfg(feature = "fault-injection")]
        let db = match &config.faults {
            Some(faults) => redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(faults::FaultyBackend::new(backend, faults.clone())),
            None => redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(backend),
        }
        .map_err(|e| open_error(&e))?;
        #[cfg(not(feature = "fault-injection"))]
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(|e| open_error(&e))?;
        check_format(&db, path).map_err(|e| match e {
            FormatError::Newer(found) => StoreError::NewerFormat {
                path: path.display().to_string(),
                found,
                supported: FORMAT_VERSION,
            },
            FormatError::Redb(e) => open_error(&e),
        })?;
        let db = Arc::new(db);
        let (writes, requests) = mpsc::channel();
        let (progress, _) = watch::channel(Progress::default());
        let writer_db = db.clone();
        let writer_progress = progress.clone();
        let commits = CommitMetrics::new();
        let writer_commits = commits.clone();
        let writer = std::thread::Builder::new()
            .name("wasmbatch-store".into())
            .spawn(move || write_loop(writer_db, &requests, &writer_progress, &writer_commits))
            .map_err(|e| open_error(&e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: std::sync::Mutex::new(Some(db)),
                sending: std::sync::Mutex::new(Sending {
                    writes,
                    last_ticket: 0,
                }),
                progress,
                pending: Arc::new(tokio::sync::Semaphore::new(
                    config.max_pending_changes.max(1),
                )),
                writer: std::sync::Mutex::new(Some(writer)),
                commits,
            }),
        })
    }

    /// Writes `records` in one transaction with whatever else is waiting, and resolves once it
    /// is committed.
    pub(crate) async fn write(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.send(records).await
    }

    /// Hands `records` to the writer now and returns a future for their commit. Sending while
    /// holding the lock that guards the changed state keeps the store's order of writes the
    /// same as the order of the changes. Refused at once once a commit has failed.
    pub(crate) fn send(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (done, committed) = oneshot::channel();
        let sent = self.enqueue(records, Some(done));
        async move {
            sent?;
            committed.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// [`Store::send`], and the ticket of the write (0 if it was refused).
    pub(crate) fn send_ticketed(
        &self,
        records: Vec<Record>,
    ) -> (u64, impl Future<Output = Result<(), StoreError>> + use<>) {
        let (done, committed) = oneshot::channel();
        let sent = self.enqueue(records, Some(done));
        let ticket = *sent.as_ref().unwrap_or(&0);
        (ticket, async move {
            sent?;
            committed.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// How the commits have gone so far.
    pub(crate) fn commit_metrics(&self) -> &CommitMetrics {
        &self.inner.commits
    }

    /// Every write with a ticket up to this one is committed.
    pub(crate) fn committed_through(&self) -> u64 {
        self.inner.progress.borrow().through
    }

    /// Queues `records` behind every write sent before, without waiting for the commit. For
    /// records whose loss in a crash is already accounted for by recovery.
    pub(crate) fn write_behind(&self, records: Vec<Record>) {
        let _ = self.enqueue(records, None);
    }

    fn enqueue(
        &self,
        records: Vec<Record>,
        done: Option<oneshot::Sender<Result<(), StoreError>>>,
    ) -> Result<u64, StoreError> {
        self.writable()?;
        let mut sending = self.inner.sending.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = sending.last_ticket + 1;
        sending
            .writes
            .send(Message::Write(WriteRequest {
                ticket,
                records,
                done,
            }))
            .map_err(|_| StoreError::Closed)?;
        sending.last_ticket = ticket;
        Ok(ticket)
    }

    /// `Ok` while the store takes writes; why not once a commit failed or it was closed.
    pub(crate) fn writable(&self) -> Result<(), StoreError> {
        let progress = self.inner.progress.borrow();
        match &progress.failed {
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
            None if progress.closed => Err(StoreError::Closed),
            None => Ok(()),
        }
    }

    /// Resolves once the write with `ticket`, and so every write before it, is committed; fails
    /// if the store fails or closes first.
    pub(crate) async fn committed(&self, ticket: u64) -> Result<(), StoreError> {
        let mut progress = self.inner.progress.subscribe();
        let progress = progress
            .wait_for(|p| p.through >= ticket || p.failed.is_some() || p.closed)
            .await
            .map_err(|_| StoreError::Closed)?;
        if progress.through >= ticket {
            Ok(())
        } else if let Some(reason) = &progress.failed {
            Err(StoreError::Unavailable(reason.clone()))
        } else {
            Err(StoreError::Closed)
        }
    }

    /// Resolves with how far commits have got once they are past `through`; `None` once the
    /// store has failed or closed, since nothing more will be committed.
    pub(crate) async fn committed_past(&self, through: u64) -> Option<u64> {
        let mut progress = self.inner.progress.subscribe();
        let progress = progress
            .wait_for(|p| p.through > through || p.failed.is_some() || p.closed)
            .await
            .ok()?;
        (progress.through > through).then_some(progress.through)
    }

    /// A place in the writer's queue for one change, held until the change is committed. Waits
    /// while [`StoreConfig::max_pending_changes`] changes are waiting for theirs.
    pub(crate) async fn queue_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        self.inner
            .pending
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Why the store takes no writes, once a commit has failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.inner.progress.borrow().failed.clone()
    }

    /// Resolves once a commit has failed (never, while the store works).
    pub(crate) async fn failed(&self) -> String {
        let mut progress = self.inner.progress.subscribe();
        let failed = progress
            .wait_for(|p| p.failed.is_some())
            .await
            .map(|p| p.failed.clone().unwrap_or_default());
        match failed {
            Ok(reason) => reason,
            // The store holds the sender for as long as it lives.
            Err(_) => std::future::pending().await,
        }
    }

    /// Commits what was sent before, ends the writer thread (joined) and releases the database
    /// file, so the same data dir can be opened again at once. Later writes fail with
    /// [`StoreError::Closed`].
    pub(crate) async fn close(&self) {
        let db = self
            .inner
            .db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let (done, closed) = oneshot::channel();
        let sent = self
            .inner
            .sending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writes
            .send(Message::Close(done));
        if sent.is_ok() {
            let _ = closed.await;
        }
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // The handle is dropped off the async workers: joining blocks, and so may the last
        // reader's release of the file.
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(writer) = writer {
                let _ = writer.join();
            }
            let Some(mut db) = db else { return };
            // A read in flight holds a clone for as long as it reads.
            for _ in 0..1000 {
                match Arc::try_unwrap(db) {
                    Ok(db) => return drop(db),
                    Err(shared) => db = shared,
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            tracing::warn!("a read still holds the database after close; it is released when done");
        })
        .await;
    }

    /// Runs `read` on `table` within one read transaction. Blocking.
    pub(crate) fn read_table<R>(
        &self,
        table: Table,
        read: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let error = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let db = self.db()?;
        let txn = db.begin_read().map_err(|e| error(&e))?;
        let opened = txn.open_table(table.definition()).map_err(|e| error(&e))?;
        read(&opened)
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.inner
            .db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// Every record of `table`, key and decoded value. Blocking.
    pub(crate) fn load<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        self.read_table(table, |opened| {
            let mut out = Vec::new();
            for entry in opened.iter().map_err(|e| read(&e))? {
                let (key, value) = entry.map_err(|e| read(&e))?;
                let decoded = serde_json::from_slice(value.value()).map_err(|e| {
                    StoreError::Read(format!("record {:?} in {table:?}: {e}", key.value()))
                })?;
                out.push((key.value().to_string(), decoded));
            }
            Ok(out)
        })
    }
}

impl Store {
    /// The records of `table` whose keys start with `prefix`, in key order. Blocking.
    pub(crate) fn load_prefix<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        self.read_table(table, |opened| {
            let mut out = Vec::new();
            for entry in opened.range(prefix..).map_err(|e| read(&e))? {
                let (key, value) = entry.map_err(|e| read(&e))?;
                if !key.value().starts_with(prefix) {
                    break;
                }
                out.push(serde_json::from_slice(value.value()).map_err(|e| read(&e))?);
            }
            Ok(out)
        })
    }
}

enum FormatError {
    Newer(u64),
    Redb(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for FormatError {
    fn from(e: E) -> Self {
        FormatError::Redb(e.into())
    }
}

/// Checks the format, then creates every table up front (upgrading an older format is only
/// that: its missing tables start empty) so readers never meet a missing one.
fn check_format(db: &Database, path: &Path) -> Result<(), FormatError> {
    let txn = db.begin_write()?;
    let fresh = txn.list_tables()?.next().is_none();
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(FORMAT_KEY)?.map(|v| v.value());
        match found {
            Some(found) if found > FORMAT_VERSION => return Err(FormatError::Newer(found)),
            Some(FORMAT_VERSION) => {}
            None if fresh => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION)?;
            }
            older => {
                tracing::info!(
                    path = %path.display(),
                    from = older.unwrap_or(1),
                    to = FORMAT_VERSION,
                    "upgrading the store's format"
                );
                meta.insert(FORMAT_KEY, FORMAT_VERSION)?;
                if older.unwrap_or(1) < 6 {
                    tag_latest_pushes(&txn)?;
                }
            }
        }
    }
    for table in Table::ALL {
        txn.open_table(table.definition())?;
    }
    txn.commit()?;
    Ok(())
}

/// The upgrade to format 6: each module record's latest push becomes its tag `latest`, so
/// that every `NAME` a job or definition names runs what it ran before.
fn tag_latest_pushes(txn: &redb::WriteTransaction) -> Result<(), FormatError> {
    let mut modules = txn.open_table(Table::Modules.definition())?;
    let mut upgraded = Vec::new();
    for entry in modules.iter()? {
        let (name, value) = entry?;
        let Ok(mut record) = serde_json::from_slice::<serde_json::Value>(value.value()) else {
            continue;
        };
        let Some(fields) = record.as_object_mut() else {
            continue;
        };
        if fields.contains_key("tags") {
            continue;
        }
        let latest = fields.get("digest").cloned().unwrap_or_default();
        fields.insert("tags".into(), serde_json::json!({ "latest": latest }));
        upgraded.push((name.value().to_string(), record.to_string()));
    }
    for (name, record) in upgraded {
        modules.insert(name.as_str(), record.as_bytes())?;
    }
    Ok(())
}

fn write_loop(
    db: Arc<Database>,
    requests: &mpsc::Receiver<Message>,
    progress: &watch::Sender<Progress>,
    metrics: &CommitMetrics,
) {
    let mut failed: Option<String> = None;
    while let Ok(first) = requests.recv() {
        let mut group = Vec::new();
        let mut close = None;
        match first {
            Message::Write(write) => group.push(write),
            Message::Close(done) => close = Some(done),
        }
        while close.is_none() && group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(Message::Write(write)) => group.push(write),
                Ok(Message::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        if let Some(last) = group.last() {
            let last = last.ticket;
            let result = match &failed {
                // redb refuses every write after a failed one; say why, not `PreviousIo`.
                Some(reason) => Err(StoreError::Unavailable(reason.clone())),
                None => timed_commit(&db, &group, metrics).map_err(|e| {
                    let reason = e.to_string();
                    // Logged once: every later write is refused with this reason, unlogged.
                    tracing::error!(
                        "storage write of {} requests failed; taking no more changes: {reason}",
                        group.len()
                    );
                    failed = Some(reason.clone());
                    progress.send_modify(|p| p.failed = Some(reason.clone()));
                    StoreError::Write(reason)
                }),
            };
            if result.is_ok() {
                progress.send_modify(|p| p.through = last);
            }
            for request in group {
                if let Some(done) = request.done {
                    let _ = done.send(result.clone());
                }
            }
        }
        if let Some(done) = close {
            drop(db);
            progress.send_modify(|p| p.closed = true);
            let _ = done.send(());
            return;
        }
    }
}

fn timed_commit(
    db: &Database,
    group: &[WriteRequest],
    metrics: &CommitMetrics,
) -> Result<(), redb::Error> {
    let started = std::time::Instant::now();
    commit(db, group)?;
    metrics.seconds.observe(started.elapsed().as_secs_f64());
    let records: usize = group.iter().map(|r| r.records.len()).sum();
    metrics.records.observe(records as f64);
    Ok(())
}

fn commit(db: &Database, group: &[WriteRequest]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for table in Table::ALL {
            // Pushed in `Table::ALL` order, which is declaration order: `table as usize` finds it.
            tables.push(txn.open_table(table.definition())?);
        }
        for record in group.iter().flat_map(|r| &r.records) {
            match record {
                Record::Put { table, key, value } => {
                    tables[*table as usize].insert(key.as_str(), value.as_slice())?;
                }
                Record::Delete { table, key } => {
                    tables[*table as usize].remove(key.as_str())?;
                }
                Record::DeleteRange { table, start, end } => {
                    tables[*table as usize]
                        .retain_in::<&str, _>(start.as_str()..end.as_str(), |_, _| false)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_are_durable_and_grouped_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            let writes: Vec<_> = (0..500)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .write(vec![Record::put(Table::Jobs, format!("job-{i:03}"), &i)])
                            .await
                    })
                })
                .collect();
            for write in writes {
                write.await.unwrap().unwrap();
            }
            store
                .write(vec![Record::Delete {
                    table: Table::Jobs,
                    key: "job-007".into(),
                }])
                .await
                .unwrap();
            store.close().await;
        }
        // Closed means released: the file opens again at once.
        let store = Store::open(&path).unwrap();
        let jobs: Vec<(String, u32)> = store.load(Table::Jobs).unwrap();
        assert_eq!(jobs.len(), 499);
        assert_eq!(jobs[0], ("job-000".to_string(), 0));
        assert!(!jobs.iter().any(|(k, _)| k == "job-007"));
        assert!(store.load::<u32>(Table::JobQueues).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_range_delete_removes_exactly_the_keys_in_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let puts = ["a", "b-1", "b-2", "c", "d"]
            .map(|k| Record::put(Table::LogChunks, k, &1))
            .to_vec();
        store.write(puts).await.unwrap();
        store
            .write(vec![Record::DeleteRange {
                table: Table::LogChunks,
                start: "b".into(),
                end: "d".into(),
            }])
            .await
            .unwrap();
        let left: Vec<String> = store
            .load::<u32>(Table::LogChunks)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, ["a", "d"], "start included, end excluded");
    }

    /// What a wasmbatch from before store formats wrote (format 1): the six tables of that
    /// time, no `meta`, no `compiled_artifacts`.
    fn write_format_1(path: &Path) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        for name in [
            "compute_environments",
            "job_queues",
            "job_definitions",
            "jobs",
            "modules",
            "log_chunks",
        ] {
            txn.open_table(TableDefinition::<&str, &[u8]>::new(name))
                .unwrap();
        }
        txn.open_table(TableDefinition::<&str, &[u8]>::new("jobs"))
            .unwrap()
            .insert("job-1", br#""SUCCEEDED""#.as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    fn format_of(store: &Store) -> Option<u64> {
        let txn = store.db().unwrap().begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        meta.get(FORMAT_KEY).unwrap().map(|v| v.value())
    }

    #[tokio::test]
    async fn a_database_of_the_previous_format_opens_and_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        write_format_1(&path);
        let store = Store::open(&path).unwrap();
        assert_eq!(format_of(&store), Some(FORMAT_VERSION));
        let jobs: Vec<(String, String)> = store.load(Table::Jobs).unwrap();
        assert_eq!(jobs, [("job-1".to_string(), "SUCCEEDED".to_string())]);
        // The new table is there, empty: no artifact is trusted, each compiles once more; and
        // the writer records into it.
        use crate::engine::{ArtifactDigest, ArtifactLedger as _};
        let ledger = StoredLedger::open(store.clone()).unwrap();
        assert_eq!(ledger.expected("a.cwasm"), None);
        let digest = ArtifactDigest::of(b"artifact");
        ledger.record("a.cwasm", digest);
        store.write(Vec::new()).await.unwrap();
        let reopened = StoredLedger::open(store.clone()).unwrap();
        assert_eq!(reopened.expected("a.cwasm"), Some(digest));
    }

    #[test]
    fn a_new_database_is_written_in_the_current_format() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        assert_eq!(format_of(&store), Some(FORMAT_VERSION));
    }

    #[test]
    fn a_database_of_a_newer_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, FORMAT_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let error = Store::open(&path)
            .err()
            .expect("a newer format must be refused");
        assert!(
            matches!(error, StoreError::NewerFormat { found, supported, .. }
                if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
            "{error}"
        );
        let db = Database::open(&path).unwrap();
        let tables: Vec<String> = db
            .begin_read()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| redb::TableHandle::name(&t).to_string())
            .collect();
        assert_eq!(tables, ["meta"], "nothing was added to it");
    }

    #[cfg(unix)]
    #[test]
    fn the_database_file_is_private_new_or_old() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.redb");
        drop(Store::open(&new).unwrap());
        assert_eq!(mode(&new), 0o600, "created private");
        // As an older wasmbatch (or redb's own create) left it.
        let old = dir.path().join("old.redb");
        drop(Database::create(&old).unwrap());
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = Store::open(&old).unwrap();
        assert_eq!(mode(&old), 0o600, "tightened");
    }

    #[tokio::test]
    async fn later_writes_from_one_caller_win() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        store.write_behind(vec![Record::put(Table::Jobs, "a", &"RUNNING")]);
        store
            .write(vec![Record::put(Table::Jobs, "a", &"SUCCEEDED")])
            .await
            .unwrap();
        let jobs: Vec<(String, String)> = store.load(Table::Jobs).unwrap();
        assert_eq!(jobs, [("a".to_string(), "SUCCEEDED".to_string())]);
    }

    #[tokio::test]
    async fn a_closed_store_refuses_writes_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        store.close().await;
        let error = store.write(Vec::new()).await.unwrap_err();
        assert!(matches!(error, StoreError::Closed), "{error}");
        assert!(matches!(
            store.load::<u32>(Table::Jobs),
            Err(StoreError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_ticket_resolves_once_its_write_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        store.write_behind(vec![Record::put(Table::Jobs, "a", &"RUNNING")]);
        let (ticket, _) = store.send_ticketed(vec![Record::put(Table::Jobs, "b", &"RUNNABLE")]);
        assert_eq!(
            ticket, 2,
            "tickets count writes in the order they were sent"
        );
        store.committed(ticket).await.unwrap();
        assert!(store.committed_through() >= ticket);
        let jobs: Vec<(String, String)> = store.load(Table::Jobs).unwrap();
        assert_eq!(
            jobs,
            [
                ("a".to_string(), "RUNNING".to_string()),
                ("b".to_string(), "RUNNABLE".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn changes_past_the_bound_wait_for_a_place_in_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        // The rest is the fault-injection feature's field, absent without it.
        #[allow(clippy::needless_update)]
        let config = StoreConfig {
            max_pending_changes: 2,
            ..StoreConfig::default()
        };
        let store = Store::open_with(&dir.path().join("state.redb"), &config).unwrap();
        let first = store.queue_slot().await.unwrap();
        let _second = store.queue_slot().await.unwrap();
        let third = store.queue_slot();
        tokio::pin!(third);
        assert!(
            futures_poll_once(third.as_mut()).await.is_none(),
            "a third change waits while two are pending"
        );
        drop(first);
        let _third = third.await.unwrap();
    }

    /// Polls `future` once: its output if it was ready.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
