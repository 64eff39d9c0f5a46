//! `wasmbatch keys create`: a new access key, with its policy, in the credentials file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wasmbatch_api::access::credentials::{CredentialsFile, credentials_path};
use wasmbatch_api::access::policy::Policy;

/// Manage the access keys callers sign requests with.
#[derive(Debug, clap::Args)]
pub struct Keys {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    Create(Create),
}

/// Create an access key allowed what an IAM-style policy allows. The secret is printed once.
///
/// A running `wasmbatch serve` reads the new key on SIGHUP (`kill -HUP <pid>`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cat > team-a.json <<'EOF'\n  {\"Version\": \"2012-10-17\", \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": [\"batch:SubmitJob\", \"batch:DescribeJobs\", \"batch:ListJobs\"],\n     \"Resource\": [\"arn:aws:batch:*:*:job-queue/team-a\", \"arn:aws:batch:*:*:job-definition/*\"]}]}\n  EOF\n  wasmbatch keys create --name team-a --policy team-a.json"
)]
struct Create {
    /// Who the key belongs to; jobs it submits record it as `submittedBy`.
    #[arg(long)]
    name: String,
    /// A JSON policy document: `Statement` with `Effect`, `Action`, `Resource`.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The data dir of the server the key is for.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl Keys {
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let KeysCommand::Create(create) = self.command;
        let text = std::fs::read(&create.policy)
            .with_context(|| format!("cannot read --policy {}", create.policy.display()))?;
        let policy: Policy = serde_json::from_slice(&text).with_context(|| {
            format!(
                "--policy {} is not a policy document",
                create.policy.display()
            )
        })?;
        let data_dir = create.data_dir.unwrap_or_else(super::default_data_dir);
        let path = credentials_path(&data_dir);
        let key = CredentialsFile::create_key(&path, &create.name, policy)?;
        println!(
            "created key {:?} in {}\n\n  export AWS_ACCESS_KEY_ID={}\n  export AWS_SECRET_ACCESS_KEY={}\n\n\
             The secret is shown only now. A running `wasmbatch serve` reads new keys on SIGHUP.",
            key.name,
            path.display(),
            key.access_key_id,
            key.secret_access_key
        );
        Ok(ExitCode::SUCCESS)
    }
}
