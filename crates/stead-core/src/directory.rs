//! The in-memory directory: tenants, their scopes, clients and parsed
//! signing keys, swapped atomically when storage reports a change, and
//! beside it the revoked token ids, updated a revocation at a time. The
//! token path reads it without touching the database; subjects, which can
//! number millions, stay in storage.
//!
//! Key lifecycle: the newest unretired key of a tenant signs. It is
//! replaced when the tenant's algorithm changes, when it is older than the
//! rotation period, or on `stead keys rotate`. A replaced key stays in the
//! JWKS until every token it signed has expired, then it is deleted.

use crate::keys::{SigningAlg, SigningKey};
use crate::master_key::MasterKey;
use crate::model::{Client, Scope, Tenant, TOKEN_TTL_RANGE};
use crate::revocations::RevokedTokens;
use crate::store::{Store, StoreError, StoredKey};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use stead_proto::TenantId;

/// How long a retired key stays published: the longest token lifetime
/// plus a margin for clock skew.
pub const RETIRED_KEY_GRACE: i64 = *TOKEN_TTL_RANGE.end() as i64 + 300;

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
    /// When the active key was created.
    pub active_since: i64,
}

impl TenantEntry {
    pub fn key(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

#[derive(Debug, Default)]
pub struct Directory {
    pub version: i64,
    pub tenants: HashMap<TenantId, Arc<TenantEntry>>,
    /// The keys opened for this directory, by tenant and sealed form: the
    /// next load reuses those still stored instead of decrypting and
    /// parsing every key again (an RSA key takes ~0.1 ms).
    opened: HashMap<(TenantId, Vec<u8>), Arc<SigningKey>>,
}

impl Directory {
    pub fn tenant(&self, id: &TenantId) -> Option<&Arc<TenantEntry>> {
        self.tenants.get(id)
    }
}

/// When signing keys are replaced automatically.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPolicy {
    /// Rotate a key older than this many seconds; `None` never.
    pub rotation_period: Option<i64>,
}

/// Shared access to the current directory, and its refresh.
pub struct DirectoryHandle {
    current: ArcSwap<Directory>,
    revoked: RevokedTokens,
    store: Arc<dyn Store>,
    master: MasterKey,
    policy: KeyPolicy,
    /// When storage last confirmed the directory current (Unix ms).
    confirmed_ms: std::sync::atomic::AtomicI64,
}

/// A directory not confirmed current for this long may hold a revoked
/// grant: SPEC §6 gives changes one second to reach every server.
pub const MAX_STALENESS_MS: i64 = 1000;

impl DirectoryHandle {
    /// Loads the directory, generating or rotating signing keys as the
    /// tenants' algorithms and `policy` require.
    pub async fn load(store: Arc<dyn Store>, master: MasterKey, policy: KeyPolicy) -> Result<Self, StoreError> {
        let directory = build(&*store, &master, policy, &Directory::default()).await?;
        let revoked = RevokedTokens::default();
        revoked.apply(store.revocations_since(0, crate::now()).await?);
        let confirmed_ms = std::sync::atomic::AtomicI64::new(crate::now_ms());
        let current = ArcSwap::from_pointee(directory);
        Ok(DirectoryHandle { current, revoked, store, master, policy, confirmed_ms })
    }

