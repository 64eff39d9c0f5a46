//! The module cache: one compile per digest, compiled artifacts reused across restarts, and a
//! clear error for bytes that are not a runnable WASI program. Compiled artifacts are native
//! code loaded with wasmtime's `unsafe` deserialize, so one is loaded only if its bytes match
//! the digest recorded when it was written (issue 13, hole 1): a tampered, planted or foreign
//! artifact is compiled again and replaced, never loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmbatch_runtime::{
    AttemptSpec, Batch, BatchConfig, CacheStats, Digest, Executor, ExecutorConfig, ExitStatus,
    FailureKind, LoadError, MemoryLedger, model::JobStatus,
};
use wasmbatch_tests::{executor, guests, local_queue, module_and_definition, run_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_is_compiled_once_even_when_loaded_concurrently() {
    let (executor, _dir) = executor();
    let bytes: std::sync::Arc<[u8]> = guests::bytes(guests::wasip1::HELLO).into();
    let loads: Vec<_> = (0..8)
        .map(|_| {
            let (executor, bytes) = (executor.clone(), bytes.clone());
            tokio::spawn(async move { executor.load(bytes).await.unwrap() })
        })
        .collect();
    let mut digests = Vec::new();
    for load in loads {
        digests.push(load.await.unwrap().digest());
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(executor.cache_stats().compiled, 1);
    executor.load(bytes.clone()).await.unwrap();
    assert_eq!(executor.cache_stats().compiled, 1);
    assert!(executor.cache_stats().reused >= 1);
}

/// Two executors sharing a ledger, as one process restarting its executor would.
#[tokio::test]
async fn a_restarted_executor_with_its_ledger_loads_compiled_artifacts_from_disk() {
    let data_dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(MemoryLedger::new());
    let p1 = guests::bytes(guests::wasip1::HELLO);
    let p2 = guests::bytes(guests::wasip2::HELLO);
    {
        let first =
            Executor::with_ledger(ExecutorConfig::new(data_dir.path()), ledger.clone()).unwrap();
        first.load(p1.clone()).await.unwrap();
        first.load(p2.clone()).await.unwrap();
        assert_eq!(
            first.cache_stats(),
            CacheStats {
                compiled: 2,
                loaded_from_disk: 0,
                reused: 0,
                untrusted_artifacts: 0,
            }
        );
    }
    let second = Executor::with_ledger(ExecutorConfig::new(data_dir.path()), ledger).unwrap();
    let module = second.load(p1).await.unwrap();
    second.load(p2).await.unwrap();
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            compiled: 0,
            loaded_from_disk: 2,
            reused: 0,
            untrusted_artifacts: 0,
        }
    );
    let outcome = second.run(&module, AttemptSpec::default()).await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
}

/// The trade-off of a standalone executor (`Executor::new`, `wasmbatch run`): its ledger starts
/// empty, so the artifacts another process (or its own past) left are compiled again, not
/// trusted, and replaced with its own.
#[tokio::test]
async fn an_executor_with_a_new_ledger_trusts_no_artifact_on_disk() {
    let data_dir = tempfile::tempdir().unwrap();
    let hello = guests::bytes(guests::wasip1::HELLO);
    Executor::new(ExecutorConfig::new(data_dir.path()))
        .unwrap()
        .load(hello.clone())
        .await
        .unwrap();
    let second = Executor::new(ExecutorConfig::new(data_dir.path())).unwrap();
    let module = second.load(hello).await.unwrap();
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            compiled: 1,
            loaded_from_disk: 0,
            reused: 0,
            untrusted_artifacts: 1,
        }
    );
    assert_eq!(
        second.run(&module, AttemptSpec::default()).await.status,
        ExitStatus::Exited(0)
    );
}

