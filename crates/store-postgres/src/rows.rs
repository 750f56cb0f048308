//! From PostgreSQL's rows and errors to the store's types.

use logbook_core::{ActionGrant, ApiTokenId, InvitationId, OrgId, OrgSlug, ProtectedUserId, Role, Timestamp, UserId};
use logbook_store::accounts::{InvitationRecord, PasswordHash, ProtectedUser, SealedTotp, SessionRecord, UserRecord};
use logbook_store::{ApiToken, EventRow, Org, StoreError, StoredCheckpoint};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// Classifies a driver error: a full disk and an I/O failure of the server's storage mean
/// something different to the sequencer than any other failure (see [`StoreError`]).
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(&SqlState::DISK_FULL) => StoreError::DiskFull,
        Some(&SqlState::IO_ERROR) => StoreError::Io(Box::new(e)),
        _ => StoreError::backend(e),
    }
}

/// Whether `e` is a statement the server cancelled (`statement_timeout`).
pub(crate) fn is_query_canceled(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(b) => {
            b.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.code()) == Some(&SqlState::QUERY_CANCELED)
        }
        _ => false,
    }
}

/// `Ok(false)` when a uniqueness constraint refused the insert.
pub(crate) fn inserted(r: Result<u64, tokio_postgres::Error>) -> Result<bool, StoreError> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
        Err(e) => Err(pg(e)),
    }
}

pub(crate) fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u(v: i64) -> u64 {
    v.max(0) as u64
}

pub(crate) fn hash32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

pub(crate) const EVENT_COLUMNS: &str = "seq, time_us, action, \"user\", leaf, leaf_hash";

pub(crate) fn event_row(r: &Row) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: u(r.get(0)),
        time: Timestamp::from_micros(r.get(1)),
        action: r.get(2),
        user: r.get(3),
        leaf: r.get(4),
        leaf_hash: hash32(r.get(5))?,
    })
}

pub(crate) const ORG_BY_SLUG: &str = "SELECT id, slug, created_us FROM orgs WHERE slug = $1";

pub(crate) fn org_row(r: &Row) -> Result<Org, StoreError> {
    let slug: String = r.get(1);
    Ok(Org {
        id: OrgId(r.get(0)),
        slug: OrgSlug::parse(&slug).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created: Timestamp::from_micros(r.get(2)),
    })
}

pub(crate) fn checkpoint_row(r: &Row) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: u(r.get(0)),
        root: hash32(r.get(1))?,
        note: r.get(2),
        signed_at: Timestamp::from_micros(r.get(3)),
    })
}

pub(crate) fn token_row(r: &Row) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: ApiTokenId(r.get(0)),
        org: OrgId(r.get(1)),
        name: r.get(2),
        created: Timestamp::from_micros(r.get(3)),
        revoked: r.get::<_, Option<i64>>(4).map(Timestamp::from_micros),
        grant: ActionGrant::parse(r.get(5)).map_err(|e| StoreError::Corrupt(format!("token grant: {e}")))?,
    })
}

pub(crate) fn role(code: &str) -> Result<Role, StoreError> {
    Role::from_code(code).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) const USER_COLUMNS: &str =
    "id, org, email, role, password_hash, totp_secret, totp_last_step, failed_logins, locked_until_us, created_us";

/// A user from the columns of [`USER_COLUMNS`] starting at `at`.
pub(crate) fn user_row_at(r: &Row, at: usize) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId(r.get(at)),
        org: OrgId(r.get(at + 1)),
        email: r.get(at + 2),
        role: role(r.get(at + 3))?,
        password_hash: PasswordHash(r.get(at + 4)),
        totp: r.get::<_, Option<String>>(at + 5).map(SealedTotp),
        totp_last_step: r.get::<_, Option<i64>>(at + 6).map(u),
        failed_logins: r.get::<_, i32>(at + 7).max(0) as u32,
        locked_until: r.get::<_, Option<i64>>(at + 8).map(Timestamp::from_micros),
        created: Timestamp::from_micros(r.get(at + 9)),
    })
}

pub(crate) fn user_row(r: &Row) -> Result<UserRecord, StoreError> {
    user_row_at(r, 0)
}

pub(crate) const SESSION_COLUMNS: &str =
    "token_hash, user_id, created_us, last_seen_us, expires_us, address, user_agent";
/// How many columns [`SESSION_COLUMNS`] names (a joined user's columns come after them).
pub(crate) const SESSION_COLUMN_COUNT: usize = 7;

pub(crate) fn session_row(r: &Row) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        token_hash: hash32(r.get(0))?,
        user: UserId(r.get(1)),
        created: Timestamp::from_micros(r.get(2)),
        last_seen: Timestamp::from_micros(r.get(3)),
        expires: Timestamp::from_micros(r.get(4)),
        address: r.get(5),
        user_agent: r.get(6),
    })
}

pub(crate) const INVITATION_COLUMNS: &str =
    "id, org, email, role, invited_by, created_us, expires_us, accepted_us, revoked_us";

pub(crate) fn invitation_row(r: &Row) -> Result<InvitationRecord, StoreError> {
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

pub(crate) fn protected_row(r: &Row) -> ProtectedUser {
    ProtectedUser {
        id: ProtectedUserId(r.get(0)),
        email: r.get(1),
        name: r.get(2),
        added: Timestamp::from_micros(r.get(3)),
    }
}
