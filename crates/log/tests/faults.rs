//! The append path when the store misbehaves: a commit that fails after it landed, a commit that
//! fails before it did, and another writer signing while a sequencer starts.

#![allow(clippy::unwrap_used)]

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use logbook_core::{
    Action, Actor, ActorKind, ApiTokenId, NewEvent, OrgId, OrgSlug, Outcome, SeededRandom, Source, SystemClock,
    Timestamp,
};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_integrity::tree::{TileId, TileRow};
use logbook_log::{AppendError, LogConfig, LogService};
use logbook_store::*;
use logbook_store_sqlite::SqliteStore;

/// A store that can be told to fail the next commit, after or before doing it.
#[derive(Debug)]
struct Faulty {
    inner: SqliteStore,
    fail_after_commit: AtomicU32,
    fail_before_commit: AtomicU32,
    /// Another writer that appends and signs just before the next checkpoint read is answered.
    writer_before_checkpoint_read: tokio::sync::Mutex<Option<(Arc<LogService>, Org)>>,
}

#[async_trait]
impl Store for Faulty {
    fn backend(&self) -> &'static str {
        "faulty"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn ensure_org(&self, slug: &OrgSlug, now: Timestamp) -> Result<Org, StoreError> {
        self.inner.ensure_org(slug, now).await
    }
    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        self.inner.org(slug).await
    }
    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.inner.orgs().await
    }
    async fn log_head(&self, org: OrgId) -> Result<LogHead, StoreError> {
        self.inner.log_head(org).await
    }
    async fn lock_log(&self, org: OrgId) -> Result<Box<dyn LogLock>, StoreError> {
        self.inner.lock_log(org).await
    }
    async fn commit(&self, org: OrgId, batch: CommitBatch) -> Result<Vec<MutationOutput>, CommitError> {
        if self.fail_before_commit.load(Ordering::SeqCst) > 0 {
            self.fail_before_commit.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Backend("injected: connection refused".into()).into());
        }
        let out = self.inner.commit(org, batch).await?;
        if self.fail_after_commit.load(Ordering::SeqCst) > 0 {
            self.fail_after_commit.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Backend("injected: connection lost at COMMIT".into()).into());
        }
        Ok(out)
    }
    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
        self.inner.events(org, seqs).await
    }
    async fn query_events(
        &self,
        org: OrgId,
        f: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<logbook_store::EventPage, StoreError> {
        self.inner.query_events(org, f, before, limit).await
    }
    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError> {
        self.inner.index_search_text(org, max).await
    }
    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError> {
        self.inner.search_indexed(org).await
    }
    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError> {
        self.inner.seq_at_or_after(org, t).await
    }
    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.users(org, prefix, limit).await
    }
    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.read_tiles(org, tiles).await
    }
    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError> {
        self.inner.tile_rows(org, level, indexes).await
    }
    async fn add_checkpoint(&self, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
        self.inner.add_checkpoint(org, cp).await
    }
    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints(org).await
    }
    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        if let Some((other, o)) = self.writer_before_checkpoint_read.lock().await.take() {
            other.append(&o, vec![event(100), event(101)], None).await.unwrap();
            other.shutdown().await; // signs a checkpoint of the new head
        }
        self.inner.latest_checkpoint(org).await
    }
    async fn api_token_by_hash(&self, h: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        self.inner.api_token_by_hash(h).await
    }
    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
        self.inner.api_tokens(org).await
    }
    async fn idempotency_record(&self, t: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(t, key).await
    }
    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
        self.inner.api_token_rows(org).await
    }
    async fn import_api_token(&self, org: OrgId, t: &ApiToken, h: &[u8; 32]) -> Result<(), StoreError> {
        self.inner.import_api_token(org, t, h).await
    }
}

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

async fn faulty(dir: &Path) -> Arc<Faulty> {
    Arc::new(Faulty {
        inner: SqliteStore::open(dir).await.unwrap(),
        fail_after_commit: AtomicU32::new(0),
        fail_before_commit: AtomicU32::new(0),
        writer_before_checkpoint_read: tokio::sync::Mutex::new(None),
    })
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
    *store.writer_before_checkpoint_read.lock().await = Some((other, other_org));
    let a = log.append(&org, vec![event(1)], None).await.expect("starting beside the other writer works");
    assert_eq!(a.first_seq, 3, "and appends after its events");
}
