//! Shared pieces of wasmbatch's end-to-end tests and benchmarks.
//!
//! The tests themselves live in `tests/` (one file per concern); this library holds what several
//! of them need: the guest examples that `build.rs` compiles from `../guest-examples`, a sink that
//! collects a guest's output, the set-up steps they share (an executor over a temporary data dir,
//! environments and queues, a module with its definition, a large SubmitJob, waiting for a job
//! to end, a restart, a data dir's store format read and rewritten), [`wire`]: raw HTTP/1.1
//! over a socket, [`tls`]: certificates made for the TLS tests, and [`registry`]: a real OCI
//! registry.

use std::sync::{Arc, Mutex};

use wasmbatch_runtime::{OutputSink, StreamKind};

/// A headless Chromium under chromedriver, for the web-console tests.
pub mod browser;
pub mod nats;
/// A real OCI registry (docker-registry) on a free loopback port, for the registry tests.
pub mod registry;
pub mod router;
pub mod stats;
pub mod tls;
pub mod wire;

/// Paths of the guest examples, built for each target by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// Reads a guest's bytes, with a message naming the file if that fails.
    pub fn bytes(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
    }
}

/// An [`OutputSink`] that keeps every line, in the order they arrived.
#[derive(Clone, Default)]
pub struct CollectedOutput(Arc<Mutex<Vec<(StreamKind, String)>>>);

impl CollectedOutput {
    /// A new, empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sink to put in an `AttemptSpec`.
    pub fn sink(&self) -> Arc<dyn OutputSink> {
        Arc::new(self.clone())
    }

    /// Every line so far, with its stream.
    pub fn lines(&self) -> Vec<(StreamKind, String)> {
        self.0.lock().unwrap().clone()
    }

    /// The lines of one stream so far.
    pub fn of(&self, stream: StreamKind) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l)
            .collect()
    }

    /// Stdout so far, one string per line.
    pub fn stdout(&self) -> Vec<String> {
        self.of(StreamKind::Stdout)
    }
}

impl OutputSink for CollectedOutput {
    fn line(&self, stream: StreamKind, line: &str) {
        self.0.lock().unwrap().push((stream, line.to_owned()));
    }
}

/// An executor over a fresh temporary data directory, with `adjust` applied to the defaults.
/// Keep the returned directory alive as long as the executor.
pub fn executor_with(
    adjust: impl FnOnce(&mut wasmbatch_runtime::ExecutorConfig),
) -> (wasmbatch_runtime::Executor, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().expect("creating a temporary data dir");
    let mut config = wasmbatch_runtime::ExecutorConfig::new(data_dir.path());
    adjust(&mut config);
    let executor = wasmbatch_runtime::Executor::new(config).expect("building the executor");
    (executor, data_dir)
}

/// An executor with the default configuration over a fresh temporary data directory.
pub fn executor() -> (wasmbatch_runtime::Executor, tempfile::TempDir) {
    executor_with(|_| {})
}

/// Decodes AWS-shaped JSON into one of the request types, as the HTTP face will.
pub fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a request the model accepts")
}

/// Creates the MANAGED compute environment `local` with `max_vcpus` (in `state`, ENABLED or
/// DISABLED) and the job queue `main` on it.
pub async fn local_queue(batch: &wasmbatch_runtime::Batch, max_vcpus: u32, state: &str) {
    environment(batch, "local", max_vcpus, state).await;
    job_queue(batch, "main", 1, "local").await;
}

/// Creates the MANAGED compute environment `name` with `max_vcpus`, in `state`.
pub async fn environment(
    batch: &wasmbatch_runtime::Batch,
    name: &str,
    max_vcpus: u32,
    state: &str,
) {
    batch
        .create_compute_environment(decode(serde_json::json!({
            "computeEnvironmentName": name, "type": "MANAGED", "state": state,
            "computeResources": {"type": "EC2", "maxvCpus": max_vcpus}
        })))
        .await
        .expect("creating the compute environment");
}

