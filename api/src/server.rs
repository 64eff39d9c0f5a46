//! The listener's side of serving: what a [`ServeConfig`] sets (the hosts answered to) and the
//! loop that serves [`crate::app_with`] until the shutdown future resolves, then drains.

use std::future::Future;

use wasmbatch_runtime::Batch;

use crate::{Access, SameOrigin};

/// How [`serve_with`] serves. `Default` is what [`serve`] uses.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The hosts answered to besides loopback; the listen address is added by [`serve_with`].
    pub origins: SameOrigin,
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
/// lets the requests in flight finish.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    batch: Batch,
    access: Access,
    mut config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.origins = config.origins.listening_on(listener.local_addr()?);
    axum::serve(listener, crate::app_with(batch, access, &config))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
