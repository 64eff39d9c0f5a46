//! The job commands: `submit` (with `--follow`), `jobs`, `describe`, `logs`, `cancel`,
//! `terminate`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use super::client::{Connection, Endpoint, Output, print_json, table, text};

/// Submit a job; prints its id. With --follow, shows its progress and output until it ends and
/// exits with its status.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  wasmbatch submit --image hello -- ola mundo
  wasmbatch submit --queue default --definition sha256 --array-size 100 --follow
  wasmbatch submit --image report --depends-on 5e0c…:N_TO_N --param day=monday --retries 2 -- run
  wasmbatch submit --queue shared --image hello --share teamA --priority 10")]
pub struct Submit {
    /// The job queue.
    #[arg(long, default_value = "default")]
    queue: String,
    /// The job definition: NAME, NAME:REVISION or its ARN.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    definition: Option<String>,
    /// Run a pushed module without writing a definition (one named `image-<NAME>` is registered
    /// for it): NAME or NAME@sha256:HEX.
    #[arg(long)]
    image: Option<String>,
    /// The job's name; the definition's or image's name by default.
    #[arg(long)]
    name: Option<String>,
    /// Make it an array job of this many children (2 to 10,000).
    #[arg(long, value_name = "N")]
    array_size: Option<u32>,
    /// Wait for a job: ID, ID:N_TO_N (child i waits for child i), or SEQUENTIAL (each child
    /// waits for the one before). Repeatable.
    #[arg(long = "depends-on", value_name = "ID[:N_TO_N]|SEQUENTIAL")]
    depends_on: Vec<String>,
    /// A `Ref::KEY` parameter. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
    /// An environment variable for the guest. Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Retry a failed attempt up to N times (attempts = N + 1).
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// Stop each attempt after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u32>,
    /// The job's share, on a queue with a fair-share scheduling policy (required there,
    /// refused on a FIFO queue).
    #[arg(long, value_name = "ID")]
    share: Option<String>,
    /// Its priority within its share, 0 to 9999 (higher runs first), over the definition's.
    #[arg(long, value_name = "N")]
    priority: Option<i32>,
    /// Show progress and the job's output until it ends; exit with its exit code.
    #[arg(long, short)]
    follow: bool,
    /// The guest's arguments, replacing the definition's command.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    connection: Connection,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl Submit {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let definition = match (&self.definition, &self.image) {
            (Some(definition), _) => definition.clone(),
            (None, Some(image)) => definition_for(&server, image).await?,
            (None, None) => bail!("give --definition or --image"),
        };
        let mut request = json!({
            "jobName": self.name.clone().unwrap_or_else(|| job_name(&definition)),
            "jobQueue": self.queue,
            "jobDefinition": definition,
        });
        if let Some(size) = self.array_size {
            request["arrayProperties"] = json!({ "size": size });
        }
        let mut dependencies = Vec::new();
        for dependency in &self.depends_on {
            dependencies.push(match dependency.split_once(':') {
                _ if dependency == "SEQUENTIAL" => json!({"type": "SEQUENTIAL"}),
                None => json!({ "jobId": dependency }),
                Some((id, "N_TO_N")) => json!({"jobId": id, "type": "N_TO_N"}),
                Some((_, "SEQUENTIAL")) => {
                    bail!("--depends-on {dependency}: SEQUENTIAL takes no job id; write --depends-on SEQUENTIAL")
                }
                Some((_, other)) => {
                    bail!("--depends-on {dependency}: unknown type {other:?}; expected N_TO_N")
                }
            });
        }
        if !dependencies.is_empty() {
            request["dependsOn"] = json!(dependencies);
        }
        if !self.params.is_empty() {
            request["parameters"] = json!(
                self.params
                    .iter()
                    .cloned()
                    .collect::<std::collections::BTreeMap<_, _>>()
            );
        }
        let mut overrides = json!({});
        if !self.command.is_empty() {
            overrides["command"] = json!(self.command);
        }
        if !self.env.is_empty() {
            let environment: Vec<Value> = self
                .env
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            overrides["environment"] = json!(environment);
        }
        if overrides != json!({}) {
            request["containerOverrides"] = overrides;
        }
        if let Some(retries) = self.retries {
            request["retryStrategy"] = json!({ "attempts": retries.saturating_add(1) });
        }
        if let Some(seconds) = self.timeout {
            request["timeout"] = json!({ "attemptDurationSeconds": seconds });
        }
        if let Some(share) = &self.share {
            request["shareIdentifier"] = json!(share);
        }
        if let Some(priority) = self.priority {
            request["schedulingPriorityOverride"] = json!(priority);
        }
        let submitted = server.call("submitjob", &request).await?;
        let id = text(&submitted["jobId"]);
        match self.connection.output {
            Output::Json => print_json(&submitted),
            Output::Table => println!("{id}"),
        }
        if !self.follow {
            return Ok(ExitCode::SUCCESS);
        }
        let job = if self.array_size.is_some() {
            follow_array(&server, &id).await?
        } else {
            follow_log(&server, &id, None).await?;
            describe(&server, &id).await?
        };
        Ok(ended(&job))
    }
}

