//! A process that runs the embedded control plane, for the crash tests (tests/tests/crash.rs),
//! which kill it with SIGKILL mid-flight and start it again on the same data dir.
//!
//! `crash-worker DATA_DIR SCENARIO ARGS…` sets up an environment with 2 vCPUs and the queue
//! `main`, submits the scenario's jobs, printing `SUBMITTED <id>` once each is acknowledged (an
//! array job by its parent's id), then `READY` once the scenario's kill point is reached and
//! stored, then waits to be killed. The scenarios:
//! - `submit N MILLIS`: N jobs that sleep MILLIS ms (2 attempts each); ready when two run.
//! - `array SIZE MILLIS ATTEMPTS`: an array of SIZE children that sleep MILLIS ms, with ATTEMPTS
//!   attempts each; ready when two children run.
//! - `sequential SIZE MILLIS ATTEMPTS`: the same array with a SEQUENTIAL dependency; ready when
//!   child 1 runs (child 0 has succeeded).
//! - `depends MILLIS ATTEMPTS`: job `a` sleeps MILLIS ms with ATTEMPTS attempts, job `b` depends
//!   on it and sleeps briefly; ready when `a` runs.
//! - `retry MILLIS ATTEMPTS`: a job that fails its first attempt (exit 1) and sleeps MILLIS ms on
//!   the next before succeeding, with ATTEMPTS attempts; ready when its second attempt runs.
//!
//! `crash-worker DATA_DIR drain`: opens the same data dir, waits until every job (array children
//! included) has ended, closes it and prints one JSON line per job.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{Job, JobStatus, KeyValuesPair, ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{decode, describe, guests, local_queue, module_and_definition};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = Batch::open(BatchConfig::new(&args[1])).await.expect("open");
    let arg = |i: usize| -> u32 {
        args.get(i)
            .unwrap_or_else(|| panic!("{}: argument {i} is missing", args[2]))
            .parse()
            .unwrap_or_else(|e| panic!("{}: argument {i}: {e}", args[2]))
    };
    if args[2] == "drain" {
        return drain(&batch).await;
    }
    local_queue(&batch, 2, "ENABLED").await;
    let running = |jobs: &[Job]| {
        jobs.iter()
            .filter(|j| j.status == JobStatus::Running)
            .count()
    };
    match args[2].as_str() {
        "submit" => {
            sleeper(&batch, "sleeper", arg(4), 2).await;
            let mut ids = Vec::new();
            for i in 0..arg(3) {
                ids.push(submit(&batch, json!({"jobName": format!("job-{i}")})).await);
            }
            ready_when(&batch, &ids, |jobs| running(jobs) >= 2).await;
        }
        "array" | "sequential" => {
            let size = arg(3);
            sleeper(&batch, "sleeper", arg(4), arg(5)).await;
            let sequential = args[2] == "sequential";
            let depends_on = if sequential {
                json!([{"type": "SEQUENTIAL"}])
            } else {
                json!([])
            };
            let parent = submit(
                &batch,
                json!({"jobName": "array", "arrayProperties": {"size": size},
                       "dependsOn": depends_on}),
            )
            .await;
            if sequential {
                // Child 1 runs only once child 0 has succeeded.
                let second = [format!("{parent}:1")];
                ready_when(&batch, &second, |jobs| running(jobs) == 1).await;
            } else {
                let children: Vec<String> = (0..size).map(|i| format!("{parent}:{i}")).collect();
                ready_when(&batch, &children, |jobs| running(jobs) >= 2).await;
            }
        }
        "depends" => {
            sleeper(&batch, "sleeper", arg(3), arg(4)).await;
            sleeper(&batch, "quick", 10, 1).await;
            let a = submit(&batch, json!({"jobName": "a"})).await;
            submit(
                &batch,
                json!({"jobName": "b", "jobDefinition": "quick", "dependsOn": [{"jobId": a}]}),
            )
            .await;
            ready_when(&batch, &[a], |jobs| running(jobs) == 1).await;
        }
        "retry" => {
            let (millis, attempts) = (arg(3).to_string(), arg(4));
            let retries = json!({"retryStrategy": {"attempts": attempts}});
            // Exits 1 on attempt 1; from attempt 2 on, sleeps MILLIS ms and succeeds.
            let command = ["2", millis.as_str()];
            module_and_definition(
                &batch,
                "sleeper",
                guests::wasip2::FLAKY,
                &command,
                64,
                retries,
            )
            .await;
            let job = submit(&batch, json!({"jobName": "flaky"})).await;
            ready_when(&batch, &[job], |jobs| {
                running(jobs) == 1 && jobs[0].attempts.len() == 1
            })
            .await;
        }
        other => panic!("unknown scenario {other}"),
    }
    std::future::pending::<()>().await;
}

