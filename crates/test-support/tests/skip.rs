//! A reported skip is seen: libtest's capture keeps it neither from the output of `cargo test`
//! nor from the skip log, while an `eprintln!` in a passing test is swallowed. Shown on this very
//! binary, run again as a child process with output captured as usual (no `--nocapture`).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use logbook_test_support::{skip, Needs};

/// Set for the child runs only: the two tests below do their part then, and nothing otherwise.
const CHILD: &str = "LOGBOOK_TEST_SUPPORT_CHILD";

#[test]
fn a_test_that_skips() {
    if std::env::var_os(CHILD).is_some() {
        eprintln!("eprintln-from-a-passing-test");
        skip(Needs::Mount, "shown by skip_reports_are_not_captured");
    }
}

fn run_child(require: bool) -> (bool, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skipped.txt");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "a_test_that_skips", "--test-threads", "1"])
        .env(CHILD, "1")
        .env("LOGBOOK_SKIP_LOG", &log)
        .env_remove("LOGBOOK_REQUIRE_MOUNT");
    if require {
        cmd.env("LOGBOOK_REQUIRE_MOUNT", "1");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[test]
fn skip_reports_are_not_captured() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let (ok, stdout, stderr, log) = run_child(false);
    assert!(ok, "the skipping test passes: {stdout}{stderr}");
    let line = "SKIPPED skip::a_test_that_skips: shown by skip_reports_are_not_captured\n";
    assert!(stderr.contains(line), "the skip is on stderr despite the capture: {stderr:?}");
    assert!(!format!("{stdout}{stderr}").contains("eprintln-from-a-passing-test"), "while eprintln! is captured");
    assert_eq!(log, line, "and in the skip log");
}

#[test]
fn a_required_capability_turns_the_skip_into_a_failure() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let (ok, stdout, stderr, log) = run_child(true);
    assert!(!ok, "fails where the capability is required: {stdout}{stderr}");
    assert!(stdout.contains("LOGBOOK_REQUIRE_MOUNT is set"), "{stdout}");
    assert!(log.is_empty(), "a failure is not a skip: {log:?}");
}
