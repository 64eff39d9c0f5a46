//! Requests a web page could make a browser send are refused before anything else looks at
//! them, in every mode: a `Host` this server does not answer to (DNS rebinding: a page on
//! `rebind.evil.example` whose name now resolves to 127.0.0.1), an `Origin` or a
//! `Sec-Fetch-Site` that is not this server's own (a page on another site posting to it), and a
//! body whose `Content-Type` is not one the AWS SDKs send (`text/plain`, form encodings: the
//! types a browser may post across sites without asking the server first).
//!
//! The AWS CLI, the SDKs and `wasmbatch`'s own client send none of these: no `Origin`, the
//! endpoint's authority as `Host`, `application/json` (REST-JSON) or
//! `application/x-amz-json-1.1` (CloudWatch Logs) on every body, `application/wasm` or
//! `application/octet-stream` on a module upload, and nothing on the bodiless GET and DELETE.
//! The web console at `/console` is a page of this server's own origin: its requests carry
//! that `Origin` and `Sec-Fetch-Site: same-origin`, and JSON bodies, so they pass.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header, uri::Authority};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Why a request was refused as one a browser may have been made to send.
#[derive(Debug, thiserror::Error)]
pub enum CrossOrigin {
    /// The `Host` names neither loopback, nor the listen address, nor an allowed host.
    #[error(
        "Host {0:?} is not a name this server answers to (loopback, its listen address, or \
         `wasmbatch serve --allowed-host NAME`)"
    )]
    Host(String),
    /// The `Origin` is not this server's own.
    #[error(
        "Origin {origin:?} is not this server's own ({scheme}://{host}): requests from web pages on other origins are refused"
    )]
    Origin {
        /// The `Origin` header as it came.
        origin: String,
        /// `http` or `https`.
        scheme: &'static str,
        /// The `Host` header as it came (or `-`).
        host: String,
    },
    /// A browser says the request comes from another site.
    #[error("Sec-Fetch-Site {0:?}: requests from web pages on other origins are refused")]
    FetchSite(String),
    /// A body of a type the AWS SDKs do not send.
    #[error("Content-Type {found:?} is not accepted for {method} {path}: send {expected}")]
    ContentType {
        /// The `Content-Type` as it came (`""` if none).
        found: String,
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// What is accepted there.
        expected: &'static str,
    },
}

impl CrossOrigin {
    /// The status and `x-amzn-ErrorType` it is answered with: a foreign page is denied; a
    /// wrong content type is the caller's mistake.
    pub(crate) fn kind(&self) -> (StatusCode, &'static str) {
        match self {
            CrossOrigin::ContentType { .. } => (StatusCode::BAD_REQUEST, "ClientException"),
            _ => (StatusCode::FORBIDDEN, "AccessDeniedException"),
        }
    }
}

/// Why an operator's `--allowed-host` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("allowed host {0:?}: expected NAME, NAME:PORT, ADDRESS or [IPV6]:PORT")]
pub struct BadAllowedHost(String);

/// The names and addresses this server answers to, and its scheme. Loopback (`localhost`,
/// `127.0.0.0/8`, `[::1]`, any port) always; besides, what [`SameOrigin::listening_on`] and
/// [`SameOrigin::allow`] add.
#[derive(Debug, Clone)]
pub struct SameOrigin {
    inner: Arc<Allowed>,
}

#[derive(Debug, Clone)]
struct Allowed {
    /// `http`, or `https` when served over TLS: the scheme of this server's own origin.
    scheme: &'static str,
    /// Hosts (lower case; IPv6 in brackets) and the port they must come with, if any.
    hosts: Vec<(String, Option<u16>)>,
    /// Set when listening on an unspecified address (`0.0.0.0`, `[::]`): any IP literal with this
    /// port is accepted, since the server answers on all of the host's addresses. DNS rebinding
    /// needs a name, so an address in `Host` is never a rebinding.
    any_address_on: Option<u16>,
}

impl Default for SameOrigin {
    fn default() -> Self {
        Self::loopback()
    }
}

impl SameOrigin {
    /// Loopback names and addresses only, over plain HTTP.
    pub fn loopback() -> Self {
        SameOrigin {
            inner: Arc::new(Allowed {
                scheme: "http",
                hosts: Vec::new(),
                any_address_on: None,
            }),
        }
    }

    /// Served over TLS: the server's own origin is `https://…`.
    pub fn https(mut self) -> Self {
        Arc::make_mut(&mut self.inner).scheme = "https";
        self
    }

    /// Also the address the server listens on (with its port).
    pub fn listening_on(mut self, address: SocketAddr) -> Self {
        let allowed = Arc::make_mut(&mut self.inner);
        if address.ip().is_unspecified() {
            allowed.any_address_on = Some(address.port());
        } else {
            allowed
                .hosts
                .push((host_of(address.ip()), Some(address.port())));
        }
        self
    }

