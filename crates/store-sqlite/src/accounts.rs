//! The accounts tables on SQLite: the mutations applied inside the append's transaction, and
//! the reads of [`AccountStore`].

use async_trait::async_trait;
use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};
use logbook_store::accounts::{
    like_escape, InvitationRecord, PasswordHash, ProtectedUser, SessionRecord, TotpSecret, UserRecord,
};
use logbook_store::{AccountMutation, AccountStore, MutationError, MutationOutput, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{hash32, i, is_constraint, u, SqliteStore};

type Applied = Result<MutationOutput, Result<MutationError, rusqlite::Error>>;

fn refuse(reason: MutationError) -> Applied {
    Err(Ok(reason))
}

fn role(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Role> {
    let code: String = r.get(idx)?;
    Role::from_code(&code)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

const USER_COLUMNS: &str =
    "id, org, email, role, password_hash, totp_secret, totp_last_step, failed_logins, locked_until_us, created_us";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(r.get(0)?),
        org: OrgId(r.get(1)?),
        email: r.get(2)?,
        role: role(r, 3)?,
        password_hash: PasswordHash(r.get(4)?),
        totp: r.get::<_, Option<String>>(5)?.map(TotpSecret),
        totp_last_step: r.get::<_, Option<i64>>(6)?.map(u),
        failed_logins: r.get::<_, i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
        locked_until: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_micros),
        created: Timestamp::from_micros(r.get(9)?),
    })
}

const SESSION_COLUMNS: &str = "token_hash, user_id, created_us, last_seen_us, expires_us";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        token_hash: hash32(r.get(0)?)?,
        user: UserId(r.get(1)?),
        created: Timestamp::from_micros(r.get(2)?),
        last_seen: Timestamp::from_micros(r.get(3)?),
        expires: Timestamp::from_micros(r.get(4)?),
    })
}

const INVITATION_COLUMNS: &str = "id, org, email, role, invited_by, created_us, expires_us, accepted_us, revoked_us";

fn invitation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvitationRecord> {
    Ok(InvitationRecord {
        id: InvitationId(r.get(0)?),
        org: OrgId(r.get(1)?),
        email: r.get(2)?,
        role: role(r, 3)?,
        invited_by: r.get(4)?,
        created: Timestamp::from_micros(r.get(5)?),
        expires: Timestamp::from_micros(r.get(6)?),
        accepted: r.get::<_, Option<i64>>(7)?.map(Timestamp::from_micros),
        revoked: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_micros),
    })
}

fn protected_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProtectedUser> {
    Ok(ProtectedUser {
        id: ProtectedUserId(r.get(0)?),
        email: r.get(1)?,
        name: r.get(2)?,
        added: Timestamp::from_micros(r.get(3)?),
    })
}

fn current_role(tx: &Connection, org: OrgId, user: UserId) -> rusqlite::Result<Option<Role>> {
    tx.query_row("SELECT role FROM users WHERE id = ?1 AND org = ?2", params![user.0, org.0], |r| role(r, 0)).optional()
}

fn other_admins(tx: &Connection, org: OrgId, user: UserId) -> rusqlite::Result<i64> {
    tx.query_row(
        "SELECT COUNT(*) FROM users WHERE org = ?1 AND role = 'admin' AND id <> ?2",
        params![org.0, user.0],
        |r| r.get(0),
    )
}

fn insert_user(
    tx: &Connection,
    org: OrgId,
    now: Timestamp,
    (id, email, role): (UserId, &str, Role),
    hash: &PasswordHash,
) -> Applied {
    match tx.execute(
        "INSERT INTO users (id, org, email, role, password_hash, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id.0, org.0, email, role.code(), hash.0, now.as_micros()],
    ) {
        Ok(_) => Ok(MutationOutput::UserCreated(id)),
        Err(e) if is_constraint(&e) => refuse(MutationError::EmailTaken),
        Err(e) => Err(Err(e)),
    }
}

fn changed(n: usize) -> Applied {
    if n == 0 {
        refuse(MutationError::NotFound)
    } else {
        Ok(MutationOutput::Done)
    }
}

