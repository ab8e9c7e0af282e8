// Shared by the integration tests (each file includes it as a module).
#![allow(dead_code)]

use stead_core::provision::{self, ProvisioningPlan};
use stead_core::store::{DirectoryData, ImportReport};
use stead_core::{MasterKey, SecretHasher, Store, StoreError};
use stead_proto::TenantId;
use stead_store::SqliteStore;
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

pub struct Env {
    pub dir: TempDir,
    pub store: SqliteStore,
    pub hasher: SecretHasher,
}

impl Env {
    pub async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let hasher = SecretHasher::new(&MasterKey::generate().unwrap());
        Env { dir, store, hasher }
    }

    /// Another store on the same file, as a second process would open it.
    pub async fn second(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("stead.db")).await.unwrap()
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
        let keys: Vec<_> =
            d.keys.iter().map(|k| (&k.tenant, &k.kid, k.alg, &k.sealed_private_key, k.created_at)).collect();
        let clients: Vec<_> = d.clients.iter().map(|(t, c)| (t, c, &c.secret_hashes)).collect();
        Snapshot(format!("{:?}\n{:?}\n{:?}\n{:?}", d.tenants, d.scopes, clients, keys))
    }
}
