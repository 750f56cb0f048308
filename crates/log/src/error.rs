use logbook_core::EventError;
use logbook_integrity::proof::ProofError;
use logbook_store::{MutationError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
    #[error("nothing to append")]
    Empty,
    #[error("refused: {0}")]
    Rejected(MutationError),
    #[error("the log is shutting down")]
    ShuttingDown,
    /// The events were not stored. Details are logged, not shown.
    #[error("the log cannot store events right now")]
    Unavailable,
    /// The commit failed and the store could not be read back to tell whether it landed, or
    /// the storage reported an I/O error, after which reading back proves nothing.
    #[error("the log could not confirm whether the events were stored")]
    OutcomeUnknown,
    /// Not stored: the disk is full.
    #[error("the disk is full")]
    DiskFull,
    /// Not stored: this log stopped taking appends after a storage I/O error, until restart.
    #[error("appends are stopped after a storage I/O error; restart Logbook once the storage is fixed")]
    Stopped,
    #[error("the stored log is damaged: {0}")]
    Damaged(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ProofRequestError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the log has no signed checkpoint yet")]
    NoCheckpoint,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppendError {
    /// The answer to give every submitter of a failed batch (the failure kinds are unit-like).
    pub(crate) fn same(&self) -> AppendError {
        match self {
            AppendError::OutcomeUnknown => AppendError::OutcomeUnknown,
            AppendError::ShuttingDown => AppendError::ShuttingDown,
            AppendError::DiskFull => AppendError::DiskFull,
            AppendError::Stopped => AppendError::Stopped,
            AppendError::Damaged(why) => AppendError::Damaged(why.clone()),
            _ => AppendError::Unavailable,
        }
    }
}
