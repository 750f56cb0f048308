//! SIGKILL in the middle of concurrent appends loses no acknowledged event.
//!
//! The real `logbook serve` runs as a child; eight clients append (singly and in small
//! batches) and record every acknowledged `seq`; the server is killed with SIGKILL at a random
//! moment and restarted, again and again. At the end every acknowledged event is in the log,
//! exactly once, at the `seq` it was acknowledged with, and `logbook verify` passes.
//!
//! Short form by default (5 kills); `LOGBOOK_CRASH_ROUNDS=200` for the long form.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use logbook_store_sqlite::SqliteStore;
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_appends_loses_no_acknowledged_event() {
    let rounds: usize = std::env::var("LOGBOOK_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("crash test: {rounds} rounds, seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["admin", "create-token", "--data-dir", dir.path().to_str().unwrap(), "--name", "crash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();

    let acked: Acked = Arc::default();
    for round in 0..rounds {
        let mut server = start(&["--data-dir", dir.path().to_str().unwrap()]);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = load(vec![server.base.clone()], &token, &acked, &stop, &format!("r{round}"));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
    }

    // A clean start and stop: the tail gets its checkpoint.
    terminate(start(&["--data-dir", dir.path().to_str().unwrap()]));

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50 * rounds, "the clients got work done: {} acknowledged", acked.len());
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let size = check_acknowledged(&store, &acked).await;
    drop(store);
    let o = run(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    eprintln!("crash test: {} acknowledged events survived {rounds} kills; log size {size}", acked.len());
}
