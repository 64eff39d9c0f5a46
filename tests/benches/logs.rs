//! Prints what reading and keeping a job's output costs (issue 14), each beside a baseline
//! measured in the same run:
//! - GetLogEvents paging a 25,000-line stream 100 events at a time (into the API's router, no
//!   socket): the first page, the last page, every page and the default tail page, against a
//!   page of a stream that is only that page long, and against loading the whole stream once
//!   (what every page cost before pages read only their chunks).
//! - The same 25,000 events read in pages of 100 against calls of the largest limit (10,000).
//! - The worst attempt for output, 8 MiB of `\n` on each stream (16 million empty lines):
//!   database growth and peak RSS growth, against an attempt writing exactly the line cap of
//!   ordinary lines on each stream (baseline). Both are bounded by the caps, not by the lines
//!   written.
//!
//! `cargo bench -p wasmbatch-tests --bench logs` (`-- --quick` for a short run).

use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::stats::{Sample, record, table};
use wasmbatch_tests::{guests, local_queue, module_and_definition, run_job};

/// The allocator of the `wasmbatch` binary, so the service is measured as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LINES: usize = 25_000;
const PAGE: usize = 100;

/// One GetLogEvents call; returns the reply and how long it took.
async fn get_log_events(app: &axum::Router, body: Value) -> (Value, Duration) {
    let request = axum::http::Request::post("/")
        .header("x-amz-target", "Logs_20140328.GetLogEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(body.to_string()))
        .unwrap();
    let started = Instant::now();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let elapsed = started.elapsed();
    assert!(
        status.is_success(),
        "{status} {}",
        String::from_utf8_lossy(&bytes)
    );
    (serde_json::from_slice(&bytes).unwrap(), elapsed)
}

fn request(stream: &str, limit: usize, token: Option<&str>) -> Value {
    let mut body = json!({"logGroupName": "/aws/batch/job", "logStreamName": stream,
                          "startFromHead": true, "limit": limit});
    if let Some(token) = token {
        body["nextToken"] = json!(token);
    }
    body
}

/// Reads a stream forward from the head, `limit` at a time, until the token comes back
/// unchanged (as the AWS CLI pages); returns each call's time and the events read.
async fn walk(app: &axum::Router, stream: &str, limit: usize) -> (Vec<Duration>, usize) {
    let (mut times, mut events, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let (page, elapsed) = get_log_events(app, request(stream, limit, token.as_deref())).await;
        times.push(elapsed);
        events += page["events"].as_array().unwrap().len();
        let next = page["nextForwardToken"].as_str().unwrap().to_string();
        if token.as_deref() == Some(next.as_str()) {
            return (times, events);
        }
        token = Some(next);
    }
}

/// Runs definition `name` to SUCCEEDED and returns its log stream.
async fn stream_of(batch: &Batch, name: &str) -> String {
    let (job, _) = run_job(batch, name).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    batch.log_stream(&job.job_id, None).unwrap()
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Runs definition `name` and returns (database growth, peak RSS growth) in bytes, and the
/// events its log keeps. The peak is VmHWM after resetting it (`clear_refs` 5) before the run.
async fn cost_of(batch: &Batch, db: &std::path::Path, name: &str) -> (u64, u64, usize) {
    let db_before = std::fs::metadata(db).unwrap().len();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kib("VmRSS:");
    let stream = stream_of(batch, name).await;
    let kept = batch.log_bounds(&stream, None, None).await.unwrap().len;
    // The store commits in the order it was sent records, so once a later write is committed
    // so is every chunk of the attempt.
    batch
        .register_job_definition(wasmbatch_tests::decode(json!({
            "jobDefinitionName": "sync", "type": "container",
            "containerProperties": {"image": name, "command": []}
        })))
        .await
        .unwrap();
    let peak = status_kib("VmHWM:").saturating_sub(rss_before) * 1024;
    let grown = std::fs::metadata(db)
        .unwrap()
        .len()
        .saturating_sub(db_before);
    (grown, peak, kept)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let walks = if quick { 2 } else { 10 };
    let single_pages = if quick { 50 } else { LINES / PAGE };
    println!(
        "# wasmbatch logs benchmark{}",
        if quick { " (quick)" } else { "" }
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = BatchConfig::new(dir.path());
    config.default_environment_memory_mib = 1 << 20;
    let batch = Batch::open(config).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    let lot = guests::wasip1::WRITE_LOT;
    module_and_definition(&batch, "long", lot, &[&LINES.to_string()], 64, json!({})).await;
    module_and_definition(&batch, "short", lot, &[&PAGE.to_string()], 64, json!({})).await;
    let cap = batch.executor().config().output_cap_events;
    let flood_bytes = 8usize << 20;
    module_and_definition(
        &batch,
        "flood",
        guests::wasip1::NEWLINES,
        &[&flood_bytes.to_string()],
        64,
        json!({}),
    )
    .await;
    module_and_definition(
        &batch,
        "at-cap",
        lot,
        &[&cap.to_string(), "both"],
        64,
        json!({}),
    )
    .await;
    let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());

    let long = stream_of(&batch, "long").await;
    let short = stream_of(&batch, "short").await;
    let (mut first, mut last, mut every, mut tail, mut one_page, mut whole) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut paged, mut bulk) = (Vec::new(), Vec::new());
    for _ in 0..walks {
        let started = Instant::now();
        let (times, events) = walk(&app, &long, PAGE).await;
        paged.push(started.elapsed());
        assert_eq!(events, LINES);
        // The last call is the empty one that returns the same token.
        first.push(times[0]);
        last.push(times[times.len() - 2]);
        every.extend(times);
        let started = Instant::now();
        let (_, events) = walk(&app, &long, 10_000).await;
        bulk.push(started.elapsed());
        assert_eq!(events, LINES);
        for _ in 0..single_pages {
            one_page.push(get_log_events(&app, request(&short, PAGE, None)).await.1);
            let mut body = request(&long, PAGE, None);
            body["startFromHead"] = json!(false);
            tail.push(get_log_events(&app, body).await.1);
        }
        let started = Instant::now();
        assert_eq!(batch.log_events(&long).await.unwrap().len(), LINES);
        whole.push(started.elapsed());
    }
    let pages = [
        Sample {
            name: "page of a 100-line stream (baseline: the stream is the page)",
            times: one_page,
        },
        Sample {
            name: "first page (startFromHead)",
            times: first,
        },
        Sample {
            name: "last page (nextToken f/24900)",
            times: last,
        },
        Sample {
            name: "every page of a forward walk",
            times: every,
        },
        Sample {
            name: "tail page (no token, startFromHead=false: the CLI's default)",
            times: tail,
        },
        Sample {
            name: "loading the whole stream once (what each page cost before)",
            times: whole,
        },
    ];
    table(
        &format!("GetLogEvents, {PAGE} events per call, a {LINES}-line stream"),
        &pages,
        &[("one-page stream", 0), ("first page", 1)],
    );
    for (sample, key) in pages.iter().zip([
        "logs.page_short",
        "logs.page_first",
        "logs.page_last",
        "logs.page_every",
        "logs.page_tail",
        "logs.whole_stream",
    ]) {
        sample.record(key);
    }
    let reads = [
        Sample {
            name: "calls of limit 10,000 (baseline)",
            times: bulk,
        },
        Sample {
            name: "calls of limit 100",
            times: paged,
        },
    ];
    table(
        &format!("Reading all {LINES} events from the head"),
        &reads,
        &[("limit 10,000", 0)],
    );
    reads[0].record("logs.read_bulk");
    reads[1].record("logs.read_paged");

    // The worst attempt for output against one that writes exactly the line cap.
    let db = dir.path().join("wasmbatch.redb");
    // The baseline runs first, so it is the one that fills redb's page cache (16 MiB) and
    // grows the allocator's heap; the flood then shows what it costs beyond that.
    let (cap_db, cap_rss, cap_kept) = cost_of(&batch, &db, "at-cap").await;
    let (flood_db, flood_rss, flood_kept) = cost_of(&batch, &db, "flood").await;
    println!(
        "\n## One attempt's output: 8 MiB of `\\n` per stream against {cap} ordinary lines per stream\n"
    );
    println!("| attempt | lines written | events kept | database growth | peak RSS growth |");
    println!("|---|---|---|---|---|");
    println!(
        "| {cap} lines per stream, `out line N` (baseline, run first) | {} | {cap_kept} | {} | {} |",
        2 * cap,
        mib(cap_db),
        mib(cap_rss)
    );
    println!(
        "| 8 MiB of `\\n` per stream | {} | {flood_kept} | {} ({:.2}×) | {} ({:.2}×) |",
        2 * flood_bytes,
        mib(flood_db),
        flood_db as f64 / cap_db.max(1) as f64,
        mib(flood_rss),
        flood_rss as f64 / cap_rss.max(1) as f64
    );
    record(
        "logs.flood",
        json!({"lines_written": 2 * flood_bytes, "events_kept": flood_kept,
               "db_bytes": flood_db, "rss_bytes": flood_rss,
               "baseline_events_kept": cap_kept, "baseline_db_bytes": cap_db,
               "baseline_rss_bytes": cap_rss}),
    );
}
