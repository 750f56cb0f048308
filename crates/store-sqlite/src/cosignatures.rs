//! The witnesses' cosignatures, each stored once beside the checkpoint it signs.

use logbook_core::{OrgId, Timestamp};
use logbook_store::{StoreError, StoredCosignature};
use rusqlite::{params, Connection, Row};

use crate::rows::{i, store_error, u};
use crate::SqliteStore;

const COLUMNS: &str = "size, witness, key_id, line, cosigned_s, received_us";

fn row(r: &Row<'_>) -> rusqlite::Result<StoredCosignature> {
    Ok(StoredCosignature {
        size: u(r.get(0)?),
        witness: r.get(1)?,
        key_id: u32::try_from(r.get::<_, i64>(2)?).unwrap_or_default(),
        line: r.get(3)?,
        cosigned_at: u(r.get(4)?),
        received_at: Timestamp::from_micros(r.get(5)?),
    })
}

pub(crate) async fn add(store: &SqliteStore, org: OrgId, c: StoredCosignature) -> Result<bool, StoreError> {
    store
        .write_tx(move |tx| {
            // The foreign key refuses a size with no stored checkpoint; the conflict clause
            // keeps the first cosignature of a witness key for a size.
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO cosignatures (org, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"
                    ),
                    params![
                        org.0,
                        i(c.size),
                        c.witness,
                        i64::from(c.key_id),
                        c.line,
                        i(c.cosigned_at),
                        c.received_at.as_micros()
                    ],
                )
                .map_err(store_error)?;
            Ok(n == 1)
        })
        .await
}

pub(crate) fn of_size(c: &Connection, org: OrgId, size: u64) -> rusqlite::Result<Vec<StoredCosignature>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM cosignatures WHERE org = ?1 AND size = ?2 ORDER BY witness, key_id"
    ))?
    .query_map(params![org.0, i(size)], row)?
    .collect()
}

pub(crate) fn newest(c: &Connection, org: OrgId) -> rusqlite::Result<Vec<StoredCosignature>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM cosignatures c WHERE org = ?1 AND size = (
             SELECT MAX(size) FROM cosignatures d WHERE d.org = c.org AND d.witness = c.witness AND d.key_id = c.key_id)
         ORDER BY witness, key_id"
    ))?
    .query_map([org.0], row)?
    .collect()
}
