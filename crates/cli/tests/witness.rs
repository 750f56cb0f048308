//! `logbook witness`: the commands, and the real binary killed (SIGKILL) again and again during
//! 100 add-checkpoint updates, never forgetting or rolling back a size it answered 200 for.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, start_witness as start};
use logbook_integrity::cosignature::CosignatureVerifier;
use logbook_integrity::witness_protocol::{parse_size_body, AddCheckpointRequest, SIZE_CONTENT_TYPE};
use logbook_test_support::witness::{post, Answer};
use logbook_test_support::ToyLog;

const ORIGIN: &str = "log.test/default";

fn witness(dir: &Path, args: &[&str]) -> std::process::Output {
    bin().arg("witness").args(args).arg("--data-dir").arg(dir).output().unwrap()
}

fn conflict_size(a: &Answer) -> u64 {
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(a.content_type, SIZE_CONTENT_TYPE);
    parse_size_body(a.body.as_bytes()).unwrap()
}

#[tokio::test]
async fn key_add_log_and_serve_then_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("witness");
    let out = witness(&dir, &["key", "--name", "witness.example/w1"]);
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("witness.example/w1+"), "{key}");
    let again = witness(&dir, &["key"]);
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim(), key, "the key is kept");
    let renamed = witness(&dir, &["key", "--name", "other"]);
    assert!(!renamed.status.success(), "a witness keeps its name");

    let log = ToyLog::new(ORIGIN, 9);
    let bad = witness(&dir, &["add-log", "--origin", ORIGIN, "--key", "not-a-key"]);
    assert!(!bad.status.success());
    let added = witness(&dir, &["add-log", "--origin", ORIGIN, "--key", log.verifier_key()]);
    assert!(added.status.success(), "{added:?}");
    let other = ToyLog::new(ORIGIN, 10);
    let conflicting = witness(&dir, &["add-log", "--origin", ORIGIN, "--key", other.verifier_key()]);
    assert!(!conflicting.status.success(), "another key for a witnessed origin is refused");

    let server = start(&dir);
    let mut log = log;
    log.grow(4);
    let req = log.request(0);
    let a = post(&server.base, req.to_body()).await;
    assert_eq!(a.status, 200, "{a:?}");
    CosignatureVerifier::new(&key).unwrap().verify_note(&format!("{}{}", req.checkpoint, a.body)).unwrap();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut child = server.child;
    assert!(child.wait().unwrap().success(), "SIGTERM: a clean exit");
}

/// Sends `req`; on 409 checks the witness never names less than `acked`, and resends from what
/// it names. Returns the size now held (the checkpoint's).
async fn update(base: &str, log: &ToyLog, held: &mut u64, acked: &mut u64) {
    loop {
        let a = post(base, log.request(*held).to_body()).await;
        if a.status == 200 {
            *held = log.size();
            *acked = log.size();
            return;
        }
        let size = conflict_size(&a);
        assert!(size >= *acked, "the witness rolled back: it holds {size}, it answered 200 for {acked}");
        assert!(size <= log.size(), "the witness holds {size}, more than was ever sent ({})", log.size());
        *held = size;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_100_updates_never_loses_or_rolls_back_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("witness");
    let mut log = ToyLog::new(ORIGIN, 11);
    assert!(witness(&dir, &["add-log", "--origin", ORIGIN, "--key", log.verifier_key()]).status.success());
    let mut w = start(&dir);
    // `acked`: the largest size answered 200. `held`: what we believe the witness holds.
    let (mut acked, mut held) = (0u64, 0u64);
    let mut kills = 0;
    for i in 0..100u64 {
        log.grow(1 + i % 4);
        match i % 12 {
            // Killed with the request in flight: it may have been committed, answered, both or
            // neither.
            11 => {
                let req: AddCheckpointRequest = log.request(held);
                let base = w.base.clone();
                let sent = tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let r = client.post(format!("{base}/add-checkpoint")).body(req.to_body()).send().await.ok()?;
                    let status = r.status().as_u16();
                    r.text().await.ok().map(|_| status)
                });
                // Kill as soon as the request is on its way (no sleep: sometimes before it was
                // read, sometimes after its commit).
                tokio::task::yield_now().await;
                w.child.kill().unwrap();
                w.child.wait().unwrap();
                kills += 1;
                if sent.await.unwrap() == Some(200) {
                    held = log.size();
                    acked = log.size();
                }
                w = start(&dir);
                update(&w.base, &log, &mut held, &mut acked).await;
            }
            // Killed between two answered requests.
            5 => {
                update(&w.base, &log, &mut held, &mut acked).await;
                w.child.kill().unwrap();
                w.child.wait().unwrap();
                kills += 1;
                w = start(&dir);
                // The probe: old = the last size answered 200 must not be told of a smaller size.
                log.grow(1);
                update(&w.base, &log, &mut held, &mut acked).await;
            }
            _ => update(&w.base, &log, &mut held, &mut acked).await,
        }
        assert_eq!(acked, log.size(), "update {i}");
    }
    assert!(kills >= 16, "{kills}");
    w.child.kill().unwrap();
    w.child.wait().unwrap();
    // What is on disk after the last kill: the last acknowledged tree.
    let db = rusqlite::Connection::open(dir.join("witness.db")).unwrap();
    let (size, root): (i64, Vec<u8>) = db
        .query_row("SELECT size, root FROM logs WHERE origin = ?1", [ORIGIN], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(size as u64, acked);
    assert_eq!(root, log.root().0.to_vec());
}