/// Applies one account mutation inside the append's transaction.
pub(crate) fn apply(tx: &Connection, org: OrgId, now: Timestamp, m: &AccountMutation) -> Applied {
    match m {
        AccountMutation::CreateUser { id, email, role, password_hash, only_if_first } => {
            if *only_if_first {
                let n: i64 = tx.query_row("SELECT COUNT(*) FROM users WHERE org = ?1", [org.0], |r| r.get(0)).map_err(Err)?;
                if n > 0 {
                    return refuse(MutationError::Conflict);
                }
            }
            insert_user(tx, org, now, (*id, email, *role), password_hash)
        }
        AccountMutation::SetUserRole { user, from, to } => {
            match current_role(tx, org, *user).map_err(Err)? {
                None => return refuse(MutationError::NotFound),
                Some(r) if r != *from => return refuse(MutationError::Conflict),
                Some(_) => {}
            }
            if *from == Role::Admin && *to != Role::Admin && other_admins(tx, org, *user).map_err(Err)? == 0 {
                return refuse(MutationError::LastAdmin);
            }
            changed(tx.execute("UPDATE users SET role = ?1 WHERE id = ?2", params![to.code(), user.0]).map_err(Err)?)
        }
        AccountMutation::DeleteUser { user } => {
            match current_role(tx, org, *user).map_err(Err)? {
                None => return refuse(MutationError::NotFound),
                Some(Role::Admin) if other_admins(tx, org, *user).map_err(Err)? == 0 => {
                    return refuse(MutationError::LastAdmin)
                }
                Some(_) => {}
            }
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user.0]).map_err(Err)?;
            changed(tx.execute("DELETE FROM users WHERE id = ?1", [user.0]).map_err(Err)?)
        }
        AccountMutation::SetPassword { user, password_hash } => changed(
            tx.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2 AND org = ?3",
                params![password_hash.0, user.0, org.0],
            )
            .map_err(Err)?,
        ),
        AccountMutation::SetTotp { user, secret } => changed(
            tx.execute(
                "UPDATE users SET totp_secret = ?1, totp_last_step = NULL WHERE id = ?2 AND org = ?3",
                params![secret.as_ref().map(|s| s.0.as_str()), user.0, org.0],
            )
            .map_err(Err)?,
        ),
        AccountMutation::CreateSession { user, token_hash, expires, totp_step } => {
            let last: Option<Option<i64>> = tx
                .query_row("SELECT totp_last_step FROM users WHERE id = ?1 AND org = ?2", params![user.0, org.0], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(Err)?;
            let Some(last) = last else { return refuse(MutationError::NotFound) };
            if let Some(step) = totp_step {
                if last.is_some_and(|l| u(l) >= *step) {
                    return refuse(MutationError::TotpReplay);
                }
            }
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until_us = NULL, totp_last_step = COALESCE(?1, totp_last_step) WHERE id = ?2",
                params![totp_step.map(i), user.0],
            )
            .map_err(Err)?;
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, org, created_us, last_seen_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![&token_hash[..], user.0, org.0, now.as_micros(), expires.as_micros()],
            )
            .map_err(Err)?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::RecordLoginFailure { user, lock_until } => changed(
            tx.execute(
                "UPDATE users SET failed_logins = failed_logins + 1, locked_until_us = COALESCE(?1, locked_until_us) WHERE id = ?2 AND org = ?3",
                params![lock_until.map(|t| t.as_micros()), user.0, org.0],
            )
            .map_err(Err)?,
        ),
        AccountMutation::EndSession { token_hash } => changed(
            tx.execute("DELETE FROM sessions WHERE token_hash = ?1 AND org = ?2", params![&token_hash[..], org.0])
                .map_err(Err)?,
        ),
        AccountMutation::CreateInvitation { id, email, role, token_hash, invited_by, expires } => {
            tx.execute(
                "INSERT INTO invitations (id, org, email, role, token_hash, invited_by, created_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id.0, org.0, email, role.code(), &token_hash[..], invited_by, now.as_micros(), expires.as_micros()],
            )
            .map_err(Err)?;
            Ok(MutationOutput::InvitationCreated(*id))
        }
        AccountMutation::AcceptInvitation { id, user, password_hash } => {
            let inv = tx
                .query_row(
                    &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = ?1 AND org = ?2"),
                    params![id.0, org.0],
                    invitation_row,
                )
                .optional()
                .map_err(Err)?;
            let Some(inv) = inv.filter(|inv| inv.is_open(now)) else { return refuse(MutationError::NotFound) };
            tx.execute("UPDATE invitations SET accepted_us = ?1 WHERE id = ?2", params![now.as_micros(), id.0])
                .map_err(Err)?;
            insert_user(tx, org, now, (*user, &inv.email, inv.role), password_hash)
        }
        AccountMutation::RevokeInvitation { id } => changed(
            tx.execute(
                "UPDATE invitations SET revoked_us = ?1 WHERE id = ?2 AND org = ?3 AND accepted_us IS NULL AND revoked_us IS NULL",
                params![now.as_micros(), id.0, org.0],
            )
            .map_err(Err)?,
        ),
        AccountMutation::AddProtectedUser { id, email, name } => match tx.execute(
            "INSERT INTO protected_users (id, org, email, name, added_us) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.0, org.0, email, name, now.as_micros()],
        ) {
            Ok(_) => Ok(MutationOutput::ProtectedUserAdded(*id)),
            Err(e) if is_constraint(&e) => refuse(MutationError::EmailTaken),
            Err(e) => Err(Err(e)),
        },
        AccountMutation::RemoveProtectedUser { id } => changed(
            tx.execute("DELETE FROM protected_users WHERE id = ?1 AND org = ?2", params![id.0, org.0]).map_err(Err)?,
        ),
        AccountMutation::PutSettings { json } => {
            tx.execute(
                "INSERT INTO settings (org, json) VALUES (?1, ?2) ON CONFLICT (org) DO UPDATE SET json = excluded.json",
                params![org.0, json],
            )
            .map_err(Err)?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::RecordView { token_hash, digest } => {
            match tx.execute(
                "INSERT INTO session_views (token_hash, digest) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![&token_hash[..], &digest[..]],
            ) {
                Ok(1) => Ok(MutationOutput::Done),
                Ok(_) => refuse(MutationError::AlreadyRecorded),
                // The session ended meanwhile: nothing to remember it by.
                Err(e) if is_constraint(&e) => refuse(MutationError::NotFound),
                Err(e) => Err(Err(e)),
            }
        }
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

    async fn touch_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<(), StoreError> {
        let h = *token_hash;
        self.write(move |c: &mut Connection| {
            c.execute(
                "UPDATE sessions SET last_seen_us = MAX(last_seen_us, ?1) WHERE token_hash = ?2",
                params![now.as_micros(), &h[..]],
            )
            .map(drop)
            .map_err(crate::backend)
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

    async fn count_sign_in_failure(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        since: Timestamp,
    ) -> Result<u32, StoreError> {
        let address = address.to_owned();
        self.write(move |c: &mut Connection| {
            // SET reads the old row, so an expired window restarts at `now` with one failure.
            c.prepare_cached(
                "INSERT INTO sign_in_throttle (org, address, window_start_us, failures) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (org, address) DO UPDATE SET
                     failures = CASE WHEN window_start_us < ?4 THEN 1 ELSE failures + 1 END,
                     window_start_us = CASE WHEN window_start_us < ?4 THEN ?3 ELSE window_start_us END
                 RETURNING failures",
            )
            .and_then(|mut st| st.query_row(params![org.0, address, now.as_micros(), since.as_micros()], |r| r.get(0)))
            .map_err(crate::backend)
        })
        .await
    }

    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(move |c: &mut Connection| {
            c.execute("DELETE FROM sign_in_throttle WHERE window_start_us < ?1", [before.as_micros()])
                .map(|n| n as u64)
                .map_err(crate::backend)
        })
        .await
    }
}
