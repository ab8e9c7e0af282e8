-- Governance: client secrets with expiry (rotation with overlap), subject
-- groups, signing-key retirement and token revocation.

-- A client's secrets, one row each (HMAC-SHA-256 under the pepper, never a
-- secret itself). After a rotation the old ones carry `expires_at`.
CREATE TABLE client_secrets (
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    hash       BLOB NOT NULL CHECK (length(hash) = 32),
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (tenant_id, client_id, hash),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients (tenant_id, id) ON DELETE CASCADE
);

-- The concatenated hashes of 0001 become rows, in their order.
INSERT OR IGNORE INTO client_secrets (tenant_id, client_id, hash, created_at, expires_at)
WITH RECURSIVE chunks (tenant_id, client_id, blob, n) AS (
    SELECT tenant_id, id, secret_hashes, 0 FROM clients WHERE length(secret_hashes) >= 32
    UNION ALL
    SELECT tenant_id, client_id, blob, n + 1 FROM chunks WHERE 32 * (n + 2) <= length(blob)
)
SELECT tenant_id, client_id, substr(blob, 1 + 32 * n, 32), CAST(strftime('%s', 'now') AS INTEGER), NULL
FROM chunks
ORDER BY tenant_id, client_id, n;

ALTER TABLE clients DROP COLUMN secret_hashes;

-- JSON arrays of group names. `subject_groups` NULL: no restriction.
ALTER TABLE clients ADD COLUMN subject_groups TEXT CHECK (subject_groups IS NULL OR json_type(subject_groups) = 'array');
ALTER TABLE clients ADD COLUMN deny_subject_groups TEXT NOT NULL DEFAULT '[]'
    CHECK (json_type(deny_subject_groups) = 'array');
ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]' CHECK (json_type(groups) = 'array');
ALTER TABLE customers ADD COLUMN groups TEXT NOT NULL DEFAULT '[]' CHECK (json_type(groups) = 'array');

-- A retired key still verifies the tokens it signed until they expire. The
-- newest key of each tenant stays active; older ones are retired now, so
-- they stay published for the full grace period from here on.
ALTER TABLE signing_keys ADD COLUMN retired_at INTEGER;
UPDATE signing_keys SET retired_at = CAST(strftime('%s', 'now') AS INTEGER)
WHERE EXISTS (
    SELECT 1 FROM signing_keys AS newer
    WHERE newer.tenant_id = signing_keys.tenant_id
      AND (newer.created_at > signing_keys.created_at
           OR (newer.created_at = signing_keys.created_at AND newer.kid > signing_keys.kid))
);
CREATE INDEX signing_keys_by_retired_at ON signing_keys (retired_at) WHERE retired_at IS NOT NULL;


-- Revoked tokens (RFC 7009), kept until they expire (unix seconds).
CREATE TABLE revocations (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, jti)
) WITHOUT ROWID;
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
