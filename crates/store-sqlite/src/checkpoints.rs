//! Signed checkpoints: added only when newer than the newest stored. And the full self-check's
//! saved state, kept as given.

use logbook_core::OrgId;
use logbook_store::{StoreError, StoredCheckpoint};
use rusqlite::{params, Connection, OptionalExtension};

use crate::rows::{checkpoint_row, i, store_error, u};
use crate::SqliteStore;

pub(crate) async fn add(store: &SqliteStore, org: OrgId, cp: StoredCheckpoint) -> Result<bool, StoreError> {
    store
        .write_tx(move |tx| {
            let newest: Option<i64> = tx
                .query_row("SELECT MAX(size) FROM checkpoints WHERE org = ?1", [org.0], |r| r.get(0))
                .map_err(store_error)?;
            if newest.is_some_and(|n| u(n) >= cp.size) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO checkpoints (org, size, root, note, signed_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org.0, i(cp.size), &cp.root[..], cp.note, cp.signed_at.as_micros()],
            )
            .map_err(store_error)?;
            Ok(true)
        })
        .await
}

pub(crate) fn all(c: &Connection, org: OrgId) -> rusqlite::Result<Vec<StoredCheckpoint>> {
    c.prepare_cached("SELECT size, root, note, signed_us FROM checkpoints WHERE org = ?1 ORDER BY size")?
        .query_map([org.0], checkpoint_row)?
        .collect()
}

pub(crate) fn latest(c: &Connection, org: OrgId) -> rusqlite::Result<Option<StoredCheckpoint>> {
    c.query_row(
        "SELECT size, root, note, signed_us FROM checkpoints WHERE org = ?1 ORDER BY size DESC LIMIT 1",
        [org.0],
        checkpoint_row,
    )
    .optional()
}

pub(crate) fn self_check_state(c: &Connection, org: OrgId) -> rusqlite::Result<Option<Vec<u8>>> {
    c.query_row("SELECT state FROM self_check WHERE org = ?1", [org.0], |r| r.get(0)).optional()
}

pub(crate) fn save_self_check_state(c: &Connection, org: OrgId, state: &[u8]) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO self_check (org, state) VALUES (?1, ?2) ON CONFLICT (org) DO UPDATE SET state = excluded.state",
        params![org.0, state],
    )?;
    Ok(())
}
