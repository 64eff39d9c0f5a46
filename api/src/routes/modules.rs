//! Our module registry, in the spirit of ECR: `PUT /v1/modules/{name}` with the raw `.wasm`
//! bytes, `GET /v1/modules`, `GET /v1/modules/{name}`, `DELETE /v1/modules/{name}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::json;
use wasmbatch_runtime::Batch;

use super::Reply;
use crate::error::ApiError;

/// Largest module accepted by default.
pub(crate) const MAX_MODULE: usize = 64 << 20;

pub(crate) async fn push(
    State(batch): State<Batch>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let info = batch.push_module(&name, body.to_vec()).await?;
    Ok(Json(
        json!({ "name": info.name, "digest": info.digest, "size": info.size }),
    ))
}

pub(crate) async fn list(State(batch): State<Batch>) -> Reply {
    Ok(Json(json!({ "modules": batch.modules() })))
}

pub(crate) async fn describe(State(batch): State<Batch>, Path(name): Path<String>) -> Reply {
    let info = batch
        .module(&name)
        .ok_or_else(|| ApiError::Client(format!("module {name} does not exist")))?;
    Ok(Json(json!(info)))
}

pub(crate) async fn delete(State(batch): State<Batch>, Path(name): Path<String>) -> Reply {
    Ok(Json(json!(batch.delete_module(&name).await?)))
}
