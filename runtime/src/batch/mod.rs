//! `Batch`: the control plane, embedded. It owns the in-memory state (environments, queues,
//! definitions, jobs and the indexes the scheduler needs), persists every change through the
//! store before acknowledging it, and starts the scheduler. Every change goes through one write
//! path, [`Batch::change`]; once a commit fails the service takes no more changes (fail-stop,
//! [`Batch::health`]). The operations are split by what they act on, as the HTTP routes are:
//! `environments`, `queues`, `scheduling_policies`, `definitions`, `jobs` (submit, describe,
//! list, cancel, terminate), `tags`, and `upload` (modules). Recovery after a crash is `recover`; removing
//! finished jobs and logs once their retention has passed is `retention`. How the state holds
//! a job (its own part beside the submission it shares with its array) is `job_slot`; the index
//! of log streams DescribeLogStreams and FilterLogEvents page through is `streams`; job state
//! change events, noted with every status change and stored by sequence, are `events`.

mod definitions;
mod environments;
mod events;
mod follow;
pub(crate) mod job_slot;
mod jobs;
pub(crate) mod line;
mod queues;
mod recover;
mod retention;
mod scheduling_policies;
mod snapshot;
pub(crate) mod state;
mod streams;
mod tags;
mod upload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::{Executor, ExecutorConfig, ExecutorError};
use crate::model::EpochMillis;
use crate::model::arn::{self, ResourceKind};
use crate::model::validate::ValidationError;
use crate::modules::ModuleStore;
use crate::store::{Store, StoreError, StoredLedger};

pub use events::{JobEvent, MAX_EVENTS_PER_READ};
pub use follow::LogFollower;
pub use jobs::JobPage;
pub use scheduling_policies::SchedulingPolicyPage;
pub use snapshot::{FrontOfQueueJob, QueueSnapshot, SchedulerStats, ShareUsage};
pub(crate) use state::State;
pub use streams::{LogStreamInfo, StreamOrder, StreamPage, StreamQuery};
pub use upload::ModuleUpload;

/// How a [`Batch`] is set up.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Where the database, modules, compiled modules and scratch directories live.
    pub data_dir: PathBuf,
    /// The region in ARNs.
    pub region: String,
    /// The account id in ARNs.
    pub account_id: String,
    /// Memory capacity of a MANAGED environment that does not give one, in MiB. Defaults to
    /// half of this host's RAM.
    pub default_environment_memory_mib: u64,
    /// The largest module that may be pushed, in bytes (64 MiB by default).
    pub max_module_bytes: u64,
    /// Where job definitions' host volumes live: a volume's `host.sourcePath` is a directory
    /// under it (`<data_dir>/volumes` by default), opened beneath it without following links and
    /// created when a job first mounts it. It must be `<data_dir>/volumes` or outside the data
    /// dir: [`Batch::open`] refuses a root that holds the data dir or nests into it.
    pub volume_root: PathBuf,
    /// The executor's settings; its `data_dir` is the same as ours.
    pub executor: ExecutorConfig,
    /// Most changes waiting for their commit at once; a caller past it waits for a place
    /// (backpressure) instead of growing the store's queue. 4,096 by default.
    pub max_pending_changes: usize,
    /// How long a finished job is kept after it ended, with its attempts and logs; then it is
    /// removed from memory and the store and answers as an unknown id. An array goes whole once
    /// its parent has ended. Unfinished jobs are never removed. 7 days by default.
    pub job_retention: Duration,
    /// How long a finished job's logs are kept, if shorter than [`BatchConfig::job_retention`]
    /// (the job stays, its streams read empty); `None`, or longer: as long as the job.
    pub log_retention: Option<Duration>,
    /// How long job state change events are kept (see [`Batch::job_events`]); `None`, the
    /// default: as long as [`BatchConfig::job_retention`].
    pub event_retention: Option<Duration>,
    /// Most jobs (an array counts its children) one retention pass removes, and most whose
    /// logs it removes: one pass is one change under the state lock. 4,096 by default.
    pub max_removals_per_pass: usize,
    /// Cluster mode: UNMANAGED environments run their jobs on remote workers through NATS
    /// JetStream (the `cluster` feature). `None`, the default: no NATS.
    #[cfg(feature = "cluster")]
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// IO faults to inject into the database file (the `fault-injection` feature; tests only).
    #[cfg(feature = "fault-injection")]
    pub storage_faults: Option<Arc<crate::store::faults::StorageFaults>>,
}

