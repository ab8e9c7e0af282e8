//! The PostgreSQL backend: several stateless stead replicas share one
//! database (PostgreSQL, or an engine speaking its protocol and SQL; see
//! docs/replicas.md). The semantics are those of [`SqliteStore`]
//! (crate::SqliteStore), file for file:
//!
//! - every write to the directory bumps `meta.change_version` in its own
//!   transaction; replicas poll it (one single-row read) to reload within a
//!   second of a change made anywhere;
//! - every revocation takes the next point of `meta.revocation_seq`;
//!   replicas read the revocations after the last point they read;
//! - imports are one transaction each, serialized by a row lock, with
//!   multi-row upserts (`UNNEST` of arrays: one statement per few thousand
//!   rows);
//! - a key rotation is a compare-and-swap under the tenant's row lock, so
//!   of several replicas rotating at once exactly one succeeds;
//! - an audit batch is one `INSERT`, a transaction of its own.
//!
//! Two pools: `pool` serves the token path and every write; `control`, two
//! connections, serves the change-version poll, directory loads and
//! readiness, so a saturated token path never delays the poll that keeps a
//! replica current. A dead database is reported quickly: acquiring a
//! connection gives up after [`PgOptions::acquire_timeout`], and once a
//! connection failed, after [`DEGRADED_ACQUIRE_TIMEOUT`] and testing each
//! connection before use until one works again.

mod audit;
mod directory;
mod error;
mod json;
mod keys;
mod meta;
mod provisioning;
mod revocations;
mod secrets;
mod subjects;
#[doc(hidden)]
pub mod testing;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stead_core::audit::{AuditFilter, AuditRecord};
use stead_core::model::{ClientSecret, Customer, User};
use stead_core::provision::ProvisioningPlan;
use stead_core::store::{DirectoryData, ImportReport, RevocationsSince, StoredKey};
use stead_core::{Store, StoreError};
use stead_proto::TenantId;

pub(crate) use error::db_err;
pub use meta::MigrationLock;

/// How long an operation waits for a connection while the database has
/// just failed, before answering `Unavailable`.
pub const DEGRADED_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// Connections of the control pool (change-version polls, directory loads,
/// readiness).
const CONTROL_CONNECTIONS: u32 = 2;

/// Idle connections above the minimum are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Pool settings of a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections of the main pool (token path and writes). A token
    /// holds one for a single round trip, so a few per core suffice; the
    /// control pool adds two.
    pub pool_size: u32,
    /// How long an operation waits for a connection (including connecting)
    /// before answering `Unavailable`: the server's 503.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { pool_size: 10, acquire_timeout: Duration::from_secs(2) }
    }
}

/// The PostgreSQL store. Cheap to clone; clones share the pools.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    control: PgPool,
    health: Arc<Health>,
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run.
    pub applied: Vec<i64>,
    /// The newest version the schema is at.
    pub current: Option<i64>,
}

impl PgStore {
    /// Connects with default pool settings and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, &PgOptions::default()).await
    }

    /// Connects to `url` (`postgres://…`) and brings the schema up to date
    /// under PostgreSQL's advisory lock, so replicas starting together do not
    /// race.
    pub async fn connect_with(url: &str, options: &PgOptions) -> Result<PgStore, StoreError> {
        let connect = connect_options(url)?;
        meta::migrate(&connect).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(IDLE_TIMEOUT)
            // sqlx tests every connection when it is returned to the pool;
            // testing it again on acquire would cost a round trip per
            // lookup. A connection found dead is discarded, and until one
            // works again every connection is tested (see `acquire`).
            .test_before_acquire(false)
            .connect_lazy_with(connect.clone());
        let control = PgPoolOptions::new()
            .max_connections(CONTROL_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(IDLE_TIMEOUT)
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        let store = PgStore { pool, control, health: Arc::new(Health::default()) };
        store.ping().await?;
        tracing::debug!(pool_size = options.pool_size, "connected to PostgreSQL");
        Ok(store)
    }

    /// Brings the schema of the database at `url` up to date and returns
    /// what was applied (`stead migrate`).
    pub async fn migrate(url: &str) -> Result<MigrationReport, StoreError> {
        meta::migrate(&connect_options(url)?).await
    }

    /// [`migrate`](Self::migrate) under a given kind of lock (tests use it
    /// to exercise the row lock meant for engines without advisory locks).
    #[doc(hidden)]
    pub async fn migrate_with_lock(url: &str, lock: MigrationLock) -> Result<MigrationReport, StoreError> {
        meta::migrate_with(&connect_options(url)?, lock).await
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.control.close().await;
    }

    /// A connection of `pool`. After a connection failed, each connection is
    /// tested before use (dead ones are dropped) and the wait is short, so a
    /// database that went away answers `Unavailable` quickly and one that
    /// came back is used again at once.
    async fn acquire(&self, pool: &PgPool) -> Result<PoolConnection<Postgres>, StoreError> {
        if !self.health.degraded() {
            return pool.acquire().await.map_err(|e| self.failed(e));
        }
        // Every pooled connection may be dead (the server restarted, or
        // its connections were terminated): try until one answers.
        for _ in 0..=pool.options().get_max_connections() {
            let mut conn = match tokio::time::timeout(DEGRADED_ACQUIRE_TIMEOUT, pool.acquire()).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(self.failed(e)),
                Err(_) => return Err(self.failed(sqlx::Error::PoolTimedOut)),
            };
            match tokio::time::timeout(DEGRADED_ACQUIRE_TIMEOUT, conn.ping()).await {
                Ok(Ok(())) => return Ok(conn),
                _ => conn.close_on_drop(),
            }
        }
        Err(StoreError::Unavailable("no working database connection".into()))
    }

    /// Records the outcome of an operation and maps its error.
    fn observe<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        match result {
            Ok(v) => {
                self.health.recovered();
                Ok(v)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&self, e: sqlx::Error) -> StoreError {
        if error::is_connection_lost(&e) {
            self.health.failed();
        }
        db_err(e)
    }

    /// Records the outcome of an operation that maps its own errors.
    fn observe_store<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.health.recovered(),
            Err(StoreError::Unavailable(_)) => self.health.failed(),
            Err(_) => {}
        }
        result
    }
}

