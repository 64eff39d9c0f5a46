//! Prints the HTTP face's latency and throughput on loopback, each beside its baseline measured
//! in the same run:
//! - SubmitJob → SUCCEEDED for the hello guest, one job at a time: over HTTP, noticing the end
//!   by following the job's log (`GET /v1/jobs/{id}/logs?follow=true`, which ends with the job)
//!   and by polling DescribeJobs as AWS clients do; baseline: the same service embedded
//!   (`submit_job` + `follow_job`), so the difference is the HTTP layer.
//! - Acknowledged (durable) SubmitJob/s with N concurrent keep-alive clients, jobs held in a
//!   queue whose environment is disabled so only submitting is measured; baseline: N tasks
//!   calling the embedded `submit_job`.
//! - End to end: jobs submitted over HTTP by 32 clients and run to SUCCEEDED, jobs/s.
//!
//! The server runs in this process on its own 2-thread runtime, as `wasmbatch serve` would;
//! the clients on another (hyper's pooled client, HTTP/1.1 keep-alive). Both share the
//! machine's cores, as a client on the same host does.
//!
//! `cargo bench -p wasmbatch-tests --bench http` (`-- --quick` for a short run).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use wasmbatch_runtime::model::{JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::stats::{Sample, record, table};
use wasmbatch_tests::{decode, guests, local_queue, module_and_definition, submit_concurrently};

/// The allocator of the `wasmbatch` binary, so the service is measured as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Http = Client<HttpConnector, Full<Bytes>>;

/// Starts the server on its own runtime; returns its address and the service it serves.
fn start_server(dir: std::path::PathBuf) -> (SocketAddr, Batch) {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut config = BatchConfig::new(&dir);
            config.default_environment_memory_mib = 1 << 20;
            let batch = Batch::open(config).await.unwrap();
            // `main` runs jobs; `held` keeps them RUNNABLE on a disabled environment.
            local_queue(&batch, 2, "ENABLED").await;
            batch
                .create_compute_environment(decode(json!({
                    "computeEnvironmentName": "off", "type": "MANAGED", "state": "DISABLED",
                    "computeResources": {"type": "EC2", "maxvCpus": 2}
                })))
                .await
                .unwrap();
            batch
                .create_job_queue(decode(json!({
                    "jobQueueName": "held", "priority": 1,
                    "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "off"}]
                })))
                .await
                .unwrap();
            module_and_definition(
                &batch,
                "hello",
                guests::wasip1::HELLO,
                &["bench"],
                16,
                json!({}),
            )
            .await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender
                .send((listener.local_addr().unwrap(), batch.clone()))
                .unwrap();
            wasmbatch_api::serve(
                listener,
                batch,
                wasmbatch_api::Access::local(),
                std::future::pending(),
            )
            .await
            .unwrap();
        });
    });
    receiver.recv().unwrap()
}

