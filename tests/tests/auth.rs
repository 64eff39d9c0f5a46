//! Callers with real keys: aws-sdk-batch signing with SigV4 against a server that verifies it,
//! and policies deciding what each key may do (allow, explicit deny, wildcards, one team's
//! queue hidden from another). Raw signed requests cover what an SDK will not send: an expired
//! date, a tampered body, the wrong service, a missing header.

use std::time::{Duration, SystemTime};

use aws_sdk_batch::error::ProvideErrorMetadata;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;
use wasmbatch_api::Access;
use wasmbatch_api::access::credentials::{CredentialsFile, Key, credentials_path};
use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::{decode, guests, module_and_definition};

struct Service {
    batch: Batch,
    access: Access,
    address: std::net::SocketAddr,
    endpoint: String,
    keys: Vec<Key>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn policy(json: serde_json::Value) -> wasmbatch_api::access::policy::Policy {
    serde_json::from_value(json).unwrap()
}

/// Two teams' queues on one environment, a `hello` definition, and keys: `admin` (everything),
/// `alice` (her queue `team-a` only, plus describing queues by wildcard), `bob` (`team-b`),
/// `carol` (everything except submitting to `team-b`, by an explicit Deny).
async fn start() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    batch
        .create_compute_environment(decode(json!({
            "computeEnvironmentName": "shared", "type": "MANAGED",
            "computeResources": {"type": "EC2", "maxvCpus": 2}
        })))
        .await
        .unwrap();
    for team in ["team-a", "team-b"] {
        batch
            .create_job_queue(decode(json!({
                "jobQueueName": team, "priority": 1,
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "shared"}]
            })))
            .await
            .unwrap();
    }
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["hi"],
        16,
        json!({}),
    )
    .await;

    let path = credentials_path(dir.path());
    let team = |queue: &str| {
        policy(json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow",
                 "Action": ["batch:SubmitJob", "batch:DescribeJobs", "batch:ListJobs", "batch:CancelJob", "logs:GetLogEvents",
                            "logs:DescribeLogStreams", "logs:FilterLogEvents"],
                 "Resource": [format!("arn:aws:batch:*:*:job-queue/{queue}"), "arn:aws:batch:*:*:job-definition/*"]},
                {"Effect": "Allow", "Action": "batch:DescribeJobQueue*", "Resource": "*"}
            ]
        }))
    };
    let keys = vec![
        CredentialsFile::create_key(
            &path,
            "admin",
            policy(json!({"Statement": {"Effect": "Allow", "Action": ["batch:*", "logs:*"], "Resource": "*"}})),
        )
        .unwrap(),
        CredentialsFile::create_key(&path, "alice", team("team-a")).unwrap(),
        CredentialsFile::create_key(&path, "bob", team("team-b")).unwrap(),
        CredentialsFile::create_key(
            &path,
            "carol",
            policy(json!({"Statement": [
                {"Effect": "Allow", "Action": "batch:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "batch:SubmitJob", "Resource": "arn:aws:batch:*:*:job-queue/team-b"}
            ]})),
        )
        .unwrap(),
    ];
    let access = Access::from_file(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let endpoint = format!("http://{address}");
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch.clone(),
        access.clone(),
        std::future::pending(),
    ));
    Service {
        batch,
        access,
        address,
        endpoint,
        keys,
        path,
        _dir: dir,
    }
}

impl Service {
    fn key(&self, name: &str) -> &Key {
        self.keys.iter().find(|k| k.name == name).unwrap()
    }

    /// What an SDK user writes, with `key`'s id and `secret`, in `region`.
    fn client_with(&self, id: &str, secret: &str, region: &str) -> aws_sdk_batch::Client {
        let credentials = aws_sdk_batch::config::Credentials::new(id, secret, None, None, "test");
        aws_sdk_batch::Client::from_conf(
            aws_sdk_batch::Config::builder()
                .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
                .region(aws_sdk_batch::config::Region::new(region.to_string()))
                .credentials_provider(credentials)
                .endpoint_url(&self.endpoint)
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .build(),
        )
    }

    fn client(&self, name: &str) -> aws_sdk_batch::Client {
        let key = self.key(name);
        self.client_with(&key.access_key_id, &key.secret_access_key, "us-east-1")
    }

