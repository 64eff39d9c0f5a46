//! This service's ARNs, and reading what a caller names a resource by (a name, or an ARN) as the
//! name of one of ours.
//!
//! An ARN names one of our resources only if every part of it is ours: partition `aws`, service
//! `batch`, this service's region and account, the expected kind, and one name after it. Anything
//! else is refused, never resolved by its last segment: a policy that denies
//! `…:job-queue/production` must not be dodged by `arn:aws-x:batch:…:job-queue/production`.

use super::validate::ValidationError;

/// What kind of resource an ARN names: the word before the `/` in its last part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `compute-environment/<name>`.
    ComputeEnvironment,
    /// `job-queue/<name>`.
    JobQueue,
    /// `job-definition/<name>:<revision>` (or `<name>` alone where the latest revision is meant).
    JobDefinition,
    /// `job/<id>` (an array child's id is `<parent id>:<index>`).
    Job,
    /// `module/<name>`: a module pushed to this service (our registry, in ECR's place).
    Module,
    /// `volume/<path>`: a host directory under the volume root that definitions may mount.
    Volume,
    /// `scheduling-policy/<name>`: a fair-share policy queues may name.
    SchedulingPolicy,
    /// `registry/<host[:port]>/<repository>`: a repository of an OCI registry that definitions'
    /// images may be pulled from, with the server's login.
    Registry,
}

impl ResourceKind {
    /// The kind as ARNs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::ComputeEnvironment => "compute-environment",
            ResourceKind::JobQueue => "job-queue",
            ResourceKind::JobDefinition => "job-definition",
            ResourceKind::Job => "job",
            ResourceKind::Module => "module",
            ResourceKind::Volume => "volume",
            ResourceKind::SchedulingPolicy => "scheduling-policy",
            ResourceKind::Registry => "registry",
        }
    }

    fn from_str(kind: &str) -> Option<Self> {
        [
            ResourceKind::ComputeEnvironment,
            ResourceKind::JobQueue,
            ResourceKind::JobDefinition,
            ResourceKind::Job,
            ResourceKind::Module,
            ResourceKind::Volume,
            ResourceKind::SchedulingPolicy,
            ResourceKind::Registry,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }

    /// Whether `name` can name a resource of this kind: the characters AWS allows in names
    /// (`[A-Za-z0-9_-]`, up to 128), plus `:<revision>` for a definition and `:<index>` for an
    /// array child.
    fn admits(self, name: &str) -> bool {
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let numbered = |s: &str| match s.split_once(':') {
            None => plain(s),
            Some((base, number)) => {
                plain(base) && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
            }
        };
        match self {
            ResourceKind::ComputeEnvironment
            | ResourceKind::JobQueue
            | ResourceKind::Module
            | ResourceKind::SchedulingPolicy => plain(name),
            ResourceKind::JobDefinition | ResourceKind::Job => numbered(name),
            // As `model::image` leaves it: a host and a lowercase repository path.
            ResourceKind::Registry => crate::model::image::ImageRef::parse(name).is_ok_and(|i| {
                matches!(i, crate::model::image::ImageRef::Registry(r)
                    if r.tag.is_none() && r.digest.is_none() && r.name() == name)
            }),
            // As `validate::volume_path` leaves it: relative components, none empty, `.` or `..`.
            ResourceKind::Volume => {
                !name.is_empty()
                    && name
                        .split('/')
                        .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
            }
        }
    }
}

/// The ARN of the resource of `kind` named `name` in `region` and `account`.
pub fn arn(region: &str, account: &str, kind: ResourceKind, name: &str) -> String {
    format!("arn:aws:batch:{region}:{account}:{}/{name}", kind.as_str())
}

/// The name `reference` (given in `field`) gives a resource of `kind`: the reference itself if it
/// is a name, or the name in it if it is one of our ARNs of that kind. Refuses an ARN of another
/// partition, service, region, account or kind, and anything that is not a well-formed name.
pub fn name<'a>(
    region: &str,
    account: &str,
    kind: ResourceKind,
    field: &str,
    reference: &'a str,
) -> Result<&'a str, ValidationError> {
    let name = if reference.starts_with("arn:") {
        let (found, name) = parse(region, account, field, reference)?;
        if found != kind {
            return Err(ValidationError {
                field: field.to_string(),
                problem: format!(
                    "{reference:?} is the ARN of a {}, not of a {}",
                    found.as_str(),
                    kind.as_str()
                ),
            });
        }
        name
    } else {
        reference
    };
    if !kind.admits(name) {
        return Err(ValidationError {
            field: field.to_string(),
            problem: format!(
                "{reference:?} is neither a {} name nor its ARN (arn:aws:batch:{region}:{account}:{}/NAME)",
                kind.as_str(),
                kind.as_str()
            ),
        });
    }
    Ok(name)
}

