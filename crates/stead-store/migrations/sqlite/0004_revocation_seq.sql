-- Revocations get a sequence of their own, apart from `meta.change_version`.
-- A server reads the revocations recorded after the last one it read,
-- instead of reloading the whole directory, every revocation included, on
-- each revocation. `meta.revocation_seq` is the newest point; each
-- revocation row holds its own.
ALTER TABLE meta ADD COLUMN revocation_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE revocations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE revocations SET seq = numbered.n
    FROM (SELECT tenant_id, jti, row_number() OVER (ORDER BY tenant_id, jti) AS n FROM revocations) AS numbered
    WHERE revocations.tenant_id = numbered.tenant_id AND revocations.jti = numbered.jti;
UPDATE meta SET revocation_seq = (SELECT count(*) FROM revocations) WHERE id = 1;
CREATE INDEX revocations_by_seq ON revocations (seq);
