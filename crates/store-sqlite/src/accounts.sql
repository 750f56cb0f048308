-- Logbook SQLite schema, version 2: the platform's accounts.
--
-- These tables change (roles, sessions, lockout counters); every change the audit log records
-- is committed in the same transaction as its events.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    org            INTEGER NOT NULL REFERENCES orgs (id),
    email          TEXT    NOT NULL,  -- lower case
    role           TEXT    NOT NULL CHECK (role IN ('admin', 'analyst', 'auditor')),
    password_hash  TEXT    NOT NULL,  -- Argon2id, PHC string
    totp_secret    TEXT,
    totp_last_step INTEGER,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until_us INTEGER,
    created_us     INTEGER NOT NULL,
    UNIQUE (org, email)
);

CREATE TABLE sessions (
    token_hash   BLOB    PRIMARY KEY,  -- SHA-256 of the cookie's token
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org          INTEGER NOT NULL,
    created_us   INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    expires_us   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_last_seen ON sessions (org, last_seen_us);
CREATE INDEX sessions_by_expiry ON sessions (org, expires_us);

CREATE TABLE session_views (
    token_hash BLOB NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    digest     BLOB NOT NULL,
    PRIMARY KEY (token_hash, digest)
) WITHOUT ROWID;

CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    org         INTEGER NOT NULL REFERENCES orgs (id),
    email       TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'analyst', 'auditor')),
    token_hash  BLOB    NOT NULL UNIQUE,
    invited_by  TEXT    NOT NULL,
    created_us  INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL,
    accepted_us INTEGER,
    revoked_us  INTEGER
);

CREATE TABLE protected_users (
    id       INTEGER PRIMARY KEY,
    org      INTEGER NOT NULL REFERENCES orgs (id),
    email    TEXT    NOT NULL,  -- lower case
    name     TEXT    NOT NULL,
    added_us INTEGER NOT NULL,
    UNIQUE (org, email)
);

CREATE TABLE settings (
    org  INTEGER PRIMARY KEY REFERENCES orgs (id),
    json TEXT    NOT NULL
);
