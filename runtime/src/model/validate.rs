//! Checks on what users create and submit, each naming the field and the value that is wrong,
//! with AWS Batch's limits (names, retries, timeouts, arrays, dependencies, resources,
//! scheduling policies and queues' time-limit actions).

use super::scheduling::{FairsharePolicy, JobStateTimeLimitAction};
use super::{
    ArrayProperties, ComputeEnvironmentOrder, ComputeEnvironmentType, CreateComputeEnvironment,
    CreateSchedulingPolicy, EvaluateOnExit, JobDependency, JobTimeout, KeyValuePair,
    RegisterJobDefinition, ResourceRequirement, RetryStrategy, UpdateSchedulingPolicy,
};

/// A field with a value that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The field, as the AWS model names it (e.g. `retryStrategy.attempts`).
    pub field: String,
    /// What is wrong, with the value.
    pub problem: String,
}

fn invalid<T>(field: impl Into<String>, problem: impl Into<String>) -> Result<T, ValidationError> {
    Err(ValidationError {
        field: field.into(),
        problem: problem.into(),
    })
}

/// `computeResources.type` values AWS Batch takes.
const COMPUTE_RESOURCE_TYPES: [&str; 5] = [
    "EC2",
    "SPOT",
    "FARGATE",
    "FARGATE_SPOT",
    "ECS_MANAGED_INSTANCES",
];

/// Members of RegisterJobDefinition for kinds of job wasmbatch does not run: refused by name,
/// where they would otherwise be stored and never used.
const UNSUPPORTED_PROPERTIES: [&str; 4] = [
    "nodeProperties",
    "ecsProperties",
    "eksProperties",
    "consumableResourceProperties",
];

/// CreateComputeEnvironment, on its own (the name's uniqueness is the state's to check).
pub fn compute_environment(request: &CreateComputeEnvironment) -> Result<(), ValidationError> {
    name("computeEnvironmentName", &request.compute_environment_name)?;
    if let Some(role) = request.extra.get("serviceRole") {
        service_role(role)?;
    }
    if let Some(resources) = &request.compute_resources {
        if !COMPUTE_RESOURCE_TYPES.contains(&resources.kind.as_str()) {
            return invalid(
                "computeResources.type",
                format!(
                    "must be one of {COMPUTE_RESOURCE_TYPES:?}, got {:?}",
                    resources.kind
                ),
            );
        }
        if let Some(min) = resources.minv_cpus.filter(|min| *min > resources.maxv_cpus) {
            return invalid(
                "computeResources.minvCpus",
                format!("{min} is more than maxvCpus {}", resources.maxv_cpus),
            );
        }
    } else if request.kind == ComputeEnvironmentType::Managed {
        return invalid(
            "computeResources",
            "is required for a MANAGED compute environment",
        );
    }
    if request.memory_mib == Some(0) {
        return invalid("memoryMib", "must be at least 1");
    }
    Ok(())
}

/// A job queue's priority: 0 to 1000.
pub fn priority(priority: i32) -> Result<(), ValidationError> {
    if !(0..=1000).contains(&priority) {
        return invalid(
            "priority",
            format!("must be between 0 and 1000, got {priority}"),
        );
    }
    Ok(())
}

/// A queue's environments: one to three, each `order` once (whether they exist is the
/// state's to check).
pub fn compute_environment_order(order: &[ComputeEnvironmentOrder]) -> Result<(), ValidationError> {
    if order.is_empty() || order.len() > 3 {
        return invalid(
            "computeEnvironmentOrder",
            format!("must list 1 to 3 compute environments, got {}", order.len()),
        );
    }
    for (i, entry) in order.iter().enumerate() {
        if order[..i].iter().any(|o| o.order == entry.order) {
            return invalid(
                format!("computeEnvironmentOrder[{i}].order"),
                format!("order {} is given twice", entry.order),
            );
        }
    }
    Ok(())
}

/// A job's `image`: a module of the module store or a registry reference (see
/// [`super::image`]).
pub fn image(field: &str, image: &str) -> Result<(), ValidationError> {
    super::image::ImageRef::parse(image)
        .map(drop)
        .or_else(|problem| invalid(field, format!("image {image:?}: {problem}")))
}

/// A compute environment's `serviceRole`, which wasmbatch stores and echoes: an IAM role's ARN
/// (`arn:<partition>:iam::<account>:role/<path/name>`) or a role's name, as AWS takes it.
pub fn service_role(role: &serde_json::Value) -> Result<(), ValidationError> {
    let Some(role) = role.as_str() else {
        return invalid("serviceRole", format!("must be a string, got {role}"));
    };
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    };
    let ok = match role.strip_prefix("arn:") {
        None => name_ok(role),
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(parts.as_slice(), [partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|path| {
                    path.split('/').next_back().is_some_and(name_ok)
                        && path.len() <= 512
                }))
        }
    };
    if ok {
        Ok(())
    } else {
        invalid(
            "serviceRole",
            format!(
                "{role:?} is neither an IAM role ARN (arn:aws:iam::<account>:role/<name>) nor a \
                 role name"
            ),
        )
    }
}

