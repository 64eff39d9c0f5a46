//! Prints what cluster mode costs against the embedded service, both measured in the same run
//! on the same cores: one nats-server (the pinned 2.15.1, `sync_interval: always`, as the
//! deployment section asks), the control plane in this process (`Batch::open` with a
//! `ClusterConfig`, as `wasmbatch serve --cluster` opens it), and two `wasmbatch worker`
//! processes of 2 vCPUs each on the UNMANAGED environment `farm`; beside it the embedded service
//! with a MANAGED environment of the same 4 vCPUs.
//! - Jobs/s end to end: N short hello jobs submitted by 32 concurrent callers, from the first
//!   submit to the last SUCCEEDED; `ROUNDS` rounds, cluster and embedded alternating; medians
//!   and the ratio cluster / embedded (goal ≥ 0.5×).
//! - Dispatch latency: single hello jobs submitted one at a time onto idle workers, submit →
//!   RUNNING (DescribeJobs polled every 100 µs from a thread of its own; the embedded job may
//!   already be SUCCEEDED when it is seen, which counts as seen RUNNING), and the job's
//!   `startedAt − createdAt` (millisecond clocks); the two services interleaved job by job.
//!   Goal: p50 < 5 ms.
//! - Failover: the worker holding running `sleep` jobs is killed (SIGKILL); the time until its
//!   attempts failed ("Host lost") and until every one of them RUNNING again on the other worker,
//!   beside the lease this program sets ([`LEASE`], heartbeats every [`HEARTBEAT`]): lease-bound
//!   by design.
//!
//! The worker binary is `$WASMBATCH_BIN` (scripts/bench builds it with the same profile and sets
//! it), else the `wasmbatch` beside this program's own build directory.
//!
//! `cargo build --profile bench -p wasmbatch --bin wasmbatch && cargo bench -p wasmbatch-tests
//! --bench cluster` (`-- --quick`: fewer jobs and rounds, well under a minute).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use wasmbatch_runtime::cluster::{ClusterConfig, wire};
use wasmbatch_runtime::model::{Job, JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::nats::{NatsServer, nats_server_binary};
use wasmbatch_tests::stats::{Sample, record, table};
use wasmbatch_tests::{
    decode, environment, guests, job_queue, module_and_definition, submit_concurrently,
    wasmbatch_binary,
};

/// The allocator of the `wasmbatch` binary, so the service is measured as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long a worker may go unheard before its attempts fail (the control plane's `--lease`).
const LEASE: Duration = Duration::from_secs(2);
/// How often the workers send their heartbeat (their `--heartbeat`).
const HEARTBEAT: Duration = Duration::from_millis(250);
/// The workers, each with this many vCPUs: together the embedded environment's.
const WORKERS: [&str; 2] = ["w1", "w2"];
const VCPUS_PER_WORKER: u32 = 2;
/// Concurrent submitters in the throughput rounds.
const CLIENTS: usize = 32;
/// The queue of each service.
const QUEUE: &str = "q";
/// How often the dispatch measurement looks at the job.
const POLL: Duration = Duration::from_micros(100);

/// A `wasmbatch worker` process; its stderr is kept to show if it fails.
struct WorkerProcess {
    child: Child,
    said: Arc<Mutex<String>>,
}

impl WorkerProcess {
    /// Starts worker `name` for `farm` and waits until it serves (the control plane answered
    /// its first heartbeat).
    async fn start(binary: &Path, nats: &str, name: &'static str, dir: &Path) -> Self {
        let mut child = Command::new(binary)
            .args(["worker", "--cluster", nats, "--compute-environment", "farm"])
            .args(["--vcpus", &VCPUS_PER_WORKER.to_string(), "--memory", "4096"])
            .args(["--name", name, "--heartbeat"])
            .arg(format!("{}ms", HEARTBEAT.as_millis()))
            .arg("--data-dir")
            .arg(dir.join(name))
            .env("WASMBATCH_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let said = Arc::new(Mutex::new(String::new()));
        let keep = said.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut said = keep.lock().unwrap();
                said.push_str(&line);
                said.push('\n');
            }
        });
        let mut worker = Self { child, said };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !worker.said().contains("serving compute environment") {
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!("worker {name} exited ({status}):\n{}", worker.said());
            }
            assert!(
                Instant::now() < deadline,
                "worker {name} not serving after a minute:\n{}",
                worker.said()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker
    }

    fn said(&self) -> String {
        self.said.lock().unwrap().clone()
    }

    /// SIGKILL, and reaped.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The definitions both services run: `hello` and `sleep` (1 vCPU, 64 MiB; `sleep` has an
/// attempt to spare, for the retry after a lost host).
async fn definitions(batch: &Batch) {
    module_and_definition(
        batch,
        "hello",
        guests::wasip1::HELLO,
        &["bench"],
        64,
        json!({}),
    )
    .await;
    module_and_definition(
        batch,
        "sleep",
        guests::wasip1::SLEEP,
        &["600000"],
        64,
        json!({"retryStrategy": {"attempts": 2}}),
    )
    .await;
}

fn config(dir: &Path) -> BatchConfig {
    let mut config = BatchConfig::new(dir);
    config.default_environment_memory_mib = 1 << 20;
    config
}

/// The control plane in cluster mode: UNMANAGED `farm` and its queue.
async fn open_cluster(dir: &Path, nats: &str) -> Batch {
    let mut config = config(dir);
    let mut cluster = ClusterConfig::new(nats);
    cluster.lease = LEASE;
    cluster.heartbeat = HEARTBEAT;
    config.cluster = Some(cluster);
    let batch = Batch::open(config)
        .await
        .expect("opening the control plane");
    batch
        .create_compute_environment(decode(
            json!({"computeEnvironmentName": "farm", "type": "UNMANAGED"}),
        ))
        .await
        .expect("creating the UNMANAGED environment");
    job_queue(&batch, QUEUE, 1, "farm").await;
    definitions(&batch).await;
    batch
}

/// The embedded service: MANAGED `local` with the workers' vCPUs together, and its queue.
async fn open_embedded(dir: &Path) -> Batch {
    let batch = Batch::open(config(dir)).await.unwrap();
    environment(
        &batch,
        "local",
        VCPUS_PER_WORKER * WORKERS.len() as u32,
        "ENABLED",
    )
    .await;
    job_queue(&batch, QUEUE, 1, "local").await;
    definitions(&batch).await;
    batch
}

/// Waits until every worker in `WORKERS` is live on the control plane.
async fn wait_workers(batch: &Batch) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = batch.workers();
        if WORKERS.iter().all(|w| live.iter().any(|l| l.name == *w)) {
            return;
        }
        assert!(Instant::now() < deadline, "workers not live: {live:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn submit(definition: &str) -> SubmitJob {
    SubmitJob {
        job_name: definition.into(),
        job_queue: QUEUE.into(),
        job_definition: definition.into(),
        ..SubmitJob::default()
    }
}

fn job(batch: &Batch, id: &str) -> Job {
    batch
        .describe_jobs(&[id.to_string()])
        .unwrap()
        .pop()
        .expect("the job")
}

fn count(batch: &Batch, status: JobStatus) -> u64 {
    batch
        .job_counts(QUEUE)
        .unwrap()
        .get(&status)
        .copied()
        .unwrap_or(0)
}

/// `jobs` hello jobs from `CLIENTS` callers, first submit to last SUCCEEDED.
async fn throughput_round(batch: &Batch, jobs: usize) -> (Duration, u64) {
    let succeeded = count(batch, JobStatus::Succeeded);
    let failed = count(batch, JobStatus::Failed);
    let placed = batch.scheduler_stats().placements;
    let total = (jobs / CLIENTS * CLIENTS) as u64;
    let start = Instant::now();
    submit_concurrently(batch, QUEUE, "hello", CLIENTS, jobs / CLIENTS).await;
    // Counting jobs by status walks every job the service holds, under its lock: done every
    // few milliseconds through a round it would slow the service it measures, the more so the
    // longer the round. The count of placements costs nothing, so it is watched until the
    // last job is placed, and the statuses only for the round's last attempts.
    while batch.scheduler_stats().placements < placed + total {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{total} hello jobs not placed in 10 minutes: {:?}",
            batch.job_counts(QUEUE)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    loop {
        assert_eq!(
            count(batch, JobStatus::Failed),
            failed,
            "a hello job failed"
        );
        if count(batch, JobStatus::Succeeded) == succeeded + total {
            return (start.elapsed(), total);
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{total} hello jobs not done in 10 minutes: {:?}",
            batch.job_counts(QUEUE)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One hello job onto an idle service, from a thread that may block: (submit → seen RUNNING or
/// later, `startedAt − createdAt`).
fn dispatch_one(runtime: &tokio::runtime::Handle, batch: &Batch) -> (Duration, Duration) {
    let start = Instant::now();
    let id = runtime
        .block_on(batch.submit_job(submit("hello")))
        .expect("submitting")
        .job_id;
    let seen = loop {
        let status = job(batch, &id).status;
        if matches!(
            status,
            JobStatus::Running | JobStatus::Succeeded | JobStatus::Failed
        ) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {id} not RUNNING after a minute: {status}"
        );
        std::thread::sleep(POLL);
    };
    let ended = loop {
        let ended = job(batch, &id);
        if ended.status.is_terminal() {
            break ended;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job {id} not ended after a minute: {ended:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(ended.status, JobStatus::Succeeded, "{ended:?}");
    let clock = ended.started_at.expect("a started job") - ended.created_at;
    (seen, Duration::from_millis(clock.max(0) as u64))
}

/// What one kill of a worker showed.
struct Failover {
    /// Kill → every attempt it held failed ("Host lost").
    lost: Duration,
    /// Kill → every one of those jobs RUNNING on the other worker.
    moved: Duration,
    /// The jobs it held.
    jobs: usize,
}

/// Two `sleep` jobs RUNNING; the worker holding more of them is killed; waits until they run
/// on the other; then ends them and starts the killed worker again.
async fn failover_round(
    batch: &Batch,
    workers: &mut [WorkerProcess],
    binary: &Path,
    nats: &str,
    dir: &Path,
) -> Failover {
    wait_workers(batch).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(batch.submit_job(submit("sleep")).await.unwrap().job_id);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let holders: Vec<String> = loop {
        let jobs: Vec<Job> = ids.iter().map(|id| job(batch, id)).collect();
        if jobs.iter().all(|j| j.status == JobStatus::Running) {
            break jobs
                .iter()
                .map(|j| j.remote.as_ref().expect("a remote attempt").worker.clone())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "sleep jobs not RUNNING: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let held = |w: &str| holders.iter().filter(|h| *h == w).count();
    let victim = if held(WORKERS[0]) >= held(WORKERS[1]) {
        0
    } else {
        1
    };
    let survivor = WORKERS[1 - victim];
    let moving: Vec<String> = ids
        .iter()
        .zip(&holders)
        .filter(|(_, h)| *h == WORKERS[victim])
        .map(|(id, _)| id.clone())
        .collect();

    let killed = Instant::now();
    workers[victim].kill();
    let mut lost = None;
    let moved = loop {
        let jobs: Vec<Job> = moving.iter().map(|id| job(batch, id)).collect();
        if lost.is_none() && jobs.iter().all(|j| !j.attempts.is_empty()) {
            lost = Some(killed.elapsed());
        }
        let elsewhere = |j: &Job| {
            j.status == JobStatus::Running
                && j.remote
                    .as_ref()
                    .is_some_and(|r| r.attempt == 2 && r.worker == survivor)
        };
        if jobs.iter().all(elsewhere) {
            let moved = killed.elapsed();
            for j in &jobs {
                let first = &j.attempts[0];
                assert!(
                    first
                        .status_reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("Host lost")),
                    "{j:?}"
                );
            }
            break moved;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the killed worker's jobs not RUNNING elsewhere after a minute: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let lost = lost.unwrap_or(moved);

    batch
        .terminate_jobs(&ids, "bench round over")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ids.iter().all(|id| job(batch, id).status.is_terminal()) {
        assert!(
            Instant::now() < deadline,
            "sleep jobs not ended after terminate"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers[victim] = WorkerProcess::start(binary, nats, WORKERS[victim], dir).await;
    wait_workers(batch).await;
    Failover {
        lost,
        moved,
        jobs: moving.len(),
    }
}

/// The CPU time (user and system) process `pid` has used so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th of the line, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// How many messages the work and the report streams have stored so far (their last sequence
/// numbers), from the server's monitoring port.
fn stored_messages(nats: &NatsServer) -> [u64; 2] {
    let (status, body) = nats
        .monitor_get("/jsz?accounts=true&streams=true")
        .expect("asking nats-server for its streams");
    assert_eq!(status, 200, "{body}");
    let jsz: serde_json::Value = serde_json::from_str(&body).expect("/jsz is JSON");
    let streams: Vec<&serde_json::Value> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .collect();
    [wire::WORK_STREAM, wire::REPORT_STREAM].map(|name| {
        streams
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["state"]["last_seq"].as_u64())
            .unwrap_or_else(|| panic!("no stream {name} in /jsz: {body}"))
    })
}

/// Records `sample`'s quantiles (as `Sample::record` does) under `key`, with `extra` fields.
fn record_with(key: &str, sample: &Sample, extra: serde_json::Value) {
    let mut fields = json!({
        "name": sample.name,
        "n": sample.times.len(),
        "p50_us": micros(sample.median()),
        "p99_us": micros(sample.percentile(0.99)),
        "min_us": micros(sample.percentile(0.0)),
        "max_us": micros(sample.percentile(1.0)),
    });
    if let (Some(fields), Some(extra)) = (fields.as_object_mut(), extra.as_object()) {
        fields.extend(extra.clone());
    }
    record(key, fields);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (jobs, rounds, singles, warm, failovers) = if quick {
        (256, 2, 50, 5, 2)
    } else {
        (2_048, 5, 300, 20, 5)
    };
    println!(
        "# wasmbatch cluster benchmark{}",
        if quick { " (quick)" } else { "" }
    );
    let binary = wasmbatch_binary();
    eprintln!("cluster bench: workers run {}", binary.display());
    let version = Command::new(nats_server_binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let nats = NatsServer::start_single();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let cluster = open_cluster(&dir.path().join("cp"), &url).await;
    let embedded = open_embedded(&dir.path().join("embedded")).await;
    let mut workers = Vec::new();
    for name in WORKERS {
        workers.push(WorkerProcess::start(&binary, &url, name, dir.path()).await);
    }
    wait_workers(&cluster).await;
    println!(
        "\nOne {version} (JetStream, `sync_interval: always`, on loopback); the control plane in \
         this process; {} `wasmbatch worker` processes of {VCPUS_PER_WORKER} vCPUs each (heartbeat \
         {} ms, lease {} s). Baseline: the embedded service, a MANAGED environment of {} vCPUs. \
         All on this machine's {} cores.",
        WORKERS.len(),
        HEARTBEAT.as_millis(),
        LEASE.as_secs_f64(),
        VCPUS_PER_WORKER * WORKERS.len() as u32,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    // 1. Jobs/s end to end, alternating. A first small round each warms the modules (the
    // workers fetch and compile hello once).
    throughput_round(&cluster, CLIENTS * 4).await;
    throughput_round(&embedded, CLIENTS * 4).await;
    let mut per_job = [Vec::new(), Vec::new()];
    let mut total = 0;
    let stored_before = stored_messages(&nats);
    // CPU time spent during the rounds: [this process in embedded rounds, this process (the
    // control plane) in cluster rounds, nats-server, the workers].
    let mut cpu = [Duration::ZERO; 4];
    let others = || {
        let workers: Vec<u32> = workers.iter().map(|w| w.child.id()).collect();
        [
            cpu_time(nats.pid().expect("nats-server runs")),
            workers.iter().map(|pid| cpu_time(*pid)).sum(),
        ]
    };
    for _ in 0..rounds {
        for (i, batch) in [&embedded, &cluster].into_iter().enumerate() {
            let (own, rest) = (cpu_time(std::process::id()), others());
            let (elapsed, done) = throughput_round(batch, jobs).await;
            cpu[i] += cpu_time(std::process::id()) - own;
            if i == 1 {
                let after = others();
                cpu[2] += after[0] - rest[0];
                cpu[3] += after[1] - rest[1];
            }
            total = done;
            per_job[i].push(elapsed / done as u32);
        }
    }
    let per_round_job = |d: Duration| d / (total * rounds as u64) as u32;
    let cpu_embedded = per_round_job(cpu[0]);
    let cpu_cluster = per_round_job(cpu[1] + cpu[2] + cpu[3]);
    let stored = stored_messages(&nats);
    let per_cluster_job =
        |i: usize| (stored[i] - stored_before[i]) as f64 / (total * rounds as u64) as f64;
    println!(
        "\n{total} hello jobs from {CLIENTS} concurrent callers, first submit → last SUCCEEDED; \
         {rounds} round(s) each, alternating. Messages JetStream stored per cluster job (each a \
         write and an fsync): {:.3} in {}, {:.3} in {}. CPU time per job (user + system, all \
         cores): embedded {:.0} µs; cluster {:.0} µs = control plane {:.0} + nats-server {:.0} + \
         workers {:.0}.",
        per_cluster_job(0),
        wire::WORK_STREAM,
        per_cluster_job(1),
        wire::REPORT_STREAM,
        micros(cpu_embedded),
        micros(cpu_cluster),
        micros(per_round_job(cpu[1])),
        micros(per_round_job(cpu[2])),
        micros(per_round_job(cpu[3])),
    );
    let throughput = [
        Sample {
            name: "embedded, MANAGED 4 vCPUs: per job (baseline)",
            times: per_job[0].clone(),
        },
        Sample {
            name: "cluster, 2 workers × 2 vCPUs: per job",
            times: per_job[1].clone(),
        },
    ];
    let throughput = table(
        "Cluster: hello jobs end to end, per job (the inverse of jobs/s)",
        &throughput,
        &[("embedded", 0)],
    );
    let embedded_rate = 1.0 / throughput[0].median().as_secs_f64();
    let cluster_rate = 1.0 / throughput[1].median().as_secs_f64();
    let ratio = cluster_rate / embedded_rate;
    println!(
        "\ncluster.throughput: {cluster_rate:.0} jobs/s in cluster mode, {embedded_rate:.0} jobs/s \
         embedded: {ratio:.2}× (goal ≥ 0.5×)"
    );
    record(
        "cluster.throughput",
        json!({
            "jobs": total,
            "rounds": rounds,
            "clients": CLIENTS,
            "workers": WORKERS.len(),
            "vcpus": VCPUS_PER_WORKER * WORKERS.len() as u32,
            "cluster_jobs_per_s": cluster_rate,
            "embedded_jobs_per_s": embedded_rate,
            "ratio": ratio,
            "work_messages_per_job": per_cluster_job(0),
            "report_messages_per_job": per_cluster_job(1),
            "embedded_cpu_us_per_job": micros(cpu_embedded),
            "cluster_cpu_us_per_job": micros(cpu_cluster),
            "control_plane_cpu_us_per_job": micros(per_round_job(cpu[1])),
            "nats_cpu_us_per_job": micros(per_round_job(cpu[2])),
            "workers_cpu_us_per_job": micros(per_round_job(cpu[3])),
        }),
    );

    // 2. Dispatch latency, one job at a time, the two services interleaved.
    let runtime = tokio::runtime::Handle::current();
    let (a, b) = (cluster.clone(), embedded.clone());
    let (seen, clocks) = tokio::task::spawn_blocking(move || {
        let mut seen = [Vec::new(), Vec::new()];
        let mut clocks = [Vec::new(), Vec::new()];
        for round in 0..singles + warm {
            for (i, batch) in [&b, &a].into_iter().enumerate() {
                let (noticed, clock) = dispatch_one(&runtime, batch);
                if round >= warm {
                    seen[i].push(noticed);
                    clocks[i].push(clock);
                }
                // The worker acknowledges its message after the end is reported: let it idle.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        (seen, clocks)
    })
    .await
    .unwrap();
    println!(
        "\n{singles} single hello jobs each, one at a time onto idle workers (after {warm} warm-up \
         jobs), the two services interleaved: submit → RUNNING seen by polling DescribeJobs \
         every {} µs (an embedded job may be seen already SUCCEEDED), and the job's startedAt − \
         createdAt (millisecond clocks; the worker's clock for a remote attempt).",
        POLL.as_micros()
    );
    let dispatch = [
        Sample {
            name: "embedded: submit → RUNNING seen (baseline)",
            times: seen[0].clone(),
        },
        Sample {
            name: "cluster: submit → RUNNING seen",
            times: seen[1].clone(),
        },
        Sample {
            name: "embedded: startedAt − createdAt",
            times: clocks[0].clone(),
        },
        Sample {
            name: "cluster: startedAt − createdAt",
            times: clocks[1].clone(),
        },
    ];
    let dispatch = table(
        "Cluster: dispatch latency, submit → RUNNING on a remote worker",
        &dispatch,
        &[("embedded", 0)],
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\ncluster.dispatch: p50 {:.2} ms, p99 {:.2} ms (embedded p50 {:.2} ms, p99 {:.2} ms; goal p50 < 5 ms)",
        ms(dispatch[1].median()),
        ms(dispatch[1].percentile(0.99)),
        ms(dispatch[0].median()),
        ms(dispatch[0].percentile(0.99)),
    );
    record_with(
        "cluster.dispatch",
        &dispatch[1],
        json!({
            "embedded_p50_us": micros(dispatch[0].median()),
            "embedded_p99_us": micros(dispatch[0].percentile(0.99)),
            "clock_p50_us": micros(dispatch[3].median()),
            "clock_p99_us": micros(dispatch[3].percentile(0.99)),
        }),
    );
    record_with("cluster.dispatch_embedded", &dispatch[0], json!({}));

    // 3. Failover: a worker killed while it runs attempts.
    let mut lost = Vec::new();
    let mut moved = Vec::new();
    let mut held = Vec::new();
    for _ in 0..failovers {
        let round = failover_round(&cluster, &mut workers, &binary, &url, dir.path()).await;
        lost.push(round.lost);
        moved.push(round.moved);
        held.push(round.jobs);
    }
    println!(
        "\nA worker holding RUNNING sleep jobs is killed (SIGKILL); {failovers} round(s), the \
         killed worker started again between them; it held {held:?} job(s) in turn. The lease \
         is {} s and the workers heartbeat every {} ms: a worker counts as lost a lease after \
         the last heartbeat heard, which bounds this by design.",
        LEASE.as_secs_f64(),
        HEARTBEAT.as_millis()
    );
    let failover = [
        Sample {
            name: "the lease this run sets",
            times: vec![LEASE],
        },
        Sample {
            name: "kill → its attempts failed (Host lost)",
            times: lost,
        },
        Sample {
            name: "kill → its jobs RUNNING on the other worker",
            times: moved,
        },
    ];
    let failover = table(
        "Cluster: a worker killed, its jobs running elsewhere",
        &failover,
        &[("lease", 0)],
    );
    println!(
        "\ncluster.failover: median {:.0} ms, max {:.0} ms to RUNNING on the other worker (lease {} ms, heartbeat {} ms)",
        ms(failover[2].median()),
        ms(failover[2].percentile(1.0)),
        LEASE.as_millis(),
        HEARTBEAT.as_millis()
    );
    record_with(
        "cluster.failover",
        &failover[2],
        json!({
            "lease_ms": LEASE.as_millis() as u64,
            "heartbeat_ms": HEARTBEAT.as_millis() as u64,
            "median_ms": ms(failover[2].median()),
            "max_ms": ms(failover[2].percentile(1.0)),
            "lost_median_ms": ms(failover[1].median()),
            "jobs_moved": held.iter().sum::<usize>(),
        }),
    );

    for worker in &mut workers {
        worker.kill();
    }
    let _ = cluster.close("bench").await;
    let _ = embedded.close("bench").await;
    drop(nats);
}