#[tokio::test]
async fn a_damaged_artifact_is_compiled_again_not_trusted() {
    let data_dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(MemoryLedger::new());
    let hello = guests::bytes(guests::wasip1::HELLO);
    Executor::with_ledger(ExecutorConfig::new(data_dir.path()), ledger.clone())
        .unwrap()
        .load(hello.clone())
        .await
        .unwrap();
    for artifact in std::fs::read_dir(data_dir.path().join("compiled")).unwrap() {
        std::fs::write(artifact.unwrap().path(), b"garbage").unwrap();
    }
    let executor = Executor::with_ledger(ExecutorConfig::new(data_dir.path()), ledger).unwrap();
    let module = executor.load(hello).await.unwrap();
    assert_eq!(executor.cache_stats().compiled, 1);
    assert_eq!(executor.cache_stats().untrusted_artifacts, 1);
    assert_eq!(
        executor.run(&module, AttemptSpec::default()).await.status,
        ExitStatus::Exited(0)
    );
}

/// What can be planted in place of an artifact that would make reading it hang or exhaust
/// memory: a FIFO (an open for reading waits for a writer), a link to `/dev/zero` (endless),
/// a sparse file of a terabyte. None is read; each load compiles again, promptly.
#[cfg(unix)]
#[tokio::test]
async fn an_artifact_replaced_by_a_fifo_a_device_or_a_huge_file_is_not_read() {
    let data_dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(MemoryLedger::new());
    let hello = guests::bytes(guests::wasip1::HELLO);
    Executor::with_ledger(ExecutorConfig::new(data_dir.path()), ledger.clone())
        .unwrap()
        .load(hello.clone())
        .await
        .unwrap();
    let artifact = artifact_of(data_dir.path(), &hello);
    /// Puts something other than the artifact at the path.
    type Plant = fn(&Path);
    let plants: [(&str, Plant); 3] = [
        ("a FIFO", |path| {
            let made = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .unwrap();
            assert!(made.success());
        }),
        ("a link to /dev/zero", |path| {
            std::os::unix::fs::symlink("/dev/zero", path).unwrap()
        }),
        ("a sparse terabyte", |path| {
            std::fs::File::create(path)
                .unwrap()
                .set_len(1 << 40)
                .unwrap()
        }),
    ];
    for (what, plant) in plants {
        std::fs::remove_file(&artifact).unwrap();
        plant(&artifact);
        let executor =
            Executor::with_ledger(ExecutorConfig::new(data_dir.path()), ledger.clone()).unwrap();
        let module = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            executor.load(hello.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("loading over {what} hung"))
        .unwrap();
        let stats = executor.cache_stats();
        assert_eq!(
            (stats.compiled, stats.untrusted_artifacts),
            (1, 1),
            "{what}: {stats:?}"
        );
        assert!(
            std::fs::symlink_metadata(&artifact).unwrap().is_file(),
            "{what} was replaced"
        );
        assert_eq!(
            executor.run(&module, AttemptSpec::default()).await.status,
            ExitStatus::Exited(0)
        );
    }
}

/// The compiled artifact of the module `bytes` under `data_dir`.
fn artifact_of(data_dir: &Path, bytes: &[u8]) -> PathBuf {
    let prefix = format!("{}-", Digest::of(bytes).hex());
    let found: Vec<PathBuf> = std::fs::read_dir(data_dir.join("compiled"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with(&prefix) && name.ends_with(".cwasm")
        })
        .collect();
    assert_eq!(found.len(), 1, "one artifact for {prefix}: {found:?}");
    found.into_iter().next().unwrap()
}

/// A service over `dir` with queue `main` and definitions `hello` (prints its arguments) and
/// `writer` (prints `out line 0` and `out line 1`).
async fn service_with_two_modules(dir: &Path) -> Batch {
    let batch = Batch::open(BatchConfig::new(dir)).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    let none = serde_json::json!({});
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["hello", "hi"],
        64,
        none.clone(),
    )
    .await;
    module_and_definition(
        &batch,
        "writer",
        guests::wasip1::WRITE_LOT,
        &["2"],
        64,
        none,
    )
    .await;
    batch
}

/// Runs definition `hello` and checks that it printed what hello prints.
async fn hello_runs_as_hello(batch: &Batch) {
    let (job, lines) = run_job(batch, "hello").await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("hello from wasmbatch")),
        "the job ran another program: {lines:?}"
    );
}

