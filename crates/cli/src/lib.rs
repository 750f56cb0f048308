//! The `logbook` binary's code: the command line, the one configuration every command uses, and
//! the commands. `main.rs` only calls [`main`]; [`demo`] is public for the benchmarks
//! (`logbook-bench` fills its stores exactly as `logbook demo` does).

mod cli;
mod commands;
mod config;
pub mod demo;
mod export;
mod progress;
mod store_url;
mod witness;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, layers the configuration, sets up logging and runs the command.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let (config, figment) = match config::Config::load(cli.global.config.as_deref(), &commands::flags(&cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let default = commands::default_log_filter(&cli.command);
    let filter = config.log.as_deref().unwrap_or(default);
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: the log filter {filter:?} is not valid ({e}); using {default:?}");
        tracing_subscriber::EnvFilter::new(default)
    });
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(cli, config, figment)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
