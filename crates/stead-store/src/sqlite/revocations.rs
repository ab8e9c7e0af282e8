//! Revoked tokens (RFC 7009), kept until they expire. Each revocation takes
//! the next point of `meta.revocation_seq`, so that servers read each one
//! once (`since`) instead of reloading every revocation with the directory.

use super::error::{db_err, is_foreign_key_violation};
use crate::rows;
use sqlx::SqlitePool;
use stead_core::store::RevocationsSince;
use stead_core::StoreError;
use stead_proto::TenantId;

pub(super) async fn revoke(pool: &SqlitePool, tenant: &TenantId, jti: &str, expires_at: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    // The write lock (BEGIN IMMEDIATE) makes the read of the sequence and
    // its bump one step: points are handed out in commit order.
    let inserted = sqlx::query(
        "INSERT INTO revocations (tenant_id, jti, expires_at, seq) \
         VALUES (?1, ?2, ?3, (SELECT revocation_seq + 1 FROM meta WHERE id = 1)) \
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
        // Revoked already: every server has read it or will.
        tx.rollback().await.map_err(db_err)?;
        return Ok(());
    }
    sqlx::query("UPDATE meta SET revocation_seq = revocation_seq + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Deletes revocations of tokens that expired by `now`. Servers forget
/// those on their own (`RevokedTokens::prune`).
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

/// The revocations after point `after` of the sequence, of tokens still
/// valid at `now`, and those without a point (seq 0: written by a stead
/// from before the sequence, still running beside newer ones; there are
/// none once every server is upgraded and they have expired), read in one
/// snapshot with the newest point.
pub(super) async fn since(pool: &SqlitePool, after: i64, now: i64) -> Result<RevocationsSince, StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let up_to: i64 =
        sqlx::query_scalar("SELECT revocation_seq FROM meta WHERE id = 1").fetch_one(&mut *tx).await.map_err(db_err)?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT tenant_id, jti, expires_at FROM revocations \
         WHERE ((seq > ?1 AND seq <= ?2) OR seq = 0) AND expires_at > ?3 ORDER BY seq",
    )
    .bind(after)
    .bind(up_to)
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.rollback().await.map_err(db_err)?;
    let revoked = rows::revocations(rows)?;
    Ok(RevocationsSince { up_to, revoked })
}
