//! The web console in a real headless Chromium (Debian's, under chromedriver): the page that
//! `wasmbatch serve` serves at `/console` calls the API from the browser, so what these tests
//! see is what an operator sees. Jobs are submitted through the API (aws-sdk-batch) while the
//! page is open: a job appears, its log line arrives while it still runs, a failed job shows
//! why, the queue's counts and the throughput chart follow. With keys, the page asks for one,
//! signs every request with it, and shows only what its policy allows. Screenshots are written
//! under the test's target dir for a human to look at.

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use wasmbatch_api::Access;
use wasmbatch_api::access::credentials::{CredentialsFile, credentials_path};
use wasmbatch_api::access::policy::Policy;
use wasmbatch_runtime::model::JobStatus;
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::browser::{Browser, SHOWN_WITHIN};
use wasmbatch_tests::wire;
use wasmbatch_tests::{decode, describe, finished, guests, job_queue, module_and_definition};

/// A server on a loopback port over a fresh data dir with queues on one environment, and the
/// `hello`, `sleep` and `exit-code` definitions.
struct Service {
    batch: Batch,
    endpoint: String,
    _dir: tempfile::TempDir,
}

async fn start(queues: &[&str], keys: impl FnOnce(&std::path::Path) -> Option<Access>) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    wasmbatch_tests::environment(&batch, "local", 2, "ENABLED").await;
    for queue in queues {
        job_queue(&batch, queue, 1, "local").await;
    }
    for (name, guest, command) in [
        (
            "hello",
            guests::wasip1::HELLO,
            &["from the console test"][..],
        ),
        ("sleep", guests::wasip1::SLEEP, &[][..]),
        ("exit-code", guests::wasip1::EXIT_CODE, &["3"][..]),
    ] {
        module_and_definition(&batch, name, guest, command, 16, json!({})).await;
    }
    let access = keys(&credentials_path(dir.path())).unwrap_or_else(Access::local);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wasmbatch_api::serve(
        listener,
        batch.clone(),
        access,
        std::future::pending(),
    ));
    Service {
        batch,
        endpoint,
        _dir: dir,
    }
}

impl Service {
    /// An SDK client, as a user's program would make one, with `key` (any, without keys).
    fn sdk(&self, key: (&str, &str)) -> aws_sdk_batch::Client {
        let credentials =
            aws_sdk_batch::config::Credentials::new(key.0, key.1, None, None, "console-test");
        aws_sdk_batch::Client::from_conf(
            aws_sdk_batch::Config::builder()
                .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
                .region(aws_sdk_batch::config::Region::new("us-east-1"))
                .credentials_provider(credentials)
                .endpoint_url(&self.endpoint)
                .http_client(aws_smithy_http_client::Builder::new().build_http())
                .build(),
        )
    }

    fn console(&self, view: &str) -> String {
        format!("{}/console#/{view}", self.endpoint)
    }
}

