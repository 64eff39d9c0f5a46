//! wasmbatch's runtime: everything that works without HTTP.
//!
//! # Layout
//! - [`engine`]: runs one attempt of a WASI program (preview-1 module or preview-2 component)
//!   in a pooled, pre-compiled wasmtime instance under a memory cap, a fuel budget, a wall-clock
//!   deadline and a kill switch, and reports its [`Outcome`].
//! - `batch`: [`Batch`], the control plane: environments, queues, scheduling policies,
//!   definitions and jobs, kept in memory and persisted before each change is acknowledged;
//!   recovery after a crash.
//! - `scheduler`: places runnable jobs on environments' capacity and runs their attempts.
//! - `store`: redb tables and the group-committing writer thread, which stops taking writes
//!   after a failed commit (fail-stop).
//! - `modules`: the content-addressed module store (our ECR).
//! - `private_files`: the data directory's modes (directories 0700, files 0600).
//! - `logs`: each attempt's output as log events, live for followers and stored in chunks.
//! - `metrics`: what the service counts for operators, in Prometheus' data model
//!   ([`Batch::register_metrics`]).
//! - [`model`]: the domain (compute environments, job queues, job definitions, jobs, attempts)
//!   with AWS Batch's names, and the pure rules on it: retry decisions, `Ref::` parameters,
//!   validation.
//!
//! # Embedding
//! Build an [`Executor`] from an [`ExecutorConfig`], [`load`](Executor::load) a module, and
//! [`run`](Executor::run) an [`AttemptSpec`]:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use wasmbatch_runtime::{AttemptSpec, ExitStatus, Executor, ExecutorConfig, Limits};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_dir = tempfile::tempdir()?;
//! let executor = Executor::new(ExecutorConfig::new(data_dir.path()))?;
//!
//! // Any WASI command works; this one, in text form, writes a line and exits with 3.
//! let module = executor.load(wat::parse_str(r#"
//!     (module
//!       (import "wasi_snapshot_preview1" "fd_write"
//!         (func $fd_write (param i32 i32 i32 i32) (result i32)))
//!       (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
//!       (memory (export "memory") 1)
//!       (data (i32.const 16) "hello\n")
//!       (func (export "_start")
//!         (i32.store (i32.const 0) (i32.const 16))
//!         (i32.store (i32.const 4) (i32.const 6))
//!         (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
//!         (call $exit (i32.const 3))))
//! "#)?).await?;
//!
//! let lines = Arc::new(Mutex::new(Vec::new()));
//! let seen = lines.clone();
//! let outcome = executor
//!     .run(&module, AttemptSpec {
//!         args: vec!["demo.wasm".into()],
//!         limits: Limits { memory_bytes: 16 << 20, fuel: Some(1_000_000), ..Limits::default() },
//!         output: Arc::new(move |_stream, line: &str| seen.lock().unwrap().push(line.to_owned())),
//!         ..AttemptSpec::default()
//!     })
//!     .await;
//!
//! assert_eq!(outcome.status, ExitStatus::Exited(3));
//! assert_eq!(*lines.lock().unwrap(), ["hello"]);
//! assert!(outcome.fuel_consumed.unwrap() > 0);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod batch;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod engine;
mod logs;
mod metrics;
pub mod model;
mod modules;
mod private_files;
#[cfg(feature = "registry")]
pub mod registry;
mod scheduler;
mod store;
mod volumes;

pub use batch::{
    Batch, BatchConfig, BatchError, FrontOfQueueJob, Health, JobEvent, JobPage, LogFollower,
    LogStreamInfo, MAX_EVENTS_PER_READ, ModuleUpload, QueueSnapshot, SchedulerStats,
    SchedulingPolicyPage, ShareUsage, StreamOrder, StreamPage, StreamQuery,
};
pub use engine::{
    Access, ArtifactDigest, ArtifactLedger, AttemptSpec, CacheStats, Digest, DirGrant,
    DiscardOutput, Executor, ExecutorConfig, ExecutorError, ExitStatus, Failure, FailureKind,
    HostDir, JobModule, KillSwitch, LOG_EVENT_OVERHEAD, Limits, LoadError, MemoryLedger,
    ModuleKind, Outcome, OutputSink, SCRATCH_GUEST_PATH, StreamKind, StreamStats,
};
pub use logs::{LOG_GROUP, LogBounds, LogEvent};
pub use model::arn::ResourceKind;
pub use modules::ModuleInfo;
pub use store::StoreError;
#[cfg(feature = "fault-injection")]
pub use store::faults::StorageFaults;

/// The README's Rust examples, compiled as doc tests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
