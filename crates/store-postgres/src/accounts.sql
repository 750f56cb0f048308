-- Logbook PostgreSQL schema, version 2: the platform's accounts.
--
-- These tables change (roles, sessions, lockout counters); every change the audit log records
-- is committed in the same transaction as its events. Sessions live here so that every
-- process sharing the database sees the same sign-ins.

CREATE TABLE users (
    id              BIGSERIAL PRIMARY KEY,
    org             BIGINT NOT NULL REFERENCES orgs (id),
    email           TEXT   NOT NULL,  -- lower case
    role            TEXT   NOT NULL CHECK (role IN ('admin', 'analyst', 'auditor')),
    password_hash   TEXT   NOT NULL,  -- Argon2id, PHC string
    totp_secret     TEXT,
    totp_last_step  BIGINT,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until_us BIGINT,
    created_us      BIGINT NOT NULL,
    UNIQUE (org, email)
);

CREATE TABLE sessions (
    token_hash   BYTEA  PRIMARY KEY,  -- SHA-256 of the cookie's token
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org          BIGINT NOT NULL,
    created_us   BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL,
    expires_us   BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_last_seen ON sessions (org, last_seen_us);
CREATE INDEX sessions_by_expiry ON sessions (org, expires_us);

CREATE TABLE session_views (
    token_hash BYTEA NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    digest     BYTEA NOT NULL,
    PRIMARY KEY (token_hash, digest)
);

CREATE TABLE invitations (
    id          BIGSERIAL PRIMARY KEY,
    org         BIGINT NOT NULL REFERENCES orgs (id),
    email       TEXT   NOT NULL,
    role        TEXT   NOT NULL CHECK (role IN ('admin', 'analyst', 'auditor')),
    token_hash  BYTEA  NOT NULL UNIQUE,
    invited_by  TEXT   NOT NULL,
    created_us  BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL,
    accepted_us BIGINT,
    revoked_us  BIGINT
);

CREATE TABLE protected_users (
    id       BIGSERIAL PRIMARY KEY,
    org      BIGINT NOT NULL REFERENCES orgs (id),
    email    TEXT   NOT NULL,  -- lower case
    name     TEXT   NOT NULL,
    added_us BIGINT NOT NULL,
    UNIQUE (org, email)
);

CREATE TABLE settings (
    org  BIGINT PRIMARY KEY REFERENCES orgs (id),
    json TEXT   NOT NULL
);
