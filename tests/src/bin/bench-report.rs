//! Turns a benchmark run into bench/REPORT.md and its charts: the machine, the commit and the
//! wasmtime version; the issue's goals against what was measured; every table the benchmarks
//! printed (each with its baselines from the same run); and SVG charts of the latencies and the
//! throughputs; and, when the run has it (`scripts/bench --peers`), the peers section (Slurm
//! beside wasmbatch) with goal-free lines in the goals table. Exits 1, naming them, if a
//! scenario is missing from the run (the peers' are never required).
//!
//! `bench-report --results FILE --tables DIR --out DIR --mode quick|full --profile NAME`
//! (scripts/bench runs it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

/// Every scenario a run must have, by record key.
const REQUIRED: &[&str] = &[
    "cold_start.executor",
    "cold_start.compile_per_job",
    "cold_start.process",
    "submit_done.embedded",
    "submit_done.http_follow",
    "throughput.embedded",
    "throughput.http",
    "fanout.array",
    "fanout.sequential",
    "array.large_request",
    "compute.native",
    "compute.epochs",
    "compute.fuel",
    "state.ram",
    "state.restart",
    "isolation.alone",
    "isolation.loaded",
    "isolation.one_runtime",
    "logs.page_short",
    "logs.page_first",
    "logs.page_last",
    "logs.whole_stream",
    "logs.read_bulk",
    "logs.read_paged",
    "logs.flood",
    "soak.flat",
    "soak.restart",
    "scheduler.fifo",
    "scheduler.fair_share",
    "cluster.throughput",
    "cluster.dispatch",
    "cluster.dispatch_embedded",
    "cluster.failover",
];

/// The benchmark programs, in the order their tables appear.
const TABLES: &[(&str, &str)] = &[
    ("executor", "Executor: cold start, compute, kill, isolation"),
    ("control_plane", "Control plane: throughput, fan-out, state"),
    ("http", "HTTP: submit → done, SubmitJob/s, end to end"),
    (
        "logs",
        "Logs: GetLogEvents pages, the cost of a flooded attempt",
    ),
    (
        "soak",
        "Soak: full rate under a short retention, RSS and database over time, restart",
    ),
    (
        "scheduler",
        "Scheduler: fair share against FIFO, 100,000 RUNNABLE jobs",
    ),
    (
        "cluster",
        "Cluster mode: two worker processes over NATS JetStream against the embedded service",
    ),
];

/// Benchmark programs `scripts/bench` runs only when asked (`--peers`): their tables appear,
/// after the others, when the run has them, and their scenarios are not required.
const OPTIONAL_TABLES: &[(&str, &str)] = &[("peers", "Peers: Slurm beside wasmbatch")];

struct Args {
    results: PathBuf,
    tables: PathBuf,
    out: PathBuf,
    mode: String,
    profile: String,
}

