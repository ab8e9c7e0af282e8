//! Signing keys: stored sealed, never changed apart from being retired,
//! deleted once every token they signed has expired.

use super::error::{corrupt, db_err, is_foreign_key_violation, is_unique_violation};
use super::meta;
use sqlx::{Row, SqliteConnection, SqlitePool};
use stead_core::store::StoredKey;
use stead_core::{SigningAlg, StoreError};
use stead_proto::TenantId;

/// The tenant's active key: its newest unretired one. Ties on `created_at`
/// (which rotation never leaves behind) go to the greatest kid, as in
/// `stead_core::directory`.
const ACTIVE_KID: &str = "SELECT kid FROM signing_keys WHERE tenant_id = ?1 AND retired_at IS NULL \
                          ORDER BY created_at DESC, kid DESC LIMIT 1";

/// Makes `new` the tenant's active key if the active key is still
/// `expected_active`. The check and the change share one write transaction
/// (`BEGIN IMMEDIATE` takes the write lock before reading), so of several
/// servers rotating at once, across processes too, exactly one succeeds.
pub(super) async fn rotate(
    pool: &SqlitePool,
    expected_active: Option<&str>,
    new: &StoredKey,
) -> Result<bool, StoreError> {
    let tenant = new.tenant.as_str();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let active: Option<String> =
        sqlx::query_scalar(ACTIVE_KID).bind(tenant).fetch_optional(&mut *tx).await.map_err(db_err)?;
    if active.as_deref() != expected_active {
        tx.rollback().await.map_err(db_err)?;
        return Ok(false);
    }
    sqlx::query("UPDATE signing_keys SET retired_at = ?2 WHERE tenant_id = ?1 AND retired_at IS NULL")
        .bind(tenant)
        .bind(new.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO signing_keys (tenant_id, kid, alg, sealed_private_key, created_at, retired_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
    )
    .bind(tenant)
    .bind(&new.kid)
    .bind(new.alg.as_str())
    .bind(&new.sealed_private_key)
    .bind(new.created_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Rejected(format!("tenant {tenant:?}: a signing key with kid {:?} exists already", new.kid))
        } else if is_foreign_key_violation(&e) {
            StoreError::Rejected(format!("tenant {tenant:?} does not exist"))
        } else {
            db_err(e)
        }
    })?;
    meta::bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

/// Deletes keys retired before `retired_before`.
pub(super) async fn prune(pool: &SqlitePool, retired_before: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let deleted = sqlx::query("DELETE FROM signing_keys WHERE retired_at < ?1")
        .bind(retired_before)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    if deleted == 0 {
        tx.rollback().await.map_err(db_err)?;
        return Ok(0);
    }
    meta::bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(deleted)
}

/// Every stored key, oldest first within each tenant.
pub(super) async fn load(conn: &mut SqliteConnection) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT tenant_id, kid, alg, sealed_private_key, created_at, retired_at FROM signing_keys \
         ORDER BY tenant_id, created_at, kid",
    )
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            let tenant: String = row.try_get("tenant_id").map_err(db_err)?;
            let kid: String = row.try_get("kid").map_err(db_err)?;
            let alg: String = row.try_get("alg").map_err(db_err)?;
            Ok(StoredKey {
                tenant: TenantId::parse(&tenant).ok_or_else(|| corrupt(format!("tenant id {tenant:?}")))?,
                alg: SigningAlg::parse(&alg).ok_or_else(|| corrupt(format!("signing key {kid:?}: alg {alg:?}")))?,
                kid,
                sealed_private_key: row.try_get("sealed_private_key").map_err(db_err)?,
                created_at: row.try_get("created_at").map_err(db_err)?,
                retired_at: row.try_get("retired_at").map_err(db_err)?,
            })
        })
        .collect()
}
