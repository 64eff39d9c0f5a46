//! The real AWS CLI (v1, from PyPI, installed by scripts/test into a private venv) against a
//! server on port 0: the quickstart's commands verbatim but for `--endpoint-url`, fake
//! credentials and region from the environment, and an image naming a pushed module; and a
//! scheduling policy's life with the fair-share queue that names it.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::guests;

struct Cli {
    program: String,
    endpoint: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Result<Value, String> {
        let output = Command::new(&self.program)
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .map_err(|e| format!("running {}: {e}", self.program))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap()
        })
    }
}

/// Serves `batch` on a loopback port; the CLI pointed at it.
async fn serve(batch: Batch) -> Cli {
    let program = std::env::var("WASMBATCH_AWS_CLI").expect(
        "WASMBATCH_AWS_CLI is not set: run the suite with scripts/test, which installs the AWS CLI",
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch,
        wasmbatch_api::Access::local(),
        std::future::pending(),
    ));
    Cli { program, endpoint }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_creates_submits_describes_and_reads_logs() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    batch
        .push_module("hello", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let cli = serve(batch).await;

    // The CLI blocks; run it off the async workers so the server keeps answering.
    let steps = tokio::task::spawn_blocking(move || {
        cli.run(&[
            "batch", "create-compute-environment", "--compute-environment-name", "meu-ambiente-batch",
            "--type", "MANAGED", "--state", "ENABLED", "--compute-resources",
            "type=EC2,allocationStrategy=BEST_FIT_PROGRESSIVE,minvCpus=0,maxvCpus=16,instanceTypes=m4.large,subnets=subnet-xxxxxx,securityGroupIds=sg-xxxxxx,instanceRole=ecsInstanceRole",
        ])?;
        cli.run(&[
            "batch",
            "create-job-queue",
            "--job-queue-name",
            "minha-fila-batch",
            "--state",
            "ENABLED",
            "--priority",
            "1",
            "--compute-environment-order",
            "order=1,computeEnvironment=meu-ambiente-batch",
        ])?;
        cli.run(&[
            "batch", "register-job-definition", "--job-definition-name", "minha-definicao-job",
            "--type", "container", "--container-properties",
            r#"{"image":"hello","command":["ola","mundo"],"resourceRequirements":[{"type":"VCPU","value":"1"},{"type":"MEMORY","value":"64"}]}"#,
        ])?;
        let submitted = cli.run(&[
            "batch",
            "submit-job",
            "--job-name",
            "meu-job",
            "--job-queue",
            "minha-fila-batch",
            "--job-definition",
            "minha-definicao-job",
        ])?;
        let id = submitted["jobId"].as_str().unwrap().to_string();
        let mut job = Value::Null;
        for _ in 0..300 {
            job = cli.run(&["batch", "describe-jobs", "--jobs", &id])?["jobs"][0].clone();
            if job["status"] == "SUCCEEDED" || job["status"] == "FAILED" {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let stream = job["container"]["logStreamName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let logs = cli.run(&[
            "logs",
            "get-log-events",
            "--log-group-name",
            "/aws/batch/job",
            "--log-stream-name",
            &stream,
        ])?;
        // Four more, then list-jobs two to a page: the CLI follows nextToken to the end.
        let mut ids = vec![id.clone()];
        for i in 0..4 {
            let name = format!("meu-job-{i}");
            ids.push(
                cli.run(&[
                    "batch",
                    "submit-job",
                    "--job-name",
                    &name,
                    "--job-queue",
                    "minha-fila-batch",
                    "--job-definition",
                    "minha-definicao-job",
                ])?["jobId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let listed = cli.run(&[
            "batch",
            "list-jobs",
            "--job-queue",
            "minha-fila-batch",
            "--filters",
            "name=JOB_NAME,values=meu-job*",
            "--page-size",
            "2",
        ])?;
        let error = cli
            .run(&[
                "batch",
                "submit-job",
                "--job-name",
                "x",
                "--job-queue",
                "nope",
                "--job-definition",
                "minha-definicao-job",
            ])
            .unwrap_err();
        Ok::<_, String>((id, job, logs, error, ids, listed))
    });
    let (id, job, logs, error, mut ids, listed) =
        tokio::time::timeout(Duration::from_secs(240), steps)
            .await
            .expect("the CLI steps took too long")
            .unwrap()
            .unwrap_or_else(|e| panic!("an AWS CLI command failed: {e}"));
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_eq!(job["jobId"], id.as_str());
    let messages: Vec<&str> = logs["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages[0],
        r#"hello from wasmbatch: args=["hello", "ola", "mundo"]"#
    );
    assert!(
        messages.contains(&"AWS_BATCH_JQ_NAME=minha-fila-batch"),
        "{messages:?}"
    );
    let mut listed: Vec<String> = listed["jobSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "list-jobs paged through every job");
    assert!(
        error.contains("(ClientException)") && error.contains("job queue nope does not exist"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_manages_scheduling_policies_and_the_queues_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let cli = serve(batch).await;
    let policy_arn = "arn:aws:batch:us-east-1:000000000000:scheduling-policy/equipas";
    let other_arn = "arn:aws:batch:us-east-1:000000000000:scheduling-policy/outra";

    let steps = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        seen.push(cli.run(&[
            "batch", "create-scheduling-policy", "--name", "equipas", "--fairshare-policy",
            r#"{"shareDecaySeconds":3600,"computeReservation":25,"shareDistribution":[{"shareIdentifier":"render*","weightFactor":0.5},{"shareIdentifier":"ml","weightFactor":2}]}"#,
            "--tags", "equipa=render",
        ])?);
        cli.run(&["batch", "create-scheduling-policy", "--name", "outra"])?;
        // One to a page: the CLI follows nextToken to the end.
        seen.push(cli.run(&["batch", "list-scheduling-policies", "--page-size", "1"])?);
        cli.run(&[
            "batch", "update-scheduling-policy", "--arn", policy_arn, "--fairshare-policy",
            r#"{"computeReservation":50,"shareDistribution":[{"shareIdentifier":"render*","weightFactor":0.25}]}"#,
        ])?;
        seen.push(cli.run(&[
            "batch",
            "describe-scheduling-policies",
            "--arns",
            policy_arn,
            other_arn,
        ])?);
        cli.run(&[
            "batch",
            "create-compute-environment",
            "--compute-environment-name",
            "ambiente",
            "--type",
            "MANAGED",
            "--compute-resources",
            "type=EC2,maxvCpus=4",
        ])?;
        cli.run(&[
            "batch", "create-job-queue", "--job-queue-name", "partilhada", "--priority", "1",
            "--scheduling-policy-arn", policy_arn,
            "--compute-environment-order", "order=1,computeEnvironment=ambiente",
            "--job-state-time-limit-actions",
            "reason=MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT,state=RUNNABLE,maxTimeSeconds=30,action=CANCEL",
        ])?;
        cli.run(&[
            "batch",
            "update-job-queue",
            "--job-queue",
            "partilhada",
            "--scheduling-policy-arn",
            other_arn,
        ])?;
        seen.push(cli.run(&["batch", "describe-job-queues", "--job-queues", "partilhada"])?);
        let in_use = cli
            .run(&["batch", "delete-scheduling-policy", "--arn", other_arn])
            .unwrap_err();
        let quota = cli
            .run(&[
                "batch",
                "create-scheduling-policy",
                "--name",
                "cota",
                "--quota-share-policy",
                "idleResourceAssignmentStrategy=FIFO",
            ])
            .unwrap_err();
        cli.run(&[
            "batch",
            "tag-resource",
            "--resource-arn",
            policy_arn,
            "--tags",
            "custo=42",
        ])?;
        seen.push(cli.run(&[
            "batch",
            "list-tags-for-resource",
            "--resource-arn",
            policy_arn,
        ])?);
        cli.run(&[
            "batch",
            "update-job-queue",
            "--job-queue",
            "partilhada",
            "--state",
            "DISABLED",
        ])?;
        cli.run(&["batch", "delete-job-queue", "--job-queue", "partilhada"])?;
        cli.run(&["batch", "delete-scheduling-policy", "--arn", other_arn])?;
        seen.push(cli.run(&["batch", "list-scheduling-policies"])?);
        Ok::<_, String>((seen, in_use, quota))
    });
    let (seen, in_use, quota) = tokio::time::timeout(Duration::from_secs(240), steps)
        .await
        .expect("the CLI steps took too long")
        .unwrap()
        .unwrap_or_else(|e| panic!("an AWS CLI command failed: {e}"));
    let [created, listed, described, queues, tags, left] = &seen[..] else {
        panic!("{seen:?}")
    };
    assert_eq!(
        *created,
        serde_json::json!({"name": "equipas", "arn": policy_arn})
    );
    let arns: Vec<&str> = listed["schedulingPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["arn"].as_str().unwrap())
        .collect();
    assert_eq!(arns, [policy_arn, other_arn], "by name, page after page");
    let policies = described["schedulingPolicies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "{described}");
    assert_eq!(policies[0]["name"], "equipas");
    assert_eq!(
        policies[0]["fairsharePolicy"],
        serde_json::json!({"computeReservation": 50,
            "shareDistribution": [{"shareIdentifier": "render*", "weightFactor": 0.25}]}),
        "replaced whole"
    );
    assert_eq!(policies[0]["tags"]["equipa"], "render");
    assert_eq!(policies[1]["arn"], other_arn);
    let queue = &queues["jobQueues"][0];
    assert_eq!(queue["schedulingPolicyArn"], other_arn, "{queue}");
    assert_eq!(
        queue["jobStateTimeLimitActions"],
        serde_json::json!([{"reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
            "state": "RUNNABLE", "maxTimeSeconds": 30, "action": "CANCEL"}])
    );
    assert!(
        in_use.contains("(ClientException)") && in_use.contains("used by job queues partilhada"),
        "{in_use}"
    );
    assert!(
        quota.contains("(ClientException)") && quota.contains("quotaSharePolicy"),
        "{quota}"
    );
    assert_eq!(
        tags["tags"],
        serde_json::json!({"equipa": "render", "custo": "42"})
    );
    assert_eq!(
        left["schedulingPolicies"],
        serde_json::json!([{"arn": policy_arn}])
    );
}

/// `aws batch get-job-queue-snapshot` reads the answer: the held jobs in the order they were
/// submitted, and the queue's capacity use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_reads_a_job_queue_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    // A DISABLED environment holds the jobs RUNNABLE.
    wasmbatch_tests::local_queue(&batch, 2, "DISABLED").await;
    wasmbatch_tests::module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &[],
        16,
        serde_json::json!({}),
    )
    .await;
    let mut arns = Vec::new();
    for i in 0..3 {
        let job = batch
            .submit_job(wasmbatch_tests::decode(serde_json::json!({
                "jobName": format!("j{i}"), "jobQueue": "main", "jobDefinition": "hello"
            })))
            .await
            .unwrap();
        arns.push(job.job_arn);
    }
    let cli = serve(batch).await;
    let snapshot = tokio::task::spawn_blocking(move || {
        cli.run(&["batch", "get-job-queue-snapshot", "--job-queue", "main"])
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("get-job-queue-snapshot failed: {e}"));
    let listed: Vec<&str> = snapshot["frontOfQueue"]["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no frontOfQueue.jobs: {snapshot}"))
        .iter()
        .map(|j| j["jobArn"].as_str().unwrap())
        .collect();
    assert_eq!(listed, arns, "{snapshot}");
    assert!(
        snapshot["frontOfQueue"]["jobs"][0]["earliestTimeAtPosition"].is_i64(),
        "{snapshot}"
    );
    assert_eq!(
        snapshot["queueUtilization"]["totalCapacityUsage"],
        serde_json::json!([{"capacityUnit": "VCPU", "quantity": 0.0}]),
        "{snapshot}"
    );
}

/// Fair-share submissions as a user of the AWS CLI writes them: a policy, a queue that names
/// it, jobs with `--share-identifier` and `--scheduling-priority-override`; the snapshot lists
/// them in the order they will run (shares alternating, priority first within one),
/// describe-jobs reports both members, list-jobs filters by share, and a submit without a share
/// is refused naming the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_submits_by_share_and_reads_the_fair_share_order() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    // A DISABLED environment holds the jobs RUNNABLE.
    wasmbatch_tests::environment(&batch, "local", 1, "DISABLED").await;
    wasmbatch_tests::module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &[],
        16,
        serde_json::json!({}),
    )
    .await;
    let cli = serve(batch).await;
    let steps =
        tokio::task::spawn_blocking(move || {
            let policy = cli.run(&[
            "batch", "create-scheduling-policy", "--name", "teams", "--fairshare-policy",
            "shareDecaySeconds=3600,shareDistribution=[{shareIdentifier=render,weightFactor=0.5}]",
        ])?;
            let policy = policy["arn"].as_str().unwrap().to_string();
            cli.run(&[
                "batch",
                "create-job-queue",
                "--job-queue-name",
                "shared",
                "--priority",
                "1",
                "--scheduling-policy-arn",
                &policy,
                "--compute-environment-order",
                "order=1,computeEnvironment=local",
            ])?;
            let mut ids = Vec::new();
            for (name, share, priority) in [
                ("r-low", "render", "1"),
                ("r-high", "render", "9"),
                ("ml-1", "ml", "0"),
            ] {
                let job = cli.run(&[
                    "batch",
                    "submit-job",
                    "--job-name",
                    name,
                    "--job-queue",
                    "shared",
                    "--job-definition",
                    "hello",
                    "--share-identifier",
                    share,
                    "--scheduling-priority-override",
                    priority,
                ])?;
                ids.push(job["jobId"].as_str().unwrap().to_string());
            }
            let refused = cli
                .run(&[
                    "batch",
                    "submit-job",
                    "--job-name",
                    "none",
                    "--job-queue",
                    "shared",
                    "--job-definition",
                    "hello",
                ])
                .unwrap_err();
            let snapshot =
                cli.run(&["batch", "get-job-queue-snapshot", "--job-queue", "shared"])?;
            let described = cli.run(&["batch", "describe-jobs", "--jobs", &ids[1]])?;
            let filtered = cli.run(&[
                "batch",
                "list-jobs",
                "--job-queue",
                "shared",
                "--filters",
                "name=SHARE_IDENTIFIER,values=ml",
            ])?;
            Ok::<_, String>((ids, refused, snapshot, described, filtered))
        });
    let (ids, refused, snapshot, described, filtered) =
        tokio::time::timeout(Duration::from_secs(240), steps)
            .await
            .expect("the CLI steps took too long")
            .unwrap()
            .unwrap_or_else(|e| panic!("an AWS CLI command failed: {e}"));
    assert!(
        refused.contains("(ClientException)") && refused.contains("shareIdentifier"),
        "{refused}"
    );
    let order: Vec<&str> = snapshot["frontOfQueue"]["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no frontOfQueue.jobs: {snapshot}"))
        .iter()
        .map(|j| j["jobArn"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    // Both shares idle: ml (first by name) and render alternate; render's higher priority first.
    assert_eq!(order, [&ids[2], &ids[1], &ids[0]], "{snapshot}");
    let job = &described["jobs"][0];
    assert_eq!(job["shareIdentifier"], "render", "{described}");
    assert_eq!(job["schedulingPriority"], 9, "{described}");
    let listed: Vec<&str> = filtered["jobSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str()], "{filtered}");
}

/// A definition whose image is a registry reference, as a user moving from AWS Batch writes one:
/// the module pushed once to a real registry (as `wasmbatch push --registry` does), registered
/// and run with the AWS CLI, which sees the job succeed and its log; no module is pushed to the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_registers_and_runs_a_definition_with_a_registry_image() {
    let registry = wasmbatch_tests::registry::Registry::start();
    let image = format!("{}/tools/hello:1.4", registry.host());
    let pushed = wasmbatch_runtime::registry::push(
        &image,
        guests::bytes(guests::wasip1::HELLO),
        None,
        false,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::local_queue(&batch, 2, "ENABLED").await;
    assert!(batch.modules().is_empty());
    let cli = serve(batch).await;
    let properties = serde_json::json!({"image": image, "command": ["from", "a", "registry"],
        "resourceRequirements": [{"type": "MEMORY", "value": "64"}]})
    .to_string();
    let (job, logs) = tokio::task::spawn_blocking(move || {
        cli.run(&[
            "batch",
            "register-job-definition",
            "--job-definition-name",
            "render",
            "--type",
            "container",
            "--container-properties",
            &properties,
        ])?;
        let id = cli.run(&[
            "batch",
            "submit-job",
            "--job-name",
            "r",
            "--job-queue",
            "main",
            "--job-definition",
            "render",
        ])?["jobId"]
            .as_str()
            .unwrap()
            .to_string();
        let mut job = Value::Null;
        for _ in 0..300 {
            job = cli.run(&["batch", "describe-jobs", "--jobs", &id])?["jobs"][0].clone();
            if job["status"] == "SUCCEEDED" || job["status"] == "FAILED" {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let stream = job["container"]["logStreamName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let logs = cli.run(&[
            "logs",
            "get-log-events",
            "--log-group-name",
            "/aws/batch/job",
            "--log-stream-name",
            &stream,
        ])?;
        Ok::<_, String>((job, logs))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("an AWS CLI command failed: {e}"));
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_eq!(
        job["container"]["image"],
        format!("{}/tools/hello:1.4", registry.host())
    );
    assert_eq!(
        logs["events"][0]["message"],
        r#"hello from wasmbatch: args=["hello", "from", "a", "registry"]"#,
        "{logs}"
    );
    assert!(pushed.manifest_digest.starts_with("sha256:"), "{pushed:?}");
}
