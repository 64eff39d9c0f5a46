//! Job state change events through `GET /v1/events`, read with a real SSE parser
//! (`eventsource-stream`) over a socket: every transition in each job's order, shaped as
//! EventBridge delivers AWS Batch's; nothing lost across a reconnect with `Last-Event-ID`, nor
//! across a restart of the server; filters; and, with keys, each team sees only its own jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use http_body_util::BodyDataStream;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use wasmbatch_api::Access;
use wasmbatch_runtime::model::{ContainerOverrides, JobStatus, SubmitJob};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{finished, guests, local_queue, module_and_definition, reopen};

type Events = std::pin::Pin<Box<dyn Stream<Item = (u64, Value)> + Send>>;

/// A server on a loopback port, and how to stop it.
struct Server {
    address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(batch: Batch, access: Access) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(wasmbatch_api::serve(listener, batch, access, async move {
        let _ = stopped.await;
    }));
    Server {
        address,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// `GET path` with `headers`: the status and, for a 200, the events as (id, data).
async fn subscribe(
    address: std::net::SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> (u16, Events, String) {
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::get(path).header("host", "localhost");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let events = BodyDataStream::new(response.into_body())
        .eventsource()
        .filter_map(|event| async move {
            let event = event.ok()?;
            assert_eq!(event.event, "Batch Job State Change");
            Some((
                event.id.parse().unwrap(),
                serde_json::from_str(&event.data).unwrap(),
            ))
        });
    // The sender keeps the connection; it goes when the stream is dropped.
    let events = events.map(move |e| {
        let _ = &sender;
        e
    });
    (status, Box::pin(events), kind)
}

/// The next `n` events, or a panic naming what was seen after 60 s.
async fn take(events: &mut Events, n: usize) -> Vec<(u64, Value)> {
    let mut seen = Vec::new();
    while seen.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), events.next()).await {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("the stream ended after {seen:?}"),
            Err(_) => panic!("waited for {n} events, saw {}: {seen:?}", seen.len()),
        }
    }
    seen
}

/// Whether more events come within a while (they should not).
async fn quiet(events: &mut Events) -> Option<(u64, Value)> {
    tokio::time::timeout(Duration::from_millis(500), events.next())
        .await
        .ok()
        .flatten()
}

