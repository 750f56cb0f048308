//! The Merkle tree of one log, stored as C2SP tlog-tiles of height 8.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of tree level `8·L`; the hashes of the
//! seven levels in between are recomputed from it. What is stored:
//!
//! - every **full** tile, at every level, once, when it completes;
//! - for levels ≥ 1, the **partial** rightmost tile as of the end of each commit (rows are never
//!   updated: a wider row is added beside the narrower one, and a row of width `w` is a prefix
//!   of every wider row of the same tile);
//! - the level-0 partial tile is not stored as a tile: its hashes are the leaf hashes of the
//!   last (< 256) events, which are stored with the events.
//!
//! [`TreeEdge`] is the rightmost tile of every level: all a sequencer needs in memory to append
//! and to compute the root, a few KiB however large the log grows.

use crate::{node_hash, Hash, EMPTY_HASH, HASH_SIZE, TILE_HEIGHT, TILE_WIDTH};

/// Coordinates of a tile (C2SP tlog-tiles, height 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    /// 1..=256; 256 is a full tile.
    pub width: u32,
}

impl TileId {
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The first leaf (event `seq`) covered by entry `i` of this tile.
    pub fn first_seq_of_entry(&self, i: u64) -> u64 {
        ((self.index << TILE_HEIGHT) + i) << (u32::from(TILE_HEIGHT) * u32::from(self.level))
    }
}

/// A tile as stored: its coordinates and `width × 32` bytes of hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileRow {
    pub id: TileId,
    pub hashes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tile data for level {level} has {got} bytes, expected {want}")]
    BadTileData { level: u8, got: usize, want: usize },
    #[error("missing tile data for level {0}")]
    MissingTile(u8),
}

/// The right edge of a tiled Merkle tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TreeEdge {
    size: u64,
    /// `levels[L]` = the entries of the rightmost tile of level `L` (fewer than 256).
    levels: Vec<Vec<Hash>>,
}

fn shift(level: usize) -> u32 {
    u32::from(TILE_HEIGHT) * level as u32
}

impl TreeEdge {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tiles (with exact widths) that [`TreeEdge::restore`] needs to rebuild the edge of a
    /// tree of `size` leaves. Levels whose rightmost tile is empty are left out.
    pub fn tiles_for(size: u64) -> Vec<TileId> {
        let mut out = Vec::new();
        let mut level = 0usize;
        while level < 8 && (size >> shift(level)) > 0 {
            let width = ((size >> shift(level)) & u64::from(TILE_WIDTH - 1)) as u32;
            if width > 0 {
                out.push(TileId { level: level as u8, index: size >> shift(level + 1), width });
            }
            level += 1;
        }
        out
    }

    /// Rebuilds the edge from the tiles named by [`TreeEdge::tiles_for`].
    pub fn restore(size: u64, tiles: &[(TileId, Vec<u8>)]) -> Result<Self, TreeError> {
        let mut levels = Vec::new();
        for id in Self::tiles_for(size) {
            let (_, data) = tiles.iter().find(|(t, _)| t.level == id.level).ok_or(TreeError::MissingTile(id.level))?;
            let want = id.width as usize * HASH_SIZE;
            if data.len() < want {
                return Err(TreeError::BadTileData { level: id.level, got: data.len(), want });
            }
            while levels.len() < usize::from(id.level) {
                levels.push(Vec::new());
            }
            levels.push(hashes_of(&data[..want]));
        }
        Ok(Self { size, levels })
    }

    /// Appends leaf hashes and returns the tile rows to store for them: every tile they
    /// complete, then the new partial tile of each level ≥ 1 they changed.
    pub fn append_all(&mut self, leaf_hashes: impl IntoIterator<Item = Hash>) -> Vec<TileRow> {
        let mut rows = Vec::new();
        let mut touched = 0u32; // bit L set: level L's partial tile changed
        for h in leaf_hashes {
            touched |= self.push(h, &mut rows);
        }
        for (level, entries) in self.levels.iter().enumerate().skip(1) {
            if touched & (1 << level) != 0 && !entries.is_empty() {
                rows.push(TileRow {
                    id: TileId {
                        level: level as u8,
                        index: self.size >> shift(level + 1),
                        width: entries.len() as u32,
                    },
                    hashes: bytes_of(entries),
                });
            }
        }
        rows
    }

