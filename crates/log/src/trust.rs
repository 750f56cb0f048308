//! Never sign what does not extend what was signed.
//!
//! Whoever can write the database can replace a log by a smaller or different valid tree and
//! delete its checkpoint rows; a sequencer that then signed "the log as it is" would lend the
//! real key to the forgery. So before any checkpoint is signed, the tree about to be signed must
//! reproduce the root of every *trusted* checkpoint at that checkpoint's size — a consistency
//! proof from the stored tiles, checked against the trusted root — and be at least as large:
//!
//! - trusted = validly signed by the configured key for this log's origin, and found in the
//!   store (the newest row) or outside it, in the witness directory ([`crate::witness`]); a
//!   checkpoint this sequencer signed itself is trusted from then on;
//! - a trusted checkpoint larger than the tree means entries were removed (a rollback);
//! - a proof that does not reach the trusted root means entries were changed (a fork).
//!
//! Either makes the log *damaged*: the sequencer signs nothing more and refuses appends (see
//! [`crate::sequencer`]); the error names the trusted checkpoint, the store's tree and, from the
//! witness directory's history, the sizes between which the first change lies.

use logbook_integrity::proof::{check_consistency, prove_consistency, tiles_for_consistency, TileSet};
use logbook_integrity::{to_hex, Hash};
use logbook_store::{Org, Store, StoreError};

use crate::witness::WitnessedCheckpoint;

/// A checkpoint the log must extend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Anchor {
    pub size: u64,
    pub root: Hash,
    /// Where it was found, for messages ("the witness directory", …).
    pub source: String,
}

impl Anchor {
    pub(crate) fn describe(&self) -> String {
        format!("the checkpoint of size {} from {} (root {})", self.size, self.source, short(&self.root))
    }
}

impl From<(&WitnessedCheckpoint, &str)> for Anchor {
    fn from((c, source): (&WitnessedCheckpoint, &str)) -> Self {
        Anchor { size: c.size, root: c.root, source: source.to_owned() }
    }
}

fn short(h: &Hash) -> String {
    to_hex(h)[..16].to_owned()
}

/// Why a tree does not extend a trusted checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The tree is smaller than the checkpoint.
    Shorter,
    /// The tree does not reproduce the checkpoint's root at its size.
    Differs,
}

/// Checks that the tree of `size` leaves with `root`, as stored, extends `anchor`.
pub(crate) async fn check_extends(
    store: &dyn Store,
    org: &Org,
    anchor: &Anchor,
    size: u64,
    root: Hash,
) -> Result<Result<(), Mismatch>, StoreError> {
    if anchor.size > size {
        return Ok(Err(Mismatch::Shorter));
    }
    if anchor.size == size {
        return Ok(if anchor.root == root { Ok(()) } else { Err(Mismatch::Differs) });
    }
    if anchor.size == 0 {
        return Ok(Ok(()));
    }
    let Ok(ids) = tiles_for_consistency(anchor.size, size) else { return Ok(Err(Mismatch::Differs)) };
    let data = store.read_tiles(org.id, &ids).await?;
    let mut set = TileSet::new();
    for (id, d) in ids.iter().zip(data) {
        set.insert(*id, d);
    }
    // The proof's hashes come from the (untrusted) store; it is checked against the trusted old
    // root and the new root computed from the tree edge, so forged tiles cannot pass.
    let Ok(proof) = prove_consistency(anchor.size, size, &set) else { return Ok(Err(Mismatch::Differs)) };
    Ok(match check_consistency(anchor.size, size, anchor.root, &proof.hashes, root) {
        Ok(()) => Ok(()),
        Err(_) => Err(Mismatch::Differs),
    })
}

/// The error logged and shown when the tree does not extend `anchor`: both checkpoints, and where
/// the first difference lies as far as the witness directory's history (sorted by size) tells.
pub(crate) async fn explain(
    store: &dyn Store,
    org: &Org,
    anchor: &Anchor,
    mismatch: &Mismatch,
    size: u64,
    root: Hash,
    history: &[WitnessedCheckpoint],
) -> String {
    let tree = format!("the stored tree (size {size}, root {})", short(&root));
    let head = format!("the log of {} does not extend {}: {tree}", org.slug, anchor.describe());
    if *mismatch == Mismatch::Shorter {
        return format!(
            "{head} is smaller, so entries from seq {size} on were removed; nothing will be signed or appended. Run `logbook verify`"
        );
    }
    // The history is one consistent chain, so "the tree reproduces it" holds for every checkpoint
    // up to some size and for none after: a binary search finds the boundary.
    let candidates: Vec<_> = history.iter().filter(|c| c.size <= size.min(anchor.size)).collect();
    let (mut lo, mut hi) = (0usize, candidates.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let c = candidates[mid];
        let a = Anchor::from((c, "the witness directory"));
        match check_extends(store, org, &a, size, root).await {
            Ok(Ok(())) => lo = mid + 1,
            _ => hi = mid,
        }
    }
    let good = lo.checked_sub(1).map(|i| candidates[i].size).unwrap_or(0);
    let bad = candidates.get(lo).map_or(anchor.size, |c| c.size);
    format!(
        "{head} does not reproduce its root, so entries were changed: the tree reproduces the checkpoint of size {good} but not the one of size {bad}, so the first changed entry is at a seq from {good} to {}; nothing will be signed or appended. Run `logbook verify`",
        bad - 1
    )
}

/// For the self-check: whether the store's newest checkpoint, verified against the data (size
/// and root `verified`), extends the newest checkpoint of the witness directory; the problem if
/// not. A checkpoint is stored before it is written there, so the directory is never ahead of
/// an intact store.
pub(crate) async fn witness_dir_problem(
    config: &crate::LogConfig,
    store: &dyn Store,
    org: &Org,
    origin: &str,
    signer: &logbook_integrity::checkpoint::CheckpointSigner,
    (size, root): (u64, Hash),
) -> Option<String> {
    let dir = config.witness_dir.clone()?;
    let (slug, origin_owned, key) = (org.slug.clone(), origin.to_owned(), signer.verifier_key().to_owned());
    let newest = tokio::task::spawn_blocking(move || {
        let verifier = logbook_integrity::checkpoint::CheckpointVerifier::new(&key).map_err(std::io::Error::other)?;
        crate::witness::newest(&dir, &slug, &verifier, &origin_owned)
    })
    .await;
    let newest = match newest {
        Ok(Ok(n)) => n?,
        Ok(Err(e)) => return Some(format!("the witness directory could not be read: {e}")),
        Err(e) => return Some(format!("the witness directory could not be read: {e}")),
    };
    let anchor = Anchor::from((&newest, "the witness directory"));
    match check_extends(store, org, &anchor, size, root).await {
        Ok(Ok(())) => None,
        Ok(Err(Mismatch::Shorter)) => Some(format!(
            "the witness directory holds {}, larger than the store's newest (size {size}): entries or checkpoints were removed",
            anchor.describe()
        )),
        Ok(Err(Mismatch::Differs)) => Some(format!(
            "the store's newest checkpoint (size {size}) does not extend {}: the log was rewritten",
            anchor.describe()
        )),
        Err(e) => Some(format!("the store could not be read to compare with the witness directory: {e}")),
    }
}
