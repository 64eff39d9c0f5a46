//! A guest's stdout and stderr: captured as they are written, split into lines, handed to the
//! caller's [`OutputSink`] at once (so logs can be followed live), and capped per stream by bytes
//! and by lines. Past either cap the rest is dropped after one marker line; the guest is not
//! killed and its writes still succeed, as they would to a full log that rotates away.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which of a guest's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        })
    }
}

/// Receives a guest's output, one line at a time, while the attempt runs.
///
/// Called from the attempt's task as the guest writes, so it must be quick: hand the line to a
/// channel or a buffer, do not block. Lines come without their `\n`; bytes that are not UTF-8 are
/// replaced. A line longer than the split length arrives in pieces.
pub trait OutputSink: Send + Sync + 'static {
    /// One line of `stream`.
    fn line(&self, stream: StreamKind, line: &str);
}

/// Any `Fn(StreamKind, &str)` closure is a sink.
impl<F> OutputSink for F
where
    F: Fn(StreamKind, &str) + Send + Sync + 'static,
{
    fn line(&self, stream: StreamKind, line: &str) {
        self(stream, line)
    }
}

/// A sink that drops everything (the default when the caller gives none).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardOutput;

impl OutputSink for DiscardOutput {
    fn line(&self, _: StreamKind, _: &str) {}
}

/// How much of one stream was written and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamStats {
    /// Bytes the guest wrote, including any dropped past the cap.
    pub bytes_written: u64,
    /// Whether the cap was reached and later output dropped.
    pub truncated: bool,
    /// Bytes the guest wrote that were not kept: past the cap, and the rest of the line the
    /// cap cut.
    #[serde(default)]
    pub bytes_dropped: u64,
}

/// What each line costs against the byte cap on top of its own bytes, as CloudWatch counts 26
/// bytes per event toward a batch's size. Every kept line is an event that the log keeps in
/// memory and in the store whatever its length, so a flood of empty lines must not be free.
pub const LOG_EVENT_OVERHEAD: u64 = 26;

/// How much of one stream is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputCap {
    /// Bytes kept, each line counted as its length plus [`LOG_EVENT_OVERHEAD`].
    pub(crate) bytes: u64,
    /// Lines kept.
    pub(crate) events: u64,
}

/// Longest line handed to the sink in one piece; a guest that never writes `\n` must not make
/// the host buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// One stream's capture: the line being assembled and the cap's accounting.
struct Capture {
    kind: StreamKind,
    sink: Arc<dyn OutputSink>,
    cap: OutputCap,
    /// Bytes kept so far, counted as the cap counts them.
    kept_bytes: u64,
    kept_events: u64,
    /// Bytes of the guest's own output handed on (a kept line's newline with it).
    kept_guest_bytes: u64,
    stats: StreamStats,
    partial: Vec<u8>,
}

impl Capture {
    fn write(&mut self, mut bytes: &[u8]) {
        self.stats.bytes_written += bytes.len() as u64;
        // Piece by piece, so a line never grows past MAX_LINE here and a guest past the cap
        // costs only the counting.
        while !bytes.is_empty() && !self.stats.truncated {
            if self.partial.len() >= MAX_LINE {
                // A full piece goes out; a newline right after it ends that same line.
                let newline = bytes[0] == b'\n';
                if newline {
                    bytes = &bytes[1..];
                }
                self.emit_partial(newline);
                continue;
            }
            let window = &bytes[..bytes.len().min(MAX_LINE - self.partial.len())];
            match window.iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    self.partial.extend_from_slice(&window[..newline]);
                    bytes = &bytes[newline + 1..];
                    self.emit_partial(true);
                }
                None => {
                    self.partial.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                }
            }
        }
    }

    /// Hands the line in `partial` to the sink, or, past a cap, what fits of it and the marker.
    fn emit_partial(&mut self, newline: bool) {
        if self.kept_events >= self.cap.events {
            return self.truncate(format!("{} lines", self.cap.events));
        }
        let left = self.cap.bytes.saturating_sub(self.kept_bytes);
        if self.partial.len() as u64 + LOG_EVENT_OVERHEAD > left {
            // What fits of the line is kept, so the cap never hides a whole line's start.
            let room = left.saturating_sub(LOG_EVENT_OVERHEAD);
            if room > 0 {
                self.partial.truncate(room as usize);
                self.send_partial(false);
            }
            return self.truncate(format!("{} bytes", self.cap.bytes));
        }
        self.send_partial(newline);
    }

    /// Hands `partial` to the sink; `newline` if the guest's newline that ended it is kept
    /// with it.
    fn send_partial(&mut self, newline: bool) {
        self.kept_guest_bytes += self.partial.len() as u64 + u64::from(newline);
        self.kept_bytes += self.partial.len() as u64 + LOG_EVENT_OVERHEAD;
        self.kept_events += 1;
        let line = String::from_utf8_lossy(&self.partial);
        self.sink.line(self.kind, &line);
        self.partial.clear();
    }

    /// Ends the stream's kept output with the marker; what the guest writes later is counted
    /// and dropped.
    fn truncate(&mut self, after: String) {
        self.stats.truncated = true;
        self.partial = Vec::new();
        let marker = format!(
            "[wasmbatch: {} truncated after {after}; later output is dropped]",
            self.kind
        );
        self.sink.line(self.kind, &marker);
    }

    /// Hands over a last line that had no `\n`.
    fn finish(&mut self) {
        if !self.partial.is_empty() && !self.stats.truncated {
            self.emit_partial(false);
        }
        self.stats.bytes_dropped = self.stats.bytes_written - self.kept_guest_bytes;
    }
}

