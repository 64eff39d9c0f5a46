//! What the fuzz targets share: a [`Service`] (a `Batch` in a temporary directory, with a
//! compute environment, queues, job definitions and a module, behind `wasmbatch_api::app`) to
//! send one request body at, and the check every answer must pass; a [`LogStream`] (a job's
//! finished log behind the same router) for GetLogEvents; a [`Loader`] for modules.
//!
//! The compute environment is DISABLED, so an accepted job is only recorded, never run: each
//! input costs a decode and a commit, and the outcome does not depend on what ran before.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmbatch_api::Access;
use wasmbatch_runtime::{Batch, BatchConfig};

/// Accepted jobs (array children included) or definitions after which the service is rebuilt:
/// nothing is ever deleted, so without this a long run would slow down (every pass of the
/// scheduler looks at the runnable jobs) and grow until libFuzzer's RSS limit stops it.
const RECORDS_PER_SERVICE: u64 = 50_000;

/// `WASMBATCH_FUZZ_SHOW=1` prints every answer, to see what the seeds reach (run the target
/// on the seed files alone).
static SHOW: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("WASMBATCH_FUZZ_SHOW").is_some());

/// The smallest WASI command there is; enough for a job definition's `image` to name.
pub const NOOP_COMMAND: &str = r#"(module (func (export "_start")))"#;

/// One `Batch` behind the router, rebuilt now and then (see [`RECORDS_PER_SERVICE`]).
pub struct Service {
    runtime: tokio::runtime::Runtime,
    world: Mutex<Option<World>>,
}

struct World {
    router: axum::Router,
    // Dropped after the router (field order), which holds the last clone of the Batch.
    _dir: tempfile::TempDir,
    records: u64,
}

/// What the service answered, already checked by [`Service::post`].
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Service {
    pub fn new() -> Self {
        // One thread, so each input runs start to end with nothing else in between; the
        // store's writer and the blocking pool have their own threads.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Self {
            runtime,
            world: Mutex::new(None),
        }
    }

    /// Sends `body` as `POST /v1/<operation>` and checks the answer: never a panic, never a
    /// 5xx, and a 4xx is AWS's error envelope (`{"message": "…"}`, non-empty, and an
    /// `x-amzn-ErrorType`). `records` is how many records the request adds if accepted.
    pub fn post(&self, operation: &str, body: &[u8], records: u64) -> Answer {
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        if world.as_ref().is_none_or(|w| w.records >= RECORDS_PER_SERVICE) {
            // The old Batch goes first: its writer thread and scheduler end once it is dropped.
            *world = None;
            *world = Some(self.runtime.block_on(World::build()));
        }
        let world = world.as_mut().expect("built above");
        let answer = self
            .runtime
            .block_on(send(world.router.clone(), operation, body.to_vec()));
        if answer.status == StatusCode::OK {
            world.records += records.max(1);
        }
        if *SHOW {
            eprintln!("{operation} {}: {}", answer.status.as_u16(), answer.body);
        }
        answer
    }
}

impl Default for Service {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    async fn build() -> World {
        // tmpfs when there is one: every accepted request is a redb commit, and an fsync to a
        // real disk would make it the whole cost of an input.
        let dir = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => tempfile::Builder::new()
                .prefix("wasmbatch-fuzz-")
                .tempdir_in(shm),
            _ => tempfile::Builder::new().prefix("wasmbatch-fuzz-").tempdir(),
        }
        .expect("temporary directory");
        let mut config = BatchConfig::new(dir.path());
        config.executor.max_concurrent_attempts = 4;
        config.executor.max_memory_bytes = 1 << 30;
        let batch = Batch::open(config).await.expect("Batch::open");
        batch
            .push_module("noop", wat::parse_str(NOOP_COMMAND).expect("wat"))
            .await
            .expect("push_module");
        let router = wasmbatch_api::app(batch, Access::local());
        for (operation, body) in setup_requests() {
            let answer = send(router.clone(), operation, body.to_string().into_bytes()).await;
            assert_eq!(answer.status, StatusCode::OK, "{operation}: {}", answer.body);
        }
        World {
            router,
            _dir: dir,
            records: 0,
        }
    }
}