    fn logs(&self, name: &str) -> aws_sdk_cloudwatchlogs::Client {
        let key = self.key(name);
        let credentials = aws_sdk_cloudwatchlogs::config::Credentials::new(
            &key.access_key_id,
            &key.secret_access_key,
            None,
            None,
            "test",
        );
        aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::Config::builder()
                .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
                .credentials_provider(credentials)
                .endpoint_url(&self.endpoint)
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .build(),
        )
    }

    async fn submit(&self, name: &str, queue: &str) -> Result<String, String> {
        self.client(name)
            .submit_job()
            .job_name("j")
            .job_queue(queue)
            .job_definition("hello")
            .send()
            .await
            .map(|out| out.job_id().unwrap().to_string())
            .map_err(|e| e.code().unwrap_or("no code").to_string())
    }

    /// How many jobs the two teams' queues hold, whatever their status.
    fn jobs(&self) -> u64 {
        ["team-a", "team-b"]
            .iter()
            .map(|q| self.batch.job_counts(q).unwrap().values().sum::<u64>())
            .sum()
    }

    async fn status(&self, id: &str) -> JobStatus {
        self.batch.describe_jobs(&[id.to_string()]).unwrap()[0].status
    }

    async fn until_ended(&self, id: &str) {
        for _ in 0..1000 {
            if self.status(id).await.is_terminal() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} did not end");
    }
}

