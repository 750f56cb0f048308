-- Logbook SQLite schema, version 1.
--
-- events, tiles and checkpoints are append-only: the triggers at the end abort any UPDATE or
-- DELETE. Events are ordered by (org, seq); seq follows time, so a time range is found by a
-- binary search on seq and needs no index of its own.

CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY,
    slug       TEXT    NOT NULL UNIQUE,
    created_us INTEGER NOT NULL
);

CREATE TABLE events (
    org       INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    time_us   INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    user      TEXT    NOT NULL,
    leaf      BLOB    NOT NULL,  -- canonical leaf encoding: the source of truth
    leaf_hash BLOB    NOT NULL,  -- SHA-256(0x00 || leaf)
    PRIMARY KEY (org, seq)
) WITHOUT ROWID;

CREATE INDEX events_by_user ON events (org, user, seq);
CREATE INDEX events_by_action ON events (org, action, seq);

-- C2SP tlog-tiles, height 8: full tiles, and for levels >= 1 the partial edge tile as of each
-- commit (a wider row is added beside a narrower one, never over it).
CREATE TABLE tiles (
    org    INTEGER NOT NULL,
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    width  INTEGER NOT NULL,
    hashes BLOB    NOT NULL,
    UNIQUE (org, level, idx, width)
);

CREATE TABLE checkpoints (
    org       INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    root      BLOB    NOT NULL,
    note      TEXT    NOT NULL,
    signed_us INTEGER NOT NULL,
    PRIMARY KEY (org, size)
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    org        INTEGER NOT NULL REFERENCES orgs (id),
    name       TEXT    NOT NULL,
    token_hash BLOB    NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
    created_us INTEGER NOT NULL,
    revoked_us INTEGER,
    UNIQUE (org, name)
);

CREATE TABLE idempotency_keys (
    token        INTEGER NOT NULL REFERENCES api_tokens (id),
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    first_seq    INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    created_us   INTEGER NOT NULL,
    PRIMARY KEY (token, key)
) WITHOUT ROWID;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events cannot be changed'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events cannot be deleted'); END;
CREATE TRIGGER tiles_append_only_update BEFORE UPDATE ON tiles
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: tree tiles cannot be changed'); END;
CREATE TRIGGER tiles_append_only_delete BEFORE DELETE ON tiles
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: tree tiles cannot be deleted'); END;
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: checkpoints cannot be changed'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: checkpoints cannot be deleted'); END;
