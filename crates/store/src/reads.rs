//! The reads of the log, written once for every backend.
//!
//! A backend implements [`LogReads`] (a handful of single statements on one connection, scoped
//! to one organization); the algorithms that combine them — binary search by time, the loose
//! index scan of users, tile assembly, and the pages of a query ([`crate::search`]) — are here.

use std::ops::Range;

use logbook_core::Timestamp;
use logbook_integrity::tree::TileId;

use crate::{EventFilter, EventPage, EventRow, LogHead, StoreError};

/// The statements one backend runs for the reads of one organization's log.
// The futures are not declared `Send`: see `crate::commit::AppendTx`.
#[allow(async_fn_in_trait)]
pub trait LogReads {
    async fn head(&self) -> Result<LogHead, StoreError>;
    /// The time of the first event at or after `seq`.
    async fn time_at_or_after(&self, seq: u64) -> Result<Option<Timestamp>, StoreError>;
    /// The smallest User column value at or after (`inclusive`) or after `from`.
    async fn user_from(&self, from: &str, inclusive: bool) -> Result<Option<String>, StoreError>;
    /// The narrowest stored row of the tile at least as wide as asked.
    async fn stored_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The leaf hashes of the events in `seqs`, concatenated in seq order.
    async fn leaf_hashes(&self, seqs: Range<u64>) -> Result<Vec<u8>, StoreError>;

    /// How many events (from `seq` 0) the free-text index holds.
    async fn search_indexed(&self) -> Result<u64, StoreError>;
    /// One index walk (see [`Walk`]).
    async fn walk(&self, walk: &Walk<'_>) -> Result<Vec<EventRow>, StoreError>;
    /// The indexed events that contain a needle (see [`TextMatch`]).
    async fn index_matches(&self, m: &TextMatch<'_>) -> Result<Vec<EventRow>, StoreError>;
}

/// One index walk, newest first: the events in `seqs` with this User column value and action
/// code (each when given), at most `limit`.
#[derive(Debug)]
pub struct Walk<'a> {
    pub user: Option<&'a str>,
    pub action: Option<&'a str>,
    pub seqs: Range<u64>,
    pub limit: usize,
}

/// The newest `want` indexed events in `seqs` whose search text contains `needle` and that
/// match the filter's user and actions, newest first.
#[derive(Debug)]
pub struct TextMatch<'a> {
    pub filter: &'a EventFilter,
    pub needle: &'a str,
    /// The needle has no trigram, so the index cannot narrow it down (the caller bounds `seqs`).
    pub short: bool,
    pub seqs: Range<u64>,
    pub want: usize,
}

/// See [`crate::Store::seq_at_or_after`]: time never decreases along `seq`, so a binary search
/// by seq needs no time index.
pub async fn seq_at_or_after(r: &impl LogReads, t: Timestamp) -> Result<u64, StoreError> {
    let size = r.head().await?.size;
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if r.time_at_or_after(mid).await?.is_none_or(|x| x >= t) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// See [`crate::Store::users`]. A loose index scan: one seek in (org, user, seq) per distinct
/// user, so the cost depends on how many are listed, not on how many events they have.
pub async fn users(r: &impl LogReads, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    while out.len() < limit {
        let found = match out.last() {
            None => r.user_from(prefix, true).await?,
            Some(last) => r.user_from(last, false).await?,
        };
        match found {
            Some(u) if u.starts_with(prefix) => out.push(u),
            _ => break,
        }
    }
    Ok(out)
}

/// See [`crate::Store::read_tiles`]: the level-0 partial tile is not stored, it is the leaf
/// hashes of the last events.
pub async fn read_tiles(r: &impl LogReads, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::with_capacity(tiles.len());
    for t in tiles {
        match r.stored_tile(*t).await? {
            Some(data) => out.push(data),
            None if t.level == 0 => {
                let start = t.index << 8;
                let data = r.leaf_hashes(start..start + u64::from(t.width)).await?;
                if data.len() != t.width as usize * 32 {
                    return Err(StoreError::Corrupt(format!("leaf hashes of tile 0/{} are missing", t.index)));
                }
                out.push(data);
            }
            None => {
                return Err(StoreError::Corrupt(format!("tile {}/{} (width {}) is missing", t.level, t.index, t.width)))
            }
        }
    }
    Ok(out)
}

/// See [`crate::Store::query_events`].
pub async fn query_events(
    r: &impl LogReads,
    filter: &EventFilter,
    before: u64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    match filter.needle() {
        None => Ok(EventPage::complete(crate::search::plain_page(r, filter, before, limit).await?, limit)),
        Some(needle) => crate::search::text_page(r, filter, &needle, before, limit).await,
    }
}
