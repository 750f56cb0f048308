//! The verified mark: whether an entry *as shown* is the entry the server signed.
//!
//! The console and the API show an entry decoded from its stored leaf bytes. The mark is
//! computed from those very bytes, never from the stored `leaf_hash` column beside them:
//!
//! 1. the SHA-256 leaf hash ([`record_hash`]) of the leaf decoded for display must be the hash
//!    the inclusion proof covers at the entry's position, and the proof must verify against the
//!    newest stored checkpoint, itself checked with the log's public key (origin, size, root);
//! 2. the indexed columns used to find the entry (time, action, user) and its `seq` must be the
//!    leaf's, and the stored hash column must be the leaf's hash.
//!
//! Anything else is [`Integrity::Altered`]: the content shown differs from what was signed (or
//! the signed tree cannot vouch for it). An entry after the newest checkpoint is
//! [`Integrity::NotYetSigned`] unless its own columns already disagree.
//!
//! A page of entries shares one checkpoint check, one read of the tiles it needs, and one
//! authentication per level-0 tile (see [`signed_leaves`]), so marking a page costs one more
//! store round trip and a few hundred hashes, whatever its length.

use std::collections::{BTreeMap, BTreeSet};

use logbook_core::{leaf, Timestamp};
use logbook_integrity::checkpoint::VerifiedCheckpoint;
use logbook_integrity::proof::{prove_inclusion, tiles_for_inclusion, TileSet};
use logbook_integrity::tree::{hashes_of, subtree_root, TileId, TreeEdge};
use logbook_integrity::{node_hash, record_hash, Hash, TILE_HEIGHT, TILE_WIDTH};
use logbook_store::{EventRow, Org, StoreError};
use serde::Serialize;

use crate::LogService;

/// What the mark says about an entry as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// This exact content is in the log the server signed, at this position.
    Verified,
    /// The content shown is not what the server signed: do not trust it.
    Altered,
    /// Appended after the newest signed checkpoint (one comes within about a second).
    NotYetSigned,
}

/// The mark of one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryCheck {
    pub integrity: Integrity,
    /// The leaf hash of the bytes shown (not the stored column).
    pub leaf_hash: Hash,
    /// Why the entry is altered, in plain words.
    pub problem: Option<String>,
    /// The checkpoint verified against: its size and when it was signed.
    pub checkpoint: Option<(u64, Timestamp)>,
}

/// What the entry's own stored columns say, before any proof: a problem if they disagree with
/// the leaf.
fn local_problem(row: &EventRow, hash: &Hash, org: &Org) -> Option<String> {
    let keys = match leaf::keys(&row.leaf) {
        Ok(k) => k,
        Err(e) => return Some(format!("the stored entry cannot be decoded ({e})")),
    };
    if keys.org != org.slug.as_str() || keys.seq != row.seq {
        return Some("the stored entry names another log or position".into());
    }
    if keys.time != row.time || keys.action != row.action || keys.user != row.user {
        return Some("the stored time, action or user columns differ from the entry's content".into());
    }
    if row.leaf_hash != hash.0 {
        return Some("the stored hash column differs from the hash of the entry's content".into());
    }
    None
}

/// The leaf hashes the signed tree holds, authenticated against its root, for the level-0 tiles
/// a page needs: `None` for a tile that could not be authenticated (with why).
struct SignedLeaves {
    size: u64,
    /// Level-0 tile index → its authenticated leaf hashes, or why they are not.
    tiles: BTreeMap<u64, Result<Vec<Hash>, String>>,
}

impl SignedLeaves {
    fn leaf(&self, seq: u64) -> Result<Hash, String> {
        let tile = self.tiles.get(&(seq >> TILE_HEIGHT)).ok_or("the signed tree was not read")?;
        let entries = tile.as_ref().map_err(Clone::clone)?;
        entries.get((seq & 0xff) as usize).copied().ok_or_else(|| "the stored tree is too short".to_owned())
    }
}

