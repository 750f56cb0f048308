//! The stored tiles of the Merkle tree, and the leaf hashes that make the level-0 partial tile.

use std::ops::Range;

use deadpool_postgres::GenericClient;
use logbook_core::OrgId;
use logbook_integrity::tree::{TileId, TileRow};
use logbook_store::StoreError;

use crate::rows::{i, pg, u};

pub(crate) async fn stored(c: &impl GenericClient, org: OrgId, t: TileId) -> Result<Option<Vec<u8>>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT hashes FROM tiles WHERE org = $1 AND level = $2 AND idx = $3 AND width >= $4 ORDER BY width LIMIT 1",
        )
        .await
        .map_err(pg)?;
    let row = c.query_opt(&stmt, &[&org.0, &i16::from(t.level), &i(t.index), &(t.width as i32)]).await.map_err(pg)?;
    Ok(row.map(|r| r.get(0)))
}

pub(crate) async fn leaf_hashes(c: &impl GenericClient, org: OrgId, seqs: Range<u64>) -> Result<Vec<u8>, StoreError> {
    let rows = c
        .query(
            "SELECT leaf_hash FROM events WHERE org = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            &[&org.0, &i(seqs.start), &i(seqs.end)],
        )
        .await
        .map_err(pg)?;
    let mut data = Vec::with_capacity(rows.len() * 32);
    for r in rows {
        data.extend_from_slice(r.get::<_, &[u8]>(0));
    }
    Ok(data)
}

pub(crate) async fn rows(
    c: &impl GenericClient,
    org: OrgId,
    level: u8,
    indexes: Range<u64>,
) -> Result<Vec<TileRow>, StoreError> {
    let rows = c
        .query(
            "SELECT idx, width, hashes FROM tiles WHERE org = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx, width",
            &[&org.0, &i16::from(level), &i(indexes.start), &i(indexes.end)],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .into_iter()
        .map(|r| TileRow {
            id: TileId { level, index: u(r.get(0)), width: r.get::<_, i32>(1) as u32 },
            hashes: r.get(2),
        })
        .collect())
}
