//! Each attempt's output as CloudWatch-style log events. Lines from the executor get a
//! timestamp and are kept in memory while the attempt runs, so followers see them at once; they
//! are written to redb in chunks through the store's writer, so a crash loses at most the last
//! unwritten chunk. Every chunk but a stream's last holds [`CHUNK`] events, so reading events
//! `a..b` (a GetLogEvents page, a follower catching up) reads only the chunks that hold them, and
//! a stream's length is found from its last chunk. A stream is named
//! `<definitionName>/default/<jobId>-<attempt>`, in log group `/aws/batch/job`.

use std::collections::HashMap;
use std::ops::Range;
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

/// The store keys of every attempt's log of the jobs with these sequences: every key starts
/// with a sequence of 20 digits, so those of `first..=last` sort from `first` to `last + 1`.
pub(crate) fn log_keys(sequences: std::ops::RangeInclusive<u64>) -> Range<String> {
    format!("{:020}", sequences.start())..format!("{:020}", sequences.end() + 1)
}

/// The stream of attempt `attempt` (from 1) of a job.
pub(crate) fn stream_name(definition_name: &str, job_id: &str, attempt: usize) -> String {
    format!("{definition_name}/default/{job_id}-{attempt}")
}

/// The log group every job logs to, as in AWS Batch.
pub const LOG_GROUP: &str = "/aws/batch/job";

/// Events written per chunk record. A chunk is written when it fills (and the rest when the
/// attempt ends), so event `i` of a stream is event `i % CHUNK` of chunk `i / CHUNK`, in the
/// format every version has written.
const CHUNK: usize = 256;

/// Most events a follower is handed at once, so one catching up with a long stream holds a
/// bounded part of it.
const FOLLOW_BATCH: usize = 16 * CHUNK;

/// The store's key of chunk `n` of the log kept under `key`: ordered as the chunks are.
fn chunk_key(key: &str, n: usize) -> String {
    format!("{key}{n:010}")
}

/// The chunk number in a chunk key of the log kept under `key`.
fn chunk_number(key: &str, chunk_key: &str) -> Result<usize, StoreError> {
    chunk_key
        .strip_prefix(key)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Read(format!("{chunk_key:?} is not a chunk key of {key:?}")))
}

/// How long a stream is, and which of its events a time window holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBounds {
    /// Events in the stream so far; indexes run from 0, in the order they were written.
    pub len: usize,
    /// The events written at or after the window's start and before its end (all of them when
    /// no window was given). Timestamps come from the host's clock in the order lines were
    /// written, so they do not decrease unless the clock is stepped back.
    pub window: Range<usize>,
}

