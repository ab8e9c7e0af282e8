// Shared by the integration tests (each file includes it as a module).
#![allow(dead_code)]

use std::sync::Arc;
use stead_core::provision::{self, ProvisioningPlan};
use stead_core::store::{DirectoryData, ImportReport};
use stead_core::{MasterKey, SecretHasher, Store, StoreError};
use stead_proto::TenantId;
use stead_store::postgres::testing::{self, TestDatabase};
use stead_store::{PgOptions, PgStore, SqliteStore};
use tempfile::TempDir;

pub const EXAMPLE: &str = r#"
[[tenants]]
id = "TMPRODB88619984"
audience = "https://api.example.com"
token_ttl_seconds = 3600
signing_alg = "ES256"
auto_provision_customers = false

[[tenants.scopes]]
name = "knowledge.portalmgr.onbehalfof.read"
description = "Read portal content on behalf of a user"

[[tenants.clients]]
id = "7121f585-e403-4531-9a38-1826ebc7e7d8"
name = "Portal sync job"
secret = "use-a-long-random-secret-of-32+-characters"
realms = ["user", "customer"]
scopes = ["knowledge.portalmgr.onbehalfof.read"]
token_ttl_seconds = 900
enabled = true

[[tenants.users]]
id = "1001"
username = "pa"
email = "pa@example.com"
enabled = true

[[tenants.customers]]
email = "jane@example.com"
id = "c-42"
enabled = true

[[tenants.customers]]
email = "Bob@Example.com"
"#;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store: an SQLite file in a temporary directory, or a
/// PostgreSQL database of its own (dropped afterwards).
pub struct Env {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    /// The SQLite data directory.
    pub dir: Option<TempDir>,
    /// The PostgreSQL database; declared last, so dropped after the store.
    pub db: Option<TestDatabase>,
}

impl Env {
    pub async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let hasher = SecretHasher::new(&MasterKey::generate().unwrap());
        Env { backend: Backend::Sqlite, store: Arc::new(store), hasher, dir: Some(dir), db: None }
    }

    /// `None` (and a message saying so) when PostgreSQL cannot be reached
    /// and `CI=true` is not set.
    pub async fn postgres(test: &str) -> Option<Env> {
        let db = testing::database_or_skip(test).await?;
        let store = PgStore::connect_with(&db.url, &pg_options()).await.unwrap();
        let hasher = SecretHasher::new(&MasterKey::generate().unwrap());
        Some(Env { backend: Backend::Postgres, store: Arc::new(store), hasher, dir: None, db: Some(db) })
    }

    /// Another store on the same database, as a second process (another
    /// replica, `stead import`) would open it.
    pub async fn second(&self) -> Arc<dyn Store> {
        match (&self.dir, &self.db) {
            (Some(dir), _) => Arc::new(SqliteStore::open(&dir.path().join("stead.db")).await.unwrap()),
            (_, Some(db)) => Arc::new(PgStore::connect_with(&db.url, &pg_options()).await.unwrap()),
            _ => unreachable!(),
        }
    }

    /// Runs one SQL statement on the database directly, as another program
    /// (an older stead) would; returns the rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        match (&self.dir, &self.db) {
            (Some(dir), _) => {
                let conn = rusqlite::Connection::open(dir.path().join("stead.db")).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                conn.execute(sql, []).unwrap() as u64
            }
            (_, Some(db)) => db.execute(sql).await.unwrap(),
            _ => unreachable!(),
        }
    }

    pub fn plan(&self, text: &str) -> ProvisioningPlan {
        provision::parse(text, &self.hasher).unwrap()
    }

    pub async fn import(&self, text: &str) -> Result<ImportReport, StoreError> {
        self.store.apply_provisioning(&self.plan(text)).await
    }

    pub async fn version(&self) -> i64 {
        self.store.change_version().await.unwrap()
    }

    pub async fn directory(&self) -> Snapshot {
        Snapshot::of(self.store.load_directory().await.unwrap())
    }
}

/// Small pools: many tests run at once against one server.
pub fn pg_options() -> PgOptions {
    PgOptions { pool_size: 4, ..PgOptions::default() }
}

/// Runs each named `async fn(Env)` once on SQLite (`sqlite::name`) and once
/// on PostgreSQL (`postgres::name`, skipped with a message when PostgreSQL
/// cannot be reached, a failure then when `CI=true`).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::common::Env::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(env) = super::common::Env::postgres(stringify!($name)).await {
                        super::$name(env).await
                    }
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

pub fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

pub fn rejected(result: Result<ImportReport, StoreError>) -> String {
    match result {
        Err(StoreError::Rejected(m)) => m,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// A comparable rendering of a directory (keys by kid only).
#[derive(Debug, PartialEq)]
pub struct Snapshot(pub String);

impl Snapshot {
    pub fn of(d: DirectoryData) -> Snapshot {
        let keys: Vec<_> = d
            .keys
            .iter()
            .map(|k| (&k.tenant, &k.kid, k.alg, &k.sealed_private_key, k.created_at, k.retired_at))
            .collect();
        let clients: Vec<_> = d
            .clients
            .iter()
            .map(|(t, c)| (t, c, c.secrets.iter().map(|s| (s.hash, s.created_at, s.expires_at)).collect::<Vec<_>>()))
            .collect();
        Snapshot(format!("{:?}\n{:?}\n{:?}\n{:?}", d.tenants, d.scopes, clients, keys))
    }
}
