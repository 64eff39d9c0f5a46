//! Each attempt's output as CloudWatch-style log events. Lines from the executor get a
//! timestamp and are kept in memory while the attempt runs, so followers see them at once; they
//! are written to redb in chunks through the store's writer, so a crash loses at most the last
//! unwritten chunk. A stream is named `<definitionName>/default/<jobId>-<attempt>`, in log group
//! `/aws/batch/job`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::engine::{OutputSink, StreamKind};
use crate::model::EpochMillis;
use crate::store::{Record, Store, StoreError, Table};

/// The store's key of an attempt's log: the job's submission sequence and the attempt, so the
/// chunks a burst of jobs writes sit together in the B-tree (a stream's name starts with its
/// definition's name and holds a random job id). `Logs` names streams by this key.
pub(crate) fn log_key(sequence: u64, attempt: usize) -> String {
    format!("{sequence:020}-{attempt:04}-")
}

/// The stream of attempt `attempt` (from 1) of a job.
pub(crate) fn stream_name(definition_name: &str, job_id: &str, attempt: usize) -> String {
    format!("{definition_name}/default/{job_id}-{attempt}")
}

/// The log group every job logs to, as in AWS Batch.
pub const LOG_GROUP: &str = "/aws/batch/job";

/// Events written per chunk record.
const CHUNK: usize = 256;

/// One line of a job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    /// When the guest wrote it (epoch ms).
    pub timestamp: EpochMillis,
    /// The line, without its newline.
    pub message: String,
    /// When it was stored (epoch ms).
    pub ingestion_time: EpochMillis,
}

/// Streams of attempts that are running (or whose last chunk is not yet written).
struct Live {
    events: Vec<LogEvent>,
    /// How many of `events` have been handed to the store.
    written: usize,
    /// The attempt is over; the stream stays here until its last chunk is committed, so a
    /// reader never finds it in neither place.
    ended: bool,
    changed: Arc<Notify>,
}

pub(crate) struct Logs {
    store: Store,
    live: Mutex<HashMap<String, Live>>,
}

impl Logs {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sink an attempt's output goes to, for a stream opened with [`Logs::open`].
    pub(crate) fn sink(self: &Arc<Self>, key: &str) -> Arc<dyn OutputSink> {
        Arc::new(AttemptLog {
            logs: self.clone(),
            key: key.to_string(),
        })
    }

    /// Opens the log of an attempt that is about to run (by its [`log_key`]), and the sink its
    /// output goes to.
    pub(crate) fn open(self: &Arc<Self>, key: &str) -> Arc<dyn OutputSink> {
        self.lock().insert(
            key.to_string(),
            Live {
                events: Vec::new(),
                written: 0,
                ended: false,
                changed: Arc::new(Notify::new()),
            },
        );
        Arc::new(AttemptLog {
            logs: self.clone(),
            key: key.to_string(),
        })
    }

    fn append(&self, key: &str, message: &str) {
        let now = crate::batch::now();
        let mut live = self.lock();
        let Some(log) = live.get_mut(key) else {
            return;
        };
        log.events.push(LogEvent {
            timestamp: now,
            message: message.to_string(),
            ingestion_time: now,
        });
        if log.events.len() - log.written >= CHUNK {
            self.write_chunk(key, log);
        }
        log.changed.notify_waiters();
    }

    /// Hands the unwritten events to the store (not awaited: the store keeps the order).
    fn write_chunk(&self, key: &str, log: &mut Live) {
        if let Some(record) = Self::chunk(key, log) {
            self.store.write_behind(vec![record]);
        }
    }

    /// The record of the events not yet written. A chunk is done once it is full; a partial
    /// one is written again, whole, when it fills or the attempt ends.
    fn chunk(key: &str, log: &mut Live) -> Option<Record> {
        let chunk = &log.events[log.written..];
        if chunk.is_empty() {
            return None;
        }
        let record = Record::put(
            Table::LogChunks,
            format!("{key}{:010}", log.written / CHUNK),
            &chunk,
        );
        if chunk.len() >= CHUNK {
            log.written = log.events.len();
        }
        Some(record)
    }

