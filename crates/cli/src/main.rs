//! `logbook`: see the library (`src/lib.rs`) for the command line and the commands.

use std::process::ExitCode;

/// The append path allocates per event on one thread and frees on another; glibc's allocator
/// spent a fifth of the append time consolidating that (measured with `perf`, see
/// docs/BENCHMARKS.md). mimalloc handles it without the contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    logbook::main()
}
