//! The listener's side of serving: TLS, how many connections are held, how long a client may
//! take to send its headers, and the accept loop that serves [`crate::app_with`] until the
//! shutdown future resolves, then lets the requests in flight finish. Every bound is a field of
//! [`ServeConfig`] with a default.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use wasmbatch_runtime::Batch;

use crate::metrics::HttpMetrics;
use crate::{Access, SameOrigin};

/// How [`serve_with`] serves. `Default` is what [`serve`] uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The hosts answered to besides loopback; the listen address is added by [`serve_with`].
    pub origins: SameOrigin,
    /// Serve HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<Tls>,
    /// How long a client has to send a request's headers (and, first, to finish the TLS
    /// handshake). hyper starts this clock as soon as it waits for a request, so it is also how
    /// long an idle keep-alive connection is kept. Default 30 s.
    pub header_read_timeout: Duration,
    /// Connections held at once; past it, new ones wait in the kernel's backlog until one
    /// closes. Default 512, under the usual limit of 1024 open files a process.
    pub max_connections: usize,
    /// Request bodies read at once before their signature is checked (they are buffered to be
    /// hashed, up to 1 MiB each); others wait for a turn within their `body_read_timeout`, or
    /// are answered ThrottlingException. Only with signatures checked: in local-development
    /// mode the operations read their own bodies, 64 KiB at most. Default 64.
    pub max_unauthenticated_bodies: usize,
    /// How long a buffered request body (every operation but the module upload) may take to
    /// arrive, from the end of its headers; for a module upload, the longest pause between two
    /// pieces. Default 30 s.
    pub body_read_timeout: Duration,
    /// Where requests are counted. A fresh, unregistered set by default; register it
    /// ([`HttpMetrics::register`]) to scrape it.
    pub http_metrics: HttpMetrics,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            origins: SameOrigin::loopback(),
            tls: None,
            header_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_unauthenticated_bodies: 64,
            body_read_timeout: Duration::from_secs(30),
            http_metrics: HttpMetrics::default(),
        }
    }
}

/// A certificate chain and its private key, ready to serve (rustls, ring provider).
#[derive(Clone)]
pub struct Tls(Arc<rustls::ServerConfig>);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl Tls {
    /// The PEM certificate chain in `cert` (leaf first) and the PEM private key in `key`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, ServeError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |path: &Path, reason: String| ServeError::Tls {
            path: path.display().to_string(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate in it".into()));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| bad(key, format!("does not go with the certificate: {e}")))?;
        // Only HTTP/1.1 is served.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(Arc::new(config)))
    }
}

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listener failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    /// The certificate or key could not be used.
    #[error("TLS: {path}: {reason}")]
    Tls {
        /// The file at fault.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Serves [`crate::app`] on `listener` with the default [`ServeConfig`] until `shutdown`
/// resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    batch: Batch,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match serve_with(listener, batch, access, ServeConfig::default(), shutdown).await {
        Ok(()) => Ok(()),
        Err(ServeError::Io(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Serves [`crate::app_with`] on `listener` as `config` says until `shutdown` resolves, then
/// lets the requests in flight finish (idle connections are closed at once).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    batch: Batch,
    access: Access,
    mut config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.origins = config.origins.listening_on(listener.local_addr()?);
    if config.tls.is_some() {
        config.origins = config.origins.https();
    }
    let service = TowerToHyperService::new(crate::app_with(batch, access, &config));
    let tls = config.tls.map(|Tls(c)| tokio_rustls::TlsAcceptor::from(c));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let handshake_timeout = config.header_read_timeout;
    // Before accepting a connection, a permit is acquired; it is held until the connection
    // closes.
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (service, http, watcher) = (service.clone(), http.clone(), graceful.watcher());
        match &tls {
            None => {
                let connection = http.serve_connection(TokioIo::new(stream), service);
                tokio::spawn(async move {
                    let _permit = permit;
                    // A connection's errors (a reset, a header timeout) end only it.
                    let _ = watcher.watch(connection).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection).await;
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Skips an accept error that is one connection's (the peer gave up before it was accepted);
/// any other (out of file descriptors) would repeat at once, so the loop pauses before it
/// accepts again instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("accepting a connection: {error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
