//! The scheduled full self-check (issue 13 item 4): it covers the whole log, where the
//! continuous check covers only the newest part; it resumes after a restart from its sealed
//! saved state; and a saved state edited in the database is reported, not trusted.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_core::{
    leaf, Action, Actor, ActorKind, ManualClock, NewEvent, OrgSlug, Outcome, SeededRandom, Source, Timestamp,
};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_log::{LogConfig, LogService};
use logbook_store::{Org, Store};
use logbook_store_sqlite::SqliteStore;
use logbook_test_support::wait_until;

const DAY: Duration = Duration::from_secs(86_400);

/// A minimal event: the fewest bytes to write and hash.
fn event() -> NewEvent {
    NewEvent {
        action: Action::LoginSuccess.into(),
        actor: Actor { kind: ActorKind::User, id: "u".into(), email: None },
        target: None,
        details: String::new(),
        fields: Default::default(),
        outcome: Outcome::Success,
        source: Source::default(),
        recorded_by: "t".into(),
    }
}

fn service(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> Arc<LogService> {
    let signer = Arc::new(CheckpointSigner::generate(&SeededRandom::new(7), "logbook.test").unwrap());
    let config = LogConfig {
        origin_prefix: "logbook.test".into(),
        checkpoint_interval: Duration::from_secs(3600),
        max_batch_events: 20_000,
        witness_dir: None,
        ..LogConfig::default()
    };
    LogService::new(store, clock, Arc::new(SeededRandom::new(1)), signer, config)
}

/// A SQLite store of `n` events through the append path, large batches; signed at shutdown.
async fn filled(dir: &std::path::Path, clock: &Arc<ManualClock>, n: u64) -> (Arc<dyn Store>, Org) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir).await.unwrap());
    let log = service(store.clone(), clock.clone());
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    let mut next = 0;
    while next < n {
        let k = (n - next).min(20_000);
        log.append(&org, (0..k).map(|_| event()).collect(), None).await.unwrap();
        next += k;
    }
    log.shutdown().await;
    assert_eq!(store.latest_checkpoint(org.id).await.unwrap().unwrap().size, n);
    (store, org)
}

/// As someone with the database file: the entry's details changed, its stored hash left.
fn forge(dir: &std::path::Path, seq: u64) {
    let db = rusqlite::Connection::open(dir.join(logbook_store_sqlite::FILE_NAME)).unwrap();
    db.execute_batch("DROP TRIGGER IF EXISTS events_append_only_update").unwrap();
    let leaf_bytes: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = ?1", [seq], |r| r.get(0)).unwrap();
    let mut e = leaf::decode(&leaf_bytes).unwrap();
    e.body.details = "forged".into();
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = ?2", rusqlite::params![leaf::encode(&e), seq]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_to_the_oldest_of_a_million_events_is_found_by_the_scheduled_full_check_only() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_764_000_000_000_000)));
    let started = Instant::now();
    let (store, _) = filled(dir.path(), &clock, N).await;
    eprintln!("filled {N} events in {:.1?}", started.elapsed());
    forge(dir.path(), 0);

    let log = service(store.clone(), clock.clone());
    // The continuous check re-reads the newest part only: the edit is not in it (the old
    // behaviour, and the reason for the full check).
    let run = log.self_check().await;
    assert!(run.is_ok(), "{run:?}");
    assert_eq!((run.orgs[0].from, run.orgs[0].size), (N - logbook_log::selfcheck::RECENT_EVENTS, N));
    assert_eq!(log.metrics().self_check_ok.get(), 1);

    // The schedule, short: it first sees the log now, and its first run is due a second later.
    let interval = Duration::from_secs(1);
    assert_eq!(log.full_self_check_wait(interval).await.unwrap(), interval);
    clock.advance_micros(2_000_000);
    let schedule = tokio::spawn(log.clone().full_self_check_schedule(interval));
    let t = Instant::now();
    let failed = wait_until("the scheduled full self-check to finish a run", || async {
        let s = log.self_check_status();
        s.full.orgs.first().and_then(|o| o.last.clone())
    })
    .await;
    eprintln!("full check of {N} events in {:.1?}", t.elapsed());
    schedule.abort();
    assert!(!failed.is_ok());
    assert_eq!(failed.first_bad_seq, Some(0), "{failed:?}");
    assert_eq!((failed.size, failed.checked, failed.resumed_from), (N, N, None));
    assert!(failed.problems[0].contains("seq 0"), "{:?}", failed.problems);
    // The same alarm as the continuous check's, and the full check's own metrics.
    let m = log.metrics();
    assert_eq!((m.self_check_ok.get(), m.full_self_check_ok.get()), (0, 0));
    assert_eq!((m.full_self_check_failures.get(), m.full_self_check_first_bad_seq.get()), (1, 0));
    assert_eq!((m.full_self_check_checked.get(), m.full_self_check_size.get()), (N as i64, N as i64));
    assert!(log.self_check_status().alarm());
}

