-- Issue 13 item 4: the scheduled full self-check's state per log (its progress through a run,
-- so that a restart resumes it, and its last finished run). Opaque to the store: the log
-- service seals it with a key derived from the signing key, since whoever can write this
-- database must not be able to move the progress past an edited event.
CREATE TABLE self_check (
    org           BIGINT NOT NULL PRIMARY KEY REFERENCES orgs (id),
    state         BYTEA   NOT NULL
);
