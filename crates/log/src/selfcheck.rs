//! The periodic self-check: the newest part of every log, audited against its newest signed
//! checkpoint, on a schedule (`serve` runs [`crate::LogService::self_check`] every
//! `--self-check-interval`).
//!
//! For each organization, one run:
//!
//! 1. takes the newest stored checkpoint (size `n`, root `R`) and checks its signature with
//!    the log's public key, its origin, and that the stored size and root columns are the
//!    note's;
//! 2. chooses where to start: `s = min(m, n − 10,000)` where `m` is the size of the checkpoint
//!    this process verified last (`n` at the first run), so every run re-reads at least the
//!    newest 10,000 events — a damaged recent row is found even while nothing is appended —
//!    and never skips an event appended since the last run;
//! 3. rebuilds the tree edge at `s` from the stored tiles, then feeds the events `s..n` to the
//!    same [`Auditor`] `logbook verify` uses ([`Auditor::resume`]): `seq` gapless, the leaf
//!    decodes and names this organization and `seq`, the indexed columns match it, time never
//!    goes backwards, the stored leaf hash is the leaf's hash; every tile those events complete
//!    and every stored tile row at the edge of size `n` equal the recomputed ones;
//! 4. requires the recomputed root at `n` to be `R`, and at `m` to be the root verified by the
//!    previous run.
//!
//! Why this is sound although the edge at `s` is read from the store unchecked: the root at `n`
//! is a hash over that edge and every leaf hash of `s..n`, so (SHA-256 being collision
//! resistant) it equals the signed `R` only if the stored edge and every event of `s..n` are
//! exactly what the signer committed to. Meeting the previously verified root at `m` on the way
//! is a consistency proof from that checkpoint to the new one, computed from the data itself:
//! the new checkpoint extends the old tree, history was not rewritten between runs. A newest
//! checkpoint smaller than the previously verified one means checkpoints were removed.
//!
//! What it does not do: re-read events older than the window (that is the scheduled full check's
//! job, [`crate::fullcheck`], and `logbook verify`'s, with checkpoints kept elsewhere), or
//! detect a store rewritten consistently with the signing key, which this process holds. A failed run keeps the previous
//! verified checkpoint, so the next run checks the same span again and keeps failing until the
//! damage is dealt with.

use std::sync::Arc;

use logbook_core::Timestamp;
use logbook_integrity::audit::{Auditor, CheckpointClaim};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_integrity::tree::{TileRow, TreeEdge};
use logbook_integrity::Hash;
use logbook_store::{Org, Store, StoreError};

/// Events every run re-reads at least, below the newest checkpoint.
pub const RECENT_EVENTS: u64 = 10_000;

/// Events read per page.
const PAGE: u64 = 10_000;

/// Findings kept per organization in the result.
const MAX_PROBLEMS: usize = 20;

/// One organization's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgCheck {
    pub org: String,
    /// The first event re-read.
    pub from: u64,
    /// The size of the newest checkpoint checked (0: no checkpoint yet).
    pub size: u64,
    pub first_bad_seq: Option<u64>,
    /// Empty if intact.
    pub problems: Vec<String>,
}

impl OrgCheck {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn failed(org: &Org, from: u64, size: u64, problem: String) -> Self {
        Self { org: org.slug.to_string(), from, size, first_bad_seq: None, problems: vec![problem] }
    }
}

/// One run over every log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheckRun {
    pub at: Timestamp,
    pub orgs: Vec<OrgCheck>,
    /// Set when the list of logs itself could not be read.
    pub error: Option<String>,
}

impl SelfCheckRun {
    pub fn is_ok(&self) -> bool {
        self.error.is_none() && self.orgs.iter().all(OrgCheck::is_ok)
    }

    /// Entries covered by the checkpoints checked, over all logs.
    pub fn verified_size(&self) -> u64 {
        self.orgs.iter().map(|o| o.size).sum()
    }
}

/// What the console shows: the last run, and when one last passed; and the scheduled full
/// check of the whole log ([`crate::fullcheck`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfCheckStatus {
    pub last: Option<SelfCheckRun>,
    pub last_success: Option<Timestamp>,
    pub full: crate::fullcheck::FullCheckStatus,
}

impl SelfCheckStatus {
    /// The integrity alarm: the last incremental run failed, or some log's last full run did.
    pub fn alarm(&self) -> bool {
        self.last.as_ref().is_some_and(|r| !r.is_ok()) || self.full.failed()
    }
}

