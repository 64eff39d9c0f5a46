//! CloudWatch Logs beyond GetLogEvents, as clients call it: `aws logs describe-log-groups`,
//! `describe-log-streams` (a prefix, ordered by last event, paged) and `filter-log-events`
//! (named streams, a time range, simple filter patterns, paged) through the real AWS CLI, and
//! boto3's paginators for both; what the server does not serve answers in the AWS envelope.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use wasmbatch_runtime::model::{ContainerOverrides, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{finished, guests, local_queue, module_and_definition, wire};

const GROUP: &str = "/aws/batch/job";

/// Three jobs of definition `hello`, run one after another so their streams' times are
/// ordered: `red apple`, `green apple`, `red cherry`. Their (stream, first event, last event),
/// in the order they ran.
async fn three_jobs(batch: &Batch) -> Vec<(String, i64, i64)> {
    local_queue(batch, 4, "ENABLED").await;
    module_and_definition(batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
    let mut streams = Vec::new();
    for words in [["red", "apple"], ["green", "apple"], ["red", "cherry"]] {
        let id = batch
            .submit_job(SubmitJob {
                job_name: words.join("-"),
                job_queue: "main".into(),
                job_definition: "hello".into(),
                container_overrides: Some(ContainerOverrides {
                    command: Some(words.iter().map(|w| w.to_string()).collect()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .job_id;
        finished(batch, &id).await;
        let stream = batch.log_stream(&id, None).unwrap();
        let events = batch.log_events(&stream).await.unwrap();
        streams.push((
            stream,
            events.first().unwrap().timestamp,
            events.last().unwrap().timestamp,
        ));
        // Distinct milliseconds between jobs, so a time range can tell them apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    streams
}

async fn serve(batch: Batch) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch,
        wasmbatch_api::Access::local(),
        std::future::pending(),
    ));
    address
}

/// A program run with fake credentials and no config files, so nothing from this machine's
/// AWS set-up reaches the test.
fn program(path: &str) -> Command {
    let mut command = Command::new(path);
    command
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

/// `aws logs <args>` against `endpoint`: its JSON output, or its stderr.
fn aws_logs(endpoint: &str, args: &[&str]) -> Result<Value, String> {
    let cli = std::env::var("WASMBATCH_AWS_CLI").expect(
        "WASMBATCH_AWS_CLI is not set: run the suite with scripts/test, which installs the AWS CLI",
    );
    let output = program(&cli)
        .args(["--endpoint-url", endpoint, "--output", "json", "logs"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cli}: {e}"));
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap_or(Value::Null))
}

fn names(listing: &Value) -> Vec<String> {
    listing["logStreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["logStreamName"].as_str().unwrap().to_string())
        .collect()
}

/// (stream, message) of each event found, in the order given.
fn found(search: &Value) -> Vec<(String, String)> {
    search["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["logStreamName"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_lists_groups_and_streams_and_searches_events() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let streams = three_jobs(&batch).await;
    let endpoint = format!("http://{}", serve(batch).await);
    let by_name = {
        let mut names: Vec<String> = streams.iter().map(|s| s.0.clone()).collect();
        names.sort();
        names
    };
    let (red_apple, green_apple, red_cherry) = (&streams[0], &streams[1], &streams[2]);

    let run = {
        let endpoint = endpoint.clone();
        move |args: Vec<String>| {
            let endpoint = endpoint.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    aws_logs(&endpoint, &args)
                })
                .await
                .unwrap()
            }
        }
    };
    let ok = |result: Result<Value, String>| result.unwrap_or_else(|e| panic!("aws logs: {e}"));
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let groups = ok(run(args(&["describe-log-groups"])).await);
    let groups = groups["logGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["logGroupName"], GROUP);
    assert!(
        groups[0]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":log-group:/aws/batch/job:*"),
        "{groups:?}"
    );
    let none = ok(run(args(&[
        "describe-log-groups",
        "--log-group-name-prefix",
        "/other",
    ]))
    .await);
    assert_eq!(none["logGroups"], json!([]));

    // One to a page: the CLI follows nextToken through all three, in name order.
    let listed = ok(run(args(&[
        "describe-log-streams",
        "--log-group-name",
        GROUP,
        "--log-stream-name-prefix",
        "hello/default/",
        "--page-size",
        "1",
    ]))
    .await);
    assert_eq!(names(&listed), by_name);
    let stream = &listed["logStreams"][0];
    for member in [
        "arn",
        "creationTime",
        "firstEventTimestamp",
        "lastEventTimestamp",
    ] {
        assert!(
            stream.get(member).is_some(),
            "{member} missing from {stream}"
        );
    }

    // By last event, newest first: the order the jobs ran, reversed.
    let newest = ok(run(args(&[
        "describe-log-streams",
        "--log-group-name",
        GROUP,
        "--order-by",
        "LastEventTime",
        "--descending",
    ]))
    .await);
    assert_eq!(
        names(&newest),
        [&red_cherry.0, &green_apple.0, &red_apple.0].map(|s| s.to_string())
    );

    // Two items, then the rest from the token the CLI printed.
    let first = ok(run(args(&[
        "describe-log-streams",
        "--log-group-name",
        GROUP,
        "--max-items",
        "2",
    ]))
    .await);
    assert_eq!(names(&first), by_name[..2]);
    let token = first["NextToken"]
        .as_str()
        .expect("a token to go on")
        .to_string();
    let rest = ok(run(args(&[
        "describe-log-streams",
        "--log-group-name",
        GROUP,
        "--max-items",
        "2",
        "--starting-token",
        &token,
    ]))
    .await);
    assert_eq!(names(&rest), by_name[2..]);
    assert!(rest.get("NextToken").is_none(), "{rest}");

    // A stream's full name as prefix, and one that matches nothing.
    let one = ok(run(args(&[
        "describe-log-streams",
        "--log-group-name",
        GROUP,
        "--log-stream-name-prefix",
        &green_apple.0,
    ]))
    .await);
    assert_eq!(names(&one), vec![green_apple.0.clone()]);
    let nothing = ok(run(args(&[
        "describe-log-streams",
        "--log-group-name",
        GROUP,
        "--log-stream-name-prefix",
        "nope/",
    ]))
    .await);
    assert_eq!(names(&nothing), Vec::<String>::new());

    // Terms: both words, one of two, one but not another; a page of one event at a time.
    let search = |pattern: &str, extra: &[&str]| {
        let mut list = args(&[
            "filter-log-events",
            "--log-group-name",
            GROUP,
            "--filter-pattern",
            pattern,
            "--page-size",
            "1",
        ]);
        list.extend(args(extra));
        run(list)
    };
    let args_line = |words: &str| format!("hello from wasmbatch: args=[\"hello\", {words}]");
    let red = found(&ok(search("args red", &[]).await));
    let mut expected = vec![
        (red_apple.0.clone(), args_line("\"red\", \"apple\"")),
        (red_cherry.0.clone(), args_line("\"red\", \"cherry\"")),
    ];
    expected.sort();
    let mut red_sorted = red.clone();
    red_sorted.sort();
    assert_eq!(red_sorted, expected);
    let either = found(&ok(search("?cherry ?green", &[]).await));
    assert_eq!(either.len(), 2, "{either:?}");
    assert!(either.iter().all(|(s, _)| *s != red_apple.0), "{either:?}");
    let apple_not_green = found(&ok(search("apple -green", &[]).await));
    assert_eq!(
        apple_not_green,
        [(red_apple.0.clone(), args_line("\"red\", \"apple\""))]
    );
    let phrase = found(&ok(search("\"AWS_BATCH_JQ_NAME=main\"", &[]).await));
    assert_eq!(phrase.len(), 3, "one per job: {phrase:?}");

    // Named streams only, and a time range that holds only the last job.
    let named = found(&ok(search(
        "apple",
        &["--log-stream-names", &green_apple.0],
    )
    .await));
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].0, green_apple.0);
    let since = red_cherry.1.to_string();
    let late = found(&ok(search("args", &["--start-time", &since]).await));
    assert_eq!(
        late,
        [(red_cherry.0.clone(), args_line("\"red\", \"cherry\""))]
    );
    let until = (red_apple.2 + 1).to_string();
    let early = found(&ok(search("args", &["--end-time", &until]).await));
    assert_eq!(
        early,
        [(red_apple.0.clone(), args_line("\"red\", \"apple\""))]
    );

    // What it does not read gets a clear "no", naming what it does.
    let json_pattern = search("{ $.level = \"error\" }", &[]).await.unwrap_err();
    assert!(
        json_pattern.contains("InvalidParameterException")
            && json_pattern.contains("filterPattern"),
        "{json_pattern}"
    );
    let missing = search("args", &["--log-stream-names", "hello/default/nope-1"])
        .await
        .unwrap_err();
    assert!(missing.contains("ResourceNotFoundException"), "{missing}");
    let other_group = run(args(&[
        "describe-log-streams",
        "--log-group-name",
        "/aws/lambda/x",
    ]))
    .await
    .unwrap_err();
    assert!(
        other_group.contains("ResourceNotFoundException"),
        "{other_group}"
    );
    let unserved = run(args(&[
        "put-log-events",
        "--log-group-name",
        GROUP,
        "--log-stream-name",
        &red_apple.0,
        "--log-events",
        "timestamp=1,message=forged",
    ]))
    .await
    .unwrap_err();
    assert!(
        unserved.contains("UnknownOperationException") && unserved.contains("FilterLogEvents"),
        "{unserved}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_paginators_walk_every_stream_and_every_match() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let streams = three_jobs(&batch).await;
    let endpoint = format!("http://{}", serve(batch).await);
    let python = std::env::var("WASMBATCH_PYTHON").expect(
        "WASMBATCH_PYTHON is not set: run the suite with scripts/test, which installs boto3",
    );
    let script = r#"
import json, sys
import boto3
logs = boto3.client("logs", endpoint_url=sys.argv[1])
pages, names = 0, []
for page in logs.get_paginator("describe_log_streams").paginate(
        logGroupName="/aws/batch/job", PaginationConfig={"PageSize": 1}):
    pages += 1
    names += [s["logStreamName"] for s in page["logStreams"]]
searches, events = 0, []
for page in logs.get_paginator("filter_log_events").paginate(
        logGroupName="/aws/batch/job", filterPattern="AWS_BATCH_JOB_ID",
        PaginationConfig={"PageSize": 2}):
    searches += 1
    events += [[e["logStreamName"], e["message"], e["eventId"]] for e in page["events"]]
print(json.dumps({"pages": pages, "names": names, "searches": searches, "events": events}))
"#;
    let output = tokio::task::spawn_blocking(move || {
        program(&python)
            .args(["-c", script, &endpoint])
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
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut by_name: Vec<String> = streams.iter().map(|s| s.0.clone()).collect();
    by_name.sort();
    assert_eq!(result["names"], json!(by_name));
    assert_eq!(result["pages"], 3, "one stream to a page: {result}");
    let events = result["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        3,
        "one AWS_BATCH_JOB_ID line per job: {result}"
    );
    let mut seen: Vec<&str> = events.iter().map(|e| e[0].as_str().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, by_name);
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e[2].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "event ids are distinct: {result}");
    assert!(
        result["searches"].as_u64().unwrap() >= 2,
        "two to a page: {result}"
    );
}

#[tokio::test]
async fn a_route_the_server_does_not_serve_answers_in_the_aws_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let address = serve(batch).await;
    for head in [
        "GET /v1/nope HTTP/1.1\r\nHost: localhost".to_string(),
        "POST /2015-03-31/functions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
            .to_string(),
        // A real operation's path with a method it is not served by.
        "DELETE /v1/describejobs HTTP/1.1\r\nHost: localhost".to_string(),
        format!("GET /{} HTTP/1.1\r\nHost: localhost", "a".repeat(5000)),
    ] {
        let response = wire::exchange(address, &head, b"").await;
        assert_eq!(response.status, 404, "{head:.60}: {response:?}");
        assert_eq!(
            response.error_type(),
            "UnknownOperationException",
            "{head:.60}"
        );
        let body: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("{head:.60}: not JSON ({e}): {}", response.body));
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("is not an operation"), "{message}");
        assert!(
            message.len() < 500,
            "the path is quoted shortened: {message}"
        );
    }
}
