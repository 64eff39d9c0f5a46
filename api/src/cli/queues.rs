//! `wasmbatch queues` and `wasmbatch envs`: where jobs wait and what runs them.

use std::process::ExitCode;

use serde_json::json;

use super::client::{Connection, Endpoint, Output, print_json, table, text};

/// List the job queues: priority, state and the compute environments they feed.
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
        Ok(ExitCode::SUCCESS)
    }
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
