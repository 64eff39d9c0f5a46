//! Bad input over the HTTP face: every member of SubmitJob and RegisterJobDefinition (and the
//! job operations' ids) with a wrong JSON type, a huge or non-ASCII value, a number out of
//! range, too many elements or a reference to nothing. Each is refused with a ClientException
//! whose message names the member, and leaves the service as it was; the edges AWS allows pass.
//!
//! The compute environment is DISABLED, so nothing runs and the state only changes when a
//! request is accepted.

use axum::http::StatusCode;
use serde_json::{Value, json};
use wasmbatch_runtime::{Batch, BatchConfig};

/// 2^64, past every integer type: JSON can say it, `json!` cannot build it, so cases write
/// `"@2^64"` and it is put in the body as a number.
const TOO_BIG: &str = "18446744073709551616";

/// A job id no job has.
const UNKNOWN_ID: &str = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";

/// A service with queue `main` on a DISABLED environment, definitions `hello` and `retired`
/// (deregistered), a job `first` and a two-child array `pair`.
struct Service {
    batch: Batch,
    first: String,
    pair: String,
    _dir: tempfile::TempDir,
}

async fn service() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::local_queue(&batch, 2, "DISABLED").await;
    for name in ["hello", "retired"] {
        let definition = json!({"jobDefinitionName": name, "type": "container",
            "containerProperties": {"image": "hello", "command": ["Ref::who"]},
            "parameters": {"who": "world"}});
        ok(&batch, "registerjobdefinition", definition).await;
    }
    let retired = json!({"jobDefinition": "retired:1"});
    ok(&batch, "deregisterjobdefinition", retired).await;
    let first = submitted(&batch, json!({"jobName": "first"})).await;
    let array = json!({"jobName": "pair", "arrayProperties": {"size": 2}});
    let pair = submitted(&batch, array).await;
    Service {
        batch,
        first,
        pair,
        _dir: dir,
    }
}

/// POST /v1/`operation`: the status, `x-amzn-ErrorType`, and the body (as a JSON string if it
/// is not JSON, so that a plain-text answer shows in a failure).
async fn call(batch: &Batch, operation: &str, body: String) -> (StatusCode, Option<String>, Value) {
    let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());
    wasmbatch_tests::router::answer(&app, wasmbatch_tests::router::post(operation, body)).await
}

