//! `wasmbatch events`: the server's job state change events as they happen (`GET /v1/events`),
//! a line each, or each event's whole JSON with `--json`.

use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

use super::client::{Connection, Endpoint, text};

/// Print job state changes as they happen: sequence, time, status, job name and id, reason.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  wasmbatch events
  wasmbatch events --queue default --status SUCCEEDED,FAILED
  wasmbatch events --after 0 --json      # every event still kept, then new ones")]
pub struct Events {
    /// Only this queue's jobs (a name or ARN).
    #[arg(long)]
    queue: Option<String>,
    /// Only these statuses, comma-separated (e.g. FAILED or RUNNING,SUCCEEDED).
    #[arg(long)]
    status: Option<String>,
    /// Start after this event's sequence number (0: from the oldest kept); by default, with
    /// the next event.
    #[arg(long)]
    after: Option<u64>,
    /// Print each event as JSON, one per line, as EventBridge delivers it.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

impl Events {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(queue) = &self.queue {
            query.append_pair("queue", queue);
        }
        if let Some(status) = &self.status {
            query.append_pair("status", status);
        }
        if let Some(after) = self.after {
            query.append_pair("after", &after.to_string());
        }
        let query = query.finish();
        let path = if query.is_empty() {
            "/v1/events".to_string()
        } else {
            format!("/v1/events?{query}")
        };
        let mut pending = Vec::new();
        let json = self.json;
        server
            .stream(&path, |piece| {
                pending.extend_from_slice(piece);
                // SSE: fields a line each, an event ends at a blank line.
                while let Some(end) = find_blank_line(&pending) {
                    let block: Vec<u8> = pending.drain(..end).collect();
                    print_event(&String::from_utf8_lossy(&block), json);
                }
            })
            .await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Where the first event in `bytes` ends, past its blank line.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\n\n").map(|at| at + 2)
}

fn print_event(block: &str, json: bool) {
    let data: String = block
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() {
        return; // a keep-alive comment
    }
    let mut stdout = std::io::stdout().lock();
    if json {
        let _ = writeln!(stdout, "{data}");
        return;
    }
    let Ok(event) = serde_json::from_str::<Value>(&data) else {
        return;
    };
    let id = block
        .lines()
        .find_map(|line| line.strip_prefix("id:"))
        .map(str::trim)
        .unwrap_or("-");
    let detail = &event["detail"];
    let reason = detail["statusReason"]
        .as_str()
        .map(|r| format!("  {r}"))
        .unwrap_or_default();
    let _ = writeln!(
        stdout,
        "{id}  {}  {:<9}  {}  {}{reason}",
        text(&event["time"]),
        text(&detail["status"]),
        text(&detail["jobName"]),
        text(&detail["jobId"]),
    );
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_a_blank_line() {
        assert_eq!(find_blank_line(b"id: 1\ndata: {}\n\nid: 2"), Some(16));
        assert_eq!(find_blank_line(b"id: 1\ndata: {}\n"), None);
    }
}
