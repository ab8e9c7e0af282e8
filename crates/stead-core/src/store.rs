//! The one storage interface. SQLite and PostgreSQL implement it; nothing
//! above it knows which one runs.

use crate::audit::{AuditFilter, AuditRecord};
use crate::keys::SigningAlg;
use crate::model::{Client, ClientSecret, Customer, Scope, Tenant, User};
use crate::provision::ProvisioningPlan;
use async_trait::async_trait;
use stead_proto::TenantId;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or answered with a transient error.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A write broke a rule; the message names the offending entry.
    #[error("{0}")]
    Rejected(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// A signing key as stored: the private key is sealed under the master key.
#[derive(Clone)]
pub struct StoredKey {
    pub tenant: TenantId,
    pub kid: String,
    pub alg: SigningAlg,
    /// PKCS#8 DER sealed by [`MasterKey::seal`](crate::MasterKey::seal).
    pub sealed_private_key: Vec<u8>,
    pub created_at: i64,
    /// When a newer key replaced it; it still verifies tokens until they
    /// expire.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("tenant", &self.tenant)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Everything the token path needs in memory except the subjects.
#[derive(Debug, Clone, Default)]
pub struct DirectoryData {
    pub tenants: Vec<Tenant>,
    pub scopes: Vec<(TenantId, Scope)>,
    pub clients: Vec<(TenantId, Client)>,
    pub keys: Vec<StoredKey>,
}

/// A revoked token (RFC 7009), kept until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub tenant: TenantId,
    pub jti: String,
    pub expires_at: i64,
}

/// The revocations recorded after a point of the revocation sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationsSince {
    /// The newest point of the sequence these cover: ask from here next.
    pub up_to: i64,
    /// Those not yet expired, in the order they were recorded.
    pub revoked: Vec<Revocation>,
}

/// What an import changed, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub tenants: usize,
    pub scopes: usize,
    pub clients: usize,
    pub users: usize,
    pub customers: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when storage is reachable (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A number that changes whenever provisioning data or signing keys
    /// change. Servers poll it to honour changes made elsewhere within a
    /// second (SPEC §6). Revocations have their own sequence
    /// ([`Store::revocations_since`]): one more revoked token must not make
    /// every server reload everything.
    async fn change_version(&self) -> Result<i64, StoreError>;

    async fn load_directory(&self) -> Result<DirectoryData, StoreError>;

    /// `username_folded` is [`fold_case`](crate::model::fold_case) of the username.
    async fn user_by_username(&self, tenant: &TenantId, username_folded: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError>;
    /// `email_folded` is [`fold_case`](crate::model::fold_case) of the email.
    async fn customer_by_email(&self, tenant: &TenantId, email_folded: &str) -> Result<Option<Customer>, StoreError>;
    async fn customer_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<Customer>, StoreError>;

    /// Creates a customer on first use (auto-provisioning). When a customer
    /// with that email exists already (a concurrent request made it), returns it.
    async fn create_customer(&self, tenant: &TenantId, customer: &Customer) -> Result<Customer, StoreError>;

    /// Replaces the tenant's active key with `new` — but only when the
    /// active key (the newest unretired one) is still `expected_active`
    /// (`None`: the tenant has none). All its unretired keys are retired at
    /// `new.created_at`. Returns whether the rotation happened, so when
    /// several servers rotate at once exactly one succeeds.
    async fn rotate_signing_key(&self, expected_active: Option<&str>, new: &StoredKey) -> Result<bool, StoreError>;

    /// Deletes keys retired before `retired_before`; returns how many.
    async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, StoreError>;

    /// Applies a provisioning file in one transaction: all or nothing.
    async fn apply_provisioning(&self, plan: &ProvisioningPlan) -> Result<ImportReport, StoreError>;

    /// Adds `new_secret` to a client; its other secrets stay valid until
    /// `old_expire_at` (immediately when that is not in the future).
    /// `Rejected` when the client does not exist.
    async fn rotate_client_secret(
        &self,
        tenant: &TenantId,
        client_id: &str,
        new_secret: &ClientSecret,
        old_expire_at: i64,
    ) -> Result<(), StoreError>;

    /// Removes every secret of a client but the newest; returns how many.
    async fn revoke_old_client_secrets(&self, tenant: &TenantId, client_id: &str) -> Result<u64, StoreError>;

    /// Appends audit records in one durable transaction (group commit).
    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError>;

    /// Audit records matching `filter`, oldest first.
    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes audit records older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Records a revoked token (RFC 7009) until it expires, as the next
    /// point of the revocation sequence. Revoking it again changes nothing.
    async fn revoke_token(&self, tenant: &TenantId, jti: &str, expires_at: i64) -> Result<(), StoreError>;

    /// The tokens revoked after point `after` of the revocation sequence (0:
    /// from the start) that are still valid at `now`. Servers poll this
    /// with the `up_to` of their last answer, so each revocation is read
    /// once rather than with every reload.
    async fn revocations_since(&self, after: i64, now: i64) -> Result<RevocationsSince, StoreError>;

    /// Forgets revocations of tokens expired before `now`.
    async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError>;
}
