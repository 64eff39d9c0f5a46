//! Every limit ends an attempt with its own typed failure, and the executor goes on serving.

use std::time::Duration;

use wasmbatch_runtime::{
    AttemptSpec, Executor, ExitStatus, FailureKind, JobModule, KillSwitch, Limits, Outcome,
};
use wasmbatch_tests::{CollectedOutput, executor, executor_with, guests};

async fn load(executor: &Executor, path: &str) -> JobModule {
    executor.load(guests::bytes(path)).await.unwrap()
}

fn spec(args: &[&str], limits: Limits) -> AttemptSpec {
    AttemptSpec {
        args: args.iter().map(|a| a.to_string()).collect(),
        limits,
        ..AttemptSpec::default()
    }
}

fn failure(outcome: &Outcome) -> (FailureKind, String) {
    let failure = outcome
        .failure()
        .unwrap_or_else(|| panic!("expected a failure, got {outcome:?}"));
    (failure.kind, failure.reason.clone())
}

/// The executor still runs a normal job correctly after whatever happened before.
async fn still_serves(executor: &Executor) {
    let output = CollectedOutput::new();
    let outcome = executor
        .run(
            &load(executor, guests::wasip1::HELLO).await,
            AttemptSpec {
                args: vec!["hello".into(), "after".into()],
                output: output.sink(),
                ..AttemptSpec::default()
            },
        )
        .await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(
        output.stdout()[0],
        r#"hello from wasmbatch: args=["hello", "after"]"#
    );
}

#[tokio::test]
async fn memory_growth_past_the_cap_fails_with_the_limit_named() {
    let (executor, _dir) = executor();
    for path in [guests::wasip1::ALLOC, guests::wasip2::ALLOC] {
        let alloc = load(&executor, path).await;
        let limits = Limits {
            memory_bytes: 32 << 20,
            ..Limits::default()
        };
        let output = CollectedOutput::new();
        let outcome = executor
            .run(
                &alloc,
                AttemptSpec {
                    output: output.sink(),
                    ..spec(&["alloc", "1"], limits)
                },
            )
            .await;
        let (kind, reason) = failure(&outcome);
        assert_eq!(kind, FailureKind::MemoryLimit, "{path}: {reason}");
        assert!(
            reason.contains("memory limit of 32 MiB (33554432 bytes)"),
            "{reason}"
        );
        assert!(outcome.peak_memory_bytes <= 32 << 20);
        assert!(
            outcome.peak_memory_bytes > 16 << 20,
            "{}",
            outcome.peak_memory_bytes
        );
        assert!(output.stdout().iter().any(|l| l == "allocated 10 MiB"));

        // The same guest within its limit succeeds.
        let fits = executor
            .run(&alloc, spec(&["alloc", "1", "8"], limits))
            .await;
        assert_eq!(fits.status, ExitStatus::Exited(0), "{path}");
    }
    still_serves(&executor).await;
}

#[tokio::test]
async fn fuel_exhaustion_fails_and_reports_the_fuel_used() {
    let (executor, _dir) = executor();
    let spin = load(&executor, guests::wasip1::SPIN).await;
    let limits = Limits {
        fuel: Some(5_000_000),
        ..Limits::default()
    };
    let outcome = executor.run(&spin, spec(&["spin"], limits)).await;
    let (kind, reason) = failure(&outcome);
    assert_eq!(kind, FailureKind::OutOfFuel);
    assert!(
        reason.contains("fuel budget of 5000000 exhausted"),
        "{reason}"
    );
    assert_eq!(outcome.fuel_consumed, Some(5_000_000));

    // A guest that finishes within its budget reports what it used.
    let sha = load(&executor, guests::wasip1::SHA256).await;
    let limits = Limits {
        fuel: Some(10_000_000_000),
        ..Limits::default()
    };
    let outcome = executor.run(&sha, spec(&["sha256", "1"], limits)).await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    let used = outcome.fuel_consumed.unwrap();
    assert!(used > 1_000_000 && used < 10_000_000_000, "{used}");
    still_serves(&executor).await;
}