fn args() -> Result<Args, String> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        found.insert(flag.trim_start_matches("--").to_string(), value);
    }
    let mut take = |name: &str| found.remove(name).ok_or(format!("--{name} is required"));
    Ok(Args {
        results: take("results")?.into(),
        tables: take("tables")?.into(),
        out: take("out")?.into(),
        mode: take("mode")?,
        profile: take("profile")?,
    })
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench-report: {e}");
            return ExitCode::from(2);
        }
    };
    let results: BTreeMap<String, Value> = std::fs::read_to_string(&args.results)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| Some((v["key"].as_str()?.to_string(), v)))
        .collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|key| !results.contains_key(*key))
        .collect();

    let mut report = String::new();
    let _ = writeln!(report, "# wasmbatch benchmark report\n");
    let _ = writeln!(
        report,
        "Produced by `scripts/bench{}`: every scenario beside its baselines, measured in the same \
         run. Machines are shared and noisy: read the ratios, not single absolute times.\n",
        if args.mode == "quick" { " --quick" } else { "" }
    );
    let _ = writeln!(report, "| | |\n|---|---|");
    for (what, value) in machine(&args) {
        let _ = writeln!(report, "| {what} | {value} |");
    }
    if args.mode == "quick" || args.profile != "bench" {
        let _ = writeln!(
            report,
            "\n**This is a {} run with the `{}` profile: it shows the command works; its numbers \
             are not the figures to quote.**",
            args.mode, args.profile
        );
    }
    let _ = writeln!(report, "\n## Goals\n");
    let _ = writeln!(
        report,
        "| goal | target | measured | met |\n|---|---|---|---|"
    );
    for goal in goals(&results) {
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} |",
            goal.what,
            goal.target,
            goal.measured,
            match goal.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            }
        );
    }
    for line in peers(&results) {
        let _ = writeln!(
            report,
            "| {} | none: a peer, side by side | {} | - |",
            line.0, line.1
        );
    }
    // Written by hand, with the commit it was profiled at: what a run cannot say about itself.
    if args.out.join("BOUNDS.md").is_file() {
        let _ = writeln!(
            report,
            "\nFor the goals not met, [BOUNDS.md](BOUNDS.md) has the profiles of what bounds \
             each one and what would move it."
        );
    }
    let _ = writeln!(
        report,
        "\n![latencies: p50 bars, p99 whiskers, log scale](latency.svg)\n\n![throughput](throughput.svg)"
    );
    let optional = OPTIONAL_TABLES
        .iter()
        .filter(|(program, _)| args.tables.join(format!("{program}.md")).is_file());
    for (program, title) in TABLES.iter().chain(optional) {
        let text = std::fs::read_to_string(args.tables.join(format!("{program}.md")))
            .unwrap_or_else(|_| "(no output)".into());
        let _ = writeln!(report, "\n# {title}\n");
        // Each program titles itself with a level-1 heading; here they sit one level down.
        for line in text.lines().filter(|l| !l.starts_with("# ")) {
            let line = line
                .strip_prefix("## ")
                .map_or(line.to_string(), |rest| format!("### {rest}"));
            let _ = writeln!(report, "{line}");
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.out)
        .and_then(|_| std::fs::write(args.out.join("REPORT.md"), &report))
        .and_then(|_| std::fs::write(args.out.join("latency.svg"), latency_chart(&results)))
        .and_then(|_| std::fs::write(args.out.join("throughput.svg"), throughput_chart(&results)))
    {
        eprintln!("bench-report: writing {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    if !missing.is_empty() {
        eprintln!(
            "bench-report: scenarios missing from the run: {}",
            missing.join(", ")
        );
        return ExitCode::FAILURE;
    }
    println!(
        "bench-report: wrote {}",
        args.out.join("REPORT.md").display()
    );
    ExitCode::SUCCESS
}

/// What the run ran on.
fn machine(args: &Args) -> Vec<(&'static str, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_string());
    let ram = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    let command = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let dirty = !command("git", &["status", "--porcelain"]).is_empty();
    let lock = read(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"));
    let wasmtime = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"wasmtime\"\n"))
        .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
        .map_or("unknown".into(), |l| {
            l.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        });
    vec![
        ("date (UTC)", command("date", &["-u", "+%Y-%m-%d %H:%M"])),
        (
            "commit",
            format!(
                "{}{}",
                command("git", &["rev-parse", "--short", "HEAD"]),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
        ),
        ("wasmtime", wasmtime),
        ("CPU", cpu),
        (
            "cores",
            std::thread::available_parallelism().map_or("unknown".into(), |n| n.to_string()),
        ),
        ("RAM", ram),
        ("kernel", command("uname", &["-r"])),
        ("mode, profile", format!("{}, {}", args.mode, args.profile)),
    ]
}

struct Goal {
    what: &'static str,
    target: &'static str,
    measured: String,
    met: Option<bool>,
}

/// The issue's goals, read off the run.
fn goals(results: &BTreeMap<String, Value>) -> Vec<Goal> {
    let get = |key: &str, field: &str| results.get(key).and_then(|v| v[field].as_f64());
    let p50 = |key: &str| get(key, "p50_us");
    let goal = |what,
                target,
                value: Option<f64>,
                shown: &dyn Fn(f64) -> String,
                met: &dyn Fn(f64) -> bool| Goal {
        what,
        target,
        measured: value.map_or("-".into(), shown),
        met: value.map(met),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    vec![
        goal(
            "warm instantiate + run, p50",
            "< 50 µs",
            p50("cold_start.executor"),
            &|v| format!("{v:.1} µs"),
            &|v| v < 50.0,
        ),
        goal(
            "faster than a process spawn",
            "≥ 20×",
            ratio(p50("cold_start.process"), p50("cold_start.executor")),
            &|v| format!("{v:.0}×"),
            &|v| v >= 20.0,
        ),
        goal(
            "HTTP SubmitJob → SUCCEEDED, p50",
            "< 2 ms",
            p50("submit_done.http_follow"),
            &|v| format!("{:.2} ms", v / 1000.0),
            &|v| v < 2000.0,
        ),
        goal(
            "jobs/s embedded, durable",
            "≥ 20,000",
            get("throughput.embedded", "jobs_per_s"),
            &|v| format!("{v:.0}"),
            &|v| v >= 20_000.0,
        ),
        goal(
            "jobs/s over HTTP, durable",
            "≥ 5,000",
            get("throughput.http", "jobs_per_s"),
            &|v| format!("{v:.0}"),
            &|v| v >= 5_000.0,
        ),
        goal(
            "10,000-child array to all SUCCEEDED",
            "< 1 s",
            get("fanout.array", "seconds"),
            &|v| {
                format!(
                    "{v:.2} s ({} children)",
                    results["fanout.array"]["children"]
                )
            },
            &|v| v < 1.0,
        ),
        goal(
            "10,000-child array of a 29 KB request: heap growth",
            "< 10 MiB",
            get("array.large_request", "heap_bytes"),
            &|v| format!("{:.2} MiB", v / f64::from(1 << 20)),
            &|v| v < f64::from(10 << 20),
        ),
        goal(
            "10,000-child array of a 29 KB request: RSS growth",
            "< 10 MiB",
            get("array.large_request", "rss_bytes"),
            &|v| format!("{:.2} MiB", v / f64::from(1 << 20)),
            &|v| v < f64::from(10 << 20),
        ),
        goal(
            "10,000-child array of a 29 KB request: database growth",
            "< 10 MiB",
            get("array.large_request", "db_bytes"),
            &|v| format!("{:.2} MiB", v / f64::from(1 << 20)),
            &|v| v < f64::from(10 << 20),
        ),
        goal(
            "compute, wasm with epochs vs native",
            "≤ 1.25×",
            ratio(p50("compute.epochs"), p50("compute.native")),
            &|v| format!("{v:.2}×"),
            &|v| v <= 1.25,
        ),
        goal(
            "fuel metering on top of epochs",
            "≤ 1.2×",
            ratio(p50("compute.fuel"), p50("compute.epochs")),
            &|v| format!("{v:.2}×"),
            &|v| v <= 1.2,
        ),
        goal(
            // Issue 18; it was < 1 KiB before.
            "RAM per queued job",
            "< 512 bytes",
            get("state.ram", "bytes_per_job"),
            &|v| {
                format!(
                    "{v:.0} bytes (heap growth, {} queued)",
                    results["state.ram"]["queued"]
                )
            },
            &|v| v < 512.0,
        ),
        goal(
            "restart with 100,000 stored jobs",
            "< 1 s",
            get("state.restart", "seconds"),
            &|v| {
                format!(
                    "{:.0} ms ({} stored)",
                    v * 1000.0,
                    results["state.restart"]["stored"]
                )
            },
            &|v| v < 1.0,
        ),
        goal(
            "GetLogEvents last page of 25,000 lines vs first page, p50",
            "≤ 2×",
            ratio(p50("logs.page_last"), p50("logs.page_first")),
            &|v| format!("{v:.2}×"),
            &|v| v <= 2.0,
        ),
        goal(
            "database growth, 8 MiB of `\\n` per stream",
            "< 64 MiB",
            get("logs.flood", "db_bytes"),
            &|v| format!("{:.1} MiB", v / f64::from(1 << 20)),
            &|v| v < f64::from(64 << 20),
        ),
        goal(
            "peak RSS growth, 8 MiB of `\\n` per stream",
            "< 64 MiB",
            get("logs.flood", "rss_bytes"),
            &|v| format!("{:.1} MiB", v / f64::from(1 << 20)),
            &|v| v < f64::from(64 << 20),
        ),
        goal(
            "soak: RSS after warm-up, second half over first",
            "≤ 1.1×",
            get("soak.flat", "rss_ratio"),
            &|v| format!("{v:.2}× ({} jobs)", results["soak.flat"]["jobs"]),
            &|v| v <= 1.1,
        ),
        goal(
            "soak: database size after warm-up, second half over first",
            "≤ 1.1×",
            get("soak.flat", "db_ratio"),
            &|v| format!("{v:.2}×"),
            &|v| v <= 1.1,
        ),
        goal(
            // Issue 14's goal: a restart after the soak stays under a second.
            "soak: restart on the data dir it left",
            "< 1 s",
            get("soak.restart", "seconds"),
            &|v| {
                format!(
                    "{:.0} ms (empty data dir: {:.0} ms)",
                    v * 1e3,
                    get("soak.restart", "empty_seconds").unwrap_or(0.0) * 1e3
                )
            },
            &|v| v < 1.0,
        ),
        goal(
            // Issue 15: no scan of all jobs or shares per placement.
            "one placement decision, fair share, 100,000 jobs in 1,000 shares",
            "≤ 5 µs",
            get("scheduler.fair_share", "decision_us"),
            &|v| {
                format!(
                    "{v:.2} µs ({:.2}× FIFO's; the whole placement {:.1} µs)",
                    get("scheduler.fair_share", "decision_vs_fifo").unwrap_or(0.0),
                    get("scheduler.fair_share", "placement_us").unwrap_or(0.0)
                )
            },
            &|v| v <= 5.0,
        ),
        goal(
            // Cluster mode against the embedded service, on the same cores.
            "hello jobs/s, cluster (2 worker processes × 2 vCPUs) over embedded (4 vCPUs)",
            "≥ 0.5×",
            get("cluster.throughput", "ratio"),
            &|v| {
                let of = |field| get("cluster.throughput", field).unwrap_or(0.0);
                format!(
                    "{v:.2}× ({:.0} jobs/s against {:.0}; CPU per job {:.0} µs against {:.0} µs \
                     (control plane {:.0}, nats-server {:.0}, workers {:.0}); {:.3} messages \
                     stored per job)",
                    of("cluster_jobs_per_s"),
                    of("embedded_jobs_per_s"),
                    of("cluster_cpu_us_per_job"),
                    of("embedded_cpu_us_per_job"),
                    of("control_plane_cpu_us_per_job"),
                    of("nats_cpu_us_per_job"),
                    of("workers_cpu_us_per_job"),
                    of("work_messages_per_job") + of("report_messages_per_job"),
                )
            },
            &|v| v >= 0.5,
        ),
        goal(
            "dispatch, submit → RUNNING on an idle remote worker, p50",
            "< 5 ms",
            p50("cluster.dispatch"),
            &|v| {
                format!(
                    "{:.2} ms (p99 {:.2} ms; embedded p50 {:.2} ms)",
                    v / 1000.0,
                    get("cluster.dispatch", "p99_us").unwrap_or(0.0) / 1000.0,
                    p50("cluster.dispatch_embedded").unwrap_or(0.0) / 1000.0
                )
            },
            &|v| v < 5000.0,
        ),
        goal(
            // Lease-bound by design: a worker is lost a lease after its last heartbeat heard.
            // Within a second more, nothing else (JetStream's AckWait, a slow retry) bounds it.
            "a killed worker's jobs RUNNING on another worker, max",
            "≤ lease + 1 s",
            get("cluster.failover", "max_ms"),
            &|v| {
                format!(
                    "{:.0} ms (median {:.0} ms; lease {:.0} ms)",
                    v,
                    get("cluster.failover", "median_ms").unwrap_or(0.0),
                    get("cluster.failover", "lease_ms").unwrap_or(0.0)
                )
            },
            &|v| v <= get("cluster.failover", "lease_ms").unwrap_or(0.0) + 1000.0,
        ),
        goal(
            "hello p99 beside 8 spinning guests",
            "< 1 ms",
            get("isolation.loaded", "p99_us"),
            &|v| {
                format!(
                    "{:.2} ms (alone: {:.2} ms; every guest on one runtime: {:.2} ms)",
                    v / 1000.0,
                    get("isolation.alone", "p99_us").unwrap_or(0.0) / 1000.0,
                    get("isolation.one_runtime", "p99_us").unwrap_or(0.0) / 1000.0
                )
            },
            &|v| v < 1000.0,
        ),
        // Issue 18: how close each part comes to what bounds it, measured beside it.
        goal(
            "durable hello jobs/s, embedded, over the executor alone",
            "≥ 0.5×",
            ratio(
                get("throughput.embedded", "jobs_per_s"),
                get("throughput.embedded", "executor_runs_per_s"),
            ),
            &|v| {
                format!(
                    "{v:.2}× ({:.0} jobs/s against {:.0} runs/s)",
                    get("throughput.embedded", "jobs_per_s").unwrap_or(0.0),
                    get("throughput.embedded", "executor_runs_per_s").unwrap_or(0.0)
                )
            },
            &|v| v >= 0.5,
        ),
        goal(
            "bytes written to the store per hello job (write(2), in the run above)",
            "≤ 1 KiB",
            get("throughput.embedded", "written_bytes_per_job"),
            &|v| format!("{:.1} KiB", v / 1024.0),
            &|v| v <= 1024.0,
        ),
        goal(
            "acknowledged SubmitJob/s, 128 clients, HTTP over embedded",
            "≥ 0.7×",
            ratio(
                get("throughput.submit_http_128", "http_per_s"),
                get("throughput.submit_http_128", "embedded_per_s"),
            ),
            &|v| {
                format!(
                    "{v:.2}× ({:.0}/s against {:.0}/s)",
                    get("throughput.submit_http_128", "http_per_s").unwrap_or(0.0),
                    get("throughput.submit_http_128", "embedded_per_s").unwrap_or(0.0)
                )
            },
            &|v| v >= 0.7,
        ),
        goal(
            "HTTP SubmitJob → SUCCEEDED p50, over embedded submit + follow",
            "≤ 1.5×",
            ratio(p50("submit_done.http_follow"), p50("submit_done.embedded")),
            &|v| format!("{v:.2}×"),
            &|v| v <= 1.5,
        ),
        goal(
            "warm start through Executor::run p50, over the tuned bare loop",
            "≤ 1.5×",
            ratio(p50("cold_start.executor"), p50("cold_start.bare_tuned")),
            &|v| {
                format!(
                    "{v:.2}× ({:.1} µs against {:.1} µs)",
                    p50("cold_start.executor").unwrap_or(0.0),
                    p50("cold_start.bare_tuned").unwrap_or(0.0)
                )
            },
            &|v| v <= 1.5,
        ),
    ]
}

/// Goal-free lines for the peers bench, when the run has it (`scripts/bench --peers`):
/// wasmbatch beside Slurm, each through its own CLI. (what, measured).
fn peers(results: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let get = |key: &str, field: &str| results.get(key).and_then(|v| v[field].as_f64());
    let mut lines = Vec::new();
    let slurm = results
        .get("peers.array")
        .and_then(|v| v["slurm_version"].as_str())
        .unwrap_or("Slurm");
    if let (Some(ratio), Some(ours), Some(theirs), Some(tasks)) = (
        get("peers.array", "ratio"),
        get("peers.array", "wasmbatch_jobs_per_s"),
        get("peers.array", "slurm_jobs_per_s"),
        get("peers.array", "tasks"),
    ) {
        lines.push((
            format!(
                "{}-task array of hello, tasks/s: wasmbatch over Slurm",
                match tasks as u64 {
                    n @ 1_000.. => format!("{},{:03}", n / 1000, n % 1000),
                    n => n.to_string(),
                }
            ),
            format!(
                "{ratio:.1}× ({ours:.0} tasks/s against {theirs:.1}; {slurm}, native processes)"
            ),
        ));
    }
    if let (Some(ratio), Some(ours), Some(theirs), Some(jobs)) = (
        get("peers.separate", "ratio"),
        get("peers.separate", "wasmbatch_jobs_per_s"),
        get("peers.separate", "slurm_jobs_per_s"),
        get("peers.separate", "jobs"),
    ) {
        lines.push((
            format!(
                "{jobs:.0} jobs submitted one by one through the CLI, jobs/s: wasmbatch over Slurm"
            ),
            format!("{ratio:.1}× ({ours:.1} jobs/s against {theirs:.1})"),
        ));
    }
    if let (Some(ours), Some(srun)) = (
        get("peers.latency_wasmbatch", "p50_us"),
        get("peers.latency_srun", "p50_us"),
    ) {
        lines.push((
            "one job submit → done through the CLI, p50: wasmbatch `submit --follow` over Slurm `srun`"
                .to_string(),
            format!(
                "{:.2}× ({:.1} ms against {:.1} ms; `sbatch --wait` {:.0} ms)",
                ours / srun,
                ours / 1000.0,
                srun / 1000.0,
                get("peers.latency_sbatch_wait", "p50_us").unwrap_or(0.0) / 1000.0
            ),
        ));
    }
    lines
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every latency record: a bar to its p50 and a whisker to its p99, on a log scale.
fn latency_chart(results: &BTreeMap<String, Value>) -> String {
    let rows: Vec<(&str, f64, f64)> = results
        .values()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?,
                v["p50_us"].as_f64()?,
                v["p99_us"].as_f64()?,
            ))
        })
        .collect();
    let (label, width, row) = (430.0, 420.0, 22.0);
    let top = rows.iter().map(|r| r.2).fold(10.0, f64::max).log10().ceil();
    let x = |us: f64| label + width * (us.max(1.0).log10() / top);
    let height = 40.0 + row * rows.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="11">"#,
        label + width + 20.0
    );
    for decade in 0..=top as i32 {
        let at = x(10f64.powi(decade));
        let unit = match decade {
            0..=2 => format!("{} µs", 10i64.pow(decade as u32)),
            3..=5 => format!("{} ms", 10i64.pow(decade as u32 - 3)),
            _ => format!("{} s", 10i64.pow(decade as u32 - 6)),
        };
        let _ = write!(
            svg,
            r##"<line x1="{at}" y1="20" x2="{at}" y2="{}" stroke="#ddd"/><text x="{at}" y="14" text-anchor="middle">{unit}</text>"##,
            height - 10.0
        );
    }
    for (i, (name, p50, p99)) in rows.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{label}" y="{y}" width="{}" height="{}" fill="#4a7ebb"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#222"/>"##,
            label - 6.0,
            y + 13.0,
            escape(name),
            x(*p50) - label,
            row - 6.0,
            x(*p50),
            y + (row - 6.0) / 2.0,
            x(*p99),
            y + (row - 6.0) / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Jobs per second: wasmbatch embedded and over HTTP against a process per job and the
