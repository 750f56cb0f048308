//! What the store keeps for the platform's accounts: management users, their sessions,
//! invitations, protected users and settings.
//!
//! These tables are not the audit log: rows change and disappear. Every change that the log
//! must record is a [`crate::Mutation`] committed in the same transaction as its events; only
//! bookkeeping is written directly: a session's last activity, the counts of sign-in
//! attempts (per address, per account, per pending sign-in), which must be decided and counted
//! in one statement before a password or code is checked — the accounts record each outcome —,
//! and the sealing of a TOTP secret that an earlier version stored in plain.

use std::fmt;

use async_trait::async_trait;
use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};

use crate::commit::changed;
use crate::{ApplyError, MutationError, MutationOutput, StoreError};

/// A PHC-format password hash (Argon2id). Not a secret by itself, but never worth printing.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A TOTP shared secret (base32). Whoever reads it can make valid codes. Never stored as such:
/// the store keeps it sealed ([`SealedTotp`]).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(pub String);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// A TOTP secret as stored: encrypted and authenticated by the accounts (AEAD, bound to its
/// user; `logbook_accounts::totp::TotpSealer`), opaque to the store. A store written before
/// secrets were sealed may still hold a plain base32 secret here until the accounts seal it at
/// start.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTotp(pub String);

impl fmt::Debug for SealedTotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedTotp(<redacted>)")
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
    pub totp: Option<SealedTotp>,
    /// The last TOTP time step accepted: each code is usable once.
    pub totp_last_step: Option<u64>,
    /// Consecutive failed sign-ins since the last success.
    pub failed_logins: u32,
    pub locked_until: Option<Timestamp>,
    pub created: Timestamp,
}

/// A sign-in attempt counted against an account before its password or code was checked (see
/// [`AccountStore::count_login_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttempt {
    /// Consecutive failures, this attempt included.
    pub failures: u32,
    /// The lock this attempt set, because it reached the threshold: it stays if the attempt
    /// fails, and only this attempt's success lifts it.
    pub lock: Option<Timestamp>,
}

/// What the session-creating rule reads of a user, locked until the append commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInState {
    pub locked_until: Option<Timestamp>,
    pub totp_last_step: Option<u64>,
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
    /// Where the sign-in came from, shown to the user among their sessions.
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

