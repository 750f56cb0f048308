//! SIGKILL in the middle of concurrent appends and sign-ins loses no acknowledged event.
//!
//! The real `logbook serve` runs as a child; eight clients append (singly and in batches of
//! five) and two sign in with wrong passwords, recording every answer; the server is killed
//! with SIGKILL at a random moment and restarted, again and again. At the end every
//! acknowledged event is in the log exactly once at the `seq` it was acknowledged with, no
//! event answered "nothing was stored" is there, every sign-in answered 401 has its Login
//! Failed event, and `logbook verify` passes.
//!
//! Short form by default (5 kills); `LOGBOOK_CRASH_ROUNDS=200` for the long form. The negative
//! control (a server that acknowledges before it commits, built only with the
//! `fault-injection` feature) must be caught by the same checks:
//! `cargo test -p logbook --features fault-injection --test crash`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use logbook_store_sqlite::SqliteStore;
use rand::Rng;

/// Kills `logbook serve` `rounds` times under load; returns what the clients were told.
/// `env` is passed to every server.
async fn crash_rounds(dir: &Path, rounds: usize, env: &[(&str, &str)]) -> Acked {
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("crash test: {rounds} rounds, seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let data_dir = dir.to_str().unwrap();
    let o = run(&["admin", "create-token", "--data-dir", data_dir, "--name", "crash", "--actions", "login.*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();

    let outcomes: Acked = Arc::default();
    for round in 0..rounds {
        let mut server = start_with_env(&["--data-dir", data_dir, "--sign-in-max-failures", "0"], env);
        let stop = Arc::new(AtomicBool::new(false));
        let tag = format!("r{round}");
        let mut tasks = load(vec![server.base.clone()], &token, &outcomes, &stop, &tag);
        tasks.extend(sign_in_load(vec![server.base.clone()], &outcomes, &stop, &tag));
        // The kill lands at a random moment of the load: once a random number of further events
        // has been acknowledged (and some sign-ins answered), whatever the machine's speed.
        let acked_target = outcomes.acked.lock().unwrap().len() + rng.gen_range(60..300);
        let sign_ins_target = outcomes.failed_sign_ins.lock().unwrap().len() + 2;
        wait_until("appends and sign-ins before the kill", || async {
            let acked = outcomes.acked.lock().unwrap().len();
            let sign_ins = outcomes.failed_sign_ins.lock().unwrap().len();
            (acked >= acked_target && sign_ins >= sign_ins_target).then_some(())
        })
        .await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
    }
    // A clean start and stop: the tail gets its checkpoint.
    terminate(start_with_env(&["--data-dir", data_dir], env));
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_appends_loses_no_acknowledged_event() {
    let rounds: usize = std::env::var("LOGBOOK_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let outcomes = crash_rounds(dir.path(), rounds, &[]).await;

    let acked = outcomes.acked.lock().unwrap().len();
    let sign_ins = outcomes.failed_sign_ins.lock().unwrap().len();
    assert!(acked > 50 * rounds, "the clients got work done: {acked} acknowledged");
    assert!(sign_ins > rounds, "sign-ins went through: {sign_ins}");
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let size = check_acknowledged(&store, &outcomes).await;
    drop(store);
    let o = run(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    eprintln!(
        "crash test: {acked} acknowledged events, {sign_ins} failed sign-ins and {} refused events checked after {rounds} kills; log size {size}",
        outcomes.refused.lock().unwrap().len()
    );
}

/// A SIGTERM right after the server says it is listening is a clean shutdown (exit 0, final
/// checkpoint), not the default action of the signal. (Found by the crash test's final stop.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_is_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        terminate(start(&["--data-dir", dir.path().to_str().unwrap()]));
    }
}

/// The negative control: a server that answers before its commit reaches the disk loses
/// acknowledged events when it is killed, and the same checks catch it.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_acknowledging_before_commit_is_caught() {
    // A kill lands between an early answer and its commit in most rounds; allow a few tries.
    let mut problems = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let outcomes = crash_rounds(dir.path(), 10, &[("LOGBOOK_FAULT_ACK_BEFORE_COMMIT", "1")]).await;
        let store = SqliteStore::open(dir.path()).await.unwrap();
        if let Err(p) = check_outcomes(&store, &outcomes).await {
            problems = p;
            break;
        }
    }
    assert!(!problems.is_empty(), "the harness must catch the lost events");
    assert!(
        problems.iter().any(|p| p.starts_with("acknowledged ")),
        "it names acknowledged events that are missing: {problems:?}"
    );
    eprintln!("negative control: {} violation(s) caught, e.g. {}", problems.len(), problems[0]);
}
