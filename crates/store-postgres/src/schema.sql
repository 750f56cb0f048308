-- Logbook PostgreSQL schema, version 1. Applied under an advisory lock, so several processes
-- starting together are safe.
--
-- events, tiles and checkpoints are append-only: triggers abort UPDATE, DELETE and TRUNCATE,
-- and the application role needs (and should get) only INSERT and SELECT on them.

CREATE TABLE orgs (
    id         BIGSERIAL PRIMARY KEY,
    slug       TEXT   NOT NULL UNIQUE,
    created_us BIGINT NOT NULL
);

CREATE TABLE events (
    org       BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    time_us   BIGINT NOT NULL,
    action    TEXT   NOT NULL,
    "user"    TEXT   NOT NULL,
    leaf      BYTEA  NOT NULL,  -- canonical leaf encoding: the source of truth
    leaf_hash BYTEA  NOT NULL,  -- SHA-256(0x00 || leaf)
    PRIMARY KEY (org, seq)
);

CREATE INDEX events_by_user ON events (org, "user", seq);
CREATE INDEX events_by_action ON events (org, action, seq);

CREATE TABLE tiles (
    org    BIGINT   NOT NULL,
    level  SMALLINT NOT NULL,
    idx    BIGINT   NOT NULL,
    width  INTEGER  NOT NULL,
    hashes BYTEA    NOT NULL,
    PRIMARY KEY (org, level, idx, width)
);

CREATE TABLE checkpoints (
    org       BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    root      BYTEA  NOT NULL,
    note      TEXT   NOT NULL,
    signed_us BIGINT NOT NULL,
    PRIMARY KEY (org, size)
);

CREATE TABLE api_tokens (
    id         BIGSERIAL PRIMARY KEY,
    org        BIGINT NOT NULL REFERENCES orgs (id),
    name       TEXT   NOT NULL,
    token_hash BYTEA  NOT NULL UNIQUE,
    created_us BIGINT NOT NULL,
    revoked_us BIGINT,
    UNIQUE (org, name)
);

CREATE TABLE idempotency_keys (
    token        BIGINT NOT NULL REFERENCES api_tokens (id),
    key          TEXT   NOT NULL,
    request_hash BYTEA  NOT NULL,
    first_seq    BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    created_us   BIGINT NOT NULL,
    PRIMARY KEY (token, key)
);

CREATE FUNCTION logbook_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION logbook_append_only();
CREATE TRIGGER tiles_append_only BEFORE UPDATE OR DELETE ON tiles
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();
CREATE TRIGGER tiles_no_truncate BEFORE TRUNCATE ON tiles
    FOR EACH STATEMENT EXECUTE FUNCTION logbook_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION logbook_append_only();
