//! `wasmbatch run`: one job, in this process, no server: like `wasmtime run`, with the batch
//! limits and a private scratch directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use wasmbatch_runtime::{
    Access, AttemptSpec, DirGrant, Executor, ExecutorConfig, ExitStatus, FailureKind, KillSwitch,
    Limits, StreamKind,
};

/// Run one WebAssembly program (a wasip1 module or wasip2 component) under batch limits.
///
/// The exit status is the program's own. If it cannot run (bad module, bad flags) the status is
/// 125; if it is stopped by a limit or a trap, 134; if interrupted with Ctrl-C, 130.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  wasmbatch run hello.wasm --memory 64 --fuel 100000000 --timeout 10 -- world"
)]
pub struct Run {
    /// The .wasm file.
    file: PathBuf,
    /// Memory cap in MiB for the program's linear memory.
    #[arg(long, value_name = "MiB", default_value_t = Limits::DEFAULT_MEMORY_BYTES >> 20)]
    memory: u64,
    /// CPU budget in fuel units (about one per wasm instruction); unlimited if not given.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Wall-clock limit in seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Grant a host directory: HOST:GUEST, read-write, or HOST:GUEST:ro, read-only.
    #[arg(long = "dir", value_name = "HOST:GUEST[:ro]")]
    dirs: Vec<String>,
    /// Set an environment variable for the program (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Print the outcome's figures (time, fuel, peak memory) to stderr at the end.
    #[arg(long)]
    stats: bool,
    /// Where compiled modules and scratch directories live.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Arguments passed to the program (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

impl Run {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        let limits = self.limits()?;
        let grants = self
            .dirs
            .iter()
            .map(|d| parse_grant(d))
            .collect::<Result<Vec<_>, _>>()?;
        let env = self
            .env
            .iter()
            .map(|e| parse_env(e))
            .collect::<Result<Vec<_>, _>>()?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(super::default_data_dir);
        let executor = Executor::new(ExecutorConfig::new(&data_dir))
            .with_context(|| format!("cannot start the executor in {}", data_dir.display()))?;
        let module = executor.load(bytes).await?;

        let program = self
            .file
            .file_name()
            .map_or_else(|| "main.wasm".into(), |n| n.to_string_lossy().into_owned());
        let kill = KillSwitch::new();
        let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn({
            let (kill, interrupted) = (kill.clone(), interrupted.clone());
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
                    kill.kill("interrupted (Ctrl-C)");
                }
            }
        });
        let spec = AttemptSpec {
            args: std::iter::once(program)
                .chain(self.args.iter().cloned())
                .collect(),
            env,
            stdin: None,
            grants,
            limits,
            output: Arc::new(|stream: StreamKind, line: &str| match stream {
                StreamKind::Stdout => println!("{line}"),
                StreamKind::Stderr => eprintln!("{line}"),
            }),
            kill: Some(kill),
        };
        let outcome = executor.run(&module, spec).await;
        if self.stats {
            let fuel = outcome
                .fuel_consumed
                .map_or("not metered".into(), |f| f.to_string());
            eprintln!(
                "wasmbatch: {} in {:?}; fuel {fuel}; peak memory {} KiB",
                match &outcome.status {
                    ExitStatus::Exited(code) => format!("exited with {code}"),
                    ExitStatus::Failed(f) => format!("failed ({:?})", f.kind),
                },
                outcome.wall_time,
                outcome.peak_memory_bytes >> 10
            );
        }
        Ok(match outcome.status {
            ExitStatus::Exited(code) => ExitCode::from(code.clamp(0, 255) as u8),
            ExitStatus::Failed(failure) => {
                eprintln!("wasmbatch: {failure}");
                match failure.kind {
                    FailureKind::Killed
                        if interrupted.load(std::sync::atomic::Ordering::SeqCst) =>
                    {
                        ExitCode::from(130)
                    }
                    FailureKind::InvalidSpec
                    | FailureKind::ModuleInvalid
                    | FailureKind::HostError => ExitCode::from(125),
                    _ => ExitCode::from(134),
                }
            }
        })
    }

    fn limits(&self) -> anyhow::Result<Limits> {
        let timeout = match self.timeout {
            None => Limits::DEFAULT_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
            Some(s) => bail!("--timeout must be a positive number of seconds, got {s}"),
        };
        let memory_bytes = self
            .memory
            .checked_mul(1 << 20)
            .filter(|&b| b > 0)
            .with_context(|| {
                format!(
                    "--memory must be a positive number of MiB, got {}",
                    self.memory
                )
            })?;
        Ok(Limits {
            memory_bytes,
            fuel: self.fuel,
            timeout,
        })
    }
}

fn parse_grant(text: &str) -> anyhow::Result<DirGrant> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, guest, access) = match parts.as_slice() {
        [host, guest] => (host, guest, Access::ReadWrite),
        [host, guest, "ro"] => (host, guest, Access::ReadOnly),
        [host, guest, "rw"] => (host, guest, Access::ReadWrite),
        _ => bail!("--dir {text:?}: expected HOST:GUEST or HOST:GUEST:ro"),
    };
    if host.is_empty() || !guest.starts_with('/') {
        bail!(
            "--dir {text:?}: HOST must not be empty and GUEST must be an absolute path such as /data"
        );
    }
    Ok(DirGrant::path(host, *guest, access))
}

fn parse_env(text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => bail!("--env {text:?}: expected KEY=VALUE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_with_their_access_and_bad_ones_name_the_flag() {
        let g = parse_grant("/tmp/in:/data:ro").unwrap();
        assert_eq!(
            (g.host.to_string(), g.guest_path.as_str(), g.access),
            ("/tmp/in".to_string(), "/data", Access::ReadOnly)
        );
        assert_eq!(
            parse_grant("/tmp/out:/out").unwrap().access,
            Access::ReadWrite
        );
        let error = parse_grant("/tmp/in:data").unwrap_err().to_string();
        assert!(
            error.contains("--dir") && error.contains("absolute"),
            "{error}"
        );
        assert!(parse_grant("/a:/b:rx").is_err());
    }

    #[test]
    fn env_needs_a_key() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(
            parse_env("=x")
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
    }
}