/// Stops the service as `serve` does on SIGTERM, and lets it go, so its data dir can be
/// reopened.
async fn stop(batch: Batch) {
    batch.close("restart").await.unwrap();
}

/// What the service's loads have been so far: (compiled, loaded from an artifact, artifacts found
/// but not trusted).
fn loads(batch: &Batch) -> (u64, u64, u64) {
    let stats = batch.executor().cache_stats();
    (
        stats.compiled,
        stats.loaded_from_disk,
        stats.untrusted_artifacts,
    )
}

/// A service reuses the artifacts it compiled across a restart: its ledger is in its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_batch_loads_its_own_artifacts_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service_with_two_modules(dir.path()).await;
    hello_runs_as_hello(&batch).await;
    assert_eq!(
        batch.executor().cache_stats().compiled,
        2,
        "compiled at push"
    );
    stop(batch).await;

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    hello_runs_as_hello(&batch).await;
    assert_eq!(loads(&batch), (0, 1, 0));
}

/// Someone who can write `<data-dir>/compiled` replaces hello's artifact with another module's
/// valid artifact (so wasmtime would load it without complaint, and run writer's code as
/// hello). The restarted service compiles hello again, runs hello, and replaces the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_compiled_artifact_is_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service_with_two_modules(dir.path()).await;
    hello_runs_as_hello(&batch).await;
    stop(batch).await;
    let hello = artifact_of(dir.path(), &guests::bytes(guests::wasip1::HELLO));
    let writer = artifact_of(dir.path(), &guests::bytes(guests::wasip1::WRITE_LOT));
    let original = std::fs::read(&hello).unwrap();
    let planted = std::fs::read(&writer).unwrap();
    assert_ne!(original, planted);
    std::fs::write(&hello, &planted).unwrap();

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    hello_runs_as_hello(&batch).await;
    assert_eq!(loads(&batch), (1, 0, 1));
    let replaced = std::fs::read(&hello).unwrap();
    assert_ne!(replaced, planted, "the tampered artifact was replaced");
    assert_eq!(
        replaced, original,
        "by hello's own (compilation is deterministic)"
    );
    // The untampered one is still trusted, and the replacement is trusted after a restart.
    let (job, lines) = run_job(&batch, "writer").await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(lines, ["out line 0", "out line 1"]);
    assert_eq!(batch.executor().cache_stats().loaded_from_disk, 1);
    stop(batch).await;
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    hello_runs_as_hello(&batch).await;
    assert_eq!(loads(&batch), (0, 1, 0));
}

