//! What a job runs: its definition's container with the submit's overrides and `Ref::`
//! parameters applied. The scheduler starts each attempt from it and DescribeJobs reports it,
//! so what a caller reads is what ran.

use std::collections::BTreeMap;

use super::validate::{self, Resources};
use super::{ContainerOverrides, JobDefinition, ResourceRequirement, params};

/// A job's container, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobContainer {
    /// The module reference: `name` or `name@sha256:<hex>`.
    pub image: String,
    /// The arguments after argv[0], parameters substituted.
    pub command: Vec<String>,
    /// The definition's variables, then the overrides' (which win), in order.
    pub environment: Vec<(String, String)>,
    /// The definition's requirements with the overrides' replacing those of the same type.
    pub resource_requirements: Vec<ResourceRequirement>,
    /// What those requirements ask for.
    pub resources: Resources,
    /// The volumes the guest sees: (path under the volume root, guest path, read-only).
    pub mounts: Vec<(std::path::PathBuf, String, bool)>,
}

/// Resolves the container of a job submitted with `parameters` and `overrides` (an array
/// child's are its array's) from `definition`, the revision it was submitted with.
pub fn resolve(
    definition: &JobDefinition,
    parameters: &BTreeMap<String, String>,
    overrides: Option<&ContainerOverrides>,
) -> JobContainer {
    let properties = definition.container_properties.clone().unwrap_or_default();
    let command = overrides
        .and_then(|o| o.command.as_ref())
        .unwrap_or(&properties.command);
    let command = params::substitute(command, &definition.parameters, parameters);
    let mut environment: Vec<(String, String)> = Vec::new();
    let extra = overrides.map(|o| &o.environment[..]).unwrap_or_default();
    for pair in properties.environment.iter().chain(extra) {
        if let (Some(name), Some(value)) = (&pair.name, &pair.value) {
            environment.retain(|(k, _)| k != name);
            environment.push((name.clone(), value.clone()));
        }
    }
    let mut resource_requirements = properties.resource_requirements.clone();
    for over in overrides
        .map(|o| &o.resource_requirements[..])
        .unwrap_or_default()
    {
        resource_requirements.retain(|r| r.kind != over.kind);
        resource_requirements.push(over.clone());
    }
    // Both lists were checked when they were given; a mix of the two cannot be invalid.
    let resources =
        validate::resources("resourceRequirements", &resource_requirements).unwrap_or_default();
    // Checked at registration; a mount that does not resolve cannot be there.
    let mounts = properties
        .mount_points
        .iter()
        .filter_map(|mount| {
            let volume = properties
                .volumes
                .iter()
                .find(|v| v.name == mount.source_volume)?;
            let source = volume.host.as_ref()?.source_path.as_deref()?;
            let path = validate::volume_path("host.sourcePath", source).ok()?;
            Some((
                path,
                mount.container_path.clone()?,
                mount.read_only.unwrap_or(false),
            ))
        })
        .collect();
    JobContainer {
        mounts,
        image: properties.image.clone().unwrap_or_default(),
        command,
        environment,
        resource_requirements,
        resources,
    }
}

/// What a job asks for (vCPUs, memory, fuel), without resolving the rest of its container: the
/// definition's requirements with the overrides' of the same type in their place.
pub fn resources(definition: &JobDefinition, overrides: Option<&ContainerOverrides>) -> Resources {
    let base = definition
        .container_properties
        .as_ref()
        .map(|c| &c.resource_requirements[..])
        .unwrap_or_default();
    // Both lists were checked when they were given.
    let mut resources = validate::resources("resourceRequirements", base).unwrap_or_default();
    if let Some(overrides) = overrides {
        let over = validate::resources("resourceRequirements", &overrides.resource_requirements)
            .unwrap_or_default();
        resources.vcpus = over.vcpus.or(resources.vcpus);
        resources.memory_mib = over.memory_mib.or(resources.memory_mib);
        resources.fuel = over.fuel.or(resources.fuel);
    }
    resources
}
