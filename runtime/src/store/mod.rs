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

mod ledger;
mod ranges;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

pub(crate) use ledger::StoredLedger;

/// The layout of the tables this code writes. A data dir outlives the binary that wrote it, so
/// [`Store::open`] reads any older format (and upgrades it in place) and refuses a newer one.
///
/// - 1: the tables up to `LogChunks`; no `meta` table (a database without one is format 1).
/// - 2: adds `CompiledArtifacts` and `meta`. A format-1 database has no digests, so every
///   compiled artifact is compiled again once.
pub(crate) const FORMAT_VERSION: u64 = 2;

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
    /// Keyed by submission sequence (see `batch::jobs::job_key`).
    Jobs,
    /// Module name → its pushes (digest, size, time).
    Modules,
    /// `<log key><chunk number, 10 digits>` → a chunk of an attempt's log events (`logs`).
    LogChunks,
    /// A compiled artifact's file name under `compiled/` → its sha256 and length, recorded when
    /// it was written (format 2).
    CompiledArtifacts,
}

impl Table {
    const ALL: [Table; 7] = [
        Table::ComputeEnvironments,
        Table::JobQueues,
        Table::JobDefinitions,
        Table::Jobs,
        Table::Modules,
        Table::LogChunks,
        Table::CompiledArtifacts,
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
    /// The writer thread is gone (the store is shutting down).
    #[error("the store is closed")]
    Closed,
}

struct WriteRequest {
    records: Vec<Record>,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// Handle to the database and its writer thread. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    db: Arc<Database>,
    writes: mpsc::Sender<WriteRequest>,
}

/// Most write requests folded into one transaction.
const MAX_GROUP: usize = 8192;

/// redb's page cache. Every record is also held in memory as state and only read back at
/// start, so the cache mostly serves the B-tree paths writes walk; redb's default (1 GiB) would
/// keep a second copy of every job in RAM.
const CACHE_BYTES: usize = 16 << 20;

impl Store {
    /// Opens (or creates) the database and starts the writer thread. Blocking: call it off the
    /// async workers.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
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
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(|e| open_error(&e))?;
        // Check the format, then create every table up front (upgrading an older format is
        // only that: its missing tables start empty) so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| open_error(&e))?;
        let fresh = txn
            .list_tables()
            .map_err(|e| open_error(&e))?
            .next()
            .is_none();
        {
            let mut meta = txn.open_table(META).map_err(|e| open_error(&e))?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(|e| open_error(&e))?
                .map(|v| v.value());
            match found {
                Some(found) if found > FORMAT_VERSION => {
                    return Err(StoreError::NewerFormat {
                        path: path.display().to_string(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                Some(FORMAT_VERSION) => {}
                None if fresh => {
                    meta.insert(FORMAT_KEY, FORMAT_VERSION)
                        .map_err(|e| open_error(&e))?;
                }
                older => {
                    tracing::info!(
                        path = %path.display(),
                        from = older.unwrap_or(1),
                        to = FORMAT_VERSION,
                        "upgrading the store's format"
                    );
                    meta.insert(FORMAT_KEY, FORMAT_VERSION)
                        .map_err(|e| open_error(&e))?;
                }
            }
        }
        for table in Table::ALL {
            txn.open_table(table.definition())
                .map_err(|e| open_error(&e))?;
        }
        txn.commit().map_err(|e| open_error(&e))?;
        let db = Arc::new(db);
        let (writes, requests) = mpsc::channel();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("wasmbatch-store".into())
            .spawn(move || write_loop(&writer_db, &requests))
            .map_err(|e| open_error(&e))?;
        Ok(Self { db, writes })
    }

    /// Writes `records` in one transaction with whatever else is waiting, and resolves once it
    /// is committed.
    pub(crate) async fn write(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.send(records).await
    }

    /// Hands `records` to the writer now and returns a future for their commit. Sending while
    /// holding the lock that guards the changed state keeps the store's order of writes the
    /// same as the order of the changes.
    pub(crate) fn send(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (done, committed) = oneshot::channel();
        let sent = self.writes.send(WriteRequest {
            records,
            done: Some(done),
        });
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            committed.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Queues `records` behind every write sent before, without waiting for the commit. For
    /// records whose loss in a crash is already accounted for by recovery.
    pub(crate) fn write_behind(&self, records: Vec<Record>) {
        let _ = self.writes.send(WriteRequest {
            records,
            done: None,
        });
    }

    /// Every record of `table`, key and decoded value. Blocking.
    pub(crate) fn load<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let txn = self.db.begin_read().map_err(|e| read(&e))?;
        let opened = txn.open_table(table.definition()).map_err(|e| read(&e))?;
        let mut out = Vec::new();
        for entry in opened.iter().map_err(|e| read(&e))? {
            let (key, value) = entry.map_err(|e| read(&e))?;
            let decoded = serde_json::from_slice(value.value()).map_err(|e| {
                StoreError::Read(format!("record {:?} in {table:?}: {e}", key.value()))
            })?;
            out.push((key.value().to_string(), decoded));
        }
        Ok(out)
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
        let txn = self.db.begin_read().map_err(|e| read(&e))?;
        let opened = txn.open_table(table.definition()).map_err(|e| read(&e))?;
        let mut out = Vec::new();
        for entry in opened.range(prefix..).map_err(|e| read(&e))? {
            let (key, value) = entry.map_err(|e| read(&e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push(serde_json::from_slice(value.value()).map_err(|e| read(&e))?);
        }
        Ok(out)
    }
}

fn write_loop(db: &Database, requests: &mpsc::Receiver<WriteRequest>) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let result = commit(db, &group).map_err(|e| {
            tracing::error!("storage write of {} requests failed: {e}", group.len());
            StoreError::Write(e.to_string())
        });
        for request in group {
            if let Some(done) = request.done {
                let _ = done.send(result.clone());
            }
        }
    }
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
        }
        // The writer thread of the first handle may still hold the file; wait for it to go.
        let store = loop {
            match Store::open(&path) {
                Ok(store) => break store,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        };
        let jobs: Vec<(String, u32)> = store.load(Table::Jobs).unwrap();
        assert_eq!(jobs.len(), 499);
        assert_eq!(jobs[0], ("job-000".to_string(), 0));
        assert!(!jobs.iter().any(|(k, _)| k == "job-007"));
        assert!(store.load::<u32>(Table::JobQueues).unwrap().is_empty());
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
        let txn = store.db.begin_read().unwrap();
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
            matches!(error, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1),
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
}
