//! The stored tiles of the Merkle tree, and the leaf hashes that make the level-0 partial tile.

use std::ops::Range;

use logbook_core::OrgId;
use logbook_integrity::tree::{TileId, TileRow};
use rusqlite::{params, Connection, OptionalExtension};

use crate::rows::{i, u};

pub(crate) fn stored(c: &Connection, org: OrgId, t: TileId) -> rusqlite::Result<Option<Vec<u8>>> {
    c.prepare_cached(
        "SELECT hashes FROM tiles WHERE org = ?1 AND level = ?2 AND idx = ?3 AND width >= ?4 ORDER BY width LIMIT 1",
    )?
    .query_row(params![org.0, t.level, i(t.index), t.width], |r| r.get(0))
    .optional()
}

pub(crate) fn leaf_hashes(c: &Connection, org: OrgId, seqs: Range<u64>) -> rusqlite::Result<Vec<u8>> {
    let mut stmt =
        c.prepare_cached("SELECT leaf_hash FROM events WHERE org = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq")?;
    let mut rows = stmt.query(params![org.0, i(seqs.start), i(seqs.end)])?;
    let mut data = Vec::new();
    while let Some(r) = rows.next()? {
        data.extend_from_slice(r.get_ref(0)?.as_blob()?);
    }
    Ok(data)
}

pub(crate) fn rows(c: &Connection, org: OrgId, level: u8, indexes: Range<u64>) -> rusqlite::Result<Vec<TileRow>> {
    c.prepare_cached(
        "SELECT idx, width, hashes FROM tiles WHERE org = ?1 AND level = ?2 AND idx >= ?3 AND idx < ?4 ORDER BY idx, width",
    )?
    .query_map(params![org.0, level, i(indexes.start), i(indexes.end)], |r| {
        Ok(TileRow { id: TileId { level, index: u(r.get(0)?), width: r.get(1)? }, hashes: r.get(2)? })
    })?
    .collect()
}