/// Whether the last operation found the database gone.
#[derive(Debug, Default)]
struct Health {
    degraded: AtomicBool,
}

impl Health {
    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn failed(&self) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!("PostgreSQL connection lost; testing connections until one works");
        }
    }

    fn recovered(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("PostgreSQL reachable again");
        }
    }
}

/// Parses a `postgres://` URL. The application name shows stead's
/// connections in `pg_stat_activity`.
fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {}", redact(&e.to_string()))))?;
    Ok(options.application_name("stead"))
}

/// Hides a password that an error message might quote.
fn redact(message: &str) -> String {
    match (message.find("://"), message.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &message[..scheme], &message[at..]),
        _ => message.to_owned(),
    }
}

/// Text PostgreSQL cannot hold (a NUL character) can match no stored row.
fn storable(s: &str) -> bool {
    !s.contains('\0')
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.acquire(&self.control).await?;
        let result = sqlx::query("SELECT 1").execute(&mut *conn).await;
        self.observe(result).map(drop)
    }

    async fn change_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.acquire(&self.control).await?;
        let result = meta::change_version(&mut conn).await;
        self.observe(result)
    }

    async fn load_directory(&self) -> Result<DirectoryData, StoreError> {
        let mut conn = self.acquire(&self.control).await?;
        let result = directory::load(&mut conn).await;
        self.observe_store(result)
    }

    async fn user_by_username(&self, tenant: &TenantId, username_folded: &str) -> Result<Option<User>, StoreError> {
        if !storable(username_folded) {
            return Ok(None);
        }
        let mut conn = self.acquire(&self.pool).await?;
        let result = subjects::user_by_username(&mut conn, tenant, username_folded).await;
        self.observe_store(result)
    }

    async fn user_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        let mut conn = self.acquire(&self.pool).await?;
        let result = subjects::user_by_id(&mut conn, tenant, id).await;
        self.observe_store(result)
    }

    async fn customer_by_email(&self, tenant: &TenantId, email_folded: &str) -> Result<Option<Customer>, StoreError> {
        if !storable(email_folded) {
            return Ok(None);
        }
        let mut conn = self.acquire(&self.pool).await?;
        let result = subjects::customer_by_email(&mut conn, tenant, email_folded).await;
        self.observe_store(result)
    }

    async fn customer_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<Customer>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        let mut conn = self.acquire(&self.pool).await?;
        let result = subjects::customer_by_id(&mut conn, tenant, id).await;
        self.observe_store(result)
    }

    async fn create_customer(&self, tenant: &TenantId, customer: &Customer) -> Result<Customer, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = subjects::create_customer(&mut conn, tenant, customer).await;
        self.observe_store(result)
    }

    async fn rotate_signing_key(&self, expected_active: Option<&str>, new: &StoredKey) -> Result<bool, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = keys::rotate(&mut conn, expected_active, new).await;
        self.observe_store(result)
    }

    async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = keys::prune(&mut conn, retired_before).await;
        self.observe_store(result)
    }

    async fn apply_provisioning(&self, plan: &ProvisioningPlan) -> Result<ImportReport, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = provisioning::apply(&mut conn, plan).await;
        self.observe_store(result)
    }

    async fn rotate_client_secret(
        &self,
        tenant: &TenantId,
        client_id: &str,
        new_secret: &ClientSecret,
        old_expire_at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = secrets::rotate(&mut conn, tenant, client_id, new_secret, old_expire_at).await;
        self.observe_store(result)
    }

    async fn revoke_old_client_secrets(&self, tenant: &TenantId, client_id: &str) -> Result<u64, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = secrets::revoke_old(&mut conn, tenant, client_id, stead_core::now()).await;
        self.observe_store(result)
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.acquire(&self.pool).await?;
        let result = audit::append(&mut conn, &records).await;
        self.observe(result)
    }

    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = audit::query(&mut conn, filter).await;
        self.observe_store(result)
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = audit::prune(&mut conn, before_ms).await;
        self.observe(result)
    }

    async fn revoke_token(&self, tenant: &TenantId, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = revocations::revoke(&mut conn, tenant, jti, expires_at).await;
        self.observe_store(result)
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        let mut conn = self.acquire(&self.pool).await?;
        let result = revocations::prune(&mut conn, now).await;
        self.observe(result)
    }

    async fn revocations_since(&self, after: i64, now: i64) -> Result<RevocationsSince, StoreError> {
        let mut conn = self.acquire(&self.control).await?;
        let result = revocations::since(&mut conn, after, now).await;
        self.observe_store(result)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_errors_lose_their_password() {
        assert_eq!(
            super::redact("bad url postgres://user:hunter2@db.example/stead"),
            "bad url postgres://…@db.example/stead"
        );
        assert_eq!(super::redact("no url here"), "no url here");
    }
}
