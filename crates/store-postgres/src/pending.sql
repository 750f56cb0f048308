-- Logbook PostgreSQL schema, version 5: sign-ins that passed their password and await the TOTP code.
--
-- The token is kept server-side (its SHA-256) so that it works once and for a few codes only,
-- shared by every process on the database. Not part of the log; expired rows are dropped when a
-- new one is added.

CREATE TABLE pending_sign_ins (
    token_hash BYTEA   PRIMARY KEY,  -- SHA-256 of the token handed to the browser
    org        BIGINT  NOT NULL REFERENCES orgs (id),
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_us BIGINT  NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0  -- codes tried
);
CREATE INDEX pending_sign_ins_by_user ON pending_sign_ins (user_id);
CREATE INDEX pending_sign_ins_by_expiry ON pending_sign_ins (expires_us);
