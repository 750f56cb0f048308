-- Logbook PostgreSQL schema, version 3: free-text search.
--
-- The search text of each event (case-folded by Logbook) lives beside the events, with a pg_trgm
-- GIN index, and is added by the search indexer outside the append's commit; search_progress
-- records how many events of each log it holds. Events above that point are found by decoding
-- their rows, so a search never misses an acknowledged event. Existing events are indexed by the
-- same indexer after the upgrade. This table is derived data: it is not append-only.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE event_search (
    org  BIGINT NOT NULL,
    seq  BIGINT NOT NULL,
    text TEXT   NOT NULL,
    PRIMARY KEY (org, seq)
);

CREATE INDEX event_search_trgm ON event_search USING gin (text gin_trgm_ops);

CREATE TABLE search_progress (
    org     BIGINT PRIMARY KEY REFERENCES orgs (id),
    indexed BIGINT NOT NULL  -- events 0 .. indexed are in event_search
);
