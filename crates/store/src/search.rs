//! Free-text and filtered queries of the audit log: the filter, the search text, and the one
//! algorithm every backend answers a page with (see [`crate::reads`]).

use std::ops::Range;

use logbook_core::{leaf, Event};

use crate::reads::{LogReads, TextMatch, Walk};
use crate::{EventRow, StoreError};

/// What the audit log's queries filter on. Results are always newest first (descending `seq`,
/// which is also descending time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Exactly this User column value.
    pub user: Option<String>,
    /// Any of these action codes; empty means every action.
    pub actions: Vec<String>,
    /// Only these seqs: a time range becomes a seq range (see [`crate::Store::seq_at_or_after`]).
    pub seqs: Range<u64>,
    /// Case-insensitive substring of the event's [`search_text`] (user, actor id, action label
    /// and code, details, target display and id). It never contains a control character.
    pub text: Option<String>,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self { user: None, actions: Vec::new(), seqs: 0..u64::MAX, text: None }
    }
}

impl EventFilter {
    /// The queries a backend runs for this filter: one per action (or one for all actions),
    /// each able to walk one index newest first; [`merge_newest_first`] combines their pages.
    pub fn single_action_queries(&self) -> Vec<Option<&str>> {
        if self.actions.is_empty() {
            vec![None]
        } else {
            self.actions.iter().map(|a| Some(a.as_str())).collect()
        }
    }

    /// The exclusive upper seq bound of a page below the cursor `before`.
    pub fn upper(&self, before: u64) -> u64 {
        self.seqs.end.min(before)
    }

    /// The text filter as matched against [`search_text`]: case-folded; `None` when empty.
    pub fn needle(&self) -> Option<String> {
        self.text.as_deref().filter(|t| !t.is_empty()).map(fold_case)
    }

    /// The same filter without its text part (what a backend's plain index walk takes).
    pub fn without_text(&self) -> Self {
        Self { text: None, ..self.clone() }
    }
}

/// A needle this long or longer can use a trigram index; a shorter one cannot (it has no
/// trigram), so backends scan for it instead, a bounded number of rows per call.
pub const TRIGRAM_MIN_CHARS: usize = 3;

/// Most rows a backend examines for one page of a search it cannot answer from the index (a
/// needle shorter than [`TRIGRAM_MIN_CHARS`]); the page then ends early with a resume point.
pub const SHORT_NEEDLE_SCAN_ROWS: u64 = 200_000;

/// Case folding shared by the stored search text and every needle, so both sides agree
/// whatever the backend's own notion of case is.
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

/// The text free-text search looks in, case-folded: the User column, the actor's identifier,
/// the action's label (a platform action's: a service's label is registered beside the log, not
/// in the leaf this text is made from) and code, the details, the target's display and identifier. Parts are
/// joined by a newline, which no event field and no needle may contain (control characters are
/// refused), so a match never spans two parts.
pub fn search_text(e: &Event) -> String {
    let mut parts: Vec<&str> = vec![e.user()];
    if e.body.actor.id != e.user() {
        parts.push(&e.body.actor.id);
    }
    if let Some(label) = e.body.action.platform_label() {
        parts.push(label);
    }
    parts.push(e.body.action.code());
    parts.push(&e.body.details);
    if let Some(t) = &e.body.target {
        parts.push(&t.display);
        parts.push(&t.id);
    }
    fold_case(&parts.join("\n"))
}

/// [`search_text`] of a stored row: what the indexers store and the unindexed tail is matched on.
pub fn search_text_of(row: &EventRow) -> Result<String, StoreError> {
    let e = leaf::decode(&row.leaf)
        .map_err(|e| StoreError::Corrupt(format!("event {} cannot be decoded: {e}", row.seq)))?;
    Ok(search_text(&e))
}

/// One page of a query, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPage {
    pub rows: Vec<EventRow>,
    /// Where the next page starts (its `before`), or `None` when nothing older matches. Usually
    /// the last row's `seq`; a bounded scan that stopped early gives the seq it stopped at, so a
    /// page may hold fewer rows than asked and still have a next one.
    pub next_before: Option<u64>,
}

impl EventPage {
    /// A page that found what it could in a complete walk down to the filter's lower bound.
    pub fn complete(rows: Vec<EventRow>, limit: usize) -> Self {
        let next_before = if rows.len() >= limit && limit > 0 { rows.last().map(|r| r.seq) } else { None };
        Self { rows, next_before }
    }
}

