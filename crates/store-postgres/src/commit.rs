//! The append transaction on PostgreSQL: a transaction holding the log's advisory lock, the
//! statements `logbook_store::commit` drives, `COMMIT`.

use deadpool_postgres::{GenericClient, Transaction};
use logbook_core::{ApiTokenId, OrgId, Timestamp};
use logbook_integrity::tree::TileRow;
use logbook_store::commit::{AppendTx, NewApiToken, NewIdempotencyKey};
use logbook_store::{CommitBatch, CommitError, EventRow, LogHead, MutationOutput, ServiceActionLabel, StoreError};

use crate::rows::{i, pg};
use crate::{locked_transaction, search, tokens, PgStore, LOCK_LOG};

/// An open append transaction of one organization's log.
pub(crate) struct PgTx<'a> {
    pub(crate) tx: &'a Transaction<'a>,
    pub(crate) org: OrgId,
}

pub(crate) async fn commit(
    store: &PgStore,
    org: OrgId,
    batch: &CommitBatch,
) -> Result<Vec<MutationOutput>, CommitError> {
    let mut c = store.client().await?;
    // Serializes the appenders of this log across every process on the database, and with them
    // the rules the mutations check (the last admin cannot be demoted twice at once).
    let tx = locked_transaction(&mut c, LOCK_LOG, org).await?;
    let outputs = logbook_store::commit::commit(&PgTx { tx: &tx, org }, batch).await?;
    tx.commit().await.map_err(pg)?;
    Ok(outputs)
}

/// One multi-row INSERT for the events and one for the tiles.
async fn insert_rows(
    tx: &Transaction<'_>,
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

impl AppendTx for PgTx<'_> {
    async fn head(&self) -> Result<LogHead, StoreError> {
        search::head(self.tx, self.org).await
    }

    async fn insert_rows(&self, events: &[EventRow], tiles: &[TileRow]) -> Result<(), StoreError> {
        insert_rows(self.tx, self.org, events, tiles).await
    }

    async fn insert_api_token(&self, token: &NewApiToken<'_>) -> Result<Option<ApiTokenId>, StoreError> {
        tokens::insert(self.tx, self.org, token).await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, now: Timestamp) -> Result<u64, StoreError> {
        tokens::revoke(self.tx, self.org, id, now).await
    }

    async fn insert_idempotency_key(&self, key: &NewIdempotencyKey<'_>) -> Result<bool, StoreError> {
        tokens::insert_idempotency_key(self.tx, key).await
    }

    async fn service_action_label(&self, code: &str) -> Result<Option<String>, StoreError> {
        tokens::service_action_label(self.tx, self.org, code).await
    }

    async fn insert_service_action(&self, action: &ServiceActionLabel) -> Result<(), StoreError> {
        tokens::insert_service_action(self.tx, self.org, action).await
    }
}
