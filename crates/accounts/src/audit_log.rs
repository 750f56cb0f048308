//! The audit log's own reads: who looked at the log, with which filters.
//!
//! Every read of the log's content by a person is recorded as `audit_log.viewed`: a page of the
//! list (the console's or `GET /api/v1/events`), one entry (the console's entry page) and the
//! users that appear in the log (`GET /api/v1/users-in-log`). Each is recorded once per session
//! and read — the same filters again, another page of them, or the same entry again record
//! nothing — so reading does not flood the log, while every new question asked of it is on record.

use std::collections::BTreeMap;

use logbook_core::Action;
use logbook_log::AppendError;
use logbook_store::{AccountMutation, MutationError};
use sha2::{Digest, Sha256};

use crate::events::event;
use crate::permission::{Authorized, ReadAuditLog};
use crate::{account, AccountError, Accounts};

/// One read of the audit log, as recorded.
#[derive(Debug, Clone, Copy)]
pub enum LogRead<'a> {
    /// A list of events with these filters (name → value as given), whichever page of it.
    List(&'a BTreeMap<String, String>),
    /// The one entry with this `seq`.
    Entry(u64),
    /// The users in the log whose name starts with this prefix (empty: the first ones).
    Users(&'a str),
}

impl LogRead<'_> {
    /// What the read is remembered by, per session: its kind and every filter.
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        match self {
            LogRead::List(filters) => {
                part(b"list");
                for (k, v) in filters.iter() {
                    part(k.as_bytes());
                    part(v.as_bytes());
                }
            }
            LogRead::Entry(seq) => {
                part(b"entry");
                part(&seq.to_be_bytes());
            }
            LogRead::Users(prefix) => {
                part(b"users");
                part(prefix.as_bytes());
            }
        }
        h.finalize().into()
    }

    /// The details name the filters, not their values: a searched word in the details would
    /// make every later search for it find this record. The values are in the fields.
    fn details(&self) -> String {
        match self {
            LogRead::List(filters) if filters.is_empty() => "Opened the audit log".to_string(),
            LogRead::List(filters) => {
                let names: Vec<&str> = filters.keys().map(String::as_str).collect();
                format!("Opened the audit log filtered by {}", names.join(", "))
            }
            LogRead::Entry(seq) => format!("Opened entry {seq} of the audit log"),
            LogRead::Users("") => "Listed the users in the audit log".to_string(),
            LogRead::Users(_) => "Listed the users in the audit log filtered by prefix".to_string(),
        }
    }

    fn fields(&self) -> Vec<(String, String)> {
        let bounded = |v: &str| v.chars().take(500).collect::<String>();
        match self {
            LogRead::List(filters) => {
                filters.iter().take(16).map(|(k, v)| (format!("filter.{k}"), bounded(v))).collect()
            }
            LogRead::Entry(seq) => vec![("entry".to_string(), seq.to_string())],
            LogRead::Users("") => Vec::new(),
            LogRead::Users(prefix) => vec![("filter.prefix".to_string(), bounded(prefix))],
        }
    }
}

impl Accounts {
    /// Records that the caller read the audit log (see the module's doc), once per session and
    /// read. Returns whether it recorded.
    pub async fn record_view(
        &self,
        caller: &Authorized<ReadAuditLog>,
        read: LogRead<'_>,
    ) -> Result<bool, AccountError> {
        let mut b = event(Action::AuditLogViewed, caller.actor(), &caller.source).details(read.details());
        for (k, v) in read.fields() {
            b = b.field(&k, v);
        }
        let m = AccountMutation::RecordView { token_hash: caller.session, digest: read.digest() };
        match self.log.append_read_record(&self.org, vec![b.build()], account(m)).await {
            Ok(recorded) => Ok(recorded.is_some()),
            Err(AppendError::Rejected(MutationError::AlreadyRecorded | MutationError::NotFound)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_remembered_by_kind_and_filters() {
        let none = BTreeMap::new();
        let q: BTreeMap<String, String> = [("q".to_string(), "x".to_string())].into();
        let digests = [
            LogRead::List(&none).digest(),
            LogRead::List(&q).digest(),
            LogRead::Entry(0).digest(),
            LogRead::Entry(1).digest(),
            LogRead::Users("").digest(),
            LogRead::Users("x").digest(),
        ];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(LogRead::List(&q).digest(), LogRead::List(&q.clone()).digest());
        assert!(!LogRead::List(&q).details().contains('x'), "a searched word is not in the details");
    }
}
