//! The client side of the commands that talk to a server (`push`, `submit`, `jobs`, …): the
//! endpoint and output flags they share, the HTTP calls, and how a failure becomes one line.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

type Body = BoxBody<Bytes, std::io::Error>;

/// Flags every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server to talk to.
    #[arg(
        long,
        env = "WASMBATCH_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub endpoint: String,
    /// `table` for people, `json` for programs (the server's replies, as they are).
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// PEM certificates to trust for an https:// endpoint instead of the system's (a private
    /// CA, as `wasmbatch serve --tls-cert` may use); the variable the AWS CLI reads.
    #[arg(long, env = "AWS_CA_BUNDLE", value_name = "FILE", global = true)]
    pub ca_bundle: Option<std::path::PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns and short summaries.
    Table,
    /// JSON, pretty-printed.
    Json,
}

/// A wasmbatch server, as the client commands reach it.
pub struct Endpoint {
    url: String,
    http: Client<HttpsConnector<HttpConnector>, Body>,
    /// Requests are signed (SigV4, as the AWS CLI signs) when the environment has a key.
    key: Option<SigningKey>,
}

/// The caller's key, from the environment variables the AWS tools read.
struct SigningKey {
    credentials: aws_credential_types::Credentials,
    region: String,
}

impl SigningKey {
    fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        Some(SigningKey {
            credentials: aws_credential_types::Credentials::new(id, secret, None, None, "env"),
            region,
        })
    }
}

impl Endpoint {
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let url = connection.endpoint.trim_end_matches('/').to_string();
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            bail!("--endpoint {url}: expected http://HOST:PORT or https://HOST:PORT");
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.enforce_http(false);
        let roots = if https {
            trusted(connection.ca_bundle.as_deref())?
        } else {
            rustls::RootCertStore::empty()
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            url,
            http: Client::builder(TokioExecutor::new()).build(connector),
            key: SigningKey::from_env(),
        })
    }

    /// Signs `request`, whose body hashes to `payload_hash`, if there is a key: adds `Host`,
    /// `x-amz-content-sha256`, `X-Amz-Date` and `Authorization`.
    fn sign(&self, request: &mut hyper::Request<Body>, payload_hash: &str) -> anyhow::Result<()> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let Some(key) = &self.key else {
            return Ok(());
        };
        let host = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let headers = request.headers_mut();
        headers.insert(hyper::header::HOST, host.parse()?);
        headers.insert("x-amz-content-sha256", payload_hash.parse()?);
        let identity = key.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&key.region)
            .name("batch")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            request
                .headers()
                .iter()
                .filter(|(name, _)| *name != hyper::header::CONTENT_LENGTH)
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
            SignableBody::Precomputed(payload_hash.to_string()),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    /// `POST /v1/<operation>` with a JSON body; the reply, or the server's message as the error.
    pub async fn call(&self, operation: &str, body: &Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let hash = sha256_hex(body.as_bytes());
        let mut request = hyper::Request::post(format!("{}/v1/{operation}", self.url))
            .header("content-type", "application/json")
            .body(full(body))?;
        self.sign(&mut request, &hash)?;
        self.json(request).await
    }

    /// `PUT /v1/modules/<name>` with the file's bytes, streamed.
    pub async fn push(
        &self,
        name: &str,
        mut file: tokio::fs::File,
        size: u64,
    ) -> anyhow::Result<Value> {
        // The hash is signed up front, so the file is read twice; the server checks it as the
        // last piece arrives.
        let hash = {
            use sha2::Digest;
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut hasher = sha2::Sha256::new();
            let mut buffer = vec![0; 1 << 16];
            loop {
                let n = file.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
            file.rewind().await?;
            hex::encode(hasher.finalize())
        };
        let stream = futures_util::TryStreamExt::map_ok(
            tokio_util::io::ReaderStream::new(file),
            hyper::body::Frame::data,
        );
        let mut request = hyper::Request::put(format!("{}/v1/modules/{name}", self.url))
            .header("content-type", "application/wasm")
            .header("content-length", size)
            .header("x-amz-content-sha256", &hash)
            .body(BodyExt::boxed(StreamBody::new(stream)))?;
        self.sign(&mut request, &hash)?;
        self.json(request).await
    }

    /// `GET <path>`, as JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let mut request = hyper::Request::get(format!("{}{path}", self.url)).body(empty())?;
        self.sign(&mut request, &sha256_hex(b""))?;
        self.json(request).await
    }

    /// `GET <path>`, its body handed to `piece` as it arrives.
    pub async fn stream(&self, path: &str, mut piece: impl FnMut(&[u8])) -> anyhow::Result<()> {
        let mut request = hyper::Request::get(format!("{}{path}", self.url)).body(empty())?;
        self.sign(&mut request, &sha256_hex(b""))?;
        let response = self.send(request).await?;
        if !response.status().is_success() {
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            bail!("{}{}", message(&bytes), self.hint(status));
        }
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the server broke off the stream")?;
            if let Some(data) = frame.data_ref() {
                piece(data);
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        request: hyper::Request<Body>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        self.http.request(request).await.map_err(|e| {
            anyhow!(
                "cannot reach wasmbatch at {} ({}); is `wasmbatch serve` running there?",
                self.url,
                root_cause(&e)
            )
        })
    }

    async fn json(&self, request: hyper::Request<Body>) -> anyhow::Result<Value> {
        let response = self.send(request).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("reading the server's reply")?
            .to_bytes();
        if !status.is_success() {
            bail!("{}{}", message(&bytes), self.hint(status));
        }
        serde_json::from_slice(&bytes).context("the server's reply is not JSON")
    }

    /// What to do about a refusal when no key was used.
    fn hint(&self, status: hyper::StatusCode) -> &'static str {
        if status == hyper::StatusCode::FORBIDDEN && self.key.is_none() {
            " (the server checks signatures: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key from `wasmbatch keys create`)"
        } else {
            ""
        }
    }
}

/// The certificates an https:// endpoint is checked against: those in `ca_bundle`, or the
/// system's, as the AWS CLI does.
fn trusted(ca_bundle: Option<&std::path::Path>) -> anyhow::Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("--ca-bundle {}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                bail!("--ca-bundle {}: no certificate in it", path.display());
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(roots)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The `message` of an AWS-style error body, or the body itself.
fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    full(String::new())
}

/// Prints `rows` under `header` in aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", text.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// A string member of a reply, or "-".
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