/// Someone plants a valid artifact under the name a module's artifact will have, before the
/// module is ever pushed (a module's digest is public, and the engine hash is the same on
/// every host of one build). The ledger has no digest for it, so it is never loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_artifact_the_ledger_does_not_know_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service_with_two_modules(dir.path()).await;
    let writer = artifact_of(dir.path(), &guests::bytes(guests::wasip1::WRITE_LOT));
    let exit_code = guests::bytes(guests::wasip1::EXIT_CODE);
    let name = writer.file_name().unwrap().to_str().unwrap().replacen(
        &Digest::of(&guests::bytes(guests::wasip1::WRITE_LOT)).hex(),
        &Digest::of(&exit_code).hex(),
        1,
    );
    let planted = dir.path().join("compiled").join(name);
    std::fs::copy(&writer, &planted).unwrap();

    // Pushing compiles it (rather than load writer's code), and replaces the planted file.
    module_and_definition(
        &batch,
        "exit",
        guests::wasip1::EXIT_CODE,
        &["7"],
        64,
        serde_json::json!({}),
    )
    .await;
    let stats = batch.executor().cache_stats();
    assert_eq!(
        (stats.compiled, stats.untrusted_artifacts),
        (3, 1),
        "{stats:?}"
    );
    assert_ne!(
        std::fs::read(&planted).unwrap(),
        std::fs::read(&writer).unwrap()
    );
    let (job, lines) = run_job(&batch, "exit").await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.attempts.last().unwrap().exit_code, Some(7), "{job:?}");
    assert!(
        lines.iter().all(|l| !l.starts_with("out line")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_runnable_wasi_program_get_a_clear_error() {
    let (executor, _dir) = executor();
    let error = executor
        .load(b"#!/bin/sh\necho hi\n".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(error, LoadError::NotWasm { .. }), "{error}");
    assert!(error.to_string().contains("is not WebAssembly"), "{error}");

    let mut truncated = guests::bytes(guests::wasip1::HELLO);
    truncated.truncate(truncated.len() / 2);
    let error = executor.load(truncated).await.unwrap_err();
    assert!(matches!(error, LoadError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("offset"), "{error}");

    let missing_import = wat::parse_str(
        r#"(module (import "env" "launch_missiles" (func)) (func (export "_start")))"#,
    )
    .unwrap();
    let error = executor.load(missing_import).await.unwrap_err();
    assert!(matches!(error, LoadError::Link { .. }), "{error}");
    assert!(error.to_string().contains("launch_missiles"), "{error}");

    let library = wat::parse_str(
        r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0))"#,
    )
    .unwrap();
    let error = executor.load(library).await.unwrap_err();
    assert!(matches!(error, LoadError::NotCommand { .. }), "{error}");
    assert!(error.to_string().contains("`_start`"), "{error}");

    // Through `run_wasm` the same problems become a failed attempt, not an error.
    let outcome = executor
        .run_wasm(b"not wasm".to_vec(), AttemptSpec::default())
        .await;
    assert_eq!(outcome.failure().unwrap().kind, FailureKind::ModuleInvalid);
}

/// Turns the database under `dir` back into store format 1, what wasmbatch wrote before it
/// recorded artifact digests: no `meta` table, no `compiled_artifacts` table (nor the
/// `array_children` of format 3, the `scheduling_policies` of format 4 or the `job_events` of
/// format 5).
async fn downgrade_to_format_1(dir: &Path) {
    let path = dir.join("wasmbatch.redb");
    // Closed by the caller: the file is free.
    let db = redb::Database::open(&path).expect("the closed service released the database");
    let txn = db.begin_write().unwrap();
    for table in [
        "compiled_artifacts",
        "meta",
        "array_children",
        "scheduling_policies",
        "job_events",
    ] {
        let deleted = txn
            .delete_table(redb::TableDefinition::<&str, &[u8]>::new(table))
            .unwrap();
        assert!(deleted, "the current format has table {table}");
    }
    txn.commit().unwrap();
}

/// A data dir written before artifact digests were kept opens as it was (queues, definitions,
/// jobs), and each module is compiled once more, since nothing vouches for its artifact; after
/// that the artifacts are trusted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_from_before_artifact_digests_opens_and_compiles_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service_with_two_modules(dir.path()).await;
    let (before, _) = run_job(&batch, "hello").await;
    batch.close("upgrade").await.unwrap();
    downgrade_to_format_1(dir.path()).await;

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let kept = batch
        .describe_jobs(std::slice::from_ref(&before.job_id))
        .unwrap();
    assert_eq!(kept.len(), 1, "the old job is still there");
    assert_eq!(kept[0].status, JobStatus::Succeeded);
    hello_runs_as_hello(&batch).await;
    assert_eq!(loads(&batch), (1, 0, 1));
    stop(batch).await;

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    hello_runs_as_hello(&batch).await;
    assert_eq!(loads(&batch), (0, 1, 0));
}

/// A module file changed under `<data-dir>/modules` is another program than the one pushed
/// under that digest: the job fails saying so, rather than run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_file_changed_on_disk_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service_with_two_modules(dir.path()).await;
    stop(batch).await;
    let hello = Digest::of(&guests::bytes(guests::wasip1::HELLO));
    let file = dir
        .path()
        .join("modules")
        .join(format!("{}.wasm", hello.hex()));
    std::fs::write(&file, guests::bytes(guests::wasip1::WRITE_LOT)).unwrap();

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let (job, lines) = run_job(&batch, "hello").await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let reason = job.status_reason.unwrap_or_default();
    assert!(reason.contains("was changed on disk"), "{reason}");
    assert!(lines.is_empty(), "{lines:?}");
}