#[tokio::test]
async fn spinning_and_sleeping_guests_time_out() {
    let (executor, _dir) = executor();
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    for (path, args) in [
        (guests::wasip1::SPIN, ["spin"]),
        (guests::wasip2::SPIN, ["spin"]),
        (guests::wasip1::SLEEP, ["sleep"]),
        (guests::wasip2::SLEEP, ["sleep"]),
    ] {
        let module = load(&executor, path).await;
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            executor.run(&module, spec(&args, limits)),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} was not stopped by its timeout"));
        let (kind, reason) = failure(&outcome);
        assert_eq!(kind, FailureKind::Timeout, "{path}: {reason}");
        assert!(reason.contains("timeout of 300ms"), "{reason}");
        assert!(outcome.wall_time >= Duration::from_millis(300));
    }
    still_serves(&executor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_stops_spinning_and_sleeping_guests() {
    let (executor, _dir) = executor();
    for (path, first_line) in [
        (guests::wasip1::SPIN, "spinning"),
        (guests::wasip2::SPIN, "spinning"),
        (guests::wasip1::SLEEP, "sleeping"),
        (guests::wasip2::SLEEP, "sleeping"),
    ] {
        let module = load(&executor, path).await;
        let kill = KillSwitch::new();
        let output = CollectedOutput::new();
        let attempt = tokio::spawn({
            let executor = executor.clone();
            let spec = AttemptSpec {
                kill: Some(kill.clone()),
                output: output.sink(),
                ..spec(&["guest"], Limits::default())
            };
            async move { executor.run(&module, spec).await }
        });
        // Kill it once it is surely running.
        while !output.stdout().iter().any(|l| l == first_line) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!attempt.is_finished());
        kill.kill("terminated by the test");
        let outcome = tokio::time::timeout(Duration::from_secs(30), attempt)
            .await
            .unwrap_or_else(|_| panic!("{path} ignored its kill switch"))
            .unwrap();
        let (kind, reason) = failure(&outcome);
        assert_eq!(kind, FailureKind::Killed, "{path}");
        assert_eq!(reason, "terminated by the test");
    }
    still_serves(&executor).await;
}

#[tokio::test]
async fn stack_overflow_and_unreachable_are_told_apart() {
    let (executor, _dir) = executor();
    let recurse = wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func $down (param i64) (result i64)
               (i64.add (i64.const 1) (call $down (local.get 0))))
             (func (export "_start") (drop (call $down (i64.const 0)))))"#,
    )
    .unwrap();
    let outcome = executor.run_wasm(recurse, AttemptSpec::default()).await;
    assert_eq!(failure(&outcome).0, FailureKind::StackOverflow);

    let abort = wat::parse_str(r#"(module (func (export "_start") unreachable))"#).unwrap();
    let outcome = executor.run_wasm(abort, AttemptSpec::default()).await;
    assert_eq!(failure(&outcome).0, FailureKind::Unreachable);

    let divide = wat::parse_str(
        r#"(module (func (export "_start")
             (drop (i32.div_u (i32.const 1) (i32.const 0)))))"#,
    )
    .unwrap();
    let (kind, reason) = failure(&executor.run_wasm(divide, AttemptSpec::default()).await);
    assert_eq!(kind, FailureKind::Trap);
    assert!(reason.contains("integer divide by zero"), "{reason}");
    still_serves(&executor).await;
}

#[tokio::test]
async fn a_spec_beyond_the_executor_is_refused_before_it_runs() {
    let (executor, _dir) = wasmbatch_tests::executor_with(|c| {
        c.max_memory_bytes = 64 << 20;
        c.fuel_metering = false;
    });
    let hello = load(&executor, guests::wasip1::HELLO).await;
    let too_big = Limits {
        memory_bytes: 128 << 20,
        ..Limits::default()
    };
    let (kind, reason) = failure(&executor.run(&hello, spec(&["hello"], too_big)).await);
    assert_eq!(kind, FailureKind::InvalidSpec);
    assert!(reason.contains("128 MiB"), "{reason}");
    assert!(reason.contains("64 MiB"), "{reason}");

    let fuel = Limits {
        memory_bytes: 16 << 20,
        fuel: Some(1000),
        ..Limits::default()
    };
    let (kind, reason) = failure(&executor.run(&hello, spec(&["hello"], fuel)).await);
    assert_eq!(kind, FailureKind::InvalidSpec);
    assert!(reason.contains("does not meter fuel"), "{reason}");

    // Without metering a run reports no fuel figure rather than a wrong one.
    let fits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let outcome = executor.run(&hello, spec(&["hello"], fits)).await;
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(outcome.fuel_consumed, None);
}

