//! The witnesses' cosignatures, each stored once beside the checkpoint it signs.

use deadpool_postgres::GenericClient;
use logbook_core::{OrgId, Timestamp};
use logbook_store::{StoreError, StoredCosignature};
use tokio_postgres::Row;

use crate::rows::{i, pg, u};

const COLUMNS: &str = "size, witness, key_id, line, cosigned_s, received_us";

fn row(r: &Row) -> StoredCosignature {
    StoredCosignature {
        size: u(r.get(0)),
        witness: r.get(1),
        key_id: u32::try_from(r.get::<_, i64>(2)).unwrap_or_default(),
        line: r.get(3),
        cosigned_at: u(r.get(4)),
        received_at: Timestamp::from_micros(r.get(5)),
    }
}

pub(crate) async fn add(c: &impl GenericClient, org: OrgId, cs: &StoredCosignature) -> Result<bool, StoreError> {
    // The foreign key refuses a size with no stored checkpoint; the conflict clause keeps the
    // first cosignature of a witness key for a size.
    let sql =
        format!("INSERT INTO cosignatures (org, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING");
    let n = c
        .execute(
            &sql,
            &[
                &org.0,
                &i(cs.size),
                &cs.witness,
                &i64::from(cs.key_id),
                &cs.line,
                &i(cs.cosigned_at),
                &cs.received_at.as_micros(),
            ],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}

pub(crate) async fn of_size(
    c: &impl GenericClient,
    org: OrgId,
    size: u64,
) -> Result<Vec<StoredCosignature>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM cosignatures WHERE org = $1 AND size = $2 ORDER BY witness, key_id");
    Ok(c.query(&sql, &[&org.0, &i(size)]).await.map_err(pg)?.iter().map(row).collect())
}

pub(crate) async fn newest(c: &impl GenericClient, org: OrgId) -> Result<Vec<StoredCosignature>, StoreError> {
    let sql = format!(
        "SELECT DISTINCT ON (witness, key_id) {COLUMNS} FROM cosignatures WHERE org = $1
         ORDER BY witness, key_id, size DESC"
    );
    Ok(c.query(&sql, &[&org.0]).await.map_err(pg)?.iter().map(row).collect())
}
