//! Client secrets, one row each: several during a rotation's overlap, the
//! old ones with an expiry. Only keyed hashes are stored. `seq` stands in
//! for SQLite's rowid: among secrets created in the same second, the one
//! inserted last is the newest.

use super::error::{corrupt, db_err};
use super::meta;
use sqlx::{Connection, PgConnection, Row};
use std::collections::HashMap;
use stead_core::model::ClientSecret;
use stead_core::StoreError;
use stead_proto::TenantId;

/// The secrets of every client that may still authenticate with them,
/// oldest first, keyed by (tenant, client id).
pub(super) async fn load(
    conn: &mut PgConnection,
    now: i64,
) -> Result<HashMap<(String, String), Vec<ClientSecret>>, StoreError> {
    let rows = sqlx::query(
        "SELECT tenant_id, client_id, hash, created_at, expires_at FROM client_secrets \
         WHERE expires_at IS NULL OR expires_at > $1 \
         ORDER BY tenant_id, client_id, created_at, seq",
    )
    .bind(now)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    let mut secrets: HashMap<(String, String), Vec<ClientSecret>> = HashMap::new();
    for row in rows {
        let key: (String, String) =
            (row.try_get("tenant_id").map_err(db_err)?, row.try_get("client_id").map_err(db_err)?);
        let hash: Vec<u8> = row.try_get("hash").map_err(db_err)?;
        let hash = <[u8; 32]>::try_from(hash.as_slice())
            .map_err(|_| corrupt(format!("client {:?}: a secret hash of {} bytes", key.1, hash.len())))?;
        secrets.entry(key).or_default().push(ClientSecret {
            hash,
            created_at: row.try_get("created_at").map_err(db_err)?,
            expires_at: row.try_get("expires_at").map_err(db_err)?,
        });
    }
    Ok(secrets)
}

/// Makes `hashes` the client's only secrets, without expiry (an import).
/// A hash the client holds already keeps its `created_at`; new ones are
/// created `now`. Returns whether anything changed: when the client holds
/// exactly these hashes, none expiring, nothing is written.
pub(super) async fn replace(
    conn: &mut PgConnection,
    tenant: &TenantId,
    client_id: &str,
    hashes: &[[u8; 32]],
    now: i64,
) -> Result<bool, StoreError> {
    let mut wanted: Vec<&[u8; 32]> = Vec::with_capacity(hashes.len());
    for h in hashes {
        if !wanted.contains(&h) {
            wanted.push(h);
        }
    }
    let stored: Vec<(Vec<u8>, Option<i64>)> =
        sqlx::query_as("SELECT hash, expires_at FROM client_secrets WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant.as_str())
            .bind(client_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    let unchanged = stored.len() == wanted.len()
        && stored.iter().all(|(hash, expires_at)| expires_at.is_none() && wanted.iter().any(|w| w[..] == hash[..]));
    if unchanged {
        return Ok(false);
    }
    for (hash, _) in &stored {
        if !wanted.iter().any(|w| w[..] == hash[..]) {
            sqlx::query("DELETE FROM client_secrets WHERE tenant_id = $1 AND client_id = $2 AND hash = $3")
                .bind(tenant.as_str())
                .bind(client_id)
                .bind(hash)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
    }
    for hash in wanted {
        sqlx::query(
            "INSERT INTO client_secrets (tenant_id, client_id, hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, NULL) \
             ON CONFLICT (tenant_id, client_id, hash) DO UPDATE SET expires_at = NULL",
        )
        .bind(tenant.as_str())
        .bind(client_id)
        .bind(&hash[..])
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(true)
}

/// Adds `new` to the client; its other secrets expire at `old_expire_at`
/// (sooner if they were due sooner), or go now when that is not after
/// `new.created_at`. Secrets already expired are deleted.
pub(super) async fn rotate(
    conn: &mut PgConnection,
    tenant: &TenantId,
    client_id: &str,
    new: &ClientSecret,
    old_expire_at: i64,
) -> Result<(), StoreError> {
    let now = new.created_at;
    let mut tx = conn.begin().await.map_err(db_err)?;
    lock_client(&mut tx, tenant, client_id).await?;
    if old_expire_at <= now {
        sqlx::query("DELETE FROM client_secrets WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant.as_str())
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    } else {
        sqlx::query("DELETE FROM client_secrets WHERE tenant_id = $1 AND client_id = $2 AND expires_at <= $3")
            .bind(tenant.as_str())
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE client_secrets SET expires_at = $3 \
             WHERE tenant_id = $1 AND client_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(tenant.as_str())
        .bind(client_id)
        .bind(old_expire_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    // Re-adding a hash the client holds makes it new again.
    sqlx::query(
        "INSERT INTO client_secrets (tenant_id, client_id, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, client_id, hash) DO UPDATE SET \
             created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
    )
    .bind(tenant.as_str())
    .bind(client_id)
    .bind(&new.hash[..])
    .bind(new.created_at)
    .bind(new.expires_at)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    meta::bump(&mut tx).await?;
    tx.commit().await.map_err(db_err)
}

/// Deletes every secret of the client but its newest active one (the one
/// inserted last among equally new ones); expired secrets go too.
pub(super) async fn revoke_old(
    conn: &mut PgConnection,
    tenant: &TenantId,
    client_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    lock_client(&mut tx, tenant, client_id).await?;
    let deleted = sqlx::query(
        "DELETE FROM client_secrets WHERE tenant_id = $1 AND client_id = $2 AND seq IS DISTINCT FROM ( \
             SELECT seq FROM client_secrets \
             WHERE tenant_id = $1 AND client_id = $2 AND (expires_at IS NULL OR expires_at > $3) \
             ORDER BY created_at DESC, seq DESC LIMIT 1)",
    )
    .bind(tenant.as_str())
    .bind(client_id)
    .bind(now)
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

/// Locks the client's row for the transaction, so changes to its secrets
/// from several replicas apply one after another; `Rejected` when the
/// client does not exist.
async fn lock_client(conn: &mut PgConnection, tenant: &TenantId, client_id: &str) -> Result<(), StoreError> {
    let exists = sqlx::query("SELECT 1 FROM clients WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE")
        .bind(tenant.as_str())
        .bind(client_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .is_some();
    if exists {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!("tenant {:?}: client {client_id:?} does not exist", tenant.as_str())))
    }
}
