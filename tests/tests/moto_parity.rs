//! What moto's AWS Batch suite found missing, asserted as its tests assert it, through boto3
//! against a server on a socket: job definitions as users already write them (`busybox:latest`,
//! the deprecated `vcpus`/`memory`), the effective `vcpus`/`memory` on a job's container, `tags`
//! on every job and definition (`{}` when none), an `ecsClusterArn` on every compute
//! environment, and UpdateComputeEnvironment taking `serviceRole`.

use std::process::Command;

use serde_json::Value;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::guests;

const SCRIPT: &str = r#"
import json, sys, time
import boto3, botocore
batch = boto3.client("batch", endpoint_url=sys.argv[1])
out = {}
role1 = "arn:aws:iam::000000000000:role/batch-one"
role2 = "arn:aws:iam::000000000000:role/service-role/batch-two"
batch.create_compute_environment(
    computeEnvironmentName="managed", type="MANAGED", state="ENABLED", serviceRole=role1,
    computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 4, "instanceTypes": ["optimal"],
                      "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"],
                      "instanceRole": "ecsInstanceRole"})
batch.create_compute_environment(computeEnvironmentName="unmanaged", type="UNMANAGED")
envs = {e["computeEnvironmentName"]: e
        for e in batch.describe_compute_environments()["computeEnvironments"]}
again = {e["computeEnvironmentName"]: e
         for e in batch.describe_compute_environments()["computeEnvironments"]}
out["clusters"] = {n: e.get("ecsClusterArn") for n, e in envs.items()}
out["clusters_stable"] = all(again[n].get("ecsClusterArn") == c for n, c in out["clusters"].items())
batch.update_compute_environment(computeEnvironment="managed", serviceRole=role2)
out["role"] = batch.describe_compute_environments(
    computeEnvironments=["managed"])["computeEnvironments"][0].get("serviceRole")
try:
    batch.update_compute_environment(computeEnvironment="managed", serviceRole="not a role!")
    out["bad_role"] = "accepted"
except botocore.exceptions.ClientError as e:
    out["bad_role"] = e.response["Error"]["Message"]
out["role_after_bad"] = batch.describe_compute_environments(
    computeEnvironments=["managed"])["computeEnvironments"][0].get("serviceRole")

batch.create_job_queue(jobQueueName="q", state="ENABLED", priority=1,
                       computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "managed"}])
plain = batch.register_job_definition(
    jobDefinitionName="sleep10", type="container",
    containerProperties={"image": "busybox:latest", "vcpus": 1, "memory": 128,
                         "command": ["ola"]})
tagged = batch.register_job_definition(
    jobDefinitionName="tagged", type="container", tags={"foo": "123", "bar": "456"},
    containerProperties={"image": "busybox", "command": ["x"],
                         "resourceRequirements": [{"type": "VCPU", "value": "0.25"},
                                                  {"type": "MEMORY", "value": "64"}]})
defs = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions()["jobDefinitions"]}
out["def_tags"] = {n: d.get("tags") for n, d in defs.items()}
out["def_tags_listed"] = batch.list_tags_for_resource(
    resourceArn=tagged["jobDefinitionArn"])["tags"]

def finish(job_id):
    for _ in range(500):
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job
        time.sleep(0.02)
    raise SystemExit("job %s did not end" % job_id)

untagged = batch.submit_job(jobName="untagged", jobQueue="q", jobDefinition="sleep10")
over = batch.submit_job(jobName="over", jobQueue="q", jobDefinition="sleep10",
                        tags={"tag1": "value1", "tag2": "value2"},
                        containerOverrides={"vcpus": 2, "memory": 256})
quarter = batch.submit_job(jobName="quarter", jobQueue="q", jobDefinition="tagged")
jobs = {n: finish(j["jobId"]) for n, j in
        [("untagged", untagged), ("over", over), ("quarter", quarter)]}
out["jobs"] = {n: {"status": j["status"], "tags": j.get("tags"),
                   "vcpus": j["container"].get("vcpus"), "memory": j["container"].get("memory"),
                   "image": j["container"].get("image")}
               for n, j in jobs.items()}
batch.tag_resource(resourceArn=over["jobArn"], tags={"tag3": "value3"})
batch.untag_resource(resourceArn=over["jobArn"], tagKeys=["tag2"])
out["job_tags_after"] = batch.describe_jobs(jobs=[over["jobId"]])["jobs"][0]["tags"]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_motos_suite_found_missing_is_reported_as_aws_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    // Definitions users already have name `busybox:latest`: a module pushed under that name.
    batch
        .push_module("busybox", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch,
        wasmbatch_api::Access::local(),
        std::future::pending(),
    ));
    let python = std::env::var("WASMBATCH_PYTHON").expect(
        "WASMBATCH_PYTHON is not set: run the suite with scripts/test, which installs boto3",
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(["-c", SCRIPT, &endpoint])
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap_or_else(|e| panic!("running {python}: {e}"))
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    for env in ["managed", "unmanaged"] {
        assert_eq!(
            out["clusters"][env],
            format!("arn:aws:ecs:us-east-1:000000000000:cluster/{env}_Batch"),
            "{out}"
        );
    }
    assert_eq!(out["clusters_stable"], true);
    assert_eq!(
        out["role"], "arn:aws:iam::000000000000:role/service-role/batch-two",
        "UpdateComputeEnvironment takes serviceRole"
    );
    let bad = out["bad_role"].as_str().unwrap();
    assert!(
        bad.contains("serviceRole") && bad.contains("not a role!"),
        "{bad}"
    );
    assert_eq!(
        out["role_after_bad"], out["role"],
        "a bad role changes nothing"
    );

    assert_eq!(out["def_tags"]["sleep10"], serde_json::json!({}));
    assert_eq!(
        out["def_tags"]["tagged"],
        serde_json::json!({"foo": "123", "bar": "456"})
    );
    assert_eq!(out["def_tags_listed"], out["def_tags"]["tagged"]);

    let jobs = &out["jobs"];
    for name in ["untagged", "over", "quarter"] {
        assert_eq!(jobs[name]["status"], "SUCCEEDED", "{name}: {out}");
    }
    assert_eq!(jobs["untagged"]["image"], "busybox:latest");
    assert_eq!(jobs["untagged"]["tags"], serde_json::json!({}));
    assert_eq!(
        (&jobs["untagged"]["vcpus"], &jobs["untagged"]["memory"]),
        (&1.into(), &128.into())
    );
    assert_eq!(
        jobs["over"]["tags"],
        serde_json::json!({"tag1": "value1", "tag2": "value2"})
    );
    assert_eq!(
        (&jobs["over"]["vcpus"], &jobs["over"]["memory"]),
        (&2.into(), &256.into())
    );
    // ContainerDetail's vcpus is an integer: a quarter of a vCPU is in resourceRequirements only.
    assert_eq!(jobs["quarter"]["vcpus"], Value::Null, "{out}");
    assert_eq!(jobs["quarter"]["memory"], 64);
    assert_eq!(
        out["job_tags_after"],
        serde_json::json!({"tag1": "value1", "tag3": "value3"})
    );
}
