//! Skips that a developer sees.
//!
//! A test that cannot run here (no PostgreSQL, no browser, no permission to mount) passes, so
//! its only trace is what it prints. libtest captures what the `print!`/`eprint!` macros write
//! in a passing test and throws it away, so an `eprintln!("SKIPPED …")` is never seen. libtest
//! captures through `std::io::set_output_capture`, which only those macros consult: a write to
//! the process's standard error handle itself goes straight to file descriptor 2 and shows up
//! in `cargo test`'s output (`skip_reports_are_not_captured` in this crate's tests shows it).
//!
//! Each skip therefore goes
//! - to standard error, written directly, as one line starting with `SKIPPED `;
//! - to the terminal as well (`/dev/tty`) when standard error is not one, for harnesses that
//!   capture the whole process's output (cargo-nextest);
//! - as one line to the skip log, which `.ci/run`'s summary counts: the file named by
//!   `LOGBOOK_SKIP_LOG`, or else `logbook-skipped.txt` in the build profile's directory
//!   (`target/debug/`), next to the test binaries.
//!
//! Where a skip must not happen (CI), `LOGBOOK_REQUIRE_POSTGRES`, `LOGBOOK_REQUIRE_BROWSER`,
//! `LOGBOOK_REQUIRE_MOUNT`, `LOGBOOK_REQUIRE_POSTGRES_TLS` and `LOGBOOK_REQUIRE_GO` (set to
//! anything but `0`) turn it into a failure.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// What a test needs that a machine may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A PostgreSQL server (`LOGBOOK_TEST_POSTGRES_URL`).
    Postgres,
    /// Chromium, node and playwright-core.
    Browser,
    /// Permission to mount a tmpfs (root).
    Mount,
    /// PostgreSQL served over TLS with a certificate from the CA that `LOGBOOK_TEST_POSTGRES_CA`
    /// names (`.ci/postgres-tls` sets that up).
    PostgresTls,
    /// The Go toolchain and `golang.org/x/mod/sumdb/note` in GOPATH mode (Debian's golang-go
    /// and golang-golang-x-mod-dev), for checking our formats with code that is not ours.
    Go,
}

impl Needs {
    /// The variable that makes the lack a failure.
    pub fn required_by(self) -> &'static str {
        match self {
            Needs::Postgres => "LOGBOOK_REQUIRE_POSTGRES",
            Needs::Browser => "LOGBOOK_REQUIRE_BROWSER",
            Needs::Mount => "LOGBOOK_REQUIRE_MOUNT",
            Needs::PostgresTls => "LOGBOOK_REQUIRE_POSTGRES_TLS",
            Needs::Go => "LOGBOOK_REQUIRE_GO",
        }
    }

    /// Whether this machine must have it (the variable is set, and not to `0`).
    pub fn is_required(self) -> bool {
        std::env::var(self.required_by()).is_ok_and(|v| !v.is_empty() && v != "0")
    }
}

/// Reports that the current test cannot run here because `why`, where a developer and CI see
/// it; the caller then returns (and passes). When the requirement is set, panics instead.
pub fn skip(needs: Needs, why: &str) {
    let test = current_test();
    if needs.is_required() {
        panic!("{test} cannot run here and {} is set: {why}", needs.required_by());
    }
    report(&format!("SKIPPED {test}: {why}\n"));
}

/// The running test's name: libtest names each test's thread after the test.
pub fn current_test() -> String {
    let thread = std::thread::current();
    let name = thread.name().filter(|n| *n != "main").unwrap_or("a test");
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| s.rsplit_once('-').map(|(name, _hash)| name.to_owned()).unwrap_or(s))
        .unwrap_or_default();
    if binary.is_empty() {
        name.to_owned()
    } else {
        format!("{binary}::{name}")
    }
}

/// Where skips are logged: `LOGBOOK_SKIP_LOG`, or `logbook-skipped.txt` in the profile's
/// directory (the test binary lives in its `deps/`).
pub fn skip_log() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LOGBOOK_SKIP_LOG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("logbook-skipped.txt"))
}

fn report(line: &str) {
    // One write each, so that lines of tests running in parallel do not interleave.
    let stderr = std::io::stderr();
    let _ = stderr.lock().write_all(line.as_bytes());
    if !stderr.is_terminal() {
        if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            let _ = tty.write_all(line.as_bytes());
        }
    }
    if let Some(path) = skip_log() {
        if let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = log.write_all(line.as_bytes());
        }
    }
}
