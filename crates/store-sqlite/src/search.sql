-- Logbook SQLite schema, version 3: free-text search.
--
-- The trigram index is kept outside the append's commit (it would cut ingestion to about a
-- third, docs/BENCHMARKS.md): the search indexer adds each event's search text after the fact,
-- and records in search_progress how many events of each log it holds. Events above that point
-- are found by decoding their rows, so a search never misses an acknowledged event. Existing
-- events are indexed by the same indexer after the upgrade.
--
-- The FTS rowid is (org << 40) | seq. The text is case-folded by Logbook before it is stored and
-- every needle is folded the same way, so the tokenizer compares exactly.

CREATE VIRTUAL TABLE event_search USING fts5(text, tokenize = 'trigram case_sensitive 1');

CREATE TABLE search_progress (
    org     INTEGER PRIMARY KEY REFERENCES orgs (id),
    indexed INTEGER NOT NULL  -- events 0 .. indexed are in event_search
);
