//! The embedded SQLite backend: one database file (and the audit trail in
//! a second one beside it), shared by every process
//! on the machine (`stead serve` instances and `stead import`). WAL mode lets
//! readers run while a writer works; every write transaction starts with
//! `BEGIN IMMEDIATE` so a writer waits for the lock (up to the busy timeout)
//! instead of failing halfway.

/// The columns of `audit` and `audit_recent`, in one place for every
/// statement that names them (a macro, so `concat!` can build constants).
macro_rules! audit_columns {
    () => {
        "time_ms, tenant, realm, client_id, subject_id, subject_given, requested_scope, granted_scope, jti, \
         outcome, error, remote_addr, request_id"
    };
}

mod audit;
mod audit_writer;
mod cpu_gauge;
mod directory;
mod error;
mod json;
mod keys;
mod lookup;
mod meta;
mod provisioning;
mod revocations;
mod secrets;
mod subjects;

use async_trait::async_trait;
use audit_writer::AuditWriter;
use lookup::SubjectReader;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stead_core::audit::{AuditFilter, AuditRecord};
use stead_core::model::{ClientSecret, Customer, User};
use stead_core::provision::ProvisioningPlan;
use stead_core::store::{DirectoryData, ImportReport, RevocationsSince, StoredKey};
use stead_core::{Store, StoreError};
use stead_proto::TenantId;

pub(crate) use error::db_err;

/// The database file inside a data directory.
pub const DB_FILE_NAME: &str = "stead.db";
/// Suffix of the audit database beside it: `stead.db` → `stead-audit.db`.
const AUDIT_SUFFIX: &str = "-audit";

/// Pooled connections serving directory loads, polls and readiness checks.
const READERS: u32 = 2;
/// How long a statement waits for a lock held by another connection or
/// process before the store reports itself unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits for this process's writer connection. Imports can
/// hold it for seconds; they queue rather than fail.
const WRITER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Page cache per connection, in KiB (SQLite's negative `cache_size`).
const WRITER_CACHE_KIB: i64 = 256 * 1024;
const READER_CACHE_KIB: i64 = 2 * 1024;
/// Page cache of each subject-lookup connection (one per runtime worker):
/// the upper levels of the 1M-entry indexes and the hottest leaves.
const LOOKUP_CACHE_KIB: i64 = 8 * 1024;
/// The WAL is truncated back to this size after a checkpoint, so one large
/// import does not leave a large file behind.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Read-only connections.
    read: SqlitePool,
    /// A single connection that runs every write transaction, so this
    /// process's writers queue in order instead of contending for the lock.
    write: SqlitePool,
    /// Subject lookups of the token path, on direct connections.
    subjects: Arc<SubjectReader>,
    /// The audit trail, in its own file with its own writer: an import
    /// holding the main database's lock never delays a token's audit record.
    audit_writer: Arc<AuditWriter>,
    /// Schema migrations and pruning of the audit trail.
    audit_write: SqlitePool,
    audit_read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its directory when missing) the database file
    /// at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot create directory {}: {e}", parent.display())))?;
        }
        let base = base_options(path);

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(WRITER_ACQUIRE_TIMEOUT)
            .connect_with(
                base.clone()
                    .pragma("cache_size", (-WRITER_CACHE_KIB).to_string())
                    // Multi-row upserts keep a statement journal (the pages a
                    // failing statement must restore); in memory it is cheap.
                    .pragma("temp_store", "MEMORY"),
            )
            .await
            .map_err(db_err)?;
        meta::migrate(&write).await?;

        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(0)
            .acquire_timeout(BUSY_TIMEOUT)
            // A connection to a local file does not go stale; skipping the
            // ping on every acquire makes a lookup a third cheaper.
            .test_before_acquire(false)
            .connect_with(base.pragma("cache_size", (-READER_CACHE_KIB).to_string()).pragma("query_only", "ON"))
            .await
            .map_err(db_err)?;

        let audit_path = audit_path(path);
        let audit_base = base_options(&audit_path);
        let audit_write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(audit_base.clone())
            .await
            .map_err(db_err)?;
        meta::migrate_audit(&audit_write).await?;
        let audit_read = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(audit_base.pragma("query_only", "ON"))
            .await
            .map_err(db_err)?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let subjects = SubjectReader::open(path, LOOKUP_CACHE_KIB, workers)?;
        let audit_writer = Arc::new(AuditWriter::start(&audit_path)?);
        tracing::debug!(path = %path.display(), audit = %audit_path.display(), "opened the SQLite databases");
        Ok(SqliteStore { read, write, subjects, audit_writer, audit_write, audit_read })
    }

    /// Lets the audit writer index unindexed audit records whenever it is
    /// idle; `stead serve` turns this on. Without it, records are indexed
    /// only once the backlog is full, by the commits that add to it.
    pub fn index_audit_when_idle(&self) {
        self.audit_writer.index_when_idle(true);
    }

    /// Opens `dir/stead.db`, creating the directory when missing.
    pub async fn open_in_dir(dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open(&dir.join(DB_FILE_NAME)).await
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        self.audit_write.close().await;
        self.audit_read.close().await;
    }
}

