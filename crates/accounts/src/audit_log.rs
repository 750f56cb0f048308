//! The audit log's own reads: who looked at the log, with which filters.

use std::collections::BTreeMap;

use logbook_core::Action;
use logbook_log::AppendError;
use logbook_store::{AccountMutation, MutationError};
use sha2::{Digest, Sha256};

use crate::events::event;
use crate::permission::{Authorized, ReadAuditLog};
use crate::{account, AccountError, Accounts};

impl Accounts {
    /// Records that the caller opened the audit log with these filters, once per session and
    /// filter set. Returns whether it recorded.
    pub async fn record_view(
        &self,
        caller: &Authorized<ReadAuditLog>,
        filters: &BTreeMap<String, String>,
    ) -> Result<bool, AccountError> {
        let mut h = Sha256::new();
        for (k, v) in filters {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        let digest: [u8; 32] = h.finalize().into();
        // The details name the filters, not their values: a searched word in the details would
        // make every later search for it find this record. The values are in the fields.
        let names: Vec<&str> = filters.keys().map(String::as_str).collect();
        let details = if names.is_empty() {
            "Opened the audit log".to_string()
        } else {
            format!("Opened the audit log filtered by {}", names.join(", "))
        };
        let mut b = event(Action::AuditLogViewed, caller.actor(), &caller.source).details(details);
        for (k, v) in filters.iter().take(16) {
            b = b.field(&format!("filter.{k}"), v.chars().take(500).collect::<String>());
        }
        let m = AccountMutation::RecordView { token_hash: caller.session, digest };
        match self.log.append(&self.org, vec![b.build()], account(m)).await {
            Ok(_) => Ok(true),
            Err(AppendError::Rejected(MutationError::AlreadyRecorded | MutationError::NotFound)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