async fn ok(batch: &Batch, operation: &str, body: impl ToString) -> Value {
    let (status, _, reply) = call(batch, operation, body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{operation}: {reply}");
    reply
}

/// SubmitJob with `members` over a valid body: it must be accepted; the job's id.
async fn submitted(batch: &Batch, members: Value) -> String {
    let reply = ok(batch, "submitjob", submit(members)).await;
    reply["jobId"].as_str().unwrap().to_string()
}

/// A valid SubmitJob body with `members` put over it.
fn submit(members: Value) -> String {
    text(&over(job(), &members))
}

/// A valid RegisterJobDefinition body with `members` put over it.
fn register(members: Value) -> String {
    text(&over(definition(), &members))
}

/// A valid SubmitJob request.
fn job() -> Value {
    json!({"jobName": "j", "jobQueue": "main", "jobDefinition": "hello"})
}

/// A valid RegisterJobDefinition request.
fn definition() -> Value {
    json!({"jobDefinitionName": "d", "type": "container",
           "containerProperties": {"image": "hello"}})
}

fn over(mut base: Value, members: &Value) -> Value {
    for (key, value) in members.as_object().unwrap() {
        base[key] = value.clone();
    }
    base
}

fn text(body: &Value) -> String {
    body.to_string().replace("\"@2^64\"", TOO_BIG)
}

/// Request bodies for one operation, each with what its refusal must name.
struct Cases {
    base: Value,
    bodies: Vec<(String, String)>,
}

impl Cases {
    fn over(base: Value) -> Self {
        Cases {
            base,
            bodies: Vec::new(),
        }
    }

    /// Each of `values` (a JSON list) at the dotted `path` of the base, named by `path`.
    fn at(&mut self, path: &str, values: Value) {
        self.at_naming(path, values, path);
    }

    /// Each of `values` at `path`, named by `named` (a path within it, say).
    fn at_naming(&mut self, path: &str, values: Value, named: &str) {
        for value in values.as_array().unwrap() {
            let mut body = self.base.clone();
            let mut slot = &mut body;
            for member in path.split('.') {
                slot = &mut slot[member];
            }
            *slot = value.clone();
            self.bodies.push((text(&body), named.to_string()));
        }
    }

    /// `members` put over the base, named by `named`.
    fn with(&mut self, members: Value, named: &str) {
        let body = over(self.base.clone(), &members);
        self.bodies.push((text(&body), named.to_string()));
    }

    /// `body` as it is, named by `named`.
    fn raw(&mut self, body: impl Into<String>, named: &str) {
        self.bodies.push((body.into(), named.to_string()));
    }

    /// Sends every body; each must be refused with a ClientException whose message contains
    /// what it names, and leave what a caller can see as it was. Fails listing every case that
    /// was not.
    async fn all_refused(&self, service: &Service, operation: &str) {
        let mut wrong = Vec::new();
        for (body, named) in &self.bodies {
            let before = snapshot(service).await;
            let (status, kind, reply) = call(&service.batch, operation, body.clone()).await;
            let after = snapshot(service).await;
            let message = reply["message"].as_str().unwrap_or_default();
            let shown = |text: &str| text.chars().take(200).collect::<String>();
            let case = format!("{operation} {}", shown(body));
            if status != StatusCode::BAD_REQUEST || kind.as_deref() != Some("ClientException") {
                wrong.push(format!(
                    "{case}: {status} {kind:?} {}",
                    shown(&reply.to_string())
                ));
            } else if !message.contains(named.as_str()) {
                wrong.push(format!(
                    "{case}: the message does not name {named:?}: {}",
                    shown(message)
                ));
            } else if before != after {
                wrong.push(format!("{case}: refused, yet the state changed"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} cases were not refused as they should be:\n{}",
            wrong.len(),
            self.bodies.len(),
            wrong.join("\n")
        );
    }
}

/// What a caller can see of the service: the queue's jobs in every status, the array's
/// children, the jobs described, every definition, queue and environment.
async fn snapshot(service: &Service) -> Value {
    let batch = &service.batch;
    let mut jobs = Vec::new();
    for status in [
        "SUBMITTED",
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
    ] {
        let list = json!({"jobQueue": "main", "jobStatus": status, "maxResults": 1000});
        jobs.push(ok(batch, "listjobs", list).await);
    }
    let described = json!({"jobs": [service.first, service.pair]});
    let children = json!({"arrayJobId": service.pair, "jobStatus": "RUNNABLE"});
    json!({
        "jobs": jobs,
        "described": ok(batch, "describejobs", described).await,
        "children": ok(batch, "listjobs", children).await,
        "definitions": ok(batch, "describejobdefinitions", json!({})).await,
        "queues": ok(batch, "describejobqueues", json!({})).await,
        "environments": ok(batch, "describecomputeenvironments", json!({})).await,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_job_refuses_every_bad_member_and_changes_nothing() {
    let service = service().await;
    let (first, pair) = (service.first.as_str(), service.pair.as_str());
    let mib = "x".repeat(1 << 20);
    let mut cases = Cases::over(job());
    // Names: the type, the length (1 to 128) and the characters ([A-Za-z0-9_-], and a jobName
    // starts with a letter or a digit).
    cases.at("jobName", json!([5, null, ["j"], {}]));
    cases.at(
        "jobName",
        json!(["", "n".repeat(129), "n".repeat(20 << 10)]),
    );
    cases.at(
        "jobName",
        json!(["jób", "job🚀", "ｊｏｂ", "job\u{202e}gnp", "job\u{200f}"]),
    );
    cases.at(
        "jobName",
        json!(["job\u{0}", "job\n", "job name", "-job", "_job"]),
    );
    // Queues and definitions: the type, and references to nothing.
    cases.at("jobQueue", json!([7, null, true]));
    cases.with(json!({"jobQueue": "nope"}), "job queue nope does not exist");
    // What cannot be a name is refused as such, before anything is looked up.
    for not_a_name in ["fila-ção".to_string(), "q".repeat(129)] {
        cases.with(json!({"jobQueue": not_a_name}), "jobQueue: \"");
    }
    let arn = "arn:aws:batch:us-east-1:000000000000:job-queue/nope";
    cases.with(json!({"jobQueue": arn}), "does not exist");
    let foreign = "arn:aws:batch:eu-west-1:000000000000:job-queue/main";
    cases.with(
        json!({"jobQueue": foreign}),
        "is not an ARN of this service (region \"eu-west-1\")",
    );
    cases.at("jobDefinition", json!([false, null, 1.5]));
    for missing in ["nope", "hello:2", "hello:0", "retired"] {
        let named = format!("job definition {missing} does not exist");
        cases.with(json!({"jobDefinition": missing}), &named);
    }
    for not_a_name in ["hello:-1", "héllo"] {
        let named = format!("jobDefinition: {not_a_name:?} is neither a job-definition name");
        cases.with(json!({"jobDefinition": not_a_name}), &named);
    }
    let past_revisions = format!("hello:{TOO_BIG}");
    cases.with(json!({"jobDefinition": past_revisions}), "does not exist");
    cases.with(json!({"jobDefinition": "retired:1"}), "jobDefinition: ");
    // arrayProperties.size: 2 to 10,000.
    cases.at("arrayProperties", json!([4, [4], "4"]));
    cases.at("arrayProperties.size", json!(["4", 4.5, 1000.0, true]));
    let sizes = json!([0, 1, 10_001, -1, 2_147_483_648u64, "@2^64"]);
    cases.at("arrayProperties.size", sizes);
    // dependsOn: at most 20, each a job that exists, so submitted before this one (a job cannot
    // name itself or a later job, whose ids do not exist yet).
    cases.at(
        "dependsOn",
        json!([{"jobId": first}, first, vec![json!({"jobId": first}); 21]]),
    );
    cases.with(json!({"dependsOn": [first]}), "dependsOn[0]");
    let missing_child = format!("{pair}:2");
    let ids = json!([5, null, "", UNKNOWN_ID, "not a job id!", missing_child]);
    for id in ids.as_array().unwrap() {
        cases.at_naming("dependsOn", json!([[{"jobId": id}]]), "dependsOn[0].jobId");
    }
    let second_unknown = json!([{"jobId": first}, {"jobId": UNKNOWN_ID}]);
    cases.with(json!({"dependsOn": second_unknown}), "dependsOn[1].jobId");
    for kind in [json!("ALL"), json!(3), json!("n_to_n")] {
        let dependency = json!([[{"jobId": first, "type": kind}]]);
        cases.at_naming("dependsOn", dependency, "dependsOn[0].type");
    }
    // SEQUENTIAL and N_TO_N are for arrays, N_TO_N of the same size.
    cases.with(
        json!({"dependsOn": [{"type": "SEQUENTIAL"}]}),
        "dependsOn[0].type",
    );
    cases.with(
        json!({"dependsOn": [{"jobId": pair, "type": "N_TO_N"}]}),
        "dependsOn[0].type",
    );
    let three =
        json!({"dependsOn": [{"jobId": pair, "type": "N_TO_N"}], "arrayProperties": {"size": 3}});
    cases.with(three, "dependsOn[0].type");
    // parameters: names and values that are strings, without NUL.
    cases.at("parameters", json!([["who"], "who=me", 5]));
    cases.at("parameters.who", json!([1, null, false, "a\u{0}"]));
    // containerOverrides.
    cases.at("containerOverrides", json!([[], "cmd", 1]));
    cases.at("containerOverrides.command", json!(["echo hi", {"0": "a"}]));
    let command = "containerOverrides.command";
    cases.at_naming(
        command,
        json!([[1], [null], ["a\u{0}b"]]),
        "containerOverrides.command[0]",
    );
    cases.at_naming(command, json!([["a", ""]]), "containerOverrides.command[1]");
    cases.at("containerOverrides.environment", json!([{"A": "1"}, "A=1"]));
    let environment = "containerOverrides.environment";
    let names = json!([[{"name": 1}], [{"value": "1"}], [{"name": ""}], [{"name": "A=B"}],
                       [{"name": "AWS_BATCH_JOB_ID"}], [{"name": "A\u{0}"}]]);
    cases.at_naming(environment, names, "containerOverrides.environment[0].name");
    let values = json!([[{"name": "A", "value": 1}], [{"name": "A", "value": "1\u{0}"}]]);
    cases.at_naming(
        environment,
        values,
        "containerOverrides.environment[0].value",
    );
    let requirements = "containerOverrides.resourceRequirements";
    cases.at(
        requirements,
        json!([{"type": "VCPU", "value": "1"}, "VCPU=1"]),
    );
    for (requirement, named) in [
        (json!({"type": "VCPU", "value": 1}), "[0].value"),
        (json!({"type": 1, "value": "1"}), "[0].type"),
        (json!({"type": "VCPU"}), "[0]"),
        (json!({"type": "GPU", "value": "1"}), "[0].type"),
        (json!({"type": "DISK", "value": "1"}), "[0].type"),
        (json!({"type": "MEMORY", "value": "99999999"}), ""),
    ] {
        let named = format!("{requirements}{named}");
        cases.with(
            json!({"containerOverrides": {"resourceRequirements": [requirement]}}),
            &named,
        );
    }
    for (kind, value) in [
        ("VCPU", "0"),
        ("VCPU", "-1"),
        ("VCPU", "NaN"),
        ("VCPU", "inf"),
        ("VCPU", "1e400"),
        ("VCPU", "one"),
        ("MEMORY", "0"),
        ("MEMORY", "1.5"),
        ("MEMORY", TOO_BIG),
        ("FUEL", "0"),
        ("FUEL", "-5"),
    ] {
        let requirement = json!({"type": kind, "value": value});
        let overrides = json!({"containerOverrides": {"resourceRequirements": [requirement]}});
        cases.with(overrides, &format!("{requirements}[0].value"));
    }
    let twice = json!([{"type": "VCPU", "value": "1"}, {"type": "VCPU", "value": "2"}]);
    cases.with(
        json!({"containerOverrides": {"resourceRequirements": twice}}),
        &format!("{requirements}[1].type"),
    );
    // Members AWS defines that wasmbatch keeps without using: still of their type.
    cases.at("containerOverrides.vcpus", json!(["two", 1.5, 0, -2]));
    cases.at("containerOverrides.memory", json!([[128], "@2^64"]));
    cases.at("containerOverrides.instanceType", json!([5]));
    // retryStrategy: attempts 1 to 10; up to 5 evaluateOnExit entries, which need attempts.
    cases.at("retryStrategy", json!([3, [3], "3"]));
    cases.at(
        "retryStrategy.attempts",
        json!(["3", 2.5, 0, 11, -1, "@2^64"]),
    );
    cases.with(
        json!({"retryStrategy": {"attempts": 2, "evaluateOnExit": {"action": "EXIT"}}}),
        "retryStrategy.evaluateOnExit",
    );
    let exit = json!({"action": "EXIT", "onExitCode": "1"});
    cases.with(
        json!({"retryStrategy": {"evaluateOnExit": [exit]}}),
        "retryStrategy.attempts",
    );
    let six = vec![exit.clone(); 6];
    cases.with(
        json!({"retryStrategy": {"attempts": 2, "evaluateOnExit": six}}),
        "retryStrategy.evaluateOnExit",
    );
    for (entry, named) in [
        (json!({"onExitCode": "1"}), ""),
        (json!({"action": "MAYBE", "onExitCode": "1"}), ".action"),
        (json!({"action": 1, "onExitCode": "1"}), ".action"),
        (json!({"action": "EXIT", "onExitCode": 1}), ".onExitCode"),
        (json!({"action": "EXIT", "onExitCode": "1x"}), ".onExitCode"),
        (
            json!({"action": "EXIT", "onReason": "ünïcode"}),
            ".onReason",
        ),
        (
            json!({"action": "EXIT", "onStatusReason": "r".repeat(513)}),
            ".onStatusReason",
        ),
        (json!({"action": "EXIT"}), ".onExitCode"),
    ] {
        let named = format!("retryStrategy.evaluateOnExit[0]{named}");
        cases.with(
            json!({"retryStrategy": {"attempts": 2, "evaluateOnExit": [entry]}}),
            &named,
        );
    }
    // timeout.attemptDurationSeconds: at least 1.
    cases.at("timeout", json!([60, "60"]));
    cases.at(
        "timeout.attemptDurationSeconds",
        json!(["60", 0, -60, 1.5, "@2^64"]),
    );
    // tags: at most 50, keys of 1 to 128 characters not starting with aws:, values up to 256.
    cases.at("tags", json!([["team"], "team=a"]));
    cases.at("tags.team", json!([1, null, ["a"]]));
    let fifty_one: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    for tags in [
        json!({"": "x"}),
        json!({"aws:team": "x"}),
        json!({"k".repeat(129): "x"}),
        json!({"team": "v".repeat(257)}),
        json!(fifty_one),
    ] {
        cases.with(json!({"tags": tags}), "tags");
    }
    cases.at("propagateTags", json!(["true", 1, []]));
    // Fair share: types and ranges, and no share identifier on a queue without a policy.
    cases.at(
        "shareIdentifier",
        json!([5, "teamA", "team a", "t".repeat(256)]),
    );
    cases.at(
        "schedulingPriorityOverride",
        json!(["high", -1, 10_000, 2.5]),
    );
    // What the model defines for kinds of job wasmbatch does not run.
    cases.at("nodeOverrides", json!([{"numNodes": 2}, "x"]));
    cases.at("ecsPropertiesOverride", json!([{}]));
    cases.at("eksPropertiesOverride", json!([{}]));
    cases.at("consumableResourcePropertiesOverride", json!([{}]));
    // Members AWS does not define, missing members, bodies that are not a request.
    cases.with(json!({"jobname": "j"}), "unknown member \"jobname\"");
    cases.raw("{}", "jobName");
    cases.raw("[]", "SubmitJob");
    cases.raw("{\"jobName\": \"j\",", "not valid JSON");
    cases.raw("\u{0}", "not valid JSON");
    // Payloads past AWS's 30 KiB, a little and by far.
    cases.with(
        json!({"parameters": {"who": "x".repeat(31 << 10)}}),
        "the limit is 30720",
    );
    cases.with(
        json!({"containerOverrides": {"command": [mib]}}),
        "the limit is 30720",
    );
    cases.raw(format!("{{\"jobName\": \"{mib}\"}}"), "the limit is 30720");
    cases.all_refused(&service, "submitjob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_job_definition_refuses_every_bad_member_and_changes_nothing() {
    let service = service().await;
    let mut cases = Cases::over(definition());
    cases.at(
        "jobDefinitionName",
        json!([5, null, "", "d".repeat(129), "d".repeat(20 << 10)]),
    );
    cases.at(
        "jobDefinitionName",
        json!([
            "défini",
            "def🚀",
            "def\u{200f}",
            "def\u{7}",
            "d:1",
            "d/e",
            "d e"
        ]),
    );
    cases.at("type", json!([5, null, "multinode", "CONTAINER", "docker"]));
    cases.at("parameters", json!([["a"], "a=b"]));
    cases.at("parameters.a", json!([1, "\u{0}"]));
    // containerProperties: the module to run, its command, environment and resources.
    cases.at(
        "containerProperties",
        json!([null, "hello", [{"image": "hello"}]]),
    );
    let image = [
        "",
        "hel lo",
        "héllo",
        "hello:.latest",
        "hello:a:b",
        "hello@sha256:xyz",
        "../hello",
        "library/hello",
        "Registry.example.com/Hello",
    ];
    cases.at(
        "containerProperties.image",
        json!([5, null, image, "i".repeat(300)]),
    );
    for image in image {
        cases.at("containerProperties.image", json!([image]));
    }
    cases.at(
        "containerProperties.command",
        json!(["echo hi", {"0": "a"}]),
    );
    // The deprecated members AWS still reads.
    cases.at("containerProperties.vcpus", json!([0, -1, 1.5, "2", null]));
    cases.at("containerProperties.memory", json!([0, "64", 1_u64 << 40]));
    let command = "containerProperties.command";
    cases.at_naming(
        command,
        json!([[1], [null], ["a\u{0}"]]),
        "containerProperties.command[0]",
    );
    cases.at("containerProperties.environment", json!([{"A": "1"}]));
    let environment = "containerProperties.environment";
    let names = json!([[{"name": 5}], [{"name": ""}], [{"name": "AWS_BATCH_X"}]]);
    cases.at_naming(
        environment,
        names,
        "containerProperties.environment[0].name",
    );
    let values = json!([[{"name": "A", "value": "\u{0}"}]]);
    cases.at_naming(
        environment,
        values,
        "containerProperties.environment[0].value",
    );
    cases.at(
        "containerProperties.resourceRequirements",
        json!(["VCPU=1"]),
    );
    for (kind, value, named) in [
        ("MEMORY", "0", "value"),
        ("MEMORY", "99999999", "value"),
        ("VCPU", "-2", "value"),
        ("FUEL", "lots", "value"),
        ("GPU", "1", "type"),
    ] {
        let properties =
            json!({"image": "hello", "resourceRequirements": [{"type": kind, "value": value}]});
        let named = format!("containerProperties.resourceRequirements[0].{named}");
        cases.with(json!({"containerProperties": properties}), &named);
    }
    // Members AWS defines that wasmbatch keeps without using: still of their type.
    cases.at("containerProperties.vcpus", json!(["1", 0.5]));
    cases.at("containerProperties.jobRoleArn", json!([5]));
    cases.at("containerProperties.ulimits", json!(["nofile", [5]]));
    cases.at("containerProperties.privileged", json!(["yes"]));
    cases.at("containerProperties.linuxParameters", json!([[]]));
    // Volumes are host directories under the volume root, mounted at absolute guest paths.
    let volumes = "containerProperties.volumes";
    let host = |name: &str, path: Value| json!({"name": name, "host": {"sourcePath": path}});
    cases.at(volumes, json!([{"name": "v"}, "v"]));
    let source = "containerProperties.volumes[0].host.sourcePath";
    for path in [
        json!(null),
        json!(5),
        json!("../etc"),
        json!("/"),
        json!("a\u{0}b"),
    ] {
        cases.at_naming(volumes, json!([[host("v", path)]]), source);
    }
    let long = json!([[host(&"v".repeat(256), json!("d"))]]);
    cases.at_naming(volumes, long, "containerProperties.volumes[0].name");
    let twice = json!([[host("v", json!("d")), host("v", json!("e"))]]);
    cases.at_naming(volumes, twice, "containerProperties.volumes[1].name");
    let efs = json!([[{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]]);
    let efs_named = "containerProperties.volumes[0].efsVolumeConfiguration";
    cases.at_naming(volumes, efs, efs_named);
    let mounted = |mount: Value| {
        json!({"containerProperties": {"image": "hello", "volumes": [host("v", json!("data"))],
                                       "mountPoints": [mount]}})
    };
    let nowhere = json!({"sourceVolume": "nope", "containerPath": "/data"});
    cases.with(
        mounted(nowhere),
        "containerProperties.mountPoints[0].sourceVolume",
    );
    for path in ["data", "/", "/scratch", "/scratch/", "/data/../etc", ""] {
        let mount = json!({"sourceVolume": "v", "containerPath": path});
        cases.with(
            mounted(mount),
            "containerProperties.mountPoints[0].containerPath",
        );
    }
    let read_only = json!({"sourceVolume": "v", "containerPath": "/d", "readOnly": "yes"});
    cases.with(
        mounted(read_only),
        "containerProperties.mountPoints[0].readOnly",
    );
    cases.at(
        "containerProperties.mountPoints",
        json!([{"sourceVolume": "v"}]),
    );
    // Retries, timeout, tags, fair share.
    cases.at("retryStrategy", json!([[3], 3]));
    cases.at("retryStrategy.attempts", json!([0, 11, "2", "@2^64"]));
    let no_condition = json!({"attempts": 2, "evaluateOnExit": [{"action": "RETRY"}]});
    cases.with(
        json!({"retryStrategy": no_condition}),
        "retryStrategy.evaluateOnExit[0]",
    );
    cases.at("timeout", json!(["60", [60]]));
    cases.at(
        "timeout.attemptDurationSeconds",
        json!([0, -1, "60", "@2^64"]),
    );
    cases.at("tags", json!([["a"]]));
    cases.at("tags.team", json!([1]));
    for tags in [
        json!({"aws:x": "1"}),
        json!({"k".repeat(129): "1"}),
        json!({"k": "v".repeat(257)}),
    ] {
        cases.with(json!({"tags": tags}), "tags");
    }
    cases.at("propagateTags", json!(["no"]));
    cases.at("schedulingPriority", json!(["high", -1, 10_000]));
    cases.at("platformCapabilities", json!(["EC2", {"EC2": true}]));
    cases.with(
        json!({"platformCapabilities": [1]}),
        "platformCapabilities[0]",
    );
    // What the model defines for kinds of job wasmbatch does not run.
    cases.at("nodeProperties", json!([{"numNodes": 2}]));
    cases.at("ecsProperties", json!([{}]));
    cases.at("eksProperties", json!([{}]));
    cases.at("consumableResourceProperties", json!([{}]));
    // Missing members, and payloads past AWS's 24 KiB.
    cases.raw("{}", "jobDefinitionName");
    cases.raw("{\"jobDefinitionName\": \"d\"}", "type");
    cases.with(
        json!({"parameters": {"a": "x".repeat(25 << 10)}}),
        "the limit is 24576",
    );
    let mib = "x".repeat(1 << 20);
    cases.raw(
        format!("{{\"jobDefinitionName\": \"{mib}\"}}"),
        "the limit is 24576",
    );
    cases.all_refused(&service, "registerjobdefinition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_operations_refuse_unknown_ids_and_wrong_types() {
    let service = service().await;
    let first = service.first.as_str();
    let mut describe = Cases::over(json!({"jobs": [first]}));
    describe.at("jobs", json!([first, null, {"0": first}, vec![first; 101]]));
    describe.with(json!({"jobs": [5]}), "jobs[0]");
    describe.raw("{}", "jobs");
    describe.all_refused(&service, "describejobs").await;

    for operation in ["canceljob", "terminatejob"] {
        let mut stop = Cases::over(json!({"jobId": first, "reason": "r"}));
        stop.with(
            json!({"jobId": UNKNOWN_ID}),
            &format!("job {UNKNOWN_ID} does not exist"),
        );
        stop.with(
            json!({"jobId": "not a job!"}),
            "job not a job! does not exist",
        );
        stop.with(
            json!({"jobId": format!("{}:7", service.pair)}),
            "does not exist",
        );
        stop.at("jobId", json!(["", 5, [first], null]));
        stop.at("reason", json!(["", 5, null, "r".repeat(1025)]));
        stop.raw(json!({"reason": "r"}).to_string(), "jobId");
        stop.raw(json!({"jobId": first}).to_string(), "reason");
        stop.with(json!({"reason": "r".repeat(1 << 20)}), "the limit is 65536");
        stop.all_refused(&service, operation).await;
    }

    // The bulk forms refuse a bad request whole; ids that name no job are not a mistake.
    for operation in ["canceljobs", "terminatejobs"] {
        let mut stop = Cases::over(json!({"jobs": [first], "reason": "r"}));
        stop.at(
            "jobs",
            json!([first, [], [5], [null], vec![first; 51], [first, ""]]),
        );
        stop.at("reason", json!(["", 5, null, "r".repeat(1025)]));
        stop.raw(json!({"reason": "r"}).to_string(), "jobs");
        stop.raw(json!({"jobs": [first]}).to_string(), "reason");
        stop.with(json!({"jobId": first}), "jobId");
        stop.all_refused(&service, operation).await;
    }

    let mut list = Cases::over(json!({"jobQueue": "main"}));
    list.with(json!({"jobQueue": "nope"}), "job queue nope does not exist");
    list.at("jobQueue", json!([5, ["main"]]));
    list.raw(json!({"arrayJobId": UNKNOWN_ID}).to_string(), UNKNOWN_ID);
    list.raw(json!({"arrayJobId": first}).to_string(), first);
    list.with(json!({"arrayJobId": service.pair}), "jobQueue");
    list.raw("{}", "jobQueue");
    list.at("jobStatus", json!(["DONE", "runnable", 3]));
    list.at("maxResults", json!([0, -1, "10", 1001, 2.5, "@2^64"]));
    list.at("nextToken", json!(["abc", 5, "-1"]));
    list.at("filters", json!([{"name": "JOB_NAME"}, "JOB_NAME"]));
    let filter = |name: &str, values: Value| json!({"filters": [{"name": name, "values": values}]});
    list.with(filter("JOB_NAME", json!("x")), "filters[0].values");
    list.with(filter("JOB_NAME", json!([])), "filters[0].values");
    list.with(filter("COLOUR", json!(["x"])), "filters[0].name");
    list.with(
        filter("BEFORE_CREATED_AT", json!(["noon"])),
        "filters[0].values",
    );
    let by_name = |value: &str| json!({"name": "JOB_NAME", "values": [value]});
    list.with(json!({"filters": [by_name("a"), by_name("b")]}), "filters");
    list.all_refused(&service, "listjobs").await;

    // Ids that name no job are left out of DescribeJobs, as AWS does; not an error.
    let described = ok(
        &service.batch,
        "describejobs",
        json!({"jobs": [UNKNOWN_ID, "", "ünï"]}),
    )
    .await;
    assert_eq!(described["jobs"], json!([]));
}

/// The edges AWS allows are accepted, and what was sent is what is described.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_values_aws_allows_are_accepted() {
    let service = service().await;
    let batch = &service.batch;
    let (first, pair) = (service.first.as_str(), service.pair.as_str());
    let name = "n".repeat(128);
    let definition = register(json!({"jobDefinitionName": name}));
    ok(batch, "registerjobdefinition", definition).await;
    let long = submitted(batch, json!({"jobName": name, "jobDefinition": name})).await;
    let command = json!(["olá", "🚀", "\u{202e}", "a b"]);
    let unicode = json!({"jobName": "9", "parameters": {"who": "wörld"}, "tags": {"équipe": "🚀"},
        "containerOverrides": {"command": command,
                               "environment": [{"name": "GREETING", "value": "ça va? 👋"}]}});
    let unicode = submitted(batch, unicode).await;
    let described = ok(batch, "describejobs", json!({"jobs": [long, unicode]})).await;
    assert_eq!(described["jobs"][0]["jobName"], name.as_str());
    let job = &described["jobs"][1];
    assert_eq!(job["container"]["command"], command);
    assert_eq!(job["container"]["environment"][0]["value"], "ça va? 👋");
    assert_eq!(job["tags"], json!({"équipe": "🚀"}));

    // Twenty dependencies; the same one twice and an array child; the smallest and the
    // largest arrays.
    submitted(
        batch,
        json!({"dependsOn": vec![json!({"jobId": first}); 20]}),
    )
    .await;
    let twice = json!([{"jobId": first}, {"jobId": first}, {"jobId": format!("{pair}:1")}]);
    submitted(batch, json!({"dependsOn": twice})).await;
    let in_step = json!([{"jobId": pair, "type": "N_TO_N"}, {"type": "SEQUENTIAL"}]);
    submitted(
        batch,
        json!({"arrayProperties": {"size": 2}, "dependsOn": in_step}),
    )
    .await;
    let big = submitted(batch, json!({"arrayProperties": {"size": 10_000}})).await;
    let children = json!({"arrayJobId": big, "jobStatus": "RUNNABLE", "maxResults": 1000});
    let children = ok(batch, "listjobs", children).await;
    assert_eq!(children["jobSummaryList"].as_array().unwrap().len(), 1000);
    assert!(children["nextToken"].is_string(), "more than a page");

    // The longest tag; fair-share members within their ranges: a policy at its edges, and a
    // share identifier on a queue with it.
    let tags = json!({"k".repeat(128): "v".repeat(256)});
    submitted(
        batch,
        json!({"schedulingPriorityOverride": 9999, "tags": tags}),
    )
    .await;
    let policy = json!({"name": "fair", "fairsharePolicy": {"shareDecaySeconds": 604_800,
        "computeReservation": 99, "shareDistribution": [
            {"shareIdentifier": "teamA*", "weightFactor": 0.0001},
            {"shareIdentifier": "x".repeat(255), "weightFactor": 999.9999}]}});
    ok(batch, "createschedulingpolicy", policy).await;
    let fair = json!({"jobQueueName": "fair", "priority": 1,
        "schedulingPolicyArn": "arn:aws:batch:us-east-1:000000000000:scheduling-policy/fair",
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]});
    ok(batch, "createjobqueue", fair).await;
    let share = json!({"jobQueue": "fair", "shareIdentifier": "teamA*",
                       "schedulingPriorityOverride": 0});
    submitted(batch, share).await;
    let priority = json!({"schedulingPriority": 0, "platformCapabilities": ["EC2"]});
    ok(batch, "registerjobdefinition", register(priority)).await;

    // Just under the payload limits.
    submitted(batch, json!({"parameters": {"who": "x".repeat(29 << 10)}})).await;
    let large = register(json!({"parameters": {"who": "x".repeat(23 << 10)}}));
    ok(batch, "registerjobdefinition", large).await;
}