/// Environment variables for a guest.
pub fn environment(field: &str, environment: &[KeyValuePair]) -> Result<(), ValidationError> {
    for (i, pair) in environment.iter().enumerate() {
        // A NUL would cut the variable short: WASI hands it over as a NUL-terminated string.
        if pair.value.as_deref().is_some_and(|v| v.contains('\0')) {
            return invalid(
                format!("{field}[{i}].value"),
                "must not contain a NUL character",
            );
        }
        match &pair.name {
            Some(name)
                if !name.is_empty()
                    && !name.contains(['=', '\0'])
                    && !name.starts_with("AWS_BATCH") => {}
            Some(name) if name.starts_with("AWS_BATCH") => {
                return invalid(
                    format!("{field}[{i}].name"),
                    format!("{name:?}: names starting with AWS_BATCH are reserved"),
                );
            }
            other => {
                return invalid(
                    format!("{field}[{i}].name"),
                    format!("must be a non-empty name without '=' or NUL, got {other:?}"),
                );
            }
        }
    }
    Ok(())
}

/// RegisterJobDefinition, on its own; `max_memory_mib` is the most memory a job may have here.
pub fn job_definition(
    request: &RegisterJobDefinition,
    max_memory_mib: u64,
) -> Result<(), ValidationError> {
    name("jobDefinitionName", &request.job_definition_name)?;
    if request.kind != "container" {
        return invalid(
            "type",
            format!(
                "only \"container\" job definitions are supported, got {:?}",
                request.kind
            ),
        );
    }
    if let Some(member) = UNSUPPORTED_PROPERTIES
        .into_iter()
        .find(|m| request.extra.contains_key(*m))
    {
        return invalid(
            member,
            "is not supported: wasmbatch runs container jobs; use containerProperties",
        );
    }
    if let Some(priority) = request.extra.get("schedulingPriority") {
        let Some(priority) = priority.as_i64() else {
            return invalid(
                "schedulingPriority",
                format!("must be a whole number, got {priority}"),
            );
        };
        scheduling_priority("schedulingPriority", priority)?;
    }
    parameters("parameters", &request.parameters)?;
    tags("tags", &request.tags)?;
    let Some(container) = &request.container_properties else {
        return invalid("containerProperties", "is required");
    };
    command("containerProperties.command", &container.command)?;
    match &container.image {
        Some(module) => image("containerProperties.image", module)?,
        None => {
            return invalid(
                "containerProperties.image",
                "is required: the module to run",
            );
        }
    }
    resources(
        "containerProperties.resourceRequirements",
        &container.resource_requirements,
    )?;
    deprecated_resources("containerProperties", &container.extra)?;
    let wanted = resources(
        "containerProperties",
        &super::container::requirements(Some(container), None),
    )?;
    if let Some(memory) = wanted.memory_mib.filter(|&m| m > max_memory_mib) {
        let field = match container
            .resource_requirements
            .iter()
            .position(|r| r.kind == "MEMORY")
        {
            Some(i) => format!("containerProperties.resourceRequirements[{i}].value"),
            None => "containerProperties.memory".to_string(),
        };
        return invalid(
            field,
            format!("MEMORY {memory} MiB is more than a job may have here, {max_memory_mib} MiB"),
        );
    }
    environment("containerProperties.environment", &container.environment)?;
    volumes(
        "containerProperties",
        &container.volumes,
        &container.mount_points,
    )?;
    if let Some(retry) = &request.retry_strategy {
        retry_strategy(retry)?;
    }
    if let Some(limit) = &request.timeout {
        timeout(limit)?;
    }
    Ok(())
}

/// Most dependencies a job may have.
pub const MAX_DEPENDENCIES: usize = 20;
/// Largest array.
pub const MAX_ARRAY_SIZE: u32 = 10_000;

/// Names of environments, queues, definitions and jobs: `[A-Za-z0-9_-]{1,128}`.
pub fn name(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > 128 {
        return invalid(
            field,
            format!("must be 1 to 128 characters, got {}", value.chars().count()),
        );
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return invalid(
            field,
            format!("{value:?} contains {bad:?}; only letters, digits, '-' and '_' are allowed"),
        );
    }
    Ok(())
}

/// A job's name: as [`name`], and starting with a letter or a digit, as AWS asks of `jobName`
/// (and of no other name).
pub fn job_name(value: &str) -> Result<(), ValidationError> {
    name("jobName", value)?;
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return invalid(
            "jobName",
            format!("{value:?} must start with a letter or a digit"),
        );
    }
    Ok(())
}

/// A command's arguments: none may hold a NUL, which would cut it short (WASI hands arguments to
/// the guest as NUL-terminated strings).
pub fn command(field: &str, args: &[String]) -> Result<(), ValidationError> {
    match args.iter().position(|arg| arg.contains('\0')) {
        Some(i) => invalid(format!("{field}[{i}]"), "must not contain a NUL character"),
        None => Ok(()),
    }
}

