//! The service's edge, attacked through a real socket: web pages that make a browser call a
//! server on loopback (a `text/plain` POST, DNS rebinding), connections that send half a request
//! and never the rest, and the network between a client and the server (TLS, with the real AWS
//! CLI and aws-sdk-rust).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmbatch_api::access::credentials::{CredentialsFile, Key, credentials_path};
use wasmbatch_api::{Access, ServeConfig};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::wire::{self, Response};
use wasmbatch_tests::{guests, local_queue, module_and_definition};

/// A server on 127.0.0.1:0 with a queue `main` and a definition `hello`.
struct Edge {
    batch: Batch,
    address: SocketAddr,
    /// The `admin` key (everything allowed), when the server checks signatures.
    admin: Option<Key>,
    _dir: tempfile::TempDir,
}

/// A server in local-development mode (`checked: false`) or with an `admin` key, served as
/// `adjust` makes the default [`ServeConfig`].
async fn start(checked: bool, adjust: impl FnOnce(&mut ServeConfig)) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::open(BatchConfig::new(dir.path())).await.unwrap();
    local_queue(&batch, 2, "ENABLED").await;
    module_and_definition(
        &batch,
        "hello",
        guests::wasip1::HELLO,
        &["hi"],
        16,
        json!({}),
    )
    .await;
    let (access, admin) = if checked {
        let path = credentials_path(dir.path());
        let everything = serde_json::from_value(json!({"Statement": {
            "Effect": "Allow", "Action": ["batch:*", "logs:*"], "Resource": "*"}}))
        .unwrap();
        let admin = CredentialsFile::create_key(&path, "admin", everything).unwrap();
        (Access::from_file(&path).unwrap(), Some(admin))
    } else {
        (Access::local(), None)
    };
    let mut config = ServeConfig::default();
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(wasmbatch_api::serve_with(
        listener,
        batch.clone(),
        access,
        config,
        std::future::pending(),
    ));
    Edge {
        batch,
        address,
        admin,
        _dir: dir,
    }
}

const SUBMIT: &str = r#"{"jobName": "from-a-page", "jobQueue": "main", "jobDefinition": "hello"}"#;

impl Edge {
    /// Jobs on `main`, whatever their status.
    fn jobs(&self) -> u64 {
        self.batch.job_counts("main").unwrap().values().sum()
    }

    /// `POST /v1/submitjob` with [`SUBMIT`] and the `headers` given (each `Name: value`).
    async fn submit(&self, headers: &[String]) -> Response {
        let mut head = "POST /v1/submitjob HTTP/1.1\r\n".to_string();
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        wire::exchange(self.address, &head, SUBMIT.as_bytes()).await
    }

    /// aws-sdk-batch signing with the `admin` key, over plain HTTP.
    fn client(&self) -> aws_sdk_batch::Client {
        let admin = self.admin.as_ref().expect("a checked server");
        sdk(
            admin,
            &format!("http://{}", self.address),
            aws_smithy_http_client::Builder::new().build_http(),
        )
    }
}

fn sdk(
    key: &Key,
    endpoint: &str,
    http: aws_sdk_batch::config::SharedHttpClient,
) -> aws_sdk_batch::Client {
    let credentials = aws_sdk_batch::config::Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "test",
    );
    aws_sdk_batch::Client::from_conf(
        aws_sdk_batch::Config::builder()
            .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
            .region(aws_sdk_batch::config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .endpoint_url(endpoint)
            .http_client(http)
            .build(),
    )
}

