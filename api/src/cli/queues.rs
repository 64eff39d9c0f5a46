//! `wasmbatch queues`, `wasmbatch queue-snapshot` and `wasmbatch envs`: where jobs wait, in
//! what order, and what runs them.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{Connection, Endpoint, Output, print_json, table, text};
use super::jobs::time;

/// List the job queues: priority, state and the compute environments they feed; for each
/// fair-share queue, what each of its shares holds and has used.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wasmbatch queues")]
pub struct Queues {
    #[command(flatten)]
    connection: Connection,
}

impl Queues {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let reply = server.call("describejobqueues", &json!({})).await?;
        if self.connection.output == Output::Json {
            print_json(&reply);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = reply["jobQueues"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| {
                let environments: Vec<String> = q["computeEnvironmentOrder"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        let arn = text(&o["computeEnvironment"]);
                        arn.rsplit('/').next().unwrap_or(&arn).to_string()
                    })
                    .collect();
                vec![
                    text(&q["jobQueueName"]),
                    text(&q["priority"]),
                    text(&q["state"]),
                    text(&q["status"]),
                    environments.join(", "),
                ]
            })
            .collect();
        table(
            &["NAME", "PRIORITY", "STATE", "STATUS", "ENVIRONMENTS"],
            &rows,
        );
        let fair_share = reply["jobQueues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|q| q["schedulingPolicyArn"].is_string());
        for queue in fair_share {
            let name = text(&queue["jobQueueName"]);
            let policy = text(&queue["schedulingPolicyArn"]);
            let policy = policy.rsplit('/').next().unwrap_or(&policy);
            // A key may describe queues without being allowed their snapshots: the queues
            // are listed all the same.
            match server
                .call("getjobqueuesnapshot", &json!({ "jobQueue": name }))
                .await
            {
                Ok(snapshot) => {
                    println!(
                        "\n{name}: fair share ({policy}), {} active shares",
                        text(
                            &snapshot["queueUtilization"]["fairshareUtilization"]["activeShareCount"]
                        )
                    );
                    shares(&snapshot);
                }
                Err(e) => println!("\n{name}: fair share ({policy}); shares not shown: {e}"),
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Show a queue's front: the RUNNABLE jobs in the order they will be dispatched (at most 100),
/// and the vCPUs the queue's jobs hold, per share on a fair-share queue.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wasmbatch queue-snapshot default\n  wasmbatch queue-snapshot shared --output json"
)]
pub struct Snapshot {
    /// The job queue: its name or ARN.
    queue: String,
    #[command(flatten)]
    connection: Connection,
}

impl Snapshot {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let snapshot = server
            .call("getjobqueuesnapshot", &json!({ "jobQueue": self.queue }))
            .await?;
        if self.connection.output == Output::Json {
            print_json(&snapshot);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = snapshot["frontOfQueue"]["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, job)| {
                let arn = text(&job["jobArn"]);
                vec![
                    (i + 1).to_string(),
                    arn.rsplit('/').next().unwrap_or(&arn).to_string(),
                    job["earliestTimeAtPosition"]
                        .as_i64()
                        .map_or("-".into(), time),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no RUNNABLE jobs");
        } else {
            table(&["POSITION", "JOB ID", "AT POSITION SINCE"], &rows);
        }
        let utilization = &snapshot["queueUtilization"];
        println!(
            "\nvCPUs in use: {}",
            vcpus(&utilization["totalCapacityUsage"])
        );
        let fair = &utilization["fairshareUtilization"];
        if !fair.is_null() {
            println!("active shares: {}", text(&fair["activeShareCount"]));
            shares(&snapshot);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints a fair-share queue's shares from its snapshot: most vCPUs first, as the server lists
/// them (the top 20).
fn shares(snapshot: &Value) {
    let rows: Vec<Vec<String>> =
        snapshot["queueUtilization"]["fairshareUtilization"]["topCapacityUtilization"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|share| {
                vec![
                    text(&share["shareIdentifier"]),
                    text(&share["weightFactor"]),
                    vcpus(&share["capacityUsage"]),
                    share["usageVcpuSeconds"]
                        .as_f64()
                        .map_or("-".into(), |u| format!("{u:.1}")),
                    text(&share["runnableJobs"]),
                ]
            })
            .collect();
    if rows.is_empty() {
        println!("no share holds or waits for anything");
        return;
    }
    table(
        &["SHARE", "WEIGHT", "VCPUS", "USAGE (VCPU-S)", "RUNNABLE"],
        &rows,
    );
}

/// The vCPUs of a capacity-usage list (`[{capacityUnit: VCPU, quantity}]`), or "-".
fn vcpus(usage: &Value) -> String {
    usage
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["capacityUnit"] == "VCPU")
        .and_then(|u| u["quantity"].as_f64())
        .map_or("-".into(), |q| format!("{q}"))
}

/// List the compute environments: capacity and state.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wasmbatch envs --output json")]
pub struct Envs {
    #[command(flatten)]
    connection: Connection,
}

impl Envs {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let reply = server
            .call("describecomputeenvironments", &json!({}))
            .await?;
        if self.connection.output == Output::Json {
            print_json(&reply);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = reply["computeEnvironments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                vec![
                    text(&e["computeEnvironmentName"]),
                    text(&e["type"]),
                    text(&e["state"]),
                    text(&e["computeResources"]["maxvCpus"]),
                    text(&e["memoryMib"]),
                ]
            })
            .collect();
        table(&["NAME", "TYPE", "STATE", "MAX VCPUS", "MEMORY MIB"], &rows);
        Ok(ExitCode::SUCCESS)
    }
}