/// Merges pages that are each newest first into one page of at most `limit`.
pub fn merge_newest_first(pages: Vec<Vec<EventRow>>, limit: usize) -> Vec<EventRow> {
    if pages.len() == 1 {
        return pages.into_iter().flatten().take(limit).collect();
    }
    let mut all: Vec<EventRow> = pages.into_iter().flatten().collect();
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.seq));
    all.dedup_by_key(|e| e.seq);
    all.truncate(limit);
    all
}

/// Rows decoded per step of the scan of the events the indexer has not reached yet.
const TAIL_CHUNK: usize = 1000;

/// A page without text filter: one index walk per action, newest first, merged.
pub(crate) async fn plain_page(
    r: &impl LogReads,
    filter: &EventFilter,
    before: u64,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let seqs = filter.seqs.start..filter.upper(before);
    let mut pages = Vec::new();
    for action in filter.single_action_queries() {
        pages.push(r.walk(&Walk { user: filter.user.as_deref(), action, seqs: seqs.clone(), limit }).await?);
    }
    Ok(merge_newest_first(pages, limit))
}

/// A page with a text filter: first the events above the indexer's progress, matched by decoding
/// them, so an event is found from the moment its commit returns; then the indexed ones, from
/// the backend's trigram index (or, for a needle too short to have a trigram, a scan of at most
/// [`SHORT_NEEDLE_SCAN_ROWS`] seqs, after which the page ends early with a resume point).
pub(crate) async fn text_page(
    r: &impl LogReads,
    filter: &EventFilter,
    needle: &str,
    before: u64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let indexed = r.search_indexed().await?;
    let lo = filter.seqs.start;
    let mut hi = filter.upper(before);
    let mut rows: Vec<EventRow> = Vec::new();
    let plain = filter.without_text();
    let tail_lo = lo.max(indexed);
    while hi > tail_lo && rows.len() < limit {
        let range = EventFilter { seqs: tail_lo..hi, ..plain.clone() };
        let chunk = plain_page(r, &range, hi, TAIL_CHUNK).await?;
        let Some(last) = chunk.last().map(|r| r.seq) else { break };
        for row in chunk {
            if rows.len() == limit {
                return Ok(EventPage::complete(rows, limit));
            }
            if search_text_of(&row)?.contains(needle) {
                rows.push(row);
            }
        }
        hi = last;
    }
    if rows.len() == limit {
        return Ok(EventPage::complete(rows, limit));
    }
    let hi = hi.min(tail_lo);
    let short = needle.chars().count() < TRIGRAM_MIN_CHARS;
    let floor = if short { lo.max(hi.saturating_sub(SHORT_NEEDLE_SCAN_ROWS)) } else { lo };
    if hi > floor {
        let want = limit - rows.len();
        rows.extend(r.index_matches(&TextMatch { filter, needle, short, seqs: floor..hi, want }).await?);
    }
    let next_before = if rows.len() >= limit {
        rows.last().map(|r| r.seq)
    } else if floor > lo {
        Some(floor)
    } else {
        None
    };
    Ok(EventPage { rows, next_before })
}

/// The statements of one backend inside an open transaction of the search indexer.
#[allow(async_fn_in_trait)] // see `crate::commit::AppendTx`
pub trait SearchIndexTx {
    async fn indexed(&self) -> Result<u64, StoreError>;
    /// Up to `max` events from `seq` on, in seq order.
    async fn events_from(&self, seq: u64, max: usize) -> Result<Vec<EventRow>, StoreError>;
    async fn insert_texts(&self, texts: &[(u64, String)]) -> Result<(), StoreError>;
    async fn set_indexed(&self, events: u64) -> Result<(), StoreError>;
}

/// See [`crate::Store::index_search_text`]. The caller commits on `Ok`.
pub async fn index_search_text(tx: &impl SearchIndexTx, max: usize) -> Result<u64, StoreError> {
    let from = tx.indexed().await?;
    let rows = tx.events_from(from, max).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let texts: Vec<(u64, String)> = rows.iter().map(|r| Ok((r.seq, search_text_of(r)?))).collect::<Result<_, _>>()?;
    tx.insert_texts(&texts).await?;
    let n = rows.len() as u64;
    tx.set_indexed(from + n).await?;
    Ok(n)
}
