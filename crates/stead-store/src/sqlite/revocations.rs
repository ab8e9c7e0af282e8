//! Revoked tokens (RFC 7009), kept until they expire. Every server holds
//! the unexpired ones in its directory, so a revocation bumps the change
//! version.

use super::error::{corrupt, db_err, is_foreign_key_violation};
use super::meta;
use sqlx::{SqliteConnection, SqlitePool};
use stead_core::StoreError;
use stead_proto::TenantId;

pub(super) async fn revoke(pool: &SqlitePool, tenant: &TenantId, jti: &str, expires_at: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let inserted = sqlx::query(
        "INSERT INTO revocations (tenant_id, jti, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tenant_id, jti) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(jti)
    .bind(expires_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::Rejected(format!("tenant {:?} does not exist", tenant.as_str()))
        } else {
            db_err(e)
        }
    })?
    .rows_affected();
    if inserted == 0 {
        // Revoked already: every server knows.
        tx.rollback().await.map_err(db_err)?;
        return Ok(());
    }
    meta::bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)
}

/// Deletes revocations of tokens that expired by `now`. The directory never
/// holds those, so the change version stays.
pub(super) async fn prune(pool: &SqlitePool, now: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let deleted = sqlx::query("DELETE FROM revocations WHERE expires_at <= ?1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    tx.commit().await.map_err(db_err)?;
    Ok(deleted)
}

/// The revocations of tokens still valid at `now`.
pub(super) async fn load(conn: &mut SqliteConnection, now: i64) -> Result<Vec<(TenantId, String)>, StoreError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT tenant_id, jti FROM revocations WHERE expires_at > ?1 ORDER BY tenant_id, jti")
            .bind(now)
            .fetch_all(conn)
            .await
            .map_err(db_err)?;
    rows.into_iter()
        .map(|(tenant, jti)| {
            Ok((TenantId::parse(&tenant).ok_or_else(|| corrupt(format!("tenant id {tenant:?}")))?, jti))
        })
        .collect()
}
