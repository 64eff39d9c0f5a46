//! The AWS Batch REST-JSON face, driven in process through the router (`oneshot`, no socket):
//! routes, member names as the AWS clients send and read them, and the error envelope.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::guests;

async fn call(
    batch: &Batch,
    operation: &str,
    body: impl Into<Body>,
) -> (StatusCode, Option<String>, Value) {
    let request = Request::post(format!("/v1/{operation}"))
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().unwrap().to_string());
    if status != StatusCode::OK {
        assert!(response.headers().contains_key("x-amzn-RequestId"));
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, kind, serde_json::from_slice(&bytes).unwrap())
}

/// SubmitJob through the routes, then DescribeJobs until the job SUCCEEDED; the job as last
/// described.
async fn run_to_success(batch: &Batch, submit: Value) -> Value {
    let id = ok(batch, "submitjob", submit).await["jobId"].clone();
    loop {
        let job = ok(batch, "describejobs", json!({"jobs": [id]})).await["jobs"][0].clone();
        if job["status"] == "SUCCEEDED" {
            return job;
        }
        assert_ne!(job["status"], "FAILED", "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn ok(batch: &Batch, operation: &str, body: Value) -> Value {
    let (status, _, reply) = call(batch, operation, body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{operation}: {reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_quickstart_works_over_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    batch
        .push_module("hello", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    // What `aws batch create-compute-environment … --compute-resources type=EC2,…` sends.
    let env = ok(&batch, "createcomputeenvironment", json!({
        "computeEnvironmentName": "meu-ambiente-batch", "type": "MANAGED", "state": "ENABLED",
        "computeResources": {"type": "EC2", "allocationStrategy": "BEST_FIT_PROGRESSIVE", "minvCpus": 0,
            "maxvCpus": 16, "instanceTypes": ["m4.large"], "subnets": ["subnet-xxxxxx"],
            "securityGroupIds": ["sg-xxxxxx"], "instanceRole": "ecsInstanceRole"}
    }))
    .await;
    assert_eq!(
        env["computeEnvironmentArn"],
        "arn:aws:batch:us-east-1:000000000000:compute-environment/meu-ambiente-batch"
    );
    let described = ok(&batch, "describecomputeenvironments", json!({})).await;
    let resources = &described["computeEnvironments"][0]["computeResources"];
    assert_eq!(
        resources["subnets"],
        json!(["subnet-xxxxxx"]),
        "unused members are echoed"
    );
    assert_eq!(resources["instanceRole"], "ecsInstanceRole");
    ok(
        &batch,
        "createjobqueue",
        json!({
            "jobQueueName": "minha-fila-batch", "state": "ENABLED", "priority": 1,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "meu-ambiente-batch"}]
        }),
    )
    .await;
    let definition = ok(&batch, "registerjobdefinition", json!({
        "jobDefinitionName": "minha-definicao-job", "type": "container",
        "containerProperties": {"image": "hello", "command": ["ola", "mundo"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}
    }))
    .await;
    assert_eq!(definition["revision"], 1);
    let submitted = ok(&batch, "submitjob", json!({
        "jobName": "meu-job", "jobQueue": "minha-fila-batch", "jobDefinition": "minha-definicao-job"
    }))
    .await;
    let id = submitted["jobId"].as_str().unwrap().to_string();
    let job = loop {
        let reply = ok(&batch, "describejobs", json!({"jobs": [id]})).await;
        let job = reply["jobs"][0].clone();
        if job["status"] == "SUCCEEDED" || job["status"] == "FAILED" {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_eq!(job["container"]["exitCode"], 0);
    let stream = job["container"]["logStreamName"].as_str().unwrap();
    assert_eq!(job["attempts"][0]["container"]["logStreamName"], stream);
    let lines: Vec<String> = batch
        .log_events(stream)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        lines[0],
        r#"hello from wasmbatch: args=["hello", "ola", "mundo"]"#
    );
    let listed = ok(
        &batch,
        "listjobs",
        json!({"jobQueue": "minha-fila-batch", "jobStatus": "SUCCEEDED"}),
    )
    .await;
    assert_eq!(listed["jobSummaryList"][0]["jobId"], id.as_str());
    assert_eq!(listed["jobSummaryList"][0]["container"]["exitCode"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_get_client_exceptions_that_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let (status, kind, reply) = call(&batch, "createjobqueue", "{not json").await;
    assert_eq!(
        (status, kind.as_deref()),
        (StatusCode::BAD_REQUEST, Some("ClientException"))
    );
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("CreateJobQueue: the body is not valid JSON"),
        "{reply}"
    );

    let (status, _, reply) = call(
        &batch,
        "createjobqueue",
        json!({"jobQueueName": "q", "priority": "high"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.starts_with("CreateJobQueue: priority: invalid type"),
        "the field is named: {message}"
    );
    // Deep inside: the path names the list element.
    let (status, _, reply) = call(
        &batch,
        "submitjob",
        json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d",
               "containerOverrides": {"command": ["ok", 7]}})
        .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.starts_with("SubmitJob: containerOverrides.command[1]: invalid type"),
        "{message}"
    );

    // Members the AWS model does not define are refused by their path, not ignored: a
    // misspelt `attempts` would otherwise silently mean no retries.
    for (operation, body, unknown) in [
        (
            "submitjob",
            json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "retryStrategy": {"attempt": 3}}),
            "retryStrategy.attempt",
        ),
        (
            "submitjob",
            json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "jobQeue": "q"}),
            "jobQeue",
        ),
        (
            "registerjobdefinition",
            json!({"jobDefinitionName": "d", "type": "container",
                   "containerProperties": {"image": "x", "environment": [{"name": "A", "valu": "1"}]}}),
            "containerProperties.environment[0].valu",
        ),
        (
            "createcomputeenvironment",
            json!({"computeEnvironmentName": "e", "type": "MANAGED",
                   "computeResources": {"type": "EC2", "maxvCpus": 4, "subnetz": []}}),
            "computeResources.subnetz",
        ),
        (
            "listjobs",
            json!({"jobQueue": "q", "maxResult": 5}),
            "maxResult",
        ),
    ] {
        let (status, kind, reply) = call(&batch, operation, body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{operation}: {reply}");
        assert_eq!(kind.as_deref(), Some("ClientException"));
        let message = reply["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("unknown member \"{unknown}\"")),
            "{operation}: {message}"
        );
    }
    // Members the model defines but wasmbatch does not use, and our own memoryMib, pass.
    ok(
        &batch,
        "createcomputeenvironment",
        json!({"computeEnvironmentName": "e", "type": "MANAGED", "memoryMib": 512,
               "serviceRole": "arn:aws:iam::000000000000:role/batch",
               "computeResources": {"type": "EC2", "maxvCpus": 4, "subnets": ["subnet-1"]}}),
    )
    .await;

    let (status, _, reply) = call(
        &batch,
        "submitjob",
        json!({"jobName": "j", "jobQueue": "nope", "jobDefinition": "d"}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["message"], "job queue nope does not exist");

    let huge = json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "parameters": {"x": "y".repeat(31 * 1024)}});
    let (status, _, reply) = call(&batch, "submitjob", huge.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("the limit is 30720"),
        "{reply}"
    );
    assert!(
        batch.describe_job_queues(&[]).is_empty(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_are_pushed_over_http_and_logs_read_with_get_log_events() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());
    let push = |name: &str, bytes: Vec<u8>| {
        Request::put(format!("/v1/modules/{name}"))
            .header("content-type", "application/wasm")
            .body(Body::from(bytes))
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(push("writer", guests::bytes(guests::wasip1::WRITE_LOT)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(info["digest"].as_str().unwrap().starts_with("sha256:"));
    let response = app
        .clone()
        .oneshot(push("junk", b"not wasm".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "invalid wasm is refused"
    );
    let listed = app
        .clone()
        .oneshot(Request::get("/v1/modules").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let listed: Value =
        serde_json::from_slice(&listed.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(listed["modules"].as_array().unwrap().len(), 1);

    wasmbatch_tests::local_queue(&batch, 2, "ENABLED").await;
    ok(&batch, "registerjobdefinition", json!({
        "jobDefinitionName": "writer", "type": "container",
        "containerProperties": {"image": "writer", "command": ["25"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}
    }))
    .await;
    let job = run_to_success(
        &batch,
        json!({"jobName": "w", "jobQueue": "main", "jobDefinition": "writer"}),
    )
    .await;
    let stream = job["container"]["logStreamName"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |body: Value| {
        Request::post("/")
            .header("x-amz-target", "Logs_20140328.GetLogEvents")
            .header("content-type", "application/x-amz-json-1.1")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let read = |response: axum::response::Response| async move {
        let status = response.status();
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        (status, body)
    };
    // Forward from the head, ten at a time, until the token repeats (as the AWS CLI pages).
    let mut token: Option<String> = None;
    let mut messages = Vec::new();
    loop {
        let mut body = json!({"logGroupName": "/aws/batch/job", "logStreamName": stream, "startFromHead": true, "limit": 10});
        if let Some(token) = &token {
            body["nextToken"] = json!(token);
        }
        let (status, page) = read(app.clone().oneshot(get(body)).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        messages.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_string()),
        );
        let next = page["nextForwardToken"].as_str().unwrap().to_string();
        if token.as_deref() == Some(next.as_str()) {
            break;
        }
        token = Some(next);
    }
    let expected: Vec<String> = (0..25).map(|i| format!("out line {i}")).collect();
    assert_eq!(messages, expected);
    // Without startFromHead the default page is the tail.
    let (_, tail) = read(
        app.clone()
            .oneshot(get(json!({"logStreamName": stream, "limit": 3})))
            .await
            .unwrap(),
    )
    .await;
    let tail: Vec<&str> = tail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(tail, ["out line 22", "out line 23", "out line 24"]);
    let (status, missing) = read(
        app.clone()
            .oneshot(get(json!({"logStreamName": "writer/default/nope-1"})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(missing["__type"], "ResourceNotFoundException");
}

/// The same service over a real socket on port 0, spoken to as plain HTTP/1.1 by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_on_a_loopback_socket_and_stops_on_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wasmbatch_api::serve(
        listener,
        batch,
        wasmbatch_api::Access::local(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = r#"{"jobQueues": []}"#;
    let request = format!(
        "POST /v1/describejobqueues HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20261127/us-east-1/batch/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-amzn-requestid:"),
        "{response}"
    );
    assert!(response.ends_with(r#"{"jobQueues":[]}"#), "{response}");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_tagged_untagged_and_listed_by_arn() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::local_queue(&batch, 2, "DISABLED").await;
    let arn = "arn:aws:batch:us-east-1:000000000000:job-queue/main";
    // The AWS clients percent-encode the ARN into one path segment.
    let path = format!("/v1/tags/{}", arn.replace(':', "%3A").replace('/', "%2F"));
    let send = |request: Request<Body>| async {
        let response = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        (status, body)
    };
    let tag = Request::post(&path)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"tags": {"team": "render", "cost": "42"}}"#))
        .unwrap();
    assert_eq!(send(tag).await.0, StatusCode::OK);
    let untag = Request::delete(format!("{path}?tagKeys=cost"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(untag).await.0, StatusCode::OK);
    let (status, listed) = send(Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["tags"], json!({"team": "render"}));
    assert_eq!(
        batch.describe_job_queues(&[]).pop().unwrap().tags.len(),
        1,
        "stored on the queue"
    );
    let (status, error) = send(
        Request::get("/v1/tags/not-an-arn")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("resourceArn"),
        "{error}"
    );
}

/// `GET /v1/jobs/{id}/logs?follow=true` reads the body piece by piece: the first line arrives
/// while the guest is still sleeping, and the response ends when the job does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_grows_while_the_job_runs_and_ends_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::local_queue(&batch, 2, "ENABLED").await;
    wasmbatch_tests::module_and_definition(
        &batch,
        "sleep",
        guests::wasip1::SLEEP,
        &["1500"],
        64,
        json!({}),
    )
    .await;
    let id = ok(
        &batch,
        "submitjob",
        json!({"jobName": "s", "jobQueue": "main", "jobDefinition": "sleep"}),
    )
    .await["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    // Asked for at once, before the job has started: the follower waits for the attempt.
    let response = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local())
        .oneshot(
            Request::get(format!("/v1/jobs/{id}/logs?follow=true"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"sleeping\n");
    let job = ok(&batch, "describejobs", json!({"jobs": [id]})).await;
    assert_eq!(
        job["jobs"][0]["status"], "RUNNING",
        "the first line came while the guest slept"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"woke up\n");
    let job = ok(&batch, "describejobs", json!({"jobs": [id]})).await;
    assert_eq!(job["jobs"][0]["status"], "SUCCEEDED");
}

/// Without `attempt`, a followed log goes through every retry until the job ends; with one, it
/// is that attempt's alone; without `follow`, it is what was written so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_logs_follow_retries_or_one_attempt_and_refuse_bad_queries() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::local_queue(&batch, 2, "ENABLED").await;
    wasmbatch_tests::module_and_definition(
        &batch,
        "exit-code",
        guests::wasip1::EXIT_CODE,
        &["3"],
        64,
        json!({"retryStrategy": {"attempts": 3}}),
    )
    .await;
    let id = ok(
        &batch,
        "submitjob",
        json!({"jobName": "x", "jobQueue": "main", "jobDefinition": "exit-code"}),
    )
    .await["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |query: String| {
        let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());
        async move {
            let response = app
                .oneshot(Request::get(query).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let kind = response
                .headers()
                .get("x-amzn-ErrorType")
                .map(|v| v.to_str().unwrap().to_string());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, kind, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (status, _, whole) = get(format!("/v1/jobs/{id}/logs?follow=true")).await;
    assert_eq!(status, StatusCode::OK);
    // The stdout and stderr line of each of the three attempts, in order.
    let attempt = "exiting with 3\nexit-code: about to exit with 3\n";
    assert_eq!(whole, attempt.repeat(3));
    let job = ok(&batch, "describejobs", json!({"jobs": [id]})).await;
    assert_eq!(job["jobs"][0]["status"], "FAILED");
    assert_eq!(job["jobs"][0]["attempts"].as_array().unwrap().len(), 3);

    // Followed after the job ended: still every attempt, from the first.
    let (_, _, again) = get(format!("/v1/jobs/{id}/logs?follow=true")).await;
    assert_eq!(again, attempt.repeat(3));
    let (_, _, second) = get(format!("/v1/jobs/{id}/logs?attempt=2&follow=true")).await;
    assert_eq!(second, attempt);
    let (_, _, latest) = get(format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(latest, attempt, "without follow, the latest attempt so far");

    for (query, named) in [
        (format!("/v1/jobs/{id}/logs?attempt=zero"), "attempt"),
        (format!("/v1/jobs/{id}/logs?attempt=0"), "attempt"),
        (format!("/v1/jobs/{id}/logs?follow=maybe"), "follow"),
        (format!("/v1/jobs/{id}/logs?tail=1"), "tail"),
        ("/v1/jobs/no-such-job/logs".to_string(), "no-such-job"),
    ] {
        let (status, kind, message) = get(query.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(kind.as_deref(), Some("ClientException"), "{query}");
        assert!(message.contains(named), "{query}: {message}");
    }
}

/// A runnable module of about `size` bytes: a command whose data segment fills it out.
fn padded_module(size: usize) -> Vec<u8> {
    let wat = format!(
        r#"(module (memory 64) (data (i32.const 0) "{}") (func (export "_start")))"#,
        "x".repeat(size)
    );
    wat::parse_str(wat).unwrap()
}

/// Files in the module store that are not stored modules: uploads in progress or left over.
fn staged_files(data_dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    std::fs::read_dir(data_dir.join("modules"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_none_or(|x| x != "wasm"))
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect()
}

/// An upload reaches the disk while it is still arriving, is refused past the configured size
/// limit, and leaves nothing behind when it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_uploads_stream_to_disk_within_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BatchConfig::new(dir.path());
    config.max_module_bytes = 4 << 20;
    let batch = Batch::open(config).await.unwrap();
    let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());
    type Piece = Result<Vec<u8>, std::io::Error>;
    let upload = |name: &str| {
        let (send, receive) = tokio::sync::mpsc::channel::<Piece>(4);
        let body = Body::from_stream(futures_util::stream::unfold(receive, |mut r| async {
            r.recv().await.map(|piece| (piece, r))
        }));
        let request = Request::put(format!("/v1/modules/{name}"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .unwrap();
        let response = tokio::spawn(app.clone().oneshot(request));
        (send, response)
    };
    let status_and_body = |response: axum::response::Response| async move {
        let status = response.status();
        let kind = response
            .headers()
            .get("x-amzn-ErrorType")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            kind,
            serde_json::from_slice::<Value>(&body).unwrap(),
        )
    };

    // 3 MiB sent as 2 MiB, a pause, then the rest: during the pause most of it is on disk.
    let module = padded_module(3 << 20);
    let (send, response) = upload("big");
    let (head, tail) = module.split_at(2 << 20);
    for piece in head.chunks(64 << 10) {
        send.send(Ok(piece.to_vec())).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while staged_files(dir.path())
        .iter()
        .map(|(_, len)| len)
        .sum::<u64>()
        < 1 << 20
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload's first 2 MiB never reached the disk"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!response.is_finished(), "the request is still arriving");
    send.send(Ok(tail.to_vec())).await.unwrap();
    drop(send);
    let (status, _, info) = status_and_body(response.await.unwrap().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["size"], module.len());
    let digest = wasmbatch_runtime::Digest::of(&module).to_string();
    assert_eq!(info["digest"], digest.as_str());
    assert!(
        staged_files(dir.path()).is_empty(),
        "the staged file became the module"
    );
    // And it runs.
    wasmbatch_tests::local_queue(&batch, 1, "ENABLED").await;
    ok(&batch, "registerjobdefinition", json!({
        "jobDefinitionName": "big", "type": "container",
        "containerProperties": {"image": format!("big@{digest}"),
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}
    }))
    .await;
    run_to_success(
        &batch,
        json!({"jobName": "b", "jobQueue": "main", "jobDefinition": "big"}),
    )
    .await;

    // Past the limit while streaming: refused, nothing kept.
    let (send, response) = upload("huge");
    let huge = padded_module(5 << 20);
    for piece in huge.chunks(256 << 10) {
        if send.send(Ok(piece.to_vec())).await.is_err() {
            break; // the server stopped reading, as it should
        }
    }
    drop(send);
    let (status, kind, error) = status_and_body(response.await.unwrap().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(kind.as_deref(), Some("ClientException"));
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("limit of 4194304 bytes"), "{message}");

    // Announced past the limit: refused before reading.
    let response = app
        .clone()
        .oneshot(
            Request::put("/v1/modules/huge")
                .header("content-type", "application/wasm")
                .header("content-length", huge.len())
                .body(Body::from(huge.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, _, error) = status_and_body(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().contains("limit"));

    // A client that breaks off mid-upload, and one that sends a truncated module.
    let (send, response) = upload("broken");
    send.send(Ok(module[..1 << 20].to_vec())).await.unwrap();
    send.send(Err(std::io::Error::other("connection reset")))
        .await
        .unwrap();
    let (status, _, _) = status_and_body(response.await.unwrap().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (send, response) = upload("truncated");
    send.send(Ok(module[..1 << 20].to_vec())).await.unwrap();
    drop(send);
    let (status, _, error) = status_and_body(response.await.unwrap().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().starts_with("module:"),
        "{error}"
    );

    let listed = batch.modules();
    assert_eq!(
        listed.len(),
        1,
        "only the good upload is a module: {listed:?}"
    );
    // Removal of a failed upload's file happens off the request; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !staged_files(dir.path()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "failed uploads left files: {:?}",
            staged_files(dir.path())
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// `DELETE /v1/modules/{name}@sha256:…` removes one version, with its file and compiled
/// artifacts, once nothing that may still run needs it, and names what does while something does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_version_nothing_needs_is_deleted_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let app = wasmbatch_api::app(batch.clone(), wasmbatch_api::Access::local());
    let send = |request: Request<Body>| {
        let app = app.clone();
        async move { wasmbatch_tests::router::answer(&app, request).await }
    };
    let push = |bytes: Vec<u8>| {
        Request::put("/v1/modules/tool")
            .header("content-type", "application/wasm")
            .body(Body::from(bytes))
            .unwrap()
    };
    let delete = |digest: &str| {
        Request::delete(format!("/v1/modules/tool@{digest}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, old) = send(push(guests::bytes(guests::wasip1::HELLO))).await;
    assert_eq!(status, StatusCode::OK, "{old}");
    let old = old["digest"].as_str().unwrap().to_string();
    let (status, _, new) = send(push(guests::bytes(guests::wasip1::WRITE_LOT))).await;
    assert_eq!(status, StatusCode::OK, "{new}");
    let new = new["digest"].as_str().unwrap().to_string();
    let hex = |digest: &str| digest.strip_prefix("sha256:").unwrap().to_string();
    let artifacts = |digest: &str| {
        std::fs::read_dir(dir.path().join("compiled"))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}-", hex(digest)))
            })
            .count()
    };
    assert_eq!(artifacts(&old), 1, "pushing compiled it");

    let (status, kind, reply) = send(delete(&new)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(kind.as_deref(), Some("ClientException"));
    assert!(
        reply["message"].as_str().unwrap().contains("latest push"),
        "{reply}"
    );

    // A definition pins the old version; a job of it waits on a disabled queue.
    wasmbatch_tests::local_queue(&batch, 2, "DISABLED").await;
    let pinned = ok(&batch, "registerjobdefinition", json!({
        "jobDefinitionName": "pinned", "type": "container",
        "containerProperties": {"image": format!("tool@{old}"),
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}
    }))
    .await;
    let arn = pinned["jobDefinitionArn"].as_str().unwrap().to_string();
    let job = ok(
        &batch,
        "submitjob",
        json!({"jobName": "p", "jobQueue": "main", "jobDefinition": "pinned"}),
    )
    .await["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, reply) = send(delete(&old)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains(&arn),
        "names the definition: {reply}"
    );
    ok(
        &batch,
        "deregisterjobdefinition",
        json!({"jobDefinition": arn}),
    )
    .await;
    let (status, _, reply) = send(delete(&old)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains(&job),
        "names the unfinished job: {reply}"
    );
    assert!(
        dir.path()
            .join(format!("modules/{}.wasm", hex(&old)))
            .exists()
    );

    ok(
        &batch,
        "canceljob",
        json!({"jobId": job, "reason": "not needed"}),
    )
    .await;
    let (status, _, reply) = send(delete(&old)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["history"], json!([new]), "{reply}");
    assert!(
        !dir.path()
            .join(format!("modules/{}.wasm", hex(&old)))
            .exists()
    );
    assert_eq!(artifacts(&old), 0, "its compiled artifact went with it");
    assert_eq!(artifacts(&new), 1, "the other version's stays");
    let (status, _, _) = send(delete(&old)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "it is gone");

    // The removal is durable, ledger included.
    batch.close("test").await.unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    assert_eq!(batch.module("tool").unwrap().history, [new]);
}
