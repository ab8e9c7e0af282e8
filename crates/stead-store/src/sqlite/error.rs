//! Turning sqlx errors into [`StoreError`]s: transient trouble (the file
//! cannot be opened, the database is locked, a pool timed out) is
//! `Unavailable` so the server answers 503; a broken constraint is
//! `Rejected`. Messages come from SQLite and sqlx, never from bound values,
//! so no secret material can appear in them.

use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;
use stead_core::StoreError;

// Primary SQLite result codes (the low byte of an extended code).
const SQLITE_PERM: i64 = 3;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;

/// Maps an sqlx error to a [`StoreError`].
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("database I/O error: {e}")),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable("timed out waiting for a database connection".into()),
        sqlx::Error::PoolClosed => StoreError::Unavailable("the database has been closed".into()),
        sqlx::Error::WorkerCrashed => StoreError::Unavailable("the database worker stopped".into()),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation => StoreError::Rejected(message),
                _ => {
                    let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
                    match code & 0xff {
                        SQLITE_BUSY | SQLITE_LOCKED => StoreError::Unavailable(format!("database is busy: {message}")),
                        SQLITE_PERM | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN
                        | SQLITE_PROTOCOL => StoreError::Unavailable(message),
                        _ => StoreError::Other(message),
                    }
                }
            }
        }
        sqlx::Error::Migrate(e) => migrate_err(*e),
        other => StoreError::Other(other.to_string()),
    }
}

pub(crate) fn migrate_err(e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => match db_err(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(m),
            other => StoreError::Other(format!("cannot migrate the database schema: {other}")),
        },
        MigrateError::VersionMissing(v) => StoreError::Other(format!(
            "the database was migrated by a newer version of stead (migration {v} is unknown to this one)"
        )),
        other => StoreError::Other(format!("cannot migrate the database schema: {other}")),
    }
}

/// Maps an error of the direct (rusqlite) connections of the token path
/// the same way as [`db_err`].
pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            match failure.code {
                C::DatabaseBusy | C::DatabaseLocked => StoreError::Unavailable(format!("database is busy: {message}")),
                C::PermissionDenied
                | C::OutOfMemory
                | C::ReadOnly
                | C::SystemIoFailure
                | C::DiskFull
                | C::CannotOpen
                | C::FileLockingProtocolFailed => StoreError::Unavailable(message),
                C::ConstraintViolation => StoreError::Rejected(message),
                _ => StoreError::Other(message),
            }
        }
        other => StoreError::Other(other.to_string()),
    }
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// Whether `e` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

pub(crate) use crate::rows::corrupt;
