//! What both backends make of the rows they read, in one place.

use stead_core::store::Revocation;
use stead_core::StoreError;
use stead_proto::TenantId;

/// A value read from the database that stead could not have written.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("unexpected value in the database: {what}"))
}

/// Revocation rows `(tenant_id, jti, expires_at)`, as read.
pub(crate) fn revocations(rows: Vec<(String, String, i64)>) -> Result<Vec<Revocation>, StoreError> {
    rows.into_iter()
        .map(|(tenant, jti, expires_at)| {
            let tenant = TenantId::parse(&tenant).ok_or_else(|| corrupt(format!("tenant id {tenant:?}")))?;
            Ok(Revocation { tenant, jti, expires_at })
        })
        .collect()
}