/// The kind and name of one of our ARNs; refuses any other ARN, and anything that is not one.
pub fn parse<'a>(
    region: &str,
    account: &str,
    field: &str,
    arn: &'a str,
) -> Result<(ResourceKind, &'a str), ValidationError> {
    let foreign = |why: &str| ValidationError {
        field: field.to_string(),
        problem: format!(
            "{arn:?} is not an ARN of this service ({why}); expected arn:aws:batch:{region}:{account}:<kind>/<name>"
        ),
    };
    let mut parts = arn.splitn(6, ':');
    let (
        Some("arn"),
        Some(partition),
        Some(service),
        Some(in_region),
        Some(of_account),
        Some(rest),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return Err(foreign("it does not have six parts"));
    };
    if partition != "aws" {
        return Err(foreign(&format!("partition {partition:?}")));
    }
    if service != "batch" {
        return Err(foreign(&format!("service {service:?}")));
    }
    if in_region != region {
        return Err(foreign(&format!("region {in_region:?}")));
    }
    if of_account != account {
        return Err(foreign(&format!("account {of_account:?}")));
    }
    let Some((kind, name)) = rest.split_once('/') else {
        return Err(foreign("no <kind>/<name>"));
    };
    let Some(kind) = ResourceKind::from_str(kind) else {
        return Err(foreign(&format!("unknown resource kind {kind:?}")));
    };
    if !kind.admits(name) {
        return Err(foreign(&format!(
            "{name:?} is not a {} name",
            kind.as_str()
        )));
    }
    Ok((kind, name))
}

/// The name in an ARN this service wrote itself (stored with a resource). Only for those: what a
/// caller gives goes through [`name`], which checks every part.
pub(crate) fn stored_name(kind: ResourceKind, arn: &str) -> &str {
    arn.split_once(&format!(":{}/", kind.as_str()))
        .map_or(arn, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::ResourceKind::{ComputeEnvironment, Job, JobDefinition, JobQueue, SchedulingPolicy};
    use super::*;

    const R: &str = "us-east-1";
    const A: &str = "000000000000";

    fn queue(reference: &str) -> Result<&str, ValidationError> {
        name(R, A, JobQueue, "jobQueue", reference)
    }

    #[test]
    fn names_and_our_arns_name_the_same_queue() {
        assert_eq!(queue("production"), Ok("production"));
        assert_eq!(
            queue("arn:aws:batch:us-east-1:000000000000:job-queue/production"),
            Ok("production")
        );
    }

    #[test]
    fn look_alike_arns_are_refused_not_resolved_by_their_last_segment() {
        for spelling in [
            "arn:aws-x:batch:us-east-1:000000000000:job-queue/production",
            "arn:aws-cn:batch:us-east-1:000000000000:job-queue/production",
            "arn:aws:ecs:us-east-1:000000000000:job-queue/production",
            "arn:aws:batch:eu-west-1:000000000000:job-queue/production",
            "arn:aws:batch:us-east-1:111111111111:job-queue/production",
            "arn:aws:batch:::job-queue/production",
            "arn::batch:us-east-1:000000000000:job-queue/production",
            "arn:AWS:batch:us-east-1:000000000000:job-queue/production",
            "arn:aws:BATCH:us-east-1:000000000000:job-queue/production",
            "arn:aws:batch:US-EAST-1:000000000000:job-queue/production",
            "ARN:aws:batch:us-east-1:000000000000:job-queue/production",
            "arn:aws:batch:us-east-1:000000000000:job-queue/production/",
            "arn:aws:batch:us-east-1:000000000000:job-queue/x/production",
            "arn:aws:batch:us-east-1:000000000000:job-queue/",
            "arn:aws:batch:us-east-1:000000000000:compute-environment/production",
            "arn:aws:batch:us-east-1:000000000000:JOB-QUEUE/production",
            "arn:aws:batch:us-east-1:000000000000:production",
            "arn:production",
            "production/",
            "",
            "x:job-queue/production",
        ] {
            let refused = queue(spelling).expect_err(spelling);
            assert_eq!(refused.field, "jobQueue", "{spelling}");
        }
    }

    #[test]
    fn definitions_and_jobs_carry_a_number_after_a_colon() {
        let def = |r| name(R, A, JobDefinition, "jobDefinition", r);
        assert_eq!(def("render:3"), Ok("render:3"));
        assert_eq!(
            def("arn:aws:batch:us-east-1:000000000000:job-definition/render:3"),
            Ok("render:3")
        );
        assert!(def("render:").is_err());
        assert!(def("render:x").is_err());
        assert!(def("arn:aws:batch:us-east-1:000000000000:job-definition/render:3:4").is_err());
        let job = |r| name(R, A, Job, "resourceArn", r);
        assert_eq!(
            job("arn:aws:batch:us-east-1:000000000000:job/6f1c-2a:7"),
            Ok("6f1c-2a:7")
        );
        assert!(name(R, A, ComputeEnvironment, "x", "a:1").is_err());
    }

    #[test]
    fn parse_tells_the_kind() {
        assert_eq!(
            parse(R, A, "f", "arn:aws:batch:us-east-1:000000000000:job/abc"),
            Ok((Job, "abc"))
        );
        assert_eq!(
            arn(R, A, JobQueue, "q"),
            "arn:aws:batch:us-east-1:000000000000:job-queue/q"
        );
        let policy = "arn:aws:batch:us-east-1:000000000000:scheduling-policy/fair";
        assert_eq!(parse(R, A, "arn", policy), Ok((SchedulingPolicy, "fair")));
        assert_eq!(arn(R, A, SchedulingPolicy, "fair"), policy);
        assert!(name(R, A, SchedulingPolicy, "arn", "fair:1").is_err());
        assert!(
            name(R, A, JobQueue, "jobQueue", policy).is_err(),
            "a policy's ARN is not a queue's"
        );
    }
}
