//! `logbook-bench`: Logbook's benchmarks, outside the shipped `logbook` binary so that it does
//! not carry their HTTP client and database clients. Build both with
//! `cargo build --release -p logbook -p logbook-bench`; the process benchmarks start the
//! `logbook` binary found beside this one (or `--logbook-bin`).

mod bench;
mod bench_processes;
mod bench_query;
mod bench_witness;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The same allocator as the shipped binary, so that the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "logbook-bench", about = "Logbook's benchmarks (figures in docs/BENCHMARKS.md).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure append, verify and proof speed against the raw engine, in one run.
    Append(bench::BenchArgs),
    /// Measure the audit log's queries, export and API overhead on a demo-filled store.
    Query(bench_query::BenchQueryArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOGBOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Append(a) => bench::run(a).await,
            Command::Query(a) => bench_query::run(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
