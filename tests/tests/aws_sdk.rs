//! wasmbatch driven by aws-sdk-rust, unchanged but for the endpoint: aws-sdk-batch for the
//! service and aws-sdk-cloudwatchlogs for the output, against a server on a loopback port.
//! What an SDK cannot send (malformed JSON, wrong types, unknown members) is covered in
//! http_api.rs.

use std::time::Duration;

use aws_sdk_batch::error::ProvideErrorMetadata;
use aws_sdk_batch::types::{
    ArrayJobDependency, ArrayProperties, CeState, CeType, ComputeEnvironmentOrder, ComputeResource,
    ComputeResourceUpdate, ContainerOverrides, ContainerProperties, CrType, EvaluateOnExit,
    JobDependency, JobDetail, JobStatus, JobTimeout, JqState, KeyValuePair, KeyValuesPair,
    ResourceRequirement, ResourceType, RetryAction, RetryStrategy,
};
use wasmbatch_api::access::credentials::{CredentialsFile, Key, credentials_path};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::guests;

/// A server on port 0 over a fresh data dir, with SDK clients pointed at it.
struct Server {
    batch: Batch,
    client: aws_sdk_batch::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// In local-development mode: any key is accepted and may do anything.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::serve(dir, wasmbatch_api::Access::local(), "AKIDTEST", "secret").await
    }

    /// Checking signatures against one key per `(name, policy)`; `client` and `logs` sign with
    /// the first, [`Server::client_for`] with any.
    async fn with_keys(keys: &[(&str, serde_json::Value)]) -> (Self, Vec<Key>) {
        let dir = tempfile::tempdir().unwrap();
        let path = credentials_path(dir.path());
        let keys: Vec<Key> = keys
            .iter()
            .map(|(name, policy)| {
                CredentialsFile::create_key(
                    &path,
                    name,
                    serde_json::from_value(policy.clone()).unwrap(),
                )
                .unwrap()
            })
            .collect();
        let access = wasmbatch_api::Access::from_file(&path).unwrap();
        let server = Self::serve(
            dir,
            access,
            &keys[0].access_key_id,
            &keys[0].secret_access_key,
        )
        .await;
        (server, keys)
    }

    async fn serve(
        dir: tempfile::TempDir,
        access: wasmbatch_api::Access,
        id: &str,
        secret: &str,
    ) -> Self {
        let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(wasmbatch_api::serve(
            listener,
            batch.clone(),
            access,
            async {
                let _ = stopped.await;
            },
        ));
        let client = client(&endpoint, id, secret);
        let credentials = aws_sdk_batch::config::Credentials::new(id, secret, None, None, "test");
        let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::Config::builder()
                .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
                .credentials_provider(credentials)
                .endpoint_url(&endpoint)
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .build(),
        );
        Self {
            batch,
            client,
            logs,
            endpoint,
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// A client signing with `key`.
    fn client_for(&self, key: &Key) -> aws_sdk_batch::Client {
        client(&self.endpoint, &key.access_key_id, &key.secret_access_key)
    }

    /// An environment `env` of `vcpus` and a queue `queue` on it, made through the SDK.
    async fn queue(&self, env: &str, queue: &str, vcpus: i32) {
        self.client
            .create_compute_environment()
            .compute_environment_name(env)
            .r#type(CeType::Managed)
            .state(CeState::Enabled)
            .compute_resources(
                ComputeResource::builder()
                    .r#type(CrType::Ec2)
                    .maxv_cpus(vcpus)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        self.client
            .create_job_queue()
            .job_queue_name(queue)
            .priority(1)
            .compute_environment_order(
                ComputeEnvironmentOrder::builder()
                    .order(1)
                    .compute_environment(env)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Pushes `path` as module `name` and registers definition `name` running it.
    async fn definition(&self, name: &str, path: &str, command: &[&str]) {
        self.batch
            .push_module(name, guests::bytes(path))
            .await
            .unwrap();
        self.client
            .register_job_definition()
            .job_definition_name(name)
            .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
            .container_properties(container(name, command))
            .send()
            .await
            .unwrap();
    }

    async fn submit(&self, name: &str, queue: &str, definition: &str) -> String {
        self.client
            .submit_job()
            .job_name(name)
            .job_queue(queue)
            .job_definition(definition)
            .send()
            .await
            .unwrap()
            .job_id
            .unwrap()
    }

    async fn describe(&self, id: &str) -> JobDetail {
        let mut jobs = self
            .client
            .describe_jobs()
            .jobs(id)
            .send()
            .await
            .unwrap()
            .jobs
            .unwrap_or_default();
        assert_eq!(jobs.len(), 1, "job {id}");
        jobs.remove(0)
    }

    /// Describes `id` until it is SUCCEEDED or FAILED.
    async fn wait(&self, id: &str) -> JobDetail {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let job = self.describe(id).await;
                if matches!(job.status, Some(JobStatus::Succeeded | JobStatus::Failed)) {
                    return job;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("job {id} did not end"))
    }

    async fn wait_for(&self, id: &str, status: JobStatus) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while self.describe(id).await.status.as_ref() != Some(&status) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("job {id} never became {status}"));
    }

    /// Every message of a log stream, read with GetLogEvents from the head, page by page.
    async fn log(&self, stream: &str) -> Vec<String> {
        let mut messages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .logs
                .get_log_events()
                .log_group_name("/aws/batch/job")
                .log_stream_name(stream)
                .start_from_head(true)
                .limit(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            messages.extend(
                page.events
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| e.message),
            );
            if page.next_forward_token == token {
                return messages;
            }
            token = page.next_forward_token;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What an SDK user writes, but for the plain-HTTP client: TLS is not needed on loopback and
/// would add a C crypto library to the build.
fn client(endpoint: &str, id: &str, secret: &str) -> aws_sdk_batch::Client {
    let credentials = aws_sdk_batch::config::Credentials::new(id, secret, None, None, "test");
    aws_sdk_batch::Client::from_conf(
        aws_sdk_batch::Config::builder()
            .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
            .region(aws_sdk_batch::config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .endpoint_url(endpoint)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build(),
    )
}

/// The message of the service error a call failed with.
fn message<T, E: ProvideErrorMetadata, R>(
    result: Result<T, aws_sdk_batch::error::SdkError<E, R>>,
) -> String {
    match result {
        Ok(_) => panic!("the call was expected to fail"),
        Err(error) => error
            .as_service_error()
            .and_then(|e| e.message())
            .unwrap_or_default()
            .to_string(),
    }
}

fn container(image: &str, command: &[&str]) -> ContainerProperties {
    ContainerProperties::builder()
        .image(image)
        .set_command(Some(command.iter().map(|c| c.to_string()).collect()))
        .resource_requirements(requirement(ResourceType::Vcpu, "1"))
        .resource_requirements(requirement(ResourceType::Memory, "64"))
        .build()
}

fn requirement(kind: ResourceType, value: &str) -> ResourceRequirement {
    ResourceRequirement::builder()
        .r#type(kind)
        .value(value)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_through_aws_sdk_batch_and_cloudwatchlogs() {
    let server = Server::start().await;
    let client = &server.client;
    let created = client
        .create_compute_environment()
        .compute_environment_name("env")
        .r#type(CeType::Managed)
        .state(CeState::Enabled)
        .compute_resources(
            ComputeResource::builder()
                .r#type(CrType::Ec2)
                .allocation_strategy(aws_sdk_batch::types::CrAllocationStrategy::BestFitProgressive)
                .minv_cpus(0)
                .maxv_cpus(4)
                .instance_types("m4.large")
                .subnets("subnet-xxxxxx")
                .security_group_ids("sg-xxxxxx")
                .instance_role("ecsInstanceRole")
                .build(),
        )
        .tags("team", "research")
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.compute_environment_arn.as_deref(),
        Some("arn:aws:batch:us-east-1:000000000000:compute-environment/env")
    );
    client
        .update_compute_environment()
        .compute_environment("env")
        .compute_resources(ComputeResourceUpdate::builder().maxv_cpus(8).build())
        .send()
        .await
        .unwrap();
    let envs = client
        .describe_compute_environments()
        .compute_environments(created.compute_environment_arn.unwrap())
        .send()
        .await
        .unwrap()
        .compute_environments
        .unwrap();
    let resources = envs[0].compute_resources.as_ref().unwrap();
    assert_eq!(resources.maxv_cpus, Some(8), "the update took");
    assert_eq!(
        resources.subnets.as_deref(),
        Some(&["subnet-xxxxxx".to_string()][..]),
        "members wasmbatch does not use are echoed"
    );
    assert_eq!(resources.instance_role.as_deref(), Some("ecsInstanceRole"));
    assert_eq!(envs[0].state, Some(CeState::Enabled));

    client
        .create_job_queue()
        .job_queue_name("queue")
        .priority(10)
        .compute_environment_order(
            ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment("env")
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .update_job_queue()
        .job_queue("arn:aws:batch:us-east-1:000000000000:job-queue/queue")
        .priority(20)
        .send()
        .await
        .unwrap();
    let queues = client
        .describe_job_queues()
        .job_queues("queue")
        .send()
        .await
        .unwrap()
        .job_queues
        .unwrap();
    assert_eq!(queues[0].priority, Some(20));
    assert_eq!(queues[0].state, Some(JqState::Enabled));

    server
        .batch
        .push_module("hello", guests::bytes(guests::wasip1::HELLO))
        .await
        .unwrap();
    let registered = client
        .register_job_definition()
        .job_definition_name("greet")
        .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
        .container_properties(
            ContainerProperties::builder()
                .image("hello")
                .command("ola")
                .command("Ref::who")
                .environment(KeyValuePair::builder().name("GREETING").value("oi").build())
                .resource_requirements(requirement(ResourceType::Vcpu, "1"))
                .resource_requirements(requirement(ResourceType::Memory, "64"))
                .build(),
        )
        .parameters("who", "mundo")
        .send()
        .await
        .unwrap();
    assert_eq!(registered.revision, Some(1));
    let id = client
        .submit_job()
        .job_name("first")
        .job_queue("queue")
        .job_definition("greet:1")
        .parameters("who", "todos")
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let job = server.wait(&id).await;
    assert_eq!(job.status, Some(JobStatus::Succeeded), "{job:?}");
    assert_eq!(
        job.job_queue.as_deref(),
        Some("arn:aws:batch:us-east-1:000000000000:job-queue/queue")
    );
    let container = job.container.as_ref().unwrap();
    assert_eq!(container.exit_code, Some(0));
    assert_eq!(
        container.command.as_deref(),
        Some(&["ola".to_string(), "todos".to_string()][..]),
        "the submit's parameter replaced the definition's default"
    );
    assert_eq!(container.image.as_deref(), Some("hello"));
    let environment: Vec<(String, String)> = container
        .environment
        .iter()
        .flatten()
        .filter_map(|pair| Some((pair.name.clone()?, pair.value.clone()?)))
        .collect();
    assert_eq!(environment, [("GREETING".to_string(), "oi".to_string())]);
    assert_eq!(
        container.resource_requirements.as_ref().map(Vec::len),
        Some(2)
    );
    let attempts = job.attempts.as_deref().unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(job.started_at.unwrap() <= job.stopped_at.unwrap());
    let stream = container.log_stream_name.clone().unwrap();
    assert_eq!(stream, format!("greet/default/{id}-1"));
    let log = server.log(&stream).await;
    assert_eq!(
        log[0],
        r#"hello from wasmbatch: args=["hello", "ola", "todos"]"#
    );
    assert!(log.contains(&format!("AWS_BATCH_JOB_ID={id}")), "{log:?}");
    assert!(log.len() > 2, "paged two at a time: {log:?}");

    let listed = client
        .list_jobs()
        .job_queue("queue")
        .job_status(JobStatus::Succeeded)
        .send()
        .await
        .unwrap()
        .job_summary_list
        .unwrap_or_default();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id.as_deref(), Some(id.as_str()));

    // Tags, by ARN.
    let arn = job.job_arn.clone().unwrap();
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("owner", "ana")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.get("owner").map(String::as_str), Some("ana"));
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert!(tags.is_empty(), "{tags:?}");

    // Tearing down, in the order AWS requires.
    client
        .deregister_job_definition()
        .job_definition("greet:1")
        .send()
        .await
        .unwrap();
    let definitions = client
        .describe_job_definitions()
        .job_definition_name("greet")
        .send()
        .await
        .unwrap()
        .job_definitions
        .unwrap();
    assert_eq!(definitions[0].status.as_deref(), Some("INACTIVE"));
    client
        .update_job_queue()
        .job_queue("queue")
        .state(JqState::Disabled)
        .send()
        .await
        .unwrap();
    client
        .delete_job_queue()
        .job_queue("queue")
        .send()
        .await
        .unwrap();
    client
        .update_compute_environment()
        .compute_environment("env")
        .state(CeState::Disabled)
        .send()
        .await
        .unwrap();
    client
        .delete_compute_environment()
        .compute_environment("env")
        .send()
        .await
        .unwrap();
    let left = client
        .describe_compute_environments()
        .send()
        .await
        .unwrap()
        .compute_environments
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_and_dependencies_through_the_sdk() {
    let server = Server::start().await;
    let client = &server.client;
    server.queue("env", "queue", 4).await;
    server.definition("hello", guests::wasip1::HELLO, &[]).await;
    let array = |size: i32| ArrayProperties::builder().size(size).build();

    let parent = client
        .submit_job()
        .job_name("fan-out")
        .job_queue("queue")
        .job_definition("hello")
        .array_properties(array(5))
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    // Each child of a second array waits for the same index of the first.
    let paired = client
        .submit_job()
        .job_name("paired")
        .job_queue("queue")
        .job_definition("hello")
        .array_properties(array(5))
        .depends_on(
            JobDependency::builder()
                .job_id(&parent)
                .r#type(ArrayJobDependency::NToN)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let sequential = client
        .submit_job()
        .job_name("one-by-one")
        .job_queue("queue")
        .job_definition("hello")
        .array_properties(array(3))
        .depends_on(
            JobDependency::builder()
                .r#type(ArrayJobDependency::Sequential)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let after = client
        .submit_job()
        .job_name("aggregate")
        .job_queue("queue")
        .job_definition("hello")
        .depends_on(JobDependency::builder().job_id(&parent).build())
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();

    let parent_job = server.wait(&parent).await;
    assert_eq!(parent_job.status, Some(JobStatus::Succeeded));
    let summary = parent_job.array_properties.unwrap();
    assert_eq!(summary.size, Some(5));
    assert_eq!(
        summary.status_summary.unwrap().get("SUCCEEDED"),
        Some(&5),
        "every child succeeded"
    );
    let after_job = server.wait(&after).await;
    assert_eq!(after_job.status, Some(JobStatus::Succeeded));
    assert!(
        after_job.started_at.unwrap() >= parent_job.stopped_at.unwrap(),
        "the dependent job started after the array ended"
    );
    assert_eq!(
        server.wait(&paired).await.status,
        Some(JobStatus::Succeeded)
    );
    for i in 0..5 {
        let first = server.describe(&format!("{parent}:{i}")).await;
        let second = server.describe(&format!("{paired}:{i}")).await;
        assert_eq!(
            second.array_properties.unwrap().index,
            Some(i),
            "children are addressed as <parent>:<index>"
        );
        assert!(
            second.started_at.unwrap() >= first.stopped_at.unwrap(),
            "N_TO_N pair {i}"
        );
        let stream = first.container.unwrap().log_stream_name.unwrap();
        let log = server.log(&stream).await;
        assert!(
            log.contains(&format!("AWS_BATCH_JOB_ARRAY_INDEX={i}")),
            "{log:?}"
        );
    }
    assert_eq!(
        server.wait(&sequential).await.status,
        Some(JobStatus::Succeeded)
    );
    for i in 1..3 {
        let before = server.describe(&format!("{sequential}:{}", i - 1)).await;
        let child = server.describe(&format!("{sequential}:{i}")).await;
        assert!(
            child.started_at.unwrap() >= before.stopped_at.unwrap(),
            "SEQUENTIAL {i}"
        );
    }
    // The children are listed by their parent.
    let children = client
        .list_jobs()
        .array_job_id(&parent)
        .job_status(JobStatus::Succeeded)
        .send()
        .await
        .unwrap()
        .job_summary_list
        .unwrap_or_default();
    assert_eq!(children.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_timeouts_cancel_and_terminate_through_the_sdk() {
    let server = Server::start().await;
    let client = &server.client;
    server.queue("env", "queue", 4).await;
    server
        .definition("exit", guests::wasip1::EXIT_CODE, &["3"])
        .await;
    server.definition("sleep", guests::wasip1::SLEEP, &[]).await;

    // Retried until the attempts run out, each attempt recorded with its exit code.
    let retried = client
        .submit_job()
        .job_name("flaky")
        .job_queue("queue")
        .job_definition("exit")
        .retry_strategy(RetryStrategy::builder().attempts(3).build())
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    // Not retried: evaluateOnExit says EXIT for this code.
    let exits = client
        .submit_job()
        .job_name("no-retry")
        .job_queue("queue")
        .job_definition("exit")
        .retry_strategy(
            RetryStrategy::builder()
                .attempts(3)
                .evaluate_on_exit(
                    EvaluateOnExit::builder()
                        .on_exit_code("3")
                        .action(RetryAction::Exit)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    // Succeeds on override: the command says exit 0.
    let overridden = client
        .submit_job()
        .job_name("fixed")
        .job_queue("queue")
        .job_definition("exit")
        .container_overrides(ContainerOverrides::builder().command("0").build())
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let job = server.wait(&retried).await;
    assert_eq!(job.status, Some(JobStatus::Failed));
    let attempts = job.attempts.unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a.container.as_ref().unwrap().exit_code == Some(3))
    );
    assert_eq!(server.wait(&exits).await.attempts.unwrap().len(), 1);
    assert_eq!(
        server.wait(&overridden).await.status,
        Some(JobStatus::Succeeded)
    );

    // A timeout ends the attempt and is not retried.
    let slow = client
        .submit_job()
        .job_name("slow")
        .job_queue("queue")
        .job_definition("sleep")
        .timeout(JobTimeout::builder().attempt_duration_seconds(1).build())
        .retry_strategy(RetryStrategy::builder().attempts(2).build())
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let job = server.wait(&slow).await;
    assert_eq!(job.status, Some(JobStatus::Failed));
    assert_eq!(job.attempts.unwrap().len(), 1);
    let reason = job.status_reason.unwrap();
    assert!(reason.contains("exceeded timeout"), "{reason}");

    // Terminate stops a running job; cancel stops a waiting one (held by a DISABLED
    // environment, as AWS holds work).
    let running = server.submit("forever", "queue", "sleep").await;
    server.wait_for(&running, JobStatus::Running).await;
    client
        .update_compute_environment()
        .compute_environment("env")
        .state(CeState::Disabled)
        .send()
        .await
        .unwrap();
    let waiting = server.submit("waiting", "queue", "sleep").await;
    server.wait_for(&waiting, JobStatus::Runnable).await;
    // A DISABLED queue refuses new jobs (and would still dispatch the waiting one).
    client
        .update_job_queue()
        .job_queue("queue")
        .state(JqState::Disabled)
        .send()
        .await
        .unwrap();
    let refused = client
        .submit_job()
        .job_name("refused")
        .job_queue("queue")
        .job_definition("sleep")
        .send()
        .await
        .unwrap_err();
    let refused = refused.into_service_error();
    assert!(refused.is_client_exception(), "{refused:?}");
    assert!(
        refused
            .meta()
            .message()
            .unwrap_or_default()
            .contains("is DISABLED"),
        "{refused:?}"
    );
    client
        .cancel_job()
        .job_id(&waiting)
        .reason("not needed")
        .send()
        .await
        .unwrap();
    client
        .terminate_job()
        .job_id(&running)
        .reason("stopped by the operator")
        .send()
        .await
        .unwrap();
    let cancelled = server.wait(&waiting).await;
    assert_eq!(cancelled.status, Some(JobStatus::Failed));
    assert_eq!(cancelled.status_reason.as_deref(), Some("not needed"));
    assert_eq!(cancelled.is_cancelled, Some(true));
    let terminated = server.wait(&running).await;
    assert_eq!(terminated.status, Some(JobStatus::Failed));
    assert_eq!(terminated.is_terminated, Some(true));
    assert_eq!(
        terminated.status_reason.as_deref(),
        Some("stopped by the operator")
    );
}

/// CancelJobs and TerminateJobs: one call for many jobs, each job's outcome in the answer. A
/// job that has started is not cancelled, yet counts as successful, as does an id that names
/// no job (AWS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_jobs_and_terminate_jobs_stop_many_at_once() {
    let server = Server::start().await;
    let client = &server.client;
    // One vCPU: the first job runs, the second waits RUNNABLE behind it.
    server.queue("env", "queue", 1).await;
    server.definition("sleep", guests::wasip1::SLEEP, &[]).await;
    let running = server.submit("running", "queue", "sleep").await;
    server.wait_for(&running, JobStatus::Running).await;
    // A FIFO queue takes a priority (and does not use it), and DescribeJobs reports it.
    let waiting = client
        .submit_job()
        .job_name("waiting")
        .job_queue("queue")
        .job_definition("sleep")
        .scheduling_priority_override(7)
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    server.wait_for(&waiting, JobStatus::Runnable).await;
    assert_eq!(server.describe(&waiting).await.scheduling_priority, Some(7));
    let unknown = "00000000-0000-4000-8000-000000000000";

    let cancelled = client
        .cancel_jobs()
        .jobs(&waiting)
        .jobs(&running)
        .jobs(unknown)
        .reason("no longer needed")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.successful(), [&*waiting, &*running, unknown]);
    assert!(cancelled.errors().is_empty(), "{:?}", cancelled.errors());
    let job = server.describe(&waiting).await;
    assert_eq!(job.status, Some(JobStatus::Failed));
    assert_eq!(job.is_cancelled, Some(true));
    assert_eq!(job.status_reason.as_deref(), Some("no longer needed"));
    let job = server.describe(&running).await;
    assert_eq!(
        job.status,
        Some(JobStatus::Running),
        "a started job runs on"
    );
    assert_eq!(job.is_cancelled, Some(false));

    let terminated = client
        .terminate_jobs()
        .jobs(&running)
        .reason("stopped by the operator")
        .send()
        .await
        .unwrap();
    assert_eq!(terminated.successful(), [&*running]);
    assert!(terminated.errors().is_empty());
    let job = server.wait(&running).await;
    assert_eq!(job.status, Some(JobStatus::Failed));
    assert_eq!(job.is_terminated, Some(true));
    assert_eq!(
        job.status_reason.as_deref(),
        Some("stopped by the operator")
    );

    // The whole request is refused, and nothing stopped, past AWS's 50 jobs.
    let queued = server.submit("queued", "queue", "sleep").await;
    let many: Vec<String> = std::iter::once(queued.clone())
        .chain((0..50).map(|i| format!("no-such-job-{i}")))
        .collect();
    let refused = client
        .cancel_jobs()
        .set_jobs(Some(many.clone()))
        .reason("too many")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("ClientException"));
    assert_eq!(
        refused.message(),
        Some("jobs: must name 1 to 50 jobs, got 51")
    );
    let refused = client
        .terminate_jobs()
        .set_jobs(Some(many))
        .reason("too many")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("ClientException"));
    let refused = client
        .cancel_jobs()
        .jobs(&queued)
        .reason("")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.message(),
        Some("reason: must be 1 to 1024 characters, got 0")
    );
    let job = server.describe(&queued).await;
    assert_ne!(job.status, Some(JobStatus::Failed), "{job:?}");
}

/// Each job of a CancelJobs or TerminateJobs is authorised on its own, as CancelJob and
/// TerminateJob would be: a job the caller may not stop is reported in `errors` and left as it
/// was, and the others are stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stop_reports_the_jobs_the_caller_may_not_stop_and_stops_the_rest() {
    let team = |queue: &str| {
        serde_json::json!({"Statement": [{"Effect": "Allow",
            "Action": ["batch:SubmitJob", "batch:DescribeJobs", "batch:CancelJob", "batch:TerminateJob"],
            "Resource": [format!("arn:aws:batch:*:*:job-queue/{queue}"), "arn:aws:batch:*:*:job-definition/*"]}]})
    };
    let (server, keys) = Server::with_keys(&[
        (
            "admin",
            serde_json::json!({"Statement": {"Effect": "Allow", "Action": "batch:*", "Resource": "*"}}),
        ),
        ("alice", team("team-a")),
    ])
    .await;
    // A DISABLED environment holds the jobs RUNNABLE.
    wasmbatch_tests::environment(&server.batch, "held", 2, "DISABLED").await;
    wasmbatch_tests::job_queue(&server.batch, "team-a", 1, "held").await;
    wasmbatch_tests::job_queue(&server.batch, "team-b", 1, "held").await;
    server.definition("sleep", guests::wasip1::SLEEP, &[]).await;
    let alices = server.submit("a", "team-a", "sleep").await;
    let bobs = server.submit("b", "team-b", "sleep").await;
    let alice = server.client_for(&keys[1]);

    let cancelled = alice
        .cancel_jobs()
        .jobs(&bobs)
        .jobs(&alices)
        .reason("tidying up")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.successful(), [&*alices]);
    let [error] = cancelled.errors() else {
        panic!("one error: {:?}", cancelled.errors());
    };
    assert_eq!(error.job(), Some(&*bobs));
    assert_eq!(error.code(), Some("AccessDenied"));
    assert!(
        error
            .message()
            .unwrap_or_default()
            .contains("User: alice is not authorized to perform: batch:CancelJob"),
        "{error:?}"
    );
    assert_eq!(
        server.describe(&alices).await.status,
        Some(JobStatus::Failed)
    );
    assert_eq!(
        server.describe(&bobs).await.status,
        Some(JobStatus::Runnable)
    );

    // Every job denied: an answer all errors, nothing stopped.
    let terminated = alice
        .terminate_jobs()
        .jobs(&bobs)
        .reason("tidying up")
        .send()
        .await
        .unwrap();
    assert!(terminated.successful().is_empty());
    assert_eq!(terminated.errors().len(), 1);
    assert!(
        terminated.errors()[0]
            .message()
            .unwrap_or_default()
            .contains("batch:TerminateJob"),
        "{:?}",
        terminated.errors()
    );
    assert_eq!(
        server.describe(&bobs).await.status,
        Some(JobStatus::Runnable)
    );
}

/// GetJobQueueSnapshot of a FIFO queue: the RUNNABLE jobs in the order they were submitted
/// (the order they will run), no fair-share utilization; authorised on the queue, as ListJobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_job_queue_snapshot_lists_a_fifo_queues_jobs_in_submission_order() {
    let (server, keys) = Server::with_keys(&[
        (
            "admin",
            serde_json::json!({"Statement": {"Effect": "Allow", "Action": "batch:*", "Resource": "*"}}),
        ),
        (
            "alice",
            serde_json::json!({"Statement": {"Effect": "Allow", "Action": "batch:GetJobQueueSnapshot",
                "Resource": "arn:aws:batch:*:*:job-queue/main"}}),
        ),
    ])
    .await;
    // A DISABLED environment holds the jobs RUNNABLE.
    wasmbatch_tests::local_queue(&server.batch, 2, "DISABLED").await;
    wasmbatch_tests::job_queue(&server.batch, "other", 1, "local").await;
    server.definition("hello", guests::wasip1::HELLO, &[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(server.submit(&format!("j{i}"), "main", "hello").await);
    }
    for id in &ids {
        server.wait_for(id, JobStatus::Runnable).await;
    }
    let alice = server.client_for(&keys[1]);

    let snapshot = alice
        .get_job_queue_snapshot()
        .job_queue("main")
        .send()
        .await
        .unwrap();
    let front = snapshot.front_of_queue().unwrap();
    let arns: Vec<&str> = front.jobs().iter().filter_map(|j| j.job_arn()).collect();
    let expected: Vec<String> = ids
        .iter()
        .map(|id| format!("arn:aws:batch:us-east-1:000000000000:job/{id}"))
        .collect();
    assert_eq!(arns, expected);
    let created = server.describe(&ids[0]).await.created_at.unwrap();
    for job in front.jobs() {
        let at = job.earliest_time_at_position().unwrap();
        assert!(at >= created, "{job:?} took its place before it was made");
    }
    assert!(front.last_updated_at().unwrap() >= created);
    let utilization = snapshot.queue_utilization().unwrap();
    let total = utilization.total_capacity_usage();
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].capacity_unit(), Some("VCPU"));
    assert_eq!(total[0].quantity(), Some(0.0), "nothing runs");
    assert!(
        utilization.fairshare_utilization().is_none(),
        "a FIFO queue has no shares"
    );

    // By ARN too; another queue's is refused; a queue that does not exist is a ClientException.
    let by_arn = alice
        .get_job_queue_snapshot()
        .job_queue("arn:aws:batch:us-east-1:000000000000:job-queue/main")
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.front_of_queue().unwrap().jobs().len(), 3);
    let refused = alice
        .get_job_queue_snapshot()
        .job_queue("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("AccessDeniedException"));
    let missing = server
        .client
        .get_job_queue_snapshot()
        .job_queue("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ClientException"));
    assert_eq!(missing.message(), Some("job queue nope does not exist"));
}

