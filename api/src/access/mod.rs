//! Who is calling, and whether they may do what they ask. Every request's SigV4 signature is
//! verified against the keys of the credentials file ([`credentials`]) and the caller's policy
//! ([`policy`]) decides each operation on its resources. Without a credentials file the server
//! runs in local-development mode: any signature, or none, is accepted and everything is
//! allowed — which `wasmbatch serve` permits on loopback only. A reload that finds the file
//! where there was none switches to checking, for good: no reload switches back.

pub mod credentials;
pub mod policy;
pub(crate) mod sigv4;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use self::credentials::CredentialsFile;
use self::policy::{Decision, Policy};
use crate::error::ApiError;

/// Why the credentials could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The credentials file.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The file, or a policy in it, says something wrong.
    #[error("{path}: {reason}")]
    Invalid {
        /// The credentials file.
        path: String,
        /// What is wrong, and where.
        reason: String,
    },
}

/// Why a request was refused before (or instead of) being served; answered as AWS does.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// The `Authorization` header or a header it needs is malformed.
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not one of ours.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature, its scope or its date is wrong.
    #[error("{0}")]
    Signature(String),
    /// The caller's policy does not allow the operation.
    #[error("{0}")]
    Denied(String),
    /// As many bodies as [`crate::ServeConfig::max_unauthenticated_bodies`] are being read
    /// before their signatures are checked, for the whole of this one's time to arrive.
    #[error("too many requests are sending their bodies at once; try again")]
    Busy,
    /// The body did not all arrive within [`crate::ServeConfig::body_read_timeout`].
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    SlowBody(Duration),
}

impl Refusal {
    /// The `x-amzn-ErrorType` the AWS SDKs know this by, and its status.
    pub(crate) fn kind(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::Missing => (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException"),
            Refusal::Incomplete(_) => (StatusCode::BAD_REQUEST, "IncompleteSignatureException"),
            Refusal::UnknownKey => (StatusCode::FORBIDDEN, "UnrecognizedClientException"),
            Refusal::Signature(_) => (StatusCode::FORBIDDEN, "InvalidSignatureException"),
            Refusal::Denied(_) => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            // The codes the AWS SDKs retry on.
            Refusal::Busy => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            Refusal::SlowBody(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeoutException"),
        }
    }
}

/// The keys in force and how requests are checked. Cheap to clone; a reload is seen by every
/// clone.
#[derive(Clone)]
pub struct Access {
    /// The credentials file, kept even while it does not exist so that a reload can find it;
    /// `None` only for [`Access::local`], which never checks.
    file: Option<PathBuf>,
    /// `None`: local-development mode (no file yet).
    keys: Arc<RwLock<Option<Keys>>>,
}

/// The keys in force, by access key id.
type Keys = HashMap<String, Arc<Caller>>;

/// Who a verified request comes from, and what they may do.
#[derive(Debug)]
pub struct Caller {
    /// The key's name (`local` in local-development mode).
    pub name: String,
    /// The access key id the request was signed with.
    pub access_key_id: String,
    policy: Policy,
    secret: String,
}

impl Access {
    /// Local-development mode: no signature is checked and everything is allowed. For loopback
    /// only; `wasmbatch serve` announces it.
    pub fn local() -> Self {
        Access {
            file: None,
            keys: Arc::default(),
        }
    }

    /// Signatures checked against the keys in the credentials file at `path`, each allowed
    /// what its policy allows. The file must exist.
    pub fn from_file(path: &Path) -> Result<Self, AccessError> {
        let access = Access {
            file: Some(path.to_path_buf()),
            keys: Arc::default(),
        };
        access.load()?;
        Ok(access)
    }

    /// As [`Access::from_file`] if the file at `path` exists; else local-development mode
    /// until a [`reload`](Access::reload) finds it.
    pub fn at(path: &Path) -> Result<Self, AccessError> {
        let access = Access {
            file: Some(path.to_path_buf()),
            keys: Arc::default(),
        };
        access.reload()?;
        Ok(access)
    }

