//! The PostgreSQL store: several `logbook serve` processes on one database.
//!
//! - The schema is applied at start under a transaction-scoped advisory lock, so processes that
//!   start together do not race; versions are recorded in `logbook_migrations`.
//! - A commit takes `pg_advisory_xact_lock` on the log, then checks the head it was built on: the
//!   sequencers of all processes are serialized by the database, and a stale one gets
//!   `HeadMoved`, reloads and rebuilds, so each log stays one gapless chain.
//! - Events and tiles go in with one multi-row `INSERT … SELECT FROM UNNEST(…)` each.
//! - At start the store refuses to run if `fsync` or `synchronous_commit` is off: an
//!   acknowledged event must be on disk.
//!
//! The modules hold SQL only, side by side with the SQLite store's of the same names; the
//! algorithms and rules that combine the statements are `logbook_store`'s, written once.

mod accounts;
mod checkpoints;
mod commit;
mod cosignatures;
mod migrate;
mod rows;
mod search;
mod tiles;
mod tls;
mod tokens;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use logbook_core::{ApiTokenId, OrgId, OrgSlug, Timestamp};
use logbook_integrity::tree::{TileId, TileRow};
use logbook_store::{
    ApiToken, CommitBatch, CommitError, EventFilter, EventPage, EventRow, IdempotencyRecord, LogHead, LogLock,
    MutationOutput, Org, ServiceActionLabel, Store, StoreError, StoredCheckpoint, StoredCosignature,
};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use migrate::MIGRATION_COUNT;
use rows::{org_row, pg, ORG_BY_SLUG};
pub use tls::SslMode;

/// Advisory lock namespaces (first key of the two-key form); the migrations' is in `migrate`.
const LOCK_LOG: i32 = 0x4c42_0002;
const LOCK_SEQUENCER: i32 = 0x4c42_0003;
const LOCK_SEARCH: i32 = 0x4c42_0004;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: Tls,
    /// One connection per log, outside the pool, that holds the log's session advisory lock
    /// while this process's sequencer appends. If the process dies, the lock dies with it.
    lock_conns: Arc<tokio::sync::Mutex<HashMap<i64, tokio_postgres::Client>>>,
}

/// The append lock of one log, held on its dedicated connection. The connection goes back for
/// reuse only after a successful unlock; dropped any other way (a cancelled or failed lock, a
/// panic), it is closed, and PostgreSQL releases a session's locks when the session ends.
#[derive(Debug)]
pub struct PgLogLock {
    client: tokio_postgres::Client,
    org: i64,
    home: Arc<tokio::sync::Mutex<HashMap<i64, tokio_postgres::Client>>>,
}

#[async_trait]
impl LogLock for PgLogLock {
    async fn unlock(self: Box<Self>) {
        let PgLogLock { client, org, home } = *self;
        match client.execute("SELECT pg_advisory_unlock($1, $2::int)", &[&LOCK_SEQUENCER, &(org as i32)]).await {
            Ok(_) => {
                home.lock().await.insert(org, client);
            }
            Err(e) => tracing::warn!(error = %e, "releasing the log lock failed; closing its connection releases it"),
        }
    }
}

/// The TLS connector of every connection (see [`tls`]).
#[derive(Clone)]
struct Tls(MakeRustlsConnect, SslMode);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.1)
    }
}

impl PgStore {
    /// Connects, checks durability settings, and applies the schema. The URL's `sslmode`
    /// (`disable`, `prefer` by default, `require`, `verify-ca`, `verify-full`) and
    /// `sslrootcert` mean what they mean to libpq.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let tls::Target { config, tls, mode } = tls::target(url)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager).max_size(16).build().map_err(StoreError::backend)?;
        let store = Self { pool, config, tls: Tls(tls, mode), lock_conns: Arc::default() };
        let mut c = store.client().await?;
        migrate::check_durability(&c).await?;
        migrate::migrate(&mut c).await?;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::context("connecting to PostgreSQL", e))
    }
}

