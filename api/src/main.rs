//! `wasmbatch`: the command line. Thin over the libraries: it parses flags and hands the work to
//! one module per command under `cli/`.

mod cli;

use clap::Parser;

/// Many small allocations from many tasks at once (jobs, records, log lines): glibc's malloc
/// contends on its arena locks there; mimalloc does not (measured in benches/control_plane.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMBATCH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let command = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wasmbatch: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(125);
        }
    };
    match runtime.block_on(command.execute()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmbatch: {e:#}");
            std::process::ExitCode::from(125)
        }
    }
}