async fn submit(
    sdk: &aws_sdk_batch::Client,
    name: &str,
    queue: &str,
    definition: &str,
    command: &[&str],
    array_size: Option<i32>,
) -> String {
    let mut request = sdk
        .submit_job()
        .job_name(name)
        .job_queue(queue)
        .job_definition(definition);
    if !command.is_empty() {
        request = request.container_overrides(
            aws_sdk_batch::types::ContainerOverrides::builder()
                .set_command(Some(command.iter().map(|c| c.to_string()).collect()))
                .build(),
        );
    }
    if let Some(size) = array_size {
        request = request.array_properties(
            aws_sdk_batch::types::ArrayProperties::builder()
                .size(size)
                .build(),
        );
    }
    request.send().await.unwrap().job_id().unwrap().to_string()
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(SHOWN_WITHIN)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn screenshot(browser: &Browser, name: &str) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    browser.screenshot_to(&path).await;
    println!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_new_job_its_log_live_and_why_a_job_failed() {
    let service = start(&["main"], |_| None).await;
    let sdk = service.sdk(("any", "any"));
    let owned = Browser::start().await;
    let browser = &owned;
    let client = &owned.client;
    client
        .goto(&service.console("jobs?queue=main&status=RUNNING"))
        .await
        .unwrap();
    browser.shown("#jobs", |t| t.contains("No jobs here")).await;

    // A job submitted through the API appears in the list the page is showing.
    let sleeper = submit(&sdk, "sleeper", "main", "sleep", &[], None).await;
    let row = format!("tr[data-job-id='{sleeper}']");
    browser
        .shown(&row, |t| t.contains("sleeper") && t.contains("RUNNING"))
        .await;

    // Its log line arrives while it still runs: the page follows the log, it does not wait for
    // the end.
    click(client, &format!("{row} a")).await;
    browser.shown("#log", |t| t.contains("sleeping")).await;
    assert_eq!(
        describe(&service.batch, &sleeper).status,
        JobStatus::Running
    );
    assert_eq!(browser.text("#log-state").await.unwrap(), "(following)");
    browser
        .shown("dd[data-field='Status']", |t| t == "RUNNING")
        .await;
    screenshot(browser, "console-job-running.png").await;

    // Terminated through the API, the open page shows it ended and why.
    sdk.terminate_job()
        .job_id(&sleeper)
        .reason("stopped by the console test")
        .send()
        .await
        .unwrap();
    finished(&service.batch, &sleeper).await;
    browser
        .shown("dd[data-field='Status']", |t| t == "FAILED")
        .await;
    browser
        .shown("#log-state", |t| t == "(the job has ended)")
        .await;

    // A job that failed on its own: the page gives the reason, the exit code and the attempt.
    let failing = submit(&sdk, "failing", "main", "exit-code", &[], None).await;
    let failed = finished(&service.batch, &failing).await;
    assert_eq!(failed.status, JobStatus::Failed);
    client
        .goto(&service.console(&format!("job/{failing}")))
        .await
        .unwrap();
    let reason = failed.status_reason.clone().unwrap();
    browser
        .shown("dd[data-field='Status reason']", |t| t == reason)
        .await;
    browser
        .shown("dd[data-field='Exit code']", |t| t == "3")
        .await;
    browser
        .shown("dd[data-field='Command']", |t| t == "\"3\"")
        .await;
    browser
        .shown("#attempts tbody", |t| t.contains(&reason))
        .await;
    browser
        .shown("#log", |t| t.contains("exiting with 3"))
        .await;
    screenshot(browser, "console-job-failed.png").await;

    // The queue's counts, and the chart of jobs ended since the page opened (2 failed, then a
    // job and an array of 20 that succeed).
    let hello = submit(&sdk, "greeting", "main", "hello", &[], None).await;
    let array = submit(&sdk, "greetings", "main", "hello", &[], Some(20)).await;
    finished(&service.batch, &hello).await;
    finished(&service.batch, &array).await;
    click(client, "header nav a[data-view='queues']").await;
    let cell = |status: &str| format!("tr[data-queue='main'] td[data-status='{status}']");
    browser.shown(&cell("SUCCEEDED"), |t| t == "21").await;
    browser.shown(&cell("FAILED"), |t| t == "2").await;
    browser.shown(&cell("RUNNING"), |t| t == "0").await;
    browser
        .shown("#throughput-total", |t| {
            t.starts_with("23 finished (21 succeeded, 2 failed)")
        })
        .await;
    let bars = client
        .execute(
            "return document.querySelectorAll('#throughput-chart rect').length",
            vec![],
        )
        .await
        .unwrap();
    assert!(bars.as_u64().unwrap() >= 2, "{bars}");

    // A fair-share queue shows each share's use, as GetJobQueueSnapshot reports it.
    let policy = service
        .batch
        .create_scheduling_policy(decode(json!({"name": "teams", "fairsharePolicy": {}})))
        .await
        .unwrap();
    service
        .batch
        .create_job_queue(decode(json!({
            "jobQueueName": "shared", "priority": 1, "schedulingPolicyArn": policy.arn,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]
        })))
        .await
        .unwrap();
    let render = sdk
        .submit_job()
        .job_name("render")
        .job_queue("shared")
        .job_definition("sleep")
        .share_identifier("render")
        .send()
        .await
        .unwrap();
    browser
        .shown("tr[data-queue='shared'] li[data-share='render']", |t| {
            t.starts_with("render: 1 vCPU in use")
        })
        .await;
    browser.shown(&cell("SUCCEEDED"), |t| t == "21").await;
    browser
        .shown("tr[data-queue='shared'] td[data-status='RUNNING']", |t| {
            t == "1"
        })
        .await;
    screenshot(browser, "console-queues.png").await;
    assert_eq!(
        describe(&service.batch, render.job_id().unwrap()).status,
        JobStatus::Running
    );

    // The compute environments, and no workers outside cluster mode.
    click(client, "header nav a[data-view='environments']").await;
    let local = browser
        .shown("tr[data-environment='local']", |t| t.contains("VALID"))
        .await;
    assert!(
        local.contains("MANAGED (EC2)") && local.contains("ENABLED / VALID"),
        "{local}"
    );
    browser
        .shown("#workers", |t| t.starts_with("No remote workers"))
        .await;

    // Every status, newest first, a page at a time (2 a page here), and by name.
    client
        .goto(&service.console("jobs?queue=main&size=2"))
        .await
        .unwrap();
    let names = |css: &'static str| async move {
        let found = client
            .execute(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)",
                vec![json!(css)],
            )
            .await
            .unwrap();
        serde_json::from_value::<Vec<String>>(found).unwrap()
    };
    let page = |n: &'static str| async move {
        browser.shown("#page", |t| t == n).await;
        names("#jobs tbody tr td:first-child").await
    };
    browser
        .shown("#jobs tbody", |t| t.contains("greetings"))
        .await;
    assert_eq!(page("page 1").await, ["greetings", "greeting"]);
    click(client, "#older").await;
    assert_eq!(page("page 2").await, ["failing", "sleeper"]);
    click(client, "#newer").await;
    assert_eq!(page("page 1").await, ["greetings", "greeting"]);
    client
        .goto(&service.console("jobs?queue=main&status=FAILED"))
        .await
        .unwrap();
    browser
        .shown("#jobs tbody", |t| t.contains("sleeper"))
        .await;
    assert_eq!(
        names("#jobs tbody tr td:first-child").await,
        ["failing", "sleeper"]
    );
    client
        .goto(&service.console("jobs?queue=main&name=greet"))
        .await
        .unwrap();
    browser
        .shown("#jobs tbody", |t| t.contains("greeting"))
        .await;
    assert_eq!(
        names("#jobs tbody tr td:first-child").await,
        ["greetings", "greeting"]
    );
    owned.close().await;
}

