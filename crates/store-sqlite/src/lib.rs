//! The embedded default store: one SQLite file in the data directory.
//!
//! One writer connection (SQLite has one writer anyway) behind a mutex, used from blocking
//! threads; a small pool of read-only connections for queries, which WAL lets run beside the
//! writer. Every commit is `BEGIN IMMEDIATE … COMMIT` with `synchronous=FULL`, so it is on disk
//! before `commit` returns.

mod accounts;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use logbook_core::{ApiTokenId, OrgId, OrgSlug, Timestamp};
use logbook_integrity::tree::{TileId, TileRow};
use logbook_store::{
    merge_newest_first, search_text_of, ApiToken, CommitBatch, CommitError, EventFilter, EventPage, EventRow,
    IdempotencyRecord, LogHead, Mutation, MutationError, MutationOutput, Org, Store, StoreError, StoredCheckpoint,
    SHORT_NEEDLE_SCAN_ROWS, TRIGRAM_MIN_CHARS,
};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

/// The schema, in order. `PRAGMA user_version` records how many are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("accounts.sql"),
    include_str!("search.sql"),
    include_str!("throttle.sql"),
];

/// The name of the database file inside the data directory.
pub const FILE_NAME: &str = "logbook.db";

#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::DiskFull {
            return StoreError::DiskFull;
        }
        if f.code == ErrorCode::SystemIoFailure {
            return StoreError::Io(e.to_string());
        }
    }
    StoreError::Backend(e.to_string())
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// Applies the pragmas every connection needs. `synchronous=FULL` makes a commit durable.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Creates or upgrades the schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tracing::info!(version = i + 1, "applying SQLite migration");
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
    tx.commit()
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn hash32(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into().map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, 32))
}

impl SqliteStore {
    /// Opens (creating if needed) `logbook.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_file(&data_dir.join(FILE_NAME)).await
    }

    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
            }
            let mut conn = Connection::open(&path).map_err(backend)?;
            configure(&conn).map_err(backend)?;
            migrate(&mut conn).map_err(backend)?;
            Ok(Self { path, writer: Arc::new(Mutex::new(conn)), readers: Arc::new(Mutex::new(Vec::new())) })
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read_with(move |c| f(c).map_err(backend)).await
    }

    async fn read_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                    )
                    .map_err(backend)?;
                    c.busy_timeout(std::time::Duration::from_secs(10)).map_err(backend)?;
                    c
                }
            };
            let out = f(&conn);
            let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn write<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Backend(e.to_string())))?
    }
}

fn head(conn: &Connection, org: OrgId) -> rusqlite::Result<LogHead> {
    conn.query_row("SELECT seq, time_us FROM events WHERE org = ?1 ORDER BY seq DESC LIMIT 1", [org.0], |r| {
        Ok(LogHead { size: u(r.get(0)?) + 1, last_time: Some(Timestamp::from_micros(r.get(1)?)) })
    })
    .optional()
    .map(Option::unwrap_or_default)
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    org: OrgId,
    now: Timestamp,
    m: &logbook_store::MutationEntry,
) -> Result<MutationOutput, Result<MutationError, rusqlite::Error>> {
    match &m.mutation {
        Mutation::CreateApiToken { name, token_hash } => {
            match tx.execute(
                "INSERT INTO api_tokens (org, name, token_hash, created_us) VALUES (?1, ?2, ?3, ?4)",
                params![org.0, name, &token_hash[..], now.as_micros()],
            ) {
                Ok(_) => Ok(MutationOutput::ApiTokenCreated(ApiTokenId(tx.last_insert_rowid()))),
                Err(e) if is_constraint(&e) => Err(Ok(MutationError::NameTaken)),
                Err(e) => Err(Err(e)),
            }
        }
        Mutation::RevokeApiToken { id } => {
            let n = tx
                .execute(
                    "UPDATE api_tokens SET revoked_us = ?1 WHERE id = ?2 AND org = ?3 AND revoked_us IS NULL",
                    params![now.as_micros(), id.0, org.0],
                )
                .map_err(Err)?;
            if n == 1 {
                Ok(MutationOutput::Done)
            } else {
                Err(Ok(MutationError::NotFound))
            }
        }
        Mutation::Account(a) => accounts::apply(tx, org, now, a),
        Mutation::RememberIdempotencyKey { token, key, request_hash } => {
            match tx.execute(
                "INSERT INTO idempotency_keys (token, key, request_hash, first_seq, count, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token.0, key, &request_hash[..], i(m.first_seq), i(m.count), now.as_micros()],
            ) {
                Ok(_) => Ok(MutationOutput::Done),
                Err(e) if is_constraint(&e) => Err(Ok(MutationError::IdempotencyKeyTaken)),
                Err(e) => Err(Err(e)),
            }
        }
    }
}

