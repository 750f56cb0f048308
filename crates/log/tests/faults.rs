//! The append path when the store misbehaves: a commit that fails after it landed, a commit that
//! fails before it did, and another writer signing while a sequencer starts.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use logbook_core::{Action, Actor, ActorKind, NewEvent, OrgSlug, Outcome, SeededRandom, Source, SystemClock};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_log::{AppendError, LogConfig, LogService};
use logbook_store::testing::FaultyStore;
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;

fn event(i: u64) -> NewEvent {
    NewEvent {
        action: Action::Logout.into(),
        actor: Actor { kind: ActorKind::User, id: format!("u{i}"), email: None },
        target: None,
        details: format!("n={i}"),
        fields: Default::default(),
        outcome: Outcome::Success,
        source: Source::default(),
        recorded_by: "test".into(),
    }
}

fn service(store: Arc<dyn Store>, interval: Duration) -> Arc<LogService> {
    let signer = Arc::new(CheckpointSigner::generate(&SeededRandom::new(3), "t").unwrap());
    let config = LogConfig { origin_prefix: "t".into(), checkpoint_interval: interval, ..LogConfig::default() };
    LogService::new(store, Arc::new(SystemClock), Arc::new(SeededRandom::new(9)), signer, config)
}

async fn faulty(dir: &Path) -> Arc<FaultyStore> {
    Arc::new(FaultyStore::new(Arc::new(SqliteStore::open(dir).await.unwrap())))
}

#[tokio::test]
async fn a_commit_that_failed_after_landing_is_acknowledged_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = faulty(dir.path()).await;
    let log = service(store.clone(), Duration::from_secs(1));
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    log.append(&org, vec![event(0)], None).await.unwrap();
    store.fail_after_commit.store(1, Ordering::SeqCst);
    let a =
        log.append(&org, vec![event(1), event(2)], None).await.expect("the events are stored, so the answer is yes");
    assert_eq!(a.seqs(), 1..3);
    let b = log.append(&org, vec![event(3)], None).await.unwrap();
    assert_eq!(b.first_seq, 3, "the sequencer carried on from the stored head");
    assert_eq!(store.log_head(org.id).await.unwrap().size, 4);
}

#[tokio::test]
async fn a_commit_that_failed_before_landing_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = faulty(dir.path()).await;
    let log = service(store.clone(), Duration::from_secs(1));
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    store.fail_before_commit.store(1, Ordering::SeqCst);
    assert!(matches!(log.append(&org, vec![event(0)], None).await, Err(AppendError::Unavailable)));
    assert_eq!(store.log_head(org.id).await.unwrap().size, 0);
    assert!(log.healthy().await.is_err(), "readiness reports the failure");
    assert_eq!(log.append(&org, vec![event(1)], None).await.unwrap().first_seq, 0);
    assert!(log.healthy().await.is_ok(), "and recovers with the next good commit");
}

#[tokio::test]
async fn another_writer_signing_while_a_sequencer_starts_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = faulty(dir.path()).await;
    let log = service(store.clone(), Duration::from_secs(1));
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    // Another process on the same store, which appends and signs at the worst moment: between
    // the starting sequencer's reads of the head and of the latest checkpoint.
    let other = service(Arc::new(SqliteStore::open(dir.path()).await.unwrap()), Duration::from_secs(1));
    let other_org = other.org(&OrgSlug::default_org()).await.unwrap();
    other.append(&other_org, vec![event(0)], None).await.unwrap();
    *store.before_latest_checkpoint.lock().await = Some(Box::pin(async move {
        other.append(&other_org, vec![event(100), event(101)], None).await.unwrap();
        other.shutdown().await; // signs a checkpoint of the new head
    }));
    let a = log.append(&org, vec![event(1)], None).await.expect("starting beside the other writer works");
    assert_eq!(a.first_seq, 3, "and appends after its events");
}