    /// Also `host`: a name (any port) or `name:port`, an address or `address:port`.
    pub fn allow(mut self, host: &str) -> Result<Self, BadAllowedHost> {
        let (name, port) = split_host(host).ok_or_else(|| BadAllowedHost(host.into()))?;
        Arc::make_mut(&mut self.inner).hosts.push((name, port));
        Ok(self)
    }

    fn scheme(&self) -> &'static str {
        self.inner.scheme
    }

    /// Whether a `Host` header value names this server.
    fn answers_to(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if is_loopback(&name) {
            return true;
        }
        if let Some(listen_port) = self.inner.any_address_on
            && port == Some(listen_port)
            && parse_ip(&name).is_some()
        {
            return true;
        }
        self.inner.hosts.iter().any(|(allowed, allowed_port)| {
            *allowed == name && allowed_port.is_none_or(|p| port == Some(p))
        })
    }

    /// The refusal `request`'s headers earn, if any.
    fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), CrossOrigin> {
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        // No Host at all is not a browser (every browser sends one); such a request cannot be
        // signed either, as SigV4 signs `host`, so only local-development mode serves it.
        let host = text(header::HOST);
        if let Some(host) = &host
            && !self.answers_to(host)
        {
            return Err(CrossOrigin::Host(host.clone()));
        }
        if let Some(origin) = text(header::ORIGIN)
            && !host
                .as_deref()
                .is_some_and(|host| self.is_own_origin(&origin, host))
        {
            return Err(CrossOrigin::Origin {
                origin,
                scheme: self.scheme(),
                host: host.unwrap_or_else(|| "-".into()),
            });
        }
        // Browsers say where a request comes from; a `no-cors` GET (an <img>, a <script>)
        // carries no Origin, but this.
        if let Some(site) = headers.get("sec-fetch-site")
            && !matches!(site.as_bytes(), b"same-origin" | b"none")
        {
            return Err(CrossOrigin::FetchSite(
                String::from_utf8_lossy(site.as_bytes()).into_owned(),
            ));
        }
        check_content_type(method, path, headers)
    }

    /// Whether `origin` is `scheme://host[:port]` with this server's scheme and the request's
    /// `host` (a default port written or not).
    fn is_own_origin(&self, origin: &str, host: &str) -> bool {
        let Some(rest) = origin
            .strip_prefix(self.scheme())
            .and_then(|r| r.strip_prefix("://"))
        else {
            return false;
        };
        let default = if self.scheme() == "https" { 443 } else { 80 };
        match (split_host(rest), split_host(host)) {
            (Some((a, a_port)), Some((b, b_port))) => {
                a == b && a_port.unwrap_or(default) == b_port.unwrap_or(default)
            }
            _ => false,
        }
    }
}

/// The content types accepted on bodies: what the AWS SDKs send.
const JSON: &[&str] = &[
    "application/json",
    "application/x-amz-json-1.1",
    "application/x-amz-json-1.0",
];
const MODULE: &[&str] = &["application/wasm", "application/octet-stream"];

/// A request that carries a body, or whose method always does (POST, PUT, PATCH), must say it
/// is of a type the route takes; a browser can send `text/plain` and the form types across
/// sites without a preflight, but not these. Bodiless GET and DELETE need no type.
fn check_content_type(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), CrossOrigin> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|n| n.as_bytes() != b"0");
    if !has_body && !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return Ok(());
    }
    let (accepted, expected) = if *method == Method::PUT && path.starts_with("/v1/modules/") {
        (MODULE, "application/wasm or application/octet-stream")
    } else {
        (JSON, "application/json (or application/x-amz-json-1.1)")
    };
    let found = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    // Parameters (`; charset=utf-8`) are allowed; the media type is compared without case.
    let media_type = found.split(';').next().unwrap_or_default().trim();
    if accepted.iter().any(|a| a.eq_ignore_ascii_case(media_type)) {
        Ok(())
    } else {
        Err(CrossOrigin::ContentType {
            found,
            method: method.to_string(),
            path: path.to_string(),
            expected,
        })
    }
}

/// The middleware: refuses what [`SameOrigin::check`] refuses, before the body is read.
pub(crate) async fn check(
    State(allowed): State<SameOrigin>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = allowed.check(request.method(), request.uri().path(), request.headers()) {
        tracing::warn!("request refused: {refusal}");
        return ApiError::CrossOrigin(refusal).into_response();
    }
    next.run(request).await
}

