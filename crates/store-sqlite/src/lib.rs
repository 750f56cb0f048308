//! The embedded default store: one SQLite file in the data directory.
//!
//! One writer connection (SQLite has one writer anyway) behind a mutex, used from blocking
//! threads; a small pool of read-only connections for queries, which WAL lets run beside the
//! writer. Every commit is `BEGIN IMMEDIATE … COMMIT` with `synchronous=FULL`, so it is on disk
//! before `commit` returns.
//!
//! The modules hold SQL only, side by side with the PostgreSQL store's of the same names; the
//! algorithms and rules that combine the statements are `logbook_store`'s, written once.

mod accounts;
mod checkpoints;
mod commit;
mod cosignatures;
mod files;
mod migrate;
mod rows;
mod search;
mod tiles;
mod tokens;

use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use async_trait::async_trait;
use logbook_core::{ApiTokenId, OrgId, OrgSlug, Timestamp};
use logbook_integrity::tree::{TileId, TileRow};
use logbook_store::{
    ApiToken, CommitBatch, CommitError, EventFilter, EventPage, EventRow, IdempotencyRecord, LogHead, LogLock,
    MutationOutput, NoLock, Org, ServiceActionLabel, Store, StoreError, StoredCheckpoint, StoredCosignature,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

pub use commit::insert_rows;
pub use migrate::{configure, migrate};
use rows::{org_row, store_error, ORG_BY_SLUG};

/// How many SQLite virtual machine instructions run between two looks at a read's deadline:
/// a few microseconds of work.
const PROGRESS_STEPS: std::os::raw::c_int = 1000;

/// The name of the database file inside the data directory.
pub const FILE_NAME: &str = "logbook.db";

#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

/// Drives the shared algorithms of `logbook_store` over this crate's statements, on the
/// blocking thread that holds the connection. rusqlite is synchronous, so these futures never
/// wait: this returns as soon as the statements are done.
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

impl SqliteStore {
    /// Opens (creating if needed) `logbook.db` in `data_dir`, which is made (or tightened to)
    /// 0700: see `files.rs`.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || {
            files::private_data_dir(&dir).map_err(|e| StoreError::context(format!("creating {}", dir.display()), e))
        })
        .await
        .map_err(StoreError::backend)??;
        Self::open_file(&data_dir.join(FILE_NAME)).await
    }

    /// Opens (creating if needed) the database file `path`, 0600 with its WAL and shared-memory
    /// files; a missing directory is created 0700.
    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                files::create_private_dir(dir)
                    .map_err(|e| StoreError::context(format!("creating {}", dir.display()), e))?;
            }
            files::before_open(&path).map_err(|e| StoreError::context(format!("creating {}", path.display()), e))?;
            let mut conn = Connection::open(&path).map_err(store_error)?;
            configure(&conn).map_err(store_error)?;
            migrate(&mut conn).map_err(store_error)?;
            files::after_open(&path).map_err(|e| StoreError::context(format!("securing {}", path.display()), e))?;
            Ok(Self { path, writer: Arc::new(Mutex::new(conn)), readers: Arc::new(Mutex::new(Vec::new())) })
        })
        .await
        .map_err(StoreError::backend)?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read_with(move |c| f(c).map_err(store_error)).await
    }

    pub(crate) async fn read_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().pop();
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                    )
                    .map_err(store_error)?;
                    c.busy_timeout(std::time::Duration::from_secs(10)).map_err(store_error)?;
                    c
                }
            };
            let out = f(&conn);
            let mut pool = pool.lock();
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(StoreError::backend)?
    }

    pub(crate) async fn write<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock();
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::backend(e)))?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer connection and commits it
    /// when `f` succeeds (an `Err` rolls it back).
    pub(crate) async fn write_tx<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.write(move |c: &mut Connection| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)?;
            let out = f(&tx)?;
            tx.commit().map_err(store_error)?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn ensure_org(&self, slug: &OrgSlug, now: Timestamp) -> Result<Org, StoreError> {
        let slug = slug.clone();
        self.write(move |c: &mut Connection| {
            c.execute(
                "INSERT INTO orgs (slug, created_us) VALUES (?1, ?2) ON CONFLICT (slug) DO NOTHING",
                params![slug.as_str(), now.as_micros()],
            )
            .and_then(|_| c.query_row(ORG_BY_SLUG, [slug.as_str()], org_row))
            .map_err(store_error)
        })
        .await
    }

    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        let slug = slug.clone();
        self.read(move |c| c.query_row(ORG_BY_SLUG, [slug.as_str()], org_row).optional()).await
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|c| c.prepare("SELECT id, slug, created_us FROM orgs ORDER BY id")?.query_map([], org_row)?.collect())
            .await
    }

    async fn log_head(&self, org: OrgId) -> Result<LogHead, StoreError> {
        self.read(move |c| search::head(c, org)).await
    }

    /// One writer connection per process, and `BEGIN IMMEDIATE` across processes, already
    /// serialize commits; a second process (the CLI beside `serve`) gets `HeadMoved` and retries.
    async fn lock_log(&self, _org: OrgId) -> Result<Box<dyn LogLock>, StoreError> {
        Ok(Box::new(NoLock))
    }

    async fn commit(&self, org: OrgId, batch: CommitBatch) -> Result<Vec<MutationOutput>, CommitError> {
        commit::commit(self, org, batch).await
    }

    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
        search::events(self, org, seqs).await
    }

    async fn query_events(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let filter = filter.clone();
        self.read_with(move |c| {
            run(logbook_store::reads::query_events(&search::Reader { c, org }, &filter, before, limit))
        })
        .await
    }

    async fn query_events_within(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
        deadline: std::time::Duration,
    ) -> Result<EventPage, StoreError> {
        let filter = filter.clone();
        let until = std::time::Instant::now() + deadline;
        self.read_with(move |c| {
            let stopped = Arc::new(AtomicBool::new(false));
            let flag = stopped.clone();
            // Called every PROGRESS_STEPS virtual machine instructions; `true` interrupts the
            // statement (SQLITE_INTERRUPT).
            c.progress_handler(
                PROGRESS_STEPS,
                Some(move || {
                    let late = std::time::Instant::now() >= until;
                    if late {
                        flag.store(true, Ordering::Relaxed);
                    }
                    late
                }),
            );
            let page = run(logbook_store::reads::query_events(&search::Reader { c, org }, &filter, before, limit));
            // The connection goes back to the pool: without its handler.
            c.progress_handler(0, None::<fn() -> bool>);
            match page {
                Err(_) if stopped.load(Ordering::Relaxed) => Err(StoreError::Deadline),
                page => page,
            }
        })
        .await
    }

    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError> {
        search::index_search_text(self, org, max).await
    }

    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError> {
        self.read(move |c| search::indexed(c, org)).await
    }

    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError> {
        self.read_with(move |c| run(logbook_store::reads::seq_at_or_after(&search::Reader { c, org }, t))).await
    }

    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_owned();
        self.read_with(move |c| run(logbook_store::reads::users(&search::Reader { c, org }, &prefix, limit))).await
    }

    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let tiles = tiles.to_vec();
        self.read_with(move |c| run(logbook_store::reads::read_tiles(&search::Reader { c, org }, &tiles))).await
    }

    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError> {
        self.read(move |c| tiles::rows(c, org, level, indexes)).await
    }

    async fn add_checkpoint(&self, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
        checkpoints::add(self, org, cp.clone()).await
    }

    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.read(move |c| checkpoints::all(c, org)).await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(move |c| checkpoints::latest(c, org)).await
    }

    async fn add_cosignature(&self, org: OrgId, c: &StoredCosignature) -> Result<bool, StoreError> {
        cosignatures::add(self, org, c.clone()).await
    }

    async fn cosignatures(&self, org: OrgId, size: u64) -> Result<Vec<StoredCosignature>, StoreError> {
        self.read(move |c| cosignatures::of_size(c, org, size)).await
    }

    async fn newest_cosignatures(&self, org: OrgId) -> Result<Vec<StoredCosignature>, StoreError> {
        self.read(move |c| cosignatures::newest(c, org)).await
    }

    async fn self_check_state(&self, org: OrgId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| checkpoints::self_check_state(c, org)).await
    }

    async fn save_self_check_state(&self, org: OrgId, state: &[u8]) -> Result<(), StoreError> {
        let state = state.to_vec();
        self.write(move |c: &mut Connection| checkpoints::save_self_check_state(c, org, &state).map_err(store_error))
            .await
    }

    async fn api_token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        let h = *token_hash;
        self.read(move |c| tokens::by_hash(c, &h)).await
    }

    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
        self.read(move |c| tokens::of_org(c, org)).await
    }

    async fn idempotency_record(&self, token: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| tokens::idempotency_record(c, token, &key)).await
    }

    async fn service_actions(&self, org: OrgId) -> Result<Vec<ServiceActionLabel>, StoreError> {
        self.read(move |c| tokens::service_actions(c, org)).await
    }

    async fn import_service_action(&self, org: OrgId, action: &ServiceActionLabel) -> Result<(), StoreError> {
        let action = action.clone();
        self.write(move |c: &mut Connection| tokens::insert_service_action(c, org, &action).map_err(store_error)).await
    }

    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
        self.read(move |c| tokens::rows_of_org(c, org)).await
    }

    async fn import_api_token(&self, org: OrgId, t: &ApiToken, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let (t, h) = (t.clone(), *token_hash);
        self.write(move |c: &mut Connection| tokens::import(c, org, &t, &h).map_err(store_error)).await
    }
}
