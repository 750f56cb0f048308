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

mod accounts;

use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use logbook_core::{ApiTokenId, OrgId, OrgSlug, Timestamp};
use logbook_integrity::tree::{TileId, TileRow};
use logbook_store::{
    merge_newest_first, search_text_of, ApiToken, CommitBatch, CommitError, EventFilter, EventPage, EventRow,
    IdempotencyRecord, LogHead, LogLock, Mutation, MutationError, MutationOutput, Org, Store, StoreError,
    StoredCheckpoint, SHORT_NEEDLE_SCAN_ROWS, TRIGRAM_MIN_CHARS,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("accounts.sql"),
    include_str!("search.sql"),
    include_str!("throttle.sql"),
];

/// How many schema versions this build applies.
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// Advisory lock namespaces (first key of the two-key form).
const LOCK_MIGRATIONS: i32 = 0x4c42_0001;
const LOCK_LOG: i32 = 0x4c42_0002;
const LOCK_SEQUENCER: i32 = 0x4c42_0003;
const LOCK_SEARCH: i32 = 0x4c42_0004;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
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

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::DISK_FULL) {
        return StoreError::DiskFull;
    }
    if e.code() == Some(&SqlState::IO_ERROR) {
        return StoreError::Io(format!("PostgreSQL: {e}"));
    }
    // For the logs: the server's own message says what went wrong.
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

fn hash32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

impl PgStore {
    /// Connects, checks durability settings, and applies the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|_| {
            StoreError::Backend("the PostgreSQL URL is malformed (expected postgres://USER@HOST:PORT/DATABASE)".into())
        })?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(16).build().map_err(backend)?;
        let store = Self { pool, config, lock_conns: Arc::default() };
        store.check_durability().await?;
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))
    }

    async fn check_durability(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        for setting in ["fsync", "synchronous_commit"] {
            let v: String = c.query_one(&format!("SHOW {setting}"), &[]).await.map_err(pg)?.get(0);
            if v == "off" {
                return Err(StoreError::Backend(format!(
                    "PostgreSQL runs with {setting}=off: acknowledged events could be lost; turn it on"
                )));
            }
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        // Up to date already: nothing to lock or create (a role without CREATE can run Logbook).
        let exists: bool =
            c.query_one("SELECT to_regclass('logbook_migrations') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
        let current: Option<i32> = if exists {
            c.query_one("SELECT MAX(version) FROM logbook_migrations", &[]).await.map_err(pg)?.get(0)
        } else {
            None
        };
        if current == Some(MIGRATIONS.len() as i32) {
            return Ok(());
        }
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_MIGRATIONS]).await.map_err(pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS logbook_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg)?;
        let applied: i32 =
            tx.query_one("SELECT COALESCE(MAX(version), 0) FROM logbook_migrations", &[]).await.map_err(pg)?.get(0);
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
            tracing::info!(version = n + 1, "applying PostgreSQL migration");
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute("INSERT INTO logbook_migrations (version) VALUES ($1)", &[&((n + 1) as i32)])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }
}

fn org_row(r: &Row) -> Result<Org, StoreError> {
    let slug: String = r.get(1);
    Ok(Org {
        id: OrgId(r.get(0)),
        slug: OrgSlug::parse(&slug).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created: Timestamp::from_micros(r.get(2)),
    })
}

fn checkpoint_row(r: &Row) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: u(r.get(0)),
        root: hash32(r.get(1))?,
        note: r.get(2),
        signed_at: Timestamp::from_micros(r.get(3)),
    })
}

fn event_from_row(r: &Row) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: u(r.get(0)),
        time: Timestamp::from_micros(r.get(1)),
        action: r.get(2),
        user: r.get(3),
        leaf: r.get(4),
        leaf_hash: hash32(r.get(5))?,
    })
}

fn token_row(r: &Row) -> ApiToken {
    ApiToken {
        id: ApiTokenId(r.get(0)),
        org: OrgId(r.get(1)),
        name: r.get(2),
        created: Timestamp::from_micros(r.get(3)),
        revoked: r.get::<_, Option<i64>>(4).map(Timestamp::from_micros),
    }
}

