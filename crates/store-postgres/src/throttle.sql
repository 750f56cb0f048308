-- Logbook PostgreSQL schema, version 4: failed sign-ins counted per source address, shared by
-- every process on the database.
--
-- One row per (organization, address): the start of its current window and the failures in it.
-- Not part of the log (the failures themselves are recorded as Login Failed events); rows whose
-- window has passed are pruned.

CREATE TABLE sign_in_throttle (
    org             BIGINT  NOT NULL REFERENCES orgs (id),
    address         TEXT    NOT NULL,
    window_start_us BIGINT  NOT NULL,
    failures        INTEGER NOT NULL,
    PRIMARY KEY (org, address)
);
CREATE INDEX sign_in_throttle_by_window ON sign_in_throttle (window_start_us);
