//! The append transaction, written once for every backend.
//!
//! A backend opens the transaction (and takes whatever lock its database needs), hands its
//! statements to [`commit`] as an [`AppendTx`], and commits when it returns `Ok`. The order of
//! the steps and every rule a mutation must keep live here, so each backend holds only SQL.

use logbook_core::{ActionGrant, ApiTokenId, Timestamp};
use logbook_integrity::tree::TileRow;

use crate::accounts::{apply_account, AccountTx};
use crate::{
    ApplyError, CommitBatch, CommitError, EventRow, IdempotencyKey, IdempotencyRecord, LogHead, Mutation,
    MutationEntry, MutationError, MutationOutput, ServiceActionLabel, StoreError,
};

/// The statements of one backend inside an open append transaction of one organization's log.
/// Counts are rows changed; `false` or `None` from an insert means a uniqueness constraint
/// refused the row.
// The futures are not declared `Send`: SQLite's transaction cannot leave its thread, and its
// implementation runs on a blocking thread; PostgreSQL's are `Send` where it uses them.
#[allow(async_fn_in_trait)]
pub trait AppendTx: AccountTx {
    /// The log's head as the transaction sees it.
    async fn head(&self) -> Result<LogHead, StoreError>;
    async fn insert_rows(&self, events: &[EventRow], tiles: &[TileRow]) -> Result<(), StoreError>;

    /// `None` when the organization already has a token of that name.
    async fn insert_api_token(&self, token: &NewApiToken<'_>) -> Result<Option<ApiTokenId>, StoreError>;
    /// Revokes the token unless it is already revoked.
    async fn revoke_api_token(&self, id: ApiTokenId, now: Timestamp) -> Result<u64, StoreError>;
    /// `false` when the token already used the key.
    async fn insert_idempotency_key(&self, key: &NewIdempotencyKey<'_>) -> Result<bool, StoreError>;
    /// The label a service action is registered with in this log, if it is.
    async fn service_action_label(&self, code: &str) -> Result<Option<String>, StoreError>;
    async fn insert_service_action(&self, action: &ServiceActionLabel) -> Result<(), StoreError>;
}

/// An API token to insert.
#[derive(Debug)]
pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub token_hash: &'a [u8; 32],
    pub grant: &'a ActionGrant,
    pub created: Timestamp,
}

/// An idempotency key to remember, with what its request appended.
#[derive(Debug)]
pub struct NewIdempotencyKey<'a> {
    pub token: ApiTokenId,
    pub key: &'a str,
    pub record: IdempotencyRecord,
    pub created: Timestamp,
}

/// Checks the head, applies the mutations in order and inserts the rows. The caller commits the
/// transaction on `Ok` and drops it (a rollback) on `Err`.
pub async fn commit(tx: &impl AppendTx, batch: &CommitBatch) -> Result<Vec<MutationOutput>, CommitError> {
    let head = tx.head().await?;
    if head.size != batch.base_size {
        return Err(CommitError::HeadMoved { size: head.size });
    }
    let mut outputs = Vec::with_capacity(batch.mutations.len());
    for (index, m) in batch.mutations.iter().enumerate() {
        match apply(tx, batch.now, m).await {
            Ok(out) => outputs.push(out),
            Err(ApplyError::Refused(reason)) => return Err(CommitError::Rejected { index, reason }),
            Err(ApplyError::Store(e)) => return Err(e.into()),
        }
    }
    tx.insert_rows(&batch.events, &batch.tiles).await?;
    Ok(outputs)
}

/// Applies one mutation inside the append's transaction.
async fn apply(tx: &impl AppendTx, now: Timestamp, m: &MutationEntry) -> Result<MutationOutput, ApplyError> {
    match &m.mutation {
        Mutation::CreateApiToken { name, token_hash, grant } => {
            match tx.insert_api_token(&NewApiToken { name, token_hash, grant, created: now }).await? {
                Some(id) => Ok(MutationOutput::ApiTokenCreated(id)),
                None => Err(MutationError::NameTaken.into()),
            }
        }
        Mutation::RevokeApiToken { id } => changed(tx.revoke_api_token(*id, now).await?),
        Mutation::Ingest { token, labels, idempotency } => {
            // A code is registered once: the first label stays, a different one is refused
            // (here, in the transaction, so two first requests cannot both win).
            for action in labels {
                match tx.service_action_label(&action.code).await? {
                    None => tx.insert_service_action(action).await?,
                    Some(label) if label == action.label => {}
                    Some(_) => return Err(MutationError::ActionLabelConflict(action.code.clone()).into()),
                }
            }
            if let Some(IdempotencyKey { key, request_hash }) = idempotency {
                let record = IdempotencyRecord { request_hash: *request_hash, first_seq: m.first_seq, count: m.count };
                if !tx.insert_idempotency_key(&NewIdempotencyKey { token: *token, key, record, created: now }).await? {
                    return Err(MutationError::IdempotencyKeyTaken.into());
                }
            }
            Ok(MutationOutput::Done)
        }
        Mutation::Account(a) => apply_account(tx, now, a).await,
    }
}

/// `NotFound` unless a row changed.
pub(crate) fn changed(rows: u64) -> Result<MutationOutput, ApplyError> {
    if rows == 0 {
        Err(MutationError::NotFound.into())
    } else {
        Ok(MutationOutput::Done)
    }
}
