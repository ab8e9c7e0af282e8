//! The schema's migrations and the `meta` row whose `change_version` every
//! write to the directory bumps.
//!
//! sqlx's PostgreSQL migrator takes a session-level advisory lock
//! (`pg_advisory_lock`, keyed by the database name) before it reads or
//! applies anything, and applies each migration in a transaction of its
//! own: replicas starting together on a new database queue on the lock, the
//! first applies the migrations, the others find them applied. The
//! migrations run on a connection of their own, closed afterwards, so the
//! lock can never outlive the run, even when a migration fails.

use super::error::{db_err, migrate_err};
use super::MigrationReport;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use stead_core::StoreError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Brings the schema up to date.
pub(super) async fn migrate(options: &PgConnectOptions) -> Result<MigrationReport, StoreError> {
    let mut conn = options.connect().await.map_err(db_err)?;
    let before = applied(&mut conn).await?;
    // `run_direct` rather than `run`: the latter's `Acquire` bound makes the
    // future not `Send` (a known sqlx limitation).
    let result = MIGRATOR.run_direct(&mut conn).await;
    let after = match result {
        Ok(()) => applied(&mut conn).await,
        Err(e) => Err(migrate_err(e)),
    };
    // Closing ends the session, releasing the advisory lock in any case.
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing the migration connection failed");
    }
    let after = after?;
    let applied_now: Vec<i64> = after.iter().copied().filter(|v| !before.contains(v)).collect();
    if !applied_now.is_empty() {
        tracing::info!(versions = ?applied_now, "applied database migrations");
    }
    Ok(MigrationReport { applied: applied_now, current: after.last().copied() })
}

/// The versions applied so far, oldest first.
async fn applied(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)
}

/// The current change version: one row by primary key, cheap enough to poll
/// four times a second from every replica.
pub(super) async fn change_version(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT change_version FROM meta WHERE id = 1").fetch_one(conn).await
}

/// Bumps the change version inside the caller's write transaction. The
/// row lock it takes is held until commit, so it is the last lock a writer
/// takes.
pub(super) async fn bump(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE meta SET change_version = change_version + 1 WHERE id = 1")
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