/// A page on another site posts a job with what a `<form enctype="text/plain">` or a `no-cors`
/// fetch may send without asking the server first (no CORS preflight): a `text/plain` or form
/// body, its own `Origin`, `Sec-Fetch-Site: cross-site`. A server in local-development mode,
/// which checks no signature, created the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_posting_text_plain_cannot_submit_a_job() {
    let edge = start(false, |_| {}).await;
    let host = format!("Host: {}", edge.address);
    let evil = "Origin: http://evil.example".to_string();
    for (headers, status, kind) in [
        (
            vec![
                host.clone(),
                "Content-Type: text/plain".into(),
                evil.clone(),
            ],
            403,
            "AccessDeniedException",
        ),
        (
            vec![
                host.clone(),
                "Content-Type: text/plain;charset=UTF-8".into(),
            ],
            400,
            "ClientException",
        ),
        (
            vec![
                host.clone(),
                "Content-Type: application/x-www-form-urlencoded".into(),
            ],
            400,
            "ClientException",
        ),
        (
            vec![
                host.clone(),
                "Content-Type: multipart/form-data; boundary=x".into(),
            ],
            400,
            "ClientException",
        ),
        (vec![host.clone()], 400, "ClientException"),
        (
            vec![
                host.clone(),
                "Content-Type: application/json".into(),
                evil.clone(),
            ],
            403,
            "AccessDeniedException",
        ),
        (
            vec![
                host.clone(),
                "Content-Type: application/json".into(),
                "Origin: null".into(),
            ],
            403,
            "AccessDeniedException",
        ),
        (
            vec![
                host.clone(),
                "Content-Type: application/json".into(),
                "Sec-Fetch-Site: cross-site".into(),
            ],
            403,
            "AccessDeniedException",
        ),
    ] {
        let response = edge.submit(&headers).await;
        assert_eq!(
            (response.status, response.error_type()),
            (status, kind),
            "{headers:?}: {response:?}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&response.body).unwrap()["message"]
                .is_string(),
            "the AWS error envelope: {response:?}"
        );
    }
    assert_eq!(edge.jobs(), 0, "nothing was submitted");

    // What the SDKs send, and a page of the server's own origin, are served.
    let json = "Content-Type: application/json; charset=utf-8".to_string();
    let response = edge.submit(&[host.clone(), json.clone()]).await;
    assert_eq!(response.status, 200, "{response:?}");
    let own = format!("Origin: http://{}", edge.address);
    let response = edge.submit(&[host, json, own]).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(edge.jobs(), 2);
}

/// A page on `rebind.evil.example` whose name the attacker then points at 127.0.0.1: the
/// browser thinks it talks to the page's own origin, so it sends JSON and reads the answers,
/// with `Host: rebind.evil.example`. Only the names the server answers to are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_host_is_refused() {
    let edge = start(false, |config| {
        config.origins = config.origins.clone().allow("batch.example.com").unwrap();
    })
    .await;
    let port = edge.address.port();
    let json = "Content-Type: application/json".to_string();
    for host in [
        format!("rebind.evil.example:{port}"),
        "rebind.evil.example".to_string(),
        format!("localhost.rebind.evil.example:{port}"),
        format!("127.0.0.1.rebind.evil.example:{port}"),
    ] {
        let response = edge.submit(&[format!("Host: {host}"), json.clone()]).await;
        assert_eq!(
            (response.status, response.error_type()),
            (403, "AccessDeniedException"),
            "{host}: {response:?}"
        );
        assert!(response.body.contains(&host), "{response:?}");
        // Reading is refused too: a rebound page can read what it is answered.
        let response = wire::exchange(
            edge.address,
            &format!("GET /v1/modules HTTP/1.1\r\nHost: {host}"),
            b"",
        )
        .await;
        assert_eq!(response.status, 403, "{host}: {response:?}");
    }
    assert_eq!(edge.jobs(), 0, "nothing was submitted");

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("batch.example.com:{port}"),
    ] {
        let response = edge.submit(&[format!("Host: {host}"), json.clone()]).await;
        assert_eq!(response.status, 200, "{host}: {response:?}");
    }
}

/// Reads what the server sends on `socket` until it closes it; panics if it is still open after
/// 10 s (a hang guard, not a timing).
async fn closed_by_the_server(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut raw)).await {
        Ok(_) => raw, // closed, or reset after a refusal: either way, not held
        Err(_) => panic!("the server held the connection: {raw:?}"),
    }
}