impl BatchConfig {
    /// Defaults over `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        let volume_root = data_dir.join("volumes");
        Self {
            executor: ExecutorConfig::new(&data_dir),
            data_dir,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            default_environment_memory_mib: host_memory_mib().map_or(4096, |m| m / 2),
            max_module_bytes: 64 << 20,
            volume_root,
            max_pending_changes: crate::store::DEFAULT_MAX_PENDING_CHANGES,
            job_retention: Duration::from_secs(7 * 24 * 3600),
            log_retention: None,
            event_retention: None,
            max_removals_per_pass: 4096,
            #[cfg(feature = "cluster")]
            cluster: None,
            #[cfg(feature = "fault-injection")]
            storage_faults: None,
        }
    }

    /// Whether cluster mode is on.
    pub fn cluster_enabled(&self) -> bool {
        #[cfg(feature = "cluster")]
        return self.cluster.is_some();
        #[cfg(not(feature = "cluster"))]
        false
    }

    /// The ARN of the resource of `kind` named `name` in this region and account.
    pub fn arn(&self, kind: ResourceKind, name: &str) -> String {
        arn::arn(&self.region, &self.account_id, kind, name)
    }

    /// The name `reference` (a name, or an ARN of this region and account; given in `field`)
    /// gives a resource of `kind`. Any other ARN is refused, never resolved by its last part.
    pub fn resource_name<'a>(
        &self,
        kind: ResourceKind,
        field: &str,
        reference: &'a str,
    ) -> Result<&'a str, ValidationError> {
        arn::name(&self.region, &self.account_id, kind, field, reference)
    }

    /// The kind and name of a resource by its ARN (given in `field`), which must be one of ours
    /// as [`BatchConfig::arn`] spells them.
    pub fn parse_arn<'a>(
        &self,
        field: &str,
        arn: &'a str,
    ) -> Result<(ResourceKind, &'a str), ValidationError> {
        arn::parse(&self.region, &self.account_id, field, arn)
    }
}

fn host_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Why an operation was refused or failed. `Invalid`, `NotFound` and `Conflict` are the caller's
/// to fix (ClientException); the rest are ours (ServerException).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A field has a value that is not allowed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Something named does not exist.
    #[error("{what} {name} does not exist")]
    NotFound {
        /// What kind of thing, e.g. `job queue`.
        what: &'static str,
        /// The name or id given.
        name: String,
    },
    /// The request conflicts with the current state (a duplicate name, deleting what is in use).
    #[error("{0}")]
    Conflict(String),
    /// The database failed. A write that failed leaves the service taking no more changes
    /// ([`BatchError::is_unavailable`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The executor could not be started.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// Cluster mode could not be started (NATS unreachable, refused, misconfigured).
    #[cfg(feature = "cluster")]
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl BatchError {
    /// Whether the caller got something wrong (as opposed to the service failing).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            BatchError::Invalid(_) | BatchError::NotFound { .. } | BatchError::Conflict(_)
        )
    }

    /// Whether the service takes no changes because its storage failed (a commit failed now
    /// or earlier): a 503 to retry elsewhere or later, not a bug to report.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            BatchError::Store(StoreError::Write(_) | StoreError::Unavailable(_))
        )
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        BatchError::Invalid(ValidationError {
            field: field.into(),
            problem: problem.into(),
        })
    }
}