async fn head(c: &impl deadpool_postgres::GenericClient, org: OrgId) -> Result<LogHead, StoreError> {
    let row = c
        .query_opt("SELECT seq, time_us FROM events WHERE org = $1 ORDER BY seq DESC LIMIT 1", &[&org.0])
        .await
        .map_err(pg)?;
    Ok(row
        .map(|r| LogHead { size: u(r.get(0)) + 1, last_time: Some(Timestamp::from_micros(r.get(1))) })
        .unwrap_or_default())
}

async fn search_indexed(c: &impl deadpool_postgres::GenericClient, org: OrgId) -> Result<u64, StoreError> {
    let row = c.query_opt("SELECT indexed FROM search_progress WHERE org = $1", &[&org.0]).await.map_err(pg)?;
    Ok(row.map(|r| u(r.get(0))).unwrap_or(0))
}

/// A page without text filter: one index walk per action, newest first, merged.
async fn plain_page(
    c: &impl deadpool_postgres::GenericClient,
    org: OrgId,
    filter: &EventFilter,
    before: u64,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let (lo, hi, lim) = (i(filter.seqs.start), i(filter.upper(before)), limit as i64);
    let mut pages = Vec::new();
    for action in filter.single_action_queries() {
        let sql = format!(
            "SELECT seq, time_us, action, \"user\", leaf, leaf_hash FROM events
             WHERE org = $1 AND seq >= $2 AND seq < $3{}{} ORDER BY seq DESC LIMIT $4",
            if filter.user.is_some() { " AND \"user\" = $5" } else { "" },
            match (filter.user.is_some(), action.is_some()) {
                (true, true) => " AND action = $6",
                (false, true) => " AND action = $5",
                _ => "",
            },
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&org.0, &lo, &hi, &lim];
        if let Some(u) = &filter.user {
            params.push(u);
        }
        if let Some(a) = &action {
            params.push(a);
        }
        let rows = c.query(&sql, &params).await.map_err(pg)?;
        pages.push(rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?);
    }
    Ok(merge_newest_first(pages, limit))
}

/// Rows decoded per step of the scan of the events the indexer has not reached yet.
const TAIL_CHUNK: usize = 1000;
/// The first window of seqs a trigram search looks in; each next one is twice as wide. Narrow
/// windows keep a common needle's first page cheap (PostgreSQL would otherwise collect every
/// match from the GIN index before sorting); widening keeps a rare needle's cost near one pass.
const FIRST_WINDOW: u64 = 16_384;
/// The largest window walked in seq order; beyond it, one query through the trigram index.
const LAST_WINDOW: u64 = 32_768;