/// A raw request to `path` with `body`, signed by `key` for `service` at `time`, through the
/// router (no socket). `tamper` may change the request after signing.
async fn signed(
    service: &Service,
    key: &Key,
    sign_for: &str,
    time: SystemTime,
    body: &str,
    tamper: impl FnOnce(&mut Request<Body>),
) -> (u16, String, String) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(sign_for)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = "http://localhost/v1/describejobqueues";
    let headers = [("host", "localhost"), ("content-type", "application/json")];
    let signable = SignableRequest::new(
        "POST",
        uri,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = Request::post("/v1/describejobqueues")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    instructions.apply_to_request_http1x(&mut request);
    tamper(&mut request);
    let response = wasmbatch_api::app(service.batch.clone(), service.access.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, kind, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_correctly_signed_requests_with_known_keys_are_served() {
    let service = start().await;
    let admin = service.key("admin").clone();

    // The right key passes, through the SDK and as a raw signed request.
    let queues = service
        .client("admin")
        .describe_job_queues()
        .send()
        .await
        .unwrap();
    assert_eq!(queues.job_queues().len(), 2);
    let (status, _, body) =
        signed(&service, &admin, "batch", SystemTime::now(), "{}", |_| {}).await;
    assert_eq!(status, 200, "{body}");

    // A wrong secret, an unknown key, the wrong region.
    let wrong_secret = service.client_with(
        &admin.access_key_id,
        "not-the-secret-0123456789",
        "us-east-1",
    );
    let error = wrong_secret.describe_job_queues().send().await.unwrap_err();
    assert_eq!(error.code(), Some("InvalidSignatureException"), "{error:?}");
    let unknown = service.client_with("WBKNOBODY", &admin.secret_access_key, "us-east-1");
    let error = unknown.describe_job_queues().send().await.unwrap_err();
    assert_eq!(
        error.code(),
        Some("UnrecognizedClientException"),
        "{error:?}"
    );
    let region = service.client_with(&admin.access_key_id, &admin.secret_access_key, "eu-west-1");
    let error = region.describe_job_queues().send().await.unwrap_err();
    assert_eq!(error.code(), Some("InvalidSignatureException"));
    assert!(error.message().unwrap().contains("region"), "{error:?}");

    // Signed 20 minutes ago: outside the 15-minute window.
    let old = SystemTime::now() - Duration::from_secs(20 * 60);
    let (status, kind, body) = signed(&service, &admin, "batch", old, "{}", |_| {}).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "InvalidSignatureException"),
        "{body}"
    );
    assert!(body.contains("Signature expired"), "{body}");
    // Signed for CloudWatch Logs, sent to Batch.
    let (status, kind, body) =
        signed(&service, &admin, "logs", SystemTime::now(), "{}", |_| {}).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    assert!(body.contains("service"), "{body}");
    // The body changed after signing.
    let (status, kind, _) = signed(&service, &admin, "batch", SystemTime::now(), "{}", |r| {
        *r.body_mut() = Body::from(r#"{"jobQueues": ["team-b"]}"#);
    })
    .await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    // A signed header changed, and no signature at all.
    let (status, kind, _) = signed(&service, &admin, "batch", SystemTime::now(), "{}", |r| {
        r.headers_mut().insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
    })
    .await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    let (status, kind, _) = signed(&service, &admin, "batch", SystemTime::now(), "{}", |r| {
        r.headers_mut().remove("authorization");
    })
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "MissingAuthenticationTokenException")
    );
    let (status, kind, _) = signed(&service, &admin, "batch", SystemTime::now(), "{}", |r| {
        r.headers_mut().remove("x-amz-date");
    })
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (400, "IncompleteSignatureException")
    );

    // A refused request changed nothing: still two queues, no jobs.
    assert_eq!(service.batch.describe_job_queues(&[]).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_allow_deny_and_keep_each_team_to_its_queue() {
    let service = start().await;

    // Alice submits to her queue; the job records who submitted it.
    let alices = service.submit("alice", "team-a").await.unwrap();
    let bobs = service.submit("bob", "team-b").await.unwrap();
    let job = &service
        .batch
        .describe_jobs(std::slice::from_ref(&alices))
        .unwrap()[0];
    assert_eq!(job.submitted_by.as_deref(), Some("alice"));
    let described = service
        .client("admin")
        .describe_jobs()
        .jobs(&bobs)
        .send()
        .await
        .unwrap();
    assert_eq!(described.jobs().len(), 1);

    // ... but not to Bob's, nor see, list or cancel his jobs.
    assert_eq!(
        service.submit("alice", "team-b").await.unwrap_err(),
        "AccessDeniedException"
    );
    let alice = service.client("alice");
    let error = alice.describe_jobs().jobs(&bobs).send().await.unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));
    assert!(
        error.message().unwrap().contains("batch:DescribeJobs"),
        "{error:?}"
    );
    let error = alice
        .describe_jobs()
        .jobs(&alices)
        .jobs(&bobs)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some("AccessDeniedException"),
        "one job of another's refuses the call"
    );
    // An id that names no job is refused to her as well: the answer does not tell Bob's ids
    // from ids that name nothing.
    let error = alice
        .describe_jobs()
        .jobs("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));
    let error = alice
        .list_jobs()
        .job_queue("team-b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));
    let error = alice
        .cancel_job()
        .job_id(&bobs)
        .reason("mine now")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));
    service.until_ended(&bobs).await;
    assert_eq!(
        service.status(&bobs).await,
        JobStatus::Succeeded,
        "Bob's job was not touched"
    );

    // Her own queue she sees and lists; her wildcard lets her describe queues, nothing else.
    let mine = alice.describe_jobs().jobs(&alices).send().await.unwrap();
    assert_eq!(mine.jobs()[0].job_id(), Some(alices.as_str()));
    let listed = alice
        .list_jobs()
        .job_queue("team-a")
        .job_status("SUCCEEDED".into())
        .send()
        .await;
    assert!(listed.is_ok(), "{listed:?}");
    assert_eq!(
        alice
            .describe_job_queues()
            .send()
            .await
            .unwrap()
            .job_queues()
            .len(),
        2
    );
    let error = alice
        .describe_compute_environments()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));
    let error = alice
        .create_job_queue()
        .job_queue_name("mine")
        .priority(1)
        .compute_environment_order(
            aws_sdk_batch::types::ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment("shared")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));
    assert_eq!(
        service.batch.describe_job_queues(&[]).len(),
        2,
        "nothing was created"
    );

    // Logs follow the job's queue too.
    service.until_ended(&alices).await;
    let stream = service.batch.log_stream(&alices, None).unwrap();
    let bob_stream = service.batch.log_stream(&bobs, None).unwrap();
    let logs = service.logs("alice");
    let events = logs
        .get_log_events()
        .log_group_name("/aws/batch/job")
        .log_stream_name(&stream)
        .send()
        .await;
    assert!(events.is_ok(), "{events:?}");
    let error = logs
        .get_log_events()
        .log_group_name("/aws/batch/job")
        .log_stream_name(&bob_stream)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"));

    // An explicit Deny wins over Carol's `batch:*` on everything.
    assert!(service.submit("carol", "team-a").await.is_ok());
    assert_eq!(
        service.submit("carol", "team-b").await.unwrap_err(),
        "AccessDeniedException"
    );
}

