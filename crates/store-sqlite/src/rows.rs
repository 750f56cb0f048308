//! From SQLite's rows and errors to the store's types.

use logbook_core::{ActionGrant, ApiTokenId, InvitationId, OrgId, OrgSlug, ProtectedUserId, Role, Timestamp, UserId};
use logbook_store::accounts::{InvitationRecord, PasswordHash, ProtectedUser, SealedTotp, SessionRecord, UserRecord};
use logbook_store::{ApiToken, EventRow, StoreError, StoredCheckpoint};
use rusqlite::types::Type;
use rusqlite::{ErrorCode, Row};

/// Classifies a driver error: a full disk and an operating-system I/O failure mean something
/// different to the sequencer than any other failure (see [`StoreError`]).
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::DiskFull {
            return StoreError::DiskFull;
        }
        if f.code == ErrorCode::SystemIoFailure {
            return StoreError::Io(Box::new(e));
        }
    }
    StoreError::backend(e)
}

pub(crate) fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// `Ok(false)` when a constraint refused the insert.
pub(crate) fn inserted(r: rusqlite::Result<usize>) -> Result<bool, StoreError> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if is_constraint(&e) => Ok(false),
        Err(e) => Err(store_error(e)),
    }
}

pub(crate) fn u(v: i64) -> u64 {
    v.max(0) as u64
}

pub(crate) fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn hash32(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into().map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, 32))
}

fn conversion(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

pub(crate) const EVENT_COLUMNS: &str = "seq, time_us, action, user, leaf, leaf_hash";

pub(crate) fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: u(r.get(0)?),
        time: Timestamp::from_micros(r.get(1)?),
        action: r.get(2)?,
        user: r.get(3)?,
        leaf: r.get(4)?,
        leaf_hash: hash32(r.get(5)?)?,
    })
}

pub(crate) fn checkpoint_row(r: &Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: u(r.get(0)?),
        root: hash32(r.get(1)?)?,
        note: r.get(2)?,
        signed_at: Timestamp::from_micros(r.get(3)?),
    })
}

pub(crate) fn token_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: ApiTokenId(r.get(0)?),
        org: OrgId(r.get(1)?),
        name: r.get(2)?,
        created: Timestamp::from_micros(r.get(3)?),
        revoked: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
        grant: ActionGrant::parse(&r.get::<_, String>(5)?).map_err(|e| conversion(5, e))?,
    })
}

pub(crate) const ORG_BY_SLUG: &str = "SELECT id, slug, created_us FROM orgs WHERE slug = ?1";

pub(crate) fn org_row(r: &Row<'_>) -> rusqlite::Result<logbook_store::Org> {
    let slug: String = r.get(1)?;
    Ok(logbook_store::Org {
        id: OrgId(r.get(0)?),
        slug: OrgSlug::parse(&slug).map_err(|e| conversion(1, e))?,
        created: Timestamp::from_micros(r.get(2)?),
    })
}

pub(crate) fn role(r: &Row<'_>, idx: usize) -> rusqlite::Result<Role> {
    let code: String = r.get(idx)?;
    Role::from_code(&code).map_err(|e| conversion(idx, e))
}

pub(crate) const USER_COLUMNS: &str =
    "id, org, email, role, password_hash, totp_secret, totp_last_step, failed_logins, locked_until_us, created_us";

pub(crate) fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(r.get(0)?),
        org: OrgId(r.get(1)?),
        email: r.get(2)?,
        role: role(r, 3)?,
        password_hash: PasswordHash(r.get(4)?),
        totp: r.get::<_, Option<String>>(5)?.map(SealedTotp),
        totp_last_step: r.get::<_, Option<i64>>(6)?.map(u),
        failed_logins: r.get::<_, i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
        locked_until: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_micros),
        created: Timestamp::from_micros(r.get(9)?),
    })
}

pub(crate) const SESSION_COLUMNS: &str =
    "token_hash, user_id, created_us, last_seen_us, expires_us, address, user_agent";

pub(crate) fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        token_hash: hash32(r.get(0)?)?,
        user: UserId(r.get(1)?),
        created: Timestamp::from_micros(r.get(2)?),
        last_seen: Timestamp::from_micros(r.get(3)?),
        expires: Timestamp::from_micros(r.get(4)?),
        address: r.get(5)?,
        user_agent: r.get(6)?,
    })
}

pub(crate) const INVITATION_COLUMNS: &str =
    "id, org, email, role, invited_by, created_us, expires_us, accepted_us, revoked_us";

pub(crate) fn invitation_row(r: &Row<'_>) -> rusqlite::Result<InvitationRecord> {
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

pub(crate) fn protected_row(r: &Row<'_>) -> rusqlite::Result<ProtectedUser> {
    Ok(ProtectedUser {
        id: ProtectedUserId(r.get(0)?),
        email: r.get(1)?,
        name: r.get(2)?,
        added: Timestamp::from_micros(r.get(3)?),
    })
}
