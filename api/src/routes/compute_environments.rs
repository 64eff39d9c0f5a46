//! CreateComputeEnvironment, DescribeComputeEnvironments, UpdateComputeEnvironment,
//! DeleteComputeEnvironment.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use wasmbatch_runtime::Batch;

use super::{MAX_BODY, Reply, decode};

pub(crate) async fn create(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request = decode(&body, MAX_BODY, "CreateComputeEnvironment")?;
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

pub(crate) async fn describe(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request: Describe = decode(&body, MAX_BODY, "DescribeComputeEnvironments")?;
    let envs = batch.describe_compute_environments(&request.compute_environments);
    Ok(Json(json!({ "computeEnvironments": envs })))
}

pub(crate) async fn update(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request = decode(&body, MAX_BODY, "UpdateComputeEnvironment")?;
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

pub(crate) async fn delete(State(batch): State<Batch>, body: Bytes) -> Reply {
    let request: Delete = decode(&body, MAX_BODY, "DeleteComputeEnvironment")?;
    batch
        .delete_compute_environment(&request.compute_environment)
        .await?;
    Ok(Json(json!({})))
}
