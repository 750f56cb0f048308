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
//! A page of entries shares one checkpoint check and one read of the tiles all its proofs need,
//! so marking a page costs one more store round trip and a few dozen hashes per entry.

use std::collections::BTreeSet;

use logbook_core::{leaf, Timestamp};
use logbook_integrity::proof::{prove_inclusion, tiles_for_inclusion, TileSet};
use logbook_integrity::{record_hash, Hash};
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
        let size = cp.as_ref().map_or(0, |c| c.size);
        let mut ids = BTreeSet::new();
        for r in rows.iter().filter(|r| r.seq < size) {
            ids.extend(tiles_for_inclusion(r.seq, size).unwrap_or_default());
        }
        let ids: Vec<_> = ids.into_iter().collect();
        let data = if ids.is_empty() { Vec::new() } else { self.store().read_tiles(org.id, &ids).await? };
        let mut tiles = TileSet::new();
        for (id, d) in ids.into_iter().zip(data) {
            tiles.insert(id, d);
        }

        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let leaf_hash = record_hash(&row.leaf);
            let mut problem = local_problem(row, &leaf_hash, org);
            let mut checkpoint = None;
            let integrity = match (&signed, &cp) {
                (Some(signed), Some(cp)) if row.seq < size => {
                    let proven = match signed {
                        Err(e) => Err(e.clone()),
                        Ok(v) => match prove_inclusion(row.seq, size, &tiles) {
                            Err(e) => Err(format!("no inclusion proof could be built from the stored tree ({e})")),
                            Ok(p) if p.leaf_hash != leaf_hash => Err(
                                "the content shown does not hash to the entry the server signed at this position"
                                    .to_owned(),
                            ),
                            Ok(p) => p.verify_against(v).map_err(|e| {
                                format!("the inclusion proof does not verify against the signed checkpoint ({e})")
                            }),
                        },
                    };
                    match proven {
                        Ok(()) if problem.is_none() => {
                            checkpoint = Some((cp.size, cp.signed_at));
                            Integrity::Verified
                        }
                        Ok(()) => Integrity::Altered,
                        Err(e) => {
                            // The proof's finding first: it is what the signature says.
                            problem = Some(e);
                            Integrity::Altered
                        }
                    }
                }
                _ if problem.is_some() => Integrity::Altered,
                _ => Integrity::NotYetSigned,
            };
            out.push(EntryCheck { integrity, leaf_hash, problem, checkpoint });
        }
        Ok(out)
    }
}
