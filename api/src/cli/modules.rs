//! `wasmbatch push` and `wasmbatch modules`: the server's module registry.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::client::{Connection, Endpoint, Output, print_json, table, text};

/// Push a .wasm module to the server, so jobs can name it as their image.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wasmbatch push hello.wasm\n  wasmbatch push render.wasm --tag 1.4    (jobs name it render:1.4)\n  wasmbatch push target/wasm32-wasip1/release/sha256.wasm --name sha256"
)]
pub struct Push {
    /// The module: a WASI command (wasip1) or component (wasip2).
    file: PathBuf,
    /// The name jobs use; the file's name without `.wasm` by default.
    #[arg(long)]
    name: Option<String>,
    /// The tag to point at it (jobs name it NAME:TAG); `latest` by default, which is what NAME
    /// alone means.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

impl Push {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let name = match self.name {
            Some(name) => name,
            None => self
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
                .with_context(|| {
                    format!(
                        "{}: cannot tell a name from it; give --name",
                        self.file.display()
                    )
                })?,
        };
        let file = tokio::fs::File::open(&self.file)
            .await
            .with_context(|| format!("cannot open {}", self.file.display()))?;
        let size = file.metadata().await?.len();
        let reference = match &self.tag {
            Some(tag) => format!("{name}:{tag}"),
            None => name,
        };
        let server = Endpoint::new(&self.connection)?;
        let pushed = server.push(&reference, file, size).await?;
        match self.connection.output {
            Output::Json => print_json(&pushed),
            Output::Table => println!(
                "pushed {}:{} {} ({} bytes)",
                text(&pushed["name"]),
                tags(&pushed["tags"]),
                text(&pushed["digest"]),
                text(&pushed["size"])
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// List the modules pushed to the server.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  wasmbatch modules --output json")]
pub struct Modules {
    #[command(flatten)]
    connection: Connection,
}

impl Modules {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let server = Endpoint::new(&self.connection)?;
        let reply = server.get("/v1/modules").await?;
        if self.connection.output == Output::Json {
            print_json(&reply);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = reply["modules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m: &Value| {
                let tagged: Vec<String> = m["tags"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(tag, digest)| format!("{tag}={}", short(digest)))
                    .collect();
                vec![
                    text(&m["name"]),
                    if tagged.is_empty() {
                        "-".into()
                    } else {
                        tagged.join(",")
                    },
                    text(&m["digest"]),
                    text(&m["size"]),
                    m["pushedAt"].as_i64().map_or("-".into(), super::jobs::time),
                ]
            })
            .collect();
        table(&["NAME", "TAGS", "LATEST PUSH", "BYTES", "PUSHED"], &rows);
        Ok(ExitCode::SUCCESS)
    }
}

/// `sha256:` and the first 12 hex digits, as `docker images` shortens them.
fn short(digest: &Value) -> String {
    let digest = digest.as_str().unwrap_or("-");
    digest.get(..19).unwrap_or(digest).to_string()
}

/// A push's tags, as `a,b`.
fn tags(tags: &Value) -> String {
    let tags: Vec<String> = tags.as_array().into_iter().flatten().map(text).collect();
    tags.join(",")
}