/// executor's ceiling; with the peers bench, Slurm's array beside wasmbatch's.
fn throughput_chart(results: &BTreeMap<String, Value>) -> String {
    let get = |key: &str, field: &str| results.get(key).and_then(|v| v[field].as_f64());
    let bars: Vec<(String, f64)> = [
        (
            "xargs -P, native hello (process per job)",
            get("throughput.embedded", "xargs_jobs_per_s"),
        ),
        (
            "wasmbatch embedded, durable",
            get("throughput.embedded", "jobs_per_s"),
        ),
        (
            "wasmbatch over HTTP, durable",
            get("throughput.http", "jobs_per_s"),
        ),
        (
            "cluster: 2 worker processes × 2 vCPUs",
            get("cluster.throughput", "cluster_jobs_per_s"),
        ),
        (
            "embedded, 4 vCPUs (the cluster's baseline)",
            get("cluster.throughput", "embedded_jobs_per_s"),
        ),
        (
            "Executor::run alone (ceiling, not durable)",
            get("throughput.embedded", "executor_runs_per_s"),
        ),
        (
            "peers: Slurm array, native hello (sbatch --array)",
            get("peers.array", "slurm_jobs_per_s"),
        ),
        (
            "peers: wasmbatch array through the CLI",
            get("peers.array", "wasmbatch_jobs_per_s"),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_string(), value?)))
    .collect();
    let (label, width, row) = (300.0, 420.0, 26.0);
    let most = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let height = 20.0 + row * bars.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="11">"#,
        label + width + 90.0
    );
    for (i, (name, value)) in bars.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let length = width * value / most;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{label}" y="{y}" width="{length}" height="{}" fill="#4a7ebb"/><text x="{}" y="{}">{value:.0} jobs/s</text>"##,
            label - 6.0,
            y + 15.0,
            escape(name),
            row - 8.0,
            label + length + 4.0,
            y + 15.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
