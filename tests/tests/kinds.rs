//! Both kinds of WASI program, preview-1 core modules and preview-2 components, run through one
//! interface: same arguments, environment and exit codes.

use wasmbatch_runtime::{AttemptSpec, ExitStatus, ModuleKind};
use wasmbatch_tests::{CollectedOutput, executor, guests};

#[tokio::test]
async fn hello_sees_its_args_and_only_the_env_it_was_given() {
    let (executor, _dir) = executor();
    for (path, kind) in [
        (guests::wasip1::HELLO, ModuleKind::Preview1),
        (guests::wasip2::HELLO, ModuleKind::Preview2),
    ] {
        let module = executor.load(guests::bytes(path)).await.unwrap();
        assert_eq!(module.kind(), kind);
        let output = CollectedOutput::new();
        let outcome = executor
            .run(
                &module,
                AttemptSpec {
                    args: vec!["hello.wasm".into(), "two words".into(), "x".into()],
                    env: vec![
                        ("AWS_BATCH_JOB_ID".into(), "job-1".into()),
                        ("AWS_BATCH_JOB_ATTEMPT".into(), "2".into()),
                        ("UNRELATED".into(), "y".into()),
                    ],
                    output: output.sink(),
                    ..AttemptSpec::default()
                },
            )
            .await;
        assert_eq!(outcome.status, ExitStatus::Exited(0), "{kind:?}");
        assert_eq!(
            output.stdout(),
            [
                r#"hello from wasmbatch: args=["hello.wasm", "two words", "x"]"#,
                "AWS_BATCH_JOB_ATTEMPT=2",
                "AWS_BATCH_JOB_ID=job-1",
            ],
            "{kind:?}"
        );
        assert!(outcome.peak_memory_bytes > 0, "{kind:?}");
        assert!(outcome.fuel_consumed.unwrap() > 0, "{kind:?}");
    }
}

#[tokio::test]
async fn exit_codes_are_reported_for_modules_and_components() {
    let (executor, _dir) = executor();
    for (path, codes) in [
        (
            guests::wasip1::EXIT_CODE,
            &[0, 1, 3, 42, 125, 126, 200, 255, 256, -1][..],
        ),
        // A component's exit-with-code carries a u8.
        (
            guests::wasip2::EXIT_CODE,
            &[0, 1, 3, 42, 125, 126, 200, 255][..],
        ),
    ] {
        let module = executor.load(guests::bytes(path)).await.unwrap();
        for &code in codes {
            let output = CollectedOutput::new();
            let outcome = executor
                .run(
                    &module,
                    AttemptSpec {
                        args: vec!["exit-code".into(), code.to_string()],
                        output: output.sink(),
                        ..AttemptSpec::default()
                    },
                )
                .await;
            assert_eq!(outcome.status, ExitStatus::Exited(code), "{path} {code}");
            assert_eq!(outcome.succeeded(), code == 0);
            assert_eq!(
                output.of(wasmbatch_runtime::StreamKind::Stderr),
                [format!("exit-code: about to exit with {code}")]
            );
        }
    }
}
