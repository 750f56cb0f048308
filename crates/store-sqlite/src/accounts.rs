//! The accounts tables on SQLite: the statements of the account mutations (their rules are
//! `logbook_store::accounts`'), and the reads of [`AccountStore`].

use async_trait::async_trait;
use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};
use logbook_store::accounts::{
    like_escape, AccountTx, InvitationRecord, LoginAttempt, NewUser, PasswordHash, ProtectedUser, SealedTotp,
    SessionRecord, SignInState, UserRecord,
};
use logbook_store::{AccountStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::commit::SqliteTx;
use crate::rows::{
    hash32, i, inserted, invitation_row, protected_row, role, session_row, store_error, u, user_row,
    INVITATION_COLUMNS, SESSION_COLUMNS, USER_COLUMNS,
};
use crate::SqliteStore;

fn count(r: rusqlite::Result<usize>) -> Result<u64, StoreError> {
    r.map(|n| n as u64).map_err(store_error)
}

// SQLite has one writer and the transaction began IMMEDIATE: no other writer can change a row
// this transaction read, so the reads need no row locks.
impl AccountTx for SqliteTx<'_> {
    fn org(&self) -> OrgId {
        self.org
    }

    async fn user_count(&self) -> Result<u64, StoreError> {
        self.tx
            .query_row("SELECT COUNT(*) FROM users WHERE org = ?1", [self.org.0], |r| r.get(0))
            .map(u)
            .map_err(store_error)
    }

    async fn user_role(&self, user: UserId) -> Result<Option<Role>, StoreError> {
        self.tx
            .query_row("SELECT role FROM users WHERE id = ?1 AND org = ?2", params![user.0, self.org.0], |r| role(r, 0))
            .optional()
            .map_err(store_error)
    }

    async fn admins_other_than(&self, user: UserId) -> Result<u64, StoreError> {
        self.tx
            .query_row(
                "SELECT COUNT(*) FROM users WHERE org = ?1 AND role = 'admin' AND id <> ?2",
                params![self.org.0, user.0],
                |r| r.get(0),
            )
            .map(u)
            .map_err(store_error)
    }

    async fn insert_user(&self, n: &NewUser<'_>) -> Result<bool, StoreError> {
        inserted(self.tx.execute(
            "INSERT INTO users (id, org, email, role, password_hash, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![n.id.0, self.org.0, n.email, n.role.code(), n.password_hash.0, n.created.as_micros()],
        ))
    }

    async fn update_role(&self, user: UserId, role: Role) -> Result<u64, StoreError> {
        count(
            self.tx.execute(
                "UPDATE users SET role = ?1 WHERE id = ?2 AND org = ?3",
                params![role.code(), user.0, self.org.0],
            ),
        )
    }

    async fn delete_user(&self, user: UserId) -> Result<u64, StoreError> {
        count(self.tx.execute("DELETE FROM users WHERE id = ?1 AND org = ?2", params![user.0, self.org.0]))
    }

    async fn update_password(&self, user: UserId, password_hash: &PasswordHash) -> Result<u64, StoreError> {
        count(self.tx.execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2 AND org = ?3",
            params![password_hash.0, user.0, self.org.0],
        ))
    }

    async fn update_totp(&self, user: UserId, secret: Option<&SealedTotp>) -> Result<u64, StoreError> {
        count(self.tx.execute(
            "UPDATE users SET totp_secret = ?1, totp_last_step = NULL WHERE id = ?2 AND org = ?3",
            params![secret.map(|s| s.0.as_str()), user.0, self.org.0],
        ))
    }

    async fn sign_in_state(&self, user: UserId) -> Result<Option<SignInState>, StoreError> {
        self.tx
            .query_row(
                "SELECT locked_until_us, totp_last_step FROM users WHERE id = ?1 AND org = ?2",
                params![user.0, self.org.0],
                |r| {
                    Ok(SignInState {
                        locked_until: r.get::<_, Option<i64>>(0)?.map(Timestamp::from_micros),
                        totp_last_step: r.get::<_, Option<i64>>(1)?.map(u),
                    })
                },
            )
            .optional()
            .map_err(store_error)
    }

    async fn reset_login_failures(&self, user: UserId, totp_step: Option<u64>) -> Result<u64, StoreError> {
        count(self.tx.execute(
            "UPDATE users SET failed_logins = 0, locked_until_us = NULL, totp_last_step = COALESCE(?1, totp_last_step)
             WHERE id = ?2 AND org = ?3",
            params![totp_step.map(i), user.0, self.org.0],
        ))
    }

    async fn delete_pending_sign_in(&self, user: UserId, token_hash: &[u8; 32]) -> Result<u64, StoreError> {
        count(self.tx.execute(
            "DELETE FROM pending_sign_ins WHERE token_hash = ?1 AND user_id = ?2 AND org = ?3",
            params![&token_hash[..], user.0, self.org.0],
        ))
    }

    async fn delete_pending_sign_ins_of(&self, user: UserId) -> Result<u64, StoreError> {
        count(
            self.tx
                .execute("DELETE FROM pending_sign_ins WHERE user_id = ?1 AND org = ?2", params![user.0, self.org.0]),
        )
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO sessions (token_hash, user_id, org, created_us, last_seen_us, expires_us, address, user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &s.token_hash[..],
                    s.user.0,
                    self.org.0,
                    s.created.as_micros(),
                    s.last_seen.as_micros(),
                    s.expires.as_micros(),
                    s.address,
                    s.user_agent
                ],
            )
            .map(drop)
            .map_err(store_error)
    }

    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        count(self.tx.execute("DELETE FROM sessions WHERE user_id = ?1 AND org = ?2", params![user.0, self.org.0]))
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<u64, StoreError> {
        count(
            self.tx.execute(
                "DELETE FROM sessions WHERE token_hash = ?1 AND org = ?2",
                params![&token_hash[..], self.org.0],
            ),
        )
    }

    async fn session_exists(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.tx
            .query_row(
                "SELECT 1 FROM sessions WHERE token_hash = ?1 AND org = ?2",
                params![&token_hash[..], self.org.0],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(store_error)
    }

    async fn session_hashes_of(&self, user: UserId) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT token_hash FROM sessions WHERE user_id = ?1 AND org = ?2")
            .map_err(store_error)?;
        let rows = stmt.query_map(params![user.0, self.org.0], |r| hash32(r.get(0)?)).map_err(store_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(store_error)
    }

    async fn insert_session_view(&self, token_hash: &[u8; 32], digest: &[u8; 32]) -> Result<bool, StoreError> {
        count(self.tx.execute(
            "INSERT INTO session_views (token_hash, digest) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![&token_hash[..], &digest[..]],
        ))
        .map(|n| n == 1)
    }

    async fn insert_invitation(&self, inv: &InvitationRecord, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO invitations (id, org, email, role, token_hash, invited_by, created_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    inv.id.0,
                    inv.org.0,
                    inv.email,
                    inv.role.code(),
                    &token_hash[..],
                    inv.invited_by,
                    inv.created.as_micros(),
                    inv.expires.as_micros()
                ],
            )
            .map(drop)
            .map_err(store_error)
    }

    async fn invitation(&self, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError> {
        self.tx
            .query_row(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = ?1 AND org = ?2"),
                params![id.0, self.org.0],
                invitation_row,
            )
            .optional()
            .map_err(store_error)
    }

    async fn set_invitation_accepted(&self, id: InvitationId, now: Timestamp) -> Result<u64, StoreError> {
        count(self.tx.execute(
            "UPDATE invitations SET accepted_us = ?1 WHERE id = ?2 AND org = ?3",
            params![now.as_micros(), id.0, self.org.0],
        ))
    }

    async fn set_invitation_revoked(&self, id: InvitationId, now: Timestamp) -> Result<u64, StoreError> {
        count(self.tx.execute(
            "UPDATE invitations SET revoked_us = ?1 WHERE id = ?2 AND org = ?3",
            params![now.as_micros(), id.0, self.org.0],
        ))
    }

    async fn insert_protected_user(&self, p: &ProtectedUser) -> Result<bool, StoreError> {
        inserted(self.tx.execute(
            "INSERT INTO protected_users (id, org, email, name, added_us) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.id.0, self.org.0, p.email, p.name, p.added.as_micros()],
        ))
    }

    async fn delete_protected_user(&self, id: ProtectedUserId) -> Result<u64, StoreError> {
        count(self.tx.execute("DELETE FROM protected_users WHERE id = ?1 AND org = ?2", params![id.0, self.org.0]))
    }

    async fn put_settings(&self, json: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO settings (org, json) VALUES (?1, ?2) ON CONFLICT (org) DO UPDATE SET json = excluded.json",
                params![self.org.0, json],
            )
            .map(drop)
            .map_err(store_error)
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn user_count(&self, org: OrgId) -> Result<u64, StoreError> {
        self.read(move |c| c.query_row("SELECT COUNT(*) FROM users WHERE org = ?1", [org.0], |r| r.get::<_, i64>(0)))
            .await
            .map(u)
    }

    async fn users_of(&self, org: OrgId) -> Result<Vec<UserRecord>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE org = ?1 ORDER BY email"))?
                .query_map([org.0], user_row)?
                .collect()
        })
        .await
    }

    async fn user(&self, org: OrgId, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE org = ?1 AND id = ?2"),
                params![org.0, id.0],
                user_row,
            )
            .optional()
        })
        .await
    }

    async fn user_by_email(&self, org: OrgId, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let email = email.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE org = ?1 AND email = ?2"),
                params![org.0, email],
                user_row,
            )
            .optional()
        })
        .await
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let h = *token_hash;
        self.read(move |c| {
            let Some(s) = c
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?1"),
                    [&h[..]],
                    session_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let user = c
                .query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [s.user.0], user_row)
                .optional()?;
            Ok(user.map(|u| (s, u)))
        })
        .await
    }

    async fn reseal_totp(
        &self,
        org: OrgId,
        user: UserId,
        from: &SealedTotp,
        to: &SealedTotp,
    ) -> Result<bool, StoreError> {
        let (from, to) = (from.0.clone(), to.0.clone());
        self.write(move |c: &mut Connection| {
            c.execute(
                "UPDATE users SET totp_secret = ?1 WHERE id = ?2 AND org = ?3 AND totp_secret = ?4",
                params![to, user.0, org.0, from],
            )
            .map(|n| n == 1)
            .map_err(store_error)
        })
        .await
    }

    async fn touch_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<(), StoreError> {
        let h = *token_hash;
        self.write(move |c: &mut Connection| {
            c.execute(
                "UPDATE sessions SET last_seen_us = MAX(last_seen_us, ?1) WHERE token_hash = ?2",
                params![now.as_micros(), &h[..]],
            )
            .map(drop)
            .map_err(store_error)
        })
        .await
    }

    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 ORDER BY created_us"))?
                .query_map([user.0], session_row)?
                .collect()
        })
        .await
    }

    async fn expired_sessions(
        &self,
        org: OrgId,
        idle_since: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE org = ?1 AND last_seen_us < ?2
                 UNION SELECT {SESSION_COLUMNS} FROM sessions WHERE org = ?1 AND expires_us <= ?3
                 LIMIT ?4"
            ))?
            .query_map(params![org.0, idle_since.as_micros(), now.as_micros(), limit as i64], session_row)?
            .collect()
        })
        .await
    }

    async fn invitation_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<InvitationRecord>, StoreError> {
        let h = *token_hash;
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = ?1"),
                [&h[..]],
                invitation_row,
            )
            .optional()
        })
        .await
    }

    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<InvitationRecord>, StoreError> {
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE org = ?1 AND id = ?2"),
                params![org.0, id.0],
                invitation_row,
            )
            .optional()
        })
        .await
    }

    async fn invitations(&self, org: OrgId) -> Result<Vec<InvitationRecord>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE org = ?1 ORDER BY id DESC"))?
                .query_map([org.0], invitation_row)?
                .collect()
        })
        .await
    }

    async fn protected_users(
        &self,
        org: OrgId,
        search: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProtectedUser>, StoreError> {
        let pattern = search.map(|s| format!("%{}%", like_escape(&s.to_lowercase())));
        let after = after.map(str::to_owned);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, email, name, added_us FROM protected_users
                 WHERE org = ?1 AND (?2 IS NULL OR email > ?2)
                   AND (?3 IS NULL OR email LIKE ?3 ESCAPE '\\' OR lower(name) LIKE ?3 ESCAPE '\\')
                 ORDER BY email LIMIT ?4",
            )?
            .query_map(params![org.0, after, pattern, limit as i64], protected_row)?
            .collect()
        })
        .await
    }

    async fn protected_user(&self, org: OrgId, id: ProtectedUserId) -> Result<Option<ProtectedUser>, StoreError> {
        self.read(move |c| {
            c.query_row(
                "SELECT id, email, name, added_us FROM protected_users WHERE org = ?1 AND id = ?2",
                params![org.0, id.0],
                protected_row,
            )
            .optional()
        })
        .await
    }

    async fn protected_emails(&self, org: OrgId, emails: &[String]) -> Result<Vec<String>, StoreError> {
        let emails = emails.to_vec();
        self.read(move |c| {
            let mut stmt = c.prepare_cached("SELECT email FROM protected_users WHERE org = ?1 AND email = ?2")?;
            let mut found = Vec::new();
            for e in &emails {
                if let Some(x) = stmt.query_row(params![org.0, e], |r| r.get::<_, String>(0)).optional()? {
                    found.push(x);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn settings_json(&self, org: OrgId) -> Result<Option<String>, StoreError> {
        self.read(move |c| c.query_row("SELECT json FROM settings WHERE org = ?1", [org.0], |r| r.get(0)).optional())
            .await
    }

    async fn sign_in_failures(&self, org: OrgId, address: &str, since: Timestamp) -> Result<u32, StoreError> {
        let address = address.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT failures FROM sign_in_throttle WHERE org = ?1 AND address = ?2 AND window_start_us >= ?3",
            )?
            .query_row(params![org.0, address, since.as_micros()], |r| r.get(0))
            .optional()
            .map(Option::unwrap_or_default)
        })
        .await
    }

    async fn count_sign_in_attempt(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        since: Timestamp,
        max: u32,
    ) -> Result<Option<u32>, StoreError> {
        let address = address.to_owned();
        self.write(move |c: &mut Connection| {
            // SET and WHERE read the old row: an expired window restarts at `now` with one
            // failure; a full one is left alone and returns no row.
            c.prepare_cached(
                "INSERT INTO sign_in_throttle (org, address, window_start_us, failures) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (org, address) DO UPDATE SET
                     failures = CASE WHEN window_start_us < ?4 THEN 1 ELSE failures + 1 END,
                     window_start_us = CASE WHEN window_start_us < ?4 THEN ?3 ELSE window_start_us END
                 WHERE window_start_us < ?4 OR failures < ?5
                 RETURNING failures",
            )
            .and_then(|mut st| {
                st.query_row(params![org.0, address, now.as_micros(), since.as_micros(), max], |r| r.get(0)).optional()
            })
            .map_err(store_error)
        })
        .await
    }

    async fn give_back_sign_in_attempt(&self, org: OrgId, address: &str, since: Timestamp) -> Result<(), StoreError> {
        let address = address.to_owned();
        self.write(move |c: &mut Connection| {
            c.prepare_cached(
                "UPDATE sign_in_throttle SET failures = failures - 1
                 WHERE org = ?1 AND address = ?2 AND window_start_us >= ?3 AND failures > 0",
            )
            .and_then(|mut st| st.execute(params![org.0, address, since.as_micros()]))
            .map(drop)
            .map_err(store_error)
        })
        .await
    }

    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(move |c: &mut Connection| {
            c.execute("DELETE FROM sign_in_throttle WHERE window_start_us < ?1", [before.as_micros()])
                .map(|n| n as u64)
                .map_err(store_error)
        })
        .await
    }

    async fn count_login_attempt(
        &self,
        org: OrgId,
        user: UserId,
        now: Timestamp,
        threshold: u32,
        lock_until: Timestamp,
    ) -> Result<Option<LoginAttempt>, StoreError> {
        self.write(move |c: &mut Connection| {
            // SET reads the old row: the attempt that reaches the threshold sets the lock, which
            // the WHERE of every later one then sees.
            c.prepare_cached(
                "UPDATE users SET failed_logins = failed_logins + 1,
                     locked_until_us = CASE WHEN failed_logins + 1 >= ?4 THEN ?5 ELSE locked_until_us END
                 WHERE id = ?1 AND org = ?2 AND (locked_until_us IS NULL OR locked_until_us <= ?3)
                 RETURNING failed_logins",
            )
            .and_then(|mut st| {
                st.query_row(params![user.0, org.0, now.as_micros(), threshold, lock_until.as_micros()], |r| {
                    r.get::<_, u32>(0)
                })
                .optional()
            })
            .map(|f| f.map(|failures| LoginAttempt { failures, lock: (failures >= threshold).then_some(lock_until) }))
            .map_err(store_error)
        })
        .await
    }

    async fn give_back_login_attempt(&self, org: OrgId, user: UserId, a: &LoginAttempt) -> Result<(), StoreError> {
        let lock = a.lock.map(Timestamp::as_micros);
        self.write(move |c: &mut Connection| {
            c.prepare_cached(
                "UPDATE users SET failed_logins = MAX(failed_logins - 1, 0),
                     locked_until_us = CASE WHEN locked_until_us = ?3 THEN NULL ELSE locked_until_us END
                 WHERE id = ?1 AND org = ?2",
            )
            .and_then(|mut st| st.execute(params![user.0, org.0, lock]))
            .map(drop)
            .map_err(store_error)
        })
        .await
    }

    async fn add_pending_sign_in(
        &self,
        org: OrgId,
        user: UserId,
        token_hash: &[u8; 32],
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        let h = *token_hash;
        self.write(move |c: &mut Connection| {
            let add = |c: &mut Connection| {
                let tx = c.transaction()?;
                tx.execute("DELETE FROM pending_sign_ins WHERE expires_us <= ?1", [now.as_micros()])?;
                tx.execute(
                    "INSERT INTO pending_sign_ins (token_hash, org, user_id, expires_us) VALUES (?1, ?2, ?3, ?4)",
                    params![&h[..], org.0, user.0, expires.as_micros()],
                )?;
                tx.commit()
            };
            add(c).map_err(store_error)
        })
        .await
    }

    async fn count_pending_attempt(
        &self,
        org: OrgId,
        token_hash: &[u8; 32],
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Option<(UserId, u32)>, StoreError> {
        let h = *token_hash;
        self.write(move |c: &mut Connection| {
            c.prepare_cached(
                "UPDATE pending_sign_ins SET attempts = attempts + 1
                 WHERE token_hash = ?1 AND org = ?2 AND expires_us > ?3 AND attempts < ?4
                 RETURNING user_id, attempts",
            )
            .and_then(|mut st| {
                st.query_row(params![&h[..], org.0, now.as_micros(), max_attempts], |r| {
                    Ok((UserId(r.get(0)?), r.get::<_, u32>(1)?))
                })
                .optional()
            })
            .map_err(store_error)
        })
        .await
    }
}
