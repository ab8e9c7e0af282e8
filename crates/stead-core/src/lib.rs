//! The domain of stead: tenants, realms, clients, subjects and scopes; the
//! token service that validates a request and then issues a token; signing
//! keys; client-secret verification; the provisioning file; and the `Store`
//! trait that storage backends implement. Free of HTTP and SQL.

pub mod audit;
pub mod directory;
mod ed25519;
pub mod error;
mod es256;
pub mod jwt;
pub mod keys;
pub mod master_key;
pub mod model;
mod pkcs8;
pub mod provision;
pub mod request;
pub mod revocations;
pub mod secret;
pub mod service;
pub mod store;

pub use audit::{AuditFilter, AuditLog, AuditRecord, Outcome, PendingRecord};
pub use directory::{Directory, DirectoryHandle, TenantEntry};
pub use error::OAuthError;
pub use keys::{SigningAlg, SigningKey};
pub use master_key::MasterKey;
pub use model::{Client, ClientSecret, Customer, Scope, Subject, Tenant, User};
pub use request::{Credentials, TokenRequest};
pub use secret::{SecretHasher, SecretString};
pub use service::{IssuedToken, TokenService};
pub use store::{Store, StoreError};

/// Seconds since the Unix epoch, the unit of every time in the domain.
pub type UnixTime = i64;

/// The current time. Domain functions take `now` as a parameter so tests
/// control time without sleeping.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The current time in seconds.
pub fn now() -> UnixTime {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