/// The deprecated `vcpus` and `memory` members (of `containerProperties` or
/// `containerOverrides`, named by `field`), which AWS still reads: whole numbers from 1.
pub fn deprecated_resources(field: &str, extra: &super::Extra) -> Result<(), ValidationError> {
    for (member, _) in super::container::DEPRECATED_RESOURCES {
        if let Some(value) = extra.get(member)
            && value.as_u64().is_none_or(|n| n == 0)
        {
            return invalid(
                format!("{field}.{member}"),
                format!("must be a whole number from 1, got {value}"),
            );
        }
    }
    Ok(())
}

/// `containerOverrides.command`: as [`command`], and no empty argument (AWS's rule for
/// overrides).
pub fn command_override(args: &[String]) -> Result<(), ValidationError> {
    let field = "containerOverrides.command";
    command(field, args)?;
    match args.iter().position(String::is_empty) {
        Some(i) => invalid(format!("{field}[{i}]"), "must not be an empty string"),
        None => Ok(()),
    }
}

/// `Ref::` parameters: no NUL in a name or a value, as they become command arguments.
pub fn parameters(
    field: &str,
    parameters: &std::collections::BTreeMap<String, String>,
) -> Result<(), ValidationError> {
    match parameters
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        Some((name, _)) => invalid(
            format!("{field}.{name}"),
            "must not contain a NUL character",
        ),
        None => Ok(()),
    }
}

/// Most tags on one resource (AWS's limit).
pub const MAX_TAGS: usize = 50;

