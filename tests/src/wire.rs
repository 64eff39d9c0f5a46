//! Raw HTTP/1.1 over a real socket, for the tests that send what no SDK would: a foreign
//! `Host` or `Origin`, a browser's content type, a body that does not match its signature,
//! a request that stops half-way.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response as it came off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order they came.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of header `name` (any case), if there is one.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `x-amzn-ErrorType` of an AWS error envelope, or "".
    pub fn error_type(&self) -> &str {
        self.header("x-amzn-errortype").unwrap_or_default()
    }
}

/// Sends `head` (request line and headers, without the blank line; `Content-Length` and
/// `Connection: close` are added) and `body` to `address`, and reads the whole response.
pub async fn exchange(address: std::net::SocketAddr, head: &str, body: &[u8]) -> Response {
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
    let mut request = format!(
        "{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        head.trim_end(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    socket
        .write_all(&request)
        .await
        .expect("sending the request");
    let mut raw = Vec::new();
    socket
        .read_to_end(&mut raw)
        .await
        .expect("reading the response");
    parse(&raw)
}

/// A whole HTTP/1.1 response (`Connection: close`, so not chunked unless the server chose to).
pub fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn unchunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The request line and headers of `method path` to `host`, with `content_type`, signed with
/// SigV4 (service `batch`, us-east-1, now) by `key_id` and `secret` over `signed_body` — its
/// SHA-256, or `UNSIGNED-PAYLOAD` when `None`, declared in `x-amz-content-sha256` either way.
/// For [`exchange`], which adds `Content-Length`, or for a test that sends the body itself.
pub fn signed_head(
    key_id: &str,
    secret: &str,
    method: &str,
    host: &str,
    path: &str,
    content_type: &str,
    signed_body: Option<&[u8]>,
) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity =
        aws_credential_types::Credentials::new(key_id, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("batch")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let hash = match signed_body {
        Some(bytes) => hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
        None => "UNSIGNED-PAYLOAD".to_string(),
    };
    let headers = [
        ("host", host),
        ("content-type", content_type),
        ("x-amz-content-sha256", hash.as_str()),
    ];
    let body = match signed_body {
        Some(bytes) => SignableBody::Bytes(bytes),
        None => SignableBody::UnsignedPayload,
    };
    let uri = format!("http://{host}{path}");
    let signable = SignableRequest::new(method, &uri, headers.iter().copied(), body)
        .expect("a signable request");
    let (instructions, _) = sign(signable, &params).expect("signing").into_parts();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers.into_iter().chain(instructions.headers()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head
}
