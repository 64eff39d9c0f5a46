//! Scheduling policies and the queues that name them, at the runtime's face: every bad member
//! is refused with the field named and leaves the service as it was; a queue's policy follows
//! AWS's rules (it must exist, it is replaced but never removed, a FIFO queue gets none, a
//! policy in use is not deleted); policies are listed by name a page at a time; a policy and
//! its queue survive a restart; a data dir of store format 3, which had no policies, opens with
//! its queues and jobs and takes policies; and a data dir of a newer format is refused.

use std::path::Path;

use serde_json::{Value, json};
use wasmbatch_runtime::model::scheduling::SchedulingPolicy;
use wasmbatch_runtime::model::validate::ValidationError;
use wasmbatch_runtime::model::{
    CreateJobQueue, CreateSchedulingPolicy, JobQueue, JobStatus, SubmitJob, UpdateJobQueue,
    UpdateSchedulingPolicy,
};
use wasmbatch_runtime::{Batch, BatchConfig, BatchError};
use wasmbatch_tests::{
    decode, describe, environment, finished, guests, job_queue, module_and_definition, reopen,
};

const ARN: &str = "arn:aws:batch:us-east-1:000000000000:scheduling-policy";

/// A policy `name` with two weighted shares, a decay window, a reservation and a tag.
fn policy(name: &str) -> CreateSchedulingPolicy {
    decode(json!({
        "name": name,
        "fairsharePolicy": {
            "shareDecaySeconds": 3600, "computeReservation": 25,
            "shareDistribution": [{"shareIdentifier": "teamA*", "weightFactor": 0.5},
                                  {"shareIdentifier": "teamB", "weightFactor": 2.0}]
        },
        "tags": {"owner": "render"}
    }))
}