/// Creates the ENABLED job queue `name` with `priority` over the one environment `environment`.
pub async fn job_queue(
    batch: &wasmbatch_runtime::Batch,
    name: &str,
    priority: i32,
    environment: &str,
) {
    batch
        .create_job_queue(decode(serde_json::json!({
            "jobQueueName": name, "priority": priority,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": environment}]
        })))
        .await
        .expect("creating the job queue");
}

/// Pushes the guest at `path` as module `name` and registers a definition of the same name that
/// runs it with `command`, 1 vCPU and `memory_mib`, plus the members in `extra`.
pub async fn module_and_definition(
    batch: &wasmbatch_runtime::Batch,
    name: &str,
    path: &str,
    command: &[&str],
    memory_mib: u32,
    extra: serde_json::Value,
) {
    batch
        .push_module(name, guests::bytes(path))
        .await
        .expect("pushing the module");
    let mut definition = serde_json::json!({
        "jobDefinitionName": name, "type": "container",
        "containerProperties": {"image": name, "command": command,
            "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                     {"type": "MEMORY", "value": memory_mib.to_string()}]}
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        definition[key] = value.clone();
    }
    batch
        .register_job_definition(decode(definition))
        .await
        .expect("registering the definition");
}

/// Submits `clients × per_client` jobs of definition `definition` to queue `main` from
/// `clients` concurrent tasks, as many callers would; returns once every submit is acknowledged.
pub async fn submit_concurrently(
    batch: &wasmbatch_runtime::Batch,
    queue: &str,
    definition: &str,
    clients: usize,
    per_client: usize,
) {
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (batch, queue, definition) =
                (batch.clone(), queue.to_string(), definition.to_string());
            tokio::spawn(async move {
                for i in 0..per_client {
                    let request = wasmbatch_runtime::model::SubmitJob {
                        job_name: format!("c{client}-{i}"),
                        job_queue: queue.clone(),
                        job_definition: definition.clone(),
                        ..Default::default()
                    };
                    batch.submit_job(request).await.expect("submitting a job");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a submitting task panicked");
    }
}

/// A SubmitJob to queue `main` of `definition` whose JSON is about `bytes` long (29 KB is the
/// size of issue 14's: near the 30 KiB limit), half of it parameters and half
/// containerOverrides environment, 100 of each.
pub fn large_submit(
    name: &str,
    definition: &str,
    bytes: usize,
) -> wasmbatch_runtime::model::SubmitJob {
    // Each entry is about this long in JSON beside its value: `"p00":"",` and
    // `{"name":"E00","value":""},`.
    let value = |overhead: usize| "v".repeat((bytes / 2 / 100).saturating_sub(overhead));
    let parameters = (0..100).map(|i| (format!("p{i:02}"), value(9))).collect();
    let environment = (0..100)
        .map(|i| wasmbatch_runtime::model::KeyValuePair {
            name: Some(format!("E{i:02}")),
            value: Some(value(27)),
        })
        .collect();
    wasmbatch_runtime::model::SubmitJob {
        job_name: name.to_string(),
        job_queue: "main".into(),
        job_definition: definition.to_string(),
        parameters,
        container_overrides: Some(wasmbatch_runtime::model::ContainerOverrides {
            environment,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Job `id` as DescribeJobs shows it; panics if there is none.
pub fn describe(batch: &wasmbatch_runtime::Batch, id: &str) -> wasmbatch_runtime::model::Job {
    batch
        .describe_jobs(&[id.to_string()])
        .expect("describing a job")
        .pop()
        .unwrap_or_else(|| panic!("job {id} is gone"))
}

/// Waits (bounded, generously: some tests' guests take what they can) until job `id` reaches
/// SUCCEEDED or FAILED.
pub async fn finished(batch: &wasmbatch_runtime::Batch, id: &str) -> wasmbatch_runtime::model::Job {
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let job = describe(batch, id);
            if job.status.is_terminal() {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {id} did not finish: {:?}", describe(batch, id)))
}

/// Closes `old` (its attempts stopped and recorded, its database released) and opens a new
/// `Batch` on `config`'s data dir, as a restart would.
pub async fn reopen(
    old: wasmbatch_runtime::Batch,
    config: wasmbatch_runtime::BatchConfig,
) -> wasmbatch_runtime::Batch {
    old.close("restart").await.expect("closing the service");
    wasmbatch_runtime::Batch::open(config)
        .await
        .expect("opening the data dir again")
}

/// Submits a job of `definition` to queue `main`, waits for it to end, and returns it with the
/// lines its (last) attempt wrote.
pub async fn run_job(
    batch: &wasmbatch_runtime::Batch,
    definition: &str,
) -> (wasmbatch_runtime::model::Job, Vec<String>) {
    let id = batch
        .submit_job(wasmbatch_runtime::model::SubmitJob {
            job_name: definition.to_string(),
            job_queue: "main".into(),
            job_definition: definition.to_string(),
            ..Default::default()
        })
        .await
        .expect("submitting a job")
        .job_id;
    let job = finished(batch, &id).await;
    let lines = match batch.log_stream(&id, None) {
        Some(stream) => batch
            .log_events(&stream)
            .await
            .expect("reading the job's log")
            .into_iter()
            .map(|e| e.message)
            .collect(),
        None => Vec::new(),
    };
    (job, lines)
}

/// The store format recorded in the database of data dir `dir`, which must be closed.
pub fn store_format(dir: &std::path::Path) -> u64 {
    let db = redb::Database::open(dir.join("wasmbatch.redb")).expect("opening the database");
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .expect("a meta table")
        .get("format")
        .unwrap()
        .expect("a recorded format")
        .value()
}

/// Makes the database of the closed data dir `dir` read as another store format wrote it:
/// `meta` records `format`, and the tables in `absent` (those that format did not have yet)
/// are deleted; each must be there.
pub fn rewrite_store_format(dir: &std::path::Path, format: u64, absent: &[&str]) {
    let db = redb::Database::open(dir.join("wasmbatch.redb"))
        .expect("the closed service released the database");
    let txn = db.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap()
        .insert("format", format)
        .unwrap();
    for table in absent {
        let deleted = txn
            .delete_table(redb::TableDefinition::<&str, &[u8]>::new(table))
            .unwrap();
        assert!(deleted, "the current format has table {table}");
    }
    txn.commit().unwrap();
}

/// Whether the closed data dir `dir`'s database has table `table`, and how many records it
/// holds.
pub fn stored_records(dir: &std::path::Path, table: &str) -> Option<u64> {
    let db = redb::Database::open(dir.join("wasmbatch.redb")).expect("opening the database");
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    match txn.open_table(redb::TableDefinition::<&str, &[u8]>::new(table)) {
        Ok(opened) => Some(redb::ReadableTableMetadata::len(&opened).unwrap()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => panic!("{table}: {e}"),
    }
}

/// The `wasmbatch` binary the benchmarks run as processes (cluster workers, the peers bench's
/// server and CLI): `$WASMBATCH_BIN` (scripts/bench builds it with the benchmarks' profile and
/// sets it), else the `wasmbatch` beside the running program's own build directory.
pub fn wasmbatch_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("WASMBATCH_BIN") {
        let path = std::path::PathBuf::from(path);
        assert!(
            path.is_file(),
            "WASMBATCH_BIN is {}, which is not a file",
            path.display()
        );
        return path;
    }
    // A bench is <target>/<profile dir>/deps/<name>-<hash>; the binary <target>/<profile dir>/wasmbatch.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("wasmbatch")));
    match beside {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "no wasmbatch binary: set WASMBATCH_BIN, or build it with this program's profile \
             first (cargo build --profile bench -p wasmbatch --bin wasmbatch; scripts/bench does)"
        ),
    }
}
