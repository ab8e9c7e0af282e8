-- Records are committed here first, in a table without indexes, so that a
-- token's synced commit writes one table page rather than a page of each
-- of the four indexes of `audit`. The writer moves them into `audit` a few
-- hundred at a time; every row in `audit` was committed before every row
-- still here. Queries read both tables.
CREATE TABLE audit_recent (
    time_ms         INTEGER NOT NULL,
    tenant          TEXT NOT NULL,
    realm           TEXT NOT NULL,
    client_id       TEXT,
    subject_id      TEXT,
    subject_given   TEXT,
    requested_scope TEXT,
    granted_scope   TEXT,
    jti             TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('issued', 'refused')),
    error           TEXT,
    remote_addr     TEXT,
    request_id      TEXT NOT NULL
);
