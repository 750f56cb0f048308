//! Audits a whole store: drives the [`Auditor`] over every log, page by page, reading the next
//! page while the current one is hashed.

use std::collections::BTreeMap;
use std::sync::Arc;

use logbook_integrity::audit::{Auditor, CheckpointClaim, Finding, Report, StoredEventRef};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_integrity::tree::TileRow;
use logbook_integrity::Hash;
use logbook_store::{EventRow, Org, Store, StoreError};

/// Events read per page.
const PAGE: u64 = 20_000;

/// A checkpoint saved earlier by someone who does not trust the store (a file, a witness copy).
#[derive(Debug, Clone)]
pub struct SuppliedCheckpoint {
    pub source: String,
    pub note: String,
}

/// Hands stored rows to the auditor, in order.
pub(crate) fn feed(auditor: &mut Auditor, rows: &[EventRow]) {
    for r in rows {
        auditor.event(StoredEventRef {
            seq: r.seq,
            time: r.time,
            action: &r.action,
            user: &r.user,
            leaf: &r.leaf,
            leaf_hash: &r.leaf_hash,
        });
    }
}

/// Audits one organization's log. `supplied` may hold checkpoints of other logs: those whose
/// origin is not this log's are ignored.
pub async fn audit_org(
    store: Arc<dyn Store>,
    org: &Org,
    origin: &str,
    verifier: &CheckpointVerifier,
    supplied: &[SuppliedCheckpoint],
) -> Result<Report, StoreError> {
    audit_org_with_progress(store, org, origin, verifier, supplied, &|_| {}).await
}

/// [`audit_org`], telling `progress` how many events each page audited (for a progress bar).
pub async fn audit_org_with_progress(
    store: Arc<dyn Store>,
    org: &Org,
    origin: &str,
    verifier: &CheckpointVerifier,
    supplied: &[SuppliedCheckpoint],
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Report, StoreError> {
    let mut claims = Vec::new();
    let mut early: Vec<Finding> = Vec::new();
    for cp in store.checkpoints(org.id).await? {
        match verifier.verify(&cp.note) {
            Ok(v) if v.origin == origin && v.size == cp.size && v.root.0 == cp.root => {
                claims.push(CheckpointClaim { size: v.size, root: v.root, source: "the stored checkpoint".into() })
            }
            Ok(_) => early.push(Finding {
                seq: None,
                problem: format!("the stored checkpoint of size {} does not match its signed note", cp.size),
            }),
            Err(e) => early.push(Finding {
                seq: None,
                problem: format!("the stored checkpoint of size {} is not validly signed ({e})", cp.size),
            }),
        }
    }
    for s in supplied {
        match verifier.verify(&s.note) {
            Ok(v) if v.origin == origin => {
                claims.push(CheckpointClaim { size: v.size, root: v.root, source: s.source.clone() })
            }
            Ok(_) => {}
            Err(e) => early.push(Finding {
                seq: None,
                problem: format!("{} is not a valid checkpoint of this log's key ({e})", s.source),
            }),
        }
    }

    let mut auditor = Auditor::new(org.slug.as_str(), claims);
    let fetch = |from: u64| {
        let store = store.clone();
        let id = org.id;
        tokio::spawn(async move { store.events(id, from..from.saturating_add(PAGE)).await })
    };
    // Every stored seq up to the highest, whatever gaps there are between.
    let end = store.log_head(org.id).await?.size;
    // Two pages in flight while one is audited: reading and hashing use both cores.
    let mut pending = std::collections::VecDeque::new();
    let mut next = 0;
    while next < end && pending.len() < 2 {
        pending.push_back(fetch(next));
        next += PAGE;
    }
    while let Some(page) = pending.pop_front() {
        let rows: Vec<EventRow> = page.await.map_err(StoreError::backend)??;
        if next < end {
            pending.push_back(fetch(next));
            next += PAGE;
        }
        feed(&mut auditor, &rows);
        compare_completed(&*store, org, &mut auditor).await?;
        progress(rows.len() as u64);
    }
    compare_completed(&*store, org, &mut auditor).await?;

    let size = auditor.size();
    let mut edge_rows = Vec::new();
    for level in 0..8u8 {
        let edge_index = size.checked_shr(8 * (u32::from(level) + 1)).unwrap_or(0);
        edge_rows.extend(store.tile_rows(org.id, level, edge_index..u64::MAX).await?);
    }
    let mut report = auditor.finish(&edge_rows);
    report.findings.extend(early);
    Ok(report)
}

pub(crate) async fn compare_completed(store: &dyn Store, org: &Org, auditor: &mut Auditor) -> Result<(), StoreError> {
    let done = auditor.take_completed();
    let mut by_level: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
    for t in &done {
        let e = by_level.entry(t.id.level).or_insert((t.id.index, t.id.index));
        e.0 = e.0.min(t.id.index);
        e.1 = e.1.max(t.id.index);
    }
    let mut stored: Vec<TileRow> = Vec::new();
    for (level, (lo, hi)) in by_level {
        stored.extend(store.tile_rows(org.id, level, lo..hi + 1).await?);
    }
    auditor.compare_tiles(&done, &stored);
    Ok(())
}

/// The root of a report, in hex.
pub fn root_hex(r: &Report) -> String {
    logbook_integrity::to_hex(&Hash(r.root.0))
}
