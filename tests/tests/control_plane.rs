//! The embedded control plane end to end: environments, queues, definitions, modules and jobs
//! through `Batch`, with real guests, as AWS Batch documents the behaviour.

use std::time::Duration;

use serde_json::json;
use wasmbatch_runtime::model::{
    ArrayJobDependency, ArrayProperties, ComputeEnvironmentOrder, ComputeEnvironmentType,
    ComputeResources, ContainerOverrides, CreateComputeEnvironment, CreateJobQueue, JobDependency,
    JobStatus, JobTimeout, KeyValuesPair, ListJobs, RegisterJobDefinition, State, SubmitJob,
    UpdateJobQueue,
};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{describe, finished, guests};

async fn service() -> (Batch, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    setup(&batch).await;
    (batch, dir)
}

/// A 4-vCPU environment, a queue on it, and the guest modules pushed.
async fn setup(batch: &Batch) {
    batch
        .create_compute_environment(CreateComputeEnvironment {
            compute_environment_name: "local".into(),
            kind: ComputeEnvironmentType::Managed,
            state: None,
            compute_resources: Some(ComputeResources {
                kind: "EC2".into(),
                minv_cpus: None,
                maxv_cpus: 4,
                desiredv_cpus: None,
                extra: Default::default(),
            }),
            memory_mib: Some(4096),
            tags: Default::default(),
            extra: Default::default(),
        })
        .await
        .unwrap();
    batch
        .create_job_queue(CreateJobQueue {
            job_queue_name: "main".into(),
            state: None,
            priority: 1,
            compute_environment_order: vec![ComputeEnvironmentOrder {
                order: 1,
                compute_environment: "local".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, path) in [
        ("hello", guests::wasip1::HELLO),
        ("exit-code", guests::wasip1::EXIT_CODE),
        ("sleep", guests::wasip2::SLEEP),
    ] {
        batch.push_module(name, guests::bytes(path)).await.unwrap();
    }
}

async fn define(
    batch: &Batch,
    name: &str,
    image: &str,
    command: &[&str],
    extra: serde_json::Value,
) -> String {
    let mut request = json!({
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": {
            "image": image,
            "command": command,
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    let request: RegisterJobDefinition = serde_json::from_value(request).unwrap();
    batch
        .register_job_definition(request)
        .await
        .unwrap()
        .job_definition_arn
}

fn submit(name: &str, definition: &str) -> SubmitJob {
    SubmitJob {
        job_name: name.into(),
        job_queue: "main".into(),
        job_definition: definition.into(),
        ..SubmitJob::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_with_its_parameters_and_records_its_attempt() {
    let (batch, _dir) = service().await;
    let definition = define(
        &batch,
        "greet",
        "hello",
        &["Ref::who"],
        json!({"parameters": {"who": "default"}}),
    )
    .await;
    let mut request = submit("greeting", &definition);
    request.parameters.insert("who".into(), "world".into());
    let submitted = batch.submit_job(request).await.unwrap();
    let job = finished(&batch, &submitted.job_id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.attempts.len(), 1);
    let attempt = &job.attempts[0];
    assert_eq!(attempt.exit_code, Some(0));
    assert!(attempt.started_at.unwrap() <= attempt.stopped_at.unwrap());
    assert!(
        attempt.fuel_consumed.unwrap() > 0,
        "the work it did is recorded"
    );
    assert!(
        attempt.peak_memory_bytes.unwrap() >= 64 * 1024,
        "at least one wasm page"
    );
    assert!(job.created_at <= job.started_at.unwrap());
    assert_eq!(
        job.job_queue,
        "arn:aws:batch:us-east-1:000000000000:job-queue/main"
    );
    assert_eq!(
        job.job_definition,
        "arn:aws:batch:us-east-1:000000000000:job-definition/greet:1"
    );
    let stream = attempt.log_stream_name.clone().unwrap();
    assert_eq!(stream, format!("greet/default/{}-1", job.job_id));
    assert_eq!(
        batch.log_stream(&job.job_id, None).as_deref(),
        Some(stream.as_str())
    );
    let lines: Vec<String> = batch
        .log_events(&stream)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        lines,
        [
            r#"hello from wasmbatch: args=["hello", "world"]"#.to_string(),
            "AWS_BATCH_CE_NAME=local".into(),
            "AWS_BATCH_JOB_ATTEMPT=1".into(),
            format!("AWS_BATCH_JOB_ID={}", job.job_id),
            "AWS_BATCH_JQ_NAME=main".into(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_can_be_followed_while_the_job_runs_and_are_kept_after() {
    let (batch, dir) = service().await;
    let sleeper = define(&batch, "sleeper", "sleep", &[], json!({})).await;
    let id = batch
        .submit_job(submit("long", &sleeper))
        .await
        .unwrap()
        .job_id;
    let stream = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(stream) = batch.log_stream(&id, None) {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let (events, more) =
        tokio::time::timeout(Duration::from_secs(30), batch.follow_log(&stream, 0))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["sleeping"]
    );
    assert!(more, "the attempt is still running");
    let waiting = tokio::spawn({
        let (batch, stream) = (batch.clone(), stream.clone());
        async move { batch.follow_log(&stream, 1).await.unwrap() }
    });
    batch.terminate_job(&id, "enough").await.unwrap();
    let (rest, more) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(
        rest.is_empty() && !more,
        "the follower is told the attempt ended"
    );

    // Kept durably: a new process reads them back.
    finished(&batch, &id).await;
    batch.close("restart").await.unwrap();
    let reopened = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let kept = reopened.log_events(&stream).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message, "sleeping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_as_the_strategy_says() {
    let (batch, _dir) = service().await;
    let retries = define(
        &batch,
        "fail3",
        "exit-code",
        &["3"],
        json!({"retryStrategy": {"attempts": 3}}),
    )
    .await;
    let job = finished(
        &batch,
        &batch
            .submit_job(submit("retried", &retries))
            .await
            .unwrap()
            .job_id,
    )
    .await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts.len(), 3);
    assert!(job.attempts.iter().all(|a| a.exit_code == Some(3)));

    let exit_on_3 = define(
        &batch,
        "fail3-exit",
        "exit-code",
        &["3"],
        json!({"retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "EXIT"}]}}),
    )
    .await;
    let job = finished(
        &batch,
        &batch
            .submit_job(submit("not-retried", &exit_on_3))
            .await
            .unwrap()
            .job_id,
    )
    .await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_fails_the_job_without_retry() {
    let (batch, _dir) = service().await;
    let sleeper = define(
        &batch,
        "sleeper",
        "sleep",
        &[],
        json!({"timeout": {"attemptDurationSeconds": 1}, "retryStrategy": {"attempts": 3}}),
    )
    .await;
    let job = finished(
        &batch,
        &batch
            .submit_job(submit("slow", &sleeper))
            .await
            .unwrap()
            .job_id,
    )
    .await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts.len(), 1, "{job:?}");
    assert!(
        job.status_reason
            .as_deref()
            .unwrap()
            .contains("exceeded timeout"),
        "{job:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_wait_for_success_and_fail_with_their_dependency() {
    let (batch, _dir) = service().await;
    let ok = define(&batch, "ok", "exit-code", &["0"], json!({})).await;
    let bad = define(&batch, "bad", "exit-code", &["1"], json!({})).await;
    let first = batch.submit_job(submit("first", &ok)).await.unwrap().job_id;
    let failing = batch
        .submit_job(submit("failing", &bad))
        .await
        .unwrap()
        .job_id;
    let mut after_ok = submit("after-ok", &ok);
    after_ok.depends_on = vec![JobDependency {
        job_id: Some(first.clone()),
        kind: None,
    }];
    let after_ok = batch.submit_job(after_ok).await.unwrap().job_id;
    let mut after_bad = submit("after-bad", &ok);
    after_bad.depends_on = vec![JobDependency {
        job_id: Some(failing.clone()),
        kind: None,
    }];
    let after_bad = batch.submit_job(after_bad).await.unwrap().job_id;
    let mut transitively = submit("transitively", &ok);
    transitively.depends_on = vec![JobDependency {
        job_id: Some(after_bad.clone()),
        kind: None,
    }];
    let transitively = batch.submit_job(transitively).await.unwrap().job_id;

    let done = finished(&batch, &after_ok).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(done.started_at.unwrap() >= describe(&batch, &first).stopped_at.unwrap());
    for id in [&after_bad, &transitively] {
        let job = finished(&batch, id).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert!(
            job.attempts.is_empty(),
            "a job whose dependency failed never runs"
        );
        assert!(
            job.status_reason
                .as_deref()
                .unwrap()
                .starts_with("Dependent Job failed"),
            "{job:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_jobs_fan_out_and_sequential_children_run_in_order() {
    let (batch, _dir) = service().await;
    let hello = define(&batch, "hello", "hello", &[], json!({})).await;
    let mut request = submit("fan", &hello);
    request.array_properties = Some(ArrayProperties { size: Some(50) });
    let parent = batch.submit_job(request).await.unwrap().job_id;
    let job = finished(&batch, &parent).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let summary = batch.array_summary(&parent).unwrap();
    assert_eq!(summary.get(&JobStatus::Succeeded), Some(&50));
    let child = describe(&batch, &format!("{parent}:7"));
    assert_eq!(child.array_properties.unwrap().index, Some(7));

    let mut sequential = submit("chain", &hello);
    sequential.array_properties = Some(ArrayProperties { size: Some(5) });
    sequential.depends_on = vec![JobDependency {
        job_id: None,
        kind: Some(ArrayJobDependency::Sequential),
    }];
    let chain = batch.submit_job(sequential).await.unwrap().job_id;
    assert_eq!(finished(&batch, &chain).await.status, JobStatus::Succeeded);
    for i in 1..5 {
        let before = describe(&batch, &format!("{chain}:{}", i - 1));
        let after = describe(&batch, &format!("{chain}:{i}"));
        assert!(
            after.started_at.unwrap() >= before.stopped_at.unwrap(),
            "child {i} started before {} ended",
            i - 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_waiting_jobs_and_terminate_kills_running_ones() {
    let (batch, _dir) = service().await;
    let sleeper = define(
        &batch,
        "sleeper",
        "sleep",
        &[],
        json!({"retryStrategy": {"attempts": 5}}),
    )
    .await;
    let running = batch
        .submit_job(submit("long", &sleeper))
        .await
        .unwrap()
        .job_id;
    tokio::time::timeout(Duration::from_secs(30), async {
        while describe(&batch, &running).status != JobStatus::Running {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // Cancel does not touch a running job, and still succeeds.
    batch.cancel_job(&running, "too late").await.unwrap();
    assert_eq!(describe(&batch, &running).status, JobStatus::Running);
    batch
        .terminate_job(&running, "stopped by the operator")
        .await
        .unwrap();
    let job = finished(&batch, &running).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.is_terminated);
    assert_eq!(job.attempts.len(), 1, "a terminated job is not retried");
    assert_eq!(
        job.status_reason.as_deref(),
        Some("stopped by the operator")
    );

    // Work is held by a DISABLED compute environment, as on AWS.
    let environment = |state: &str| {
        serde_json::from_value(json!({"computeEnvironment": "local", "state": state})).unwrap()
    };
    batch
        .update_compute_environment(environment("DISABLED"))
        .await
        .unwrap();
    let waiting = batch
        .submit_job(submit("waiting", &sleeper))
        .await
        .unwrap()
        .job_id;
    let mut short = submit("held", &sleeper);
    short.container_overrides = Some(ContainerOverrides {
        command: Some(vec!["10".into()]),
        ..Default::default()
    });
    let held = batch.submit_job(short).await.unwrap().job_id;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        describe(&batch, &waiting).status,
        JobStatus::Runnable,
        "a DISABLED environment runs nothing"
    );
    batch.cancel_job(&waiting, "not needed").await.unwrap();
    let job = describe(&batch, &waiting);
    assert_eq!((job.status, job.is_cancelled), (JobStatus::Failed, true));
    assert_eq!(job.status_reason.as_deref(), Some("not needed"));

    // A DISABLED queue takes no new job, and still runs the ones it has (AWS).
    batch
        .update_job_queue(UpdateJobQueue {
            job_queue: "main".into(),
            state: Some(State::Disabled),
            ..Default::default()
        })
        .await
        .unwrap();
    let error = batch
        .submit_job(submit("refused", &sleeper))
        .await
        .unwrap_err();
    assert!(error.is_client_error(), "{error}");
    assert!(
        error.to_string().starts_with("jobQueue:") && error.to_string().contains("is DISABLED"),
        "{error}"
    );
    batch
        .update_compute_environment(environment("ENABLED"))
        .await
        .unwrap();
    assert_eq!(finished(&batch, &held).await.status, JobStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_module_is_missing_fails_saying_so() {
    let (batch, _dir) = service().await;
    let ghost = define(&batch, "ghost", "no-such-module", &[], json!({})).await;
    let job = finished(
        &batch,
        &batch
            .submit_job(submit("ghost", &ghost))
            .await
            .unwrap()
            .job_id,
    )
    .await;
    assert_eq!(job.status, JobStatus::Failed);
    let reason = job.status_reason.unwrap();
    assert!(
        reason.contains("CannotPullContainerError") && reason.contains("no-such-module"),
        "{reason}"
    );

    let hello = define(&batch, "hello", "hello", &[], json!({})).await;
    batch.delete_module("hello").await.unwrap();
    let job = finished(
        &batch,
        &batch
            .submit_job(submit("after-delete", &hello))
            .await
            .unwrap()
            .job_id,
    )
    .await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.status_reason
            .unwrap()
            .contains("\"hello\" was not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_field_and_change_nothing() {
    let (batch, _dir) = service().await;
    let hello = define(&batch, "hello", "hello", &[], json!({})).await;
    let error = batch
        .submit_job(submit("has space", &hello))
        .await
        .unwrap_err();
    assert!(error.is_client_error());
    assert!(error.to_string().starts_with("jobName:"), "{error}");

    let mut unknown_queue = submit("x", &hello);
    unknown_queue.job_queue = "nope".into();
    assert!(
        batch
            .submit_job(unknown_queue)
            .await
            .unwrap_err()
            .to_string()
            .contains("job queue nope does not exist")
    );

    let mut too_many = submit("deps", &hello);
    too_many.depends_on = vec![
        JobDependency {
            job_id: Some("x".into()),
            kind: None
        };
        21
    ];
    assert!(
        batch
            .submit_job(too_many)
            .await
            .unwrap_err()
            .to_string()
            .contains("more than 20 dependencies")
    );

    let mut huge = submit("huge", &hello);
    huge.array_properties = Some(ArrayProperties { size: Some(10_001) });
    assert!(
        batch
            .submit_job(huge)
            .await
            .unwrap_err()
            .to_string()
            .starts_with("arrayProperties.size")
    );

    let mut unknown_dependency = submit("orphan", &hello);
    unknown_dependency.depends_on = vec![JobDependency {
        job_id: Some("no-such-job".into()),
        kind: None,
    }];
    assert!(
        batch
            .submit_job(unknown_dependency)
            .await
            .unwrap_err()
            .to_string()
            .starts_with("dependsOn[0].jobId")
    );

    let mut fuel_typo = submit("typo", &hello);
    fuel_typo.container_overrides = Some(
        serde_json::from_value::<ContainerOverrides>(
            json!({"resourceRequirements": [{"type": "FUEL", "value": "lots"}]}),
        )
        .unwrap(),
    );
    assert!(
        batch
            .submit_job(fuel_typo)
            .await
            .unwrap_err()
            .to_string()
            .contains("FUEL")
    );
    let mut timeout = submit("zero", &hello);
    timeout.timeout = Some(JobTimeout {
        attempt_duration_seconds: Some(0),
    });
    assert!(batch.submit_job(timeout).await.is_err());

    // None of these made a job.
    let everything = wasmbatch_runtime::model::ListJobs {
        job_queue: Some("main".into()),
        filters: vec![wasmbatch_runtime::model::KeyValuesPair {
            name: Some("JOB_NAME".into()),
            values: vec!["*".into()],
        }],
        ..Default::default()
    };
    assert!(batch.list_jobs(&everything).unwrap().jobs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_is_still_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (done, definition) = {
        let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
        setup(&batch).await;
        let definition = define(&batch, "hello", "hello", &[], json!({})).await;
        let done = batch
            .submit_job(submit("before", &definition))
            .await
            .unwrap()
            .job_id;
        finished(&batch, &done).await;
        batch.close("restart").await.unwrap();
        (done, definition)
    };
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    assert_eq!(describe(&batch, &done).status, JobStatus::Succeeded);
    assert_eq!(batch.describe_job_queues(&[]).len(), 1);
    assert_eq!(batch.modules().len(), 3);
    let again = batch
        .submit_job(submit("after", &definition))
        .await
        .unwrap()
        .job_id;
    assert_eq!(finished(&batch, &again).await.status, JobStatus::Succeeded);
}

/// The job's timeout, under tokio's paused clock: an hour-long attemptDurationSeconds ends the
/// attempt without an hour passing, and the job fails without retry.
#[tokio::test(start_paused = true)]
async fn an_attempt_duration_of_an_hour_times_out_on_a_paused_clock() {
    let (batch, _dir) = service().await;
    let sleeper = define(
        &batch,
        "hour",
        "sleep",
        &[],
        json!({"timeout": {"attemptDurationSeconds": 3600}, "retryStrategy": {"attempts": 2}}),
    )
    .await;
    let real = std::time::Instant::now();
    let id = batch
        .submit_job(submit("hour", &sleeper))
        .await
        .unwrap()
        .job_id;
    // Polled in virtual minutes: each sleep lets the paused clock jump, and the attempt's
    // deadline is just another timer on the way.
    let mut job = describe(&batch, &id);
    for _ in 0..200 {
        if job.status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        job = describe(&batch, &id);
    }
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts.len(), 1);
    assert!(job.status_reason.unwrap().contains("timeout of 3600s"));
    assert!(real.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_filters_pages_newest_first_and_n_to_n_children_pair_up() {
    let (batch, _dir) = service().await;
    let hello = define(&batch, "hello", "hello", &[], json!({})).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 {
            format!("even-{i}")
        } else {
            format!("Odd-{i}")
        };
        ids.push(
            batch
                .submit_job(submit(&name, &hello))
                .await
                .unwrap()
                .job_id,
        );
    }
    for id in &ids {
        finished(&batch, id).await;
    }
    // Without a status or filter only RUNNING jobs are listed: none now.
    let running = ListJobs {
        job_queue: Some("main".into()),
        ..Default::default()
    };
    assert!(batch.list_jobs(&running).unwrap().jobs.is_empty());
    // SUCCEEDED, three per page, newest first, until the token runs out.
    let mut request = ListJobs {
        job_queue: Some("main".into()),
        job_status: Some(JobStatus::Succeeded),
        max_results: Some(3),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = batch.list_jobs(&request).unwrap();
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.into_iter().map(|j| j.job_id));
        match page.next_token {
            Some(token) => request.next_token = Some(token),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    // JOB_NAME is case-insensitive with a trailing * for a prefix, and overrides the status.
    let by_name = ListJobs {
        job_queue: Some("main".into()),
        filters: vec![KeyValuesPair {
            name: Some("JOB_NAME".into()),
            values: vec!["odd*".into()],
        }],
        ..Default::default()
    };
    let names: Vec<String> = batch
        .list_jobs(&by_name)
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.job_name)
        .collect();
    assert_eq!(names, ["Odd-5", "Odd-3", "Odd-1"]);
    let bad = ListJobs {
        max_results: Some(1001),
        ..request.clone()
    };
    assert!(
        batch
            .list_jobs(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("maxResults")
    );
    let bad_token = ListJobs {
        next_token: Some("garbage".into()),
        ..request
    };
    assert!(
        batch
            .list_jobs(&bad_token)
            .unwrap_err()
            .to_string()
            .starts_with("nextToken")
    );

    // N_TO_N: child i of the second array waits for child i of the first.
    let mut first = submit("first", &hello);
    first.array_properties = Some(ArrayProperties { size: Some(3) });
    let first = batch.submit_job(first).await.unwrap().job_id;
    let mut second = submit("second", &hello);
    second.array_properties = Some(ArrayProperties { size: Some(3) });
    second.depends_on = vec![JobDependency {
        job_id: Some(first.clone()),
        kind: Some(ArrayJobDependency::NToN),
    }];
    let second = batch.submit_job(second).await.unwrap().job_id;
    assert_eq!(finished(&batch, &second).await.status, JobStatus::Succeeded);
    for i in 0..3 {
        let before = describe(&batch, &format!("{first}:{i}"));
        let after = describe(&batch, &format!("{second}:{i}"));
        assert!(after.started_at.unwrap() >= before.stopped_at.unwrap());
    }
    let mut mismatched = submit("mismatched", &hello);
    mismatched.array_properties = Some(ArrayProperties { size: Some(4) });
    mismatched.depends_on = vec![JobDependency {
        job_id: Some(first),
        kind: Some(ArrayJobDependency::NToN),
    }];
    assert!(
        batch
            .submit_job(mismatched)
            .await
            .unwrap_err()
            .to_string()
            .contains("same size")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_in_use_cannot_be_deleted() {
    let (batch, _dir) = service().await;
    let sleeper = define(&batch, "sleeper", "sleep", &[], json!({})).await;
    let busy = batch
        .submit_job(submit("busy", &sleeper))
        .await
        .unwrap()
        .job_id;
    let error = batch.delete_compute_environment("local").await.unwrap_err();
    assert!(error.to_string().contains("must be DISABLED"), "{error}");
    batch
        .update_job_queue(UpdateJobQueue {
            job_queue: "main".into(),
            state: Some(State::Disabled),
            ..Default::default()
        })
        .await
        .unwrap();
    let error = batch.delete_job_queue("main").await.unwrap_err();
    assert!(error.to_string().contains("still has 1 jobs"), "{error}");
    batch.terminate_job(&busy, "cleanup").await.unwrap();
    finished(&batch, &busy).await;
    batch
        .delete_job_queue("arn:aws:batch:us-east-1:000000000000:job-queue/main")
        .await
        .unwrap();
    assert!(batch.describe_job_queues(&[]).is_empty());
    batch
        .update_compute_environment(
            serde_json::from_value(json!({"computeEnvironment": "local", "state": "DISABLED"}))
                .unwrap(),
        )
        .await
        .unwrap();
    batch.delete_compute_environment("local").await.unwrap();
    assert!(batch.describe_compute_environments(&[]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_on_the_same_data_dir_is_refused() {
    let (_batch, dir) = service().await;
    let error = Batch::open(BatchConfig::new(dir.path()))
        .await
        .err()
        .expect("a second open must fail");
    assert!(!error.is_client_error());
    assert!(error.to_string().contains("wasmbatch.redb"), "{error}");
}