/// A module's output and a caller's reason reach the page as text: markup in them is never
/// parsed, so a hostile module (or a caller who may terminate a job) cannot run script in an
/// operator's console, where it would sign requests with the operator's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_a_module_prints_or_a_caller_gives_as_a_reason_is_shown_as_text_never_run() {
    let service = start(&["main"], |_| None).await;
    let sdk = service.sdk(("any", "any"));
    let markup = "<img src=x onerror=\"document.title='pwned'\">";
    let hostile = submit(&sdk, "hostile", "main", "sleep", &[], None).await;
    let owned = Browser::start().await;
    let browser = &owned;
    let client = &owned.client;
    client
        .goto(&service.console(&format!("job/{hostile}")))
        .await
        .unwrap();
    browser.shown("#log", |t| t.contains("sleeping")).await;
    let printer = submit(&sdk, "printer", "main", "hello", &[markup], None).await;
    sdk.terminate_job()
        .job_id(&hostile)
        .reason(markup)
        .send()
        .await
        .unwrap();
    browser
        .shown("dd[data-field='Status reason']", |t| t == markup)
        .await;
    client
        .goto(&service.console(&format!("job/{printer}")))
        .await
        .unwrap();
    browser.shown("#log", |t| t.contains("<img src=x")).await;
    client
        .goto(&service.console("jobs?queue=main&status=FAILED"))
        .await
        .unwrap();
    browser.shown("#jobs tbody", |t| t.contains(markup)).await;
    let parsed = client
        .execute(
            "return [document.querySelectorAll('main img').length, document.title]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(parsed, json!([0, "wasmbatch console"]));
    owned.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_the_console_signs_in_and_shows_only_what_the_policy_allows() {
    let mut keys = Vec::new();
    let service = start(&["team-a", "team-b"], |path| {
        let team = |queue: &str| {
            serde_json::from_value(json!({"Statement": [
                {"Effect": "Allow",
                 "Action": ["batch:SubmitJob", "batch:DescribeJobs", "batch:ListJobs", "logs:GetLogEvents"],
                 "Resource": [format!("arn:aws:batch:*:*:job-queue/{queue}"), "arn:aws:batch:*:*:job-definition/*"]},
                {"Effect": "Allow", "Action": ["batch:DescribeJobQueues", "batch:DescribeComputeEnvironments"], "Resource": "*"}
            ]}))
            .unwrap()
        };
        keys.push(CredentialsFile::create_key(path, "alice", team("team-a")).unwrap());
        keys.push(CredentialsFile::create_key(path, "bob", team("team-b")).unwrap());
        Some(Access::from_file(path).unwrap())
    })
    .await;
    let (alice, bob) = (&keys[0], &keys[1]);
    let alices = submit(
        &service.sdk((&alice.access_key_id, &alice.secret_access_key)),
        "alices",
        "team-a",
        "hello",
        &[],
        None,
    )
    .await;
    let bobs = submit(
        &service.sdk((&bob.access_key_id, &bob.secret_access_key)),
        "bobs",
        "team-b",
        "hello",
        &[],
        None,
    )
    .await;
    finished(&service.batch, &alices).await;
    finished(&service.batch, &bobs).await;

    let owned = Browser::start().await;
    let browser = &owned;
    let client = &owned.client;
    client.goto(&service.console("queues")).await.unwrap();
    // Unsigned, the server refuses; the page asks for a key.
    let visible = |css: &'static str| async move {
        client
            .execute(
                "const e = document.querySelector(arguments[0]); return !!e && !e.hidden;",
                vec![json!(css)],
            )
            .await
            .unwrap()
            == Value::Bool(true)
    };
    browser
        .shown("#sign-in-refusal", |t| {
            t.contains("MissingAuthenticationTokenException")
        })
        .await;
    assert!(visible("#sign-in").await);

    // A wrong secret is refused by the server's signature check, and the page says so.
    let sign_in = |secret: String| async move {
        let form = client.find(Locator::Css("#sign-in")).await.unwrap();
        let id = form.find(Locator::Css("#access-key-id")).await.unwrap();
        id.clear().await.unwrap();
        id.send_keys(&alice.access_key_id).await.unwrap();
        let field = form.find(Locator::Css("#secret-access-key")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(&secret).await.unwrap();
        click(client, "#sign-in button[type='submit']").await;
    };
    sign_in(format!("{}x", alice.secret_access_key)).await;
    browser
        .shown("#sign-in-refusal", |t| {
            t.contains("InvalidSignatureException")
        })
        .await;
    assert!(visible("#sign-in").await);

    // Signed in: every request is signed in the page, and the policy decides what it shows.
    sign_in(alice.secret_access_key.clone()).await;
    browser
        .shown("#identity", |t| t.contains(&alice.access_key_id))
        .await;
    let cell =
        |queue: &str, status: &str| format!("tr[data-queue='{queue}'] td[data-status='{status}']");
    browser
        .shown(&cell("team-a", "SUCCEEDED"), |t| t == "1")
        .await;
    // Her policy lets her describe every queue but list the jobs of her own only: team-b is a
    // row without counts.
    assert_eq!(
        browser.text(&cell("team-b", "SUCCEEDED")).await.unwrap(),
        ""
    );
    // The event stream is a signed fetch too (EventSource cannot sign).
    browser.shown("#events-state", |t| t == "live").await;

    // Her job's detail and its log, through the signed log route.
    client
        .goto(&service.console(&format!("job/{alices}")))
        .await
        .unwrap();
    browser
        .shown("#log", |t| t.contains("hello from wasmbatch"))
        .await;
    browser
        .shown("dd[data-field='Status']", |t| t == "SUCCEEDED")
        .await;
    // Bob's job is not hers to see.
    client
        .goto(&service.console(&format!("job/{bobs}")))
        .await
        .unwrap();
    browser.shown("#job", |t| t.contains("AccessDenied")).await;
    owned.close().await;
}

/// The page and its files come from the binary, unsigned, each with its type and a policy that
/// lets the page run only its own scripts; a name that is not one of them (a path climbing
/// out, say) is a 404 in the AWS envelope.
#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_policy_that_runs_only_its_own_scripts() {
    let service = start(&["main"], |path| {
        CredentialsFile::create_key(path, "admin", Policy::allow_all()).unwrap();
        Some(Access::from_file(path).unwrap())
    })
    .await;
    let address = service
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let get = |path: &'static str| async move {
        wire::exchange(
            address,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost"),
            b"",
        )
        .await
    };
    for (path, kind, holds) in [
        (
            "/console",
            "text/html",
            "wasmbatch-region\" content=\"us-east-1\"",
        ),
        ("/console/", "text/html", "/console/console.js"),
        (
            "/console/console.js",
            "text/javascript",
            "import { AwsClient } from './aws4fetch.js'",
        ),
        ("/console/console.css", "text/css", "#throughput"),
        (
            "/console/aws4fetch.js",
            "text/javascript",
            "export { AwsClient",
        ),
        ("/console/aws4fetch.LICENSE", "text/plain", "Michael Hart"),
    ] {
        let response = get(path).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert!(
            response.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(response.body.contains(holds), "{path} lacks {holds:?}");
        let policy = response.header("content-security-policy").unwrap();
        assert!(
            policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }
    for path in ["/console/..%2Fcredentials.json", "/console/index.html"] {
        let response = get(path).await;
        assert_eq!(response.status, 404, "{path}: {response:?}");
        assert_eq!(response.error_type(), "UnknownOperationException", "{path}");
    }
    // The page is public; what it shows is not.
    let response = get("/v1/jobcounts").await;
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(response.error_type(), "MissingAuthenticationTokenException");
}

/// `GET /v1/jobcounts` answers, per queue, as ListJobs is authorised: a key sees the counts of
/// the queues it may list, and one that may list none is refused, not given an empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_counts_are_given_only_for_the_queues_a_key_may_list() {
    let mut keys = Vec::new();
    let service = start(&["team-a", "team-b"], |path| {
        let may = |actions: Value| {
            serde_json::from_value(json!({"Statement": [{"Effect": "Allow", "Action": actions,
                "Resource": ["arn:aws:batch:*:*:job-queue/team-a", "arn:aws:batch:*:*:job-definition/*"]}]}))
            .unwrap()
        };
        keys.push(CredentialsFile::create_key(path, "lister", may(json!(["batch:ListJobs", "batch:SubmitJob"]))).unwrap());
        keys.push(CredentialsFile::create_key(path, "submitter", may(json!("batch:SubmitJob"))).unwrap());
        Some(Access::from_file(path).unwrap())
    })
    .await;
    let lister = &keys[0];
    let sdk = service.sdk((&lister.access_key_id, &lister.secret_access_key));
    let id = submit(&sdk, "counted", "team-a", "exit-code", &[], None).await;
    finished(&service.batch, &id).await;
    let address: std::net::SocketAddr = service
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let counts = |key: usize| {
        let key = &keys[key];
        async move {
            let head = wire::signed_head(
                &key.access_key_id,
                &key.secret_access_key,
                "GET",
                &address.to_string(),
                "/v1/jobcounts",
                "application/json",
                Some(b""),
            );
            wire::exchange(address, &head, b"").await
        }
    };
    let listed = counts(0).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let listed: Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(
        listed,
        json!({"jobQueues": [{
            "jobQueueName": "team-a",
            "jobQueueArn": "arn:aws:batch:us-east-1:000000000000:job-queue/team-a",
            "jobCounts": {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0,
                          "RUNNING": 0, "SUCCEEDED": 0, "FAILED": 1}}]})
    );
    let refused = counts(1).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.error_type(), "AccessDeniedException");
}
