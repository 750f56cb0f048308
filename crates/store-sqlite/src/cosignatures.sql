-- Issue 13: the witnesses' cosignatures (C2SP tlog-cosignature) of the stored checkpoints, kept
-- with the checkpoint they sign; append-only like the checkpoints.
CREATE TABLE cosignatures (
    org          INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    witness      TEXT    NOT NULL,
    key_id       INTEGER NOT NULL,
    line         TEXT    NOT NULL,
    cosigned_s   INTEGER NOT NULL,
    received_us  INTEGER NOT NULL,
    PRIMARY KEY (org, size, witness, key_id),
    FOREIGN KEY (org, size) REFERENCES checkpoints (org, size)
) WITHOUT ROWID;

CREATE INDEX cosignatures_by_witness ON cosignatures (org, witness, key_id, size);

CREATE TRIGGER cosignatures_append_only_update BEFORE UPDATE ON cosignatures
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: cosignatures cannot be changed'); END;
CREATE TRIGGER cosignatures_append_only_delete BEFORE DELETE ON cosignatures
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: cosignatures cannot be deleted'); END;
