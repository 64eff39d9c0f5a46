//! Job definitions: RegisterJobDefinition, DescribeJobDefinitions and DeregisterJobDefinition.
//! Revisions of a name are numbered from 1 and never reused: a revision is only ever added at
//! the end and never removed (deregistering makes it INACTIVE), so revision r is always the
//! r-th, whatever failed in between.

use crate::model::arn::ResourceKind;
use crate::model::validate;
use crate::model::{JobDefinition, RegisterJobDefinition};

use super::{Batch, BatchError};

impl Batch {
    /// RegisterJobDefinition: a new revision of the name.
    pub async fn register_job_definition(
        &self,
        request: RegisterJobDefinition,
    ) -> Result<JobDefinition, BatchError> {
        let max_mib = self.shared.executor.config().max_memory_bytes >> 20;
        validate::job_definition(&request, max_mib)?;
        let config = &self.shared.config;
        let name = request.job_definition_name.clone();
        self.change(|state| {
            let revisions = state.definitions.entry(name.clone()).or_default();
            let revision = revisions.len() as u32 + 1;
            let definition = JobDefinition {
                job_definition_arn: config
                    .arn(ResourceKind::JobDefinition, &format!("{name}:{revision}")),
                job_definition_name: name.clone(),
                revision,
                status: "ACTIVE".into(),
                kind: request.kind,
                parameters: request.parameters,
                retry_strategy: request.retry_strategy,
                container_properties: request.container_properties,
                timeout: request.timeout,
                tags: request.tags,
                propagate_tags: request.propagate_tags,
                extra: request.extra,
            };
            revisions.push(definition.clone());
            state.touch_definition(&name, revision);
            Ok(definition)
        })
        .await
    }

    /// The ARNs (`…:volume/<path>`) of the host directories a definition would mount, each path
    /// as the scheduler resolves it under the volume root; refuses a path that would leave it.
    pub fn volume_arns(&self, request: &RegisterJobDefinition) -> Result<Vec<String>, BatchError> {
        let Some(properties) = &request.container_properties else {
            return Ok(Vec::new());
        };
        let mut arns = Vec::new();
        for (i, volume) in properties.volumes.iter().enumerate() {
            let Some(source) = volume.host.as_ref().and_then(|h| h.source_path.as_deref()) else {
                continue;
            };
            let field = format!("containerProperties.volumes[{i}].host.sourcePath");
            let path = validate::volume_path(&field, source)?;
            let path: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
            arns.push(
                self.shared
                    .config
                    .arn(ResourceKind::Volume, &path.join("/")),
            );
        }
        Ok(arns)
    }

    /// The ARN of the image `request` runs, if it names one: `…:module/<name>` for a module
    /// pushed here, `…:registry/<host[:port]>/<repository>` for one pulled from a registry (tag
    /// and digest left out of both: a caller allowed a module or repository may run any of its
    /// versions). A definition runs its image with the server's rights, so the caller must be
    /// allowed it (`batch:PullImage`), or one team's key could run another's module, or a private
    /// image the server's registry login reaches, by naming it.
    pub fn image_arn(&self, request: &RegisterJobDefinition) -> Result<Option<String>, BatchError> {
        let Some(image) = request
            .container_properties
            .as_ref()
            .and_then(|p| p.image.as_deref())
        else {
            return Ok(None);
        };
        validate::image("containerProperties.image", image)?;
        let config = &self.shared.config;
        Ok(match crate::model::image::ImageRef::parse(image) {
            Ok(crate::model::image::ImageRef::Registry(remote)) => {
                Some(config.arn(ResourceKind::Registry, &remote.name()))
            }
            Ok(crate::model::image::ImageRef::Local(local)) => {
                Some(config.arn(ResourceKind::Module, &local.name))
            }
            // Refused with its reason when the definition is registered.
            Err(_) => None,
        })
    }

    /// DescribeJobDefinitions: by `name`, `name:revision` or ARN, or by name and status, or all.
    pub fn describe_job_definitions(
        &self,
        definitions: &[String],
        name: Option<&str>,
        status: Option<&str>,
    ) -> Vec<JobDefinition> {
        let state = self.shared.lock();
        state
            .definitions
            .values()
            .flatten()
            .filter(|d| {
                definitions.is_empty()
                    || definitions.iter().any(|wanted| {
                        let Ok(wanted) = self.shared.config.resource_name(
                            ResourceKind::JobDefinition,
                            "jobDefinitions",
                            wanted,
                        ) else {
                            return false;
                        };
                        wanted == d.job_definition_name
                            || wanted == format!("{}:{}", d.job_definition_name, d.revision)
                    })
            })
            .filter(|d| name.is_none_or(|n| n == d.job_definition_name))
            .filter(|d| status.is_none_or(|s| s.eq_ignore_ascii_case(&d.status)))
            .cloned()
            .collect()
    }

    /// DeregisterJobDefinition: `name:revision` or ARN becomes INACTIVE.
    pub async fn deregister_job_definition(&self, definition: &str) -> Result<(), BatchError> {
        let named = self.shared.config.resource_name(
            ResourceKind::JobDefinition,
            "jobDefinition",
            definition,
        )?;
        let (name, revision) = parse_revision(named).ok_or_else(|| {
            BatchError::invalid(
                "jobDefinition",
                format!("expected name:revision or an ARN, got {definition:?}"),
            )
        })?;
        self.change(|state| {
            let found =
                state
                    .revision_mut(&name, revision)
                    .ok_or_else(|| BatchError::NotFound {
                        what: "job definition",
                        name: definition.to_string(),
                    })?;
            found.status = "INACTIVE".into();
            Ok(())
        })
        .await
    }
}

/// `name` and `revision` from `name:revision` (as [`BatchConfig::resource_name`] reads a
/// definition's name or ARN).
///
/// [`BatchConfig::resource_name`]: super::BatchConfig::resource_name
pub(crate) fn parse_revision(definition: &str) -> Option<(String, u32)> {
    let (name, revision) = definition.rsplit_once(':')?;
    let revision: u32 = revision.parse().ok().filter(|r| *r > 0)?;
    Some((name.to_string(), revision))
}
