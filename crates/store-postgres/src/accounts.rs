//! The accounts tables on PostgreSQL: the mutations applied inside the append's transaction
//! (which holds the log's advisory lock, so the "last admin" checks cannot race), and the reads
//! of [`AccountStore`].

use async_trait::async_trait;
use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};
use logbook_store::accounts::{
    like_escape, InvitationRecord, PasswordHash, ProtectedUser, SessionRecord, TotpSecret, UserRecord,
};
use logbook_store::{AccountMutation, AccountStore, MutationError, MutationOutput, StoreError};
use tokio_postgres::{Row, Transaction};

use crate::{hash32, i, is_unique_violation, pg, u, PgStore};

/// `Err(Ok(reason))` refuses the mutation; `Err(Err(e))` is a database failure.
type Applied = Result<MutationOutput, Result<MutationError, StoreError>>;

fn refuse(reason: MutationError) -> Applied {
    Err(Ok(reason))
}

fn db(e: tokio_postgres::Error) -> Result<MutationError, StoreError> {
    Err(pg(e))
}

fn role(code: &str) -> Result<Role, StoreError> {
    Role::from_code(code).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const USER_COLUMNS: &str =
    "id, org, email, role, password_hash, totp_secret, totp_last_step, failed_logins, locked_until_us, created_us";

fn user_row(r: &Row) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId(r.get(0)),
        org: OrgId(r.get(1)),
        email: r.get(2),
        role: role(r.get(3))?,
        password_hash: PasswordHash(r.get(4)),
        totp: r.get::<_, Option<String>>(5).map(TotpSecret),
        totp_last_step: r.get::<_, Option<i64>>(6).map(u),
        failed_logins: r.get::<_, i32>(7).max(0) as u32,
        locked_until: r.get::<_, Option<i64>>(8).map(Timestamp::from_micros),
        created: Timestamp::from_micros(r.get(9)),
    })
}

const SESSION_COLUMNS: &str = "token_hash, user_id, created_us, last_seen_us, expires_us";

fn session_row(r: &Row) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        token_hash: hash32(r.get(0))?,
        user: UserId(r.get(1)),
        created: Timestamp::from_micros(r.get(2)),
        last_seen: Timestamp::from_micros(r.get(3)),
        expires: Timestamp::from_micros(r.get(4)),
    })
}

const INVITATION_COLUMNS: &str = "id, org, email, role, invited_by, created_us, expires_us, accepted_us, revoked_us";

fn invitation_row(r: &Row) -> Result<InvitationRecord, StoreError> {
    Ok(InvitationRecord {
        id: InvitationId(r.get(0)),
        org: OrgId(r.get(1)),
        email: r.get(2),
        role: role(r.get(3))?,
        invited_by: r.get(4),
        created: Timestamp::from_micros(r.get(5)),
        expires: Timestamp::from_micros(r.get(6)),
        accepted: r.get::<_, Option<i64>>(7).map(Timestamp::from_micros),
        revoked: r.get::<_, Option<i64>>(8).map(Timestamp::from_micros),
    })
}

fn protected_row(r: &Row) -> ProtectedUser {
    ProtectedUser {
        id: ProtectedUserId(r.get(0)),
        email: r.get(1),
        name: r.get(2),
        added: Timestamp::from_micros(r.get(3)),
    }
}

async fn current_role(tx: &Transaction<'_>, org: OrgId, user: UserId) -> Result<Option<Role>, StoreError> {
    let row = tx
        .query_opt("SELECT role FROM users WHERE id = $1 AND org = $2 FOR UPDATE", &[&user.0, &org.0])
        .await
        .map_err(pg)?;
    row.map(|r| role(r.get(0))).transpose()
}

async fn other_admins(tx: &Transaction<'_>, org: OrgId, user: UserId) -> Result<i64, StoreError> {
    Ok(tx
        .query_one("SELECT COUNT(*) FROM users WHERE org = $1 AND role = 'admin' AND id <> $2", &[&org.0, &user.0])
        .await
        .map_err(pg)?
        .get(0))
}

async fn insert_user(
    tx: &Transaction<'_>,
    org: OrgId,
    now: i64,
    (id, email, role): (UserId, &str, Role),
    hash: &PasswordHash,
) -> Applied {
    match tx
        .execute(
            "INSERT INTO users (id, org, email, role, password_hash, created_us) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&id.0, &org.0, &email, &role.code(), &hash.0, &now],
        )
        .await
    {
        Ok(_) => Ok(MutationOutput::UserCreated(id)),
        Err(e) if is_unique_violation(&e) => refuse(MutationError::EmailTaken),
        Err(e) => Err(db(e)),
    }
}

