//! Soak: hello jobs run at full rate for a long time with a retention of a few seconds, so
//! finished jobs and their logs keep leaving memory and the database. Samples RSS, the database
//! file's size and the jobs held over time and prints the series; after a warm-up both must be
//! flat, shown as the second half's mean over the first half's. Then the restart time on the
//! data dir the soak left, against opening an empty data dir (the baseline: what a restart
//! costs when retention has done its work).
//!
//! 2,000,000 jobs in the full run (`--jobs N` to change it), 4,000 with `--quick` (a smoke run:
//! too short for its ratios to mean much).
//! `cargo bench -p wasmbatch-tests --bench soak` (`-- --quick` for a short run).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wasmbatch_runtime::model::{JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::stats::{record, rss_kib};
use wasmbatch_tests::{guests, local_queue, module_and_definition};

/// The allocator of the `wasmbatch` binary, so RSS is what the server would hold.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent submitters, as many clients would be.
const CLIENTS: usize = 32;
/// Jobs not yet ended at most: submitters wait beyond it, so what is held is the retained
/// jobs, not a queue growing because submits outpace the executor.
const MAX_UNFINISHED: u64 = 4_096;

fn config(dir: &std::path::Path, retention: Duration) -> BatchConfig {
    let mut config = BatchConfig::new(dir);
    config.default_environment_memory_mib = 1 << 20;
    config.job_retention = retention;
    config
}

