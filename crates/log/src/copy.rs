//! Copies every log from one store to another (`logbook migrate-store`), through the same
//! commit the sequencer uses: the copy's tiles are rebuilt from the copied leaf hashes, the
//! checkpoints are copied as signed (with their witnesses' cosignatures), and the caller then
//! audits both and compares roots.

use std::sync::Arc;

use logbook_integrity::tree::TreeEdge;
use logbook_integrity::Hash;
use logbook_store::{CommitBatch, Store, StoreError};

/// Events copied per commit.
const PAGE: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the destination already holds {size} events of {org}; copy into an empty store")]
    NotEmpty { org: String, size: u64 },
    #[error("the source log of {org} has a gap at seq {seq}; run `logbook verify` on it first")]
    Gap { org: String, seq: u64 },
    #[error("writing the copy: {0}")]
    Commit(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was copied of one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub org: String,
    pub events: u64,
    pub checkpoints: usize,
    pub tokens: usize,
}

pub async fn copy_store(from: Arc<dyn Store>, to: Arc<dyn Store>) -> Result<Vec<Copied>, CopyError> {
    copy_store_with_progress(from, to, &|_| {}).await
}

/// [`copy_store`], telling `progress` how many events each commit copied (for a progress bar).
pub async fn copy_store_with_progress(
    from: Arc<dyn Store>,
    to: Arc<dyn Store>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Vec<Copied>, CopyError> {
    let mut out = Vec::new();
    for org in from.orgs().await? {
        let dest = to.ensure_org(&org.slug, org.created).await?;
        let size = to.log_head(dest.id).await?.size;
        if size > 0 {
            return Err(CopyError::NotEmpty { org: org.slug.to_string(), size });
        }
        let mut edge = TreeEdge::new();
        let mut next = 0u64;
        loop {
            let events = from.events(org.id, next..next + PAGE).await?;
            let Some(last) = events.last() else { break };
            if last.seq != next + events.len() as u64 - 1 {
                let seq = events.iter().zip(next..).find(|(e, s)| e.seq != *s).map_or(next, |(_, s)| s);
                return Err(CopyError::Gap { org: org.slug.to_string(), seq });
            }
            let base = next;
            next = last.seq + 1;
            let now = last.time;
            let tiles = edge.append_all(events.iter().map(|e| Hash(e.leaf_hash)));
            to.commit(dest.id, CommitBatch { base_size: base, events, tiles, mutations: Vec::new(), now })
                .await
                .map_err(|e| CopyError::Commit(e.to_string()))?;
            progress(next - base);
        }
        let checkpoints = from.checkpoints(org.id).await?;
        for cp in &checkpoints {
            to.add_checkpoint(dest.id, cp).await?;
            // The witnesses' cosignatures go with the checkpoint they sign.
            for c in from.cosignatures(org.id, cp.size).await? {
                to.add_cosignature(dest.id, &c).await?;
            }
        }
        for action in from.service_actions(org.id).await? {
            to.import_service_action(dest.id, &action).await?;
        }
        let tokens = from.api_token_rows(org.id).await?;
        for (t, h) in &tokens {
            to.import_api_token(dest.id, t, h).await?;
        }
        out.push(Copied {
            org: org.slug.to_string(),
            events: next,
            checkpoints: checkpoints.len(),
            tokens: tokens.len(),
        });
    }
    Ok(out)
}
