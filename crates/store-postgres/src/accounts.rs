//! The accounts tables on PostgreSQL: the statements of the account mutations (their rules are
//! `logbook_store::accounts`'), and the reads of [`AccountStore`].

use async_trait::async_trait;
use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};
use logbook_store::accounts::{
    like_escape, AccountTx, InvitationRecord, LoginAttempt, NewUser, PasswordHash, ProtectedUser, SealedTotp,
    SessionRecord, SignInState, UserRecord,
};
use logbook_store::{AccountStore, StoreError};

use crate::commit::PgTx;
use crate::rows::{
    hash32, i, inserted, invitation_row, pg, protected_row, role, session_row, u, user_row, user_row_at,
    INVITATION_COLUMNS, SESSION_COLUMNS, SESSION_COLUMN_COUNT, USER_COLUMNS,
};
use crate::PgStore;

// The append transaction holds the log's advisory lock, so no other append changes these rows
// meanwhile; the reads a rule decides on also lock their row (`FOR UPDATE`) against the writes
// made outside the append (`touch_session`, a concurrent sign-in's cleanup).
impl AccountTx for PgTx<'_> {
    fn org(&self) -> OrgId {
        self.org
    }

    async fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            self.tx.query_one("SELECT COUNT(*) FROM users WHERE org = $1", &[&self.org.0]).await.map_err(pg)?.get(0);
        Ok(u(n))
    }

    async fn user_role(&self, user: UserId) -> Result<Option<Role>, StoreError> {
        let row = self
            .tx
            .query_opt("SELECT role FROM users WHERE id = $1 AND org = $2 FOR UPDATE", &[&user.0, &self.org.0])
            .await
            .map_err(pg)?;
        row.map(|r| role(r.get(0))).transpose()
    }

    async fn admins_other_than(&self, user: UserId) -> Result<u64, StoreError> {
        let n: i64 = self
            .tx
            .query_one(
                "SELECT COUNT(*) FROM users WHERE org = $1 AND role = 'admin' AND id <> $2",
                &[&self.org.0, &user.0],
            )
            .await
            .map_err(pg)?
            .get(0);
        Ok(u(n))
    }

    async fn insert_user(&self, n: &NewUser<'_>) -> Result<bool, StoreError> {
        inserted(
            self.tx
                .execute(
                    "INSERT INTO users (id, org, email, role, password_hash, created_us) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&n.id.0, &self.org.0, &n.email, &n.role.code(), &n.password_hash.0, &n.created.as_micros()],
                )
                .await,
        )
    }

    async fn update_role(&self, user: UserId, role: Role) -> Result<u64, StoreError> {
        self.tx
            .execute("UPDATE users SET role = $1 WHERE id = $2 AND org = $3", &[&role.code(), &user.0, &self.org.0])
            .await
            .map_err(pg)
    }

    async fn delete_user(&self, user: UserId) -> Result<u64, StoreError> {
        self.tx.execute("DELETE FROM users WHERE id = $1 AND org = $2", &[&user.0, &self.org.0]).await.map_err(pg)
    }

    async fn update_password(&self, user: UserId, password_hash: &PasswordHash) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND org = $3",
                &[&password_hash.0, &user.0, &self.org.0],
            )
            .await
            .map_err(pg)
    }

    async fn update_totp(&self, user: UserId, secret: Option<&SealedTotp>) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE id = $2 AND org = $3",
                &[&secret.map(|s| s.0.as_str()), &user.0, &self.org.0],
            )
            .await
            .map_err(pg)
    }

    async fn sign_in_state(&self, user: UserId) -> Result<Option<SignInState>, StoreError> {
        let row = self
            .tx
            .query_opt(
                "SELECT locked_until_us, totp_last_step FROM users WHERE id = $1 AND org = $2 FOR UPDATE",
                &[&user.0, &self.org.0],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| SignInState {
            locked_until: r.get::<_, Option<i64>>(0).map(Timestamp::from_micros),
            totp_last_step: r.get::<_, Option<i64>>(1).map(u),
        }))
    }

    async fn reset_login_failures(&self, user: UserId, totp_step: Option<u64>) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "UPDATE users SET failed_logins = 0, locked_until_us = NULL, totp_last_step = COALESCE($1, totp_last_step)
                 WHERE id = $2 AND org = $3",
                &[&totp_step.map(i), &user.0, &self.org.0],
            )
            .await
            .map_err(pg)
    }

    async fn delete_pending_sign_in(&self, user: UserId, token_hash: &[u8; 32]) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "DELETE FROM pending_sign_ins WHERE token_hash = $1 AND user_id = $2 AND org = $3",
                &[&&token_hash[..], &user.0, &self.org.0],
            )
            .await
            .map_err(pg)
    }

    async fn delete_pending_sign_ins_of(&self, user: UserId) -> Result<u64, StoreError> {
        self.tx
            .execute("DELETE FROM pending_sign_ins WHERE user_id = $1 AND org = $2", &[&user.0, &self.org.0])
            .await
            .map_err(pg)
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO sessions (token_hash, user_id, org, created_us, last_seen_us, expires_us, address, user_agent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &&s.token_hash[..],
                    &s.user.0,
                    &self.org.0,
                    &s.created.as_micros(),
                    &s.last_seen.as_micros(),
                    &s.expires.as_micros(),
                    &s.address,
                    &s.user_agent,
                ],
            )
            .await
            .map_err(pg)
            .map(drop)
    }

    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        self.tx
            .execute("DELETE FROM sessions WHERE user_id = $1 AND org = $2", &[&user.0, &self.org.0])
            .await
            .map_err(pg)
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<u64, StoreError> {
        self.tx
            .execute("DELETE FROM sessions WHERE token_hash = $1 AND org = $2", &[&&token_hash[..], &self.org.0])
            .await
            .map_err(pg)
    }

    async fn session_exists(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let row = self
            .tx
            .query_opt(
                "SELECT 1 FROM sessions WHERE token_hash = $1 AND org = $2 FOR UPDATE",
                &[&&token_hash[..], &self.org.0],
            )
            .await
            .map_err(pg)?;
        Ok(row.is_some())
    }

    async fn session_hashes_of(&self, user: UserId) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows = self
            .tx
            .query(
                "SELECT token_hash FROM sessions WHERE user_id = $1 AND org = $2 FOR UPDATE",
                &[&user.0, &self.org.0],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| hash32(r.get(0))).collect()
    }

    async fn insert_session_view(&self, token_hash: &[u8; 32], digest: &[u8; 32]) -> Result<bool, StoreError> {
        let n = self
            .tx
            .execute(
                "INSERT INTO session_views (token_hash, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&&token_hash[..], &&digest[..]],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn insert_invitation(&self, inv: &InvitationRecord, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO invitations (id, org, email, role, token_hash, invited_by, created_us, expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &inv.id.0,
                    &inv.org.0,
                    &inv.email,
                    &inv.role.code(),
                    &&token_hash[..],
                    &inv.invited_by,
                    &inv.created.as_micros(),
                    &inv.expires.as_micros(),
                ],
            )
            .await
            .map_err(pg)
            .map(drop)
    }

    async fn invitation(&self, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError> {
        let row = self
            .tx
            .query_opt(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1 AND org = $2 FOR UPDATE"),
                &[&id.0, &self.org.0],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(invitation_row).transpose()
    }

    async fn set_invitation_accepted(&self, id: InvitationId, now: Timestamp) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "UPDATE invitations SET accepted_us = $1 WHERE id = $2 AND org = $3",
                &[&now.as_micros(), &id.0, &self.org.0],
            )
            .await
            .map_err(pg)
    }

    async fn set_invitation_revoked(&self, id: InvitationId, now: Timestamp) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "UPDATE invitations SET revoked_us = $1 WHERE id = $2 AND org = $3",
                &[&now.as_micros(), &id.0, &self.org.0],
            )
            .await
            .map_err(pg)
    }

    async fn insert_protected_user(&self, p: &ProtectedUser) -> Result<bool, StoreError> {
        let n = self
            .tx
            .execute(
                "INSERT INTO protected_users (id, org, email, name, added_us) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (org, email) DO NOTHING",
                &[&p.id.0, &self.org.0, &p.email, &p.name, &p.added.as_micros()],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn delete_protected_user(&self, id: ProtectedUserId) -> Result<u64, StoreError> {
        self.tx
            .execute("DELETE FROM protected_users WHERE id = $1 AND org = $2", &[&id.0, &self.org.0])
            .await
            .map_err(pg)
    }

    async fn put_settings(&self, json: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO settings (org, json) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET json = excluded.json",
                &[&self.org.0, &json],
            )
            .await
            .map_err(pg)
            .map(drop)
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn user_count(&self, org: OrgId) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n: i64 = c.query_one("SELECT COUNT(*) FROM users WHERE org = $1", &[&org.0]).await.map_err(pg)?.get(0);
        Ok(u(n))
    }

    async fn users_of(&self, org: OrgId) -> Result<Vec<UserRecord>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("SELECT {USER_COLUMNS} FROM users WHERE org = $1 ORDER BY email"), &[&org.0])
            .await
            .map_err(pg)?;
        rows.iter().map(user_row).collect()
    }

    async fn user(&self, org: OrgId, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE org = $1 AND id = $2"), &[&org.0, &id.0])
            .await
            .map_err(pg)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn user_by_email(&self, org: OrgId, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE org = $1 AND email = $2"), &[&org.0, &email])
            .await
            .map_err(pg)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {}, {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
            SESSION_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", "),
            USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        );
        let row = c.query_opt(&sql, &[&&token_hash[..]]).await.map_err(pg)?;
        let Some(r) = row else { return Ok(None) };
        let session = session_row(&r)?;
        let user = user_row_at(&r, SESSION_COLUMN_COUNT)?;
        Ok(Some((session, user)))
    }

    async fn reseal_totp(
        &self,
        org: OrgId,
        user: UserId,
        from: &SealedTotp,
        to: &SealedTotp,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE users SET totp_secret = $1 WHERE id = $2 AND org = $3 AND totp_secret = $4",
                &[&to.0, &user.0, &org.0, &from.0],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn touch_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE sessions SET last_seen_us = GREATEST(last_seen_us, $1) WHERE token_hash = $2",
            &[&now.as_micros(), &&token_hash[..]],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY created_us"),
                &[&user.0],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(session_row).collect()
    }

    async fn expired_sessions(
        &self,
        org: OrgId,
        idle_since: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE org = $1 AND last_seen_us < $2
                     UNION SELECT {SESSION_COLUMNS} FROM sessions WHERE org = $1 AND expires_us <= $3
                     LIMIT $4"
                ),
                &[&org.0, &idle_since.as_micros(), &now.as_micros(), &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(session_row).collect()
    }

    async fn invitation_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<InvitationRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1"),
                &[&&token_hash[..]],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(invitation_row).transpose()
    }

    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE org = $1 AND id = $2"),
                &[&org.0, &id.0],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(invitation_row).transpose()
    }

    async fn invitations(&self, org: OrgId) -> Result<Vec<InvitationRecord>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE org = $1 ORDER BY id DESC"), &[&org.0])
            .await
            .map_err(pg)?;
        rows.iter().map(invitation_row).collect()
    }

    async fn protected_users(
        &self,
        org: OrgId,
        search: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProtectedUser>, StoreError> {
        let c = self.client().await?;
        let pattern = search.map(|s| format!("%{}%", like_escape(&s.to_lowercase())));
        let rows = c
            .query(
                "SELECT id, email, name, added_us FROM protected_users
                 WHERE org = $1 AND ($2::text IS NULL OR email > $2)
                   AND ($3::text IS NULL OR email LIKE $3 ESCAPE '\\' OR lower(name) LIKE $3 ESCAPE '\\')
                 ORDER BY email LIMIT $4",
                &[&org.0, &after, &pattern, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(protected_row).collect())
    }

    async fn protected_user(&self, org: OrgId, id: ProtectedUserId) -> Result<Option<ProtectedUser>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT id, email, name, added_us FROM protected_users WHERE org = $1 AND id = $2",
                &[&org.0, &id.0],
            )
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(protected_row))
    }

    async fn protected_emails(&self, org: OrgId, emails: &[String]) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT email FROM protected_users WHERE org = $1 AND email = ANY($2)", &[&org.0, &emails])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn settings_json(&self, org: OrgId) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let row = c.query_opt("SELECT json FROM settings WHERE org = $1", &[&org.0]).await.map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn sign_in_failures(&self, org: OrgId, address: &str, since: Timestamp) -> Result<u32, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT failures FROM sign_in_throttle WHERE org = $1 AND address = $2 AND window_start_us >= $3",
                &[&org.0, &address, &since.as_micros()],
            )
            .await
            .map_err(pg)?;
        Ok(row.map_or(0, |r| r.get::<_, i32>(0).max(0) as u32))
    }

    async fn count_sign_in_attempt(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        since: Timestamp,
        max: u32,
    ) -> Result<Option<u32>, StoreError> {
        let c = self.client().await?;
        let max = i32::try_from(max).unwrap_or(i32::MAX);
        // One statement, so concurrent attempts from several processes never pass the limit
        // together; SET and WHERE read the old row: an expired window restarts at `now` with
        // one failure, a full one is left alone and returns no row.
        let row = c
            .query_opt(
                "INSERT INTO sign_in_throttle AS t (org, address, window_start_us, failures) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (org, address) DO UPDATE SET
                     failures = CASE WHEN t.window_start_us < $4 THEN 1 ELSE t.failures + 1 END,
                     window_start_us = CASE WHEN t.window_start_us < $4 THEN $3 ELSE t.window_start_us END
                 WHERE t.window_start_us < $4 OR t.failures < $5
                 RETURNING failures",
                &[&org.0, &address, &now.as_micros(), &since.as_micros(), &max],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get::<_, i32>(0).max(0) as u32))
    }

    async fn give_back_sign_in_attempt(&self, org: OrgId, address: &str, since: Timestamp) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE sign_in_throttle SET failures = failures - 1
             WHERE org = $1 AND address = $2 AND window_start_us >= $3 AND failures > 0",
            &[&org.0, &address, &since.as_micros()],
        )
        .await
        .map(drop)
        .map_err(pg)
    }

    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM sign_in_throttle WHERE window_start_us < $1", &[&before.as_micros()]).await.map_err(pg)
    }

    async fn count_login_attempt(
        &self,
        org: OrgId,
        user: UserId,
        now: Timestamp,
        threshold: u32,
        lock_until: Timestamp,
    ) -> Result<Option<LoginAttempt>, StoreError> {
        let c = self.client().await?;
        let limit = i32::try_from(threshold).unwrap_or(i32::MAX);
        // Concurrent updates of the row take turns, and each one's WHERE sees the row the one
        // before it left: the attempt that reaches the threshold sets the lock (SET reads the
        // old row), every later one finds it.
        let row = c
            .query_opt(
                "UPDATE users SET failed_logins = failed_logins + 1,
                     locked_until_us = CASE WHEN failed_logins + 1 >= $4 THEN $5 ELSE locked_until_us END
                 WHERE id = $1 AND org = $2 AND (locked_until_us IS NULL OR locked_until_us <= $3)
                 RETURNING failed_logins",
                &[&user.0, &org.0, &now.as_micros(), &limit, &lock_until.as_micros()],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| {
            let failures = r.get::<_, i32>(0).max(0) as u32;
            LoginAttempt { failures, lock: (failures >= threshold).then_some(lock_until) }
        }))
    }

    async fn give_back_login_attempt(&self, org: OrgId, user: UserId, a: &LoginAttempt) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE users SET failed_logins = GREATEST(failed_logins - 1, 0),
                 locked_until_us = CASE WHEN locked_until_us = $3 THEN NULL ELSE locked_until_us END
             WHERE id = $1 AND org = $2",
            &[&user.0, &org.0, &a.lock.map(Timestamp::as_micros)],
        )
        .await
        .map(drop)
        .map_err(pg)
    }

    async fn add_pending_sign_in(
        &self,
        org: OrgId,
        user: UserId,
        token_hash: &[u8; 32],
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM pending_sign_ins WHERE expires_us <= $1", &[&now.as_micros()]).await.map_err(pg)?;
        c.execute(
            "INSERT INTO pending_sign_ins (token_hash, org, user_id, expires_us) VALUES ($1, $2, $3, $4)",
            &[&&token_hash[..], &org.0, &user.0, &expires.as_micros()],
        )
        .await
        .map(drop)
        .map_err(pg)
    }

    async fn count_pending_attempt(
        &self,
        org: OrgId,
        token_hash: &[u8; 32],
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<(UserId, u32)>, StoreError> {
        let c = self.client().await?;
        let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let row = c
            .query_opt(
                "UPDATE pending_sign_ins SET attempts = attempts + 1
                 WHERE token_hash = $1 AND org = $2 AND expires_us > $3 AND attempts < $4
                 RETURNING user_id, attempts",
                &[&&token_hash[..], &org.0, &now.as_micros(), &max],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| (UserId(r.get(0)), r.get::<_, i32>(1).max(0) as u32)))
    }
}