    /// Reads the credentials file again (on SIGHUP). In local-development mode a missing file
    /// keeps it so; once checking, a missing or broken file is an error and the keys in force
    /// stay as they were. Returns how many keys are now in force.
    pub fn reload(&self) -> Result<usize, AccessError> {
        match &self.file {
            Some(path) if self.is_local() && !path.exists() => Ok(0),
            Some(_) => self.load(),
            None => Ok(0),
        }
    }

    fn load(&self) -> Result<usize, AccessError> {
        let Some(path) = &self.file else {
            return Ok(0);
        };
        let file = CredentialsFile::read(path)?;
        let keys: Keys = file
            .keys
            .into_iter()
            .map(|key| {
                let caller = Caller {
                    name: key.name,
                    access_key_id: key.access_key_id.clone(),
                    policy: key.policy,
                    secret: key.secret_access_key,
                };
                (key.access_key_id, Arc::new(caller))
            })
            .collect();
        let count = keys.len();
        *self.keys.write().expect("no panics while held") = Some(keys);
        Ok(count)
    }

    /// Whether this is local-development mode (now: a reload may end it).
    pub fn is_local(&self) -> bool {
        self.keys.read().expect("no panics while held").is_none()
    }

    fn caller(&self, access_key_id: &str) -> Option<Arc<Caller>> {
        self.keys
            .read()
            .expect("no panics while held")
            .as_ref()?
            .get(access_key_id)
            .cloned()
    }
}

impl Caller {
    fn local(access_key_id: Option<String>) -> Self {
        Caller {
            name: "local".into(),
            access_key_id: access_key_id.unwrap_or_else(|| "anonymous".into()),
            policy: Policy::allow_all(),
            secret: String::new(),
        }
    }

    /// Refuses with AccessDeniedException unless the caller's policy allows `action` on one
    /// of `resources` (and denies it on none).
    pub(crate) fn authorize(&self, action: &str, resources: &[&str]) -> Result<(), ApiError> {
        self.authorize_in(action, resources, &policy::Context::default())
    }

    /// Whether the caller's policy allows `action` on one of `resources`, for a listing that
    /// leaves out what the caller may not see (nothing is refused, so nothing is logged).
    pub(crate) fn allows(&self, action: &str, resources: &[&str]) -> bool {
        self.policy.decide(action, resources) == Decision::Allowed
    }

    /// Refuses `action` outright when no statement of the caller's policy allows it on
    /// anything, so a listing the caller may never see is a "no", not an empty page.
    pub(crate) fn authorize_listing(&self, action: &str, resource: &str) -> Result<(), ApiError> {
        if self.policy.grants_any(action) {
            Ok(())
        } else {
            self.authorize(action, &[resource])
        }
    }

    /// [`Caller::authorize`] for a request whose condition keys have the values in `context`.
    pub(crate) fn authorize_in(
        &self,
        action: &str,
        resources: &[&str],
        context: &policy::Context,
    ) -> Result<(), ApiError> {
        match self.policy.decide_in(action, resources, context) {
            Decision::Allowed => Ok(()),
            decision => {
                let why = if decision == Decision::ExplicitlyDenied {
                    "with an explicit deny"
                } else {
                    "because no policy allows it"
                };
                let resource = resources.first().copied().unwrap_or("*");
                tracing::warn!(
                    key = %self.access_key_id,
                    caller = %self.name,
                    %action,
                    %resource,
                    "access denied"
                );
                Err(ApiError::Refused(Refusal::Denied(format!(
                    "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
                    self.name
                ))))
            }
        }
    }
}

/// What the middleware needs besides the request.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) access: Access,
    pub(crate) region: String,
    /// A permit for each body being read before its signature is checked; see
    /// [`crate::ServeConfig::max_unauthenticated_bodies`].
    pub(crate) bodies: Arc<tokio::sync::Semaphore>,
    /// See [`crate::ServeConfig::body_read_timeout`].
    pub(crate) body_read_timeout: Duration,
}

/// Largest body buffered to be hashed; larger bodies of buffered operations are refused by the
/// operations themselves, so the limit only needs to be above theirs.
const MAX_HASHED_BODY: usize = 1 << 20;

