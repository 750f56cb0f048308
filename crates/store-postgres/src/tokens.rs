//! API tokens and the idempotency keys of their requests.

use deadpool_postgres::GenericClient;
use logbook_core::{ApiTokenId, OrgId, Timestamp};
use logbook_store::commit::{NewApiToken, NewIdempotencyKey};
use logbook_store::{ApiToken, IdempotencyRecord, ServiceActionLabel, StoreError};
use tokio_postgres::error::SqlState;

use crate::rows::{hash32, i, inserted, pg, token_row, u};

const COLUMNS: &str = "id, org, name, created_us, revoked_us, actions";

pub(crate) async fn insert(
    tx: &impl GenericClient,
    org: OrgId,
    t: &NewApiToken<'_>,
) -> Result<Option<ApiTokenId>, StoreError> {
    match tx
        .query_one(
            "INSERT INTO api_tokens (org, name, token_hash, created_us, actions) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&org.0, &t.name, &&t.token_hash[..], &t.created.as_micros(), &t.grant.to_string()],
        )
        .await
    {
        Ok(r) => Ok(Some(ApiTokenId(r.get(0)))),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(None),
        Err(e) => Err(pg(e)),
    }
}

pub(crate) async fn revoke(
    tx: &impl GenericClient,
    org: OrgId,
    id: ApiTokenId,
    now: Timestamp,
) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE api_tokens SET revoked_us = $1 WHERE id = $2 AND org = $3 AND revoked_us IS NULL",
        &[&now.as_micros(), &id.0, &org.0],
    )
    .await
    .map_err(pg)
}

pub(crate) async fn insert_idempotency_key(
    tx: &impl GenericClient,
    k: &NewIdempotencyKey<'_>,
) -> Result<bool, StoreError> {
    let r = &k.record;
    inserted(
        tx.execute(
            "INSERT INTO idempotency_keys (token, key, request_hash, first_seq, count, created_us) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&k.token.0, &k.key, &&r.request_hash[..], &i(r.first_seq), &i(r.count), &k.created.as_micros()],
        )
        .await,
    )
}

pub(crate) async fn by_hash(c: &impl GenericClient, h: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
    c.query_opt(&sql, &[&&h[..]]).await.map_err(pg)?.as_ref().map(token_row).transpose()
}

pub(crate) async fn of_org(c: &impl GenericClient, org: OrgId) -> Result<Vec<ApiToken>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE org = $1 ORDER BY id");
    c.query(&sql, &[&org.0]).await.map_err(pg)?.iter().map(token_row).collect()
}

pub(crate) async fn idempotency_record(
    c: &impl GenericClient,
    token: ApiTokenId,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    c.query_opt(
        "SELECT request_hash, first_seq, count FROM idempotency_keys WHERE token = $1 AND key = $2",
        &[&token.0, &key],
    )
    .await
    .map_err(pg)?
    .map(|r| Ok(IdempotencyRecord { request_hash: hash32(r.get(0))?, first_seq: u(r.get(1)), count: u(r.get(2)) }))
    .transpose()
}

pub(crate) async fn rows_of_org(c: &impl GenericClient, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, token_hash FROM api_tokens WHERE org = $1 ORDER BY id");
    c.query(&sql, &[&org.0]).await.map_err(pg)?.iter().map(|r| Ok((token_row(r)?, hash32(r.get(6))?))).collect()
}

pub(crate) async fn import(c: &impl GenericClient, org: OrgId, t: &ApiToken, h: &[u8; 32]) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO api_tokens (org, name, token_hash, created_us, revoked_us, actions) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&org.0, &t.name, &&h[..], &t.created.as_micros(), &t.revoked.map(Timestamp::as_micros), &t.grant.to_string()],
    )
    .await
    .map_err(pg)
    .map(drop)
}

pub(crate) async fn service_action_label(
    c: &impl GenericClient,
    org: OrgId,
    code: &str,
) -> Result<Option<String>, StoreError> {
    let row = c
        .query_opt("SELECT label FROM service_actions WHERE org = $1 AND code = $2", &[&org.0, &code])
        .await
        .map_err(pg)?;
    Ok(row.map(|r| r.get(0)))
}

pub(crate) async fn insert_service_action(
    c: &impl GenericClient,
    org: OrgId,
    a: &ServiceActionLabel,
) -> Result<(), StoreError> {
    c.execute("INSERT INTO service_actions (org, code, label) VALUES ($1, $2, $3)", &[&org.0, &a.code, &a.label])
        .await
        .map_err(pg)
        .map(drop)
}

pub(crate) async fn service_actions(c: &impl GenericClient, org: OrgId) -> Result<Vec<ServiceActionLabel>, StoreError> {
    let rows =
        c.query("SELECT code, label FROM service_actions WHERE org = $1 ORDER BY code", &[&org.0]).await.map_err(pg)?;
    Ok(rows.iter().map(|r| ServiceActionLabel { code: r.get(0), label: r.get(1) }).collect())
}
