//! What a job runs: its definition's container with the submit's overrides and `Ref::`
//! parameters applied. The scheduler starts each attempt from it and DescribeJobs reports it,
//! so what a caller reads is what ran.

use std::collections::BTreeMap;

use super::validate::{self, Resources};
use super::{ContainerOverrides, ContainerProperties, JobDefinition, ResourceRequirement, params};

/// A job's container, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobContainer {
    /// The image as written: see [`super::image`].
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

/// vCPUs a job takes when its definition does not say.
pub const DEFAULT_VCPUS: f64 = 1.0;

impl JobContainer {
    /// The vCPUs the job is given: what it asks for, else [`DEFAULT_VCPUS`].
    pub fn vcpus(&self) -> f64 {
        self.resources.vcpus.unwrap_or(DEFAULT_VCPUS)
    }

    /// The memory the job is given, in MiB: what it asks for, else the executor's default cap
    /// on linear memory.
    pub fn memory_mib(&self) -> u64 {
        self.resources
            .memory_mib
            .unwrap_or(crate::engine::Limits::DEFAULT_MEMORY_BYTES >> 20)
    }
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
    let resource_requirements = requirements(Some(&properties), overrides);
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

/// What a job asks for (vCPUs, memory, fuel), without resolving the rest of its container: see
/// [`requirements`].
pub fn resources(definition: &JobDefinition, overrides: Option<&ContainerOverrides>) -> Resources {
    let wanted = requirements(definition.container_properties.as_ref(), overrides);
    // Both lists were checked when they were given.
    validate::resources("resourceRequirements", &wanted).unwrap_or_default()
}

/// The deprecated members that AWS still reads beside `resourceRequirements`, with the type
/// each stands for.
pub const DEPRECATED_RESOURCES: [(&str, &str); 2] = [("vcpus", "VCPU"), ("memory", "MEMORY")];

/// The requirements a job asks for, as AWS reads them: the definition's `resourceRequirements`,
/// and its deprecated `vcpus`/`memory` for a type the list leaves out; then the overrides'
/// deprecated `vcpus`/`memory`, which replace only a value that did not come from the
/// definition's list (AWS: they "do not override resourceRequirements"), and the overrides'
/// `resourceRequirements`, which replace the type they name.
pub fn requirements(
    properties: Option<&ContainerProperties>,
    overrides: Option<&ContainerOverrides>,
) -> Vec<ResourceRequirement> {
    let listed = properties
        .map(|p| &p.resource_requirements[..])
        .unwrap_or_default();
    let mut wanted = listed.to_vec();
    let deprecated = |extra: &super::Extra, member: &str| {
        extra
            .get(member)
            .and_then(serde_json::Value::as_u64)
            .map(|n| n.to_string())
    };
    for (member, kind) in DEPRECATED_RESOURCES {
        let from_definition = properties.and_then(|p| deprecated(&p.extra, member));
        let from_overrides = overrides.and_then(|o| deprecated(&o.extra, member));
        if listed.iter().any(|r| r.kind == kind) {
            continue;
        }
        if let Some(value) = from_overrides.or(from_definition) {
            wanted.push(ResourceRequirement {
                kind: kind.to_string(),
                value,
            });
        }
    }
    for over in overrides
        .map(|o| &o.resource_requirements[..])
        .unwrap_or_default()
    {
        wanted.retain(|r| r.kind != over.kind);
        wanted.push(over.clone());
    }
    wanted
}
