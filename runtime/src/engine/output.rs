//! A guest's stdout and stderr: captured as they are written, split into lines, handed to the
//! caller's [`OutputSink`] at once (so logs can be followed live), and capped per stream. Past
//! the cap the rest is dropped after one marker line; the guest is not killed and its writes
//! still succeed, as they would to a full log that rotates away.

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
}

/// Longest line handed to the sink in one piece; a guest that never writes `\n` must not make
/// the host buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// One stream's capture: the line being assembled and the cap's accounting.
struct Capture {
    kind: StreamKind,
    sink: Arc<dyn OutputSink>,
    cap: u64,
    kept: u64,
    stats: StreamStats,
    partial: Vec<u8>,
}

impl Capture {
    fn write(&mut self, mut bytes: &[u8]) {
        self.stats.bytes_written += bytes.len() as u64;
        if self.stats.truncated {
            return;
        }
        let room = self.cap - self.kept;
        let over_cap = bytes.len() as u64 > room;
        if over_cap {
            bytes = &bytes[..room as usize];
        }
        self.kept += bytes.len() as u64;
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..newline]);
            self.emit_partial();
            bytes = &bytes[newline + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            self.emit_partial();
            self.partial = rest;
        }
        if over_cap {
            self.stats.truncated = true;
            self.finish();
            let marker = format!(
                "[wasmbatch: {} truncated after {} bytes; later output is dropped]",
                self.kind, self.cap
            );
            self.sink.line(self.kind, &marker);
        }
    }

    fn emit_partial(&mut self) {
        let line = String::from_utf8_lossy(&self.partial);
        self.sink.line(self.kind, &line);
        self.partial.clear();
    }

    /// Hands over a last line that had no `\n`.
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.emit_partial();
        }
    }
}

/// The guest-facing end of one captured stream: cheap to clone, every clone writes to the same
/// capture (WASI asks for a fresh stream handle each time the guest opens stdout).
#[derive(Clone)]
pub(crate) struct CapturedStream(Arc<Mutex<Capture>>);

impl CapturedStream {
    pub(crate) fn new(kind: StreamKind, sink: Arc<dyn OutputSink>, cap: u64) -> Self {
        Self(Arc::new(Mutex::new(Capture {
            kind,
            sink,
            cap,
            kept: 0,
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

    fn capture(cap: u64) -> (CapturedStream, Arc<Mutex<Vec<String>>>) {
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
                truncated: false
            }
        );
    }

    #[test]
    fn past_the_cap_output_is_dropped_after_one_marker() {
        let (stream, lines) = capture(10);
        stream.write(b"0123456\n89abcdef\n");
        stream.write(b"more\n");
        let stats = stream.finish();
        let lines = lines.lock().unwrap();
        assert_eq!(lines[..2], ["0123456", "89"]);
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2].contains("stdout truncated after 10 bytes"),
            "{}",
            lines[2]
        );
        assert_eq!(
            stats,
            StreamStats {
                bytes_written: 22,
                truncated: true
            }
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