/// Registers definition `name` over the sleep guest: sleeps `millis` ms, 1 vCPU, `attempts`.
async fn sleeper(batch: &Batch, name: &str, millis: u32, attempts: u32) {
    let retries = json!({"retryStrategy": {"attempts": attempts}});
    let millis = millis.to_string();
    module_and_definition(batch, name, guests::wasip2::SLEEP, &[&millis], 64, retries).await;
}

/// Submits `request` (AWS JSON; queue `main` and definition `sleeper` unless it says otherwise)
/// and says so once it is acknowledged.
async fn submit(batch: &Batch, mut request: serde_json::Value) -> String {
    request["jobQueue"] = json!("main");
    if request.get("jobDefinition").is_none() {
        request["jobDefinition"] = json!("sleeper");
    }
    let job = batch
        .submit_job(decode::<SubmitJob>(request))
        .await
        .expect("submitting a job");
    println!("SUBMITTED {}", job.job_id);
    std::io::stdout().flush().unwrap();
    job.job_id
}

/// Waits until `ready` holds of the jobs `ids`, makes sure what it saw is stored, and says
/// `READY`: the test kills this process then.
async fn ready_when(batch: &Batch, ids: &[String], ready: impl Fn(&[Job]) -> bool) {
    loop {
        let jobs: Vec<Job> = ids.iter().map(|id| describe(batch, id)).collect();
        if ready(&jobs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // RUNNING is written behind, not awaited. The store commits in the order it is sent, so
    // once this awaited write is committed, the RUNNING records sent before it are too.
    let queue = batch.job_queue_arn("main").unwrap();
    let tag = [("crash".to_string(), "ready".to_string())].into();
    batch
        .tag_resource(&queue, tag, &[])
        .await
        .expect("tagging the queue");
    println!("READY");
    std::io::stdout().flush().unwrap();
}

async fn drain(batch: &Batch) {
    let all = || {
        let listed = |request: ListJobs| batch.list_jobs(&request).unwrap().jobs;
        let every_name = vec![KeyValuesPair {
            name: Some("JOB_NAME".into()),
            values: vec!["*".into()],
        }];
        let mut jobs = listed(ListJobs {
            job_queue: Some("main".into()),
            filters: every_name.clone(),
            ..ListJobs::default()
        });
        // Array children are listed through their parent only.
        let parents: Vec<String> = jobs
            .iter()
            .filter(|j| j.is_array_parent())
            .map(|j| j.job_id.clone())
            .collect();
        for parent in parents {
            jobs.extend(listed(ListJobs {
                array_job_id: Some(parent),
                filters: every_name.clone(),
                max_results: Some(100),
                ..ListJobs::default()
            }));
        }
        jobs
    };
    loop {
        let jobs = all();
        if jobs.iter().all(|j| j.status.is_terminal()) {
            // A job's end is seen before its record is committed: close, so that what is
            // printed is what the next open finds (exiting first could lose the last ends).
            batch.close("drained").await.expect("close");
            for job in jobs {
                println!("{}", serde_json::to_string(&job).unwrap());
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
