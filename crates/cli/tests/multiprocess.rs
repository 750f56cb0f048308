//! Two `logbook serve` processes on one PostgreSQL database: appends through both form one
//! gapless log with one consistent series of checkpoints, and killing one mid-load loses no
//! acknowledged event.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use logbook_store_postgres::{testing, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_one_gapless_log_and_a_kill_loses_nothing() {
    let Some(url) = testing::fresh_database().await else {
        eprintln!("SKIPPED two_processes_one_gapless_log_and_a_kill_loses_nothing: PostgreSQL not available");
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path().to_str().unwrap();
    let o = run(&["admin", "create-token", "--database-url", &url, "--data-dir", dir, "--name", "svc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();

    let args = ["--database-url", url.as_str(), "--data-dir", dir];
    let mut a = start(&args);
    let b = start(&args);
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(vec![a.base.clone(), b.base.clone()], &token, &acked, &stop, "mp");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.child.kill().unwrap(); // SIGKILL, mid-load
    a.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    terminate(b);

    let acked = acked.lock().unwrap().clone();
    let through_b = acked.len();
    assert!(through_b > 100, "both processes took appends: {through_b} acknowledged");
    let store = PgStore::connect(&url).await.unwrap();
    let size = check_acknowledged(&store, &acked).await;
    let o = run(&["verify", "--database-url", &url, "--data-dir", dir]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("intact — {size} events")), "{}", stdout(&o));
    eprintln!("two processes: {} acknowledged events, log size {size}", acked.len());
}
