//! The reads of the events (by range, by filter, by text) and the free-text index: an FTS5
//! trigram table whose rowid packs the organization and the seq.

use std::ops::Range;

use logbook_core::{OrgId, Timestamp};
use logbook_integrity::tree::TileId;
use logbook_store::reads::{LogReads, TextMatch, Walk};
use logbook_store::search::SearchIndexTx;
use logbook_store::{EventRow, LogHead, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::rows::{event_row, i, store_error, u, EVENT_COLUMNS};
use crate::{run, tiles, SqliteStore};

pub(crate) fn head(c: &Connection, org: OrgId) -> rusqlite::Result<LogHead> {
    c.query_row("SELECT seq, time_us FROM events WHERE org = ?1 ORDER BY seq DESC LIMIT 1", [org.0], |r| {
        Ok(LogHead { size: u(r.get(0)?) + 1, last_time: Some(Timestamp::from_micros(r.get(1)?)) })
    })
    .optional()
    .map(Option::unwrap_or_default)
}

pub(crate) fn indexed(c: &Connection, org: OrgId) -> rusqlite::Result<u64> {
    c.query_row("SELECT indexed FROM search_progress WHERE org = ?1", [org.0], |r| r.get::<_, i64>(0))
        .optional()
        .map(|n| n.map(u).unwrap_or(0))
}

/// The rowid of an event in `event_search`: seqs stay below 2^40 (a trillion events per log).
fn search_rowid(org: OrgId, seq: u64) -> i64 {
    (org.0 << 40) | i(seq)
}

fn events_in(c: &Connection, org: OrgId, seqs: Range<u64>, limit: Option<usize>) -> rusqlite::Result<Vec<EventRow>> {
    c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE org = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq LIMIT ?4"
    ))?
    .query_map(params![org.0, i(seqs.start), i(seqs.end), limit.map_or(-1, |l| l as i64)], event_row)?
    .collect()
}

pub(crate) async fn events(store: &SqliteStore, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
    store.read(move |c| events_in(c, org, seqs, None)).await
}

/// The reads of one organization's log on one connection.
pub(crate) struct Reader<'c> {
    pub(crate) c: &'c Connection,
    pub(crate) org: OrgId,
}

impl LogReads for Reader<'_> {
    async fn head(&self) -> Result<LogHead, StoreError> {
        head(self.c, self.org).map_err(store_error)
    }

    async fn time_at_or_after(&self, seq: u64) -> Result<Option<Timestamp>, StoreError> {
        self.c
            .prepare_cached("SELECT time_us FROM events WHERE org = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1")
            .and_then(|mut st| st.query_row(params![self.org.0, i(seq)], |r| r.get(0)).optional())
            .map(|t| t.map(Timestamp::from_micros))
            .map_err(store_error)
    }

    async fn user_from(&self, from: &str, inclusive: bool) -> Result<Option<String>, StoreError> {
        let op = if inclusive { ">=" } else { ">" };
        self.c
            .prepare_cached(&format!("SELECT user FROM events WHERE org = ?1 AND user {op} ?2 ORDER BY user LIMIT 1"))
            .and_then(|mut st| st.query_row(params![self.org.0, from], |r| r.get(0)).optional())
            .map_err(store_error)
    }

    async fn stored_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        tiles::stored(self.c, self.org, tile).map_err(store_error)
    }

    async fn leaf_hashes(&self, seqs: Range<u64>) -> Result<Vec<u8>, StoreError> {
        tiles::leaf_hashes(self.c, self.org, seqs).map_err(store_error)
    }

    async fn search_indexed(&self) -> Result<u64, StoreError> {
        indexed(self.c, self.org).map_err(store_error)
    }

    async fn walk(&self, w: &Walk<'_>) -> Result<Vec<EventRow>, StoreError> {
        let Walk { user, action, seqs, limit } = w;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE org = ?1 AND seq >= ?2 AND seq < ?3{}{} ORDER BY seq DESC LIMIT ?4",
            if user.is_some() { " AND user = ?5" } else { "" },
            if action.is_some() { " AND action = ?6" } else { "" },
        );
        let (lo, hi, limit) = (i(seqs.start), i(seqs.end), *limit as i64);
        let mut params: Vec<(&str, &dyn rusqlite::ToSql)> =
            vec![("?1", &self.org.0), ("?2", &lo), ("?3", &hi), ("?4", &limit)];
        if let Some(u) = &user {
            params.push(("?5", u));
        }
        if let Some(a) = &action {
            params.push(("?6", a));
        }
        self.c
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_map(params.as_slice(), event_row)?.collect())
            .map_err(store_error)
    }

    async fn index_matches(&self, m: &TextMatch<'_>) -> Result<Vec<EventRow>, StoreError> {
        let TextMatch { filter, needle, short, seqs, want } = m;
        let org = self.org;
        let mut sql = String::from(
            "SELECT e.seq, e.time_us, e.action, e.user, e.leaf, e.leaf_hash FROM event_search CROSS JOIN events e
             WHERE event_search.rowid >= ? AND event_search.rowid < ? AND e.org = ? AND e.seq = event_search.rowid - ?",
        );
        let mut args: Vec<Value> = vec![
            search_rowid(org, seqs.start).into(),
            search_rowid(org, seqs.end).into(),
            org.0.into(),
            (org.0 << 40).into(),
        ];
        if *short {
            sql.push_str(" AND instr(event_search.text, ?) > 0");
            args.push(needle.to_string().into());
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
        args.push((*want as i64).into());
        self.c
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_map(params_from_iter(args), event_row)?.collect())
            .map_err(store_error)
    }
}

/// The search indexer's transaction.
struct IndexTx<'c> {
    tx: &'c Connection,
    org: OrgId,
}

impl SearchIndexTx for IndexTx<'_> {
    async fn indexed(&self) -> Result<u64, StoreError> {
        indexed(self.tx, self.org).map_err(store_error)
    }

    async fn events_from(&self, seq: u64, max: usize) -> Result<Vec<EventRow>, StoreError> {
        events_in(self.tx, self.org, seq..u64::MAX, Some(max)).map_err(store_error)
    }

    async fn insert_texts(&self, texts: &[(u64, String)]) -> Result<(), StoreError> {
        let mut ins =
            self.tx.prepare_cached("INSERT INTO event_search (rowid, text) VALUES (?1, ?2)").map_err(store_error)?;
        for (seq, text) in texts {
            ins.execute(params![search_rowid(self.org, *seq), text]).map_err(store_error)?;
        }
        Ok(())
    }

    async fn set_indexed(&self, events: u64) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO search_progress (org, indexed) VALUES (?1, ?2) ON CONFLICT (org) DO UPDATE SET indexed = excluded.indexed",
                params![self.org.0, i(events)],
            )
            .map(drop)
            .map_err(store_error)
    }
}

/// One writer at a time (the writer connection, `BEGIN IMMEDIATE`): indexers never overlap.
pub(crate) async fn index_search_text(store: &SqliteStore, org: OrgId, max: usize) -> Result<u64, StoreError> {
    store.write_tx(move |tx| run(logbook_store::search::index_search_text(&IndexTx { tx, org }, max))).await
}