async fn submit(batch: &Batch, name: &str, code: &str) -> String {
    let id = batch
        .submit_job(SubmitJob {
            job_name: name.into(),
            job_queue: "main".into(),
            job_definition: "exit-code".into(),
            container_overrides: Some(ContainerOverrides {
                command: Some(vec![code.to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .job_id;
    finished(batch, &id).await;
    id
}

fn status(event: &(u64, Value)) -> JobStatus {
    serde_json::from_value(event.1["detail"]["status"].clone()).unwrap()
}

/// Each job's statuses, in the order their events came.
fn per_job(events: &[(u64, Value)]) -> BTreeMap<String, Vec<JobStatus>> {
    let mut jobs: BTreeMap<String, Vec<JobStatus>> = BTreeMap::new();
    for event in events {
        let id = event.1["detail"]["jobId"].as_str().unwrap().to_string();
        jobs.entry(id).or_default().push(status(event));
    }
    jobs
}

/// A service over `dir` with queue `main` and definition `exit-code`.
async fn exit_code_service(dir: &std::path::Path) -> (Batch, BatchConfig) {
    let config = BatchConfig::new(dir);
    let batch = Batch::open(config.clone()).await.unwrap();
    local_queue(&batch, 4, "ENABLED").await;
    module_and_definition(
        &batch,
        "exit-code",
        guests::wasip1::EXIT_CODE,
        &[],
        16,
        json!({}),
    )
    .await;
    (batch, config)
}

fn last_event_id(id: u64) -> Vec<(String, String)> {
    vec![("last-event-id".into(), id.to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_across_a_reconnect_or_a_restart_and_each_job_keeps_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let (batch, config) = exit_code_service(dir.path()).await;
    let server = serve(batch.clone(), Access::local()).await;

    // From the oldest kept: none yet. Three jobs, one failing.
    let (code, mut live, _) = subscribe(server.address, "/v1/events?after=0", &[]).await;
    assert_eq!(code, 200);
    let ok = submit(&batch, "ok", "0").await;
    let bad = submit(&batch, "bad", "3").await;
    let again = submit(&batch, "again", "0").await;
    // RUNNABLE, STARTING, RUNNING and the end, for each.
    let first = take(&mut live, 12).await;
    let jobs = per_job(&first);
    use JobStatus::*;
    assert_eq!(
        jobs[&ok],
        [Runnable, Starting, Running, Succeeded],
        "{first:?}"
    );
    assert_eq!(jobs[&bad], [Runnable, Starting, Running, Failed]);
    assert_eq!(jobs[&again], [Runnable, Starting, Running, Succeeded]);
    let ids: Vec<u64> = first.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing: {ids:?}");
    // As EventBridge delivers AWS Batch's.
    let failed = first.iter().find(|e| status(e) == Failed).unwrap();
    assert_eq!(failed.1["detail-type"], "Batch Job State Change");
    assert_eq!(failed.1["source"], "aws.batch");
    assert_eq!(failed.1["account"], "000000000000");
    assert_eq!(failed.1["resources"][0], failed.1["detail"]["jobArn"]);
    assert_eq!(failed.1["detail"]["jobName"], "bad");
    assert_eq!(
        failed.1["detail"]["attempts"][0]["container"]["exitCode"], 3,
        "{}",
        failed.1
    );
    assert!(failed.1["time"].as_str().unwrap().ends_with('Z'));
    assert!(quiet(&mut live).await.is_none(), "nothing more happened");

    // Gone after five events; two more jobs meanwhile; back with the last id seen.
    drop(live);
    let seen = first[4].0;
    submit(&batch, "while-away-1", "0").await;
    submit(&batch, "while-away-2", "1").await;
    let (_, mut resumed, _) = subscribe(server.address, "/v1/events", &last_event_id(seen)).await;
    let rest = take(&mut resumed, 7 + 8).await;
    assert!(quiet(&mut resumed).await.is_none());
    drop(resumed);
    let mut joined: Vec<(u64, Value)> = first[..5].to_vec();
    joined.extend(rest.iter().cloned());
    let (_, mut everything, _) = subscribe(server.address, "/v1/events?after=0", &[]).await;
    let all = take(&mut everything, 20).await;
    assert!(quiet(&mut everything).await.is_none());
    drop(everything);
    let key = |events: &[(u64, Value)]| -> Vec<(u64, String, JobStatus)> {
        events
            .iter()
            .map(|e| {
                (
                    e.0,
                    e.1["detail"]["jobId"].as_str().unwrap().into(),
                    status(e),
                )
            })
            .collect()
    };
    assert_eq!(
        key(&joined),
        key(&all),
        "the reconnect missed nothing, repeated nothing"
    );

    // A restart: the events are still there, and new ones go on after them.
    server.stop().await;
    let batch = reopen(batch, config).await;
    let server = serve(batch.clone(), Access::local()).await;
    let last = all.last().unwrap().0;
    let (_, mut after_restart, _) =
        subscribe(server.address, "/v1/events", &last_event_id(last)).await;
    let late = submit(&batch, "after-restart", "0").await;
    let new = take(&mut after_restart, 4).await;
    assert_eq!(
        per_job(&new)[&late],
        [Runnable, Starting, Running, Succeeded]
    );
    assert!(
        new[0].0 > last,
        "sequences go on after a restart: {} then {}",
        last,
        new[0].0
    );
    drop(after_restart);
    let (_, mut replay, _) = subscribe(server.address, "/v1/events?after=0", &[]).await;
    let replayed = take(&mut replay, 24).await;
    assert_eq!(key(&replayed[..20]), key(&all), "kept across the restart");
    drop(replay);

    // Filters, and what is refused.
    let (_, mut ends, _) = subscribe(
        server.address,
        "/v1/events?after=0&status=SUCCEEDED,FAILED",
        &[],
    )
    .await;
    let ended = take(&mut ends, 6).await;
    assert!(ended.iter().all(|e| status(e).is_terminal()), "{ended:?}");
    drop(ends);
    for (path, headers, field) in [
        ("/v1/events?queue=nope", vec![], "queue"),
        ("/v1/events?status=DONE", vec![], "status"),
        ("/v1/events?colour=red", vec![], "colour"),
        (
            "/v1/events",
            vec![("last-event-id".to_string(), "x1".to_string())],
            "Last-Event-ID",
        ),
    ] {
        let (code, _, kind) = subscribe(server.address, path, &headers).await;
        assert_eq!(
            (code, kind.as_str()),
            (400, "ClientException"),
            "{path} {field}"
        );
    }
    server.stop().await;
}

/// A data dir of store format 4 has no events: it opens with its jobs, the sequence starts at
/// 1, and the first change writes the current format with its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_store_format_4_opens_and_numbers_its_first_events_from_1() {
    let dir = tempfile::tempdir().unwrap();
    let (batch, config) = exit_code_service(dir.path()).await;
    let old = submit(&batch, "before", "0").await;
    batch.close("downgrade").await.unwrap();
    wasmbatch_tests::rewrite_store_format(dir.path(), 4, &["job_events"]);
    assert_eq!(
        wasmbatch_tests::stored_records(dir.path(), "job_events"),
        None
    );

    let batch = Batch::open(config.clone()).await.unwrap();
    assert_eq!(
        wasmbatch_tests::describe(&batch, &old).status,
        JobStatus::Succeeded
    );
    assert!(batch.job_events(0, 10).await.unwrap().is_empty());
    let new = submit(&batch, "after", "0").await;
    // The job's end is in memory before its commit: wait for the commit that holds its event.
    let mut events = Vec::new();
    for _ in 0..500 {
        events = batch.job_events(0, 10).await.unwrap();
        if events.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    assert!(events.iter().all(|e| e.job_id == new));
    batch.close("upgraded").await.unwrap();
    assert_eq!(wasmbatch_tests::store_format(dir.path()), 6);
    assert_eq!(
        wasmbatch_tests::stored_records(dir.path(), "job_events"),
        Some(4)
    );
}

/// The headers of a GET of `path` signed by `key`, as an SDK signs it.
fn signed(key: &wasmbatch_api::access::credentials::Key, path: &str) -> Vec<(String, String)> {
    let head = wasmbatch_tests::wire::signed_head(
        &key.access_key_id,
        &key.secret_access_key,
        "GET",
        "localhost",
        path,
        "application/json",
        Some(b""),
    );
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(": "))
        .filter(|(name, _)| *name != "host")
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Authorised per job as DescribeJobs is: a team's key streams its queue's jobs only, and a
/// key allowed DescribeJobs on nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_streams_only_the_events_of_its_own_queue() {
    use wasmbatch_api::access::credentials::{CredentialsFile, credentials_path};
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::environment(&batch, "shared", 4, "ENABLED").await;
    for team in ["team-a", "team-b"] {
        wasmbatch_tests::job_queue(&batch, team, 1, "shared").await;
    }
    module_and_definition(
        &batch,
        "exit-code",
        guests::wasip1::EXIT_CODE,
        &[],
        16,
        json!({}),
    )
    .await;
    let path = credentials_path(dir.path());
    let policy =
        |statement: Value| serde_json::from_value(json!({"Statement": statement})).unwrap();
    let alice = CredentialsFile::create_key(
        &path,
        "alice",
        policy(json!({"Effect": "Allow", "Action": "batch:DescribeJobs",
                      "Resource": "arn:aws:batch:*:*:job-queue/team-a"})),
    )
    .unwrap();
    let carol = CredentialsFile::create_key(
        &path,
        "carol",
        policy(json!({"Effect": "Allow", "Action": "batch:SubmitJob", "Resource": "*"})),
    )
    .unwrap();
    let server = serve(batch.clone(), Access::from_file(&path).unwrap()).await;

    let (code, mut events, _) =
        subscribe(server.address, "/v1/events", &signed(&alice, "/v1/events")).await;
    assert_eq!(code, 200);
    let mut ids = BTreeMap::new();
    for team in ["team-b", "team-a"] {
        let id = batch
            .submit_job(SubmitJob {
                job_name: team.into(),
                job_queue: team.into(),
                job_definition: "exit-code".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .job_id;
        finished(&batch, &id).await;
        ids.insert(team, id);
    }
    let seen = take(&mut events, 4).await;
    assert!(
        seen.iter()
            .all(|e| e.1["detail"]["jobId"] == ids["team-a"].as_str()),
        "{seen:?}"
    );
    assert!(
        quiet(&mut events).await.is_none(),
        "team-b's job stays hidden"
    );

    let (code, _, kind) =
        subscribe(server.address, "/v1/events", &signed(&carol, "/v1/events")).await;
    assert_eq!((code, kind.as_str()), (403, "AccessDeniedException"));
    server.stop().await;
}