/// Begins a transaction that holds the advisory lock `lock` of `org`'s log until it ends.
pub(crate) async fn locked_transaction(
    c: &mut deadpool_postgres::Object,
    lock: i32,
    org: OrgId,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let tx = c.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2::int)", &[&lock, &(org.0 as i32)]).await.map_err(pg)?;
    Ok(tx)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.query_one("SELECT 1", &[]).await.map_err(pg).map(|_| ())
    }

    async fn ensure_org(&self, slug: &OrgSlug, now: Timestamp) -> Result<Org, StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO orgs (slug, created_us) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING",
            &[&slug.as_str(), &now.as_micros()],
        )
        .await
        .map_err(pg)?;
        org_row(&c.query_one(ORG_BY_SLUG, &[&slug.as_str()]).await.map_err(pg)?)
    }

    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        let c = self.client().await?;
        c.query_opt(ORG_BY_SLUG, &[&slug.as_str()]).await.map_err(pg)?.as_ref().map(org_row).transpose()
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        let c = self.client().await?;
        c.query("SELECT id, slug, created_us FROM orgs ORDER BY id", &[])
            .await
            .map_err(pg)?
            .iter()
            .map(org_row)
            .collect()
    }

    async fn log_head(&self, org: OrgId) -> Result<LogHead, StoreError> {
        search::head(&self.client().await?, org).await
    }

    async fn lock_log(&self, org: OrgId) -> Result<Box<dyn LogLock>, StoreError> {
        // Taken out of the map while locked: if this future is dropped halfway, the connection
        // is dropped with it, and with it any lock the server granted meanwhile.
        let idle = self.lock_conns.lock().await.remove(&org.0).filter(|c| !c.is_closed());
        let client = match idle {
            Some(c) => c,
            None => {
                let (c, conn) = self.config.connect(self.tls.0.clone()).await.map_err(pg)?;
                tokio::spawn(conn);
                // A holder that hangs must not stall every other process for ever: waiting for
                // the lock gives up after 30 s and the waiting batch is answered 503.
                c.batch_execute("SET lock_timeout = '30s'").await.map_err(pg)?;
                c
            }
        };
        client
            .execute("SELECT pg_advisory_lock($1, $2::int)", &[&LOCK_SEQUENCER, &(org.0 as i32)])
            .await
            .map_err(pg)?;
        Ok(Box::new(PgLogLock { client, org: org.0, home: self.lock_conns.clone() }))
    }

    async fn commit(&self, org: OrgId, batch: CommitBatch) -> Result<Vec<MutationOutput>, CommitError> {
        commit::commit(self, org, &batch).await
    }

    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
        search::events(&self.client().await?, org, seqs, None).await
    }

    async fn query_events(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let c = self.client().await?;
        logbook_store::reads::query_events(&search::Reader { c: &c, org }, filter, before, limit).await
    }

    async fn query_events_within(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
        deadline: std::time::Duration,
    ) -> Result<EventPage, StoreError> {
        let read = async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            // The server stops the read's statements itself (SQLSTATE 57014), also while they wait
            // for a lock, so the work ends even though this future may be dropped first. 0
            // would mean "no limit": at least 1 ms.
            let ms = deadline.as_millis().clamp(1, i64::MAX as u128);
            tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}")).await.map_err(pg)?;
            let page = logbook_store::reads::query_events(&search::Reader { c: &tx, org }, filter, before, limit).await;
            match page {
                Err(e) if rows::is_query_canceled(&e) => Err(StoreError::Deadline),
                Err(e) => Err(e),
                Ok(page) => {
                    tx.commit().await.map_err(pg)?;
                    Ok(page)
                }
            }
        };
        // And the answer comes on time even when the server is slow to say so.
        tokio::time::timeout(deadline, read).await.unwrap_or(Err(StoreError::Deadline))
    }

    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError> {
        search::index_search_text(self, org, max).await
    }

    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError> {
        search::indexed(&self.client().await?, org).await
    }

    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError> {
        let c = self.client().await?;
        logbook_store::reads::seq_at_or_after(&search::Reader { c: &c, org }, t).await
    }

    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        logbook_store::reads::users(&search::Reader { c: &c, org }, prefix, limit).await
    }

    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        logbook_store::reads::read_tiles(&search::Reader { c: &c, org }, tiles).await
    }

    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError> {
        tiles::rows(&self.client().await?, org, level, indexes).await
    }

    async fn add_checkpoint(&self, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
        checkpoints::add(self, org, cp).await
    }

    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        checkpoints::all(&self.client().await?, org).await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        checkpoints::latest(&self.client().await?, org).await
    }

    async fn add_cosignature(&self, org: OrgId, c: &StoredCosignature) -> Result<bool, StoreError> {
        cosignatures::add(&self.client().await?, org, c).await
    }

    async fn cosignatures(&self, org: OrgId, size: u64) -> Result<Vec<StoredCosignature>, StoreError> {
        cosignatures::of_size(&self.client().await?, org, size).await
    }

    async fn newest_cosignatures(&self, org: OrgId) -> Result<Vec<StoredCosignature>, StoreError> {
        cosignatures::newest(&self.client().await?, org).await
    }

    async fn self_check_state(&self, org: OrgId) -> Result<Option<Vec<u8>>, StoreError> {
        checkpoints::self_check_state(&self.client().await?, org).await
    }

    async fn save_self_check_state(&self, org: OrgId, state: &[u8]) -> Result<(), StoreError> {
        checkpoints::save_self_check_state(&self.client().await?, org, state).await
    }

    async fn api_token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        tokens::by_hash(&self.client().await?, token_hash).await
    }

    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
        tokens::of_org(&self.client().await?, org).await
    }

    async fn idempotency_record(&self, token: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        tokens::idempotency_record(&self.client().await?, token, key).await
    }

    async fn service_actions(&self, org: OrgId) -> Result<Vec<ServiceActionLabel>, StoreError> {
        tokens::service_actions(&self.client().await?, org).await
    }

    async fn import_service_action(&self, org: OrgId, action: &ServiceActionLabel) -> Result<(), StoreError> {
        tokens::insert_service_action(&self.client().await?, org, action).await
    }

    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
        tokens::rows_of_org(&self.client().await?, org).await
    }

    async fn import_api_token(&self, org: OrgId, t: &ApiToken, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        tokens::import(&self.client().await?, org, t, token_hash).await
    }
}
