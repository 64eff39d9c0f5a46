//! The service's edge, attacked through a real socket: web pages that make a browser call a
//! server on loopback (a `text/plain` POST, DNS rebinding).

use std::net::SocketAddr;

use serde_json::json;
use wasmbatch_api::{Access, ServeConfig};
use wasmbatch_runtime::{Batch, BatchConfig};
use wasmbatch_tests::wire::{self, Response};
use wasmbatch_tests::{guests, local_queue, module_and_definition};

/// A server on 127.0.0.1:0 with a queue `main` and a definition `hello`.
struct Edge {
    batch: Batch,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A server in local-development mode, which checks no signature, served as `adjust` makes the
/// default [`ServeConfig`].
async fn start(adjust: impl FnOnce(&mut ServeConfig)) -> Edge {
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
    let mut config = ServeConfig::default();
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(wasmbatch_api::serve_with(
        listener,
        batch.clone(),
        Access::local(),
        config,
        std::future::pending(),
    ));
    Edge {
        batch,
        address,
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
}

/// A page on another site posts a job with what a `<form enctype="text/plain">` or a `no-cors`
/// fetch may send without asking the server first (no CORS preflight): a `text/plain` or form
/// body, its own `Origin`, `Sec-Fetch-Site: cross-site`. A server in local-development mode,
/// which checks no signature, created the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_posting_text_plain_cannot_submit_a_job() {
    let edge = start(|_| {}).await;
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
    let edge = start(|config| {
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