/// Tags: at most 50, keys of 1 to 128 characters that do not start with `aws:` (AWS keeps
/// those), values of up to 256.
pub fn tags(
    field: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<(), ValidationError> {
    if tags.len() > MAX_TAGS {
        return invalid(
            field,
            format!("at most {MAX_TAGS} tags per resource, got {}", tags.len()),
        );
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || key.starts_with("aws:") {
            return invalid(
                field,
                format!("key {key:?} must be 1 to 128 characters and not start with aws:"),
            );
        }
        if value.chars().count() > 256 {
            return invalid(
                field,
                format!("the value of {key:?} is longer than 256 characters"),
            );
        }
    }
    Ok(())
}

/// A fair-share scheduling priority (`schedulingPriority`, `schedulingPriorityOverride`):
/// 0 to 9999.
pub fn scheduling_priority(field: &str, priority: i64) -> Result<(), ValidationError> {
    if !(0..=9999).contains(&priority) {
        return invalid(field, format!("must be between 0 and 9999, got {priority}"));
    }
    Ok(())
}

/// A fair-share identifier: up to 255 letters and digits, optionally followed by `*`.
pub fn share_identifier(value: &str) -> Result<(), ValidationError> {
    share_identifier_at("shareIdentifier", value)
}

fn share_identifier_at(field: &str, value: &str) -> Result<(), ValidationError> {
    let body = value.strip_suffix('*').unwrap_or(value);
    if body.is_empty() || body.len() > 255 || !body.chars().all(|c| c.is_ascii_alphanumeric()) {
        return invalid(
            field,
            format!("{value:?}: expected up to 255 letters and digits, optionally followed by '*'"),
        );
    }
    Ok(())
}

/// Most `shareDistribution` entries in one policy: AWS's limit on the share identifiers a
/// queue may have active, as no more could ever be told apart.
pub const MAX_SHARE_DISTRIBUTION: usize = 500;

/// Longest decay window, in seconds (a week).
const MAX_SHARE_DECAY_SECONDS: i32 = 604_800;

/// CreateSchedulingPolicy, on its own (the name's uniqueness is the state's to check).
pub fn scheduling_policy(request: &CreateSchedulingPolicy) -> Result<(), ValidationError> {
    name("name", &request.name)?;
    fair_share_only(request.quota_share_policy.as_ref())?;
    if let Some(policy) = &request.fairshare_policy {
        fairshare_policy(policy)?;
    }
    tags("tags", &request.tags)
}

/// UpdateSchedulingPolicy, on its own (whether the policy exists is the state's to check).
pub fn scheduling_policy_update(request: &UpdateSchedulingPolicy) -> Result<(), ValidationError> {
    fair_share_only(request.quota_share_policy.as_ref())?;
    match &request.fairshare_policy {
        Some(policy) => fairshare_policy(policy),
        None => Ok(()),
    }
}

/// AWS's quota-share policies divide SageMaker training capacity, which wasmbatch does not
/// have: refused by name rather than stored and never used.
fn fair_share_only(quota_share_policy: Option<&serde_json::Value>) -> Result<(), ValidationError> {
    match quota_share_policy {
        Some(_) => invalid(
            "quotaSharePolicy",
            "is not supported: wasmbatch schedules by fair share only; give fairsharePolicy",
        ),
        None => Ok(()),
    }
}

/// A fair-share policy: `shareDecaySeconds` 0..604800, `computeReservation` 0..99, at most
/// 500 `shareDistribution` entries with weights 0.0001..999.9999, and no two entries that could
/// name the same share: not the same identifier twice, and no prefix (`UserA*`) covering
/// another entry (`UserA1`, `UserAB*`), which AWS refuses too.
pub fn fairshare_policy(policy: &FairsharePolicy) -> Result<(), ValidationError> {
    if let Some(decay) = policy.share_decay_seconds
        && !(0..=MAX_SHARE_DECAY_SECONDS).contains(&decay)
    {
        return invalid(
            "fairsharePolicy.shareDecaySeconds",
            format!("must be between 0 and {MAX_SHARE_DECAY_SECONDS}, got {decay}"),
        );
    }
    if let Some(reservation) = policy.compute_reservation
        && !(0..=99).contains(&reservation)
    {
        return invalid(
            "fairsharePolicy.computeReservation",
            format!("must be between 0 and 99, got {reservation}"),
        );
    }
    let entries = &policy.share_distribution;
    if entries.len() > MAX_SHARE_DISTRIBUTION {
        return invalid(
            "fairsharePolicy.shareDistribution",
            format!(
                "at most {MAX_SHARE_DISTRIBUTION} entries, got {}",
                entries.len()
            ),
        );
    }
    for (i, entry) in entries.iter().enumerate() {
        let at = |member: &str| format!("fairsharePolicy.shareDistribution[{i}].{member}");
        let id = entry.share_identifier.as_str();
        share_identifier_at(&at("shareIdentifier"), id)?;
        if let Some(weight) = entry.weight_factor
            && !(0.0001..=999.9999).contains(&weight)
        {
            return invalid(
                at("weightFactor"),
                format!("must be between 0.0001 and 999.9999, got {weight}"),
            );
        }
        // Quadratic, over at most 500 short strings: a quarter of a million comparisons.
        if let Some(j) = entries[..i]
            .iter()
            .position(|earlier| overlap(&earlier.share_identifier, id))
        {
            let earlier = &entries[j].share_identifier;
            let problem = if earlier == id {
                format!("{id:?} is given twice (also at shareDistribution[{j}])")
            } else {
                format!(
                    "{id:?} overlaps {earlier:?} at shareDistribution[{j}]: a share would match both"
                )
            };
            return invalid(at("shareIdentifier"), problem);
        }
    }
    Ok(())
}

/// Whether two `shareDistribution` identifiers could match the same share: equal, or one a
/// prefix (`P*`) that the other starts with.
fn overlap(a: &str, b: &str) -> bool {
    let covers = |prefix: &str, other: &str| {
        prefix
            .strip_suffix('*')
            .is_some_and(|p| other.strip_suffix('*').unwrap_or(other).starts_with(p))
    };
    a == b || covers(a, b) || covers(b, a)
}

/// Most `jobStateTimeLimitActions` on one queue. The AWS model names no limit; AWS documents
/// a handful of blocking reasons an action can be for, so a few are all a queue can use.
pub const MAX_TIME_LIMIT_ACTIONS: usize = 5;

/// Longest time a job may be stuck before its action is taken: a day, as on AWS.
const MAX_TIME_LIMIT_SECONDS: i32 = 86_400;

/// Longest `reason` of a time-limit action.
const MAX_TIME_LIMIT_REASON: usize = 1024;

/// A queue's `jobStateTimeLimitActions`: at most five, each for `RUNNABLE` jobs, `CANCEL`,
/// with a `reason` of 1 to 1024 characters given once, and `maxTimeSeconds` of 1 to 86400.
/// AWS's minimum is 600; wasmbatch deliberately takes down to 1, so that tests, and operators
/// who would rather not wait ten minutes, can use it.
pub fn job_state_time_limit_actions(
    actions: &[JobStateTimeLimitAction],
) -> Result<(), ValidationError> {
    let field = "jobStateTimeLimitActions";
    if actions.len() > MAX_TIME_LIMIT_ACTIONS {
        return invalid(
            field,
            format!(
                "at most {MAX_TIME_LIMIT_ACTIONS} actions, got {}",
                actions.len()
            ),
        );
    }
    for (i, action) in actions.iter().enumerate() {
        let at = |member: &str| format!("{field}[{i}].{member}");
        if action.state != "RUNNABLE" {
            return invalid(
                at("state"),
                format!("must be RUNNABLE, got {:?}", action.state),
            );
        }
        if action.action != "CANCEL" {
            return invalid(
                at("action"),
                format!(
                    "must be CANCEL (TERMINATE is for SageMaker service environments, which wasmbatch does not have), got {:?}",
                    action.action
                ),
            );
        }
        if !(1..=MAX_TIME_LIMIT_SECONDS).contains(&action.max_time_seconds) {
            return invalid(
                at("maxTimeSeconds"),
                format!(
                    "must be between 1 and {MAX_TIME_LIMIT_SECONDS}, got {}",
                    action.max_time_seconds
                ),
            );
        }
        let length = action.reason.chars().count();
        if length == 0 || length > MAX_TIME_LIMIT_REASON {
            return invalid(
                at("reason"),
                format!("must be 1 to {MAX_TIME_LIMIT_REASON} characters, got {length}"),
            );
        }
        // Two actions for one reason would leave which one applies to their order.
        if let Some(j) = actions[..i].iter().position(|a| a.reason == action.reason) {
            return invalid(
                at("reason"),
                format!("{:?} is given twice (also at {field}[{j}])", action.reason),
            );
        }
    }
    Ok(())
}

/// `attempts` 1..10, at most 5 `evaluateOnExit` entries (which need `attempts`), valid patterns.
pub fn retry_strategy(strategy: &RetryStrategy) -> Result<(), ValidationError> {
    if let Some(attempts) = strategy.attempts
        && !(1..=10).contains(&attempts)
    {
        return invalid(
            "retryStrategy.attempts",
            format!("must be between 1 and 10, got {attempts}"),
        );
    }
    if strategy.evaluate_on_exit.len() > 5 {
        return invalid(
            "retryStrategy.evaluateOnExit",
            format!("at most 5 entries, got {}", strategy.evaluate_on_exit.len()),
        );
    }
    if !strategy.evaluate_on_exit.is_empty() && strategy.attempts.is_none() {
        return invalid(
            "retryStrategy.attempts",
            "is required when evaluateOnExit is given",
        );
    }
    for (i, entry) in strategy.evaluate_on_exit.iter().enumerate() {
        evaluate_on_exit(i, entry)?;
    }
    Ok(())
}

fn evaluate_on_exit(i: usize, entry: &EvaluateOnExit) -> Result<(), ValidationError> {
    let at = |member: &str| format!("retryStrategy.evaluateOnExit[{i}].{member}");
    if !entry.action.eq_ignore_ascii_case("RETRY") && !entry.action.eq_ignore_ascii_case("EXIT") {
        return invalid(
            at("action"),
            format!("must be RETRY or EXIT, got {:?}", entry.action),
        );
    }
    if let Some(code) = &entry.on_exit_code {
        let digits = code.strip_suffix('*').unwrap_or(code);
        if code.len() > 512
            || !digits.chars().all(|c| c.is_ascii_digit())
            || (digits.is_empty() && code != "*")
        {
            return invalid(
                at("onExitCode"),
                format!("must be digits, optionally ending in '*', got {code:?}"),
            );
        }
    }
    for (member, pattern) in [
        ("onReason", &entry.on_reason),
        ("onStatusReason", &entry.on_status_reason),
    ] {
        if let Some(pattern) = pattern {
            let body = pattern.strip_suffix('*').unwrap_or(pattern);
            let allowed =
                |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | ' ' | '\t');
            if pattern.len() > 512 || !body.chars().all(allowed) {
                return invalid(
                    at(member),
                    format!(
                        "up to 512 letters, digits, '.', ':' and spaces, optionally ending in '*'; got {pattern:?}"
                    ),
                );
            }
        }
    }
    if entry.on_exit_code.is_none() && entry.on_reason.is_none() && entry.on_status_reason.is_none()
    {
        return invalid(
            at("onExitCode"),
            "an entry needs at least one of onExitCode, onReason, onStatusReason",
        );
    }
    Ok(())
}