/// The embedded batch service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Batch {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: BatchConfig,
    pub(crate) store: Store,
    pub(crate) executor: Executor,
    pub(crate) modules: ModuleStore,
    /// Everything the scheduler decides on. A std mutex, never held across an await.
    pub(crate) state: Mutex<State>,
    /// Wakes the scheduler: a job became runnable, capacity was freed, a queue changed.
    pub(crate) wake: Arc<Notify>,
    /// Tells followers that jobs started or ended (waiters only: no cost when nobody waits).
    pub(crate) jobs_moved: Notify,
    /// Set by [`Batch::shutdown`]: the scheduler starts no more attempts.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Attempts' output.
    pub(crate) logs: Arc<crate::logs::Logs>,
    /// Loaded modules by digest, so a job start neither reads nor hashes the module again.
    pub(crate) loaded:
        Mutex<std::collections::HashMap<crate::engine::Digest, crate::engine::JobModule>>,
    /// Cluster mode's link to NATS, once started.
    #[cfg(feature = "cluster")]
    pub(crate) cluster: std::sync::OnceLock<Arc<crate::cluster::control::Link>>,
}

impl Batch {
    /// Opens the data dir (creating it, private to this user: 0700, and tightening it if it
    /// was not), recovers what a previous process left (attempts that were running are
    /// recorded as failed, then retried or failed), and starts the scheduler. Compiled
    /// artifacts are loaded only if the database vouches for them (see
    /// [`ArtifactLedger`](crate::ArtifactLedger)). Must be called within a tokio runtime.
    pub async fn open(config: BatchConfig) -> Result<Self, BatchError> {
        let setup = config.clone();
        let (store, modules, ledger, state, recovered) = tokio::task::spawn_blocking(move || {
            let data_dir = &setup.data_dir;
            let private = crate::private_files::create_dir_all(data_dir)
                .and_then(|()| crate::private_files::tighten(data_dir))
                .map_err(|e| StoreError::Open {
                    path: data_dir.display().to_string(),
                    reason: e.to_string(),
                })?;
            if private {
                tracing::warn!(
                    path = %data_dir.display(),
                    "the data dir was open to other users; made it private (0700)"
                );
            }
            crate::volumes::check_layout(data_dir, &setup.volume_root)
                .map_err(|problem| BatchError::invalid("volume_root", problem))?;
            // The database admits one process at a time, so once it is open the scratch
            // directories left here are a dead process's.
            let store_config = crate::store::StoreConfig {
                max_pending_changes: setup.max_pending_changes,
                #[cfg(feature = "fault-injection")]
                faults: setup.storage_faults.clone(),
            };
            let store = Store::open_with(&data_dir.join("wasmbatch.redb"), &store_config)?;
            clear_stale_scratch(&data_dir.join("scratch"));
            let modules = ModuleStore::open(data_dir.join("modules"), data_dir, store.clone())?;
            let ledger = StoredLedger::open(store.clone())?;
            let (state, recovered) = recover::load(&setup, &store, now())?;
            Ok::<_, BatchError>((store, modules, ledger, state, recovered))
        })
        .await
        .map_err(|e| StoreError::Read(e.to_string()))??;
        store.write(recovered).await?;
        let mut executor_config = config.executor.clone();
        executor_config.data_dir = config.data_dir.clone();
        let executor = Executor::with_ledger(executor_config, Arc::new(ledger))?;
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            config,
            store: store.clone(),
            executor,
            modules,
            state: Mutex::new(state),
            wake: wake.clone(),
            jobs_moved: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            logs: Arc::new(crate::logs::Logs::new(store.clone())),
            loaded: Mutex::default(),
            #[cfg(feature = "cluster")]
            cluster: std::sync::OnceLock::new(),
        });
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &shared.config.cluster {
            let link = crate::cluster::control::start(&shared, cluster).await?;
            let _ = shared.cluster.set(link);
        }
        crate::scheduler::start(Arc::downgrade(&shared), wake);
        retention::start(Arc::downgrade(&shared));
        shared.wake.notify_one();
        Ok(Self { shared })
    }

    /// The executor that runs this service's attempts.
    pub fn executor(&self) -> &Executor {
        &self.shared.executor
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &BatchConfig {
        &self.shared.config
    }

    /// The log stream of a job's attempt (from 1), or of its latest attempt; `None` for an
    /// unknown job or an attempt that has not started.
    pub fn log_stream(&self, job_id: &str, attempt: Option<usize>) -> Option<String> {
        match self.attempt_state(job_id, attempt)? {
            follow::AttemptState::Started { stream } => Some(stream),
            follow::AttemptState::NotStarted { .. } => None,
        }
    }

    /// Where the log of a stream named `<definition>/default/<jobId>-<attempt>` is kept.
    fn log_key(&self, stream: &str) -> Option<String> {
        let (_, last) = stream.rsplit_once('/')?;
        let (job_id, attempt) = last.rsplit_once('-')?;
        let attempt: usize = attempt.parse().ok()?;
        let state = self.shared.lock();
        let job = state.jobs.get(job_id)?;
        Some(crate::logs::log_key(job.sequence, attempt))
    }

    /// Every event of a log stream so far (none for a stream that does not exist).
    pub async fn log_events(&self, stream: &str) -> Result<Vec<crate::logs::LogEvent>, BatchError> {
        let Some(key) = self.log_key(stream) else {
            return Ok(Vec::new());
        };
        let shared = self.shared.clone();
        Ok(
            tokio::task::spawn_blocking(move || shared.logs.events(&key))
                .await
                .map_err(|e| StoreError::Read(e.to_string()))??,
        )
    }

    /// How many events a log stream has so far, and which of them were written at or after
    /// `start_time` and before `end_time` (epoch ms; either may be open). A stream that does not
    /// exist is empty. Reads at most a few chunks (the last, and a binary search per time
    /// given), on the blocking pool.
    pub async fn log_bounds(
        &self,
        stream: &str,
        start_time: Option<EpochMillis>,
        end_time: Option<EpochMillis>,
    ) -> Result<crate::logs::LogBounds, BatchError> {
        let Some(key) = self.log_key(stream) else {
            return Ok(crate::logs::LogBounds {
                len: 0,
                window: 0..0,
            });
        };
        let shared = self.shared.clone();
        Ok(
            tokio::task::spawn_blocking(move || shared.logs.bounds(&key, start_time, end_time))
                .await
                .map_err(|e| StoreError::Read(e.to_string()))??,
        )
    }

    /// The events of a log stream at indexes `range` (from 0, in the order written; as far as
    /// the stream reaches), reading only the chunks that hold them, on the blocking pool.
    pub async fn log_range(
        &self,
        stream: &str,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<crate::logs::LogEvent>, BatchError> {
        let Some(key) = self.log_key(stream) else {
            return Ok(Vec::new());
        };
        let shared = self.shared.clone();
        Ok(
            tokio::task::spawn_blocking(move || shared.logs.range(&key, range))
                .await
                .map_err(|e| StoreError::Read(e.to_string()))??,
        )
    }

    /// Events of a stream from index `from` on (a bounded batch of them), waiting while the
    /// attempt runs and has written nothing new; the flag says whether more may come (false
    /// once the attempt has ended and every event was handed out).
    pub async fn follow_log(
        &self,
        stream: &str,
        from: usize,
    ) -> Result<(Vec<crate::logs::LogEvent>, bool), BatchError> {
        let Some(key) = self.log_key(stream) else {
            return Ok((Vec::new(), false));
        };
        Ok(self.shared.logs.follow(&key, from).await?)
    }
}

/// Whether the service takes changes, as `GET /health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Storage works: changes are taken and jobs run.
    Serving,
    /// A commit failed: no change is taken and no attempt started until the service is
    /// restarted on a working disk; reads are still served.
    StorageUnavailable {
        /// The failure, as the store reported it.
        reason: String,
    },
}