/// Runs the full check now (an interval of zero: due at once) until `stop` says so.
async fn run_now(log: &LogService, stop: &(dyn Fn(u64) -> bool + Send + Sync)) -> Vec<logbook_log::fullcheck::FullRun> {
    log.full_self_check(Duration::ZERO, stop).await.unwrap().into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_check_stopped_part_way_resumes_where_it_stopped_after_a_restart() {
    const N: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_764_000_000_000_000)));
    let (store, org) = filled(dir.path(), &clock, N).await;

    // A first process stops its run once the progress past seq 20,000 is saved.
    let first = service(store.clone(), clock.clone());
    assert!(run_now(&first, &|pos| pos >= 20_000).await.is_empty(), "stopped, not finished");
    let progress = first.self_check_status().full.orgs[0].progress;
    assert_eq!(progress, Some((20_000, N)));
    drop(first);

    // Meanwhile, one entry the run has read and one it has not are edited.
    forge(dir.path(), 5_000);
    forge(dir.path(), 30_000);

    // A restarted process picks the run up at 20,000 (its saved edge, not the stored tiles):
    // the later edit is found, the earlier one was read before the restart and is not re-read.
    let second = service(Arc::new(SqliteStore::open(dir.path()).await.unwrap()), clock.clone());
    assert_eq!(second.full_self_check_wait(DAY).await.unwrap(), Duration::ZERO, "a run under way is due at once");
    assert_eq!(second.self_check_status().full.orgs[0].progress, Some((20_000, N)), "shown after the restart");
    let runs = run_now(&second, &|_| false).await;
    assert_eq!(runs.len(), 1);
    let resumed = &runs[0];
    assert_eq!(resumed.resumed_from, Some(20_000), "{resumed:?}");
    assert_eq!((resumed.size, resumed.checked), (N, N), "20,000 before the restart, the rest after");
    assert_eq!(resumed.first_bad_seq, Some(30_000), "{resumed:?}");

    // The next run starts from seq 0 and finds the earlier edit too.
    clock.advance_micros(1);
    let next = run_now(&second, &|_| false).await;
    assert_eq!((next[0].resumed_from, next[0].first_bad_seq, next[0].checked), (None, Some(5_000), N));

    // A saved state edited in the database (to move a run past an edit) is refused and reported.
    assert!(run_now(&second, &|pos| pos >= 10_000).await.is_empty());
    let mut saved = store.self_check_state(org.id).await.unwrap().unwrap();
    let body = String::from_utf8(saved[32..].to_vec()).unwrap();
    let moved = body.replace("\"next\":10000", "\"next\":50000");
    assert_ne!(moved, body);
    saved.truncate(32);
    saved.extend_from_slice(moved.as_bytes());
    store.save_self_check_state(org.id, &saved).await.unwrap();
    let runs = run_now(&second, &|_| false).await;
    assert!(runs[0].problems[0].contains("does not carry this server's seal"), "{runs:?}");
    assert_eq!(second.metrics().full_self_check_ok.get(), 0);
    // And the run after it starts over from seq 0.
    clock.advance_micros(1);
    let runs = run_now(&second, &|_| false).await;
    assert_eq!((runs[0].resumed_from, runs[0].checked, runs[0].first_bad_seq), (None, N, Some(5_000)));
}
