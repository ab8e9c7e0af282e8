//! Multi-row upserts for subjects, and the savepoints of careful mode.

use sqlx::PgConnection;

/// Rows per statement: each column travels as one array parameter, so a
/// statement costs one round trip whatever its size; a few thousand rows
/// keep a failed batch (redone row by row in careful mode) cheap.
pub(super) const ROWS: usize = 4096;

/// The placeholder key parked on a row whose unique value another entry of
/// the same file takes over before the row's own entry gives it a new one
/// (two users swapping usernames, say). Real values never start with a
/// control character: the provisioning file refuses them.
pub(super) const PARKED_PREFIX: &str = "\u{1}";

/// Whether a failed upsert may be redone row by row: a uniqueness rule
/// broken, or one statement naming the same key twice (SQLSTATE 21000,
/// possible only in plans built without the parser).
pub(super) fn is_conflict(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("23505") | Some("21000")),
        _ => false,
    }
}

pub(super) async fn savepoint(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SAVEPOINT stead_batch").execute(conn).await.map(drop)
}

pub(super) async fn release(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("RELEASE SAVEPOINT stead_batch").execute(conn).await.map(drop)
}

/// Undoes the failed statement and releases its savepoint.
pub(super) async fn roll_back(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("ROLLBACK TO SAVEPOINT stead_batch").execute(&mut *conn).await?;
    release(conn).await
}