impl Batch {
    /// The one write path. Waits for a place in the store's queue, then, under the state lock:
    /// refuses if storage has failed, applies `apply`, and hands the records of everything it
    /// changed to the store's writer before the lock is released, so the store sees changes in
    /// the order memory saw them. Then it wakes the scheduler and followers, and awaits the
    /// commit. There is no undo: `apply` checks before it changes anything, and whatever it did
    /// change is written, even when it then returns an error.
    pub(crate) async fn change<T>(
        &self,
        apply: impl FnOnce(&mut State) -> Result<T, BatchError>,
    ) -> Result<T, BatchError> {
        let _slot = self.shared.store.queue_slot().await?;
        let (result, committed) = {
            let mut state = self.shared.lock();
            self.shared.store.writable()?;
            let first_sequence = state.next_sequence;
            let result = apply(&mut state);
            let records = state.take_records();
            let committed = (!records.is_empty()).then(|| {
                let (ticket, committed) = self.shared.store.send_ticketed(records);
                // The jobs this change added run once this write is committed.
                state.admitted(first_sequence, ticket);
                committed
            });
            (result, committed)
        };
        let Some(committed) = committed else {
            return result;
        };
        self.shared.wake.notify_one();
        self.shared.jobs_moved.notify_waiters();
        committed.await?;
        result
    }

