//! Prints the control plane's throughput and scale, embedded and durable, in one run:
//! 20,000 hello jobs submitted and run to SUCCEEDED (jobs/s), a 10,000-child array to all
//! SUCCEEDED, restart time with 100,000 stored jobs, and RAM per queued job. Baselines measured
//! in the same run: `xargs -P <cores>` running the native hello 20,000 times (a process-per-job
//! runner) and the executor alone running 20,000 hellos (the ceiling without a control plane).
//! And what a 10,000-child array of a 29 KB SubmitJob costs (issue 14: heap, RSS and database
//! growth), against the same array submitted with an empty request.
//!
//! `cargo bench -p wasmbatch-tests --bench control_plane` (`-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wasmbatch_runtime::model::{ArrayProperties, JobStatus, SubmitJob};
use wasmbatch_runtime::{AttemptSpec, Batch, BatchConfig};
use wasmbatch_tests::stats::{record, rss_kib};
use wasmbatch_tests::{
    decode, guests, large_submit, local_queue, module_and_definition, submit_concurrently,
};

/// The allocator of the `wasmbatch` binary, so the embedded service is measured as it ships,
/// counting the bytes it holds: RSS alone cannot say how much of the growth is the jobs and how
/// much is allocator slack or redb's page cache.
#[global_allocator]
static ALLOCATOR: Counting = Counting(mimalloc::MiMalloc);

struct Counting(mimalloc::MiMalloc);

/// Bytes allocated and not yet freed through the global allocator while [`COUNTING`] is on.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Off outside the state scenario: a counter every thread adds to is a contended cache line,
/// which would slow the throughput scenarios it does not measure.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(bytes: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to mimalloc unchanged; only the counter is added. Frees of
// blocks allocated before counting began make the count low, never high, so the figures are
// not inflated by it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

async fn open(dir: &std::path::Path) -> Batch {
    let mut config = BatchConfig::new(dir);
    config.default_environment_memory_mib = 1 << 20;
    Batch::open(config).await.unwrap()
}

async fn setup(batch: &Batch, vcpus: u32) {
    local_queue(batch, vcpus, "ENABLED").await;
    module_and_definition(
        batch,
        "hello",
        guests::wasip1::HELLO,
        &["bench"],
        16,
        json!({}),
    )
    .await;
}

fn submit(name: &str) -> SubmitJob {
    SubmitJob {
        job_name: name.into(),
        job_queue: "main".into(),
        job_definition: "hello".into(),
        ..SubmitJob::default()
    }
}