fn base_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Each commit is synced: an import that reported success stays,
        // and an issued token's audit record is on disk before the token
        // leaves (appends are batched, one sync per batch).
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
}

/// `dir/stead.db` → `dir/stead-audit.db`.
fn audit_path(path: &Path) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "stead".into());
    let name = match path.extension() {
        Some(ext) => format!("{stem}{AUDIT_SUFFIX}.{}", ext.to_string_lossy()),
        None => format!("{stem}{AUDIT_SUFFIX}"),
    };
    path.with_file_name(name)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db_err)?;
        // Tokens are answered only once audited: a trail that cannot be
        // written is storage that does not answer.
        if self.audit_writer.is_failing() {
            return Err(StoreError::Unavailable("the audit trail cannot be written".into()));
        }
        Ok(())
    }

    async fn change_version(&self) -> Result<i64, StoreError> {
        meta::change_version(&self.read).await
    }

    async fn load_directory(&self) -> Result<DirectoryData, StoreError> {
        directory::load(&self.read).await
    }

    async fn user_by_username(&self, tenant: &TenantId, username_folded: &str) -> Result<Option<User>, StoreError> {
        self.subjects.user_by_username(tenant, username_folded)
    }

    async fn user_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        self.subjects.user_by_id(tenant, id)
    }

    async fn customer_by_email(&self, tenant: &TenantId, email_folded: &str) -> Result<Option<Customer>, StoreError> {
        self.subjects.customer_by_email(tenant, email_folded)
    }

    async fn create_customer(&self, tenant: &TenantId, customer: &Customer) -> Result<Customer, StoreError> {
        subjects::create_customer(&self.write, tenant, customer).await
    }

    async fn customer_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<Customer>, StoreError> {
        self.subjects.customer_by_id(tenant, id)
    }

    async fn rotate_signing_key(&self, expected_active: Option<&str>, new: &StoredKey) -> Result<bool, StoreError> {
        keys::rotate(&self.write, expected_active, new).await
    }

    async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, StoreError> {
        keys::prune(&self.write, retired_before).await
    }

    async fn apply_provisioning(&self, plan: &ProvisioningPlan) -> Result<ImportReport, StoreError> {
        provisioning::apply(&self.write, plan).await
    }

    async fn rotate_client_secret(
        &self,
        tenant: &TenantId,
        client_id: &str,
        new_secret: &ClientSecret,
        old_expire_at: i64,
    ) -> Result<(), StoreError> {
        secrets::rotate(&self.write, tenant, client_id, new_secret, old_expire_at).await
    }

    async fn revoke_old_client_secrets(&self, tenant: &TenantId, client_id: &str) -> Result<u64, StoreError> {
        secrets::revoke_old(&self.write, tenant, client_id, stead_core::now()).await
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        self.audit_writer.append(records).await
    }

    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        audit::query(&self.audit_read, filter).await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        audit::prune(&self.audit_write, before_ms).await
    }

    async fn revoke_token(&self, tenant: &TenantId, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        revocations::revoke(&self.write, tenant, jti, expires_at).await
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        revocations::prune(&self.write, now).await
    }

    async fn revocations_since(&self, after: i64, now: i64) -> Result<RevocationsSince, StoreError> {
        revocations::since(&self.read, after, now).await
    }
}
