//! Our module registry, in the spirit of ECR: `PUT /v1/modules/{name}[:{tag}]` with the raw
//! `.wasm` bytes (no tag moves `latest`), `GET /v1/modules`, `GET /v1/modules/{name}`,
//! `DELETE /v1/modules/{name}` (the name), `DELETE /v1/modules/{name}:{tag}` (the tag) and
//! `DELETE /v1/modules/{name}@sha256:<hex>` (one version of it that nothing needs).
//!
//! Every route is authorized on the module's ARN, which has the name alone: a tag or a digest in
//! the path never changes what a policy is checked against. Modules pulled from registries are
//! listed, described and deleted here too (`…/modules/{host}/{repository}[@sha256:<hex>]`),
//! authorized on their repository's ARN; they are pushed to their registry, not here.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use serde_json::json;
use wasmbatch_runtime::{Batch, ResourceKind};

use super::{Reply, Who, resource_arn};
use crate::error::ApiError;

/// `PUT /v1/modules/{name}`: the body goes to disk as it arrives; a body that announces or
/// reaches more than the size limit is refused without reading the rest.
pub(crate) async fn push(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(reference): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let arn = resource_arn(
        &batch,
        ResourceKind::Module,
        "name",
        module_name(&reference),
    );
    if let Err(refused) = arn.and_then(|arn| caller.authorize("batch:PushModule", &[&arn])) {
        crate::access::drain(body).await;
        return Err(refused);
    }
    let limit = batch.config().max_module_bytes;
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = announced.filter(|&length| length > limit) {
        return Err(ApiError::Client(format!(
            "module: {length} bytes is larger than the limit of {limit} bytes"
        )));
    }
    let mut upload = batch.upload_module(&reference).await?;
    let mut body = body.into_data_stream();
    while let Some(piece) = body.next().await {
        let piece =
            piece.map_err(|e| ApiError::Client(format!("module: reading the upload: {e}")))?;
        upload.write(&piece).await?;
    }
    let info = upload.finish().await?;
    let tags: Vec<&str> = info.tags_of(&info.digest).collect();
    Ok(Json(
        json!({ "name": info.name, "digest": info.digest, "size": info.size, "tags": tags }),
    ))
}

/// The module a path names: what comes before its `:tag` or `@digest`; for a module pulled from
/// a registry (`host[:port]/repository`, whose port is not a tag), what comes before `@`.
fn module_name(reference: &str) -> &str {
    let separators: &[char] = if reference.contains('/') {
        &['@']
    } else {
        &['@', ':']
    };
    reference
        .split_once(separators)
        .map_or(reference, |(name, _)| name)
}

/// The ARN a module path is authorized on: `module/<name>`, or for a pulled module its
/// registry repository's, `registry/<host[:port]>/<repository>`, as definitions using it are.
fn module_arn(batch: &Batch, name: &str) -> Result<String, ApiError> {
    if name.contains('/') {
        resource_arn(batch, ResourceKind::Registry, "name", name)
    } else {
        resource_arn(batch, ResourceKind::Module, "name", name)
    }
}

pub(crate) async fn list(State(batch): State<Batch>, Extension(caller): Who) -> Reply {
    caller.authorize("batch:DescribeModules", &["*"])?;
    Ok(Json(json!({ "modules": batch.modules() })))
}

pub(crate) async fn describe(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(reference): Path<String>,
) -> Reply {
    let name = module_name(&reference);
    let arn = module_arn(&batch, name)?;
    caller.authorize("batch:DescribeModules", &[&arn])?;
    let info = batch
        .module(name)
        .ok_or_else(|| ApiError::Client(format!("module {name} does not exist")))?;
    Ok(Json(json!(info)))
}

/// `DELETE /v1/modules/{name}` removes the name; `…/{name}:{tag}` a tag, and
/// `…/{name}@sha256:<hex>` one of its versions, each replying with the module as it is left.
pub(crate) async fn delete(
    State(batch): State<Batch>,
    Extension(caller): Who,
    Path(reference): Path<String>,
) -> Reply {
    let (name, version) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference.as_str(), None),
    };
    let arn = module_arn(&batch, module_name(name))?;
    caller.authorize("batch:DeleteModule", &[&arn])?;
    Ok(Json(match version {
        Some(digest) => json!(batch.delete_module_version(name, digest).await?),
        None => json!(batch.delete_module(name).await?),
    }))
}