/// Eight appenders, each appending its own numbered events until one is refused; returns the
/// acknowledged (seq, details) pairs and the number of refusals.
async fn appenders(log: &Arc<LogService>, org: &logbook_store::Org, per: u64) -> (Vec<(u64, String)>, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..8u64 {
        let (log, org) = (log.clone(), org.clone());
        tasks.spawn(async move {
            let (mut acked, mut refused) = (Vec::new(), 0);
            for k in 0..per {
                let e = event(a * 1000 + k);
                let details = e.details.clone();
                match log.append(&org, vec![e], None).await {
                    Ok(ok) => acked.push((ok.first_seq, details)),
                    Err(AppendError::OutcomeUnknown | AppendError::Stopped) => refused += 1,
                    Err(other) => panic!("unexpected answer: {other}"),
                }
            }
            (acked, refused)
        });
    }
    let mut all = (Vec::new(), 0);
    for (acked, refused) in tasks.join_all().await {
        all.0.extend(acked);
        all.1 += refused;
    }
    all
}

/// An I/O error at the Nth commit, before the data was written or after it (a failed sync),
/// for N = 1..=8: no event is acknowledged unless it is stored, nothing is acknowledged after
/// the error, the log stops taking appends and reports unhealthy instead of retrying, and a
/// restart carries on from what the store holds, intact.
#[tokio::test]
async fn an_io_error_at_any_commit_acknowledges_nothing_unstored_and_stops_appends() {
    for after_write in [false, true] {
        for n in 1..=8u64 {
            let dir = tempfile::tempdir().unwrap();
            let store = faulty(dir.path()).await;
            store.io_error_at_commit.store(n, Ordering::SeqCst);
            store.io_error_after_write.store(after_write, Ordering::SeqCst);
            let log = service(store.clone(), Duration::from_millis(50));
            let org = log.org(&OrgSlug::default_org()).await.unwrap();
            let (acked, refused) = appenders(&log, &org, 20).await;
            let case = format!("I/O error at commit {n}, after the write: {after_write}");
            assert!(refused > 0, "{case}: some appends were refused");
            let health = log.healthy().await.expect_err("readiness reports the stop");
            assert!(health.contains("appends stopped"), "{case}: {health}");
            assert!(
                matches!(log.append(&org, vec![event(9999)], None).await, Err(AppendError::Stopped)),
                "{case}: no retry, no acknowledgement after the error"
            );
            log.shutdown().await;
            drop(log);

            // Every acknowledged event is stored, at its seq, once; nothing after the fault
            // was acknowledged (the acknowledged seqs are exactly the first ones).
            let restarted = service(store.inner.clone(), Duration::from_millis(50));
            let org = restarted.org(&OrgSlug::default_org()).await.unwrap();
            let size = store.inner.log_head(org.id).await.unwrap().size;
            let rows = store.inner.events(org.id, 0..size).await.unwrap();
            let mut acked = acked;
            acked.sort();
            for (seq, details) in &acked {
                let stored = logbook_core::leaf::decode(&rows[*seq as usize].leaf).unwrap();
                assert_eq!(&stored.body.details, details, "{case}: acknowledged seq {seq} holds its event");
            }
            let acked_seqs: Vec<u64> = acked.iter().map(|(s, _)| *s).collect();
            assert_eq!(acked_seqs, (0..acked.len() as u64).collect::<Vec<_>>(), "{case}: acknowledged = a prefix");
            let unacked = size - acked.len() as u64;
            if after_write {
                assert!(unacked <= 8, "{case}: only the failed commit's events may be stored unacknowledged");
            } else {
                assert_eq!(unacked, 0, "{case}: a failed write stores nothing");
            }
            // The restarted log takes appends again and the whole store verifies.
            let next = restarted.append(&org, vec![event(10_000)], None).await.unwrap();
            assert_eq!(next.first_seq, size, "{case}");
            restarted.shutdown().await;
            let verifier = CheckpointSigner::generate(&SeededRandom::new(3), "t").unwrap().verifier();
            let origin = restarted.origin(&org.slug);
            let report =
                logbook_log::audit::audit_org(store.inner.clone(), &org, &origin, &verifier, &[]).await.unwrap();
            assert!(report.is_intact(), "{case}: {:?}", report.findings);
        }
    }
}
