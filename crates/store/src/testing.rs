//! A store wrapper that injects faults, for the tests of every layer above the store
//! (feature `testing`).

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use logbook_core::{ApiTokenId, InvitationId, OrgId, OrgSlug, ProtectedUserId, Timestamp, UserId};
use logbook_integrity::tree::{TileId, TileRow};

use crate::accounts::{InvitationRecord, LoginAttempt, ProtectedUser, SealedTotp, SessionRecord, UserRecord};
use crate::*;

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Delegates to `inner`, except where told to fail.
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    /// Fail this many next commits before they reach the database (nothing is stored).
    pub fail_before_commit: AtomicU32,
    /// Fail this many next commits after they landed (the answer is lost, the data is not).
    pub fail_after_commit: AtomicU32,
    /// Run once just before the next `latest_checkpoint` is answered.
    pub before_latest_checkpoint: tokio::sync::Mutex<Option<Hook>>,
    /// The commit (counting from 1) that fails with an I/O error; 0: none.
    pub io_error_at_commit: AtomicU64,
    /// Whether that I/O error comes after the commit's data was written (a failed sync: the
    /// rows read back, but the store cannot promise they are on disk) or before (a failed write).
    pub io_error_after_write: AtomicBool,
    commits: AtomicU64,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            fail_before_commit: AtomicU32::new(0),
            fail_after_commit: AtomicU32::new(0),
            before_latest_checkpoint: tokio::sync::Mutex::new(None),
            io_error_at_commit: AtomicU64::new(0),
            io_error_after_write: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        }
    }

    fn take(counter: &AtomicU32) -> bool {
        counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn ensure_org(&self, slug: &OrgSlug, now: Timestamp) -> Result<Org, StoreError> {
        self.inner.ensure_org(slug, now).await
    }
    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        self.inner.org(slug).await
    }
    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.inner.orgs().await
    }
    async fn log_head(&self, org: OrgId) -> Result<LogHead, StoreError> {
        self.inner.log_head(org).await
    }
    async fn lock_log(&self, org: OrgId) -> Result<Box<dyn LogLock>, StoreError> {
        self.inner.lock_log(org).await
    }
    async fn commit(&self, org: OrgId, batch: CommitBatch) -> Result<Vec<MutationOutput>, CommitError> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        let io_fault = self.io_error_at_commit.load(Ordering::SeqCst) == n;
        let after_write = self.io_error_after_write.load(Ordering::SeqCst);
        if io_fault && !after_write {
            return Err(StoreError::Io("injected: write failed (EIO)".into()).into());
        }
        if Self::take(&self.fail_before_commit) {
            return Err(StoreError::Backend("injected: connection refused".into()).into());
        }
        let out = self.inner.commit(org, batch).await?;
        if io_fault {
            return Err(StoreError::Io("injected: fsync failed (EIO)".into()).into());
        }
        if Self::take(&self.fail_after_commit) {
            return Err(StoreError::Backend("injected: connection lost at COMMIT".into()).into());
        }
        Ok(out)
    }
    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError> {
        self.inner.events(org, seqs).await
    }
    async fn query_events(
        &self,
        org: OrgId,
        f: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.inner.query_events(org, f, before, limit).await
    }
    async fn query_events_within(
        &self,
        org: OrgId,
        f: &EventFilter,
        before: u64,
        limit: usize,
        deadline: std::time::Duration,
    ) -> Result<EventPage, StoreError> {
        self.inner.query_events_within(org, f, before, limit, deadline).await
    }
    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError> {
        self.inner.index_search_text(org, max).await
    }
    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError> {
        self.inner.search_indexed(org).await
    }
    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError> {
        self.inner.seq_at_or_after(org, t).await
    }
    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.users(org, prefix, limit).await
    }
    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.read_tiles(org, tiles).await
    }
    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError> {
        self.inner.tile_rows(org, level, indexes).await
    }
    async fn add_checkpoint(&self, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
        self.inner.add_checkpoint(org, cp).await
    }
    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints(org).await
    }
    async fn add_cosignature(&self, org: OrgId, c: &StoredCosignature) -> Result<bool, StoreError> {
        self.inner.add_cosignature(org, c).await
    }
    async fn cosignatures(&self, org: OrgId, size: u64) -> Result<Vec<StoredCosignature>, StoreError> {
        self.inner.cosignatures(org, size).await
    }
    async fn newest_cosignatures(&self, org: OrgId) -> Result<Vec<StoredCosignature>, StoreError> {
        self.inner.newest_cosignatures(org).await
    }
    async fn self_check_state(&self, org: OrgId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.self_check_state(org).await
    }

    async fn save_self_check_state(&self, org: OrgId, state: &[u8]) -> Result<(), StoreError> {
        self.inner.save_self_check_state(org, state).await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
        let hook = self.before_latest_checkpoint.lock().await.take();
        if let Some(hook) = hook {
            hook.await;
        }
        self.inner.latest_checkpoint(org).await
    }
    async fn api_token_by_hash(&self, h: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        self.inner.api_token_by_hash(h).await
    }
    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
        self.inner.api_tokens(org).await
    }
    async fn idempotency_record(&self, t: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(t, key).await
    }
    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
        self.inner.api_token_rows(org).await
    }
    async fn import_api_token(&self, org: OrgId, t: &ApiToken, h: &[u8; 32]) -> Result<(), StoreError> {
        self.inner.import_api_token(org, t, h).await
    }
    async fn service_actions(&self, org: OrgId) -> Result<Vec<ServiceActionLabel>, StoreError> {
        self.inner.service_actions(org).await
    }
    async fn import_service_action(&self, org: OrgId, a: &ServiceActionLabel) -> Result<(), StoreError> {
        self.inner.import_service_action(org, a).await
    }
}