/// Inserts events and tiles with cached statements. Shared with the benchmark's bare loop
/// baseline so both insert exactly the same rows.
pub fn insert_rows(tx: &Connection, org: OrgId, events: &[EventRow], tiles: &[TileRow]) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO events (org, seq, time_us, action, user, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in events {
        ins.execute(params![org.0, i(e.seq), e.time.as_micros(), e.action, e.user, e.leaf, &e.leaf_hash[..]])?;
    }
    let mut ins =
        tx.prepare_cached("INSERT INTO tiles (org, level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for t in tiles {
        ins.execute(params![org.0, t.id.level, i(t.id.index), t.id.width, t.hashes])?;
    }
    Ok(())
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: u(r.get(0)?),
        time: Timestamp::from_micros(r.get(1)?),
        action: r.get(2)?,
        user: r.get(3)?,
        leaf: r.get(4)?,
        leaf_hash: hash32(r.get(5)?)?,
    })
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: u(r.get(0)?),
        root: hash32(r.get(1)?)?,
        note: r.get(2)?,
        signed_at: Timestamp::from_micros(r.get(3)?),
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: ApiTokenId(r.get(0)?),
        org: OrgId(r.get(1)?),
        name: r.get(2)?,
        created: Timestamp::from_micros(r.get(3)?),
        revoked: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
    })
}

fn org_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Org> {
    let slug: String = r.get(1)?;
    Ok(Org {
        id: OrgId(r.get(0)?),
        slug: OrgSlug::parse(&slug)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?,
        created: Timestamp::from_micros(r.get(2)?),
    })
}

/// The rowid of an event in `event_search`: seqs stay below 2^40 (a trillion events per log).
fn search_rowid(org: OrgId, seq: u64) -> i64 {
    (org.0 << 40) | i(seq)
}

fn search_indexed(c: &Connection, org: OrgId) -> rusqlite::Result<u64> {
    c.query_row("SELECT indexed FROM search_progress WHERE org = ?1", [org.0], |r| r.get::<_, i64>(0))
        .optional()
        .map(|n| n.map(u).unwrap_or(0))
}

/// A page without text filter: one index walk per action, newest first, merged.
fn plain_page(
    c: &Connection,
    org: OrgId,
    filter: &EventFilter,
    before: u64,
    limit: usize,
) -> rusqlite::Result<Vec<EventRow>> {
    let (lo, hi) = (i(filter.seqs.start), i(filter.upper(before)));
    let mut pages = Vec::new();
    for action in filter.single_action_queries() {
        let sql = format!(
            "SELECT seq, time_us, action, user, leaf, leaf_hash FROM events
             WHERE org = ?1 AND seq >= ?2 AND seq < ?3{}{} ORDER BY seq DESC LIMIT ?4",
            if filter.user.is_some() { " AND user = ?5" } else { "" },
            if action.is_some() { " AND action = ?6" } else { "" },
        );
        let mut stmt = c.prepare_cached(&sql)?;
        let mut params: Vec<(&str, &dyn rusqlite::ToSql)> = Vec::new();
        let limit = limit as i64;
        params.push(("?1", &org.0));
        params.push(("?2", &lo));
        params.push(("?3", &hi));
        params.push(("?4", &limit));
        if let Some(u) = &filter.user {
            params.push(("?5", u));
        }
        if let Some(a) = &action {
            params.push(("?6", a));
        }
        let rows: rusqlite::Result<Vec<EventRow>> = stmt.query_map(params.as_slice(), event_row)?.collect();
        pages.push(rows?);
    }
    Ok(merge_newest_first(pages, limit))
}

/// Rows decoded per step of the scan of the events the indexer has not reached yet.
const TAIL_CHUNK: usize = 1000;