fn changed(n: u64) -> Applied {
    if n == 0 {
        refuse(MutationError::NotFound)
    } else {
        Ok(MutationOutput::Done)
    }
}

/// Applies one account mutation inside the append's transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, org: OrgId, now: Timestamp, m: &AccountMutation) -> Applied {
    let now = now.as_micros();
    match m {
        AccountMutation::CreateUser { id, email, role, password_hash, only_if_first } => {
            if *only_if_first {
                let n: i64 =
                    tx.query_one("SELECT COUNT(*) FROM users WHERE org = $1", &[&org.0]).await.map_err(db)?.get(0);
                if n > 0 {
                    return refuse(MutationError::Conflict);
                }
            }
            insert_user(tx, org, now, (*id, email, *role), password_hash).await
        }
        AccountMutation::SetUserRole { user, from, to } => {
            match current_role(tx, org, *user).await.map_err(Err)? {
                None => return refuse(MutationError::NotFound),
                Some(r) if r != *from => return refuse(MutationError::Conflict),
                Some(_) => {}
            }
            if *from == Role::Admin && *to != Role::Admin && other_admins(tx, org, *user).await.map_err(Err)? == 0 {
                return refuse(MutationError::LastAdmin);
            }
            changed(tx.execute("UPDATE users SET role = $1 WHERE id = $2", &[&to.code(), &user.0]).await.map_err(db)?)
        }
        AccountMutation::DeleteUser { user } => {
            match current_role(tx, org, *user).await.map_err(Err)? {
                None => return refuse(MutationError::NotFound),
                Some(Role::Admin) if other_admins(tx, org, *user).await.map_err(Err)? == 0 => {
                    return refuse(MutationError::LastAdmin)
                }
                Some(_) => {}
            }
            tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&user.0]).await.map_err(db)?;
            changed(tx.execute("DELETE FROM users WHERE id = $1", &[&user.0]).await.map_err(db)?)
        }
        AccountMutation::SetPassword { user, password_hash } => changed(
            tx.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND org = $3",
                &[&password_hash.0, &user.0, &org.0],
            )
            .await
            .map_err(db)?,
        ),
        AccountMutation::SetTotp { user, secret } => changed(
            tx.execute(
                "UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE id = $2 AND org = $3",
                &[&secret.as_ref().map(|s| s.0.as_str()), &user.0, &org.0],
            )
            .await
            .map_err(db)?,
        ),
        AccountMutation::CreateSession { user, token_hash, expires, totp_step } => {
            let row = tx
                .query_opt("SELECT totp_last_step FROM users WHERE id = $1 AND org = $2 FOR UPDATE", &[&user.0, &org.0])
                .await
                .map_err(db)?;
            let Some(row) = row else { return refuse(MutationError::NotFound) };
            let last: Option<i64> = row.get(0);
            if let Some(step) = totp_step {
                if last.is_some_and(|l| u(l) >= *step) {
                    return refuse(MutationError::TotpReplay);
                }
            }
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until_us = NULL, totp_last_step = COALESCE($1, totp_last_step) WHERE id = $2",
                &[&totp_step.map(i), &user.0],
            )
            .await
            .map_err(db)?;
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, org, created_us, last_seen_us, expires_us) VALUES ($1, $2, $3, $4, $4, $5)",
                &[&&token_hash[..], &user.0, &org.0, &now, &expires.as_micros()],
            )
            .await
            .map_err(db)?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::RecordLoginFailure { user, lock_until } => changed(
            tx.execute(
                "UPDATE users SET failed_logins = failed_logins + 1, locked_until_us = COALESCE($1, locked_until_us) WHERE id = $2 AND org = $3",
                &[&lock_until.map(|t| t.as_micros()), &user.0, &org.0],
            )
            .await
            .map_err(db)?,
        ),
        AccountMutation::EndSession { token_hash } => changed(
            tx.execute("DELETE FROM sessions WHERE token_hash = $1 AND org = $2", &[&&token_hash[..], &org.0])
                .await
                .map_err(db)?,
        ),
        AccountMutation::CreateInvitation { id, email, role, token_hash, invited_by, expires } => {
            tx.execute(
                "INSERT INTO invitations (id, org, email, role, token_hash, invited_by, created_us, expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&id.0, &org.0, email, &role.code(), &&token_hash[..], invited_by, &now, &expires.as_micros()],
            )
            .await
            .map_err(db)?;
            Ok(MutationOutput::InvitationCreated(*id))
        }
        AccountMutation::AcceptInvitation { id, user, password_hash } => {
            let row = tx
                .query_opt(
                    &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1 AND org = $2 FOR UPDATE"),
                    &[&id.0, &org.0],
                )
                .await
                .map_err(db)?;
            let inv = row.as_ref().map(invitation_row).transpose().map_err(Err)?;
            let Some(inv) = inv.filter(|inv| inv.is_open(Timestamp::from_micros(now))) else {
                return refuse(MutationError::NotFound);
            };
            tx.execute("UPDATE invitations SET accepted_us = $1 WHERE id = $2", &[&now, &id.0]).await.map_err(db)?;
            insert_user(tx, org, now, (*user, &inv.email, inv.role), password_hash).await
        }
        AccountMutation::RevokeInvitation { id } => changed(
            tx.execute(
                "UPDATE invitations SET revoked_us = $1 WHERE id = $2 AND org = $3 AND accepted_us IS NULL AND revoked_us IS NULL",
                &[&now, &id.0, &org.0],
            )
            .await
            .map_err(db)?,
        ),
        AccountMutation::AddProtectedUser { id, email, name } => match tx
            .execute(
                "INSERT INTO protected_users (id, org, email, name, added_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, email) DO NOTHING",
                &[&id.0, &org.0, email, name, &now],
            )
            .await
        {
            Ok(1) => Ok(MutationOutput::ProtectedUserAdded(*id)),
            Ok(_) => refuse(MutationError::EmailTaken),
            Err(e) => Err(db(e)),
        },
        AccountMutation::RemoveProtectedUser { id } => changed(
            tx.execute("DELETE FROM protected_users WHERE id = $1 AND org = $2", &[&id.0, &org.0]).await.map_err(db)?,
        ),
        AccountMutation::PutSettings { json } => {
            tx.execute(
                "INSERT INTO settings (org, json) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET json = excluded.json",
                &[&org.0, json],
            )
            .await
            .map_err(db)?;
            Ok(MutationOutput::Done)
        }
        AccountMutation::RecordView { token_hash, digest } => {
            let alive = tx
                .query_opt("SELECT 1 FROM sessions WHERE token_hash = $1 FOR UPDATE", &[&&token_hash[..]])
                .await
                .map_err(db)?;
            if alive.is_none() {
                return refuse(MutationError::NotFound);
            }
            let n = tx
                .execute(
                    "INSERT INTO session_views (token_hash, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&&token_hash[..], &&digest[..]],
                )
                .await
                .map_err(db)?;
            if n == 1 {
                Ok(MutationOutput::Done)
            } else {
                refuse(MutationError::AlreadyRecorded)
            }
        }
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
        let user = UserRecord {
            id: UserId(r.get(5)),
            org: OrgId(r.get(6)),
            email: r.get(7),
            role: role(r.get(8))?,
            password_hash: PasswordHash(r.get(9)),
            totp: r.get::<_, Option<String>>(10).map(TotpSecret),
            totp_last_step: r.get::<_, Option<i64>>(11).map(u),
            failed_logins: r.get::<_, i32>(12).max(0) as u32,
            locked_until: r.get::<_, Option<i64>>(13).map(Timestamp::from_micros),
            created: Timestamp::from_micros(r.get(14)),
        };
        Ok(Some((session, user)))
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

    async fn count_sign_in_failure(
        &self,
        org: OrgId,
        address: &str,
        now: Timestamp,
        since: Timestamp,
    ) -> Result<u32, StoreError> {
        let c = self.client().await?;
        // One statement, so concurrent failures from several processes are all counted; SET
        // reads the old row, so an expired window restarts at `now` with one failure.
        let row = c
            .query_one(
                "INSERT INTO sign_in_throttle AS t (org, address, window_start_us, failures) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (org, address) DO UPDATE SET
                     failures = CASE WHEN t.window_start_us < $4 THEN 1 ELSE t.failures + 1 END,
                     window_start_us = CASE WHEN t.window_start_us < $4 THEN $3 ELSE t.window_start_us END
                 RETURNING failures",
                &[&org.0, &address, &now.as_micros(), &since.as_micros()],
            )
            .await
            .map_err(pg)?;
        Ok(row.get::<_, i32>(0).max(0) as u32)
    }

    async fn prune_sign_in_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM sign_in_throttle WHERE window_start_us < $1", &[&before.as_micros()]).await.map_err(pg)
    }
}
