-- stead's embedded schema. Subjects are sized for millions per tenant. The
-- subject tables are clustered on their key (WITHOUT ROWID): a user by id or
-- a customer by email is one B-tree descent, a user by username one descent
-- of its unique index and one of the table; no lookup scans.

-- One row. `change_version` is bumped by every write, in the same
-- transaction; servers poll it to notice changes made by other processes.
CREATE TABLE meta (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    change_version INTEGER NOT NULL
);
INSERT INTO meta (id, change_version) VALUES (1, 1);

CREATE TABLE tenants (
    id                       TEXT PRIMARY KEY NOT NULL,
    audience                 TEXT,
    token_ttl_seconds        INTEGER,
    signing_alg              TEXT NOT NULL DEFAULT 'ES256'
                             CHECK (signing_alg IN ('ES256', 'RS256', 'EdDSA')),
    auto_provision_customers INTEGER NOT NULL DEFAULT 0 CHECK (auto_provision_customers IN (0, 1))
);

CREATE TABLE scopes (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    description TEXT,
    PRIMARY KEY (tenant_id, name)
);

-- `secret_hashes` holds the client's active secret hashes (HMAC-SHA-256,
-- 32 bytes each) concatenated; never a secret itself.
CREATE TABLE clients (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    id                TEXT NOT NULL,
    name              TEXT,
    secret_hashes     BLOB NOT NULL CHECK (length(secret_hashes) % 32 = 0),
    realm_user        INTEGER NOT NULL DEFAULT 0 CHECK (realm_user IN (0, 1)),
    realm_customer    INTEGER NOT NULL DEFAULT 0 CHECK (realm_customer IN (0, 1)),
    token_ttl_seconds INTEGER,
    enabled           INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    PRIMARY KEY (tenant_id, id)
);

-- The scopes assigned to a client, in the order the file lists them.
CREATE TABLE client_scopes (
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    position   INTEGER NOT NULL,
    scope_name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, client_id, scope_name),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, scope_name) REFERENCES scopes (tenant_id, name)
);

-- `username_folded` is stead_core::model::fold_case(username).
CREATE TABLE users (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    username        TEXT NOT NULL,
    username_folded TEXT NOT NULL,
    email           TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX users_by_username ON users (tenant_id, username_folded);

-- `email_folded` is stead_core::model::fold_case(email).
CREATE TABLE customers (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    email_folded TEXT NOT NULL,
    email        TEXT NOT NULL,
    id           TEXT NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    PRIMARY KEY (tenant_id, email_folded)
) WITHOUT ROWID;
CREATE UNIQUE INDEX customers_by_id ON customers (tenant_id, id);

-- Private keys sealed under the master key (PKCS#8 DER inside).
CREATE TABLE signing_keys (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    kid                TEXT NOT NULL,
    alg                TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256', 'EdDSA')),
    sealed_private_key BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kid)
);