/// Checks one log (see the module documentation) with the public key of `signer`. `verified` is the checkpoint (size, root)
/// the previous run verified. Returns the result and, if intact, the checkpoint now verified.
pub(crate) async fn check_org(
    store: &Arc<dyn Store>,
    org: &Org,
    origin: &str,
    signer: &CheckpointSigner,
    verified: Option<(u64, Hash)>,
) -> Result<(OrgCheck, Option<(u64, Hash)>), StoreError> {
    let Some(cp) = store.latest_checkpoint(org.id).await? else {
        return Ok((
            OrgCheck { org: org.slug.to_string(), from: 0, size: 0, first_bad_seq: None, problems: vec![] },
            None,
        ));
    };
    let n = cp.size;
    // The verifier is not `Send`: made and dropped here, between two awaits.
    let note = signer.verifier().verify(&cp.note).map(|v| (v.origin, v.size, v.root)).map_err(|e| e.to_string());
    match note {
        Ok((o, size, r)) if o == origin && size == n && r.0 == cp.root => {}
        Ok(_) => {
            let p = format!("the newest stored checkpoint (size {n}) does not match its signed note");
            return Ok((OrgCheck::failed(org, n, n, p), None));
        }
        Err(e) => {
            let p = format!("the newest stored checkpoint (size {n}) is not validly signed ({e})");
            return Ok((OrgCheck::failed(org, n, n, p), None));
        }
    }
    let root = Hash(cp.root);
    if let Some((m, _)) = verified {
        if m > n {
            let p = format!(
                "the newest stored checkpoint has size {n}, but one of size {m} was verified before: checkpoints were removed"
            );
            return Ok((OrgCheck::failed(org, n, n, p), None));
        }
    }
    let from = verified.map_or(n, |v| v.0).min(n.saturating_sub(RECENT_EVENTS));
    let mut claims = vec![CheckpointClaim { size: n, root, source: "the newest stored checkpoint".into() }];
    if let Some((m, r)) = verified {
        claims.push(CheckpointClaim {
            size: m,
            root: r,
            source: "the checkpoint verified by the previous self-check".into(),
        });
    }

    let need = TreeEdge::tiles_for(from);
    let data = store.read_tiles(org.id, &need).await?;
    let tiles: Vec<_> = need.into_iter().zip(data).collect();
    let edge = match TreeEdge::restore(from, &tiles) {
        Ok(e) => e,
        Err(e) => {
            let mut c = OrgCheck::failed(org, from, n, format!("the stored tree at size {from} cannot be read ({e})"));
            c.first_bad_seq = Some(from);
            return Ok((c, None));
        }
    };
    let mut auditor = Auditor::resume(org.slug.as_str(), edge, claims);
    let mut next = from;
    while next < n {
        let rows = store.events(org.id, next..n.min(next + PAGE)).await?;
        crate::audit::feed(&mut auditor, &rows);
        crate::audit::compare_completed(&**store, org, &mut auditor).await?;
        next += PAGE;
    }
    let edge_rows = edge_rows(&**store, org, auditor.edge()).await?;
    let report = auditor.finish(&edge_rows);
    let check = OrgCheck {
        org: org.slug.to_string(),
        from,
        size: n,
        first_bad_seq: report.first_bad_seq(),
        problems: report.findings.iter().take(MAX_PROBLEMS).map(ToString::to_string).collect(),
    };
    let now_verified = report.is_intact().then_some((n, root));
    Ok((check, now_verified))
}

/// The stored tile rows at the edge of `edge` (the recomputed tree of a checked size) for
/// [`Auditor::finish`]; wider rows at the same index were added by later appends and are left
/// out.
pub(crate) async fn edge_rows(store: &dyn Store, org: &Org, edge: &TreeEdge) -> Result<Vec<TileRow>, StoreError> {
    let size = edge.size();
    let mut rows = Vec::new();
    for level in 0..8u8 {
        let index = size.checked_shr(8 * (u32::from(level) + 1)).unwrap_or(0);
        let entries = edge.edge_entries(level).len();
        rows.extend(
            store
                .tile_rows(org.id, level, index..index + 1)
                .await?
                .into_iter()
                .filter(|r| r.id.width as usize <= entries),
        );
    }
    Ok(rows)
}
