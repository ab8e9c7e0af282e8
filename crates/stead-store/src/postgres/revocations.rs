//! Revoked tokens (RFC 7009), kept until they expire. Each revocation takes
//! the next point of `meta.revocation_seq`, so that replicas read each one
//! once (`since`) instead of reloading every revocation with the directory.

use super::error::{db_err, is_foreign_key_violation};
use crate::rows;
use sqlx::{Connection, PgConnection};
use stead_core::store::RevocationsSince;
use stead_core::StoreError;
use stead_proto::TenantId;

pub(super) async fn revoke(
    conn: &mut PgConnection,
    tenant: &TenantId,
    jti: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let inserted = sqlx::query(
        "INSERT INTO revocations (tenant_id, jti, expires_at) VALUES ($1, $2, $3) \
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
        // Revoked already: every replica has read it or will.
        tx.rollback().await.map_err(db_err)?;
        return Ok(());
    }
    // The meta row's lock, the last one a writer takes, is held until
    // commit: replicas revoking at once get their points one after the
    // other, in the order they commit, so a reader that sees a point sees
    // every revocation up to it.
    let seq: i64 =
        sqlx::query_scalar("UPDATE meta SET revocation_seq = revocation_seq + 1 WHERE id = 1 RETURNING revocation_seq")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
    sqlx::query("UPDATE revocations SET seq = $1 WHERE tenant_id = $2 AND jti = $3")
        .bind(seq)
        .bind(tenant.as_str())
        .bind(jti)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Deletes revocations of tokens that expired by `now`. Replicas forget
/// those on their own (`RevokedTokens::prune`).
pub(super) async fn prune(conn: &mut PgConnection, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM revocations WHERE expires_at <= $1").bind(now).execute(conn).await?.rows_affected())
}

/// The revocations after point `after` of the sequence, of tokens still
/// valid at `now`, and those without a point (seq 0: written by a stead
/// from before the sequence, still running beside newer ones; there are
/// none once every server is upgraded and they have expired). The newest point is read first: every revocation up to
/// it has committed, so the second statement sees them all.
pub(super) async fn since(conn: &mut PgConnection, after: i64, now: i64) -> Result<RevocationsSince, StoreError> {
    let up_to: i64 = sqlx::query_scalar("SELECT revocation_seq FROM meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT tenant_id, jti, expires_at FROM revocations \
         WHERE ((seq > $1 AND seq <= $2) OR seq = 0) AND expires_at > $3 ORDER BY seq",
    )
    .bind(after)
    .bind(up_to)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let revoked = rows::revocations(rows)?;
    Ok(RevocationsSince { up_to, revoked })
}
