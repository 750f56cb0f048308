//! What the store answers when it cannot do what was asked.

use std::error::Error as StdError;
use std::fmt;

/// The error a backend's driver gave (`rusqlite::Error`, `tokio_postgres::Error`, an I/O error,
/// a pool error), kept whole so callers can inspect it through [`std::error::Error::source`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error. The message is for logs
    /// only: it may name tables or paths. Its text repeats the whole chain of causes, because
    /// the logs print an error's `Display` alone, and a driver's top-level message is often
    /// just "db error".
    #[error("storage backend error: {}", Chain(.0.as_ref()))]
    Backend(#[source] BoxError),
    /// The stored data breaks an invariant (e.g. a tile the tree needs is missing).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the disk is full")]
    DiskFull,
    /// The operating system failed a read, write or sync. After a failed sync the kernel may
    /// have dropped the data it could not write, so nothing written since the last good sync
    /// can be trusted to be on disk, even if it reads back.
    #[error("storage I/O error: {}", Chain(.0.as_ref()))]
    Io(#[source] BoxError),
    #[error("no such organization")]
    NoSuchOrg,
    /// A read ran past its deadline ([`crate::Store::query_events_within`]) and was stopped.
    #[error("the query ran past its deadline and was stopped")]
    Deadline,
}

impl StoreError {
    /// A driver error that is neither a full disk nor an I/O failure (the backends classify
    /// those first).
    pub fn backend(e: impl Into<BoxError>) -> Self {
        StoreError::Backend(e.into())
    }

    /// `what` failed because of `source`: for errors whose own message does not say what was
    /// being done (creating a directory, taking a connection from the pool).
    pub fn context(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Backend(Box::new(Context { what: what.into(), source: source.into() }))
    }
}

/// An error and what was being done when it happened.
#[derive(Debug)]
struct Context {
    what: String,
    source: BoxError,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for Context {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Displays an error and its causes as `a: b: c`, leaving out a cause whose message its parent
/// already contains.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            let text = e.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            next = e.source();
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    #[error("the name is already taken")]
    NameTaken,
    #[error("not found")]
    NotFound,
    #[error("the idempotency key was already used")]
    IdempotencyKeyTaken,
    #[error("action {0:?} is already registered with another label")]
    ActionLabelConflict(String),
    #[error("the email address is already taken")]
    EmailTaken,
    #[error("the last admin cannot be removed or demoted")]
    LastAdmin,
    #[error("the record changed in the meantime")]
    Conflict,
    #[error("the TOTP code was already used")]
    TotpReplay,
    #[error("the account is locked")]
    Locked,
    #[error("already recorded")]
    AlreadyRecorded,
}

/// Why one mutation of a batch was not applied: refused by a rule (the rest of the batch can
/// commit without it), or the store failed (the whole transaction is lost).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refused: {0}")]
    Refused(MutationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MutationError> for ApplyError {
    fn from(e: MutationError) -> Self {
        ApplyError::Refused(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the log head moved to {size} (another writer appended)")]
    HeadMoved { size: u64 },
    #[error("mutation {index} was refused: {reason}")]
    Rejected { index: usize, reason: MutationError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_every_cause_once_and_the_source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let e = StoreError::context("creating /data", io);
        assert_eq!(e.to_string(), "storage backend error: creating /data: permission denied");
        let cause = e.source().and_then(|c| c.source()).expect("the I/O error");
        assert!(cause.downcast_ref::<std::io::Error>().is_some());
        let plain = StoreError::backend("connection refused");
        assert_eq!(plain.to_string(), "storage backend error: connection refused");
    }
}
