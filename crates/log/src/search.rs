//! The search indexer: keeps each log's free-text index caught up with its events.
//!
//! The trigram index is written outside the append's commit, because keeping it in that commit
//! costs ingestion about two thirds of its rate on SQLite (docs/BENCHMARKS.md). Every commit
//! wakes this task, which adds the new events' search text in batches, so an event is normally
//! in the index within milliseconds of its acknowledgement; a timer also catches events that
//! other processes appended. Until then the stores find the event by decoding the unindexed
//! tail (`Store::query_events`), so no search ever misses an acknowledged event.

use std::sync::Arc;
use std::time::Duration;

use crate::Shared;

/// Events indexed per store transaction: small enough not to hold SQLite's writer long.
pub const BATCH: usize = 2000;
/// How often the indexer looks for events no local commit announced (other processes).
pub const TICK: Duration = Duration::from_millis(500);

pub(crate) async fn run_indexer(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.search_wakeup.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        if let Err(e) = catch_up(&shared).await {
            // A failed batch is retried at the next tick; searches stay correct meanwhile.
            tracing::warn!(error = %e, "search indexing failed; retrying");
            tokio::time::sleep(TICK).await;
        }
    }
}

async fn catch_up(shared: &Shared) -> Result<(), logbook_store::StoreError> {
    for org in shared.store.orgs().await? {
        while shared.store.index_search_text(org.id, BATCH).await? == BATCH as u64 {}
    }
    Ok(())
}
