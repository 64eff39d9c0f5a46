//! The module cache: one compile per digest, compiled artifacts reused across restarts, and a
//! clear error for bytes that are not a runnable WASI program.

use wasmbatch_runtime::{
    AttemptSpec, CacheStats, Executor, ExecutorConfig, ExitStatus, FailureKind, LoadError,
};
use wasmbatch_tests::{executor, guests};

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

#[tokio::test]
async fn a_restarted_executor_loads_compiled_artifacts_from_disk() {
    let data_dir = tempfile::tempdir().unwrap();
    let p1 = guests::bytes(guests::wasip1::HELLO);
    let p2 = guests::bytes(guests::wasip2::HELLO);
    {
        let first = Executor::new(ExecutorConfig::new(data_dir.path())).unwrap();
        first.load(p1.clone()).await.unwrap();
        first.load(p2.clone()).await.unwrap();
        assert_eq!(
            first.cache_stats(),
            CacheStats {
                compiled: 2,
                loaded_from_disk: 0,
                reused: 0
            }
        );
    }
    let second = Executor::new(ExecutorConfig::new(data_dir.path())).unwrap();
    let module = second.load(p1).await.unwrap();
    second.load(p2).await.unwrap();
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            compiled: 0,
            loaded_from_disk: 2,
            reused: 0
        }
    );
    let outcome = second.run(&module, AttemptSpec::default()).await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
}

#[tokio::test]
async fn a_damaged_artifact_is_compiled_again_not_trusted() {
    let data_dir = tempfile::tempdir().unwrap();
    let hello = guests::bytes(guests::wasip1::HELLO);
    Executor::new(ExecutorConfig::new(data_dir.path()))
        .unwrap()
        .load(hello.clone())
        .await
        .unwrap();
    for artifact in std::fs::read_dir(data_dir.path().join("compiled")).unwrap() {
        std::fs::write(artifact.unwrap().path(), b"garbage").unwrap();
    }
    let executor = Executor::new(ExecutorConfig::new(data_dir.path())).unwrap();
    let module = executor.load(hello).await.unwrap();
    assert_eq!(executor.cache_stats().compiled, 1);
    assert_eq!(
        executor.run(&module, AttemptSpec::default()).await.status,
        ExitStatus::Exited(0)
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