/// `LIKE` pattern for a substring: the needle with its wildcards and escape character escaped.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// A page with a text filter: first the events above the indexer's progress, matched by decoding
/// them; then the indexed ones, from the trigram index in widening windows of seqs (or a bounded
/// scan for a needle too short to have a trigram).
async fn text_page(
    c: &impl deadpool_postgres::GenericClient,
    org: OrgId,
    filter: &EventFilter,
    needle: &str,
    before: u64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let indexed = search_indexed(c, org).await?;
    let lo = filter.seqs.start;
    let mut hi = filter.upper(before);
    let mut rows: Vec<EventRow> = Vec::new();
    let plain = filter.without_text();
    let tail_lo = lo.max(indexed);
    while hi > tail_lo && rows.len() < limit {
        let range = EventFilter { seqs: tail_lo..hi, ..plain.clone() };
        let chunk = plain_page(c, org, &range, hi, TAIL_CHUNK).await?;
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
    let mut hi = hi.min(tail_lo);
    let short = needle.chars().count() < TRIGRAM_MIN_CHARS;
    let floor = if short { lo.max(hi.saturating_sub(SHORT_NEEDLE_SCAN_ROWS)) } else { lo };
    let condition = if short { "strpos(s.text, $4) > 0" } else { "s.text LIKE $4" };
    let pattern = if short { needle.to_owned() } else { like_pattern(needle) };
    let mut rest = String::new();
    let mut extra: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(u) = &filter.user {
        extra.push(Box::new(u.clone()));
        rest.push_str(&format!(" AND e.\"user\" = ${}", 5 + extra.len() - 1));
    }
    if !filter.actions.is_empty() {
        extra.push(Box::new(filter.actions.clone()));
        rest.push_str(&format!(" AND e.action = ANY(${})", 5 + extra.len() - 1));
    }
    rest.push_str(&format!(" ORDER BY s.seq DESC LIMIT ${}", 5 + extra.len()));
    let columns = "e.seq, e.time_us, e.action, e.\"user\", e.leaf, e.leaf_hash";
    let sql = format!(
        "SELECT {columns} FROM event_search s JOIN events e ON e.org = s.org AND e.seq = s.seq
         WHERE s.org = $1 AND s.seq >= $2 AND s.seq < $3 AND {condition}{rest}"
    );
    // `OFFSET 0` keeps the planner from merging the subquery: the matches come from the trigram
    // index first, and only they are sorted.
    let rare = format!(
        "SELECT {columns} FROM (SELECT org, seq FROM event_search
           WHERE org = $1 AND seq >= $2 AND seq < $3 AND text LIKE $4 OFFSET 0) s
         JOIN events e ON e.org = s.org AND e.seq = s.seq WHERE true{rest}"
    );
    let stmt = c.prepare(&sql).await.map_err(pg)?;
    let mut window = FIRST_WINDOW;
    while hi > floor && rows.len() < limit {
        if !short && window > LAST_WINDOW {
            // A rare needle: walking the seq index backwards would read every row of the range.
            // Ask the trigram index once for all matches in what is left (few, for a rare
            // needle; a common one has filled the page in the small windows already).
            let want = (limit - rows.len()) as i64;
            let (a, b) = (i(floor), i(hi));
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&org.0, &a, &b, &pattern];
            params.extend(extra.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            params.push(&want);
            for r in &c.query(&rare, &params).await.map_err(pg)? {
                rows.push(event_from_row(r)?);
            }
            hi = floor;
            break;
        }
        let start = floor.max(hi.saturating_sub(window));
        let want = (limit - rows.len()) as i64;
        let (a, b) = (i(start), i(hi));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&org.0, &a, &b, &pattern];
        params.extend(extra.iter().map(|p| &**p as &(dyn ToSql + Sync)));
        params.push(&want);
        let found = c.query(&stmt, &params).await.map_err(pg)?;
        for r in &found {
            rows.push(event_from_row(r)?);
        }
        hi = start;
        window = window.saturating_mul(2);
    }
    let next_before = if rows.len() >= limit {
        rows.last().map(|r| r.seq)
    } else if hi > lo {
        Some(hi)
    } else {
        None
    };
    Ok(EventPage { rows, next_before })
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
        org_row(
            &c.query_one("SELECT id, slug, created_us FROM orgs WHERE slug = $1", &[&slug.as_str()])
                .await
                .map_err(pg)?,
        )
    }

    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        let c = self.client().await?;
        c.query_opt("SELECT id, slug, created_us FROM orgs WHERE slug = $1", &[&slug.as_str()])
            .await
            .map_err(pg)?
            .as_ref()
            .map(org_row)
            .transpose()
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
        head(&self.client().await?, org).await
    }

    async fn lock_log(&self, org: OrgId) -> Result<Box<dyn LogLock>, StoreError> {
        // Taken out of the map while locked: if this future is dropped halfway, the connection
        // is dropped with it, and with it any lock the server granted meanwhile.
        let idle = self.lock_conns.lock().await.remove(&org.0).filter(|c| !c.is_closed());
        let client = match idle {
            Some(c) => c,
            None => {
                let (c, conn) = self.config.connect(NoTls).await.map_err(pg)?;
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Serializes the appenders of this log across every process on the database.
        tx.execute("SELECT pg_advisory_xact_lock($1, $2::int)", &[&LOCK_LOG, &(org.0 as i32)]).await.map_err(pg)?;
        let h = head(&tx, org).await?;
        if h.size != batch.base_size {
            return Err(CommitError::HeadMoved { size: h.size });
        }
        let mut outputs = Vec::with_capacity(batch.mutations.len());
        for (index, m) in batch.mutations.iter().enumerate() {
            let refused = |reason| CommitError::Rejected { index, reason };
            let now = batch.now.as_micros();
            match &m.mutation {
                Mutation::CreateApiToken { name, token_hash } => {
                    match tx
                        .query_one(
                            "INSERT INTO api_tokens (org, name, token_hash, created_us) VALUES ($1, $2, $3, $4) RETURNING id",
                            &[&org.0, name, &&token_hash[..], &now],
                        )
                        .await
                    {
                        Ok(r) => outputs.push(MutationOutput::ApiTokenCreated(ApiTokenId(r.get(0)))),
                        Err(e) if is_unique_violation(&e) => return Err(refused(MutationError::NameTaken)),
                        Err(e) => return Err(pg(e).into()),
                    }
                }
                Mutation::RevokeApiToken { id } => {
                    let n = tx
                        .execute(
                            "UPDATE api_tokens SET revoked_us = $1 WHERE id = $2 AND org = $3 AND revoked_us IS NULL",
                            &[&now, &id.0, &org.0],
                        )
                        .await
                        .map_err(pg)?;
                    if n != 1 {
                        return Err(refused(MutationError::NotFound));
                    }
                    outputs.push(MutationOutput::Done);
                }
                Mutation::Account(a) => match accounts::apply(&tx, org, batch.now, a).await {
                    Ok(out) => outputs.push(out),
                    Err(Ok(reason)) => return Err(refused(reason)),
                    Err(Err(e)) => return Err(e.into()),
                },
                Mutation::RememberIdempotencyKey { token, key, request_hash } => {
                    match tx
                        .execute(
                            "INSERT INTO idempotency_keys (token, key, request_hash, first_seq, count, created_us) VALUES ($1, $2, $3, $4, $5, $6)",
                            &[&token.0, key, &&request_hash[..], &i(m.first_seq), &i(m.count), &now],
                        )
                        .await
                    {
                        Ok(_) => outputs.push(MutationOutput::Done),
                        Err(e) if is_unique_violation(&e) => return Err(refused(MutationError::IdempotencyKeyTaken)),
                        Err(e) => return Err(pg(e).into()),
                    }
                }
            }
        }
        insert_rows(&tx, org, &batch.events, &batch.tiles).await?;
        tx.commit().await.map_err(pg)?;
        Ok(outputs)
    }

    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT seq, time_us, action, \"user\", leaf, leaf_hash FROM events WHERE org = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                &[&org.0, &i(seqs.start), &i(seqs.end)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn query_events(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let c = self.client().await?;
        match filter.needle() {
            None => Ok(EventPage::complete(plain_page(&c, org, filter, before, limit).await?, limit)),
            Some(needle) => text_page(&c, org, filter, &needle, before, limit).await,
        }
    }

    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Indexers of several processes take turns; appends do not wait for them.
        tx.execute("SELECT pg_advisory_xact_lock($1, $2::int)", &[&LOCK_SEARCH, &(org.0 as i32)]).await.map_err(pg)?;
        let from = search_indexed(&tx, org).await?;
        let rows: Vec<EventRow> = tx
            .query(
                "SELECT seq, time_us, action, \"user\", leaf, leaf_hash FROM events WHERE org = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                &[&org.0, &i(from), &(max as i64)],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = rows.iter().map(|r| i(r.seq)).collect();
        let texts: Vec<String> = rows.iter().map(search_text_of).collect::<Result<_, _>>()?;
        tx.execute(
            "INSERT INTO event_search (org, seq, text) SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[])",
            &[&org.0, &seqs, &texts],
        )
        .await
        .map_err(pg)?;
        let n = rows.len() as u64;
        tx.execute(
            "INSERT INTO search_progress (org, indexed) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET indexed = excluded.indexed",
            &[&org.0, &i(from + n)],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(n)
    }

    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError> {
        search_indexed(&self.client().await?, org).await
    }

    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let size = head(&c, org).await?.size;
        let stmt = c
            .prepare("SELECT time_us FROM events WHERE org = $1 AND seq >= $2 ORDER BY seq LIMIT 1")
            .await
            .map_err(pg)?;
        let (mut lo, mut hi) = (0u64, size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let time: Option<i64> = c.query_opt(&stmt, &[&org.0, &i(mid)]).await.map_err(pg)?.map(|r| r.get(0));
            if time.is_none_or(|x| x >= t.as_micros()) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        // A loose index scan: one seek in (org, user, seq) per distinct user.
        let first = c
            .prepare("SELECT \"user\" FROM events WHERE org = $1 AND \"user\" >= $2 ORDER BY \"user\" LIMIT 1")
            .await
            .map_err(pg)?;
        let next = c
            .prepare("SELECT \"user\" FROM events WHERE org = $1 AND \"user\" > $2 ORDER BY \"user\" LIMIT 1")
            .await
            .map_err(pg)?;
        let mut out: Vec<String> = Vec::new();
        while out.len() < limit {
            let found = match out.last() {
                None => c.query_opt(&first, &[&org.0, &prefix]).await,
                Some(last) => c.query_opt(&next, &[&org.0, last]).await,
            }
            .map_err(pg)?
            .map(|r| r.get::<_, String>(0));
            match found {
                Some(u) if u.starts_with(prefix) => out.push(u),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        let by_tile = c
            .prepare("SELECT hashes FROM tiles WHERE org = $1 AND level = $2 AND idx = $3 AND width >= $4 ORDER BY width LIMIT 1")
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(tiles.len());
        for t in tiles {
            let stored = c
                .query_opt(&by_tile, &[&org.0, &i16::from(t.level), &i(t.index), &(t.width as i32)])
                .await
                .map_err(pg)?;
            match stored {
                Some(r) => out.push(r.get::<_, Vec<u8>>(0)),
                None if t.level == 0 => {
                    let start = t.index << 8;
                    let rows = c
                        .query(
                            "SELECT leaf_hash FROM events WHERE org = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                            &[&org.0, &i(start), &i(start + u64::from(t.width))],
                        )
                        .await
                        .map_err(pg)?;
                    if rows.len() != t.width as usize {
                        return Err(StoreError::Corrupt(format!("leaf hashes of tile 0/{} are missing", t.index)));
                    }
                    let mut data = Vec::with_capacity(rows.len() * 32);
                    for r in rows {
                        data.extend_from_slice(r.get::<_, &[u8]>(0));
                    }
                    out.push(data);
                }
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "tile {}/{} (width {}) is missing",
                        t.level, t.index, t.width
                    )))
                }
            }
        }
        Ok(out)
    }

    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT idx, width, hashes FROM tiles WHERE org = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx, width",
                &[&org.0, &i16::from(level), &i(indexes.start), &i(indexes.end)],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| TileRow {
                id: TileId { level, index: u(r.get(0)), width: r.get::<_, i32>(1) as u32 },
                hashes: r.get(2),
            })
            .collect())
    }

    async fn add_checkpoint(&self, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1, $2::int)", &[&LOCK_LOG, &(org.0 as i32)]).await.map_err(pg)?;
        let newest: Option<i64> =
            tx.query_one("SELECT MAX(size) FROM checkpoints WHERE org = $1", &[&org.0]).await.map_err(pg)?.get(0);
        if newest.is_some_and(|n| u(n) >= cp.size) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO checkpoints (org, size, root, note, signed_us) VALUES ($1, $2, $3, $4, $5)",
            &[&org.0, &i(cp.size), &&cp.root[..], &cp.note, &cp.signed_at.as_micros()],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let c = self.client().await?;
        c.query("SELECT size, root, note, signed_us FROM checkpoints WHERE org = $1 ORDER BY size", &[&org.0])
            .await
            .map_err(pg)?
            .iter()
            .map(checkpoint_row)
            .collect()
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        let c = self.client().await?;
        c.query_opt(
            "SELECT size, root, note, signed_us FROM checkpoints WHERE org = $1 ORDER BY size DESC LIMIT 1",
            &[&org.0],
        )
        .await
        .map_err(pg)?
        .as_ref()
        .map(checkpoint_row)
        .transpose()
    }

    async fn api_token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT id, org, name, created_us, revoked_us FROM api_tokens WHERE token_hash = $1",
            &[&&token_hash[..]],
        )
        .await
        .map_err(pg)?
        .as_ref()
        .map(token_row))
    }

    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT id, org, name, created_us, revoked_us FROM api_tokens WHERE org = $1 ORDER BY id",
            &[&org.0],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(token_row)
        .collect())
    }

    async fn idempotency_record(&self, token: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let c = self.client().await?;
        c.query_opt(
            "SELECT request_hash, first_seq, count FROM idempotency_keys WHERE token = $1 AND key = $2",
            &[&token.0, &key],
        )
        .await
        .map_err(pg)?
        .map(|r| Ok(IdempotencyRecord { request_hash: hash32(r.get(0))?, first_seq: u(r.get(1)), count: u(r.get(2)) }))
        .transpose()
    }

    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
        let c = self.client().await?;
        c.query(
            "SELECT id, org, name, created_us, revoked_us, token_hash FROM api_tokens WHERE org = $1 ORDER BY id",
            &[&org.0],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| Ok((token_row(r), hash32(r.get(5))?)))
        .collect()
    }

    async fn import_api_token(&self, org: OrgId, t: &ApiToken, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO api_tokens (org, name, token_hash, created_us, revoked_us) VALUES ($1, $2, $3, $4, $5)",
            &[&org.0, &t.name, &&token_hash[..], &t.created.as_micros(), &t.revoked.map(Timestamp::as_micros)],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }
}

