//! Many attempts at once on one pool: spinning guests among them do not starve the others, and
//! each attempt gets its own output and its own outcome.

use std::time::Duration;

use wasmbatch_runtime::{AttemptSpec, ExitStatus, FailureKind, Limits};
use wasmbatch_tests::{CollectedOutput, executor, executor_with, guests};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_attempts_at_once_with_spinners_among_them() {
    let (executor, _dir) = executor();
    let hello_p1 = executor
        .load(guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let hello_p2 = executor
        .load(guests::bytes(guests::wasip2::HELLO))
        .await
        .unwrap();
    let spin = executor
        .load(guests::bytes(guests::wasip1::SPIN))
        .await
        .unwrap();

    let mut attempts = Vec::new();
    for i in 0..200 {
        let executor = executor.clone();
        let output = CollectedOutput::new();
        // Every tenth is a spinner: half stopped by fuel, half by a timeout.
        let (module, limits, expected) = match i % 10 {
            0 if i % 20 == 0 => (
                spin.clone(),
                Limits {
                    timeout: Duration::from_millis(500),
                    ..Limits::default()
                },
                Err(FailureKind::Timeout),
            ),
            0 => (
                spin.clone(),
                Limits {
                    fuel: Some(20_000_000),
                    ..Limits::default()
                },
                Err(FailureKind::OutOfFuel),
            ),
            n if n % 2 == 0 => (hello_p2.clone(), Limits::default(), Ok(())),
            _ => (hello_p1.clone(), Limits::default(), Ok(())),
        };
        let spec = AttemptSpec {
            args: vec!["hello".into(), format!("attempt-{i}")],
            limits,
            output: output.sink(),
            ..AttemptSpec::default()
        };
        attempts.push(tokio::spawn(async move {
            (i, expected, executor.run(&module, spec).await, output)
        }));
    }
    for attempt in attempts {
        let (i, expected, outcome, output) =
            tokio::time::timeout(Duration::from_secs(120), attempt)
                .await
                .unwrap()
                .unwrap();
        match expected {
            Ok(()) => {
                assert_eq!(outcome.status, ExitStatus::Exited(0), "attempt {i}");
                let want = format!(r#"hello from wasmbatch: args=["hello", "attempt-{i}"]"#);
                assert_eq!(output.stdout(), [want], "attempt {i} got another's output");
            }
            Err(kind) => {
                let failure = outcome
                    .failure()
                    .unwrap_or_else(|| panic!("attempt {i}: {outcome:?}"));
                assert_eq!(failure.kind, kind, "attempt {i}: {}", failure.reason);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    let (executor, _dir) = executor_with(|c| c.max_concurrent_attempts = 2);
    let sleep = executor
        .load(guests::bytes(guests::wasip1::SLEEP))
        .await
        .unwrap();
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let (executor, sleep) = (executor.clone(), sleep.clone());
            tokio::spawn(async move {
                let spec = AttemptSpec {
                    args: vec!["sleep".into(), "20".into()],
                    ..AttemptSpec::default()
                };
                executor.run(&sleep, spec).await
            })
        })
        .collect();
    for attempt in attempts {
        assert_eq!(attempt.await.unwrap().status, ExitStatus::Exited(0));
    }
}
