//! `logbook demo` only fills a log that holds nothing but its set-up (the first admin, API
//! tokens) unless `--force`; its events say `recorded_by: demo`, and each run records one
//! `demo.events_added` event naming them.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn demo(d: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["demo", "--data-dir", d, "--events", "40", "--days", "2"];
    args.extend_from_slice(extra);
    run(&args)
}

fn ndjson(d: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["export", "--data-dir", d, "--format", "ndjson"];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn create_admin(d: &str, email: &str) {
    let mut admin = bin()
        .args(["admin", "create", "--data-dir", d, "--email", email, "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(admin.stdin.take().unwrap(), "a long enough passphrase 7").unwrap();
    let o = admin.wait_with_output().unwrap();
    assert!(o.status.success(), "admin create: {}", stderr(&o));
}

#[test]
fn demo_fills_a_log_that_holds_only_its_set_up_and_marks_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The set-up: a token and the first admin (entries 0 and 1).
    assert!(run(&["admin", "create-token", "--data-dir", d, "--name", "svc"]).status.success());
    create_admin(d, "first@example.com");
    let o = demo(d, &[]);
    assert!(o.status.success(), "right after the set-up, demo works: {}", stderr(&o));

    let all = ndjson(d, &[]);
    assert_eq!(all.len(), 2 + 40 + 1, "the set-up, the demo events and the run's record");
    let fabricated: Vec<_> = all.iter().filter(|e| e["recorded_by"] == "demo").collect();
    assert_eq!(fabricated.len(), 40, "every demo event says it is one");
    let markers: Vec<_> = all.iter().filter(|e| e["action"] == "demo.events_added").collect();
    assert_eq!(markers.len(), 1, "one record of the run");
    let m = markers[0];
    assert_eq!(m["recorded_by"], "cli");
    assert_eq!(m["actor"]["type"], "system");
    assert_eq!(m["seq"], 42, "recorded after the events it names");
    assert_eq!(m["fields"]["events"], "40");
    assert_eq!((m["fields"]["first_seq"].as_str(), m["fields"]["last_seq"].as_str()), (Some("2"), Some("41")));
    assert!(m["fields"].get("forced").is_none());
    let seqs: Vec<u64> = fabricated.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!((seqs.iter().min(), seqs.iter().max()), (Some(&2), Some(&41)), "the seqs the record names");
}

#[test]
fn demo_refuses_a_log_in_use_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    // A second run: the first one's events are more than a set-up.
    assert!(demo(d, &[]).status.success(), "an empty store");
    let o = demo(d, &[]);
    assert_eq!(o.status.code(), Some(2), "refused: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("more than its set-up") && err.contains("--force") && err.contains("entry 0"), "{err}");
    assert_eq!(ndjson(d, &[]).len(), 41, "nothing was added");

    let o = demo(d, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let markers = ndjson(d, &["--action", "demo.events_added"]);
    assert_eq!(markers.len(), 2);
    assert_eq!(markers[0]["fields"]["forced"], "true", "the newest run was forced");

    // A log holding anything else — here a second admin beside the first — is in use too.
    let other = tempfile::tempdir().unwrap();
    let d = other.path().to_str().unwrap();
    create_admin(d, "first@example.com");
    create_admin(d, "second@example.com");
    let o = demo(d, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("entry 1 is management_user.added"), "{}", stderr(&o));

    // And a service's event.
    let third = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(append_events(third.path(), vec![event(0)]));
    let o = demo(third.path().to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
