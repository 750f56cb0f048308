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
        action: Action::Logout,
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
