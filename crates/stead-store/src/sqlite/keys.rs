//! Signing keys: stored sealed, inserted once, never changed.

use super::error::{corrupt, db_err, is_foreign_key_violation, is_unique_violation};
use super::meta;
use sqlx::{Row, SqliteConnection, SqlitePool};
use stead_core::store::StoredKey;
use stead_core::{SigningAlg, StoreError};
use stead_proto::TenantId;

pub(super) async fn insert(pool: &SqlitePool, key: &StoredKey) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    sqlx::query(
        "INSERT INTO signing_keys (tenant_id, kid, alg, sealed_private_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(key.tenant.as_str())
    .bind(&key.kid)
    .bind(key.alg.as_str())
    .bind(&key.sealed_private_key)
    .bind(key.created_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Rejected(format!(
                "tenant {:?}: a signing key with kid {:?} exists already",
                key.tenant.as_str(),
                key.kid
            ))
        } else if is_foreign_key_violation(&e) {
            StoreError::Rejected(format!("tenant {:?} does not exist", key.tenant.as_str()))
        } else {
            db_err(e)
        }
    })?;
    meta::bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)
}

/// Every stored key, oldest first within each tenant.
pub(super) async fn load(conn: &mut SqliteConnection) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT tenant_id, kid, alg, sealed_private_key, created_at FROM signing_keys \
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
            })
        })
        .collect()
}
