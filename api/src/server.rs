//! The listener's side of serving: how many connections are held, how long a client may take
//! to send its headers, and the accept loop that serves [`crate::app_with`] until the
//! shutdown future resolves, then lets the requests in flight finish. Every bound is a field of
//! [`ServeConfig`] with a default.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use wasmbatch_runtime::Batch;

use crate::{Access, SameOrigin};

/// How [`serve_with`] serves. `Default` is what [`serve`] uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The hosts answered to besides loopback; the listen address is added by [`serve_with`].
    pub origins: SameOrigin,
    /// How long a client has to send a request's headers. hyper starts this clock as soon as it waits for a request, so it is also how
    /// long an idle keep-alive connection is kept. Default 30 s.
    pub header_read_timeout: Duration,
    /// Connections held at once; past it, new ones wait in the kernel's backlog until one
    /// closes. Default 512, under the usual limit of 1024 open files a process.
    pub max_connections: usize,
    /// Request bodies read at once before their signature is checked (they are buffered to be
    /// hashed, up to 1 MiB each); others wait, within their `body_read_timeout`. Default 64.
    pub max_unauthenticated_bodies: usize,
    /// How long a buffered request body (every operation but the module upload) may take to
    /// arrive, from the end of its headers; for a module upload, the longest pause between two
    /// pieces. Default 30 s.
    pub body_read_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            origins: SameOrigin::loopback(),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_unauthenticated_bodies: 64,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listener failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
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
    let service = TowerToHyperService::new(crate::app_with(batch, access, &config));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
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
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _permit = permit;
            // A connection's errors (a reset, a header timeout) end only it.
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An accept error is the listener's, not a connection's, only when it cannot go on; when the
/// process is out of file descriptors, accepting again at once would spin, so it waits.
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