/// Whether the request is a module upload, the one body streamed rather than buffered.
fn is_streamed(parts: &axum::http::request::Parts) -> bool {
    parts.method == axum::http::Method::PUT && parts.uri.path().starts_with("/v1/modules/")
}

/// Verifies the request's signature and hands the [`Caller`] to the operation (as an
/// extension), or answers the refusal.
pub(crate) async fn authenticate(
    axum::extract::State(gate): axum::extract::State<Gate>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if gate.access.is_local() {
        let key = authorization
            .as_deref()
            .and_then(|a| sigv4::Authorization::parse(a).ok())
            .map(|a| a.access_key_id);
        // Nothing is verified, but bodies still arrive in bounded time; their size is bounded
        // by the operations (64 KiB) and their number by the connections.
        let (mut parts, body) = request.into_parts();
        let body = if is_streamed(&parts) {
            with_pauses_under(body, gate.body_read_timeout)
        } else {
            by(body, tokio::time::Instant::now() + gate.body_read_timeout)
        };
        parts.extensions.insert(Arc::new(Caller::local(key)));
        return next.run(Request::from_parts(parts, body)).await;
    }
    match verified(&gate, authorization, request).await {
        Ok(request) => next.run(request).await,
        Err((refusal, key)) => {
            tracing::warn!(
                key = key.as_deref().unwrap_or("-"),
                "request refused: {refusal}"
            );
            ApiError::Refused(refusal).into_response()
        }
    }
}

/// The request, with its body restored and its caller attached, if its signature holds. The
/// key, the date and the scope are checked from the headers before any of the body is read.
async fn verified(
    gate: &Gate,
    authorization: Option<String>,
    request: Request,
) -> Result<Request, (Refusal, Option<String>)> {
    let authorization =
        sigv4::Authorization::parse(&authorization.ok_or((Refusal::Missing, None))?)
            .map_err(|r| (r, None))?;
    let key = Some(authorization.access_key_id.clone());
    let refuse = |refusal: Refusal| (refusal, key.clone());
    let caller = gate
        .access
        .caller(&authorization.access_key_id)
        .ok_or_else(|| refuse(Refusal::UnknownKey))?;
    // CloudWatch Logs' operations come to `/` with their target; they are signed for `logs`.
    let service = match request.headers().get("x-amz-target") {
        Some(target) if target.as_bytes().starts_with(b"Logs_") => "logs",
        _ => "batch",
    };
    let signed_at = sigv4::check_scope(
        &authorization,
        request.headers(),
        &gate.region,
        service,
        SystemTime::now(),
    )
    .map_err(&refuse)?;
    let declared = request
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (mut parts, body) = request.into_parts();
    let arrived = |parts: &axum::http::request::Parts, payload_hash: &str| {
        let arrived = sigv4::Arrived {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            payload_hash,
        };
        sigv4::check_signature(
            &authorization,
            &caller.secret,
            &arrived,
            &gate.region,
            service,
            &signed_at,
        )
    };
    let body = if is_streamed(&parts) {
        // A module is streamed to disk as it arrives, so its hash is declared up front, signed
        // with the headers, and checked as the last piece passes.
        let body = with_pauses_under(body, gate.body_read_timeout);
        let Some(declared) = declared else {
            drain(body).await;
            return Err(refuse(Refusal::Incomplete(
                "a module upload must declare x-amz-content-sha256 (the body's SHA-256, or UNSIGNED-PAYLOAD)".into(),
            )));
        };
        if let Err(refusal) = arrived(&parts, &declared) {
            drain(body).await;
            return Err(refuse(refusal));
        }
        checked_stream(body, &declared)
    } else {
        // Buffered to be hashed: a permit bounds how many such bodies are held at once, and
        // the deadline how long one may take, waiting for the permit included.
        let deadline = tokio::time::Instant::now() + gate.body_read_timeout;
        let _permit = tokio::time::timeout_at(deadline, gate.bodies.acquire())
            .await
            .map_err(|_| refuse(Refusal::Busy))?
            .expect("the semaphore is never closed");
        let bytes = tokio::time::timeout_at(deadline, axum::body::to_bytes(body, MAX_HASHED_BODY))
            .await
            .map_err(|_| refuse(Refusal::SlowBody(gate.body_read_timeout)))?
            .map_err(|_| {
                refuse(Refusal::Incomplete(format!(
                    "the body could not be read, or is over {MAX_HASHED_BODY} bytes"
                )))
            })?;
        // The signature covers the body we hashed, never a hash the caller declared: the AWS
        // services other than S3 compute it themselves, so a request signed over
        // UNSIGNED-PAYLOAD does not verify there either. Accepting it let anyone who saw one
        // signed request replay its headers with a body of their own.
        let actual = hex::encode(Sha256::digest(&bytes));
        match declared.as_deref() {
            Some("UNSIGNED-PAYLOAD") => {
                return Err(refuse(Refusal::Signature(
                    "x-amz-content-sha256: UNSIGNED-PAYLOAD is accepted only for module uploads \
                     (PUT /v1/modules/{name}); sign the body's SHA-256"
                        .into(),
                )));
            }
            Some(declared) if declared != actual => {
                return Err(refuse(Refusal::Signature(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                )));
            }
            _ => {}
        }
        arrived(&parts, &actual).map_err(&refuse)?;
        Body::from(bytes)
    };
    parts.extensions.insert(caller);
    Ok(Request::from_parts(parts, body))
}

