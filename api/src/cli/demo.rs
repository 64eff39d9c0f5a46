//! `wasmbatch demo`: the tour. Starts a server on a free loopback port over a fresh data dir,
//! pushes the guest examples over HTTP, and submits a 16-child array job fanned out over the
//! compute kernel, a job that depends on it and reduces the children's results (through a shared
//! volume), and a job that fails once and is retried; follows them with progress bars, prints
//! the reduction and a summary table, and stops the server. Everything goes through the same HTTP
//! API and client code as the other commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use wasmbatch_runtime::{Batch, BatchConfig};

use super::client::{Connection, Endpoint, Output, table, text};

/// Children of the array job, and MiB each hashes.
const CHILDREN: u32 = 16;
const MIB_PER_CHILD: u32 = 8;

/// Run the demo: a server, an array job over the compute kernel, a dependent reduce, a retried
/// job, a summary; all in a few seconds.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wasmbatch demo --modules target/guest-examples/wasm32-wasip1/release"
)]
pub struct Demo {
    /// Where the guest examples' .wasm files are (mapreduce, flaky).
    #[arg(long, value_name = "DIR")]
    modules: PathBuf,
    /// Keep the data dir (its path is printed) instead of removing it.
    #[arg(long)]
    keep: bool,
}

impl Demo {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        for module in ["mapreduce", "flaky"] {
            let path = self.modules.join(format!("{module}.wasm"));
            if !path.is_file() {
                bail!(
                    "--modules {}: {module}.wasm is not there; build the guest examples first (scripts/setup does)",
                    self.modules.display()
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("wasmbatch-demo-")
            .tempdir()
            .context("creating the demo's data dir")?;
        let batch = Batch::open(BatchConfig::new(dir.path())).await?;
        super::serve::defaults(&batch).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(wasmbatch_api::serve(
            listener,
            batch.clone(),
            wasmbatch_api::Access::local(),
            async {
                let _ = stopped.await;
            },
        ));
        eprintln!(
            "wasmbatch demo: server on {endpoint}, data dir {}",
            dir.path().display()
        );

        let client = Endpoint::new(&Connection {
            endpoint,
            output: Output::Table,
            ca_bundle: None,
        })?;
        let result = tour(&client, &self.modules).await;

        let _ = stop.send(());
        let _ = server.await;
        batch.shutdown("the demo ended").await?;
        if self.keep {
            eprintln!("wasmbatch demo: data dir kept at {}", dir.keep().display());
        }
        result
    }
}

async fn tour(client: &Endpoint, modules: &Path) -> anyhow::Result<ExitCode> {
    for module in ["mapreduce", "flaky"] {
        let path = modules.join(format!("{module}.wasm"));
        let file = tokio::fs::File::open(&path).await?;
        let size = file.metadata().await?.len();
        let pushed = client.push(module, file, size).await?;
        eprintln!(
            "pushed {module} ({size} bytes, {})",
            text(&pushed["digest"])
        );
    }
    let shared = json!({
        "volumes": [{"name": "shared", "host": {"sourcePath": "demo"}}],
        "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}]
    });
    let define = |name: &str, image: &str, command: Vec<String>, memory: u32| {
        let mut properties = json!({
            "image": image, "command": command,
            "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                     {"type": "MEMORY", "value": memory.to_string()}]
        });
        if image == "mapreduce" {
            properties["volumes"] = shared["volumes"].clone();
            properties["mountPoints"] = shared["mountPoints"].clone();
        }
        json!({"jobDefinitionName": name, "type": "container", "containerProperties": properties})
    };
    let mib = MIB_PER_CHILD.to_string();
    let children = CHILDREN.to_string();
    for definition in [
        define("map", "mapreduce", args(&["map", &mib, "/shared"]), 64),
        define(
            "reduce",
            "mapreduce",
            args(&["reduce", &children, "/shared"]),
            16,
        ),
        define("flaky", "flaky", args(&["2"]), 16),
    ] {
        client.call("registerjobdefinition", &definition).await?;
    }
    let started = Instant::now();
    let submit = |body: Value| async move {
        let reply = client.call("submitjob", &body).await?;
        anyhow::Ok(text(&reply["jobId"]))
    };
    let map = submit(
        json!({"jobName": "map", "jobQueue": "default", "jobDefinition": "map",
                            "arrayProperties": {"size": CHILDREN}}),
    )
    .await?;
    let reduce = submit(
        json!({"jobName": "reduce", "jobQueue": "default", "jobDefinition": "reduce",
                               "dependsOn": [{"jobId": map}]}),
    )
    .await?;
    let flaky = submit(
        json!({"jobName": "flaky", "jobQueue": "default", "jobDefinition": "flaky",
                              "retryStrategy": {"attempts": 3}}),
    )
    .await?;

    let jobs = [
        (map.as_str(), "map: sha256 over generated data, 16 children"),
        (reduce.as_str(), "reduce: depends on map, reads its parts"),
        (flaky.as_str(), "flaky: fails its first attempt, retried"),
    ];
    let finished = follow(client, &jobs).await?;
    let elapsed = started.elapsed();

    let mut output = String::new();
    client
        .stream(&format!("/v1/jobs/{reduce}/logs"), |piece| {
            output.push_str(&String::from_utf8_lossy(piece));
        })
        .await?;
    println!("\nThe reduce job printed: {}", output.trim());
    println!();
    let mut rows = Vec::new();
    for job in &finished {
        rows.push(summary(client, job).await?);
    }
    table(
        &[
            "JOB",
            "STATUS",
            "ATTEMPTS",
            "DURATION",
            "FUEL",
            "PEAK MEMORY",
        ],
        &rows,
    );
    println!(
        "\n{} jobs ({} attempts) in {:.2} s, submit to last SUCCEEDED",
        CHILDREN + 3,
        rows.iter()
            .map(|r| r[2].parse::<u64>().unwrap_or(0))
            .sum::<u64>(),
        elapsed.as_secs_f64()
    );
    let all_succeeded = finished.iter().all(|job| job["status"] == "SUCCEEDED");
    Ok(if all_succeeded {
        ExitCode::SUCCESS
    } else {
        eprintln!("wasmbatch demo: a job did not succeed; see the table above");
        ExitCode::FAILURE
    })
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Shows a progress line per job until all have ended; returns them as last described.
async fn follow(client: &Endpoint, jobs: &[(&str, &str)]) -> anyhow::Result<Vec<Value>> {
    let bars = indicatif::MultiProgress::new();
    let style =
        indicatif::ProgressStyle::with_template("{prefix:<46} [{bar:20}] {pos:>2}/{len:2} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    let lines: Vec<indicatif::ProgressBar> = jobs
        .iter()
        .map(|(_, label)| {
            let bar = bars.add(indicatif::ProgressBar::new(1));
            bar.set_style(style.clone());
            bar.set_prefix(label.to_string());
            bar
        })
        .collect();
    loop {
        let ids: Vec<&str> = jobs.iter().map(|(id, _)| *id).collect();
        let reply = client.call("describejobs", &json!({ "jobs": ids })).await?;
        let described: Vec<Value> = reply["jobs"].as_array().cloned().unwrap_or_default();
        let mut over = 0;
        for (bar, job) in lines.iter().zip(&described) {
            let status = text(&job["status"]);
            let done = matches!(status.as_str(), "SUCCEEDED" | "FAILED");
            over += usize::from(done);
            match job["arrayProperties"]["size"].as_u64() {
                Some(size) => {
                    let summary = &job["arrayProperties"]["statusSummary"];
                    let count = |s: &str| summary[s].as_u64().unwrap_or(0);
                    bar.set_length(size);
                    bar.set_position(count("SUCCEEDED") + count("FAILED"));
                    bar.set_message(format!(
                        "{status} (running {}, runnable {})",
                        count("RUNNING") + count("STARTING"),
                        count("RUNNABLE")
                    ));
                }
                None => {
                    bar.set_position(u64::from(done));
                    let attempts = job["attempts"].as_array().map_or(0, Vec::len);
                    bar.set_message(match attempts {
                        0 => status,
                        n => format!(
                            "{status} after {n} attempt{}",
                            if n == 1 { "" } else { "s" }
                        ),
                    });
                }
            }
            if done {
                bar.finish();
            }
        }
        if over == jobs.len() && described.len() == jobs.len() {
            if bars.is_hidden() {
                for (bar, (_, label)) in lines.iter().zip(jobs) {
                    eprintln!("{label}: {}", bar.message());
                }
            }
            return Ok(described);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A summary row: an array job counts its children's attempts, fuel and duration, and its
/// largest peak memory.
async fn summary(client: &Endpoint, job: &Value) -> anyhow::Result<Vec<String>> {
    let id = text(&job["jobId"]);
    let mut attempts: Vec<Value> = job["attempts"].as_array().cloned().unwrap_or_default();
    if let Some(size) = job["arrayProperties"]["size"].as_u64() {
        let children: Vec<String> = (0..size).map(|i| format!("{id}:{i}")).collect();
        let reply = client
            .call("describejobs", &json!({ "jobs": children }))
            .await?;
        attempts = reply["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|child| child["attempts"].as_array().cloned().unwrap_or_default())
            .collect();
    }
    let fuel: u64 = attempts
        .iter()
        .filter_map(|a| a["container"]["fuelConsumed"].as_u64())
        .sum();
    let peak = attempts
        .iter()
        .filter_map(|a| a["container"]["peakMemoryBytes"].as_u64())
        .max()
        .unwrap_or(0);
    let duration = match (job["startedAt"].as_i64(), job["stoppedAt"].as_i64()) {
        (Some(start), Some(stop)) => format!("{} ms", stop - start),
        _ => match (job["createdAt"].as_i64(), job["stoppedAt"].as_i64()) {
            (Some(start), Some(stop)) => format!("{} ms", stop - start),
            _ => "-".into(),
        },
    };
    Ok(vec![
        text(&job["jobName"]),
        text(&job["status"]),
        attempts.len().to_string(),
        duration,
        count(fuel),
        format!("{:.1} MiB", peak as f64 / f64::from(1 << 20)),
    ])
}

/// 1234 → "1.2 K", 20624200000 → "20.6 G".
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1} K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} M", n as f64 / 1e6),
        _ => format!("{:.1} G", n as f64 / 1e9),
    }
}