    /// Whether [`Batch::shutdown`] has been called: what waits for more (a log follower, an
    /// event stream) should end rather than hold the exit up.
    pub fn is_stopping(&self) -> bool {
        self.shared
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the service takes changes (see [`Health`]).
    pub fn health(&self) -> Health {
        match self.shared.store.failure() {
            None => Health::Serving,
            Some(reason) => Health::StorageUnavailable { reason },
        }
    }

    /// Resolves once storage has failed, with the reason (never while it works): for a server
    /// to report it and exit for its supervisor to restart it.
    pub async fn storage_failed(&self) -> String {
        self.shared.store.failed().await
    }

    /// Stops the service for good: [`Batch::shutdown`] with `reason`, then the store's writer
    /// thread is ended and joined and the database released, so the data dir can be opened
    /// again as soon as this returns. Every call after it fails with a closed store.
    pub async fn close(&self, reason: &str) -> Result<usize, BatchError> {
        let stopped = match self.shared.store.failure() {
            // Nothing the attempts record can be committed now; stop them all the same.
            Some(_) => self.shutdown(reason).await.unwrap_or(0),
            None => self.shutdown(reason).await?,
        };
        self.shared.store.close().await;
        Ok(stopped)
    }
}

impl Batch {
    /// Prepares a graceful exit: no new attempt starts, the running ones are stopped with
    /// `reason` and recorded like any stopped attempt (retried at the next start or failed, as
    /// their retry strategy says), and everything is committed before it returns. Returns how
    /// many attempts it stopped. The service should not be used afterwards.
    pub async fn shutdown(&self, reason: &str) -> Result<usize, BatchError> {
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Followers waiting for an attempt that will not start now look again, and end.
        self.shared.jobs_moved.notify_waiters();
        let mut stopped = std::collections::HashSet::new();
        loop {
            // Registered before looking, so an attempt ending in between is not missed.
            let moved = self.shared.jobs_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            // Looked at each time round: a placement under way when `stopping` was set may
            // still have started attempts.
            let running: Vec<(String, crate::engine::KillSwitch)> = {
                let state = self.shared.lock();
                state
                    .running
                    .iter()
                    .map(|(id, k)| (id.clone(), k.clone()))
                    .collect()
            };
            if running.is_empty() {
                break;
            }
            for (id, kill) in running {
                kill.kill(reason);
                stopped.insert(id);
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), moved).await;
        }
        // The store commits in order: once this empty write is committed, so is every
        // record the stopped attempts wrote behind.
        self.shared.store.write(Vec::new()).await?;
        Ok(stopped.len())
    }
}

impl Drop for Shared {
    /// Lets the scheduler task see that the service is gone and end.
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the records of what changed in `state` to the store's writer; called with the lock
    /// held, so the store's order of writes is memory's order of changes. `None` when nothing
    /// changed. An error (storage has failed) resolves the future at once.
    pub(crate) fn send_changes(
        &self,
        state: &mut State,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + use<>> {
        let records = state.take_records();
        (!records.is_empty()).then(|| self.store.send(records))
    }
}

/// Scratch directories are private to the process that made them; a new process owns the data
/// dir, so whatever a crashed one left is removed.
fn clear_stale_scratch(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Now, in epoch milliseconds.
pub(crate) fn now() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EpochMillis)
}