/// When a stream's first and last events were written, and its last stored (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) first_event: EpochMillis,
    pub(crate) last_event: EpochMillis,
    pub(crate) last_ingestion: EpochMillis,
}

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
            chunk_key(key, log.written / CHUNK),
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

    /// How many events a stream has so far. Blocking when the stream is no longer live: reads
    /// its last chunk.
    pub(crate) fn len(&self, key: &str) -> Result<usize, StoreError> {
        if let Some(log) = self.lock().get(key) {
            return Ok(log.events.len());
        }
        let last: Option<(String, Vec<serde::de::IgnoredAny>)> =
            self.store.load_last(Table::LogChunks, key)?;
        match last {
            None => Ok(0),
            Some((last, events)) => Ok(chunk_number(key, &last)? * CHUNK + events.len()),
        }
    }

    /// When a stream's first and last events were written and its last was stored, or `None`
    /// for a stream with none. Blocking when the stream is no longer live: reads its first and
    /// last chunks.
    pub(crate) fn span(&self, key: &str) -> Result<Option<Span>, StoreError> {
        let of = |first: Option<&LogEvent>, last: Option<&LogEvent>| {
            first.zip(last).map(|(first, last)| Span {
                first_event: first.timestamp,
                last_event: last.timestamp,
                last_ingestion: last.ingestion_time,
            })
        };
        if let Some(log) = self.lock().get(key) {
            return Ok(of(log.events.first(), log.events.last()));
        }
        let last: Option<(String, Vec<LogEvent>)> = self.store.load_last(Table::LogChunks, key)?;
        let Some((last_key, last)) = last else {
            return Ok(None);
        };
        let first_key = chunk_key(key, 0);
        // Most streams are one chunk: read it once.
        if last_key == first_key {
            return Ok(of(last.first(), last.last()));
        }
        let first: Vec<(String, Vec<LogEvent>)> =
            self.store.load_from(Table::LogChunks, key, &first_key, 1)?;
        Ok(of(
            first.first().and_then(|(_, events)| events.first()),
            last.last(),
        ))
    }

    /// The events of a stream at indexes `range` (as far as the stream reaches). Blocking when
    /// the stream is no longer live: reads only the chunks that hold them.
    pub(crate) fn range(
        &self,
        key: &str,
        range: Range<usize>,
    ) -> Result<Vec<LogEvent>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(log) = self.lock().get(key) {
            let len = log.events.len();
            return Ok(log.events[range.start.min(len)..range.end.min(len)].to_vec());
        }
        let first = range.start / CHUNK;
        let chunks = (range.end - 1) / CHUNK - first + 1;
        let stored: Vec<(String, Vec<LogEvent>)> =
            self.store
                .load_from(Table::LogChunks, key, &chunk_key(key, first), chunks)?;
        let mut out = Vec::with_capacity(range.len().min(chunks * CHUNK));
        for (chunk, events) in stored {
            // Placed by their chunk's number, not their count, so a chunk lost to a failed
            // write leaves a gap rather than shifting every later event.
            let start = chunk_number(key, &chunk)? * CHUNK;
            out.extend(
                events
                    .into_iter()
                    .zip(start..)
                    .filter(|(_, index)| range.contains(index))
                    .map(|(event, _)| event),
            );
        }
        Ok(out)
    }

    /// The first index (of a stream of `len` events) whose event was written at or after
    /// `time`, or `len`. Blocking when the stream is no longer live: a binary search over the
    /// chunks, reading about log2(len / CHUNK) of them.
    pub(crate) fn index_at(
        &self,
        key: &str,
        len: usize,
        time: EpochMillis,
    ) -> Result<usize, StoreError> {
        if let Some(log) = self.lock().get(key) {
            let len = len.min(log.events.len());
            return Ok(log.events[..len].partition_point(|e| e.timestamp < time));
        }
        let chunk = |n: usize| -> Result<Vec<LogEvent>, StoreError> {
            let found: Vec<(String, Vec<LogEvent>)> =
                self.store
                    .load_from(Table::LogChunks, key, &chunk_key(key, n), 1)?;
            Ok(found
                .into_iter()
                .find(|(k, _)| *k == chunk_key(key, n))
                .map(|(_, events)| events)
                .unwrap_or_default())
        };
        // The first chunk that starts at or after `time` (a missing chunk counts as earlier);
        // the index sought is in the chunk before it, or is that chunk's start.
        let (mut low, mut high) = (0, len.div_ceil(CHUNK));
        while low < high {
            let middle = (low + high) / 2;
            let starts_before = chunk(middle)?.first().is_none_or(|e| e.timestamp < time);
            if starts_before {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        if low == 0 {
            return Ok(0);
        }
        let before = chunk(low - 1)?;
        let within = before.partition_point(|e| e.timestamp < time);
        Ok(((low - 1) * CHUNK + within).min(len))
    }

    /// The length of a stream and the indexes of its events in `[start, end)` (epoch ms).
    /// Blocking when the stream is no longer live.
    pub(crate) fn bounds(
        &self,
        key: &str,
        start: Option<EpochMillis>,
        end: Option<EpochMillis>,
    ) -> Result<LogBounds, StoreError> {
        let len = self.len(key)?;
        let at = |time: Option<EpochMillis>, otherwise: usize| match time {
            Some(time) => self.index_at(key, len, time),
            None => Ok(otherwise),
        };
        let from = at(start, 0)?;
        let to = at(end, len)?.max(from);
        Ok(LogBounds {
            len,
            window: from..to,
        })
    }

    /// Events from index `from` on (at most [`FOLLOW_BATCH`]), and whether more may come;
    /// waits while the stream is live and has nothing new. A stream no longer live is read
    /// from the store on the blocking pool.
    pub(crate) async fn follow(
        self: &Arc<Self>,
        key: &str,
        from: usize,
    ) -> Result<(Vec<LogEvent>, bool), StoreError> {
        // Something new, or the end: the events from `from` on and whether more may come.
        let ready = |log: &Live| {
            (log.events.len() > from || log.ended).then(|| {
                let len = log.events.len();
                let to = len.min(from.saturating_add(FOLLOW_BATCH));
                let new = log.events.get(from..to).map(<[LogEvent]>::to_vec);
                (new.unwrap_or_default(), !log.ended || to < len)
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
        let logs = self.clone();
        let key = key.to_string();
        let to = from.saturating_add(FOLLOW_BATCH);
        let events = tokio::task::spawn_blocking(move || logs.range(&key, from..to))
            .await
            .map_err(|e| StoreError::Read(e.to_string()))??;
        let more = events.len() == FOLLOW_BATCH;
        Ok((events, more))
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

    const KEY: &str = "00000000000000000007-0001-";

    /// A finished stream of `events` events, each stamped with its index as its time, written
    /// through a live log as an attempt writes it.
    async fn finished_stream(events: usize) -> (Arc<Logs>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(Logs::new(Store::open(&dir.path().join("db")).unwrap()));
        logs.open(KEY);
        {
            let mut live = logs.lock();
            let log = live.get_mut(KEY).unwrap();
            for i in 0..events {
                log.events.push(LogEvent {
                    timestamp: i as EpochMillis,
                    message: format!("line {i}"),
                    ingestion_time: i as EpochMillis,
                });
                if log.events.len() - log.written >= CHUNK {
                    logs.write_chunk(KEY, log);
                }
            }
        }
        logs.finish(KEY);
        while logs.lock().contains_key(KEY) {
            tokio::task::yield_now().await;
        }
        (logs, dir)
    }

    fn messages(events: &[LogEvent]) -> Vec<String> {
        events.iter().map(|e| e.message.clone()).collect()
    }

    fn lines(range: Range<usize>) -> Vec<String> {
        range.map(|i| format!("line {i}")).collect()
    }

    #[tokio::test]
    async fn a_stored_stream_is_read_a_range_at_a_time() {
        let len = CHUNK * 5 + 17;
        let (logs, _dir) = finished_stream(len).await;
        assert_eq!(logs.len(KEY).unwrap(), len);
        for range in [
            0..1,
            0..100,
            CHUNK - 1..CHUNK + 1,
            CHUNK * 2..CHUNK * 4,
            len - 5..len,
        ] {
            assert_eq!(
                messages(&logs.range(KEY, range.clone()).unwrap()),
                lines(range)
            );
        }
        assert_eq!(
            messages(&logs.range(KEY, len - 2..len + 100).unwrap()),
            lines(len - 2..len)
        );
        assert!(logs.range(KEY, len..len + 10).unwrap().is_empty());
        assert_eq!(logs.len("00000000000000000008-0001-").unwrap(), 0);
        // Each event lies where its index says, even with a chunk lost before it.
        logs.store
            .write(vec![Record::Delete {
                table: Table::LogChunks,
                key: chunk_key(KEY, 1),
            }])
            .await
            .unwrap();
        assert_eq!(
            messages(&logs.range(KEY, CHUNK - 2..CHUNK * 2 + 2).unwrap()),
            [lines(CHUNK - 2..CHUNK), lines(CHUNK * 2..CHUNK * 2 + 2)].concat()
        );
    }

    #[tokio::test]
    async fn a_time_window_is_found_by_searching_the_chunks() {
        let len = CHUNK * 9 + 3;
        let (logs, _dir) = finished_stream(len).await;
        for (start, end, window) in [
            (None, None, 0..len),
            (Some(0), Some(1), 0..1),
            (Some(300), Some(301), 300..301),
            (Some(CHUNK as EpochMillis), None, CHUNK..len),
            (None, Some(CHUNK as EpochMillis * 3), 0..CHUNK * 3),
            (Some(len as EpochMillis), None, len..len),
            (Some(500), Some(400), 500..500),
        ] {
            let bounds = logs.bounds(KEY, start, end).unwrap();
            assert_eq!(bounds, LogBounds { len, window }, "{start:?}..{end:?}");
        }
    }

    /// Chunks as every earlier version wrote them (the JSON of a list of events, keyed by the
    /// log key and a ten-digit chunk number) are read as they are: no upgrade is needed.
    #[tokio::test]
    async fn chunks_written_by_earlier_versions_are_read_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let chunk = |n: usize, count: usize| {
            let events: Vec<String> = (0..count)
                .map(|i| {
                    let i = n * CHUNK + i;
                    format!(r#"{{"timestamp":{i},"message":"line {i}","ingestionTime":{i}}}"#)
                })
                .collect();
            Record::Put {
                table: Table::LogChunks,
                key: format!("{KEY}{n:010}"),
                value: format!("[{}]", events.join(",")).into_bytes(),
            }
        };
        store
            .write(vec![chunk(0, CHUNK), chunk(1, CHUNK), chunk(2, 5)])
            .await
            .unwrap();
        let logs = Logs::new(store);
        assert_eq!(logs.len(KEY).unwrap(), CHUNK * 2 + 5);
        assert_eq!(
            messages(&logs.range(KEY, CHUNK * 2..CHUNK * 2 + 5).unwrap()),
            lines(CHUNK * 2..CHUNK * 2 + 5)
        );
        assert_eq!(logs.index_at(KEY, CHUNK * 2 + 5, 300).unwrap(), 300);
    }

    #[tokio::test]
    async fn a_follower_catching_up_gets_bounded_batches_until_the_end() {
        let len = FOLLOW_BATCH + 10;
        let (logs, _dir) = finished_stream(len).await;
        let (first, more) = logs.follow(KEY, 0).await.unwrap();
        assert_eq!((first.len(), more), (FOLLOW_BATCH, true));
        let (rest, more) = logs.follow(KEY, FOLLOW_BATCH).await.unwrap();
        assert_eq!(messages(&rest), lines(FOLLOW_BATCH..len));
        assert!(!more);
    }
}