#[async_trait]
impl AccountStore for FaultyStore {
    async fn user_count(&self, org: OrgId) -> Result<u64, StoreError> {
        self.inner.user_count(org).await
    }
    async fn users_of(&self, org: OrgId) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.users_of(org).await
    }
    async fn user(&self, org: OrgId, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user(org, id).await
    }
    async fn user_by_email(&self, org: OrgId, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user_by_email(org, email).await
    }
    async fn reseal_totp(
        &self,
        org: OrgId,
        user: UserId,
        from: &SealedTotp,
        to: &SealedTotp,
    ) -> Result<bool, StoreError> {
        self.inner.reseal_totp(org, user, from, to).await
    }
    async fn session(&self, h: &[u8; 32]) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        self.inner.session(h).await
    }
    async fn touch_session(&self, h: &[u8; 32], now: Timestamp) -> Result<(), StoreError> {
        self.inner.touch_session(h, now).await
    }
    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.sessions_of(user).await
    }
    async fn expired_sessions(
        &self,
        org: OrgId,
        idle_since: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.expired_sessions(org, idle_since, now, limit).await
    }
    async fn invitation_by_hash(&self, h: &[u8; 32]) -> Result<Option<InvitationRecord>, StoreError> {
        self.inner.invitation_by_hash(h).await
    }
    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError> {
        self.inner.invitation(org, id).await
    }
    async fn invitations(&self, org: OrgId) -> Result<Vec<InvitationRecord>, StoreError> {
        self.inner.invitations(org).await
    }
    async fn protected_users(
        &self,
        org: OrgId,
        search: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProtectedUser>, StoreError> {
        self.inner.protected_users(org, search, after, limit).await
    }
    async fn protected_user(&self, org: OrgId, id: ProtectedUserId) -> Result<Option<ProtectedUser>, StoreError> {
        self.inner.protected_user(org, id).await
    }
    async fn protected_emails(&self, org: OrgId, emails: &[String]) -> Result<Vec<String>, StoreError> {
        self.inner.protected_emails(org, emails).await
    }
    async fn settings_json(&self, org: OrgId) -> Result<Option<String>, StoreError> {
        self.inner.settings_json(org).await
    }
    async fn sign_in_failures(&self, org: OrgId, address: &str, since: Timestamp) -> Result<u32, StoreError> {
        self.inner.sign_in_failures(org, address, since).await
    }
    async fn count_sign_in_attempt(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        since: Timestamp,
        max: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.inner.count_sign_in_attempt(org, address, now, since, max).await
    }
    async fn give_back_sign_in_attempt(&self, org: OrgId, address: &str, since: Timestamp) -> Result<(), StoreError> {
        self.inner.give_back_sign_in_attempt(org, address, since).await
    }
    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.inner.prune_sign_in_failures(before).await
    }
    async fn count_login_attempt(
        &self,
        org: OrgId,
        user: UserId,
        now: Timestamp,
        threshold: u32,
        lock_until: Timestamp,
    ) -> Result<Option<LoginAttempt>, StoreError> {
        self.inner.count_login_attempt(org, user, now, threshold, lock_until).await
    }
    async fn give_back_login_attempt(&self, org: OrgId, user: UserId, a: &LoginAttempt) -> Result<(), StoreError> {
        self.inner.give_back_login_attempt(org, user, a).await
    }
    async fn add_pending_sign_in(
        &self,
        org: OrgId,
        user: UserId,
        h: &[u8; 32],
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.add_pending_sign_in(org, user, h, now, expires).await
    }
    async fn count_pending_attempt(
        &self,
        org: OrgId,
        h: &[u8; 32],
        now: Timestamp,
        max: u32,
    ) -> Result<Option<(UserId, u32)>, StoreError> {
        self.inner.count_pending_attempt(org, h, now, max).await
    }
}