/// GetJobQueueSnapshot of a fair-share queue reports each share's capacity use; DescribeJobs
/// and ListJobs report a job's share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fair_share_queues_snapshot_reports_its_shares() {
    let server = Server::start().await;
    let client = &server.client;
    let policy = client
        .create_scheduling_policy()
        .name("teams")
        .fairshare_policy(aws_sdk_batch::types::FairsharePolicy::builder().build())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    // One vCPU: teamA's first job runs, the rest wait.
    wasmbatch_tests::environment(&server.batch, "one", 1, "ENABLED").await;
    client
        .create_job_queue()
        .job_queue_name("shared")
        .priority(1)
        .scheduling_policy_arn(&policy)
        .compute_environment_order(
            ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment("one")
                .build(),
        )
        .send()
        .await
        .unwrap();
    server.definition("sleep", guests::wasip1::SLEEP, &[]).await;
    let submit = |share: &'static str| {
        client
            .submit_job()
            .job_name(share)
            .job_queue("shared")
            .job_definition("sleep")
            .share_identifier(share)
            .send()
    };
    let running = submit("teamA").await.unwrap().job_id.unwrap();
    server.wait_for(&running, JobStatus::Running).await;
    let mut waiting = Vec::new();
    for share in ["teamA", "teamB", "teamB"] {
        let id = submit(share).await.unwrap().job_id.unwrap();
        server.wait_for(&id, JobStatus::Runnable).await;
        waiting.push(id);
    }
    assert_eq!(
        server.describe(&running).await.share_identifier.as_deref(),
        Some("teamA")
    );
    let listed = client
        .list_jobs()
        .job_queue("shared")
        .job_status(JobStatus::Runnable)
        .send()
        .await
        .unwrap();
    let mut shares: Vec<&str> = listed
        .job_summary_list()
        .iter()
        .filter_map(|j| j.share_identifier())
        .collect();
    shares.sort();
    assert_eq!(shares, ["teamA", "teamB", "teamB"]);

    let snapshot = client
        .get_job_queue_snapshot()
        .job_queue("shared")
        .send()
        .await
        .unwrap();
    let mut front: Vec<String> = snapshot
        .front_of_queue()
        .unwrap()
        .jobs()
        .iter()
        .filter_map(|j| j.job_arn())
        .map(|arn| arn.rsplit('/').next().unwrap().to_string())
        .collect();
    front.sort();
    waiting.sort();
    assert_eq!(
        front, waiting,
        "the RUNNABLE jobs, in the order they will run"
    );
    let utilization = snapshot.queue_utilization().unwrap();
    assert_eq!(utilization.total_capacity_usage()[0].quantity(), Some(1.0));
    let fair = utilization
        .fairshare_utilization()
        .expect("a fair-share queue reports its shares");
    assert_eq!(fair.active_share_count(), Some(2));
    let top: Vec<(&str, Option<f64>)> = fair
        .top_capacity_utilization()
        .iter()
        .map(|share| {
            (
                share.share_identifier().unwrap(),
                share.capacity_usage()[0].quantity(),
            )
        })
        .collect();
    assert_eq!(top, [("teamA", Some(1.0)), ("teamB", Some(0.0))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_pages_through_everything_with_the_sdk_paginator() {
    let server = Server::start().await;
    server.queue("env", "queue", 1).await;
    server.definition("hello", guests::wasip1::HELLO, &[]).await;
    // A disabled environment keeps them RUNNABLE, so the listing is of a stable set.
    server
        .client
        .update_compute_environment()
        .compute_environment("env")
        .state(CeState::Disabled)
        .send()
        .await
        .unwrap();
    let mut submitted = Vec::new();
    for i in 0..23 {
        submitted.push(server.submit(&format!("job-{i}"), "queue", "hello").await);
    }
    let pages: Vec<_> = server
        .client
        .list_jobs()
        .job_queue("queue")
        .job_status(JobStatus::Runnable)
        .max_results(5)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 5, "23 jobs, 5 a page");
    let mut listed: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.job_summary_list.unwrap_or_default())
        .filter_map(|s| s.job_id)
        .collect();
    listed.sort();
    submitted.sort();
    assert_eq!(listed, submitted, "every job exactly once");
    // A filter by name, as `aws batch list-jobs --filters name=JOB_NAME,values=…`.
    let named = server
        .client
        .list_jobs()
        .job_queue("queue")
        .filters(
            KeyValuesPair::builder()
                .name("JOB_NAME")
                .values("job-1*")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .job_summary_list
        .unwrap_or_default();
    let mut names: Vec<String> = named.into_iter().filter_map(|s| s.job_name).collect();
    names.sort();
    let mut expected: Vec<String> = std::iter::once("job-1".to_string())
        .chain((10..20).map(|i| format!("job-{i}")))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

/// Each mistake comes back as the SDK's typed ClientException with a message naming the
/// problem, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_come_back_as_typed_client_exceptions_and_change_nothing() {
    use aws_sdk_batch::operation::submit_job::SubmitJobError;
    let server = Server::start().await;
    let client = &server.client;
    server.queue("env", "queue", 1).await;
    server.definition("hello", guests::wasip1::HELLO, &[]).await;

    let error = server
        .client
        .submit_job()
        .job_name("j")
        .job_queue("nope")
        .job_definition("hello")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, SubmitJobError::ClientException(_)),
        "{error:?}"
    );
    assert_eq!(error.message(), Some("job queue nope does not exist"));

    let messages = [
        // Over AWS's 30 KiB SubmitJob limit.
        message(
            client
                .submit_job()
                .job_name("j")
                .job_queue("queue")
                .job_definition("hello")
                .parameters("big", "x".repeat(31 * 1024))
                .send()
                .await,
        ),
        // Over the 24 KiB job definition limit.
        message(
            client
                .register_job_definition()
                .job_definition_name("big")
                .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
                .container_properties(container("hello", &[&"x".repeat(25 * 1024)]))
                .send()
                .await,
        ),
        message(
            client
                .submit_job()
                .job_name("j")
                .job_queue("queue")
                .job_definition("missing")
                .send()
                .await,
        ),
        message(
            client
                .submit_job()
                .job_name("j")
                .job_queue("queue")
                .job_definition("hello")
                .array_properties(ArrayProperties::builder().size(10_001).build())
                .send()
                .await,
        ),
        message(
            client
                .create_job_queue()
                .job_queue_name("queue")
                .priority(1)
                .compute_environment_order(
                    ComputeEnvironmentOrder::builder()
                        .order(1)
                        .compute_environment("env")
                        .build(),
                )
                .send()
                .await,
        ),
        message(
            client
                .create_job_queue()
                .job_queue_name("other")
                .priority(5000)
                .compute_environment_order(
                    ComputeEnvironmentOrder::builder()
                        .order(1)
                        .compute_environment("env")
                        .build(),
                )
                .send()
                .await,
        ),
        message(
            client
                .delete_compute_environment()
                .compute_environment("env")
                .send()
                .await,
        ),
    ];
    let expected = [
        "the limit is 30720",
        "the limit is 24576",
        "missing",
        "10001",
        "queue",
        "priority",
        "env",
    ];
    for (message, expected) in messages.iter().zip(expected) {
        assert!(
            message.contains(expected),
            "{message:?} should name {expected:?}"
        );
    }

    // Unknown ids are left out of DescribeJobs, as AWS does.
    let described = client
        .describe_jobs()
        .jobs("no-such-job")
        .send()
        .await
        .unwrap()
        .jobs
        .unwrap_or_default();
    assert!(described.is_empty());
    let error = server
        .logs
        .get_log_events()
        .log_group_name("/aws/batch/job")
        .log_stream_name("hello/default/no-such-job-1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_resource_not_found_exception(), "{error:?}");

    // Nothing above changed anything.
    let queues = client
        .describe_job_queues()
        .send()
        .await
        .unwrap()
        .job_queues
        .unwrap_or_default();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0].priority, Some(1));
    let definitions = client
        .describe_job_definitions()
        .send()
        .await
        .unwrap()
        .job_definitions
        .unwrap_or_default();
    assert_eq!(definitions.len(), 1);
    let jobs = client
        .list_jobs()
        .job_queue("queue")
        .filters(
            KeyValuesPair::builder()
                .name("JOB_NAME")
                .values("*")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .job_summary_list
        .unwrap_or_default();
    assert!(jobs.is_empty(), "{jobs:?}");
    let envs = client
        .describe_compute_environments()
        .send()
        .await
        .unwrap()
        .compute_environments
        .unwrap_or_default();
    assert_eq!(envs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_policies_and_a_fair_share_queue_through_the_sdk() {
    use aws_sdk_batch::operation::delete_scheduling_policy::DeleteSchedulingPolicyError;
    use aws_sdk_batch::types::{
        FairsharePolicy, JobStateTimeLimitAction, JobStateTimeLimitActionsAction,
        JobStateTimeLimitActionsState, QuotaShareIdleResourceAssignmentStrategy, QuotaSharePolicy,
        ShareAttributes,
    };
    let server = Server::start().await;
    let client = &server.client;
    let share = |id: &str, weight: f32| {
        ShareAttributes::builder()
            .share_identifier(id)
            .weight_factor(weight)
            .build()
    };
    let created = client
        .create_scheduling_policy()
        .name("teams")
        .fairshare_policy(
            FairsharePolicy::builder()
                .share_decay_seconds(600)
                .compute_reservation(10)
                .share_distribution(share("render*", 0.5))
                .share_distribution(share("ml", 2.0))
                .build(),
        )
        .tags("owner", "platform")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    assert_eq!(
        arn,
        "arn:aws:batch:us-east-1:000000000000:scheduling-policy/teams"
    );
    for name in ["spare", "extra"] {
        client
            .create_scheduling_policy()
            .name(name)
            .send()
            .await
            .unwrap();
    }

    // The paginator follows nextToken, one policy a page.
    let mut listed = Vec::new();
    let mut pages = client
        .list_scheduling_policies()
        .max_results(1)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert_eq!(page.scheduling_policies().len(), 1);
        listed.extend(
            page.scheduling_policies()
                .iter()
                .map(|p| p.arn().unwrap().rsplit('/').next().unwrap().to_string()),
        );
    }
    assert_eq!(listed, ["extra", "spare", "teams"]);

    client
        .update_scheduling_policy()
        .arn(&arn)
        .fairshare_policy(
            FairsharePolicy::builder()
                .share_distribution(share("render*", 0.125))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = client
        .describe_scheduling_policies()
        .arns(&arn)
        .send()
        .await
        .unwrap();
    let policy = &described.scheduling_policies()[0];
    assert_eq!(policy.name(), Some("teams"));
    assert_eq!(policy.tags().unwrap()["owner"], "platform");
    let fairshare = policy.fairshare_policy().unwrap();
    assert_eq!(fairshare.compute_reservation(), None, "replaced whole");
    assert_eq!(
        fairshare.share_distribution()[0].weight_factor(),
        Some(0.125)
    );

    server.queue("env", "fifo", 2).await;
    client
        .create_job_queue()
        .job_queue_name("fair")
        .priority(1)
        .scheduling_policy_arn(&arn)
        .compute_environment_order(
            ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment("env")
                .build(),
        )
        .job_state_time_limit_actions(
            JobStateTimeLimitAction::builder()
                .reason("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
                .state(JobStateTimeLimitActionsState::Runnable)
                .max_time_seconds(5)
                .action(JobStateTimeLimitActionsAction::Cancel)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let queue = client
        .describe_job_queues()
        .job_queues("fair")
        .send()
        .await
        .unwrap()
        .job_queues
        .unwrap()
        .remove(0);
    assert_eq!(queue.scheduling_policy_arn(), Some(arn.as_str()));
    assert_eq!(
        queue.job_state_time_limit_actions()[0].max_time_seconds(),
        Some(5)
    );

    // A FIFO queue gets no policy; a policy in use is not deleted; quota share is refused.
    let fifo = message(
        client
            .update_job_queue()
            .job_queue("fifo")
            .scheduling_policy_arn(&arn)
            .send()
            .await,
    );
    assert!(fifo.contains("FIFO queue"), "{fifo}");
    let error = client
        .delete_scheduling_policy()
        .arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, DeleteSchedulingPolicyError::ClientException(_)),
        "{error:?}"
    );
    assert!(error.message().unwrap().contains("fair"), "{error:?}");
    let quota = message(
        client
            .create_scheduling_policy()
            .name("quota")
            .quota_share_policy(
                QuotaSharePolicy::builder()
                    .idle_resource_assignment_strategy(
                        QuotaShareIdleResourceAssignmentStrategy::Fifo,
                    )
                    .build(),
            )
            .send()
            .await,
    );
    assert!(quota.contains("quotaSharePolicy"), "{quota}");

    client
        .update_job_queue()
        .job_queue("fair")
        .state(JqState::Disabled)
        .send()
        .await
        .unwrap();
    client
        .delete_job_queue()
        .job_queue("fair")
        .send()
        .await
        .unwrap();
    client
        .delete_scheduling_policy()
        .arn(&arn)
        .send()
        .await
        .unwrap();
    let left = client
        .describe_scheduling_policies()
        .arns(&arn)
        .send()
        .await
        .unwrap();
    assert!(left.scheduling_policies().is_empty(), "{left:?}");
}

/// Hole 6 of issue 13: a GetLogEvents token is the caller's input. `f/<usize::MAX>` with limit 1
/// once overflowed `index + limit` and panicked the handler (the connection dropped, no
/// answer); every token the service never issued, and every limit outside CloudWatch's 1 to
/// 10,000, is now the SDK's typed InvalidParameterException, and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_get_log_events_token_is_refused_not_a_panic() {
    let server = Server::start().await;
    server.queue("env", "queue", 1).await;
    server
        .definition("writer", guests::wasip1::WRITE_LOT, &["3"])
        .await;
    let id = server.submit("w", "queue", "writer").await;
    let job = server.wait(&id).await;
    assert_eq!(job.status, Some(JobStatus::Succeeded), "{job:?}");
    let stream = job.container.unwrap().log_stream_name.unwrap();
    let get = |token: Option<&str>, limit: i32| {
        server
            .logs
            .get_log_events()
            .log_group_name("/aws/batch/job")
            .log_stream_name(&stream)
            .set_next_token(token.map(str::to_string))
            .limit(limit)
            .send()
    };
    let refused = [
        (Some("f/18446744073709551615"), 1),
        (Some("b/18446744073709551615"), 1),
        (Some("f/99999999999999999999999"), 1),
        (Some("f/4"), 1),
        (Some("f/-1"), 1),
        (Some("f/abc"), 1),
        (Some("z/0"), 1),
        (Some("f/0"), 0),
        (Some("f/0"), 10_001),
        (None, -1),
    ];
    for (token, limit) in refused {
        let error = get(token, limit)
            .await
            .expect_err("a bad token or limit must be refused")
            .into_service_error();
        assert!(
            error.is_invalid_parameter_exception(),
            "token {token:?}, limit {limit}: {error:?}"
        );
    }
    // The same server still answers, and the tokens it issues still work.
    let page = get(Some("f/1"), 1).await.unwrap();
    let messages: Vec<_> = page
        .events
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    assert_eq!(messages, ["out line 1"]);
    assert_eq!(page.next_forward_token.as_deref(), Some("f/2"));
    assert_eq!(server.log(&stream).await.len(), 3);
}