/// Authenticates the level-0 tiles holding `seqs` (all below `v.size`) against the signed root
/// `v`, with as few hashes as a page allows:
///
/// - the tree edge at the checkpoint's size (its rightmost tiles) is rebuilt from the stored
///   tiles and must give the signed root: that authenticates every hash in it, among them the
///   leaf hashes of the last, partial level-0 tile (the newest entries);
/// - a full level-0 tile's 256 leaf hashes must give the subtree root that one inclusion proof
///   (of its first leaf) passes through, and that proof must verify against the signed root.
async fn signed_leaves(
    log: &LogService,
    org: &Org,
    v: &VerifiedCheckpoint,
    seqs: impl Iterator<Item = u64>,
) -> Result<SignedLeaves, StoreError> {
    let n = v.size;
    let edge_ids = TreeEdge::tiles_for(n);
    let partial = n >> TILE_HEIGHT;
    let full: BTreeSet<u64> = seqs.map(|s| s >> TILE_HEIGHT).filter(|t| *t != partial).collect();
    let mut ids: BTreeSet<TileId> = edge_ids.iter().copied().collect();
    for &t in &full {
        ids.insert(TileId { level: 0, index: t, width: TILE_WIDTH });
        ids.extend(tiles_for_inclusion(t << TILE_HEIGHT, n).unwrap_or_default());
    }
    let ids: Vec<TileId> = ids.into_iter().collect();
    let data = log.store().read_tiles(org.id, &ids).await?;
    let read: Vec<(TileId, Vec<u8>)> = ids.into_iter().zip(data).collect();

    let mut tiles = BTreeMap::new();
    let edge_data: Vec<_> = read.iter().filter(|(id, _)| edge_ids.contains(id)).cloned().collect();
    let edge = TreeEdge::restore(n, &edge_data)
        .map_err(|e| format!("the stored tree at the checkpoint's size cannot be read ({e})"))
        .and_then(|edge| {
            (edge.root() == v.root)
                .then_some(edge)
                .ok_or_else(|| "the stored tree does not give the signed root".to_owned())
        });
    if n & 0xff != 0 {
        tiles.insert(partial, edge.as_ref().map(|e| e.edge_entries(0).to_vec()).map_err(Clone::clone));
    }
    let mut set = TileSet::new();
    for (id, d) in &read {
        set.insert(*id, d.clone());
    }
    for t in full {
        let entries = read
            .iter()
            .find(|(id, _)| id.level == 0 && id.index == t && id.width == TILE_WIDTH)
            .map(|(_, d)| hashes_of(d))
            .filter(|h| h.len() == TILE_WIDTH as usize);
        let authenticated = match (entries, prove_inclusion(t << TILE_HEIGHT, n, &set)) {
            (None, _) => Err("the stored tree tile is missing".to_owned()),
            (_, Err(e)) => Err(format!("no inclusion proof could be built from the stored tree ({e})")),
            (Some(entries), Ok(p)) => {
                // The first leaf of a full tile: its first eight siblings are the tile's, all on
                // its right, so the proof passes through H(…H(H(leaf, s0), s1)…, s7).
                let through =
                    p.hashes.iter().take(usize::from(TILE_HEIGHT)).fold(p.leaf_hash, |acc, s| node_hash(acc, *s));
                if p.hashes.len() < usize::from(TILE_HEIGHT) || subtree_root(&entries) != through {
                    Err("the stored tree tile does not match the signed tree".to_owned())
                } else {
                    p.verify_against(v)
                        .map(|()| entries)
                        .map_err(|e| format!("the inclusion proof does not verify against the signed checkpoint ({e})"))
                }
            }
        };
        tiles.insert(t, authenticated);
    }
    Ok(SignedLeaves { size: n, tiles })
}

impl LogService {
    /// The verified mark of each row (see the module documentation), in order.
    pub async fn check_entries(&self, org: &Org, rows: &[EventRow]) -> Result<Vec<EntryCheck>, StoreError> {
        let cp = self.latest_checkpoint(org).await?;
        // The newest checkpoint, checked with the public key as an outside verifier would. The
        // verifier is not `Send`: made and dropped here, between two awaits.
        let signed = cp.as_ref().map(|cp| {
            let origin = self.origin(&org.slug);
            match self.signer().verifier().verify(&cp.note) {
                Ok(v) if v.origin == origin && v.size == cp.size && v.root.0 == cp.root => Ok(v),
                Ok(_) => Err("the newest stored checkpoint does not match its signed note".to_owned()),
                Err(e) => Err(format!("the newest stored checkpoint is not validly signed ({e})")),
            }
        });
        let leaves = match (&signed, &cp) {
            (Some(Ok(v)), Some(_)) => {
                let seqs = rows.iter().map(|r| r.seq).filter(|s| *s < v.size);
                Ok(Some(signed_leaves(self, org, v, seqs).await?))
            }
            (Some(Err(e)), _) => Err(e.clone()),
            _ => Ok(None),
        };

        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let leaf_hash = record_hash(&row.leaf);
            let mut problem = local_problem(row, &leaf_hash, org);
            let mut checkpoint = None;
            let covered = cp.as_ref().filter(|c| row.seq < c.size);
            let integrity = match (&leaves, covered) {
                (Err(e), Some(_)) => {
                    problem = Some(e.clone());
                    Integrity::Altered
                }
                (Ok(Some(leaves)), Some(cp)) => match leaves.leaf(row.seq) {
                    Err(e) => {
                        problem = Some(e);
                        Integrity::Altered
                    }
                    Ok(signed) if signed != leaf_hash => {
                        // The signature's finding first: it is what matters.
                        problem = Some(
                            "the content shown does not hash to the entry the server signed at this position".into(),
                        );
                        Integrity::Altered
                    }
                    Ok(_) if problem.is_some() => Integrity::Altered,
                    Ok(_) => {
                        debug_assert_eq!(leaves.size, cp.size);
                        checkpoint = Some((cp.size, cp.signed_at));
                        Integrity::Verified
                    }
                },
                _ if problem.is_some() => Integrity::Altered,
                _ => Integrity::NotYetSigned,
            };
            out.push(EntryCheck { integrity, leaf_hash, problem, checkpoint });
        }
        Ok(out)
    }
}
