-- The audit trail lives in its own database file (stead-audit.db), so
-- appends never wait for the main database's write lock, which a large
-- `stead import` holds for seconds.
-- Every token request, issued or refused. Append-only apart from pruning.
CREATE TABLE audit (
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
CREATE INDEX audit_by_time ON audit (time_ms);
CREATE INDEX audit_by_tenant ON audit (tenant, time_ms);
CREATE INDEX audit_by_client ON audit (client_id, time_ms);
CREATE INDEX audit_by_subject ON audit (subject_id, time_ms);
