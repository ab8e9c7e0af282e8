-- stead's PostgreSQL schema: the same tables and rules as the SQLite schema
-- (migrations/sqlite, both files), in one step. Several stead replicas share
-- this database; everything they must agree on lives here.
--
-- Portable PostgreSQL: no extensions, no stored procedures, no triggers, so
-- PostgreSQL-compatible engines can run it (see docs/replicas.md).

-- One row. `change_version` is bumped by every write to the directory
-- (tenants, scopes, clients and their secrets, signing keys, revocations),
-- in the same transaction; replicas poll it to notice changes made
-- elsewhere. Its row lock is always the last one a writer takes.
CREATE TABLE meta (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    change_version BIGINT NOT NULL
);
INSERT INTO meta (id, change_version) VALUES (1, 1);

-- One row, locked (SELECT ... FOR UPDATE) by every import for its whole
-- transaction, so imports apply one after another as on SQLite.
CREATE TABLE import_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO import_lock (id) VALUES (1);

CREATE TABLE tenants (
    id                       TEXT PRIMARY KEY,
    audience                 TEXT,
    token_ttl_seconds        INTEGER,
    signing_alg              TEXT NOT NULL DEFAULT 'ES256'
                             CHECK (signing_alg IN ('ES256', 'RS256', 'EdDSA')),
    auto_provision_customers BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE scopes (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    description TEXT,
    PRIMARY KEY (tenant_id, name)
);

-- Group lists are JSON arrays of strings; `subject_groups` NULL: no
-- restriction.
CREATE TABLE clients (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    id                  TEXT NOT NULL,
    name                TEXT,
    realm_user          BOOLEAN NOT NULL DEFAULT FALSE,
    realm_customer      BOOLEAN NOT NULL DEFAULT FALSE,
    token_ttl_seconds   INTEGER,
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    subject_groups      JSONB CHECK (subject_groups IS NULL OR jsonb_typeof(subject_groups) = 'array'),
    deny_subject_groups JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(deny_subject_groups) = 'array'),
    PRIMARY KEY (tenant_id, id)
);

-- A client's secrets, one row each (HMAC-SHA-256 under the pepper, never a
-- secret itself). After a rotation the old ones carry `expires_at`. `seq`
-- orders secrets created in the same second.
CREATE TABLE client_secrets (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (tenant_id, client_id, hash),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients (tenant_id, id) ON DELETE CASCADE
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

-- `username_folded` is stead_core::model::fold_case(username). A user by id
-- or by username is one unique-index probe.
CREATE TABLE users (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    username        TEXT NOT NULL,
    username_folded TEXT NOT NULL,
    email           TEXT,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    groups          JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(groups) = 'array'),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_by_username ON users (tenant_id, username_folded);

-- `email_folded` is stead_core::model::fold_case(email).
CREATE TABLE customers (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    email_folded TEXT NOT NULL,
    email        TEXT NOT NULL,
    id           TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    groups       JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(groups) = 'array'),
    PRIMARY KEY (tenant_id, email_folded)
);
CREATE UNIQUE INDEX customers_by_id ON customers (tenant_id, id);

-- Private keys sealed under the master key (PKCS#8 DER inside). A retired
-- key still verifies the tokens it signed until they expire.
CREATE TABLE signing_keys (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    kid                TEXT NOT NULL,
    alg                TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256', 'EdDSA')),
    sealed_private_key BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT,
    PRIMARY KEY (tenant_id, kid)
);
CREATE INDEX signing_keys_by_retired_at ON signing_keys (retired_at) WHERE retired_at IS NOT NULL;

-- Every token request, issued or refused. Append-only apart from pruning.
-- `seq` keeps records of the same millisecond in their order of insertion.
CREATE TABLE audit (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms         BIGINT NOT NULL,
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
CREATE INDEX audit_by_time ON audit (time_ms, seq);
CREATE INDEX audit_by_tenant ON audit (tenant, time_ms, seq);
CREATE INDEX audit_by_client ON audit (client_id, time_ms, seq);
CREATE INDEX audit_by_subject ON audit (subject_id, time_ms, seq);

-- Revoked tokens (RFC 7009), kept until they expire (unix seconds).
CREATE TABLE revocations (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