    /// The attempt has ended: writes the rest and tells followers. The stream is served from
    /// memory until that write is committed, then from the store; the attempt does not wait.
    pub(crate) fn finish(self: &Arc<Self>, key: &str) {
        let committed = {
            let mut live = self.lock();
            let Some(log) = live.get_mut(key) else {
                return;
            };
            log.ended = true;
            log.changed.notify_waiters();
            Self::chunk(key, log).map(|record| self.store.send(vec![record]))
        };
        let logs = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            if let Some(committed) = committed {
                // A failed write is logged by the writer; the events are then lost with it.
                let _ = committed.await;
            }
            logs.lock().remove(&key);
        });
    }

    /// Every event of a stream so far. Blocking when the stream is no longer live.
    pub(crate) fn events(&self, key: &str) -> Result<Vec<LogEvent>, StoreError> {
        if let Some(log) = self.lock().get(key) {
            return Ok(log.events.clone());
        }
        let chunks: Vec<Vec<LogEvent>> = self.store.load_prefix(Table::LogChunks, key)?;
        Ok(chunks.into_iter().flatten().collect())
    }

    /// Events from index `from` on, and whether more may come; waits while the stream is live
    /// and has nothing new.
    pub(crate) async fn follow(
        &self,
        key: &str,
        from: usize,
    ) -> Result<(Vec<LogEvent>, bool), StoreError> {
        // Something new, or the end: the events from `from` on and whether more may come.
        let ready = |log: &Live| {
            (log.events.len() > from || log.ended).then(|| {
                let new = log.events.get(from..).map(<[LogEvent]>::to_vec);
                (new.unwrap_or_default(), !log.ended)
            })
        };
        loop {
            let changed = {
                let live = self.lock();
                match live.get(key) {
                    Some(log) => match ready(log) {
                        Some(answer) => return Ok(answer),
                        None => log.changed.clone(),
                    },
                    None => break,
                }
            };
            let notified = changed.notified();
            tokio::pin!(notified);
            // Registered before looking again, so an append in between is not missed.
            notified.as_mut().enable();
            let moved = self.lock().get(key).is_none_or(|log| ready(log).is_some());
            if !moved {
                notified.await;
            }
        }
        let all = self.events(key)?;
        let new = all.get(from..).map(<[LogEvent]>::to_vec);
        Ok((new.unwrap_or_default(), false))
    }
}

/// The sink of one attempt's output.
struct AttemptLog {
    logs: Arc<Logs>,
    key: String,
}

impl OutputSink for AttemptLog {
    fn line(&self, _: StreamKind, line: &str) {
        self.logs.append(&self.key, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_kept_in_order_across_chunks_and_read_back_after_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(Logs::new(Store::open(&dir.path().join("db")).unwrap()));
        let sink = logs.open("00000000000000000001-0001-");
        for i in 0..(CHUNK * 2 + 10) {
            sink.line(StreamKind::Stdout, &format!("line {i}"));
        }
        let live = logs.events("00000000000000000001-0001-").unwrap();
        assert_eq!(live.len(), CHUNK * 2 + 10);
        logs.finish("00000000000000000001-0001-");
        while logs.lock().contains_key("00000000000000000001-0001-") {
            tokio::task::yield_now().await;
        }
        let stored = logs.events("00000000000000000001-0001-").unwrap();
        let messages: Vec<String> = stored.into_iter().map(|e| e.message).collect();
        let expected: Vec<String> = (0..(CHUNK * 2 + 10)).map(|i| format!("line {i}")).collect();
        assert_eq!(messages, expected);
        assert!(
            logs.events("00000000000000000002-0001-")
                .unwrap()
                .is_empty()
        );
        let (rest, more) = logs
            .follow("00000000000000000001-0001-", CHUNK * 2)
            .await
            .unwrap();
        assert_eq!((rest.len(), more), (10, false));
    }
}
