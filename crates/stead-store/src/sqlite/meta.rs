//! The schema's migrations and the `meta` row whose `change_version` every
//! write bumps.

use super::error::{db_err, migrate_err};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{SqliteConnection, SqlitePool};
use std::time::Duration;
use stead_core::StoreError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static AUDIT_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite-audit");

/// Brings the schema up to date. Two processes opening a new database at
/// the same moment can race to apply a migration; the loser fails, and on
/// retry finds it applied.
pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    run(&MIGRATOR, pool).await
}

/// The same for the audit database.
pub(super) async fn migrate_audit(pool: &SqlitePool) -> Result<(), StoreError> {
    run(&AUDIT_MIGRATOR, pool).await
}

async fn run(migrator: &Migrator, pool: &SqlitePool) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(migrate_err(e)),
        }
    }
}

/// The current change version: one indexed row, cheap enough to poll.
pub(super) async fn change_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT change_version FROM meta WHERE id = 1").fetch_one(pool).await.map_err(db_err)
}

/// Bumps the change version inside the caller's write transaction.
pub(super) async fn bump(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE meta SET change_version = change_version + 1 WHERE id = 1")
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
