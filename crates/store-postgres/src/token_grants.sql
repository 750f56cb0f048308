-- Issue 12 item 4: what each API token may record (its allow-list of action codes, written as
-- `logbook_core::ActionGrant` writes it; existing tokens get the default, service codes only),
-- and the labels of the services' own action codes, registered once per code (with the log's
-- first event of that code).
ALTER TABLE api_tokens ADD COLUMN actions TEXT NOT NULL DEFAULT '*';

CREATE TABLE service_actions (
    org           BIGINT NOT NULL REFERENCES orgs (id),
    code          TEXT   NOT NULL,
    label         TEXT   NOT NULL,
    PRIMARY KEY (org, code)
);
