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
//!
//! Engines that speak PostgreSQL but have no advisory locks (CockroachDB
//! reports `unknown function: pg_advisory_lock()`) get the same guarantee
//! from a row lock instead: a second connection locks the one row of
//! `stead_migration_lock` (`SELECT … FOR UPDATE` in an open transaction)
//! while the first applies the migrations without sqlx's lock.

use super::error::{db_err, migrate_err};
use super::MigrationReport;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::time::Duration;
use stead_core::StoreError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How the migrations of concurrent processes are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationLock {
    /// PostgreSQL's advisory lock (sqlx's own).
    Advisory,
    /// A row lock on `stead_migration_lock`, for engines without advisory locks.
    Table,
}

/// Brings the schema up to date, with the advisory lock when the engine has
/// it, else the row lock.
pub(super) async fn migrate(options: &PgConnectOptions) -> Result<MigrationReport, StoreError> {
    let mut conn = options.connect().await.map_err(db_err)?;
    let lock = if has_advisory_locks(&mut conn).await { MigrationLock::Advisory } else { MigrationLock::Table };
    migrate_on(options, conn, lock).await
}

/// Brings the schema up to date under `lock`.
pub(super) async fn migrate_with(
    options: &PgConnectOptions,
    lock: MigrationLock,
) -> Result<MigrationReport, StoreError> {
    let conn = options.connect().await.map_err(db_err)?;
    migrate_on(options, conn, lock).await
}

async fn migrate_on(
    options: &PgConnectOptions,
    mut conn: PgConnection,
    lock: MigrationLock,
) -> Result<MigrationReport, StoreError> {
    let result = match lock {
        // `run_direct` rather than `run`: the latter's `Acquire` bound makes
        // the future not `Send` (a known sqlx limitation).
        MigrationLock::Advisory => {
            let before = applied(&mut conn).await;
            match before {
                Ok(before) => MIGRATOR.run_direct(&mut conn).await.map_err(migrate_err).map(|()| before),
                Err(e) => Err(e),
            }
        }
        MigrationLock::Table => match lock_table(options).await {
            Ok(mut holder) => {
                let mut unlocked = sqlx::migrate!("./migrations/postgres");
                unlocked.set_locking(false);
                let result = match applied(&mut conn).await {
                    Ok(before) => unlocked.run_direct(&mut conn).await.map_err(migrate_err).map(|()| before),
                    Err(e) => Err(e),
                };
                // Ends the holder's transaction, and with it the row lock.
                let _ = sqlx::query("ROLLBACK").execute(&mut holder).await;
                let _ = holder.close().await;
                result
            }
            Err(e) => Err(e),
        },
    };
    let after = match result {
        Ok(before) => applied(&mut conn).await.map(|after| (before, after)),
        Err(e) => Err(e),
    };
    // Closing ends the session, releasing an advisory lock in any case.
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing the migration connection failed");
    }
    let (before, after) = after?;
    let applied_now: Vec<i64> = after.iter().copied().filter(|v| !before.contains(v)).collect();
    if !applied_now.is_empty() {
        tracing::info!(versions = ?applied_now, ?lock, "applied database migrations");
    }
    Ok(MigrationReport { applied: applied_now, current: after.last().copied() })
}

/// Whether `pg_advisory_lock` really locks. CockroachDB's, where it exists
/// at all, is a stub that returns at once.
async fn has_advisory_locks(conn: &mut PgConnection) -> bool {
    let version: String = sqlx::query_scalar("SELECT version()").fetch_one(&mut *conn).await.unwrap_or_default();
    if version.contains("CockroachDB") {
        return false;
    }
    sqlx::query_scalar::<_, bool>("SELECT to_regprocedure('pg_advisory_lock(bigint)') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .unwrap_or(false)
}

/// A connection holding the row lock of `stead_migration_lock` in an open
/// transaction; other processes wait in theirs.
async fn lock_table(options: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    let mut holder = options.connect().await.map_err(db_err)?;
    // Two processes creating the table at once can collide in the catalog;
    // the loser finds it made on retry.
    let mut attempt = 0;
    loop {
        let created = sqlx::query("CREATE TABLE IF NOT EXISTS stead_migration_lock (id INTEGER PRIMARY KEY)")
            .execute(&mut holder)
            .await;
        match created {
            Ok(_) => break,
            Err(_) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(db_err(e)),
        }
    }
    sqlx::query("INSERT INTO stead_migration_lock (id) VALUES (1) ON CONFLICT DO NOTHING")
        .execute(&mut holder)
        .await
        .map_err(db_err)?;
    sqlx::query("BEGIN").execute(&mut holder).await.map_err(db_err)?;
    sqlx::query("SELECT id FROM stead_migration_lock WHERE id = 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .map_err(db_err)?;
    Ok(holder)
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
