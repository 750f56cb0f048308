//! Signed checkpoints: added only when newer than the newest stored. And the full self-check's
//! saved state, kept as given.

use deadpool_postgres::GenericClient;
use logbook_core::OrgId;
use logbook_store::{StoreError, StoredCheckpoint};

use crate::rows::{checkpoint_row, i, pg, u};
use crate::{locked_transaction, PgStore, LOCK_LOG};

const COLUMNS: &str = "size, root, note, signed_us";

pub(crate) async fn add(store: &PgStore, org: OrgId, cp: &StoredCheckpoint) -> Result<bool, StoreError> {
    let mut c = store.client().await?;
    let tx = locked_transaction(&mut c, LOCK_LOG, org).await?;
    let newest: Option<i64> =
        tx.query_one("SELECT MAX(size) FROM checkpoints WHERE org = $1", &[&org.0]).await.map_err(pg)?.get(0);
    if newest.is_some_and(|n| u(n) >= cp.size) {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO checkpoints (org, size, root, note, signed_us) VALUES ($1, $2, $3, $4, $5)",
        &[&org.0, &i(cp.size), &&cp.root[..], &cp.note, &cp.signed_at.as_micros()],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(true)
}

pub(crate) async fn all(c: &impl GenericClient, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM checkpoints WHERE org = $1 ORDER BY size");
    c.query(&sql, &[&org.0]).await.map_err(pg)?.iter().map(checkpoint_row).collect()
}

pub(crate) async fn latest(c: &impl GenericClient, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM checkpoints WHERE org = $1 ORDER BY size DESC LIMIT 1");
    c.query_opt(&sql, &[&org.0]).await.map_err(pg)?.as_ref().map(checkpoint_row).transpose()
}

pub(crate) async fn self_check_state(c: &impl GenericClient, org: OrgId) -> Result<Option<Vec<u8>>, StoreError> {
    let row = c.query_opt("SELECT state FROM self_check WHERE org = $1", &[&org.0]).await.map_err(pg)?;
    Ok(row.map(|r| r.get(0)))
}

pub(crate) async fn save_self_check_state(c: &impl GenericClient, org: OrgId, state: &[u8]) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO self_check (org, state) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET state = excluded.state",
        &[&org.0, &state],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
