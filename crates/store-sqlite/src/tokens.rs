//! API tokens and the idempotency keys of their requests.

use logbook_core::{ApiTokenId, OrgId, Timestamp};
use logbook_store::commit::{NewApiToken, NewIdempotencyKey};
use logbook_store::{ApiToken, IdempotencyRecord, ServiceActionLabel, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use crate::rows::{hash32, i, inserted, store_error, token_row, u};

const COLUMNS: &str = "id, org, name, created_us, revoked_us, actions";

pub(crate) fn insert(tx: &Connection, org: OrgId, t: &NewApiToken<'_>) -> Result<Option<ApiTokenId>, StoreError> {
    let r = tx.execute(
        "INSERT INTO api_tokens (org, name, token_hash, created_us, actions) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![org.0, t.name, &t.token_hash[..], t.created.as_micros(), t.grant.to_string()],
    );
    Ok(inserted(r)?.then(|| ApiTokenId(tx.last_insert_rowid())))
}

pub(crate) fn revoke(tx: &Connection, org: OrgId, id: ApiTokenId, now: Timestamp) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE api_tokens SET revoked_us = ?1 WHERE id = ?2 AND org = ?3 AND revoked_us IS NULL",
        params![now.as_micros(), id.0, org.0],
    )
    .map(|n| n as u64)
    .map_err(store_error)
}

pub(crate) fn insert_idempotency_key(tx: &Connection, k: &NewIdempotencyKey<'_>) -> Result<bool, StoreError> {
    let r = &k.record;
    inserted(tx.execute(
        "INSERT INTO idempotency_keys (token, key, request_hash, first_seq, count, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![k.token.0, k.key, &r.request_hash[..], i(r.first_seq), i(r.count), k.created.as_micros()],
    ))
}

pub(crate) fn by_hash(c: &Connection, h: &[u8; 32]) -> rusqlite::Result<Option<ApiToken>> {
    c.query_row(&format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1"), [&h[..]], token_row).optional()
}

pub(crate) fn of_org(c: &Connection, org: OrgId) -> rusqlite::Result<Vec<ApiToken>> {
    c.prepare(&format!("SELECT {COLUMNS} FROM api_tokens WHERE org = ?1 ORDER BY id"))?
        .query_map([org.0], token_row)?
        .collect()
}

pub(crate) fn idempotency_record(
    c: &Connection,
    token: ApiTokenId,
    key: &str,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    c.query_row(
        "SELECT request_hash, first_seq, count FROM idempotency_keys WHERE token = ?1 AND key = ?2",
        params![token.0, key],
        |r| Ok(IdempotencyRecord { request_hash: hash32(r.get(0)?)?, first_seq: u(r.get(1)?), count: u(r.get(2)?) }),
    )
    .optional()
}

pub(crate) fn rows_of_org(c: &Connection, org: OrgId) -> rusqlite::Result<Vec<(ApiToken, [u8; 32])>> {
    c.prepare(&format!("SELECT {COLUMNS}, token_hash FROM api_tokens WHERE org = ?1 ORDER BY id"))?
        .query_map([org.0], |r| Ok((token_row(r)?, hash32(r.get(6)?)?)))?
        .collect()
}

pub(crate) fn import(c: &Connection, org: OrgId, t: &ApiToken, h: &[u8; 32]) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO api_tokens (org, name, token_hash, created_us, revoked_us, actions) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![org.0, t.name, &h[..], t.created.as_micros(), t.revoked.map(Timestamp::as_micros), t.grant.to_string()],
    )
    .map(drop)
}

pub(crate) fn service_action_label(c: &Connection, org: OrgId, code: &str) -> Result<Option<String>, StoreError> {
    c.query_row("SELECT label FROM service_actions WHERE org = ?1 AND code = ?2", params![org.0, code], |r| r.get(0))
        .optional()
        .map_err(store_error)
}

pub(crate) fn insert_service_action(c: &Connection, org: OrgId, a: &ServiceActionLabel) -> rusqlite::Result<()> {
    c.execute("INSERT INTO service_actions (org, code, label) VALUES (?1, ?2, ?3)", params![org.0, a.code, a.label])
        .map(drop)
}

pub(crate) fn service_actions(c: &Connection, org: OrgId) -> rusqlite::Result<Vec<ServiceActionLabel>> {
    c.prepare("SELECT code, label FROM service_actions WHERE org = ?1 ORDER BY code")?
        .query_map([org.0], |r| Ok(ServiceActionLabel { code: r.get(0)?, label: r.get(1)? }))?
        .collect()
}