async fn post(http: &Http, address: SocketAddr, operation: &str, body: &Value) -> Value {
    let request = hyper::Request::post(format!("http://{address}/v1/{operation}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = http.request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{operation}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

async fn submit(http: &Http, address: SocketAddr, queue: &str, name: &str) -> String {
    let body = json!({"jobName": name, "jobQueue": queue, "jobDefinition": "hello"});
    post(http, address, "submitjob", &body).await["jobId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Reads a followed log to its end, which is the job's end.
async fn follow(http: &Http, address: SocketAddr, id: &str) {
    let request = hyper::Request::get(format!("http://{address}/v1/jobs/{id}/logs?follow=true"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http.request(request).await.unwrap();
    assert!(response.status().is_success());
    response.into_body().collect().await.unwrap();
}

/// `clients` tasks, each submitting `per_client` hello jobs to `queue` over HTTP, one at a time.
async fn submit_over_http(
    http: &Http,
    address: SocketAddr,
    queue: &str,
    clients: usize,
    per_client: usize,
) {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, queue) = (http.clone(), queue.to_string());
            tokio::spawn(async move {
                for i in 0..per_client {
                    submit(&http, address, &queue, &format!("c{c}-{i}")).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn succeeded(batch: &Batch, id: &str) {
    let job = &batch.describe_jobs(&[id.to_string()]).unwrap()[0];
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 100 } else { 1_000 };
    let per_level = if quick { 1_000 } else { 20_000 };
    let end_to_end = if quick { 1_000 } else { 20_000 };
    println!(
        "# wasmbatch HTTP benchmark{}",
        if quick { " (quick)" } else { "" }
    );
    let dir = tempfile::tempdir().unwrap();
    let (address, batch) = start_server(dir.path().to_path_buf());
    let http: Http = Client::builder(TokioExecutor::new()).build_http();

    // Latency, one job at a time, the three ways interleaved so they share the machine's mood.
    let mut embedded = Vec::new();
    let mut followed = Vec::new();
    let mut polled = Vec::new();
    for round in 0..rounds + 20 {
        let warm = round >= 20;
        let started = Instant::now();
        let id = batch
            .submit_job(SubmitJob {
                job_name: "latency".into(),
                job_queue: "main".into(),
                job_definition: "hello".into(),
                ..SubmitJob::default()
            })
            .await
            .unwrap()
            .job_id;
        let mut follower = batch.follow_job(&id, None).unwrap();
        while follower.next().await.unwrap().is_some() {}
        let elapsed = started.elapsed();
        succeeded(&batch, &id);
        if warm {
            embedded.push(elapsed);
        }

        let started = Instant::now();
        let id = submit(&http, address, "main", "latency").await;
        follow(&http, address, &id).await;
        let elapsed = started.elapsed();
        succeeded(&batch, &id);
        if warm {
            followed.push(elapsed);
        }

        let started = Instant::now();
        let id = submit(&http, address, "main", "latency").await;
        loop {
            let reply = post(&http, address, "describejobs", &json!({"jobs": [id]})).await;
            match reply["jobs"][0]["status"].as_str() {
                Some("SUCCEEDED") => break,
                Some("FAILED") => panic!("{reply}"),
                _ => {}
            }
        }
        if warm {
            polled.push(started.elapsed());
        }
    }
    table(
        "SubmitJob → SUCCEEDED, hello, one job at a time (goal: HTTP p50 < 2 ms)",
        &[
            Sample {
                name: "embedded: submit_job + follow_job (baseline)",
                times: embedded,
            },
            Sample {
                name: "HTTP: SubmitJob + GET …/logs?follow=true",
                times: followed,
            },
            Sample {
                name: "HTTP: SubmitJob + DescribeJobs until SUCCEEDED",
                times: polled,
            },
        ],
        &[("embedded", 0)],
    )
    .iter()
    .zip([
        "submit_done.embedded",
        "submit_done.http_follow",
        "submit_done.http_poll",
    ])
    .for_each(|(sample, key)| sample.record(key));

    // Submit throughput: jobs are acknowledged (committed) and stay RUNNABLE.
    println!(
        "\n## Acknowledged SubmitJob/s, {per_level} jobs per level, held RUNNABLE (goal: ≥ 5,000/s over HTTP)\n"
    );
    println!("| clients | HTTP submits/s | embedded submits/s (baseline) | HTTP / embedded |");
    println!("|---|---|---|---|");
    for clients in [1, 8, 32, 128] {
        let per_client = per_level / clients;
        let started = Instant::now();
        submit_over_http(&http, address, "held", clients, per_client).await;
        let over_http = rate(per_client * clients, started.elapsed());
        let started = Instant::now();
        submit_concurrently(&batch, "held", "hello", clients, per_client).await;
        let embedded = rate(per_client * clients, started.elapsed());
        println!(
            "| {clients} | {over_http:.0} | {embedded:.0} | {:.2}× |",
            over_http / embedded
        );
        record(
            &format!("throughput.submit_http_{clients}"),
            json!({"clients": clients, "http_per_s": over_http, "embedded_per_s": embedded}),
        );
    }

    // End to end: submitted over HTTP and run.
    let clients = 32;
    let per_client = end_to_end / clients;
    let before = batch.job_counts("main").unwrap();
    let done_before = before.get(&JobStatus::Succeeded).copied().unwrap_or(0);
    let started = Instant::now();
    submit_over_http(&http, address, "main", clients, per_client).await;
    let submitted = started.elapsed();
    let total = (per_client * clients) as u64;
    loop {
        let counts = batch.job_counts("main").unwrap();
        let done = counts.get(&JobStatus::Succeeded).copied().unwrap_or(0) - done_before;
        assert_eq!(counts.get(&JobStatus::Failed), None, "{counts:?}");
        if done == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let finished = started.elapsed();
    println!("\n## End to end over HTTP: {total} hello jobs from {clients} clients\n");
    println!("| measure | result |\n|---|---|");
    println!(
        "| submitted (acknowledged) | {:.0} jobs/s |",
        rate(total as usize, submitted)
    );
    println!(
        "| all SUCCEEDED | {:.0} jobs/s ({:.2} s) |",
        rate(total as usize, finished),
        finished.as_secs_f64()
    );
    record(
        "throughput.http",
        json!({"clients": clients, "jobs": total, "jobs_per_s": rate(total as usize, finished),
               "submits_per_s": rate(total as usize, submitted)}),
    );
}
