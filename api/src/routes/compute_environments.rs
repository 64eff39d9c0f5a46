//! CreateComputeEnvironment, DescribeComputeEnvironments, UpdateComputeEnvironment,
//! DeleteComputeEnvironment.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{MAX_BODY, Payload, Reply, Who, decode, resource_arn};

pub(crate) async fn create(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: wasmbatch_runtime::model::CreateComputeEnvironment =
        decode(&body, MAX_BODY, "CreateComputeEnvironment")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::ComputeEnvironment,
        "computeEnvironmentName",
        &request.compute_environment_name,
    )?;
    caller.authorize("batch:CreateComputeEnvironment", &[&arn])?;
    let env = batch.create_compute_environment(request).await?;
    Ok(Json(json!({
        "computeEnvironmentName": env.compute_environment_name,
        "computeEnvironmentArn": env.compute_environment_arn,
    })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Describe {
    #[serde(default)]
    compute_environments: Vec<String>,
}

pub(crate) async fn describe(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeComputeEnvironments")?;
    caller.authorize("batch:DescribeComputeEnvironments", &["*"])?;
    let config = batch.config();
    let envs: Vec<_> = batch
        .describe_compute_environments(&request.compute_environments)
        .into_iter()
        .map(|env| {
            // AWS names the ECS cluster behind each environment; ours is this host (or its
            // workers), named after the environment so the ARN is stable across restarts.
            let cluster = format!(
                "arn:aws:ecs:{}:{}:cluster/{}_Batch",
                config.region, config.account_id, env.compute_environment_name
            );
            let mut env = json!(env);
            env["ecsClusterArn"] = json!(cluster);
            env
        })
        .collect();
    Ok(Json(json!({ "computeEnvironments": envs })))
}

/// `GET /v1/workers`: cluster mode's live workers (ours; `wasmbatch workers`).
pub(crate) async fn workers(State(batch): State<Batch>, Extension(caller): Who) -> Reply {
    caller.authorize("batch:DescribeComputeEnvironments", &["*"])?;
    Ok(Json(json!({ "workers": batch.workers() })))
}

pub(crate) async fn update(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: wasmbatch_runtime::model::UpdateComputeEnvironment =
        decode(&body, MAX_BODY, "UpdateComputeEnvironment")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::ComputeEnvironment,
        "computeEnvironment",
        &request.compute_environment,
    )?;
    caller.authorize("batch:UpdateComputeEnvironment", &[&arn])?;
    let env = batch.update_compute_environment(request).await?;
    Ok(Json(json!({
        "computeEnvironmentName": env.compute_environment_name,
        "computeEnvironmentArn": env.compute_environment_arn,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delete {
    compute_environment: String,
}

pub(crate) async fn delete(
    State(batch): State<Batch>,
    Extension(caller): Who,
    body: Payload,
) -> Reply {
    let request: Delete = decode(&body, MAX_BODY, "DeleteComputeEnvironment")?;
    let arn = resource_arn(
        &batch,
        ResourceKind::ComputeEnvironment,
        "computeEnvironment",
        &request.compute_environment,
    )?;
    caller.authorize("batch:DeleteComputeEnvironment", &[&arn])?;
    batch
        .delete_compute_environment(&request.compute_environment)
        .await?;
    Ok(Json(json!({})))
}
