//! What the store keeps for the platform's accounts: management users, their sessions,
//! invitations, protected users and settings.
//!
//! These tables are not the audit log: rows change and disappear. Every change that the log
//! must record is a [`crate::Mutation`] committed in the same transaction as its events; only
//! bookkeeping that records nothing (a session's last activity) is written directly.

use std::fmt;

use async_trait::async_trait;
use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};

use crate::StoreError;

/// A PHC-format password hash (Argon2id). Not a secret by itself, but never worth printing.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A TOTP shared secret (base32). Whoever reads it can make valid codes.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(pub String);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub org: OrgId,
    /// Lower case; unique within the organization.
    pub email: String,
    pub role: Role,
    pub password_hash: PasswordHash,
    pub totp: Option<TotpSecret>,
    /// The last TOTP time step accepted: each code is usable once.
    pub totp_last_step: Option<u64>,
    /// Consecutive failed sign-ins since the last success.
    pub failed_logins: u32,
    pub locked_until: Option<Timestamp>,
    pub created: Timestamp,
}

/// A session as stored: the token itself is never kept, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: [u8; 32],
    pub user: UserId,
    pub created: Timestamp,
    pub last_seen: Timestamp,
    /// The absolute end, whatever the activity.
    pub expires: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub id: InvitationId,
    pub org: OrgId,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub accepted: Option<Timestamp>,
    pub revoked: Option<Timestamp>,
}

impl InvitationRecord {
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.accepted.is_none() && self.revoked.is_none() && now < self.expires
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedUser {
    pub id: ProtectedUserId,
    pub email: String,
    pub name: String,
    pub added: Timestamp,
}

/// The account changes committed with their audit events. New rows get ids chosen by the caller
/// (random), so the events that record a change can name what it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountMutation {
    /// Refused with `EmailTaken`; with `only_if_first`, refused with `Conflict` once any user
    /// exists (the one-time setup link).
    CreateUser {
        id: UserId,
        email: String,
        role: Role,
        password_hash: PasswordHash,
        only_if_first: bool,
    },
    /// Refused with `Conflict` if the role is no longer `from`, `LastAdmin` if it would leave
    /// no admin.
    SetUserRole {
        user: UserId,
        from: Role,
        to: Role,
    },
    /// Deletes the user and every session of theirs. `LastAdmin` if it would leave no admin.
    DeleteUser {
        user: UserId,
    },
    SetPassword {
        user: UserId,
        password_hash: PasswordHash,
    },
    SetTotp {
        user: UserId,
        secret: Option<TotpSecret>,
    },
    /// A successful sign-in: the new session, the failure counter reset, and the TOTP step
    /// used (refused with `TotpReplay` unless newer than the last one).
    CreateSession {
        user: UserId,
        token_hash: [u8; 32],
        expires: Timestamp,
        totp_step: Option<u64>,
    },
    /// A failed sign-in of a known user; `lock_until` locks the account.
    RecordLoginFailure {
        user: UserId,
        lock_until: Option<Timestamp>,
    },
    /// `NotFound` if the session already ended (so its Logout is recorded once).
    EndSession {
        token_hash: [u8; 32],
    },
    CreateInvitation {
        id: InvitationId,
        email: String,
        role: Role,
        token_hash: [u8; 32],
        invited_by: String,
        expires: Timestamp,
    },
    /// Creates the invited user; `NotFound` unless the invitation is open at commit time.
    AcceptInvitation {
        id: InvitationId,
        user: UserId,
        password_hash: PasswordHash,
    },
    RevokeInvitation {
        id: InvitationId,
    },
    AddProtectedUser {
        id: ProtectedUserId,
        email: String,
        name: String,
    },
    RemoveProtectedUser {
        id: ProtectedUserId,
    },
    /// The settings document (JSON), replaced whole.
    PutSettings {
        json: String,
    },
    /// Records that a session viewed the audit log with one filter set; `AlreadyRecorded` the
    /// second time, so viewing does not flood the log.
    RecordView {
        token_hash: [u8; 32],
        digest: [u8; 32],
    },
}

/// The account reads of the storage trait (a supertrait of [`crate::Store`]).
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn user_count(&self, org: OrgId) -> Result<u64, StoreError>;
    async fn users_of(&self, org: OrgId) -> Result<Vec<UserRecord>, StoreError>;
    async fn user(&self, org: OrgId, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    /// `email` must already be lower case.
    async fn user_by_email(&self, org: OrgId, email: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The session and its user, if both exist.
    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<(SessionRecord, UserRecord)>, StoreError>;
    /// Notes activity (for the idle timeout). Records nothing in the log.
    async fn touch_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<(), StoreError>;
    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError>;
    /// Sessions of `org` idle since before `idle_since` or past their absolute end at `now`.
    async fn expired_sessions(
        &self,
        org: OrgId,
        idle_since: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    async fn invitation_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<InvitationRecord>, StoreError>;
    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError>;
    /// Newest first.
    async fn invitations(&self, org: OrgId) -> Result<Vec<InvitationRecord>, StoreError>;

    /// One page sorted by email, after `after` (keyset); `search` matches email or name,
    /// case-insensitively.
    async fn protected_users(
        &self,
        org: OrgId,
        search: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProtectedUser>, StoreError>;
    async fn protected_user(&self, org: OrgId, id: ProtectedUserId) -> Result<Option<ProtectedUser>, StoreError>;
    /// Which of `emails` (lower case) are already protected.
    async fn protected_emails(&self, org: OrgId, emails: &[String]) -> Result<Vec<String>, StoreError>;

    async fn settings_json(&self, org: OrgId) -> Result<Option<String>, StoreError>;

    /// Failed sign-ins from `address` in its current window, if that window began at or after
    /// `window_since`; 0 otherwise.
    async fn sign_in_failures(&self, org: OrgId, address: &str, window_since: Timestamp) -> Result<u32, StoreError>;
    /// Counts one failed sign-in from `address` and returns the failures in its window: a
    /// window that began before `window_since` is over, and a new one starts at `now`. Atomic,
    /// so processes sharing the database count together.
    async fn count_sign_in_failure(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        window_since: Timestamp,
    ) -> Result<u32, StoreError>;
    /// Forgets the addresses whose window began before `before`; returns how many.
    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