/// One multi-row INSERT for the events and one for the tiles.
async fn insert_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrgId,
    events: &[EventRow],
    tiles: &[TileRow],
) -> Result<(), StoreError> {
    if !events.is_empty() {
        let seqs: Vec<i64> = events.iter().map(|e| i(e.seq)).collect();
        let times: Vec<i64> = events.iter().map(|e| e.time.as_micros()).collect();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        let users: Vec<&str> = events.iter().map(|e| e.user.as_str()).collect();
        let leaves: Vec<&[u8]> = events.iter().map(|e| e.leaf.as_slice()).collect();
        let hashes: Vec<&[u8]> = events.iter().map(|e| &e.leaf_hash[..]).collect();
        tx.execute(
            "INSERT INTO events (org, seq, time_us, action, \"user\", leaf, leaf_hash)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BYTEA[], $7::BYTEA[])",
            &[&org.0, &seqs, &times, &actions, &users, &leaves, &hashes],
        )
        .await
        .map_err(pg)?;
    }
    if !tiles.is_empty() {
        let levels: Vec<i16> = tiles.iter().map(|t| i16::from(t.id.level)).collect();
        let idxs: Vec<i64> = tiles.iter().map(|t| i(t.id.index)).collect();
        let widths: Vec<i32> = tiles.iter().map(|t| t.id.width as i32).collect();
        let data: Vec<&[u8]> = tiles.iter().map(|t| t.hashes.as_slice()).collect();
        tx.execute(
            "INSERT INTO tiles (org, level, idx, width, hashes)
             SELECT $1, * FROM UNNEST($2::SMALLINT[], $3::BIGINT[], $4::INTEGER[], $5::BYTEA[])",
            &[&org.0, &levels, &idxs, &widths, &data],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}