/// The sessions a change ends with it. Each gets its Logout event, built by the caller before
/// the commit from the sessions it read; so the commit refuses the change (`Conflict`) unless
/// `ended` are exactly the user's sessions other than `keep` at that moment — a session started
/// or ended meanwhile, and the caller reads again — and no session ends unrecorded or twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndSessions {
    /// The caller's own session, which stays.
    pub keep: Option<[u8; 32]>,
    pub ended: Vec<[u8; 32]>,
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
    /// Also ends the user's sessions as `end_sessions` says, if given.
    SetPassword {
        user: UserId,
        password_hash: PasswordHash,
        end_sessions: Option<EndSessions>,
    },
    /// Also ends the user's sessions as `end_sessions` says, if given.
    SetTotp {
        user: UserId,
        secret: Option<SealedTotp>,
        end_sessions: Option<EndSessions>,
    },
    /// Ends the user's sessions as `end_sessions` says (signing out everywhere else, or an
    /// admin signing a user out everywhere); `NotFound` if the user is gone.
    EndSessionsOf {
        user: UserId,
        end_sessions: EndSessions,
    },
    /// A successful sign-in: the new session, the failure counter reset, and the TOTP step
    /// used. Refused with `Locked` while the account is locked (unless by `attempt_lock`, the
    /// lock this very attempt set: see [`LoginAttempt`]), with `TotpReplay` unless the step is
    /// newer than the last one used, and with `NotFound` if `pending` (the pending sign-in it
    /// completes, which it consumes) was used or dropped meanwhile.
    CreateSession {
        user: UserId,
        token_hash: [u8; 32],
        expires: Timestamp,
        totp_step: Option<u64>,
        pending: Option<[u8; 32]>,
        attempt_lock: Option<Timestamp>,
        address: Option<String>,
        user_agent: Option<String>,
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
    /// Replaces the user's stored TOTP secret `from` by `to`, the same secret sealed anew; false
    /// (nothing written) if it is no longer `from`. Bookkeeping, recorded nothing: the secret
    /// does not change, only how it is kept.
    async fn reseal_totp(
        &self,
        org: OrgId,
        user: UserId,
        from: &SealedTotp,
        to: &SealedTotp,
    ) -> Result<bool, StoreError>;

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
    /// Counts a sign-in attempt from `address` as a failure before its password or code is
    /// checked, and returns the failures in its window; `None` (nothing counted) when the window
    /// already holds `max` (at least 1). A window that began before `window_since` is over, and
    /// a new one starts at `now`. One statement, so concurrent attempts, from every process on
    /// the database, never get past the limit together.
    async fn count_sign_in_attempt(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        window_since: Timestamp,
        max: u32,
    ) -> Result<Option<u32>, StoreError>;
    /// Gives back an attempt counted by [`AccountStore::count_sign_in_attempt`] whose password
    /// or code was right (if its window is still the current one).
    async fn give_back_sign_in_attempt(
        &self,
        org: OrgId,
        address: &str,
        window_since: Timestamp,
    ) -> Result<(), StoreError>;
    /// Forgets the addresses whose window began before `before`; returns how many.
    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Counts a sign-in attempt against an account as a failure before its password or code is
    /// checked; `None` (nothing counted) if the account is locked at `now` or unknown. The
    /// attempt that reaches `threshold` locks the account until `lock_until` in the same
    /// statement, so concurrent attempts never get past the threshold together. The lock of
    /// a failed attempt stays; [`AccountStore::give_back_login_attempt`] or the session it
    /// leads to ([`AccountMutation::CreateSession`]'s `attempt_lock`) lift a lock only for the
    /// attempt that set it. Records nothing in the log: the caller records the outcome.
    async fn count_login_attempt(
        &self,
        org: OrgId,
        user: UserId,
        now: Timestamp,
        threshold: u32,
        lock_until: Timestamp,
    ) -> Result<Option<LoginAttempt>, StoreError>;
    /// Gives back an attempt whose password or code was right: one failure less, and the lock
    /// it set (if any) lifted.
    async fn give_back_login_attempt(&self, org: OrgId, user: UserId, attempt: &LoginAttempt)
        -> Result<(), StoreError>;

    /// Starts a sign-in that passed its password and awaits its TOTP code (the token's SHA-256),
    /// valid until `expires`; drops the pending sign-ins expired at `now`.
    async fn add_pending_sign_in(
        &self,
        org: OrgId,
        user: UserId,
        token_hash: &[u8; 32],
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<(), StoreError>;
    /// Counts one code tried with a pending sign-in and returns its user and the codes tried,
    /// this one included; `None` (nothing counted) if it is unknown, expired, already used, or
    /// has had `max_attempts` codes. One statement, so concurrent tries never exceed the limit.
    async fn count_pending_attempt(
        &self,
        org: OrgId,
        token_hash: &[u8; 32],
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<(UserId, u32)>, StoreError>;
}

/// A management user to insert.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub role: Role,
    pub password_hash: &'a PasswordHash,
    pub created: Timestamp,
}

/// The statements of one backend on the accounts tables, inside an open append transaction of
/// one organization ([`AccountTx::org`]). The reads that a rule decides on (`user_role`,
/// `sign_in_state`, `invitation`, `session_exists`) lock their row until the transaction ends
/// where the database needs it; counts are rows changed; `false` from an insert means a
/// uniqueness constraint refused the row.
#[allow(async_fn_in_trait)] // see `crate::commit::AppendTx`
pub trait AccountTx {
    fn org(&self) -> OrgId;

    async fn user_count(&self) -> Result<u64, StoreError>;
    async fn user_role(&self, user: UserId) -> Result<Option<Role>, StoreError>;
    async fn admins_other_than(&self, user: UserId) -> Result<u64, StoreError>;
    async fn insert_user(&self, user: &NewUser<'_>) -> Result<bool, StoreError>;
    async fn update_role(&self, user: UserId, role: Role) -> Result<u64, StoreError>;
    async fn delete_user(&self, user: UserId) -> Result<u64, StoreError>;
    async fn update_password(&self, user: UserId, password_hash: &PasswordHash) -> Result<u64, StoreError>;
    /// Replaces the secret and forgets the last step used (a new secret has none).
    async fn update_totp(&self, user: UserId, secret: Option<&SealedTotp>) -> Result<u64, StoreError>;

    /// `None` when there is no such user.
    async fn sign_in_state(&self, user: UserId) -> Result<Option<SignInState>, StoreError>;
    /// After a correct sign-in: no failures, not locked, and `totp_step` (when given) used.
    async fn reset_login_failures(&self, user: UserId, totp_step: Option<u64>) -> Result<u64, StoreError>;
    /// Consumes a pending sign-in of `user`; 0 if there is none (used or dropped meanwhile).
    async fn delete_pending_sign_in(&self, user: UserId, token_hash: &[u8; 32]) -> Result<u64, StoreError>;
    /// Drops every pending sign-in of `user` (their password or TOTP changed).
    async fn delete_pending_sign_ins_of(&self, user: UserId) -> Result<u64, StoreError>;

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError>;
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<u64, StoreError>;
    async fn session_exists(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError>;
    /// The token hashes of every session of `user`, locked until the transaction ends where the
    /// database needs it.
    async fn session_hashes_of(&self, user: UserId) -> Result<Vec<[u8; 32]>, StoreError>;
    async fn insert_session_view(&self, token_hash: &[u8; 32], digest: &[u8; 32]) -> Result<bool, StoreError>;

    async fn insert_invitation(&self, inv: &InvitationRecord, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    async fn invitation(&self, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError>;
    async fn set_invitation_accepted(&self, id: InvitationId, now: Timestamp) -> Result<u64, StoreError>;
    async fn set_invitation_revoked(&self, id: InvitationId, now: Timestamp) -> Result<u64, StoreError>;

    async fn insert_protected_user(&self, p: &ProtectedUser) -> Result<bool, StoreError>;
    async fn delete_protected_user(&self, id: ProtectedUserId) -> Result<u64, StoreError>;

    async fn put_settings(&self, json: &str) -> Result<(), StoreError>;
}

/// Applies one account mutation inside the append's transaction: every rule the accounts keep
/// at commit time (the first admin, the last admin, a role changed meanwhile, a TOTP code used
/// once, an invitation accepted only while open) is here, once for every backend.
pub(crate) async fn apply_account(
    tx: &impl AccountTx,
    now: Timestamp,
    m: &AccountMutation,
) -> Result<MutationOutput, ApplyError> {
    match m {
        AccountMutation::CreateUser { id, email, role, password_hash, only_if_first } => {
            // The one-time setup link creates the first user, never a second one.
            if *only_if_first && tx.user_count().await? > 0 {
                return Err(MutationError::Conflict.into());
            }
            create_user(tx, (*id, email, *role), password_hash, now).await
        }
        AccountMutation::SetUserRole { user, from, to } => {
            match tx.user_role(*user).await? {
                None => return Err(MutationError::NotFound.into()),
                Some(r) if r != *from => return Err(MutationError::Conflict.into()),
                Some(_) => {}
            }
            if *from == Role::Admin && *to != Role::Admin {
                keeps_an_admin(tx, *user).await?;
            }
            changed(tx.update_role(*user, *to).await?)
        }
        AccountMutation::DeleteUser { user } => {
            match tx.user_role(*user).await? {
                None => return Err(MutationError::NotFound.into()),
                Some(Role::Admin) => keeps_an_admin(tx, *user).await?,
                Some(_) => {}
            }
            tx.delete_sessions_of(*user).await?;
            changed(tx.delete_user(*user).await?)
        }
        // A sign-in that passed its password step under the old password or TOTP is void.
        // And so are the sessions it started, but the one that made the change.
        AccountMutation::SetPassword { user, password_hash, end_sessions } => {
            tx.delete_pending_sign_ins_of(*user).await?;
            let done = changed(tx.update_password(*user, password_hash).await?)?;
            if let Some(end) = end_sessions {
                end_sessions_of(tx, *user, end).await?;
            }
            Ok(done)
        }
        AccountMutation::SetTotp { user, secret, end_sessions } => {
            tx.delete_pending_sign_ins_of(*user).await?;
            let done = changed(tx.update_totp(*user, secret.as_ref()).await?)?;
            if let Some(end) = end_sessions {
                end_sessions_of(tx, *user, end).await?;
            }
            Ok(done)
        }
        AccountMutation::EndSessionsOf { user, end_sessions } => {
            if tx.user_role(*user).await?.is_none() {
                return Err(MutationError::NotFound.into());
            }
            end_sessions_of(tx, *user, end_sessions).await?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::CreateSession {
            user,
            token_hash,
            expires,
            totp_step,
            pending,
            attempt_lock,
            address,
            user_agent,
        } => {
            let Some(state) = tx.sign_in_state(*user).await? else { return Err(MutationError::NotFound.into()) };
            // A locked account gets no session, whatever was right; only the lock this attempt
            // set itself (it reached the threshold, and then succeeded) is not in its way.
            if state.locked_until.is_some_and(|t| t > now && Some(t) != *attempt_lock) {
                return Err(MutationError::Locked.into());
            }
            // A code is accepted once: its step must be newer than the last one used.
            if totp_step.is_some_and(|step| state.totp_last_step.is_some_and(|l| l >= step)) {
                return Err(MutationError::TotpReplay.into());
            }
            // A pending sign-in completes once.
            if let Some(p) = pending {
                if tx.delete_pending_sign_in(*user, p).await? == 0 {
                    return Err(MutationError::NotFound.into());
                }
            }
            tx.reset_login_failures(*user, *totp_step).await?;
            let session = SessionRecord {
                token_hash: *token_hash,
                user: *user,
                created: now,
                last_seen: now,
                expires: *expires,
                address: address.clone(),
                user_agent: user_agent.clone(),
            };
            tx.insert_session(&session).await?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::EndSession { token_hash } => changed(tx.delete_session(token_hash).await?),
        AccountMutation::CreateInvitation { id, email, role, token_hash, invited_by, expires } => {
            let inv = InvitationRecord {
                id: *id,
                org: tx.org(),
                email: email.clone(),
                role: *role,
                invited_by: invited_by.clone(),
                created: now,
                expires: *expires,
                accepted: None,
                revoked: None,
            };
            tx.insert_invitation(&inv, token_hash).await?;
            Ok(MutationOutput::InvitationCreated(*id))
        }
        AccountMutation::AcceptInvitation { id, user, password_hash } => {
            let Some(inv) = tx.invitation(*id).await?.filter(|inv| inv.is_open(now)) else {
                return Err(MutationError::NotFound.into());
            };
            tx.set_invitation_accepted(*id, now).await?;
            create_user(tx, (*user, &inv.email, inv.role), password_hash, now).await
        }
        AccountMutation::RevokeInvitation { id } => match tx.invitation(*id).await? {
            // An expired invitation can still be revoked (it then shows as revoked); an
            // accepted or revoked one cannot.
            Some(inv) if inv.accepted.is_none() && inv.revoked.is_none() => {
                changed(tx.set_invitation_revoked(*id, now).await?)
            }
            _ => Err(MutationError::NotFound.into()),
        },
        AccountMutation::AddProtectedUser { id, email, name } => {
            let p = ProtectedUser { id: *id, email: email.clone(), name: name.clone(), added: now };
            if tx.insert_protected_user(&p).await? {
                Ok(MutationOutput::ProtectedUserAdded(*id))
            } else {
                Err(MutationError::EmailTaken.into())
            }
        }
        AccountMutation::RemoveProtectedUser { id } => changed(tx.delete_protected_user(*id).await?),
        AccountMutation::PutSettings { json } => {
            tx.put_settings(json).await?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::RecordView { token_hash, digest } => {
            // The session ended meanwhile: nothing to remember the view by.
            if !tx.session_exists(token_hash).await? {
                return Err(MutationError::NotFound.into());
            }
            if tx.insert_session_view(token_hash, digest).await? {
                Ok(MutationOutput::Done)
            } else {
                Err(MutationError::AlreadyRecorded.into())
            }
        }
    }
}

async fn create_user(
    tx: &impl AccountTx,
    (id, email, role): (UserId, &str, Role),
    password_hash: &PasswordHash,
    now: Timestamp,
) -> Result<MutationOutput, ApplyError> {
    if tx.insert_user(&NewUser { id, email, role, password_hash, created: now }).await? {
        Ok(MutationOutput::UserCreated(id))
    } else {
        Err(MutationError::EmailTaken.into())
    }
}

/// Ends the sessions `end` names, refusing (`Conflict`) unless they are exactly the user's
/// sessions but the one it keeps (see [`EndSessions`]).
async fn end_sessions_of(tx: &impl AccountTx, user: UserId, end: &EndSessions) -> Result<(), ApplyError> {
    let mut now: Vec<[u8; 32]> =
        tx.session_hashes_of(user).await?.into_iter().filter(|h| Some(*h) != end.keep).collect();
    let mut ended = end.ended.clone();
    now.sort_unstable();
    ended.sort_unstable();
    if now != ended {
        return Err(MutationError::Conflict.into());
    }
    for h in &ended {
        tx.delete_session(h).await?;
    }
    Ok(())
}

/// `LastAdmin` unless an admin other than `user` remains. The append transaction holds the
/// log's lock, so two demotions cannot both see the other admin.
async fn keeps_an_admin(tx: &impl AccountTx, user: UserId) -> Result<(), ApplyError> {
    if tx.admins_other_than(user).await? == 0 {
        Err(MutationError::LastAdmin.into())
    } else {
        Ok(())
    }
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