/// The guest-facing end of one captured stream: cheap to clone, every clone writes to the same
/// capture (WASI asks for a fresh stream handle each time the guest opens stdout).
#[derive(Clone)]
pub(crate) struct CapturedStream(Arc<Mutex<Capture>>);

impl CapturedStream {
    pub(crate) fn new(kind: StreamKind, sink: Arc<dyn OutputSink>, cap: OutputCap) -> Self {
        Self(Arc::new(Mutex::new(Capture {
            kind,
            sink,
            cap,
            kept_bytes: 0,
            kept_events: 0,
            kept_guest_bytes: 0,
            stats: StreamStats::default(),
            partial: Vec::new(),
        })))
    }

    fn write(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(bytes);
    }

    /// Flushes the last unterminated line and returns the stream's totals.
    pub(crate) fn finish(&self) -> StreamStats {
        let mut capture = self.0.lock().unwrap_or_else(|e| e.into_inner());
        capture.finish();
        capture.stats
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        CapturedStream::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: writes go straight to the sink, and past the cap they are dropped.
        Ok(1024 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        CapturedStream::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(bytes: u64) -> (CapturedStream, Arc<Mutex<Vec<String>>>) {
        capture_with(OutputCap {
            bytes,
            events: u64::MAX,
        })
    }

    fn capture_with(cap: OutputCap) -> (CapturedStream, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let sink = move |_: StreamKind, line: &str| seen.lock().unwrap().push(line.to_string());
        (
            CapturedStream::new(StreamKind::Stdout, Arc::new(sink), cap),
            lines,
        )
    }

    #[test]
    fn lines_are_delivered_as_soon_as_they_end() {
        let (stream, lines) = capture(1024);
        stream.write(b"one\ntw");
        assert_eq!(*lines.lock().unwrap(), ["one"]);
        stream.write(b"o\nthree");
        assert_eq!(*lines.lock().unwrap(), ["one", "two"]);
        let stats = stream.finish();
        assert_eq!(*lines.lock().unwrap(), ["one", "two", "three"]);
        assert_eq!(
            stats,
            StreamStats {
                bytes_written: 13,
                truncated: false,
                bytes_dropped: 0,
            }
        );
    }

    #[test]
    fn past_the_cap_output_is_dropped_after_one_marker() {
        // Room for "0123456" (7 + 26) and 4 bytes of the next line (4 + 26).
        let (stream, lines) = capture(2 * LOG_EVENT_OVERHEAD + 11);
        stream.write(b"0123456\n89abcdef\n");
        stream.write(b"more\n");
        let stats = stream.finish();
        let lines = lines.lock().unwrap();
        assert_eq!(lines[..2], ["0123456", "89ab"]);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
            "[wasmbatch: stdout truncated after 63 bytes; later output is dropped]"
        );
        assert_eq!(
            stats,
            StreamStats {
                bytes_written: 22,
                truncated: true,
                // "cdef\n" of the line the cap cut, and all of "more\n".
                bytes_dropped: 10,
            }
        );
    }

    #[test]
    fn every_line_costs_its_overhead_so_empty_lines_are_capped_by_bytes() {
        let (stream, lines) = capture(100 * LOG_EVENT_OVERHEAD);
        stream.write(&[b'\n'; 10_000]);
        let stats = stream.finish();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 101, "100 empty lines and the marker");
        assert!(lines[..100].iter().all(String::is_empty));
        assert!(
            lines[100].contains("truncated after 2600 bytes"),
            "{}",
            lines[100]
        );
        assert_eq!(stats.bytes_written, 10_000);
        assert!(stats.truncated);
    }

    #[test]
    fn past_the_line_cap_output_is_dropped_after_one_marker() {
        let (stream, lines) = capture_with(OutputCap {
            bytes: u64::MAX,
            events: 3,
        });
        stream.write(b"a\nb\nc\nd\ne");
        stream.write(b"f\n");
        stream.finish();
        assert_eq!(
            *lines.lock().unwrap(),
            [
                "a",
                "b",
                "c",
                "[wasmbatch: stdout truncated after 3 lines; later output is dropped]"
            ]
        );
    }

    #[test]
    fn a_line_longer_than_the_split_length_arrives_in_pieces_even_with_its_newline() {
        let (stream, lines) = capture(u64::MAX);
        let mut bytes = vec![b'x'; MAX_LINE + 3];
        bytes.push(b'\n');
        bytes.extend(vec![b'y'; MAX_LINE]);
        bytes.extend(b"\nz\n");
        stream.write(&bytes);
        let lines = lines.lock().unwrap();
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, 3, MAX_LINE, 1],
            "a newline right after a full piece ends that piece, it adds no empty line"
        );
    }

    #[test]
    fn a_line_without_newlines_is_split_not_buffered_forever() {
        let (stream, lines) = capture(u64::MAX);
        stream.write(&vec![b'x'; MAX_LINE * 2 + 5]);
        assert_eq!(lines.lock().unwrap().len(), 2);
        stream.finish();
        let lines = lines.lock().unwrap();
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 5]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_lost() {
        let (stream, lines) = capture(1024);
        stream.write(b"ok \xff\n");
        assert_eq!(*lines.lock().unwrap(), ["ok \u{fffd}"]);
    }
}
