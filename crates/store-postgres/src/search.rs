//! The reads of the events (by range, by filter, by text) and the free-text index: a table of
//! search texts with a `pg_trgm` GIN index.

use std::ops::Range;

use deadpool_postgres::GenericClient;
use logbook_core::{OrgId, Timestamp};
use logbook_integrity::tree::TileId;
use logbook_store::reads::{LogReads, TextMatch, Walk};
use logbook_store::search::SearchIndexTx;
use logbook_store::{EventRow, LogHead, StoreError};
use tokio_postgres::types::ToSql;

use crate::rows::{event_row, i, pg, u, EVENT_COLUMNS};
use crate::{locked_transaction, tiles, PgStore, LOCK_SEARCH};

/// The first window of seqs a trigram search looks in; each next one is twice as wide. Narrow
/// windows keep a common needle's first page cheap (PostgreSQL would otherwise collect every
/// match from the GIN index before sorting); widening keeps a rare needle's cost near one pass.
const FIRST_WINDOW: u64 = 16_384;
/// The largest window walked in seq order; beyond it, one query through the trigram index.
const LAST_WINDOW: u64 = 32_768;

pub(crate) async fn head(c: &impl GenericClient, org: OrgId) -> Result<LogHead, StoreError> {
    let row = c
        .query_opt("SELECT seq, time_us FROM events WHERE org = $1 ORDER BY seq DESC LIMIT 1", &[&org.0])
        .await
        .map_err(pg)?;
    Ok(row
        .map(|r| LogHead { size: u(r.get(0)) + 1, last_time: Some(Timestamp::from_micros(r.get(1))) })
        .unwrap_or_default())
}

pub(crate) async fn indexed(c: &impl GenericClient, org: OrgId) -> Result<u64, StoreError> {
    let row = c.query_opt("SELECT indexed FROM search_progress WHERE org = $1", &[&org.0]).await.map_err(pg)?;
    Ok(row.map(|r| u(r.get(0))).unwrap_or(0))
}

pub(crate) async fn events(
    c: &impl GenericClient,
    org: OrgId,
    seqs: Range<u64>,
    limit: Option<usize>,
) -> Result<Vec<EventRow>, StoreError> {
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE org = $1 AND seq >= $2 AND seq < $3 ORDER BY seq LIMIT $4");
    let limit = limit.map(|l| l as i64);
    let rows = c.query(&sql, &[&org.0, &i(seqs.start), &i(seqs.end), &limit]).await.map_err(pg)?;
    rows.iter().map(event_row).collect()
}

/// `LIKE` pattern for a substring: the needle with its wildcards and escape character escaped.
fn like_pattern(needle: &str) -> String {
    format!("%{}%", logbook_store::accounts::like_escape(needle))
}

/// The reads of one organization's log on one connection.
pub(crate) struct Reader<'c, C> {
    pub(crate) c: &'c C,
    pub(crate) org: OrgId,
}

