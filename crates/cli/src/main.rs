//! `logbook`: parse the command line, choose the store from the URL, run the command.

mod bench;
mod bench_processes;
mod bench_query;
mod cli;
mod commands;
mod config;
mod demo;
mod store_url;

use std::process::ExitCode;

use clap::Parser;

/// The append path allocates per event on one thread and frees on another; glibc's allocator
/// spent a fifth of the append time consolidating that (measured with `perf`, see
/// docs/BENCHMARKS.md). mimalloc handles it without the contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOGBOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