/// The name of the definition that runs `image` as it is, registered when missing.
async fn definition_for(server: &Endpoint, image: &str) -> anyhow::Result<String> {
    let base = image.split_once('@').map_or(image, |(name, _)| name);
    let name: String = format!("image-{base}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    let found = server
        .call(
            "describejobdefinitions",
            &json!({"jobDefinitionName": name, "status": "ACTIVE"}),
        )
        .await?;
    let same = found["jobDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["containerProperties"]["image"] == image)
        .filter_map(|d| d["revision"].as_u64())
        .max();
    if let Some(revision) = same {
        return Ok(format!("{name}:{revision}"));
    }
    let registered = server
        .call(
            "registerjobdefinition",
            &json!({
                "jobDefinitionName": name, "type": "container",
                "containerProperties": {"image": image,
                    "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
            }),
        )
        .await?;
    Ok(format!("{name}:{}", text(&registered["revision"])))
}

/// `image-hello:3` → `hello`.
fn job_name(definition: &str) -> String {
    let name = definition.rsplit('/').next().unwrap_or(definition);
    let name = name.split(':').next().unwrap_or(name);
    name.strip_prefix("image-").unwrap_or(name).to_string()
}

async fn describe(server: &Endpoint, id: &str) -> anyhow::Result<Value> {
    let reply = server
        .call("describejobs", &json!({ "jobs": [id] }))
        .await?;
    match reply["jobs"].get(0) {
        Some(job) => Ok(job.clone()),
        None => bail!("job {id} does not exist"),
    }
}

/// Writes the job's output to stdout as it is written, until the job (or `attempt`) ends.
async fn follow_log(server: &Endpoint, id: &str, attempt: Option<u32>) -> anyhow::Result<()> {
    let mut path = format!("/v1/jobs/{id}/logs?follow=true");
    if let Some(attempt) = attempt {
        path.push_str(&format!("&attempt={attempt}"));
    }
    let stdout = std::io::stdout();
    server
        .stream(&path, |piece| {
            let mut out = stdout.lock();
            let _ = out.write_all(piece);
            let _ = out.flush();
        })
        .await
}

/// Shows an array job's children by status until the job ends; returns the job.
async fn follow_array(server: &Endpoint, id: &str) -> anyhow::Result<Value> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    loop {
        let job = describe(server, id).await?;
        let summary = &job["arrayProperties"]["statusSummary"];
        let count = |status: &str| summary[status].as_u64().unwrap_or(0);
        bar.set_length(job["arrayProperties"]["size"].as_u64().unwrap_or(0));
        bar.set_position(count("SUCCEEDED") + count("FAILED"));
        let counts: Vec<String> = [
            "PENDING",
            "RUNNABLE",
            "STARTING",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
        ]
        .iter()
        .filter(|s| count(s) > 0)
        .map(|s| format!("{} {}", s.to_lowercase(), count(s)))
        .collect();
        bar.set_message(counts.join(", "));
        if is_over(&job) {
            bar.finish();
            if bar.is_hidden() {
                eprintln!("{}", counts.join(", "));
            }
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_over(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("SUCCEEDED" | "FAILED"))
}

/// Says how a followed job ended; the exit status mirrors it: 0 when it succeeded, its exit code
/// when it exited non-zero, 1 when it failed otherwise (a limit, a trap, cancelled).
fn ended(job: &Value) -> ExitCode {
    let id = text(&job["jobId"]);
    if job["status"] == "SUCCEEDED" {
        eprintln!("wasmbatch: job {id} SUCCEEDED");
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "wasmbatch: job {id} FAILED: {}",
        job["statusReason"].as_str().unwrap_or("no reason given")
    );
    match job["container"]["exitCode"].as_i64() {
        Some(code) if (1..=255).contains(&code) => ExitCode::from(code as u8),
        _ => ExitCode::FAILURE,
    }
}

/// List jobs in a readable table.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wasmbatch jobs\n  wasmbatch jobs --queue default --status FAILED"
)]
pub struct Jobs {
    /// Only this queue (all queues by default).
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs in this status (all by default): SUBMITTED, PENDING, RUNNABLE, STARTING,
    /// RUNNING, SUCCEEDED or FAILED.
    #[arg(long, value_parser = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"], ignore_case = true)]
    status: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

impl Jobs {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let queues = match self.queue {
            Some(queue) => vec![queue],
            None => server.call("describejobqueues", &json!({})).await?["jobQueues"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| text(&q["jobQueueName"]))
                .collect(),
        };
        let mut jobs = Vec::new();
        for queue in &queues {
            let mut token: Option<String> = None;
            loop {
                let mut request = match &self.status {
                    Some(status) => json!({"jobQueue": queue, "jobStatus": status.to_uppercase()}),
                    // A name filter lists every status (ListJobs alone lists RUNNING).
                    None => {
                        json!({"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": ["*"]}]})
                    }
                };
                if let Some(token) = &token {
                    request["nextToken"] = json!(token);
                }
                let page = server.call("listjobs", &request).await?;
                for job in page["jobSummaryList"].as_array().into_iter().flatten() {
                    let mut job = job.clone();
                    job["jobQueue"] = json!(queue);
                    jobs.push(job);
                }
                match page["nextToken"].as_str() {
                    Some(next) => token = Some(next.to_string()),
                    None => break,
                }
            }
        }
        if self.connection.output == Output::Json {
            print_json(&json!({ "jobSummaryList": jobs }));
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|job| {
                vec![
                    text(&job["jobId"]),
                    text(&job["jobName"]),
                    text(&job["jobQueue"]),
                    text(&job["status"]),
                    job["createdAt"].as_i64().map_or("-".into(), time),
                    duration(&job["startedAt"], &job["stoppedAt"]),
                    text(&job["container"]["exitCode"]),
                ]
            })
            .collect();
        table(
            &[
                "JOB ID", "NAME", "QUEUE", "STATUS", "CREATED", "RAN", "EXIT",
            ],
            &rows,
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Show one job: status, reason, container, attempts.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wasmbatch describe 5e0c6d1f-…\n  wasmbatch describe 5e0c6d1f-…:3 --output json"
)]
pub struct Describe {
    /// The job id (an array child is PARENT:INDEX).
    id: String,
    #[command(flatten)]
    connection: Connection,
}

impl Describe {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let job = describe(&server, &self.id).await?;
        if self.connection.output == Output::Json {
            print_json(&job);
            return Ok(ExitCode::SUCCESS);
        }
        let field = |name: &str, value: String| println!("{name:<14}{value}");
        field(
            "job",
            format!("{} ({})", text(&job["jobId"]), text(&job["jobName"])),
        );
        field("status", text(&job["status"]));
        if let Some(reason) = job["statusReason"].as_str() {
            field("reason", reason.to_string());
        }
        field("queue", text(&job["jobQueue"]));
        field("definition", text(&job["jobDefinition"]));
        let container = &job["container"];
        if !container["image"].is_null() {
            match container["imageDigest"].as_str() {
                Some(digest) => field("image", format!("{} ({digest})", text(&container["image"]))),
                None => field("image", text(&container["image"])),
            }
            let command: Vec<String> = container["command"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            field("command", command.join(" "));
        }
        if let Some(size) = job["arrayProperties"]["size"].as_u64() {
            let summary = &job["arrayProperties"]["statusSummary"];
            let counts: Vec<String> = summary
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(s, n)| format!("{} {n}", s.to_lowercase()))
                .collect();
            field("array", format!("{size} children: {}", counts.join(", ")));
        }
        for (i, attempt) in job["attempts"].as_array().into_iter().flatten().enumerate() {
            field(
                &format!("attempt {}", i + 1),
                format!(
                    "exit {} after {}{}",
                    text(&attempt["container"]["exitCode"]),
                    duration(&attempt["startedAt"], &attempt["stoppedAt"]),
                    attempt["statusReason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            );
        }
        if let Some(stream) = container["logStreamName"].as_str() {
            field("log stream", stream.to_string());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Print a job's output; with -f, keep printing as it is written until the job ends.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wasmbatch logs 5e0c6d1f-…\n  wasmbatch logs 5e0c6d1f-… --attempt 2\n  wasmbatch logs -f 5e0c6d1f-…"
)]
pub struct Logs {
    /// The job id.
    id: String,
    /// One attempt (from 1); the latest by default.
    #[arg(long)]
    attempt: Option<u32>,
    /// Follow: print lines as they are written, through retries, until the job ends.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    connection: Connection,
}

impl Logs {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        if self.follow {
            follow_log(&server, &self.id, self.attempt).await?;
        } else {
            let mut path = format!("/v1/jobs/{}/logs", self.id);
            if let Some(attempt) = self.attempt {
                path.push_str(&format!("?attempt={attempt}"));
            }
            let stdout = std::io::stdout();
            server
                .stream(&path, |piece| {
                    let _ = stdout.lock().write_all(piece);
                })
                .await?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Cancel jobs that have not started (they become FAILED); running ones are left running.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  wasmbatch cancel 5e0c6d1f-… --reason \"not needed\"
  wasmbatch cancel 5e0c6d1f-… 9a41b2c7-… 0d3e…")]
pub struct Cancel {
    /// The job ids (up to 50; an array parent's children go with it).
    #[arg(required = true, num_args = 1..)]
    ids: Vec<String>,
    /// Recorded as each job's statusReason.
    #[arg(long, default_value = "cancelled from the wasmbatch command line")]
    reason: String,
    #[command(flatten)]
    connection: Connection,
}

impl Cancel {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        stop(&self.connection, "canceljobs", &self.ids, &self.reason).await
    }
}

/// Terminate jobs: stop those that run, cancel those that wait.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  wasmbatch terminate 5e0c6d1f-… --reason \"runaway\"
  wasmbatch terminate 5e0c6d1f-… 9a41b2c7-…")]
pub struct Terminate {
    /// The job ids (up to 50).
    #[arg(required = true, num_args = 1..)]
    ids: Vec<String>,
    /// Recorded as each job's statusReason.
    #[arg(long, default_value = "terminated from the wasmbatch command line")]
    reason: String,
    #[command(flatten)]
    connection: Connection,
}

impl Terminate {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        stop(&self.connection, "terminatejobs", &self.ids, &self.reason).await
    }
}

/// Stops `ids` with one CancelJobs or TerminateJobs; says, one line each, which jobs were not
/// stopped and why, and fails if any was not. AWS counts an id that names no job as stopped;
/// a person who mistyped one wants to hear, so the stopped ids are looked up afterwards, and
/// any that names nothing is a failure too.
async fn stop(
    connection: &Connection,
    operation: &str,
    ids: &[String],
    reason: &str,
) -> anyhow::Result<ExitCode> {
    let server = Endpoint::new(connection)?;
    let reply = server
        .call(operation, &json!({"jobs": ids, "reason": reason}))
        .await?;
    let mut failed = false;
    for error in reply["errors"].as_array().into_iter().flatten() {
        failed = true;
        eprintln!(
            "wasmbatch: job {}: {} ({})",
            text(&error["job"]),
            text(&error["message"]),
            text(&error["code"])
        );
    }
    let stopped: Vec<&str> = reply["successful"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // A key allowed to stop jobs but not to describe them cannot ask; the server has
    // answered what it did, so that stands.
    let described = if stopped.is_empty() {
        None
    } else {
        server
            .call("describejobs", &json!({ "jobs": stopped }))
            .await
            .ok()
    };
    if let Some(described) = described {
        let found: Vec<&str> = described["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["jobId"].as_str())
            .collect();
        for id in stopped.iter().filter(|id| !found.contains(id)) {
            failed = true;
            eprintln!("wasmbatch: job {id} does not exist");
        }
    }
    if connection.output == Output::Json {
        print_json(&reply);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How long ago an epoch-milliseconds time was.
pub(super) fn time(millis: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let seconds = (now - millis).max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

/// From `start` to `stop` (epoch ms), or "-".
fn duration(start: &Value, stop: &Value) -> String {
    match (start.as_i64(), stop.as_i64()) {
        (Some(start), Some(stop)) if stop >= start => {
            let millis = stop - start;
            if millis < 1000 {
                format!("{millis} ms")
            } else {
                format!("{:.1} s", millis as f64 / 1000.0)
            }
        }
        _ => "-".into(),
    }
}