/// One sample of the series.
struct Sample {
    at: Duration,
    ended: u64,
    rss_kib: u64,
    db_bytes: u64,
    held: u64,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let jobs: u64 = args
        .iter()
        .position(|a| a == "--jobs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 4_000 } else { 2_000_000 });
    let retention = Duration::from_secs(if quick { 1 } else { 5 });
    let every = Duration::from_millis(if quick { 250 } else { 5_000 });
    println!(
        "# wasmbatch soak benchmark{}\n",
        if quick { " (quick)" } else { "" }
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasmbatch.redb");
    let batch = Batch::open(config(dir.path(), retention)).await.unwrap();
    local_queue(&batch, 64, "ENABLED").await;
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["soak"],
        16,
        json!({}),
    )
    .await;

    // Each client takes job numbers until `jobs` are submitted, pausing while too many wait.
    let next = Arc::new(AtomicU64::new(0));
    let unfinished = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (batch, next, unfinished) = (batch.clone(), next.clone(), unfinished.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < jobs {
                    while unfinished.load(Ordering::Relaxed) > MAX_UNFINISHED {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let request = SubmitJob {
                        job_name: "soak".into(),
                        job_queue: "main".into(),
                        job_definition: "hello".into(),
                        ..SubmitJob::default()
                    };
                    batch.submit_job(request).await.expect("submitting a job");
                    unfinished.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // The sampler: job counts walk the jobs held, which retention keeps few.
    let mut samples = Vec::new();
    loop {
        tokio::time::sleep(every.min(Duration::from_millis(50))).await;
        let counts = batch.job_counts("main").unwrap();
        let held: u64 = counts.values().sum();
        let succeeded_held = counts.get(&JobStatus::Succeeded).copied().unwrap_or(0);
        let failed = counts.get(&JobStatus::Failed).copied().unwrap_or(0);
        assert_eq!(failed, 0, "a hello job failed: {counts:?}");
        let submitted = next.load(Ordering::Relaxed).min(jobs);
        let not_ended = held - succeeded_held;
        unfinished.store(not_ended, Ordering::Relaxed);
        let ended = submitted - not_ended;
        let due = samples
            .last()
            .map_or(Duration::ZERO, |s: &Sample| s.at + every);
        if start.elapsed() >= due {
            samples.push(Sample {
                at: start.elapsed(),
                ended,
                rss_kib: rss_kib(),
                db_bytes: std::fs::metadata(&db).map_or(0, |m| m.len()),
                held,
            });
        }
        if submitted == jobs && not_ended == 0 {
            break;
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = start.elapsed();
    let rate = jobs as f64 / elapsed.as_secs_f64();

    println!(
        "| t (s) | jobs ended | RSS (MiB) | database (MiB) | jobs held |\n|---|---|---|---|---|"
    );
    for s in &samples {
        println!(
            "| {:.1} | {} | {:.1} | {:.1} | {} |",
            s.at.as_secs_f64(),
            s.ended,
            s.rss_kib as f64 / 1024.0,
            s.db_bytes as f64 / f64::from(1 << 20),
            s.held
        );
    }
    // Warm-up: until retention has passed a few times (and the database file has reached the
    // size whose freed pages it then reuses), or a third of the run if that is longer; then the
    // rest in two halves.
    let warm_until = (retention * 3).max(elapsed / 3);
    let warm = samples
        .iter()
        .position(|s| s.at >= warm_until)
        .unwrap_or(samples.len() / 3);
    let steady = &samples[warm.min(samples.len().saturating_sub(2))..];
    let (first, second) = steady.split_at(steady.len() / 2);
    let ratio = |f: &dyn Fn(&Sample) -> f64| {
        mean(second.iter().map(f)) / mean(first.iter().map(f)).max(1.0)
    };
    let rss_ratio = ratio(&|s| s.rss_kib as f64);
    let db_ratio = ratio(&|s| s.db_bytes as f64);
    let held_ratio = ratio(&|s| s.held as f64);
    let last = samples.last().expect("at least one sample");
    println!("\n| scenario | result | baseline (same run) | ratio |\n|---|---|---|---|");
    println!(
        "| {jobs} hello jobs at full rate, retention {} s: RSS, second half over first (after {:.1} s warm-up) | {:.1} → {:.1} MiB | flat: 1.00× | {rss_ratio:.2}× |",
        retention.as_secs(),
        steady.first().map_or(0.0, |s| s.at.as_secs_f64()),
        mean(first.iter().map(|s| s.rss_kib as f64)) / 1024.0,
        mean(second.iter().map(|s| s.rss_kib as f64)) / 1024.0,
    );
    println!(
        "| same, database file size, second half over first | {:.1} → {:.1} MiB | flat: 1.00× | {db_ratio:.2}× |",
        mean(first.iter().map(|s| s.db_bytes as f64)) / f64::from(1 << 20),
        mean(second.iter().map(|s| s.db_bytes as f64)) / f64::from(1 << 20),
    );
    println!(
        "| same, jobs held in memory, second half over first | {:.0} → {:.0} | flat: 1.00× | {held_ratio:.2}× |",
        mean(first.iter().map(|s| s.held as f64)),
        mean(second.iter().map(|s| s.held as f64)),
    );
    println!(
        "| same, throughput | {rate:.0} jobs/s over {:.1} s | | |",
        elapsed.as_secs_f64()
    );
    record(
        "soak.flat",
        json!({"jobs": jobs, "retention_s": retention.as_secs_f64(), "seconds": elapsed.as_secs_f64(),
               "jobs_per_s": rate, "rss_ratio": rss_ratio, "db_ratio": db_ratio, "held_ratio": held_ratio,
               "last_rss_bytes": last.rss_kib * 1024, "last_db_bytes": last.db_bytes, "samples": samples.len()}),
    );

    // Restart on what the soak left (what is still within retention), against an empty dir.
    batch.close("soak over").await.unwrap();
    drop(batch);
    let timed_open = async |dir: &std::path::Path| {
        let start = Instant::now();
        let batch = Batch::open(config(dir, retention)).await.unwrap();
        let took = start.elapsed();
        let held: u64 = batch
            .job_counts("main")
            .map(|c| c.values().sum())
            .unwrap_or(0);
        batch.close("measured").await.unwrap();
        (took, held)
    };
    let (restart, held) = timed_open(dir.path()).await;
    let empty = tempfile::tempdir().unwrap();
    let (baseline, _) = timed_open(empty.path()).await;
    println!(
        "| restart on the data dir after {jobs} jobs ({held} held, {:.1} MiB database) | {:.0} ms | empty data dir: {:.0} ms | {:.2}× |",
        std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / f64::from(1 << 20),
        restart.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        restart.as_secs_f64() / baseline.as_secs_f64()
    );
    record(
        "soak.restart",
        json!({"jobs": jobs, "held": held, "seconds": restart.as_secs_f64(), "empty_seconds": baseline.as_secs_f64()}),
    );
}