/// A page with a text filter: first the events above the indexer's progress, matched by decoding
/// them; then the indexed ones, from the trigram index (or a bounded scan for a short needle).
fn text_page(
    c: &Connection,
    org: OrgId,
    filter: &EventFilter,
    needle: &str,
    before: u64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let indexed = search_indexed(c, org).map_err(backend)?;
    let lo = filter.seqs.start;
    let mut hi = filter.upper(before);
    let mut rows: Vec<EventRow> = Vec::new();
    let plain = filter.without_text();
    let tail_lo = lo.max(indexed);
    while hi > tail_lo && rows.len() < limit {
        let range = EventFilter { seqs: tail_lo..hi, ..plain.clone() };
        let chunk = plain_page(c, org, &range, hi, TAIL_CHUNK).map_err(backend)?;
        let Some(last) = chunk.last().map(|r| r.seq) else { break };
        for r in chunk {
            if rows.len() == limit {
                return Ok(EventPage::complete(rows, limit));
            }
            if search_text_of(&r)?.contains(needle) {
                rows.push(r);
            }
        }
        hi = last;
    }
    if rows.len() == limit {
        return Ok(EventPage::complete(rows, limit));
    }
    let hi = hi.min(tail_lo);
    if hi <= lo {
        return Ok(EventPage { rows, next_before: None });
    }
    let short = needle.chars().count() < TRIGRAM_MIN_CHARS;
    // A short needle has no trigram: scan at most SHORT_NEEDLE_SCAN_ROWS seqs, then resume there.
    let scan_lo = if short { lo.max(hi.saturating_sub(SHORT_NEEDLE_SCAN_ROWS)) } else { lo };
    let mut sql = String::from(
        "SELECT e.seq, e.time_us, e.action, e.user, e.leaf, e.leaf_hash FROM event_search CROSS JOIN events e
         WHERE event_search.rowid >= ? AND event_search.rowid < ? AND e.org = ? AND e.seq = event_search.rowid - ?",
    );
    let mut args: Vec<Value> =
        vec![search_rowid(org, scan_lo).into(), search_rowid(org, hi).into(), org.0.into(), (org.0 << 40).into()];
    if short {
        sql.push_str(" AND instr(event_search.text, ?) > 0");
        args.push(needle.to_owned().into());
    } else {
        // An FTS5 string is a phrase of the needle's trigrams: a substring match, no wildcards.
        sql.push_str(" AND event_search MATCH ?");
        args.push(format!("\"{}\"", needle.replace('"', "\"\"")).into());
    }
    if let Some(u) = &filter.user {
        sql.push_str(" AND e.user = ?");
        args.push(u.clone().into());
    }
    if !filter.actions.is_empty() {
        sql.push_str(&format!(" AND e.action IN ({})", vec!["?"; filter.actions.len()].join(", ")));
        args.extend(filter.actions.iter().map(|a| Value::from(a.clone())));
    }
    sql.push_str(" ORDER BY event_search.rowid DESC LIMIT ?");
    let want = limit - rows.len();
    args.push((want as i64).into());
    let found: Vec<EventRow> = c
        .prepare_cached(&sql)
        .and_then(|mut st| st.query_map(params_from_iter(args), event_row)?.collect())
        .map_err(backend)?;
    let full = found.len() == want;
    rows.extend(found);
    let next_before = if full {
        rows.last().map(|r| r.seq)
    } else if scan_lo > lo {
        Some(scan_lo)
    } else {
        None
    };
    Ok(EventPage { rows, next_before })
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
            .map_err(backend)?;
            c.query_row("SELECT id, slug, created_us FROM orgs WHERE slug = ?1", [slug.as_str()], org_row)
                .map_err(backend)
        })
        .await
    }

    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        let slug = slug.clone();
        self.read(move |c| {
            c.query_row("SELECT id, slug, created_us FROM orgs WHERE slug = ?1", [slug.as_str()], org_row).optional()
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|c| c.prepare("SELECT id, slug, created_us FROM orgs ORDER BY id")?.query_map([], org_row)?.collect())
            .await
    }

    async fn log_head(&self, org: OrgId) -> Result<LogHead, StoreError> {
        self.read(move |c| head(c, org)).await
    }

    /// One writer connection per process, and `BEGIN IMMEDIATE` across processes, already
    /// serialize commits; a second process (the CLI beside `serve`) gets `HeadMoved` and retries.
    async fn lock_log(&self, _org: OrgId) -> Result<Box<dyn logbook_store::LogLock>, StoreError> {
        Ok(Box::new(logbook_store::NoLock))
    }

    async fn commit(&self, org: OrgId, batch: CommitBatch) -> Result<Vec<MutationOutput>, CommitError> {
        self.write(move |conn: &mut Connection| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let h = head(&tx, org).map_err(backend)?;
            if h.size != batch.base_size {
                return Err(CommitError::HeadMoved { size: h.size });
            }
            let mut outputs = Vec::with_capacity(batch.mutations.len());
            for (index, m) in batch.mutations.iter().enumerate() {
                match apply(&tx, org, batch.now, m) {
                    Ok(out) => outputs.push(out),
                    Err(Ok(reason)) => return Err(CommitError::Rejected { index, reason }),
                    Err(Err(e)) => return Err(backend(e).into()),
                }
            }
            insert_rows(&tx, org, &batch.events, &batch.tiles).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(outputs)
        })
        .await
    }

    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT seq, time_us, action, user, leaf, leaf_hash FROM events WHERE org = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
            )?
            .query_map(params![org.0, i(seqs.start), i(seqs.end)], event_row)?
            .collect()
        })
        .await
    }

    async fn query_events(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let filter = filter.clone();
        self.read_with(move |c| match filter.needle() {
            None => Ok(EventPage::complete(plain_page(c, org, &filter, before, limit).map_err(backend)?, limit)),
            Some(needle) => text_page(c, org, &filter, &needle, before, limit),
        })
        .await
    }

    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError> {
        self.write(move |c: &mut Connection| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let from = search_indexed(&tx, org).map_err(backend)?;
            let rows: Vec<EventRow> = tx
                .prepare_cached(
                    "SELECT seq, time_us, action, user, leaf, leaf_hash FROM events WHERE org = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                )
                .and_then(|mut st| st.query_map(params![org.0, i(from), max as i64], event_row)?.collect())
                .map_err(backend)?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT INTO event_search (rowid, text) VALUES (?1, ?2)").map_err(backend)?;
                for r in &rows {
                    ins.execute(params![search_rowid(org, r.seq), search_text_of(r)?]).map_err(backend)?;
                }
            }
            let n = rows.len() as u64;
            tx.execute(
                "INSERT INTO search_progress (org, indexed) VALUES (?1, ?2) ON CONFLICT (org) DO UPDATE SET indexed = excluded.indexed",
                params![org.0, i(from + n)],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n)
        })
        .await
    }

    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError> {
        self.read(move |c| search_indexed(c, org)).await
    }

    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError> {
        self.read(move |c| {
            let size = head(c, org)?.size;
            let mut stmt =
                c.prepare_cached("SELECT time_us FROM events WHERE org = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1")?;
            let (mut lo, mut hi) = (0u64, size);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let time: Option<i64> = stmt.query_row(params![org.0, i(mid)], |r| r.get(0)).optional()?;
                if time.is_none_or(|x| x >= t.as_micros()) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            Ok(lo)
        })
        .await
    }

    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |c| {
            // A loose index scan: one seek in (org, user, seq) per distinct user.
            let mut first =
                c.prepare_cached("SELECT user FROM events WHERE org = ?1 AND user >= ?2 ORDER BY user LIMIT 1")?;
            let mut next =
                c.prepare_cached("SELECT user FROM events WHERE org = ?1 AND user > ?2 ORDER BY user LIMIT 1")?;
            let mut out: Vec<String> = Vec::new();
            while out.len() < limit {
                let found: Option<String> = match out.last() {
                    None => first.query_row(params![org.0, prefix], |r| r.get(0)).optional()?,
                    Some(last) => next.query_row(params![org.0, last], |r| r.get(0)).optional()?,
                };
                match found {
                    Some(u) if u.starts_with(&prefix) => out.push(u),
                    _ => break,
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let tiles = tiles.to_vec();
        let out = self
            .read(move |c| {
                let mut by_tile = c.prepare_cached(
                    "SELECT hashes FROM tiles WHERE org = ?1 AND level = ?2 AND idx = ?3 AND width >= ?4 ORDER BY width LIMIT 1",
                )?;
                let mut leaves = c.prepare_cached("SELECT leaf_hash FROM events WHERE org = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq")?;
                let mut out = Vec::with_capacity(tiles.len());
                for t in &tiles {
                    let stored: Option<Vec<u8>> =
                        by_tile.query_row(params![org.0, t.level, i(t.index), t.width], |r| r.get(0)).optional()?;
                    match stored {
                        Some(d) => out.push(Ok(d)),
                        None if t.level == 0 => {
                            let start = t.index << 8;
                            let mut data = Vec::with_capacity(t.width as usize * 32);
                            let mut rows = leaves.query(params![org.0, i(start), i(start + u64::from(t.width))])?;
                            while let Some(r) = rows.next()? {
                                data.extend_from_slice(r.get_ref(0)?.as_blob()?);
                            }
                            if data.len() == t.width as usize * 32 {
                                out.push(Ok(data));
                            } else {
                                out.push(Err(format!("leaf hashes of tile 0/{} are missing", t.index)));
                            }
                        }
                        None => out.push(Err(format!("tile {}/{} (width {}) is missing", t.level, t.index, t.width))),
                    }
                }
                Ok(out)
            })
            .await?;
        out.into_iter().map(|r| r.map_err(StoreError::Corrupt)).collect()
    }

    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT idx, width, hashes FROM tiles WHERE org = ?1 AND level = ?2 AND idx >= ?3 AND idx < ?4 ORDER BY idx, width",
            )?
            .query_map(params![org.0, level, i(indexes.start), i(indexes.end)], |r| {
                Ok(TileRow { id: TileId { level, index: u(r.get(0)?), width: r.get(1)? }, hashes: r.get(2)? })
            })?
            .collect()
        })
        .await
    }

    async fn add_checkpoint(&self, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
        let cp = cp.clone();
        self.write(move |c: &mut Connection| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let newest: Option<i64> = tx
                .query_row("SELECT MAX(size) FROM checkpoints WHERE org = ?1", [org.0], |r| r.get(0))
                .map_err(backend)?;
            if newest.is_some_and(|n| u(n) >= cp.size) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO checkpoints (org, size, root, note, signed_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org.0, i(cp.size), &cp.root[..], cp.note, cp.signed_at.as_micros()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.read(move |c| {
            c.prepare_cached("SELECT size, root, note, signed_us FROM checkpoints WHERE org = ?1 ORDER BY size")?
                .query_map([org.0], checkpoint_row)?
                .collect()
        })
        .await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(move |c| {
            c.query_row(
                "SELECT size, root, note, signed_us FROM checkpoints WHERE org = ?1 ORDER BY size DESC LIMIT 1",
                [org.0],
                checkpoint_row,
            )
            .optional()
        })
        .await
    }

    async fn api_token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        let h = *token_hash;
        self.read(move |c| {
            c.query_row(
                "SELECT id, org, name, created_us, revoked_us FROM api_tokens WHERE token_hash = ?1",
                [&h[..]],
                token_row,
            )
            .optional()
        })
        .await
    }

    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
        self.read(move |c| {
            c.prepare("SELECT id, org, name, created_us, revoked_us FROM api_tokens WHERE org = ?1 ORDER BY id")?
                .query_map([org.0], token_row)?
                .collect()
        })
        .await
    }

    async fn idempotency_record(&self, token: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT request_hash, first_seq, count FROM idempotency_keys WHERE token = ?1 AND key = ?2",
                params![token.0, key],
                |r| {
                    Ok(IdempotencyRecord {
                        request_hash: hash32(r.get(0)?)?,
                        first_seq: u(r.get(1)?),
                        count: u(r.get(2)?),
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
        self.read(move |c| {
            c.prepare(
                "SELECT id, org, name, created_us, revoked_us, token_hash FROM api_tokens WHERE org = ?1 ORDER BY id",
            )?
            .query_map([org.0], |r| Ok((token_row(r)?, hash32(r.get(5)?)?)))?
            .collect()
        })
        .await
    }

    async fn import_api_token(&self, org: OrgId, t: &ApiToken, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let (t, h) = (t.clone(), *token_hash);
        self.write(move |c: &mut Connection| {
            c.execute(
                "INSERT INTO api_tokens (org, name, token_hash, created_us, revoked_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org.0, t.name, &h[..], t.created.as_micros(), t.revoked.map(Timestamp::as_micros)],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }
}
