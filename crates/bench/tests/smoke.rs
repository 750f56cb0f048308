//! The benchmarks still run, on tiny sizes (their figures are not checked: the machine decides).

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_logbook-bench"))
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .env("LOGBOOK_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{args:?}: {out}{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn append_and_query_benchmarks_run() {
    let out = bench(&[
        "append",
        "--events",
        "2000",
        "--batch",
        "100",
        "--appenders",
        "2",
        "--per-appender",
        "10",
        "--proof-log",
        "0",
        "--rounds",
        "1",
    ]);
    assert!(out.starts_with("# logbook-bench append"), "{out}");
    let out = bench(&["query", "--events", "2000", "--runs", "2"]);
    assert!(out.starts_with("# logbook-bench query (SQLite)"), "{out}");
}
