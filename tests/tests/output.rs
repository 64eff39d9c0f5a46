//! Output capture: lines reach the caller's sink while the guest runs, in the order written,
//! and a stream past its cap is truncated with a marker without killing the guest.

use std::time::Duration;

use wasmbatch_runtime::{AttemptSpec, ExitStatus, KillSwitch, LOG_EVENT_OVERHEAD, StreamKind};
use wasmbatch_tests::{CollectedOutput, executor, executor_with, guests};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_arrive_while_the_guest_is_still_running() {
    let (executor, _dir) = executor();
    let sleep = executor
        .load(guests::bytes(guests::wasip2::SLEEP))
        .await
        .unwrap();
    let output = CollectedOutput::new();
    let kill = KillSwitch::new();
    let spec = AttemptSpec {
        args: vec!["sleep".into()],
        output: output.sink(),
        kill: Some(kill.clone()),
        ..AttemptSpec::default()
    };
    let attempt = tokio::spawn({
        let executor = executor.clone();
        async move { executor.run(&sleep, spec).await }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while output.stdout().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first line never arrived");
    assert!(
        !attempt.is_finished(),
        "the line should arrive before the guest ends"
    );
    assert_eq!(output.stdout(), ["sleeping"]);
    kill.kill("done");
    attempt.await.unwrap();
}

#[tokio::test]
async fn stdout_and_stderr_lines_keep_their_order() {
    let (executor, _dir) = executor();
    for path in [guests::wasip1::WRITE_LOT, guests::wasip2::WRITE_LOT] {
        let output = CollectedOutput::new();
        let spec = AttemptSpec {
            args: vec!["write-lot".into(), "500".into(), "both".into()],
            output: output.sink(),
            ..AttemptSpec::default()
        };
        let outcome = executor.run_wasm(guests::bytes(path), spec).await;
        assert_eq!(outcome.status, ExitStatus::Exited(0));
        let expected: Vec<(StreamKind, String)> = (0..500)
            .flat_map(|i| {
                [
                    (StreamKind::Stdout, format!("out line {i}")),
                    (StreamKind::Stderr, format!("err line {i}")),
                ]
            })
            .collect();
        assert_eq!(output.lines(), expected, "{path}");
        assert_eq!(
            outcome.stdout.bytes_written,
            output
                .stdout()
                .iter()
                .map(|l| l.len() as u64 + 1)
                .sum::<u64>()
        );
        assert!(!outcome.stdout.truncated);
    }
}

#[tokio::test]
async fn past_the_cap_output_is_truncated_with_a_marker_and_the_guest_finishes() {
    let (executor, _dir) = executor_with(|c| c.output_cap_bytes = 4096);
    for path in [guests::wasip1::WRITE_LOT, guests::wasip2::WRITE_LOT] {
        let output = CollectedOutput::new();
        let spec = AttemptSpec {
            args: vec!["write-lot".into(), "100000".into(), "stdout".into()],
            output: output.sink(),
            ..AttemptSpec::default()
        };
        let outcome = executor.run_wasm(guests::bytes(path), spec).await;
        assert_eq!(
            outcome.status,
            ExitStatus::Exited(0),
            "{path}: not killed by the cap"
        );
        let lines = output.stdout();
        let marker = lines.last().unwrap();
        assert_eq!(
            marker,
            "[wasmbatch: stdout truncated after 4096 bytes; later output is dropped]"
        );
        // Counted as the cap counts: each line's bytes and its per-event overhead.
        let kept: u64 = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.len() as u64 + LOG_EVENT_OVERHEAD)
            .sum();
        assert!(kept <= 4096 && kept > 4096 - 64, "kept {kept} bytes");
        assert_eq!(lines[0], "out line 0");
        assert!(outcome.stdout.truncated);
        let total: u64 = (0..100_000u64)
            .map(|i| format!("out line {i}\n").len() as u64)
            .sum();
        assert_eq!(outcome.stdout.bytes_written, total);
        assert!(!outcome.stderr.truncated);
    }
}

/// Issue 14: 8 MiB of `\n` per stream is 16 million empty lines, each an event that costs far
/// more than its one byte. The line cap keeps 100,000 of them per stream and says so.
#[tokio::test]
async fn a_flood_of_empty_lines_is_bounded_by_the_line_cap() {
    let (executor, _dir) = executor();
    let cap = executor.config().output_cap_events as usize;
    let output = CollectedOutput::new();
    let spec = AttemptSpec {
        args: vec!["newlines".into(), (8 << 20).to_string()],
        output: output.sink(),
        ..AttemptSpec::default()
    };
    let outcome = executor
        .run_wasm(guests::bytes(guests::wasip1::NEWLINES), spec)
        .await;
    assert_eq!(
        outcome.status,
        ExitStatus::Exited(0),
        "not killed by the cap"
    );
    for (stream, stats) in [
        (StreamKind::Stdout, outcome.stdout),
        (StreamKind::Stderr, outcome.stderr),
    ] {
        let lines = output.of(stream);
        assert_eq!(
            lines.len(),
            cap + 1,
            "{stream}: the kept lines and the marker"
        );
        assert!(lines[..cap].iter().all(String::is_empty));
        assert_eq!(
            lines[cap],
            format!("[wasmbatch: {stream} truncated after {cap} lines; later output is dropped]")
        );
        assert_eq!(stats.bytes_written, 8 << 20);
        assert!(stats.truncated);
    }
}
