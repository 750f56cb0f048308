use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub async fn run(_a: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
