-- Issue 13: the witnesses' cosignatures (C2SP tlog-cosignature) of the stored checkpoints, kept
-- with the checkpoint they sign; append-only like the checkpoints (the application role needs
-- only INSERT and SELECT on it).
CREATE TABLE cosignatures (
    org          BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    witness      TEXT   NOT NULL,
    key_id       BIGINT NOT NULL,
    line         TEXT   NOT NULL,
    cosigned_s   BIGINT NOT NULL,
    received_us  BIGINT NOT NULL,
    PRIMARY KEY (org, size, witness, key_id),
    FOREIGN KEY (org, size) REFERENCES checkpoints (org, size)
);

CREATE INDEX cosignatures_by_witness ON cosignatures (org, witness, key_id, size);

CREATE TRIGGER cosignatures_append_only BEFORE UPDATE OR DELETE ON cosignatures
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();
CREATE TRIGGER cosignatures_no_truncate BEFORE TRUNCATE ON cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION logbook_append_only();