impl<C: GenericClient> LogReads for Reader<'_, C> {
    async fn head(&self) -> Result<LogHead, StoreError> {
        head(self.c, self.org).await
    }

    async fn time_at_or_after(&self, seq: u64) -> Result<Option<Timestamp>, StoreError> {
        let stmt = self
            .c
            .prepare_cached("SELECT time_us FROM events WHERE org = $1 AND seq >= $2 ORDER BY seq LIMIT 1")
            .await
            .map_err(pg)?;
        let row = self.c.query_opt(&stmt, &[&self.org.0, &i(seq)]).await.map_err(pg)?;
        Ok(row.map(|r| Timestamp::from_micros(r.get(0))))
    }

    async fn user_from(&self, from: &str, inclusive: bool) -> Result<Option<String>, StoreError> {
        let op = if inclusive { ">=" } else { ">" };
        let sql = format!("SELECT \"user\" FROM events WHERE org = $1 AND \"user\" {op} $2 ORDER BY \"user\" LIMIT 1");
        let stmt = self.c.prepare_cached(&sql).await.map_err(pg)?;
        Ok(self.c.query_opt(&stmt, &[&self.org.0, &from]).await.map_err(pg)?.map(|r| r.get(0)))
    }

    async fn stored_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        tiles::stored(self.c, self.org, tile).await
    }

    async fn leaf_hashes(&self, seqs: Range<u64>) -> Result<Vec<u8>, StoreError> {
        tiles::leaf_hashes(self.c, self.org, seqs).await
    }

    async fn search_indexed(&self) -> Result<u64, StoreError> {
        indexed(self.c, self.org).await
    }

    async fn walk(&self, w: &Walk<'_>) -> Result<Vec<EventRow>, StoreError> {
        let Walk { user, action, seqs, limit } = w;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE org = $1 AND seq >= $2 AND seq < $3{}{} ORDER BY seq DESC LIMIT $4",
            if user.is_some() { " AND \"user\" = $5" } else { "" },
            match (user.is_some(), action.is_some()) {
                (true, true) => " AND action = $6",
                (false, true) => " AND action = $5",
                _ => "",
            },
        );
        let (lo, hi, lim) = (i(seqs.start), i(seqs.end), *limit as i64);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.org.0, &lo, &hi, &lim];
        if let Some(u) = &user {
            params.push(u);
        }
        if let Some(a) = &action {
            params.push(a);
        }
        let rows = self.c.query(&sql, &params).await.map_err(pg)?;
        rows.iter().map(event_row).collect()
    }

    /// Walks `seqs` down in widening windows; once they are wide, asks the trigram index once
    /// for what is left.
    async fn index_matches(&self, m: &TextMatch<'_>) -> Result<Vec<EventRow>, StoreError> {
        let TextMatch { filter, needle, short, ref seqs, want } = *m;
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
        let windowed = format!(
            "SELECT {columns} FROM event_search s JOIN events e ON e.org = s.org AND e.seq = s.seq
             WHERE s.org = $1 AND s.seq >= $2 AND s.seq < $3 AND {condition}{rest}"
        );
        // `OFFSET 0` keeps the planner from merging the subquery: the matches come from the
        // trigram index first, and only they are sorted.
        let rare = format!(
            "SELECT {columns} FROM (SELECT org, seq FROM event_search
               WHERE org = $1 AND seq >= $2 AND seq < $3 AND text LIKE $4 OFFSET 0) s
             JOIN events e ON e.org = s.org AND e.seq = s.seq WHERE true{rest}"
        );
        let stmt = self.c.prepare_cached(&windowed).await.map_err(pg)?;
        let (floor, mut hi) = (seqs.start, seqs.end);
        let mut rows: Vec<EventRow> = Vec::new();
        let mut window = FIRST_WINDOW;
        while hi > floor && rows.len() < want {
            let wide = !short && window > LAST_WINDOW;
            // A rare needle: walking the seq index backwards would read every row of the
            // range. Ask the trigram index once for all matches in what is left (few, for a
            // rare needle; a common one has filled the page in the small windows already).
            let start = if wide { floor } else { floor.max(hi.saturating_sub(window)) };
            let n = (want - rows.len()) as i64;
            let (a, b) = (i(start), i(hi));
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.org.0, &a, &b, &pattern];
            params.extend(extra.iter().map(|p| &**p as &(dyn ToSql + Sync)));
            params.push(&n);
            let found = if wide { self.c.query(&rare, &params).await } else { self.c.query(&stmt, &params).await };
            for r in &found.map_err(pg)? {
                rows.push(event_row(r)?);
            }
            hi = start;
            window = window.saturating_mul(2);
        }
        Ok(rows)
    }
}

/// The search indexer's transaction.
struct IndexTx<'a, C> {
    tx: &'a C,
    org: OrgId,
}

impl<C: GenericClient> SearchIndexTx for IndexTx<'_, C> {
    async fn indexed(&self) -> Result<u64, StoreError> {
        indexed(self.tx, self.org).await
    }

    async fn events_from(&self, seq: u64, max: usize) -> Result<Vec<EventRow>, StoreError> {
        events(self.tx, self.org, seq..u64::MAX, Some(max)).await
    }

    async fn insert_texts(&self, texts: &[(u64, String)]) -> Result<(), StoreError> {
        let seqs: Vec<i64> = texts.iter().map(|(s, _)| i(*s)).collect();
        let texts: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        self.tx
            .execute(
                "INSERT INTO event_search (org, seq, text) SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[])",
                &[&self.org.0, &seqs, &texts],
            )
            .await
            .map_err(pg)
            .map(drop)
    }

    async fn set_indexed(&self, events: u64) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO search_progress (org, indexed) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET indexed = excluded.indexed",
                &[&self.org.0, &i(events)],
            )
            .await
            .map_err(pg)
            .map(drop)
    }
}

pub(crate) async fn index_search_text(store: &PgStore, org: OrgId, max: usize) -> Result<u64, StoreError> {
    let mut c = store.client().await?;
    // Indexers of several processes take turns; appends do not wait for them.
    let tx = locked_transaction(&mut c, LOCK_SEARCH, org).await?;
    let n = logbook_store::search::index_search_text(&IndexTx { tx: &tx, org }, max).await?;
    tx.commit().await.map_err(pg)?;
    Ok(n)
}