/// `attemptDurationSeconds` of at least 1 (AWS asks for 60; we allow shorter).
pub fn timeout(timeout: &JobTimeout) -> Result<(), ValidationError> {
    match timeout.attempt_duration_seconds {
        Some(0) => invalid(
            "timeout.attemptDurationSeconds",
            "must be at least 1, got 0",
        ),
        _ => Ok(()),
    }
}

/// Array size 2..10,000.
pub fn array_properties(array: &ArrayProperties) -> Result<(), ValidationError> {
    match array.size {
        Some(size) if !(2..=MAX_ARRAY_SIZE).contains(&size) => invalid(
            "arrayProperties.size",
            format!("must be between 2 and {MAX_ARRAY_SIZE}, got {size}"),
        ),
        _ => Ok(()),
    }
}

/// At most 20 dependencies, each with a job id unless it is a SEQUENTIAL array dependency.
pub fn depends_on(dependencies: &[JobDependency]) -> Result<(), ValidationError> {
    if dependencies.len() > MAX_DEPENDENCIES {
        return invalid("dependsOn", "Job cannot have more than 20 dependencies");
    }
    for (i, dependency) in dependencies.iter().enumerate() {
        if dependency.job_id.is_none()
            && dependency.kind != Some(super::ArrayJobDependency::Sequential)
        {
            return invalid(
                format!("dependsOn[{i}].jobId"),
                "is required unless type is SEQUENTIAL",
            );
        }
    }
    Ok(())
}

/// What a job's resource requirements ask for, once checked.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    /// vCPUs (may be fractional, as on Fargate).
    pub vcpus: Option<f64>,
    /// Memory in MiB.
    pub memory_mib: Option<u64>,
    /// Fuel budget (our extension).
    pub fuel: Option<u64>,
}