/// A listing leaves out what the caller may not read rather than refusing it all, as
/// DescribeJobs' wildcard does; naming another team's stream is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_lists_and_searches_only_the_log_streams_of_its_own_queue() {
    let service = start().await;
    let alices = service.submit("alice", "team-a").await.unwrap();
    let bobs = service.submit("bob", "team-b").await.unwrap();
    service.until_ended(&alices).await;
    service.until_ended(&bobs).await;
    let alice_stream = service.batch.log_stream(&alices, None).unwrap();
    let bob_stream = service.batch.log_stream(&bobs, None).unwrap();

    let listed = |name: &'static str| {
        let logs = service.logs(name);
        async move {
            let out = logs
                .describe_log_streams()
                .log_group_name("/aws/batch/job")
                .send()
                .await
                .unwrap();
            let mut names: Vec<String> = out
                .log_streams()
                .iter()
                .map(|s| s.log_stream_name().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    let searched = |name: &'static str| {
        let logs = service.logs(name);
        async move {
            let out = logs
                .filter_log_events()
                .log_group_name("/aws/batch/job")
                .filter_pattern("AWS_BATCH_JOB_ID")
                .send()
                .await
                .unwrap();
            out.events()
                .iter()
                .map(|e| e.log_stream_name().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("alice").await, vec![alice_stream.clone()]);
    assert_eq!(listed("bob").await, vec![bob_stream.clone()]);
    let mut both = vec![alice_stream.clone(), bob_stream.clone()];
    both.sort();
    assert_eq!(listed("admin").await, both);
    assert_eq!(searched("alice").await, vec![alice_stream.clone()]);
    assert_eq!(searched("admin").await.len(), 2);

    let error = service
        .logs("alice")
        .filter_log_events()
        .log_group_name("/aws/batch/job")
        .log_stream_names(&alice_stream)
        .log_stream_names(&bob_stream)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"), "{error:?}");
    // Carol may do anything in Batch but nothing in Logs: refused, not an empty page.
    let error = service
        .logs("carol")
        .describe_log_streams()
        .log_group_name("/aws/batch/job")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDeniedException"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_admits_new_keys_and_a_broken_file_keeps_the_old_ones() {
    let service = start().await;
    let everything =
        policy(json!({"Statement": {"Effect": "Allow", "Action": "batch:*", "Resource": "*"}}));
    let dave = CredentialsFile::create_key(&service.path, "dave", everything).unwrap();
    let client = service.client_with(&dave.access_key_id, &dave.secret_access_key, "us-east-1");
    let error = client.describe_job_queues().send().await.unwrap_err();
    assert_eq!(
        error.code(),
        Some("UnrecognizedClientException"),
        "not before the reload"
    );
    assert_eq!(service.access.reload().unwrap(), 5);
    assert!(client.describe_job_queues().send().await.is_ok());

    std::fs::write(&service.path, "{not json").unwrap();
    let error = service.access.reload().unwrap_err().to_string();
    assert!(error.contains("credentials.json"), "{error}");
    assert!(
        client.describe_job_queues().send().await.is_ok(),
        "the keys in force stay"
    );
}

/// `method path` signed by `key` over `signed_body` (its bytes, or `UNSIGNED-PAYLOAD` declared in
/// `x-amz-content-sha256` when `None`), then sent to the server's socket with `sent_body`.
async fn signed_on_the_wire(
    service: &Service,
    key: &Key,
    method: &str,
    path: &str,
    content_type: &str,
    signed_body: Option<&[u8]>,
    sent_body: &[u8],
) -> wasmbatch_tests::wire::Response {
    let head = wasmbatch_tests::wire::signed_head(
        &key.access_key_id,
        &key.secret_access_key,
        method,
        &service.address.to_string(),
        path,
        content_type,
        signed_body,
    );
    wasmbatch_tests::wire::exchange(service.address, &head, sent_body).await
}

/// Someone who sees one signed SubmitJob (on a plain-HTTP network, in a proxy's log) keeps its
/// signed headers and sends a body of their own. With the body declared `UNSIGNED-PAYLOAD` the
/// signature said nothing about it, and the swapped job ran; now the body is always hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_body_with_unsigned_payload_is_refused() {
    let service = start().await;
    let admin = service.key("admin").clone();
    let swapped = br#"{"jobName": "evil", "jobQueue": "team-b", "jobDefinition": "hello"}"#;
    let response = signed_on_the_wire(
        &service,
        &admin,
        "POST",
        "/v1/submitjob",
        "application/json",
        None,
        swapped,
    )
    .await;
    assert_eq!(
        (response.status, response.error_type()),
        (403, "InvalidSignatureException"),
        "{response:?}"
    );
    assert!(response.body.contains("UNSIGNED-PAYLOAD"), "{response:?}");
    assert_eq!(service.jobs(), 0, "nothing was submitted");

    // The same request signed over its body is served: the refusal is the unsigned body's.
    let response = signed_on_the_wire(
        &service,
        &admin,
        "POST",
        "/v1/submitjob",
        "application/json",
        Some(swapped),
        swapped,
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(service.jobs(), 1);

    // The one exception: a module upload is streamed to disk as it arrives, and a client may
    // not know its hash up front (its bytes are then not covered; the README says so).
    let module = wasmbatch_tests::guests::bytes(guests::wasip1::HELLO);
    let response = signed_on_the_wire(
        &service,
        &admin,
        "PUT",
        "/v1/modules/unsigned",
        "application/wasm",
        None,
        &module,
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
}
