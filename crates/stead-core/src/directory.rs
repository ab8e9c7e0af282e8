//! The in-memory directory: tenants, their scopes, clients and parsed
//! signing keys, swapped atomically when storage reports a change. The token
//! path reads it without touching the database; subjects, which can number
//! millions, stay in storage.

use crate::keys::{SigningAlg, SigningKey};
use crate::master_key::MasterKey;
use crate::model::{Client, Scope, Tenant};
use crate::store::{Store, StoreError, StoredKey};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use stead_proto::TenantId;

#[derive(Debug)]
pub struct TenantEntry {
    pub tenant: Tenant,
    /// In name order, for metadata.
    pub scopes: Vec<Scope>,
    pub scope_names: HashSet<String>,
    pub clients: HashMap<String, Client>,
    /// Every key that may still verify a token, newest first.
    pub keys: Vec<Arc<SigningKey>>,
    /// The key new tokens are signed with.
    pub active_key: Arc<SigningKey>,
}

#[derive(Debug, Default)]
pub struct Directory {
    pub version: i64,
    pub tenants: HashMap<TenantId, Arc<TenantEntry>>,
}

impl Directory {
    pub fn tenant(&self, id: &TenantId) -> Option<&Arc<TenantEntry>> {
        self.tenants.get(id)
    }
}

/// Shared access to the current directory, and its refresh.
pub struct DirectoryHandle {
    current: ArcSwap<Directory>,
    store: Arc<dyn Store>,
    master: MasterKey,
}

impl DirectoryHandle {
    /// Loads the directory, generating a signing key for each tenant that
    /// has none of its algorithm yet.
    pub async fn load(store: Arc<dyn Store>, master: MasterKey) -> Result<Self, StoreError> {
        let directory = build(&*store, &master).await?;
        Ok(DirectoryHandle { current: ArcSwap::from_pointee(directory), store, master })
    }

    pub fn get(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Reloads when storage changed since the last load; returns whether it did.
    pub async fn refresh_if_changed(&self) -> Result<bool, StoreError> {
        let version = self.store.change_version().await?;
        if version == self.current.load().version {
            return Ok(false);
        }
        let directory = build(&*self.store, &self.master).await?;
        self.current.store(Arc::new(directory));
        Ok(true)
    }
}

async fn build(store: &dyn Store, master: &MasterKey) -> Result<Directory, StoreError> {
    // Read the version first: a change landing during the load bumps it
    // again, so the next poll reloads.
    let mut version = store.change_version().await?;
    let mut data = store.load_directory().await?;
    let missing: Vec<(TenantId, SigningAlg)> = data
        .tenants
        .iter()
        .filter(|t| !data.keys.iter().any(|k| k.tenant == t.id && k.alg == t.signing_alg))
        .map(|t| (t.id.clone(), t.signing_alg))
        .collect();
    if !missing.is_empty() {
        for (tenant, alg) in missing {
            generate_key(store, master, &tenant, alg).await?;
        }
        version = store.change_version().await?;
        data = store.load_directory().await?;
    }

    let mut keys_by_tenant: HashMap<TenantId, Vec<(i64, Arc<SigningKey>)>> = HashMap::new();
    for stored in &data.keys {
        let Some(der) = master.open(&key_context(&stored.tenant, &stored.kid), &stored.sealed_private_key) else {
            tracing::error!(tenant = %stored.tenant, kid = %stored.kid, "signing key cannot be decrypted with this master key; skipped");
            continue;
        };
        match SigningKey::from_pkcs8(stored.alg, &der) {
            Ok(key) => {
                keys_by_tenant.entry(stored.tenant.clone()).or_default().push((stored.created_at, Arc::new(key)))
            }
            Err(e) => {
                tracing::error!(tenant = %stored.tenant, kid = %stored.kid, error = %e, "signing key unreadable; skipped")
            }
        }
    }

    let mut scopes: HashMap<TenantId, Vec<Scope>> = HashMap::new();
    for (t, s) in data.scopes {
        scopes.entry(t).or_default().push(s);
    }
    let mut clients: HashMap<TenantId, HashMap<String, Client>> = HashMap::new();
    for (t, c) in data.clients {
        clients.entry(t).or_default().insert(c.id.clone(), c);
    }

    let mut tenants = HashMap::new();
    for tenant in data.tenants {
        let mut keys = keys_by_tenant.remove(&tenant.id).unwrap_or_default();
        keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.kid.cmp(&b.1.kid)));
        let keys: Vec<Arc<SigningKey>> = keys.into_iter().map(|(_, k)| k).collect();
        let Some(active_key) = keys.iter().find(|k| k.alg == tenant.signing_alg).cloned() else {
            tracing::error!(tenant = %tenant.id, "no usable signing key; the tenant cannot issue tokens");
            continue;
        };
        let mut tenant_scopes = scopes.remove(&tenant.id).unwrap_or_default();
        tenant_scopes.sort_by(|a, b| a.name.cmp(&b.name));
        let entry = TenantEntry {
            scope_names: tenant_scopes.iter().map(|s| s.name.clone()).collect(),
            scopes: tenant_scopes,
            clients: clients.remove(&tenant.id).unwrap_or_default(),
            keys,
            active_key,
            tenant,
        };
        tenants.insert(entry.tenant.id.clone(), Arc::new(entry));
    }
    Ok(Directory { version, tenants })
}

/// Associated data binding a sealed private key to its row.
pub fn key_context(tenant: &TenantId, kid: &str) -> String {
    format!("stead/v1/signing-key/{tenant}/{kid}")
}

/// Generates, seals and stores a new signing key for `tenant`.
pub async fn generate_key(
    store: &dyn Store,
    master: &MasterKey,
    tenant: &TenantId,
    alg: SigningAlg,
) -> Result<String, StoreError> {
    let der = alg.generate_pkcs8().map_err(|e| StoreError::Other(e.to_string()))?;
    let key = SigningKey::from_pkcs8(alg, &der).map_err(|e| StoreError::Other(e.to_string()))?;
    let stored = StoredKey {
        tenant: tenant.clone(),
        kid: key.kid.clone(),
        alg,
        sealed_private_key: master.seal(&key_context(tenant, &key.kid), &der),
        created_at: crate::now(),
    };
    store.insert_signing_key(&stored).await?;
    tracing::info!(tenant = %tenant, kid = %key.kid, alg = alg.as_str(), "generated signing key");
    Ok(key.kid)
}
