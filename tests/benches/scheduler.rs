//! Prints what fair-share scheduling costs (issue 15), beside FIFO measured the same way in the
//! same run: 100,000 RUNNABLE hello jobs (arrays of 100) on one queue, across 1,000 shares on
//! the fair-share queue, queued while the environment is DISABLED and then let go on 64 vCPUs.
//! Reported per queue kind: placements/s (all 100,000 placed and ended, end to end) and the
//! cost of one placement decision — the time the scheduler spends choosing and placing under
//! the state lock (`Batch::scheduler_stats`) over the placements it made; the goal is ≤ 5 µs,
//! i.e. no scan of all jobs or shares per placement. Each kind runs `ROUNDS` times, alternating,
//! on a fresh data dir; the table shows medians.
//!
//! `cargo bench -p wasmbatch-tests --bench scheduler` (`-- --quick`: 10,000 jobs, 100 shares).

use std::time::{Duration, Instant};

use serde_json::json;
use wasmbatch_runtime::model::{JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::stats::{Sample, record, table};
use wasmbatch_tests::{decode, environment, guests, module_and_definition};

/// The allocator of the `wasmbatch` binary, so the service is measured as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Children per array: the jobs are submitted 100 at a time.
const ARRAY: u32 = 100;

/// One round: `jobs` hello jobs in `shares` shares (0: a FIFO queue), placed on 64 vCPUs.
/// Returns (seconds from release to the last end, placements, time placing).
async fn round(jobs: u32, shares: u32) -> (f64, u64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    environment(&batch, "local", 64, "DISABLED").await;
    let mut queue = json!({
        "jobQueueName": "q", "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]
    });
    if shares > 0 {
        let policy = batch
            .create_scheduling_policy(decode(json!({"name": "p", "fairsharePolicy": {}})))
            .await
            .unwrap();
        queue["schedulingPolicyArn"] = json!(policy.arn);
    }
    batch.create_job_queue(decode(queue)).await.unwrap();
    module_and_definition(&batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
    let mut arrays = Vec::new();
    for i in 0..jobs / ARRAY {
        let mut request = json!({
            "jobName": "load", "jobQueue": "q", "jobDefinition": "hello",
            "arrayProperties": {"size": ARRAY}
        });
        if shares > 0 {
            request["shareIdentifier"] = json!(format!("team{}", i % shares));
        }
        arrays.push(
            batch
                .submit_job(decode::<SubmitJob>(request))
                .await
                .unwrap()
                .job_id,
        );
    }
    let before = batch.scheduler_stats();
    let released = Instant::now();
    batch
        .update_compute_environment(decode(json!({"computeEnvironment": "local", "state": "ENABLED"})))
        .await
        .unwrap();
    for parent in &arrays {
        loop {
            let job = &batch.describe_jobs(std::slice::from_ref(parent)).unwrap()[0];
            if job.status.is_terminal() {
                assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let seconds = released.elapsed().as_secs_f64();
    let after = batch.scheduler_stats();
    batch.close("bench").await.unwrap();
    (
        seconds,
        after.placements - before.placements,
        after.placing - before.placing,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (jobs, shares, rounds) = if quick {
        (10_000, 100, 1)
    } else {
        (100_000, 1_000, 3)
    };
    let mut decisions = [Vec::new(), Vec::new()];
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, shares) in [0, shares].into_iter().enumerate() {
            let (seconds, placements, placing) = round(jobs, shares).await;
            assert_eq!(placements, u64::from(jobs), "every job placed once");
            decisions[i].push(placing / placements as u32);
            // As a duration per placement, so the table's medians and ratios apply.
            rates[i].push(Duration::from_secs_f64(seconds / placements as f64));
        }
    }
    println!(
        "\n{jobs} RUNNABLE hello jobs on one queue (arrays of {ARRAY}), released onto 64 vCPUs; \
         {rounds} round(s) each, alternating."
    );
    let samples = [
        Sample {
            name: "placement decision, FIFO",
            times: decisions[0].clone(),
        },
        Sample {
            name: "placement decision, fair share",
            times: decisions[1].clone(),
        },
    ];
    let samples = table(
        &format!("Scheduler: one placement decision ({jobs} jobs, {shares} shares)"),
        &samples,
        &[("FIFO", 0)],
    );
    let per_job = [
        Sample {
            name: "end to end per job, FIFO",
            times: rates[0].clone(),
        },
        Sample {
            name: "end to end per job, fair share",
            times: rates[1].clone(),
        },
    ];
    let per_job = table(
        "Scheduler: placed and run, per job (the inverse of placements/s)",
        &per_job,
        &[("FIFO", 0)],
    );
    for (i, key) in ["scheduler.fifo", "scheduler.fair_share"].iter().enumerate() {
        let decision = samples[i].median().as_secs_f64() * 1e6;
        let per_s = 1.0 / per_job[i].median().as_secs_f64();
        println!(
            "{key}: {decision:.2} µs a decision, {per_s:.0} placements/s ({jobs} jobs, {} shares)",
            if i == 0 { 0 } else { shares }
        );
        record(
            key,
            json!({
                "jobs": jobs,
                "shares": if i == 0 { 0 } else { shares },
                "decision_us": decision,
                "placements_per_s": per_s,
                "decision_vs_fifo": decision / (samples[0].median().as_secs_f64() * 1e6),
            }),
        );
    }
}