/// Hundreds of connections that send half a request and then nothing, the slow-loris way: half
/// a header, or headers (signed with a key the server does not know) and half a body. Before,
/// the server read up to 1 MiB of each body before looking at its signature and set no bound
/// on how long headers or bodies could take, so the connections were held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_connections_do_not_starve_a_signed_caller() {
    let edge = start(true, |config| {
        config.header_read_timeout = Duration::from_secs(1);
        config.body_read_timeout = Duration::from_secs(1);
        config.max_connections = 1000;
    })
    .await;
    let address = edge.address;
    let mut half_headers = Vec::new();
    for _ in 0..300 {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket
            .write_all(
                format!("POST /v1/submitjob HTTP/1.1\r\nHost: {address}\r\nContent-Ty").as_bytes(),
            )
            .await
            .unwrap();
        half_headers.push(socket);
    }
    let mut half_bodies = Vec::new();
    for _ in 0..300 {
        let mut head = wire::signed_head(
            "WBNOBODY",
            "not-a-secret",
            "POST",
            &address.to_string(),
            "/v1/submitjob",
            "application/json",
            Some(SUBMIT.as_bytes()),
        );
        head.push_str(&format!("Content-Length: {}\r\n\r\n", SUBMIT.len()));
        // One write: what was sent all arrives, so a refusal closes the connection cleanly.
        head.push_str(&SUBMIT[..SUBMIT.len() / 2]);
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        half_bodies.push(socket);
    }

    let queues = tokio::time::timeout(
        Duration::from_secs(10),
        edge.client().describe_job_queues().send(),
    )
    .await
    .expect("the signed caller is answered")
    .unwrap();
    assert_eq!(queues.job_queues().len(), 1);

    // The half bodies were refused from their headers alone: the key is checked before the
    // body is read, so their rest was never waited for.
    for socket in &mut half_bodies {
        let response = wire::parse(&closed_by_the_server(socket).await);
        assert_eq!(
            (response.status, response.error_type()),
            (403, "UnrecognizedClientException"),
            "{response:?}"
        );
    }
    // The half headers are closed once the header timeout has passed.
    for socket in &mut half_headers {
        let answer = closed_by_the_server(socket).await;
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(edge.jobs(), 0);
}

/// A flood of connections that never send anything took a socket, a task and a file descriptor
/// each, without end. Past `max_connections` new connections now wait to be accepted until a
/// held one closes: with one slot, held by a silent connection, a second caller is answered
/// only after the header timeout has closed the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_waits_for_free_slots_instead_of_taking_the_server() {
    let edge = start(false, |config| {
        config.header_read_timeout = Duration::from_secs(1);
        config.max_connections = 1;
    })
    .await;
    let silent = tokio::net::TcpStream::connect(edge.address).await.unwrap();
    let host = format!("Host: {}", edge.address);
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        wire::exchange(
            edge.address,
            &format!("GET /v1/modules HTTP/1.1\r\n{host}"),
            b"",
        ),
    )
    .await
    .expect("the second caller is answered once the slot is free");
    assert_eq!(response.status, 200, "{response:?}");
    // The silent one was closed before the second was accepted: its end is already here.
    let mut buffer = [0; 64];
    match silent.try_read(&mut buffer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            panic!("the second caller was served while the first still held the only slot")
        }
        Err(_) => {} // reset: closed too
    }
}