    /// Appends one leaf hash; full tiles go to `full`. Returns the levels whose partial tile
    /// changed, as a bit set.
    pub fn push(&mut self, leaf_hash: Hash, full: &mut Vec<TileRow>) -> u32 {
        self.size += 1;
        let mut h = leaf_hash;
        let mut level = 0usize;
        let mut touched = 0u32;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::with_capacity(TILE_WIDTH as usize));
            }
            let entries = &mut self.levels[level];
            entries.push(h);
            touched |= 1 << level;
            if entries.len() < TILE_WIDTH as usize {
                return touched;
            }
            h = subtree_root(entries);
            full.push(TileRow {
                id: TileId { level: level as u8, index: (self.size >> shift(level + 1)) - 1, width: TILE_WIDTH },
                hashes: bytes_of(entries),
            });
            entries.clear();
            level += 1;
        }
    }

    /// The RFC 6962 root hash of the tree.
    pub fn root(&self) -> Hash {
        // The perfect subtrees of the tree, largest (leftmost) first, all inside edge tiles.
        let mut parts = Vec::new();
        for entries in self.levels.iter().rev() {
            let mut start = 0usize;
            for j in (0..TILE_HEIGHT).rev() {
                let n = 1usize << j;
                if entries.len() & n != 0 {
                    parts.push(subtree_root(&entries[start..start + n]));
                    start += n;
                }
            }
        }
        match parts.pop() {
            None => EMPTY_HASH,
            Some(last) => parts.into_iter().rev().fold(last, |acc, h| node_hash(h, acc)),
        }
    }

    /// The entries of the rightmost tile of `level` (empty if none).
    pub fn edge_entries(&self, level: u8) -> &[Hash] {
        self.levels.get(usize::from(level)).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Root of a perfect subtree given its leaves (`hashes.len()` a power of two).
pub fn subtree_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    if hashes.len() == 1 {
        return hashes[0];
    }
    let (l, r) = hashes.split_at(hashes.len() / 2);
    node_hash(subtree_root(l), subtree_root(r))
}

pub fn hashes_of(data: &[u8]) -> Vec<Hash> {
    data.chunks_exact(HASH_SIZE)
        .map(|c| {
            let mut h = [0u8; HASH_SIZE];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect()
}

pub fn bytes_of(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * HASH_SIZE);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_hash;
    use std::collections::HashMap;

    /// RFC 6962 §2.1 MTH, straight from the definition.
    pub fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_HASH,
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(reference_root(&leaves[..k]), reference_root(&leaves[k..]))
            }
        }
    }

    fn leaf(i: u64) -> Hash {
        record_hash(&i.to_be_bytes())
    }

    #[test]
    fn root_matches_the_definition_at_every_size_across_tile_boundaries() {
        let mut edge = TreeEdge::new();
        let mut leaves = Vec::new();
        for i in 0..70_000u64 {
            let h = leaf(i);
            leaves.push(h);
            edge.append_all([h]);
            let n = leaves.len();
            if n < 600 || n % 4099 == 0 || n == 65_536 || n == 65_537 {
                assert_eq!(edge.root(), reference_root(&leaves), "size {n}");
            }
        }
    }

    #[test]
    fn restore_from_stored_tiles_gives_the_same_edge() {
        let mut edge = TreeEdge::new();
        // Latest row per (level, index), as a store answering "widest row" would.
        let mut store: HashMap<(u8, u64), Vec<u8>> = HashMap::new();
        let mut leaves = Vec::new();
        for batch in 0..300u64 {
            let hs: Vec<_> = (0..(batch * 37 % 1000 + 1)).map(|i| leaf(batch * 1000 + i)).collect();
            leaves.extend(hs.iter().copied());
            for row in edge.append_all(hs) {
                store.insert((row.id.level, row.id.index), row.hashes);
            }
            let size = edge.size();
            let tiles: Vec<_> = TreeEdge::tiles_for(size)
                .into_iter()
                .map(|t| {
                    let data = if t.level == 0 {
                        bytes_of(&leaves[(t.index as usize) * 256..size as usize])
                    } else {
                        store[&(t.level, t.index)].clone()
                    };
                    (t, data)
                })
                .collect();
            let restored = TreeEdge::restore(size, &tiles).unwrap();
            assert_eq!(restored, edge, "size {size}");
        }
        assert_eq!(edge.root(), reference_root(&leaves));
    }

    #[test]
    fn full_tiles_are_emitted_once_with_their_coordinates() {
        let mut edge = TreeEdge::new();
        let rows = edge.append_all((0..65_536 + 256).map(leaf));
        let full: Vec<_> = rows.iter().filter(|r| r.id.is_full()).map(|r| r.id).collect();
        assert_eq!(full.len(), 256 + 1 + 1);
        assert_eq!(full[0], TileId { level: 0, index: 0, width: 256 });
        assert!(full.contains(&TileId { level: 1, index: 0, width: 256 }));
        assert!(full.contains(&TileId { level: 0, index: 256, width: 256 }));
        let partial: Vec<_> = rows.iter().filter(|r| !r.id.is_full()).map(|r| r.id).collect();
        assert_eq!(partial, [TileId { level: 1, index: 1, width: 1 }, TileId { level: 2, index: 0, width: 1 }]);
    }
}