    pub fn get(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Whether the token `jti` of `tenant` was revoked (RFC 7009), as of
    /// the last refresh.
    pub fn is_revoked(&self, tenant: &TenantId, jti: &str) -> bool {
        self.revoked.contains(tenant, jti)
    }

    /// Whether storage confirmed the directory current within the last
    /// [`MAX_STALENESS_MS`]. After an outage a server must not serve grants
    /// that may have been revoked meanwhile.
    pub fn is_fresh(&self) -> bool {
        crate::now_ms() - self.confirmed_ms.load(std::sync::atomic::Ordering::Relaxed) <= MAX_STALENESS_MS
    }

    /// Reloads when storage changed since the last load, or when a key is
    /// due for rotation, and reads the revocations recorded since the last
    /// refresh; returns whether it reloaded.
    pub async fn refresh_if_changed(&self) -> Result<bool, StoreError> {
        let checked_at = crate::now_ms();
        let changed = self.reload_if_changed().await?;
        self.read_revocations().await?;
        self.confirmed_ms.fetch_max(checked_at, std::sync::atomic::Ordering::Relaxed);
        Ok(changed)
    }

    /// Reads the revocations recorded since the last read.
    async fn read_revocations(&self) -> Result<(), StoreError> {
        let after = self.revoked.up_to();
        let read = self.store.revocations_since(after, crate::now()).await?;
        if read.up_to >= after {
            self.revoked.apply(read);
            return Ok(());
        }
        // Storage's sequence went back: restored from a backup, or a
        // failover lost its last commits. Points this server read may be
        // handed out again, so read everything again from the start; what
        // it holds already stays revoked.
        tracing::warn!(held = after, stored = read.up_to, "the revocation sequence went back; reading it all again");
        self.revoked.rewind(self.store.revocations_since(0, crate::now()).await?);
        Ok(())
    }

    async fn reload_if_changed(&self) -> Result<bool, StoreError> {
        let version = self.store.change_version().await?;
        let current = self.current.load_full();
        let rotation_due = self.policy.rotation_period.is_some_and(|period| {
            let now = crate::now();
            current.tenants.values().any(|t| t.active_since + period <= now)
        });
        if version == current.version && !rotation_due {
            return Ok(false);
        }
        let directory = Arc::new(build(&*self.store, &self.master, self.policy, &current).await?);
        // Two reloads may overlap (the poll and a revocation): the one that
        // read an older version must not replace the newer directory.
        self.current
            .rcu(|current| if current.version > directory.version { current.clone() } else { directory.clone() });
        Ok(true)
    }

    /// Deletes what can no longer matter: keys retired long enough ago that
    /// no token they signed is still valid, and expired revocations.
    pub async fn prune(&self) -> Result<(), StoreError> {
        let now = crate::now();
        self.revoked.prune(now);
        self.store.prune_signing_keys(now - RETIRED_KEY_GRACE).await?;
        self.store.prune_revocations(now).await?;
        Ok(())
    }

    /// How many unexpired revocations this server holds.
    pub fn revocations_held(&self) -> usize {
        self.revoked.len()
    }
}

/// Builds the directory from storage; `previous` lends the keys it opened.
async fn build(
    store: &dyn Store,
    master: &MasterKey,
    policy: KeyPolicy,
    previous: &Directory,
) -> Result<Directory, StoreError> {
    // Read the version first: a change landing during the load bumps it
    // again, so the next poll reloads.
    let mut version = store.change_version().await?;
    let mut data = store.load_directory().await?;
    let now = crate::now();
    let mut rotated = false;
    for tenant in &data.tenants {
        let active = active_key(&data.keys, &tenant.id);
        let due = match active {
            None => true,
            Some(k) => k.alg != tenant.signing_alg || policy.rotation_period.is_some_and(|p| k.created_at + p <= now),
        };
        if due {
            let expected = active.map(|k| k.kid.clone());
            rotate_key(store, master, &tenant.id, tenant.signing_alg, expected.as_deref()).await?;
            rotated = true;
        }
    }
    if rotated {
        version = store.change_version().await?;
        data = store.load_directory().await?;
    }

    let mut keys_by_tenant: HashMap<TenantId, Vec<&StoredKey>> = HashMap::new();
    for stored in &data.keys {
        if stored.retired_at.is_some_and(|r| r + RETIRED_KEY_GRACE <= now) {
            continue;
        }
        keys_by_tenant.entry(stored.tenant.clone()).or_default().push(stored);
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
    let mut opened = HashMap::new();
    for tenant in data.tenants {
        let mut stored = keys_by_tenant.remove(&tenant.id).unwrap_or_default();
        // Newest first; unretired before retired.
        stored
            .sort_by(|a, b| a.retired_at.is_some().cmp(&b.retired_at.is_some()).then(b.created_at.cmp(&a.created_at)));
        let mut keys = Vec::new();
        let mut active = None;
        for s in stored {
            // The same sealed bytes of the same row open to the same key.
            // The tenant, kid and alg must match as well: the sealed key is
            // bound to its row (key_context), which opening would check.
            let cached = (tenant.id.clone(), s.sealed_private_key.clone());
            let key = match previous.opened.get(&cached) {
                Some(key) if key.kid == s.kid && key.alg == s.alg => key.clone(),
                _ => match open_key(master, s) {
                    Some(key) => Arc::new(key),
                    None => continue,
                },
            };
            opened.insert(cached, key.clone());
            if active.is_none() && s.retired_at.is_none() && s.alg == tenant.signing_alg {
                active = Some((key.clone(), s.created_at));
            }
            keys.push(key);
        }
        let Some((active_key, active_since)) = active else {
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
            active_since,
            tenant,
        };
        tenants.insert(entry.tenant.id.clone(), Arc::new(entry));
    }
    Ok(Directory { version, tenants, opened })
}

/// The newest unretired key of a tenant.
fn active_key<'a>(keys: &'a [StoredKey], tenant: &TenantId) -> Option<&'a StoredKey> {
    keys.iter().filter(|k| &k.tenant == tenant && k.retired_at.is_none()).max_by_key(|k| k.created_at)
}

fn open_key(master: &MasterKey, stored: &StoredKey) -> Option<SigningKey> {
    let Some(der) = master.open(&key_context(&stored.tenant, &stored.kid), &stored.sealed_private_key) else {
        tracing::error!(tenant = %stored.tenant, kid = %stored.kid, "signing key cannot be decrypted with this master key; skipped");
        return None;
    };
    match SigningKey::from_pkcs8(stored.alg, &der) {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::error!(tenant = %stored.tenant, kid = %stored.kid, error = %e, "signing key unreadable; skipped");
            None
        }
    }
}

/// Associated data binding a sealed private key to its row.
pub fn key_context(tenant: &TenantId, kid: &str) -> String {
    format!("stead/v1/signing-key/{tenant}/{kid}")
}

/// Generates and seals a new key and makes it the tenant's active key,
/// provided the active key is still `expected_active`. Returns the new kid,
/// or `None` when another server rotated first.
pub async fn rotate_key(
    store: &dyn Store,
    master: &MasterKey,
    tenant: &TenantId,
    alg: SigningAlg,
    expected_active: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let der = alg.generate_pkcs8().map_err(|e| StoreError::Other(e.to_string()))?;
    let key = SigningKey::from_pkcs8(alg, &der).map_err(|e| StoreError::Other(e.to_string()))?;
    let stored = StoredKey {
        tenant: tenant.clone(),
        kid: key.kid.clone(),
        alg,
        sealed_private_key: master.seal(&key_context(tenant, &key.kid), &der),
        created_at: crate::now(),
        retired_at: None,
    };
    if store.rotate_signing_key(expected_active, &stored).await? {
        tracing::info!(tenant = %tenant, kid = %key.kid, alg = alg.as_str(), "new signing key active");
        Ok(Some(key.kid))
    } else {
        Ok(None)
    }
}