/// The resources the seeds name: environment `fuzz` (DISABLED), queues `fuzz` (ENABLED) and
/// `off` (DISABLED), definitions `fuzz` and `fuzz-retry` over module `noop`.
fn setup_requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "createcomputeenvironment",
            json!({
                "computeEnvironmentName": "fuzz", "type": "MANAGED", "state": "DISABLED",
                "computeResources": {"type": "EC2", "minvCpus": 0, "maxvCpus": 4,
                    "instanceTypes": ["optimal"], "subnets": ["subnet-1"], "instanceRole": "r"}
            }),
        ),
        (
            "createjobqueue",
            json!({
                "jobQueueName": "fuzz", "state": "ENABLED", "priority": 1,
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "fuzz"}]
            }),
        ),
        (
            "createjobqueue",
            json!({
                "jobQueueName": "off", "state": "DISABLED", "priority": 2,
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "fuzz"}]
            }),
        ),
        (
            "registerjobdefinition",
            json!({
                "jobDefinitionName": "fuzz", "type": "container",
                "parameters": {"input": "in.csv"},
                "containerProperties": {"image": "noop", "command": ["noop", "Ref::input"],
                    "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                             {"type": "MEMORY", "value": "64"}]}
            }),
        ),
        (
            "registerjobdefinition",
            json!({
                "jobDefinitionName": "fuzz-retry", "type": "container",
                "retryStrategy": {"attempts": 3, "evaluateOnExit": [
                    {"onExitCode": "1*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]},
                "timeout": {"attemptDurationSeconds": 60},
                "containerProperties": {"image": "noop",
                    "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                             {"type": "MEMORY", "value": "32"}]}
            }),
        ),
    ]
}

async fn send(router: axum::Router, operation: &str, body: Vec<u8>) -> Answer {
    let request = Request::post(format!("/v1/{operation}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    answer(router, operation, request).await
}

/// Sends `request` and checks the answer as [`Service::post`] says.
async fn answer(router: axum::Router, operation: &str, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    let kind = response.headers().get("x-amzn-ErrorType").cloned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes();
    assert!(
        !status.is_server_error(),
        "{operation} answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        status == StatusCode::OK || status.is_client_error(),
        "{operation} answered {status}"
    );
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{operation} answered {status} with a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    if status.is_client_error() {
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "{operation} answered {status} without a message: {body}"
        );
        assert!(
            kind.is_some(),
            "{operation} answered {status} without x-amzn-ErrorType: {body}"
        );
    }
    Answer { status, body }
}

/// Accepted modules after which the [`Loader`]'s executor is rebuilt: its cache keeps every
/// module that loaded, for good, and a run that keeps finding new ones would grow without end.
const MODULES_PER_EXECUTOR: u64 = 1_000;

/// An `Executor` to validate modules with (`Executor::load`), on a small configuration.
pub struct Loader {
    runtime: tokio::runtime::Runtime,
    executor: Mutex<Option<(wasmbatch_runtime::Executor, tempfile::TempDir, u64)>>,
}

impl Loader {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Self {
            runtime,
            executor: Mutex::new(None),
        }
    }

    /// Loads `bytes` and checks the answer: never a panic, and a refusal says why. The
    /// compiled artifact a load leaves on disk is removed, so disk use stays flat.
    pub fn load(&self, bytes: &[u8]) -> Result<wasmbatch_runtime::JobModule, String> {
        let mut slot = self.executor.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_none_or(|(_, _, loaded)| *loaded >= MODULES_PER_EXECUTOR)
        {
            *slot = None;
            let dir = tempfile::Builder::new()
                .prefix("wasmbatch-fuzz-")
                .tempdir()
                .expect("temporary directory");
            let mut config = wasmbatch_runtime::ExecutorConfig::new(dir.path());
            config.max_concurrent_attempts = 4;
            config.max_memory_bytes = 64 << 20;
            let executor = wasmbatch_runtime::Executor::new(config).expect("Executor::new");
            *slot = Some((executor, dir, 0));
        }
        let (executor, dir, loaded) = slot.as_mut().expect("built above");
        let result = self.runtime.block_on(executor.load(bytes.to_vec()));
        if *SHOW {
            match &result {
                Ok(module) => eprintln!("load: {:?} {}", module.kind(), module.digest()),
                Err(error) => eprintln!("load: {error}"),
            }
        }
        if let Ok(entries) = std::fs::read_dir(dir.path().join("compiled")) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        match result {
            Ok(module) => {
                *loaded += 1;
                assert_eq!(
                    module.digest(),
                    wasmbatch_runtime::Digest::of(bytes),
                    "a module is named by its bytes"
                );
                Ok(module)
            }
            Err(error) => {
                let message = error.to_string();
                assert!(!message.is_empty(), "a LoadError without a message: {error:?}");
                Err(message)
            }
        }
    }
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

/// Lines the job behind a [`LogStream`] writes.
pub const LOG_LINES: usize = 3;

/// A WASI command that writes [`LOG_LINES`] lines to stdout.
const THREE_LINES: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "one\ntwo\nthree\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 14))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// One job's finished log stream behind the router, to send GetLogEvents requests at. Reading
/// changes nothing, so unlike [`Service`] it is built once and never rebuilt.
pub struct LogStream {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// The stream's name, which a request body without `logStreamName` is given.
    pub stream: String,
    _dir: tempfile::TempDir,
}

impl LogStream {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::Builder::new()
            .prefix("wasmbatch-fuzz-")
            .tempdir()
            .expect("temporary directory");
        let (router, stream) = runtime.block_on(async {
            let mut config = BatchConfig::new(dir.path());
            config.executor.max_concurrent_attempts = 1;
            config.executor.max_memory_bytes = 64 << 20;
            let batch = Batch::open(config).await.expect("Batch::open");
            batch
                .push_module("lines", wat::parse_str(THREE_LINES).expect("wat"))
                .await
                .expect("push_module");
            let router = wasmbatch_api::app(batch.clone(), Access::local());
            let setup = [
                (
                    "createcomputeenvironment",
                    json!({"computeEnvironmentName": "logs", "type": "MANAGED",
                           "computeResources": {"type": "EC2", "maxvCpus": 1}}),
                ),
                (
                    "createjobqueue",
                    json!({"jobQueueName": "logs", "priority": 1,
                           "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "logs"}]}),
                ),
                (
                    "registerjobdefinition",
                    json!({"jobDefinitionName": "lines", "type": "container",
                           "containerProperties": {"image": "lines",
                               "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                        {"type": "MEMORY", "value": "16"}]}}),
                ),
                (
                    "submitjob",
                    json!({"jobName": "lines", "jobQueue": "logs", "jobDefinition": "lines"}),
                ),
            ];
            let mut job_id = String::new();
            for (operation, body) in setup {
                let answer = send(router.clone(), operation, body.to_string().into_bytes()).await;
                assert_eq!(answer.status, StatusCode::OK, "{operation}: {}", answer.body);
                if let Some(id) = answer.body["jobId"].as_str() {
                    job_id = id.to_string();
                }
            }
            loop {
                let job = batch
                    .describe_jobs(std::slice::from_ref(&job_id))
                    .expect("describe_jobs")
                    .pop()
                    .expect("the job");
                if job.status.is_terminal() {
                    let stream = batch.log_stream(&job_id, None).expect("a log stream");
                    break (router, stream);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        Self {
            runtime,
            router,
            stream,
            _dir: dir,
        }
    }

    /// Sends `body` as CloudWatch Logs' GetLogEvents and checks the answer as [`Service::post`]
    /// does (no panic, no 5xx, a refusal in the error envelope).
    pub fn get(&self, body: Vec<u8>) -> Answer {
        let request = Request::post("/")
            .header("x-amz-target", "Logs_20140328.GetLogEvents")
            .header("content-type", "application/x-amz-json-1.1")
            .body(Body::from(body))
            .expect("request");
        let answer = self
            .runtime
            .block_on(answer(self.router.clone(), "GetLogEvents", request));
        if *SHOW {
            eprintln!("GetLogEvents {}: {}", answer.status.as_u16(), answer.body);
        }
        answer
    }
}

impl Default for LogStream {
    fn default() -> Self {
        Self::new()
    }
}