/// CreateJobQueue `name` on environment `local` with `members` put over it.
fn queue(name: &str, members: Value) -> CreateJobQueue {
    let mut request = json!({"jobQueueName": name, "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]});
    for (key, value) in members.as_object().into_iter().flatten() {
        request[key] = value.clone();
    }
    decode(request)
}

/// A time-limit action cancelling jobs stuck RUNNABLE for `seconds` for `reason`.
fn action(reason: &str, seconds: i32) -> Value {
    json!({"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": seconds, "action": "CANCEL"})
}

/// A service with environment `local` (DISABLED: nothing runs), FIFO queue `fifo`, policy
/// `fair` and fair-share queue `shared` using it.
async fn service(dir: &Path) -> Batch {
    let batch = Batch::open(BatchConfig::new(dir)).await.unwrap();
    environment(&batch, "local", 2, "DISABLED").await;
    job_queue(&batch, "fifo", 1, "local").await;
    batch
        .create_scheduling_policy(policy("fair"))
        .await
        .unwrap();
    let shared = json!({"schedulingPolicyArn": "fair",
                        "jobStateTimeLimitActions": [action("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 1)]});
    batch
        .create_job_queue(queue("shared", shared))
        .await
        .unwrap();
    batch
}

/// Every policy and queue as described: what a refused request must leave as it was.
fn snapshot(batch: &Batch) -> (Vec<SchedulingPolicy>, Vec<JobQueue>) {
    let page = batch.list_scheduling_policies(None, None).unwrap();
    assert_eq!(page.next_token, None);
    (
        batch.describe_scheduling_policies(&page.arns).unwrap(),
        batch.describe_job_queues(&[]),
    )
}

/// The field a refusal names, with its message; panics on anything but a ClientException.
fn refusal<T: std::fmt::Debug>(result: Result<T, BatchError>) -> (String, String) {
    match result {
        Err(BatchError::Invalid(ValidationError { field, problem })) => (field, problem),
        Err(error) if error.is_client_error() => (String::new(), error.to_string()),
        other => panic!("expected a client error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_are_refused_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path()).await;
    let before = snapshot(&batch);

    let over = |members: Value| -> CreateSchedulingPolicy {
        let mut request = serde_json::to_value(policy("new")).unwrap();
        for (key, value) in members.as_object().into_iter().flatten() {
            request[key] = value.clone();
        }
        decode(request)
    };
    let shares = |entries: Value| over(json!({"fairsharePolicy": {"shareDistribution": entries}}));
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"shareIdentifier": format!("u{i}")}))
        .collect();
    let cases = [
        (over(json!({"name": "has space"})), "name", "' '"),
        (over(json!({"name": "n".repeat(129)})), "name", "129"),
        (
            over(json!({"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}})),
            "quotaSharePolicy",
            "fair share only",
        ),
        (
            over(json!({"fairsharePolicy": {"shareDecaySeconds": 604_801}})),
            "fairsharePolicy.shareDecaySeconds",
            "604801",
        ),
        (
            over(json!({"fairsharePolicy": {"shareDecaySeconds": -1}})),
            "fairsharePolicy.shareDecaySeconds",
            "-1",
        ),
        (
            over(json!({"fairsharePolicy": {"computeReservation": 100}})),
            "fairsharePolicy.computeReservation",
            "100",
        ),
        (
            shares(json!([{"shareIdentifier": "a", "weightFactor": 0.0}])),
            "fairsharePolicy.shareDistribution[0].weightFactor",
            "0.0001",
        ),
        (
            shares(json!([{"shareIdentifier": "a", "weightFactor": 1000.0}])),
            "fairsharePolicy.shareDistribution[0].weightFactor",
            "999.9999",
        ),
        (
            shares(json!([{"shareIdentifier": "team-a"}])),
            "fairsharePolicy.shareDistribution[0].shareIdentifier",
            "team-a",
        ),
        (
            shares(json!([{"shareIdentifier": "x".repeat(256)}])),
            "fairsharePolicy.shareDistribution[0].shareIdentifier",
            "255",
        ),
        (
            shares(json!([{"shareIdentifier": "UserA*"}, {"shareIdentifier": "UserA1"}])),
            "fairsharePolicy.shareDistribution[1].shareIdentifier",
            "overlaps \"UserA*\"",
        ),
        (
            shares(json!([{"shareIdentifier": "UserB"}, {"shareIdentifier": "UserB"}])),
            "fairsharePolicy.shareDistribution[1].shareIdentifier",
            "twice",
        ),
        (
            shares(json!(many)),
            "fairsharePolicy.shareDistribution",
            "at most 500",
        ),
        (over(json!({"tags": {"aws:x": "y"}})), "tags", "aws:"),
    ];
    for (request, field, named) in cases {
        let (refused, problem) = refusal(batch.create_scheduling_policy(request.clone()).await);
        assert_eq!(refused, field, "{request:?}: {problem}");
        assert!(
            problem.contains(named),
            "{field}: {problem:?} names {named:?}"
        );
    }
    let (_, problem) = refusal(batch.create_scheduling_policy(policy("fair")).await);
    assert!(problem.contains("already exists"), "{problem}");

    let update = |arn: &str, members: Value| -> UpdateSchedulingPolicy {
        let mut request = json!({"arn": arn});
        for (key, value) in members.as_object().into_iter().flatten() {
            request[key] = value.clone();
        }
        decode(request)
    };
    let fair = format!("{ARN}/fair");
    for (request, field, named) in [
        (
            update(
                &fair,
                json!({"fairsharePolicy": {"computeReservation": -1}}),
            ),
            "fairsharePolicy.computeReservation",
            "-1",
        ),
        (
            update(&fair, json!({"quotaSharePolicy": {}})),
            "quotaSharePolicy",
            "fairsharePolicy",
        ),
        (
            update(
                "arn:aws:batch:us-east-1:111111111111:scheduling-policy/fair",
                json!({}),
            ),
            "arn",
            "account",
        ),
        (
            update(
                "arn:aws:batch:us-east-1:000000000000:job-queue/fair",
                json!({}),
            ),
            "arn",
            "not of a scheduling-policy",
        ),
        (update(&format!("{ARN}/nope"), json!({})), "", "nope"),
    ] {
        let (refused, problem) = refusal(batch.update_scheduling_policy(request).await);
        assert_eq!(refused, field, "{problem}");
        assert!(
            problem.contains(named),
            "{field}: {problem:?} names {named:?}"
        );
    }
    let (refused, _) = refusal(batch.describe_scheduling_policies(&[
        "arn:aws-x:batch:us-east-1:000000000000:scheduling-policy/fair".into(),
    ]));
    assert_eq!(refused, "arns[0]");
    let (_, problem) = refusal(batch.delete_scheduling_policy("nope").await);
    assert!(
        problem.contains("scheduling policy nope does not exist"),
        "{problem}"
    );
    let (_, problem) = refusal(batch.delete_scheduling_policy(&fair).await);
    assert!(
        problem.contains("used by job queues shared"),
        "a policy in use stays: {problem}"
    );
    let (refused, _) = refusal(batch.list_scheduling_policies(Some(0), None));
    assert_eq!(refused, "maxResults");
    let (refused, _) = refusal(batch.list_scheduling_policies(Some(101), None));
    assert_eq!(refused, "maxResults");
    let (refused, _) = refusal(batch.list_scheduling_policies(None, Some("not a token")));
    assert_eq!(refused, "nextToken");

    assert_eq!(snapshot(&batch), before, "nothing above changed anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_names_an_existing_policy_keeps_it_and_takes_only_valid_time_limits() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path()).await;
    let before = snapshot(&batch);

    let reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY";
    let six: Vec<Value> = (0..6).map(|i| action(&format!("r{i}"), 600)).collect();
    let mut running = action(reason, 600);
    running["state"] = json!("RUNNING");
    let mut terminate = action(reason, 600);
    terminate["action"] = json!("TERMINATE");
    let creates = [
        (
            json!({"schedulingPolicyArn": "nope"}),
            "schedulingPolicyArn",
            "\"nope\" does not exist",
        ),
        (
            json!({"schedulingPolicyArn": "arn:aws:batch:eu-west-1:000000000000:scheduling-policy/fair"}),
            "schedulingPolicyArn",
            "region",
        ),
        (
            json!({"schedulingPolicyArn": "arn:aws:batch:us-east-1:000000000000:job-queue/fifo"}),
            "schedulingPolicyArn",
            "not of a scheduling-policy",
        ),
        (
            json!({"jobStateTimeLimitActions": [action(reason, 0)]}),
            "jobStateTimeLimitActions[0].maxTimeSeconds",
            "between 1 and 86400",
        ),
        (
            json!({"jobStateTimeLimitActions": [action(reason, 86_401)]}),
            "jobStateTimeLimitActions[0].maxTimeSeconds",
            "86401",
        ),
        (
            json!({"jobStateTimeLimitActions": [action("", 600)]}),
            "jobStateTimeLimitActions[0].reason",
            "1 to 1024",
        ),
        (
            json!({"jobStateTimeLimitActions": [action(&"r".repeat(1025), 600)]}),
            "jobStateTimeLimitActions[0].reason",
            "1025",
        ),
        (
            json!({"jobStateTimeLimitActions": [action(reason, 600), action(reason, 900)]}),
            "jobStateTimeLimitActions[1].reason",
            "twice",
        ),
        (
            json!({"jobStateTimeLimitActions": [running]}),
            "jobStateTimeLimitActions[0].state",
            "RUNNING",
        ),
        (
            json!({"jobStateTimeLimitActions": [terminate]}),
            "jobStateTimeLimitActions[0].action",
            "TERMINATE",
        ),
        (
            json!({"jobStateTimeLimitActions": six}),
            "jobStateTimeLimitActions",
            "at most 5",
        ),
    ];
    for (members, field, named) in creates {
        let (refused, problem) = refusal(batch.create_job_queue(queue("new", members)).await);
        assert_eq!(refused, field, "{problem}");
        assert!(
            problem.contains(named),
            "{field}: {problem:?} names {named:?}"
        );
    }

    let update = |queue: &str, members: Value| -> UpdateJobQueue {
        let mut request = json!({"jobQueue": queue});
        for (key, value) in members.as_object().into_iter().flatten() {
            request[key] = value.clone();
        }
        decode(request)
    };
    let policy_field = "schedulingPolicyArn";
    let updates = [
        (
            update(
                "fifo",
                json!({"schedulingPolicyArn": "fair", "priority": 7}),
            ),
            policy_field,
            "is a FIFO queue",
        ),
        (
            update("shared", json!({"schedulingPolicyArn": "", "priority": 7})),
            policy_field,
            "not removed",
        ),
        (
            update(
                "shared",
                json!({"schedulingPolicyArn": "nope", "priority": 7}),
            ),
            policy_field,
            "does not exist",
        ),
        (
            update(
                "shared",
                json!({"jobStateTimeLimitActions": [action(reason, 0)], "priority": 7}),
            ),
            "jobStateTimeLimitActions[0].maxTimeSeconds",
            "got 0",
        ),
    ];
    for (request, field, named) in updates {
        let (refused, problem) = refusal(batch.update_job_queue(request).await);
        assert_eq!(refused, field, "{problem}");
        assert!(
            problem.contains(named),
            "{field}: {problem:?} names {named:?}"
        );
    }
    assert_eq!(snapshot(&batch), before, "nothing above changed anything");

    // What is kept: the canonical ARN whatever the spelling, and the actions as given.
    let (_, queues) = &before;
    let shared = queues
        .iter()
        .find(|q| q.job_queue_name == "shared")
        .unwrap();
    assert_eq!(
        shared.scheduling_policy_arn.as_deref(),
        Some(format!("{ARN}/fair").as_str())
    );
    assert_eq!(shared.job_state_time_limit_actions.len(), 1);
    assert_eq!(shared.job_state_time_limit_actions[0].max_time_seconds, 1);

    // A fair-share queue's policy is replaced; its actions replaced, then removed.
    batch
        .create_scheduling_policy(policy("other"))
        .await
        .unwrap();
    let replaced = batch
        .update_job_queue(update(
            "shared",
            json!({"schedulingPolicyArn": format!("{ARN}/other"),
                   "jobStateTimeLimitActions": [action(reason, 86_400)]}),
        ))
        .await
        .unwrap();
    assert_eq!(
        replaced.scheduling_policy_arn.as_deref(),
        Some(format!("{ARN}/other").as_str())
    );
    assert_eq!(replaced.job_state_time_limit_actions[0].reason, reason);
    let cleared = batch
        .update_job_queue(update("shared", json!({"jobStateTimeLimitActions": []})))
        .await
        .unwrap();
    assert!(cleared.job_state_time_limit_actions.is_empty());
    assert_eq!(
        cleared.scheduling_policy_arn, replaced.scheduling_policy_arn,
        "left out, the policy stays"
    );

    // `fair` is free now; `other` is not, until its queue is gone.
    batch.delete_scheduling_policy("fair").await.unwrap();
    assert!(batch.delete_scheduling_policy("other").await.is_err());
    batch
        .update_job_queue(update("shared", json!({"state": "DISABLED"})))
        .await
        .unwrap();
    batch.delete_job_queue("shared").await.unwrap();
    batch
        .delete_scheduling_policy(&format!("{ARN}/other"))
        .await
        .unwrap();
    assert!(
        batch
            .list_scheduling_policies(None, None)
            .unwrap()
            .arns
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_listed_by_name_a_page_at_a_time_and_tagged_by_arn() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    for name in ["e", "b", "d", "a", "c"] {
        batch.create_scheduling_policy(policy(name)).await.unwrap();
    }
    let first = batch.list_scheduling_policies(Some(2), None).unwrap();
    assert_eq!(first.arns, [format!("{ARN}/a"), format!("{ARN}/b")]);
    // A policy deleted between pages and one added before the token neither repeat nor hide
    // another.
    batch.delete_scheduling_policy("c").await.unwrap();
    batch.create_scheduling_policy(policy("aa")).await.unwrap();
    let second = batch
        .list_scheduling_policies(Some(2), first.next_token.as_deref())
        .unwrap();
    assert_eq!(second.arns, [format!("{ARN}/d"), format!("{ARN}/e")]);
    assert_eq!(second.next_token, None, "nothing after e");

    let arn = format!("{ARN}/a");
    assert_eq!(batch.list_tags(&arn).unwrap()["owner"], "render");
    let add = [("cost".to_string(), "42".to_string())].into();
    batch
        .tag_resource(&arn, add, &["owner".to_string()])
        .await
        .unwrap();
    let tags = batch.list_tags(&arn).unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags["cost"], "42");
    let described = batch
        .describe_scheduling_policies(&[arn.clone(), "nope".into(), "b".into()])
        .unwrap();
    let names: Vec<&str> = described.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["a", "b"],
        "in the order asked, the unknown left out"
    );
    assert_eq!(described[0].tags, tags);
    assert!(batch.list_tags(&format!("{ARN}/c")).is_err(), "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_and_the_queue_using_it_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let batch = service(dir.path()).await;
    let updated = batch
        .update_scheduling_policy(decode(json!({
            "arn": format!("{ARN}/fair"),
            "fairsharePolicy": {"computeReservation": 50,
                                "shareDistribution": [{"shareIdentifier": "teamC", "weightFactor": 0.125}]}
        })))
        .await
        .unwrap();
    let fairshare = updated.fairshare_policy.as_ref().unwrap();
    assert_eq!(
        fairshare.share_decay_seconds, None,
        "replaced whole, as on AWS"
    );
    assert_eq!(fairshare.compute_reservation, Some(50));
    assert_eq!(fairshare.share_distribution.len(), 1);
    let before = snapshot(&batch);

    let batch = reopen(batch, BatchConfig::new(dir.path())).await;
    assert_eq!(snapshot(&batch), before);
    let (policies, _) = &before;
    assert_eq!(policies[0], updated);
    assert_eq!(policies[0].tags["owner"], "render");
    let (_, problem) = refusal(batch.delete_scheduling_policy("fair").await);
    assert!(problem.contains("shared"), "still in use: {problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_store_format_3_opens_with_its_queues_and_jobs_and_takes_policies() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    environment(&batch, "local", 2, "DISABLED").await;
    job_queue(&batch, "main", 1, "local").await;
    module_and_definition(&batch, "hello", guests::wasip1::HELLO, &[], 16, json!({})).await;
    let waiting = batch
        .submit_job(SubmitJob {
            job_name: "waiting".into(),
            job_queue: "main".into(),
            job_definition: "hello".into(),
            ..SubmitJob::default()
        })
        .await
        .unwrap()
        .job_id;
    batch.close("downgrade").await.unwrap();
    wasmbatch_tests::rewrite_store_format(dir.path(), 3, &["scheduling_policies", "job_events"]);
    assert_eq!(wasmbatch_tests::store_format(dir.path()), 3);
    assert_eq!(
        wasmbatch_tests::stored_records(dir.path(), "scheduling_policies"),
        None
    );

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    assert_eq!(batch.describe_job_queues(&["main".into()]).len(), 1);
    assert_eq!(describe(&batch, &waiting).status, JobStatus::Runnable);
    assert!(
        batch
            .list_scheduling_policies(None, None)
            .unwrap()
            .arns
            .is_empty()
    );
    batch
        .create_scheduling_policy(policy("fair"))
        .await
        .unwrap();
    batch
        .create_job_queue(queue("shared", json!({"schedulingPolicyArn": "fair"})))
        .await
        .unwrap();
    batch
        .update_compute_environment(decode(
            json!({"computeEnvironment": "local", "state": "ENABLED"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        finished(&batch, &waiting).await.status,
        JobStatus::Succeeded
    );
    batch.close("upgraded").await.unwrap();
    assert_eq!(wasmbatch_tests::store_format(dir.path()), 6);
    assert_eq!(
        wasmbatch_tests::stored_records(dir.path(), "scheduling_policies"),
        Some(1)
    );

    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    let shared = batch.describe_job_queues(&["shared".into()]);
    assert_eq!(
        shared[0].scheduling_policy_arn.as_deref(),
        Some(format!("{ARN}/fair").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_a_newer_store_format_is_refused_naming_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    batch.close("downgrade").await.unwrap();
    wasmbatch_tests::rewrite_store_format(dir.path(), 7, &[]);

    let error = Batch::open(BatchConfig::new(dir.path()))
        .await
        .err()
        .expect("a newer format is refused");
    let message = error.to_string();
    assert!(
        message.contains("store format 7") && message.contains("formats up to 6"),
        "{message}"
    );
    assert!(!error.is_client_error(), "{message}");
    assert_eq!(
        wasmbatch_tests::store_format(dir.path()),
        7,
        "left as it was"
    );
}