/// A caller with a valid signature whose body stops half-way (a leaked request, a stalled
/// client) is cut off after the body timeout instead of holding its connection and its
/// buffered body for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_whose_body_never_ends_is_cut_off() {
    let edge = start(true, |config| {
        config.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let admin = edge.admin.clone().unwrap();
    let mut head = wire::signed_head(
        &admin.access_key_id,
        &admin.secret_access_key,
        "POST",
        &edge.address.to_string(),
        "/v1/submitjob",
        "application/json",
        Some(SUBMIT.as_bytes()),
    );
    let whole = head.clone();
    head.push_str(&format!("Content-Length: {}\r\n\r\n", SUBMIT.len()));
    head.push_str(&SUBMIT[..SUBMIT.len() / 2]);
    let mut socket = tokio::net::TcpStream::connect(edge.address).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    let response = wire::parse(&closed_by_the_server(&mut socket).await);
    assert_eq!(
        (response.status, response.error_type()),
        (408, "RequestTimeoutException"),
        "{response:?}"
    );
    assert_eq!(edge.jobs(), 0);
    // The same request sent whole is served (a replay within the 15 minutes, as AWS allows).
    let response = wire::exchange(edge.address, &whole, SUBMIT.as_bytes()).await;
    assert_eq!(response.status, 200, "{response:?}");
}

/// aws-sdk-rust over rustls (ring) trusting only the CA in `ca_pem`.
fn https_client(ca_pem: &[u8]) -> aws_sdk_batch::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec()))
                .build()
                .unwrap(),
        )
        .build_https()
}

/// On a network, plain HTTP let anyone on the path read every job's command, environment and
/// logs (SigV4 keeps a request from being changed, not from being read). `serve` with a
/// certificate speaks only TLS; the real AWS CLI (`--ca-bundle`) and aws-sdk-rust (rustls on
/// ring) work over it, and a client that does not trust the certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_network_gives_way_to_tls_for_the_aws_cli_and_sdk() {
    let pems = tempfile::tempdir().unwrap();
    let (ca, cert, key) = wasmbatch_tests::tls::certificates(pems.path());
    let tls = wasmbatch_api::Tls::from_pem_files(&cert, &key).unwrap();
    let edge = start(true, |config| config.tls = Some(tls)).await;
    let admin = edge.admin.clone().unwrap();
    let endpoint = format!("https://localhost:{}", edge.address.port());

    let client = sdk(
        &admin,
        &endpoint,
        https_client(&std::fs::read(&ca).unwrap()),
    );
    let queues = client.describe_job_queues().send().await.unwrap();
    assert_eq!(queues.job_queues().len(), 1);
    let job = client
        .submit_job()
        .job_name("over-tls")
        .job_queue("main")
        .job_definition("hello")
        .send()
        .await
        .unwrap();
    assert!(job.job_id().is_some());

    // A client that trusts another CA does not get through.
    let stranger = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = wasmbatch_tests::tls::certificates(stranger.path());
    let untrusting = sdk(
        &admin,
        &endpoint,
        https_client(&std::fs::read(&other_ca).unwrap()),
    );
    assert!(untrusting.describe_job_queues().send().await.is_err());

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut socket = tokio::net::TcpStream::connect(edge.address).await.unwrap();
    socket
        .write_all(format!("GET /v1/modules HTTP/1.1\r\nHost: {}\r\n\r\n", edge.address).as_bytes())
        .await
        .unwrap();
    let answer = closed_by_the_server(&mut socket).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    // The AWS CLI, trusting the CA with --ca-bundle.
    let program = std::env::var("WASMBATCH_AWS_CLI").expect(
        "WASMBATCH_AWS_CLI is not set: run the suite with scripts/test, which installs the AWS CLI",
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .args(["--endpoint-url", &endpoint, "--ca-bundle"])
            .arg(&ca)
            .args([
                "--output",
                "json",
                "batch",
                "submit-job",
                "--job-name",
                "cli-over-tls",
            ])
            .args(["--job-queue", "main", "--job-definition", "hello"])
            .env("AWS_ACCESS_KEY_ID", &admin.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &admin.secret_access_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let submitted: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(submitted["jobId"].is_string(), "{submitted}");
    assert_eq!(edge.jobs(), 2);
}
