//! Where attempts run: a new attempt on its caller's runtime, and an attempt that has kept a
//! core busy for [`ExecutorConfig::long_attempt_after`] on the executor's own runtime for long
//! attempts, whose threads run at a lower OS priority.
//!
//! Tokio has no priorities: a fresh attempt queued behind guests that spin waits for each of
//! them to reach its next epoch yield, a whole tick, before it runs. The kernel's scheduler
//! does have them, so the long attempts are moved to threads of their own with a higher nice
//! value. A short job then takes a core as soon as it is ready, and the long ones still get
//! every core nothing else wants, and a share of those something else does (at nice 5, about
//! a quarter against a fresh attempt). An attempt is moved only between two polls, at the
//! epoch yield that follows the tick where it passed the limit, so nothing of it runs in two
//! places; dropping [`Lanes::run`]'s future stops it wherever it is.
//!
//! [`ExecutorConfig::long_attempt_after`]: super::ExecutorConfig::long_attempt_after

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use super::outcome::{FailureKind, Outcome};

/// Set by an attempt's epoch callback once it has run long enough to be moved.
#[derive(Clone, Default)]
pub(crate) struct Demote(Arc<AtomicBool>);

impl Demote {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The runtime of long attempts, if moving them is on.
pub(crate) struct Lanes {
    long: Option<tokio::runtime::Runtime>,
}

impl Lanes {
    /// No second runtime: every attempt stays where it started.
    pub(crate) fn single() -> Self {
        Lanes { long: None }
    }

    /// A runtime of `threads` workers at nice `nice`, for long attempts.
    pub(crate) fn with_long_lane(threads: usize, nice: i32) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wasmbatch-long-attempts")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Lanes {
            long: Some(runtime),
        })
    }

    /// Runs `attempt` here until it finishes or `demote` is set, then on the long lane.
    pub(crate) async fn run(
        &self,
        attempt: impl Future<Output = Outcome> + Send + 'static,
        demote: &Demote,
    ) -> Outcome {
        let Some(long) = &self.long else {
            return attempt.await;
        };
        let mut attempt = Box::pin(attempt);
        let here = std::future::poll_fn(|cx| match attempt.as_mut().poll(cx) {
            Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
            Poll::Pending if demote.is_set() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        });
        if let Some(outcome) = here.await {
            return outcome;
        }
        // Not being polled now, and never again here: it goes on there from where it yielded.
        let mut moved = AbortOnDrop(long.spawn(attempt));
        match (&mut moved.0).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Outcome::not_started(
                FailureKind::HostError,
                "the executor shut down while the attempt ran",
            ),
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // The last executor may be dropped inside a runtime, where a blocking shutdown panics.
        if let Some(runtime) = self.long.take() {
            runtime.shutdown_background();
        }
    }
}

/// A moved attempt, stopped if whoever waits for it gives up (as dropping it stops it here).
struct AbortOnDrop(tokio::task::JoinHandle<Outcome>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Raises the calling thread's nice value (Linux: `setpriority` on thread id 0 is the calling
/// thread). Raising it needs no privilege; if it fails the lane still works, only without the
/// priority, so it is logged and not fatal.
fn lower_priority(nice: i32) {
    // SAFETY: setpriority takes no pointers.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if result != 0 {
        tracing::warn!(
            "could not set nice {nice} on a long-attempt thread: {}",
            std::io::Error::last_os_error()
        );
    }
}