/// `host[:port]` → (lower-case host, IPv6 in brackets; port). `None` if it is not an authority
/// without user info.
fn split_host(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() || text.contains(['@', '/', '?', '#']) {
        return None;
    }
    let authority = Authority::from_str(text).ok()?;
    if text.contains(':') && authority.port_u16().is_none() && !text.ends_with(']') {
        return None;
    }
    let name = authority.host().to_ascii_lowercase();
    // `localhost.` is `localhost`: a trailing dot makes a name absolute.
    let name = name.strip_suffix('.').map(str::to_string).unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    Some((name, authority.port_u16()))
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || parse_ip(host).is_some_and(|ip| ip.is_loopback())
}

fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (n.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn loopback_names_the_listen_address_and_allowed_hosts_are_answered_to() {
        let same = SameOrigin::loopback()
            .listening_on("10.0.0.5:8080".parse().unwrap())
            .allow("batch.example.com")
            .unwrap()
            .allow("pinned.example.com:9000")
            .unwrap();
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.:1",
            "127.0.0.1",
            "127.9.8.7:80",
            "[::1]:8080",
            "10.0.0.5:8080",
            "batch.example.com",
            "Batch.Example.com:443",
            "pinned.example.com:9000",
        ] {
            assert!(same.answers_to(host), "{host}");
        }
        for host in [
            "rebind.evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.5:8081",
            "10.0.0.5",
            "pinned.example.com:9001",
            "user@localhost",
            "",
            "localhost:notaport",
        ] {
            assert!(!same.answers_to(host), "{host}");
        }
        let everywhere = SameOrigin::loopback().listening_on("0.0.0.0:8080".parse().unwrap());
        assert!(everywhere.answers_to("192.168.1.9:8080"));
        assert!(!everywhere.answers_to("192.168.1.9:8081"));
        assert!(!everywhere.answers_to("rebind.evil.example:8080"));
    }

    #[test]
    fn only_the_servers_own_origin_passes() {
        let same = SameOrigin::loopback();
        let post = |pairs: &[(&str, &str)]| {
            let mut all = vec![("content-type", "application/json")];
            all.extend_from_slice(pairs);
            same.check(&Method::POST, "/v1/submitjob", &headers(&all))
        };
        assert!(post(&[("host", "127.0.0.1:8080")]).is_ok());
        assert!(
            post(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ])
            .is_ok()
        );
        assert!(post(&[("host", "localhost"), ("origin", "http://localhost:80")]).is_ok());
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "null",
        ] {
            let refused = post(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
            assert!(
                matches!(refused, Err(CrossOrigin::Origin { .. })),
                "{origin}"
            );
        }
        assert!(matches!(
            post(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]),
            Err(CrossOrigin::FetchSite(_))
        ));
        let tls = SameOrigin::loopback().https();
        assert!(tls.is_own_origin("https://localhost", "localhost:443"));
        assert!(!tls.is_own_origin("http://localhost:443", "localhost:443"));
    }

    #[test]
    fn bodies_must_be_of_a_type_the_aws_sdks_send() {
        let check = |method: Method, path: &str, pairs: &[(&str, &str)]| {
            check_content_type(&method, path, &headers(pairs))
        };
        assert!(
            check(
                Method::POST,
                "/v1/submitjob",
                &[("content-type", "application/json")]
            )
            .is_ok()
        );
        assert!(
            check(
                Method::POST,
                "/v1/submitjob",
                &[("content-type", "Application/JSON; charset=utf-8")]
            )
            .is_ok()
        );
        assert!(
            check(
                Method::POST,
                "/",
                &[("content-type", "application/x-amz-json-1.1")]
            )
            .is_ok()
        );
        assert!(
            check(
                Method::PUT,
                "/v1/modules/m",
                &[("content-type", "application/wasm")]
            )
            .is_ok()
        );
        assert!(check(Method::GET, "/v1/tags/arn", &[]).is_ok());
        assert!(check(Method::DELETE, "/v1/tags/arn", &[("content-length", "0")]).is_ok());
        for (method, path, pairs) in [
            (
                Method::POST,
                "/v1/submitjob",
                &[("content-type", "text/plain")][..],
            ),
            (
                Method::POST,
                "/v1/submitjob",
                &[("content-type", "application/x-www-form-urlencoded")],
            ),
            (
                Method::POST,
                "/v1/submitjob",
                &[("content-type", "multipart/form-data; boundary=x")],
            ),
            (Method::POST, "/v1/submitjob", &[]),
            (
                Method::PUT,
                "/v1/modules/m",
                &[("content-type", "text/plain")],
            ),
            (
                Method::PUT,
                "/v1/modules/m",
                &[("content-type", "application/json")],
            ),
            (Method::GET, "/v1/modules", &[("content-length", "5")]),
        ] {
            assert!(
                check(method.clone(), path, pairs).is_err(),
                "{method} {path} {pairs:?}"
            );
        }
    }
}
