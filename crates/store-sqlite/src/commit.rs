//! The append transaction on SQLite: `BEGIN IMMEDIATE` on the writer connection, the statements
//! `logbook_store::commit` drives, `COMMIT`.

use logbook_core::{ApiTokenId, OrgId, Timestamp};
use logbook_integrity::tree::TileRow;
use logbook_store::commit::{AppendTx, NewApiToken, NewIdempotencyKey};
use logbook_store::{CommitBatch, CommitError, EventRow, LogHead, MutationOutput, ServiceActionLabel, StoreError};
use rusqlite::{params, Connection};

use crate::rows::{i, store_error};
use crate::{run, search, tokens, SqliteStore};

/// An open append transaction of one organization's log.
pub(crate) struct SqliteTx<'c> {
    pub(crate) tx: &'c Connection,
    pub(crate) org: OrgId,
}

pub(crate) async fn commit(
    store: &SqliteStore,
    org: OrgId,
    batch: CommitBatch,
) -> Result<Vec<MutationOutput>, CommitError> {
    store.write_tx(move |tx| run(logbook_store::commit::commit(&SqliteTx { tx, org }, &batch))).await
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

impl AppendTx for SqliteTx<'_> {
    async fn head(&self) -> Result<LogHead, StoreError> {
        search::head(self.tx, self.org).map_err(store_error)
    }

    async fn insert_rows(&self, events: &[EventRow], tiles: &[TileRow]) -> Result<(), StoreError> {
        insert_rows(self.tx, self.org, events, tiles).map_err(store_error)
    }

    async fn insert_api_token(&self, token: &NewApiToken<'_>) -> Result<Option<ApiTokenId>, StoreError> {
        tokens::insert(self.tx, self.org, token)
    }

    async fn revoke_api_token(&self, id: ApiTokenId, now: Timestamp) -> Result<u64, StoreError> {
        tokens::revoke(self.tx, self.org, id, now)
    }

    async fn insert_idempotency_key(&self, key: &NewIdempotencyKey<'_>) -> Result<bool, StoreError> {
        tokens::insert_idempotency_key(self.tx, key)
    }

    async fn service_action_label(&self, code: &str) -> Result<Option<String>, StoreError> {
        tokens::service_action_label(self.tx, self.org, code)
    }

    async fn insert_service_action(&self, action: &ServiceActionLabel) -> Result<(), StoreError> {
        tokens::insert_service_action(self.tx, self.org, action).map_err(store_error)
    }
}
