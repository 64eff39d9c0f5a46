//! A process that runs the embedded control plane, for the crash test (tests/tests/crash.rs),
//! which kills it with SIGKILL mid-flight and starts it again on the same data dir.
//!
//! `crash-worker DATA_DIR submit SLEEP_WASM N MILLIS`: sets up an environment with 2 vCPUs, a
//! queue and a definition, submits N jobs that sleep MILLIS ms (2 attempts each), printing
//! `SUBMITTED <id>` once each is acknowledged, then waits to be killed.
//! `crash-worker DATA_DIR drain`: opens the same data dir, waits until every job has ended and
//! prints one JSON line per job.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{ListJobs, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{local_queue, module_and_definition};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = Batch::open(BatchConfig::new(&args[1])).await.expect("open");
    match args[2].as_str() {
        "submit" => submit(&batch, &args[3], args[4].parse().unwrap(), &args[5]).await,
        "drain" => drain(&batch).await,
        other => panic!("unknown mode {other}"),
    }
}

async fn submit(batch: &Batch, sleep_wasm: &str, count: usize, millis: &str) {
    local_queue(batch, 2, "ENABLED").await;
    let retries = json!({"retryStrategy": {"attempts": 2}});
    module_and_definition(batch, "sleeper", sleep_wasm, &[millis], 64, retries).await;
    for i in 0..count {
        let job = batch
            .submit_job(SubmitJob {
                job_name: format!("job-{i}"),
                job_queue: "main".into(),
                job_definition: "sleeper".into(),
                ..SubmitJob::default()
            })
            .await
            .unwrap();
        println!("SUBMITTED {}", job.job_id);
        std::io::stdout().flush().unwrap();
    }
    std::future::pending::<()>().await;
}

async fn drain(batch: &Batch) {
    let all = || {
        batch
            .list_jobs(&ListJobs {
                job_queue: Some("main".into()),
                filters: vec![wasmbatch_runtime::model::KeyValuesPair {
                    name: Some("JOB_NAME".into()),
                    values: vec!["*".into()],
                }],
                ..ListJobs::default()
            })
            .unwrap()
            .jobs
    };
    loop {
        let jobs = all();
        if jobs.iter().all(|j| j.status.is_terminal()) {
            for job in jobs {
                println!("{}", serde_json::to_string(&job).unwrap());
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
