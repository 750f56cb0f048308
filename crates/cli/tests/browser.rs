//! The Audit Log console in real headless Chromium: fills a store with `logbook demo`, creates an
//! admin and an ingestion token, starts `logbook serve`, and runs the browser tests in
//! `tests/browser/audit-log.test.mjs` (Node's test runner and playwright-core) against it.
//!
//! Needs /usr/bin/chromium, `node`, and `npm ci --prefix tests/browser`. Without them the test
//! reports `SKIPPED …: <reason>` (where a developer sees it, see
//! `logbook_test_support::skip`) and passes, unless `LOGBOOK_REQUIRE_BROWSER=1` (as in CI), which
//! makes that a failure. `LOGBOOK_SCREENSHOTS=1` also refreshes docs/screenshots/.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery staple";
/// The whole browser run; it takes well under a minute.
const NODE_TIMEOUT: Duration = Duration::from_secs(300);

fn browser_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser"))
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} not found (apt-get install chromium)"));
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("node not found on PATH".into()),
    }
    let playwright = browser_dir().join("node_modules/playwright-core");
    if !playwright.is_dir() {
        return Some(format!("{} is missing (run `npm ci --prefix tests/browser`)", playwright.display()));
    }
    None
}

#[test]
fn audit_log_console_in_headless_chromium() {
    if let Some(why) = missing() {
        // Reported past the test harness's capture (or a failure with LOGBOOK_REQUIRE_BROWSER).
        return skip(Needs::Browser, &why);
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&["demo", "--data-dir", d, "--events", "3000"]);
    assert!(o.status.success(), "demo: {}", stderr(&o));

    let mut admin = bin()
        .args(["admin", "create", "--data-dir", d, "--email", EMAIL, "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(admin.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let o = admin.wait_with_output().unwrap();
    assert!(o.status.success(), "admin create: {}{}", stdout(&o), stderr(&o));

    let o = run(&[
        "admin",
        "create-token",
        "--data-dir",
        d,
        "--name",
        "browser-tests",
        "--actions",
        "login.*,logout,user.*",
    ]);
    assert!(o.status.success(), "create-token: {}", stderr(&o));
    let token = stdout(&o).trim().to_owned();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace), "one token on stdout: {token:?}");

    let server = start(&["--data-dir", d]);

    // Node in its own process group, so that a timeout also ends the Chromium it started. Its
    // output goes straight to ours.
    let mut node = Command::new("node")
        .args(["--test", "--test-reporter=spec", "audit-log.test.mjs"])
        .current_dir(browser_dir())
        .env("LOGBOOK_URL", &server.base)
        .env("LOGBOOK_EMAIL", EMAIL)
        .env("LOGBOOK_PASSWORD", PASSWORD)
        .env("LOGBOOK_TOKEN", &token)
        .process_group(0)
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", node.id())]).status();
            let _ = node.wait();
            break Err(());
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    terminate(server);
    match status {
        Ok(status) => assert!(status.success(), "the browser tests failed ({status}); their output is above"),
        Err(()) => panic!("the browser tests did not finish within {NODE_TIMEOUT:?}; killed"),
    }
}