/// Waits until job `id` has ended, and checks it SUCCEEDED.
async fn succeeds(batch: &Batch, id: &str) {
    loop {
        let job = batch
            .describe_jobs(&[id.to_string()])
            .unwrap()
            .pop()
            .unwrap();
        if job.status.is_terminal() {
            assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn until(batch: &Batch, done: impl Fn(&BTreeMap<JobStatus, u64>) -> bool) {
    loop {
        if done(&batch.job_counts("main").unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Bytes this process has passed to write(2) and its kin so far (`wchar` in /proc/self/io).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:")?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let jobs = if quick { 2_000 } else { 20_000 };
    let array = if quick { 1_000 } else { 10_000 };
    let sequential = if quick { 200 } else { 1_000 };
    let stored = if quick { 10_000 } else { 100_000 };
    println!(
        "# wasmbatch control-plane benchmark{}\n",
        if quick { " (quick)" } else { "" }
    );
    println!("| scenario | result | baseline (same run) | ratio |\n|---|---|---|---|");

    // Throughput: many clients submitting concurrently, then everything runs.
    let dir = tempfile::tempdir().unwrap();
    let batch = open(dir.path()).await;
    setup(&batch, 64).await;
    let written_before = written_bytes();
    let start = Instant::now();
    submit_concurrently(&batch, "main", "hello", 64, jobs / 64).await;
    let submitted = start.elapsed();
    let total = (jobs / 64 * 64) as u64;
    until(&batch, |c| c.get(&JobStatus::Succeeded) == Some(&total)).await;
    let elapsed = start.elapsed();
    // What limits this rate is bytes: records serialised, written and synced per job.
    let written_per_job = written_bytes().saturating_sub(written_before) as f64 / total as f64;
    let rate = total as f64 / elapsed.as_secs_f64();
    // `--profile`: only the part above, for `perf record`.
    if std::env::args().any(|a| a == "--profile") {
        println!("{rate:.0} jobs/s");
        return;
    }

    // Baselines: the executor alone, and a process per job.
    let executor = batch.executor().clone();
    let hello = executor
        .load(guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let exec_start = Instant::now();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (executor, hello) = (executor.clone(), hello.clone());
            tokio::spawn(async move {
                for _ in 0..total / 2 {
                    executor.run(&hello, AttemptSpec::default()).await;
                }
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    let exec_rate = total as f64 / exec_start.elapsed().as_secs_f64();
    let xargs_start = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq {total} | xargs -P {} -n 1 {} > /dev/null",
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            guests::native::HELLO
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let xargs_rate = total as f64 / xargs_start.elapsed().as_secs_f64();
    println!(
        "| {total} hello jobs, submit → all SUCCEEDED, durable (64 concurrent clients) | {rate:.0} jobs/s (submits done in {:.2} s) | xargs -P: {xargs_rate:.0} jobs/s | {:.1}× |",
        submitted.as_secs_f64(),
        rate / xargs_rate
    );
    println!(
        "| bytes written to the store per job in the run above (write(2) calls) | {:.1} KiB | | |",
        written_per_job / 1024.0
    );
    println!(
        "| same, ceiling: Executor::run alone, 2 tasks, not durable | {exec_rate:.0} runs/s | control plane: {rate:.0} jobs/s | {:.2}× |",
        rate / exec_rate
    );
    record(
        "throughput.embedded",
        json!({"jobs": total, "jobs_per_s": rate, "xargs_jobs_per_s": xargs_rate, "executor_runs_per_s": exec_rate, "written_bytes_per_job": written_per_job}),
    );
    drop(batch);

    // Fan-out: one array job.
    let dir = tempfile::tempdir().unwrap();
    let batch = open(dir.path()).await;
    setup(&batch, 64).await;
    let start = Instant::now();
    let mut request = submit("fan");
    request.array_properties = Some(ArrayProperties { size: Some(array) });
    let parent = batch.submit_job(request).await.unwrap().job_id;
    let submit_time = start.elapsed();
    succeeds(&batch, &parent).await;
    println!(
        "| {array}-child array, submit → all SUCCEEDED | {:.2} s (submit {:.0} ms) | goal < 1 s | {:.2}× |",
        start.elapsed().as_secs_f64(),
        submit_time.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64()
    );
    record(
        "fanout.array",
        json!({"children": array, "seconds": start.elapsed().as_secs_f64()}),
    );

    // A SEQUENTIAL array: each child starts when the one before has ended. Baseline: a client
    // that submits the same number of jobs one after another, each when the last has ended.
    let start = Instant::now();
    let mut request = submit("chain");
    request.array_properties = Some(ArrayProperties {
        size: Some(sequential),
    });
    request.depends_on = vec![decode(json!({"type": "SEQUENTIAL"}))];
    let parent = batch.submit_job(request).await.unwrap().job_id;
    succeeds(&batch, &parent).await;
    let chained = start.elapsed();
    let start = Instant::now();
    for i in 0..sequential {
        let id = batch
            .submit_job(submit(&format!("one-by-one-{i}")))
            .await
            .unwrap()
            .job_id;
        let mut log = batch.follow_job(&id, None).unwrap();
        while log.next().await.unwrap().is_some() {}
    }
    let one_by_one = start.elapsed();
    println!(
        "| {sequential}-child SEQUENTIAL array, submit → all SUCCEEDED | {:.2} s | {:.2} s submitting each job after the last ended | {:.2}× |",
        chained.as_secs_f64(),
        one_by_one.as_secs_f64(),
        chained.as_secs_f64() / one_by_one.as_secs_f64()
    );
    record(
        "fanout.sequential",
        json!({"children": sequential, "seconds": chained.as_secs_f64(), "one_by_one_seconds": one_by_one.as_secs_f64()}),
    );
    drop(batch);

    array_of_a_large_request().await;

    // Scale of state: queued jobs (a DISABLED environment runs nothing), RAM, restart.
    let dir = tempfile::tempdir().unwrap();
    {
        let batch = open(dir.path()).await;
        setup(&batch, 64).await;
        batch
            .update_compute_environment(decode(
                json!({"computeEnvironment": "local", "state": "DISABLED"}),
            ))
            .await
            .unwrap();
        // Half, then the other half: the growth between the two is what one more queued job
        // costs. The first half also fills redb's page cache, which is bounded (16 MiB) and so
        // is not a cost per job; it is reported on its own line.
        COUNTING.store(true, Ordering::Relaxed);
        let (rss_before, live_before) = (rss_kib(), live_bytes());
        submit_concurrently(&batch, "main", "hello", 50, stored / 100).await;
        let live_half = live_bytes();
        submit_concurrently(&batch, "main", "hello", 50, stored / 100).await;
        let live_after = live_bytes();
        COUNTING.store(false, Ordering::Relaxed);
        let half = (stored / 100 * 50) as f64;
        let per_job = (live_after - live_half) as f64 / half;
        let first_half = (live_half - live_before) as f64 / half;
        let rss_per_job = rss_kib().saturating_sub(rss_before) as f64 * 1024.0 / (2.0 * half);
        println!(
            "| RAM per queued job: heap growth from {} to {stored} queued | {per_job:.0} bytes | goal < 512 bytes | {:.2}× |",
            stored / 2,
            per_job / 512.0
        );
        println!(
            "| heap per job over the first {} (includes filling the store's page cache) | {first_half:.0} bytes | RSS growth over all {stored}: {rss_per_job:.0} bytes/job | {:.2}× |",
            stored / 2,
            first_half / per_job.max(1.0)
        );
        record(
            "state.ram",
            json!({"queued": stored, "bytes_per_job": per_job, "first_half_bytes_per_job": first_half, "rss_bytes_per_job": rss_per_job}),
        );
        batch.close("restart").await.unwrap();
    }
    let start = Instant::now();
    let mut config = BatchConfig::new(dir.path());
    config.default_environment_memory_mib = 1 << 20;
    let batch = Batch::open(config).await.unwrap();
    let restart = start.elapsed();
    let queued = batch
        .job_counts("main")
        .unwrap()
        .get(&JobStatus::Runnable)
        .copied()
        .unwrap_or(0);
    assert_eq!(queued, stored as u64);
    println!(
        "| restart with {stored} stored jobs | {:.0} ms | goal < 1000 ms | {:.2}× |",
        restart.as_secs_f64() * 1e3,
        restart.as_secs_f64()
    );
    record(
        "state.restart",
        json!({"stored": stored, "seconds": restart.as_secs_f64()}),
    );
}

/// Heap and RSS growth of submitting `request`, acknowledged (so committed).
async fn memory_growth(batch: &Batch, request: SubmitJob) -> (f64, f64) {
    COUNTING.store(true, Ordering::Relaxed);
    let (rss_before, live_before) = (rss_kib(), live_bytes());
    batch.submit_job(request).await.unwrap();
    let (rss_after, live_after) = (rss_kib(), live_bytes());
    COUNTING.store(false, Ordering::Relaxed);
    (
        (live_after - live_before) as f64,
        rss_after.saturating_sub(rss_before) as f64 * 1024.0,
    )
}

/// How much the database file of a fresh service grows when `request` is submitted to it. Fresh:
/// redb reuses pages freed by earlier transactions, so on a used database the file's length
/// says little about one submit.
async fn database_growth(request: SubmitJob) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let batch = queued_only(dir.path()).await;
    let db = dir.path().join("wasmbatch.redb");
    let before = std::fs::metadata(&db).unwrap().len();
    batch.submit_job(request).await.unwrap();
    let grown = std::fs::metadata(&db).unwrap().len().saturating_sub(before);
    batch.close("measured").await.unwrap();
    grown as f64
}

/// A service over `dir` whose environment is DISABLED: submitted jobs stay queued.
async fn queued_only(dir: &std::path::Path) -> Batch {
    let batch = open(dir).await;
    setup(&batch, 64).await;
    batch
        .update_compute_environment(decode(
            json!({"computeEnvironment": "local", "state": "DISABLED"}),
        ))
        .await
        .unwrap();
    batch
}

/// Issue 14: a 10,000-child array of a 29 KB request (parameters and containerOverrides
/// environment) against the same array of an empty request, queued on a DISABLED environment.
/// Before children shared their array's submission, each kept a copy: +544 MiB of database and
/// +450 to 750 MiB of RAM. An unmeasured array goes first, so that neither measured one pays for
/// filling redb's page cache and the allocator's first arenas, as a running server would not;
/// the large request goes last, so it pays for the bigger growth of the jobs' map. Database
/// growth is measured on a fresh service for each (see [`database_growth`]). The same size in
/// `--quick`: submitting without running is fast.
async fn array_of_a_large_request() {
    let children = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let batch = queued_only(dir.path()).await;
    let array = Some(ArrayProperties {
        size: Some(children),
    });
    let mut empty = submit("empty");
    empty.array_properties = array;
    memory_growth(&batch, empty.clone()).await;
    let (base_heap, base_rss) = memory_growth(&batch, empty.clone()).await;
    let mut large = large_submit("large", "hello", 29_000);
    let request_bytes = serde_json::to_vec(&large).unwrap().len();
    large.array_properties = array;
    let (heap, rss) = memory_growth(&batch, large.clone()).await;
    batch.close("measured").await.unwrap();
    let base_db = database_growth(empty).await;
    let db = database_growth(large).await;
    let mib = |b: f64| b / f64::from(1 << 20);
    println!(
        "| {children}-child array of a {:.1} KB request: heap growth | {:.2} MiB | same array, empty request: {:.2} MiB | {:.2}× |",
        request_bytes as f64 / 1000.0,
        mib(heap),
        mib(base_heap),
        heap / base_heap.max(1.0)
    );
    println!(
        "| same: RSS growth | {:.2} MiB | {:.2} MiB | {:.2}× |",
        mib(rss),
        mib(base_rss),
        rss / base_rss.max(1.0)
    );
    println!(
        "| same: database growth | {:.2} MiB | {:.2} MiB (a copy per child was +544 MiB) | {:.2}× |",
        mib(db),
        mib(base_db),
        db / base_db.max(1.0)
    );
    record(
        "array.large_request",
        json!({"children": children, "request_bytes": request_bytes,
               "heap_bytes": heap, "rss_bytes": rss, "db_bytes": db,
               "baseline_heap_bytes": base_heap, "baseline_rss_bytes": base_rss,
               "baseline_db_bytes": base_db}),
    );
}