/// With tokio's clock paused, an hour-long timeout of a guest blocked in a host call is reached
/// without an hour passing: the deadline is a timer like any other, not a wall-clock poll.
#[tokio::test(start_paused = true)]
async fn an_hour_long_timeout_is_a_timer_not_a_wait() {
    let (executor, _dir) = executor();
    let sleep = load(&executor, guests::wasip1::SLEEP).await;
    let limits = Limits {
        timeout: Duration::from_secs(3600),
        ..Limits::default()
    };
    let real = std::time::Instant::now();
    let outcome = executor.run(&sleep, spec(&["sleep"], limits)).await;
    let (kind, reason) = failure(&outcome);
    assert_eq!(kind, FailureKind::Timeout);
    assert!(reason.contains("timeout of 3600s"), "{reason}");
    assert!(real.elapsed() < Duration::from_secs(60));
}

/// The CPU time (user + system, in clock ticks) of this process's threads whose nice value is
/// `nice`, as /proc shows them, and how many there are.
fn cpu_of_threads_at_nice(nice: i64) -> (u64, usize) {
    let mut total = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state …": fields after the command; utime and stime are the 14th and
        // 15th of the line, nice the 19th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let field = |n: usize| fields[n - 3].parse::<i64>().unwrap();
        if field(19) == nice {
            total.0 += (field(14) + field(15)) as u64;
            total.1 += 1;
        }
    }
    total
}

/// A guest that keeps a core busy moves to the executor's long-attempt threads, which run at
/// the configured nice value, so new attempts do not queue behind it; it still ends by its
/// timeout there, and dropping its attempt's future stops it there as it would here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_guest_goes_on_at_a_lower_priority_and_still_stops() {
    // A nice value no other test's executor uses, to tell this one's threads apart.
    let (executor, _dir) = executor_with(|config| config.long_attempt_nice = 7);
    // The threads set their nice value as they start, which may be after the executor returns.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cpu_of_threads_at_nice(7).1 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no long-attempt threads at nice 7"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu_before = cpu_of_threads_at_nice(7).0;
    let spin = load(&executor, guests::wasip1::SPIN).await;
    let output = CollectedOutput::new();
    let attempt = tokio::spawn({
        let executor = executor.clone();
        let spec = AttemptSpec {
            output: output.sink(),
            ..spec(&["spin"], Limits::default())
        };
        async move { executor.run(&spin, spec).await }
    });
    while output.stdout().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // It runs, and its core time is spent on the niced threads (a tick of /proc is 10 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cpu_of_threads_at_nice(7).0 < cpu_before + 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spinning guest never ran on the nice-7 threads"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(executor.slots().0, 1);
    attempt.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while executor.slots().0 != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the moved guest went on after its attempt was dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let idle = cpu_of_threads_at_nice(7).0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cpu_of_threads_at_nice(7).0 <= idle + 2,
        "something still spins there"
    );

    // Moved, a guest still ends by its timeout, and the executor goes on serving.
    let spin = load(&executor, guests::wasip2::SPIN).await;
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let outcome = executor.run(&spin, spec(&["spin"], limits)).await;
    assert_eq!(failure(&outcome).0, FailureKind::Timeout);
    still_serves(&executor).await;
}

#[tokio::test]
async fn the_long_attempt_settings_are_checked() {
    for (adjust, field) in [
        (
            (|c: &mut wasmbatch_runtime::ExecutorConfig| c.long_attempt_nice = 0)
                as fn(&mut wasmbatch_runtime::ExecutorConfig),
            "long_attempt_nice",
        ),
        (|c| c.long_attempt_nice = 20, "long_attempt_nice"),
        (
            |c| c.long_attempt_after = Some(Duration::ZERO),
            "long_attempt_after",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = wasmbatch_runtime::ExecutorConfig::new(dir.path());
        adjust(&mut config);
        let error = Executor::new(config).err().expect("refused").to_string();
        assert!(error.contains(field), "{error}");
    }
}