/// `body`, ending in an error instead of the rest if it has not all arrived by `deadline`.
fn by(body: Body, deadline: tokio::time::Instant) -> Body {
    timed(body, move || deadline)
}

/// `body`, ending in an error if no piece of it arrives for `pause`: a module may be large and
/// slow, but not stalled.
fn with_pauses_under(body: Body, pause: Duration) -> Body {
    timed(body, move || tokio::time::Instant::now() + pause)
}

/// `body`, each piece of which must arrive before the instant `deadline` gives when it is
/// awaited.
fn timed(body: Body, mut deadline: impl FnMut() -> tokio::time::Instant + Send + 'static) -> Body {
    let pieces = futures_util::stream::unfold(Some(body.into_data_stream()), move |pieces| {
        let deadline = deadline();
        async move {
            let mut pieces = pieces?;
            match tokio::time::timeout_at(deadline, pieces.next()).await {
                Ok(Some(piece)) => Some((piece, Some(pieces))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(axum::Error::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body stopped arriving",
                    ))),
                    None,
                )),
            }
        }
    });
    Body::from_stream(pieces)
}

/// Most a refused upload is read for; past it the connection is simply closed.
const MAX_DRAINED: usize = 64 << 20;

/// Reads and drops what is left of a request's body (up to [`MAX_DRAINED`]) so that a refusal
/// reaches a client still sending: hyper closes a connection whose request body was not read,
/// and the client then sees a broken pipe instead of the reason.
pub(crate) async fn drain(body: Body) {
    let mut pieces = body.into_data_stream();
    let mut read = 0;
    while read < MAX_DRAINED {
        match pieces.next().await {
            Some(Ok(piece)) => read += piece.len(),
            _ => return,
        }
    }
}

/// `body`, ending in an error instead of its end if its SHA-256 is not `declared`.
fn checked_stream(body: Body, declared: &str) -> Body {
    if declared == "UNSIGNED-PAYLOAD" {
        return body;
    }
    let declared = declared.to_ascii_lowercase();
    let hasher = Arc::new(std::sync::Mutex::new(Sha256::new()));
    let seen = hasher.clone();
    let pieces = body.into_data_stream().map(move |piece| {
        if let Ok(bytes) = &piece {
            seen.lock().expect("no panics while held").update(bytes);
        }
        piece
    });
    let end = futures_util::stream::once(async move {
        let digest = hasher
            .lock()
            .expect("no panics while held")
            .clone()
            .finalize();
        if hex::encode(digest) == declared {
            None
        } else {
            Some(Err(axum::Error::new(std::io::Error::other(
                "the body does not match its x-amz-content-sha256",
            ))))
        }
    })
    .filter_map(std::future::ready);
    Body::from_stream(pieces.chain(end))
}