/// Reads VCPU, MEMORY and FUEL; refuses GPU, unknown types, bad numbers and repeats.
pub fn resources(
    field: &str,
    requirements: &[ResourceRequirement],
) -> Result<Resources, ValidationError> {
    let mut resources = Resources::default();
    for (i, requirement) in requirements.iter().enumerate() {
        let at = format!("{field}[{i}].value");
        let value = requirement.value.trim();
        let repeated = || {
            invalid(
                format!("{field}[{i}].type"),
                format!("{} is given twice", requirement.kind),
            )
        };
        // A positive number of type T, or an error saying what `kind` must be.
        fn positive<T: std::str::FromStr + PartialOrd + Default>(
            at: &str,
            value: &str,
            what: &str,
        ) -> Result<T, ValidationError> {
            match value.parse::<T>() {
                Ok(n) if n > T::default() => Ok(n),
                _ => invalid(at, format!("{what}, got {value:?}")),
            }
        }
        match requirement.kind.as_str() {
            "VCPU" => {
                let vcpus: f64 = positive(&at, value, "VCPU must be a positive number")?;
                if !vcpus.is_finite() {
                    return invalid(&at, format!("VCPU must be a finite number, got {value:?}"));
                }
                if resources.vcpus.replace(vcpus).is_some() {
                    return repeated();
                }
            }
            "MEMORY" => {
                let what = "MEMORY must be a positive whole number of MiB";
                if resources
                    .memory_mib
                    .replace(positive(&at, value, what)?)
                    .is_some()
                {
                    return repeated();
                }
            }
            "FUEL" => {
                let what = "FUEL must be a positive whole number";
                if resources
                    .fuel
                    .replace(positive(&at, value, what)?)
                    .is_some()
                {
                    return repeated();
                }
            }
            "GPU" => {
                return invalid(
                    format!("{field}[{i}].type"),
                    "GPU is not available to WebAssembly jobs",
                );
            }
            other => {
                return invalid(
                    format!("{field}[{i}].type"),
                    format!("must be VCPU, MEMORY or FUEL, got {other:?}"),
                );
            }
        }
    }
    Ok(resources)
}

/// A volume's `host.sourcePath` as a path under the volume root: relative components only
/// (a leading `/` means the root), no `..`, so a definition cannot name a host path outside it.
pub fn volume_path(field: &str, source_path: &str) -> Result<std::path::PathBuf, ValidationError> {
    let mut path = std::path::PathBuf::new();
    for component in source_path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
    {
        if component == ".." || component.contains('\0') {
            return invalid(
                field,
                format!("{source_path:?} leaves the volume root; use a path under it"),
            );
        }
        path.push(component);
    }
    if path.as_os_str().is_empty() {
        return invalid(field, "must name a directory under the volume root");
    }
    Ok(path)
}

