-- Logbook SQLite schema, version 4: failed sign-ins counted per source address.
--
-- One row per (organization, address): the start of its current window and the failures in it.
-- Not part of the log (the failures themselves are recorded as Login Failed events); rows whose
-- window has passed are pruned.

CREATE TABLE sign_in_throttle (
    org             INTEGER NOT NULL REFERENCES orgs (id),
    address         TEXT    NOT NULL,
    window_start_us INTEGER NOT NULL,
    failures        INTEGER NOT NULL,
    PRIMARY KEY (org, address)
) WITHOUT ROWID;
CREATE INDEX sign_in_throttle_by_window ON sign_in_throttle (window_start_us);
