//! The commands of the `wasmbatch` binary, one file each, and the enum that dispatches to them.

mod client;
mod cluster;
mod demo;
mod events;
mod jobs;
mod keys;
mod modules;
mod queues;
mod run;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

/// Batch computing for untrusted WebAssembly: AWS Batch's model, wasmtime's sandbox.
#[derive(Debug, clap::Parser)]
#[command(
    name = "wasmbatch",
    version,
    about = "Batch computing for untrusted WebAssembly: AWS Batch's model and API, wasmtime's sandbox",
    after_help = "Example:\n  wasmbatch serve &\n  wasmbatch push hello.wasm\n  wasmbatch submit --image hello --follow -- ola mundo"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Run(run::Run),
    Serve(serve::Serve),
    Push(modules::Push),
    Modules(modules::Modules),
    Registry(modules::Registry),
    Submit(jobs::Submit),
    Jobs(jobs::Jobs),
    Describe(jobs::Describe),
    Logs(jobs::Logs),
    Events(events::Events),
    Cancel(jobs::Cancel),
    Terminate(jobs::Terminate),
    Queues(queues::Queues),
    QueueSnapshot(queues::Snapshot),
    Envs(queues::Envs),
    Demo(demo::Demo),
    Keys(keys::Keys),
    Worker(cluster::Worker),
    Workers(cluster::Workers),
}

impl Cli {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(run) => run.execute().await,
            Command::Serve(serve) => serve.execute().await,
            Command::Push(push) => push.execute().await,
            Command::Modules(modules) => modules.execute().await,
            Command::Registry(registry) => registry.execute().await,
            Command::Submit(submit) => submit.execute().await,
            Command::Jobs(jobs) => jobs.execute().await,
            Command::Describe(describe) => describe.execute().await,
            Command::Logs(logs) => logs.execute().await,
            Command::Events(events) => events.execute().await,
            Command::Cancel(cancel) => cancel.execute().await,
            Command::Terminate(terminate) => terminate.execute().await,
            Command::Queues(queues) => queues.execute().await,
            Command::QueueSnapshot(snapshot) => snapshot.execute().await,
            Command::Envs(envs) => envs.execute().await,
            Command::Demo(demo) => demo.execute().await,
            Command::Keys(keys) => keys.execute().await,
            Command::Worker(worker) => worker.execute().await,
            Command::Workers(workers) => workers.execute().await,
        }
    }
}

/// The per-user data directory: `$XDG_DATA_HOME/wasmbatch`, else `~/.local/share/wasmbatch`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("wasmbatch");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/wasmbatch"),
        None => std::env::temp_dir().join("wasmbatch"),
    }
}