/// Volumes and mount points: host volumes only, unique names, every mount naming a volume at
/// an absolute guest path that is neither `/` nor the scratch directory, each path once.
pub fn volumes(
    field: &str,
    volumes: &[super::Volume],
    mounts: &[super::MountPoint],
) -> Result<(), ValidationError> {
    let mut names = std::collections::BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let at = format!("{field}.volumes[{i}]");
        if let Some(kind) = volume.extra.keys().next() {
            return invalid(
                format!("{at}.{kind}"),
                "is not supported: wasmbatch volumes are host directories (host.sourcePath)",
            );
        }
        let name = volume.name.as_deref().unwrap_or_default();
        if name.is_empty() || name.len() > 255 {
            return invalid(format!("{at}.name"), "must be 1 to 255 characters");
        }
        if !names.insert(name) {
            return invalid(format!("{at}.name"), format!("{name:?} is given twice"));
        }
        let source = volume.host.as_ref().and_then(|h| h.source_path.as_deref());
        let Some(source) = source else {
            return invalid(format!("{at}.host.sourcePath"), "is required");
        };
        volume_path(&format!("{at}.host.sourcePath"), source)?;
    }
    let mut paths = std::collections::BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let at = format!("{field}.mountPoints[{i}]");
        let source = mount.source_volume.as_deref().unwrap_or_default();
        if !names.contains(source) {
            return invalid(
                format!("{at}.sourceVolume"),
                format!("{source:?} is not one of the definition's volumes"),
            );
        }
        let path = mount.container_path.as_deref().unwrap_or_default();
        let scratch = crate::engine::SCRATCH_GUEST_PATH;
        if !path.starts_with('/') || path == "/" || path.split('/').any(|c| c == "..") {
            return invalid(
                format!("{at}.containerPath"),
                format!("{path:?}: expected an absolute guest path such as /data"),
            );
        }
        if path.trim_end_matches('/') == scratch {
            return invalid(
                format!("{at}.containerPath"),
                format!("{scratch} is the job's scratch directory"),
            );
        }
        if !paths.insert(path.trim_end_matches('/')) {
            return invalid(
                format!("{at}.containerPath"),
                format!("{path:?} is given twice"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_allow_letters_digits_dash_underscore_up_to_128() {
        assert!(name("jobName", "nightly-ETL_2").is_ok());
        let error = name("jobName", "has space").unwrap_err();
        assert_eq!(error.field, "jobName");
        assert!(error.problem.contains("' '"), "{error}");
        assert!(name("jobQueue", "").is_err());
        assert!(name("jobQueue", &"a".repeat(129)).is_err());
        assert!(name("jobQueue", &"a".repeat(128)).is_ok());
        assert!(name("jobQueue", "ünïcode").is_err());
    }

    #[test]
    fn job_names_start_with_a_letter_or_digit_and_arguments_hold_no_nul() {
        assert!(job_name("9lives").is_ok());
        assert!(job_name("_job").unwrap_err().problem.contains("start"));
        assert!(
            name("jobDefinitionName", "_job").is_ok(),
            "only jobName has the rule"
        );
        assert_eq!(
            command("containerProperties.command", &["a".into(), "b\0".into()])
                .unwrap_err()
                .field,
            "containerProperties.command[1]"
        );
        assert!(command("containerProperties.command", &["".into()]).is_ok());
        assert_eq!(
            command_override(&["a".into(), "".into()])
                .unwrap_err()
                .field,
            "containerOverrides.command[1]"
        );
        let nul = [("who".to_string(), "a\0".to_string())].into();
        assert_eq!(
            parameters("parameters", &nul).unwrap_err().field,
            "parameters.who"
        );
    }

    #[test]
    fn tags_and_fair_share_members_follow_aws_limits() {
        let tags = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(super::tags("tags", &tags(&[("team", "render")])).is_ok());
        for bad in [("", "x"), ("aws:team", "x"), (&"k".repeat(129), "x")] {
            assert!(super::tags("tags", &tags(&[bad])).is_err(), "{bad:?}");
        }
        assert!(super::tags("tags", &tags(&[("k", &"v".repeat(257))])).is_err());
        let many: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(super::tags("tags", &many.into_iter().collect()).is_err());
        assert!(scheduling_priority("schedulingPriority", 9999).is_ok());
        assert!(scheduling_priority("schedulingPriority", 10_000).is_err());
        assert!(scheduling_priority("schedulingPriority", -1).is_err());
        assert!(share_identifier("teamA*").is_ok());
        assert!(share_identifier("team-a").is_err());
        assert!(share_identifier("").is_err());
    }

    #[test]
    fn fair_share_policies_follow_aws_limits_and_shares_never_overlap() {
        use crate::model::scheduling::ShareAttributes;
        let policy = |entries: &[(&str, f64)]| FairsharePolicy {
            share_decay_seconds: Some(604_800),
            compute_reservation: Some(99),
            share_distribution: entries
                .iter()
                .map(|(id, w)| ShareAttributes {
                    share_identifier: id.to_string(),
                    weight_factor: Some(*w),
                })
                .collect(),
        };
        let field = |p: &FairsharePolicy| fairshare_policy(p).unwrap_err().field;
        assert!(fairshare_policy(&policy(&[("UserA*", 0.0001), ("UserB", 999.9999)])).is_ok());
        assert!(fairshare_policy(&policy(&[("UserA1", 1.0), ("UserA2*", 1.0)])).is_ok());
        for overlapping in [
            [("UserA*", 1.0), ("UserA1", 1.0)],
            [("UserA1", 1.0), ("UserA*", 1.0)],
            [("UserA*", 1.0), ("UserAB*", 1.0)],
            [("UserA", 1.0), ("UserA*", 1.0)],
            [("UserA", 1.0), ("UserA", 2.0)],
        ] {
            let error = fairshare_policy(&policy(&overlapping)).unwrap_err();
            assert_eq!(
                error.field, "fairsharePolicy.shareDistribution[1].shareIdentifier",
                "{overlapping:?}"
            );
            assert!(error.problem.contains("shareDistribution[0]"), "{error}");
        }
        assert_eq!(
            field(&policy(&[("a", 0.00001)])),
            "fairsharePolicy.shareDistribution[0].weightFactor"
        );
        assert_eq!(
            field(&policy(&[("a", f64::NAN)])),
            "fairsharePolicy.shareDistribution[0].weightFactor"
        );
        assert_eq!(
            field(&policy(&[("a-b", 1.0)])),
            "fairsharePolicy.shareDistribution[0].shareIdentifier"
        );
        let mut decay = policy(&[]);
        decay.share_decay_seconds = Some(604_801);
        assert_eq!(field(&decay), "fairsharePolicy.shareDecaySeconds");
        let mut reservation = policy(&[]);
        reservation.compute_reservation = Some(100);
        assert_eq!(field(&reservation), "fairsharePolicy.computeReservation");
        let many: Vec<(String, f64)> = (0..501).map(|i| (format!("u{i}"), 1.0)).collect();
        let many: Vec<(&str, f64)> = many.iter().map(|(s, w)| (s.as_str(), *w)).collect();
        assert_eq!(field(&policy(&many)), "fairsharePolicy.shareDistribution");
        assert!(fairshare_policy(&policy(&many[..500])).is_ok());
        let quota = CreateSchedulingPolicy {
            name: "q".into(),
            quota_share_policy: Some(serde_json::json!({"idleResourceAssignmentStrategy": "FIFO"})),
            ..CreateSchedulingPolicy::default()
        };
        assert_eq!(
            scheduling_policy(&quota).unwrap_err().field,
            "quotaSharePolicy"
        );
    }

    #[test]
    fn time_limit_actions_cancel_runnable_jobs_after_one_second_to_a_day() {
        let action = |reason: &str, seconds: i32| JobStateTimeLimitAction {
            reason: reason.into(),
            state: "RUNNABLE".into(),
            max_time_seconds: seconds,
            action: "CANCEL".into(),
        };
        let field = |actions: &[JobStateTimeLimitAction]| {
            job_state_time_limit_actions(actions).unwrap_err().field
        };
        assert!(job_state_time_limit_actions(&[action("a", 1), action("b", 86_400)]).is_ok());
        assert_eq!(
            field(&[action("a", 0)]),
            "jobStateTimeLimitActions[0].maxTimeSeconds"
        );
        assert_eq!(
            field(&[action("a", 86_401)]),
            "jobStateTimeLimitActions[0].maxTimeSeconds"
        );
        assert_eq!(
            field(&[action("", 1)]),
            "jobStateTimeLimitActions[0].reason"
        );
        assert_eq!(
            field(&[action(&"r".repeat(1025), 1)]),
            "jobStateTimeLimitActions[0].reason"
        );
        assert_eq!(
            field(&[action("a", 1), action("a", 2)]),
            "jobStateTimeLimitActions[1].reason"
        );
        let mut running = action("a", 1);
        running.state = "RUNNING".into();
        assert_eq!(field(&[running]), "jobStateTimeLimitActions[0].state");
        let mut terminate = action("a", 1);
        terminate.action = "TERMINATE".into();
        assert_eq!(field(&[terminate]), "jobStateTimeLimitActions[0].action");
        let six: Vec<_> = (0..6).map(|i| action(&format!("r{i}"), 1)).collect();
        assert_eq!(field(&six), "jobStateTimeLimitActions");
    }

    #[test]
    fn retry_strategies_follow_aws_limits() {
        let ok = RetryStrategy {
            attempts: Some(3),
            evaluate_on_exit: vec![],
        };
        assert!(retry_strategy(&ok).is_ok());
        let error = retry_strategy(&RetryStrategy {
            attempts: Some(11),
            ..ok.clone()
        })
        .unwrap_err();
        assert_eq!(error.field, "retryStrategy.attempts");
        assert!(error.problem.contains("11"));
        let entry = |code: &str| EvaluateOnExit {
            on_exit_code: Some(code.into()),
            on_reason: None,
            on_status_reason: None,
            action: "retry".into(),
        };
        let six = RetryStrategy {
            attempts: Some(2),
            evaluate_on_exit: vec![entry("1"); 6],
        };
        assert_eq!(
            retry_strategy(&six).unwrap_err().field,
            "retryStrategy.evaluateOnExit"
        );
        let no_attempts = RetryStrategy {
            attempts: None,
            evaluate_on_exit: vec![entry("1")],
        };
        assert_eq!(
            retry_strategy(&no_attempts).unwrap_err().field,
            "retryStrategy.attempts"
        );
        let bad_code = RetryStrategy {
            attempts: Some(2),
            evaluate_on_exit: vec![entry("1x")],
        };
        assert_eq!(
            retry_strategy(&bad_code).unwrap_err().field,
            "retryStrategy.evaluateOnExit[0].onExitCode"
        );
        let bad_action = RetryStrategy {
            attempts: Some(2),
            evaluate_on_exit: vec![EvaluateOnExit {
                action: "MAYBE".into(),
                ..entry("1")
            }],
        };
        assert!(
            retry_strategy(&bad_action)
                .unwrap_err()
                .problem
                .contains("MAYBE")
        );
    }

    #[test]
    fn arrays_dependencies_and_timeouts_have_bounds() {
        assert!(array_properties(&ArrayProperties { size: Some(2) }).is_ok());
        assert!(
            array_properties(&ArrayProperties { size: Some(10_001) })
                .unwrap_err()
                .problem
                .contains("10001")
        );
        assert!(array_properties(&ArrayProperties { size: Some(1) }).is_err());
        let dep = JobDependency {
            job_id: Some("x".into()),
            kind: None,
        };
        assert!(depends_on(&vec![dep.clone(); 20]).is_ok());
        assert_eq!(
            depends_on(&vec![dep; 21]).unwrap_err().problem,
            "Job cannot have more than 20 dependencies"
        );
        assert!(
            timeout(&JobTimeout {
                attempt_duration_seconds: Some(0)
            })
            .is_err()
        );
        assert!(
            timeout(&JobTimeout {
                attempt_duration_seconds: Some(1)
            })
            .is_ok()
        );
    }

    #[test]
    fn resources_read_vcpu_memory_fuel_and_refuse_the_rest() {
        let req = |kind: &str, value: &str| ResourceRequirement {
            kind: kind.into(),
            value: value.into(),
        };
        let r = resources(
            "resourceRequirements",
            &[
                req("VCPU", "0.5"),
                req("MEMORY", "256"),
                req("FUEL", "1000"),
            ],
        )
        .unwrap();
        assert_eq!(
            r,
            Resources {
                vcpus: Some(0.5),
                memory_mib: Some(256),
                fuel: Some(1000)
            }
        );
        let error = resources("resourceRequirements", &[req("MEMORY", "lots")]).unwrap_err();
        assert_eq!(error.field, "resourceRequirements[0].value");
        assert!(
            resources("resourceRequirements", &[req("GPU", "1")])
                .unwrap_err()
                .problem
                .contains("GPU")
        );
        assert!(
            resources(
                "resourceRequirements",
                &[req("VCPU", "1"), req("VCPU", "2")]
            )
            .is_err()
        );
        assert!(resources("resourceRequirements", &[req("DISK", "1")]).is_err());
    }
}
