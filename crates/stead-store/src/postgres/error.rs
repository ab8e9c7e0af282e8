//! Turning sqlx errors into [`StoreError`]s. Everything that says "the
//! database cannot be reached right now" is `Unavailable`, so the server
//! answers 503 with `Retry-After` and recovers by itself: I/O errors, pool
//! timeouts, SQLSTATE class 08 (connection exception), 57P01–57P03 (the
//! server shut down or is starting), 53 (out of connections or memory),
//! 40001 and 40P01 (serialization failure, deadlock: retry). A broken
//! constraint or a value PostgreSQL cannot hold is `Rejected`. Messages come
//! from PostgreSQL and sqlx; PostgreSQL's `detail`, which can quote row
//! values, is never included, so no secret material can appear in them.

use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;
use stead_core::StoreError;

/// Maps an sqlx error to a [`StoreError`].
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("database I/O error: {e}")),
        sqlx::Error::Tls(e) => StoreError::Unavailable(format!("database TLS error: {e}")),
        sqlx::Error::Protocol(m) => StoreError::Unavailable(format!("database protocol error: {m}")),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable("timed out waiting for a database connection".into()),
        sqlx::Error::PoolClosed => StoreError::Unavailable("the database pool has been closed".into()),
        sqlx::Error::WorkerCrashed => StoreError::Unavailable("the database worker stopped".into()),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation => StoreError::Rejected(message),
                _ => {
                    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                    classify(&code, message)
                }
            }
        }
        sqlx::Error::Migrate(e) => migrate_err(*e),
        other => StoreError::Other(other.to_string()),
    }
}

/// A database error by SQLSTATE.
fn classify(code: &str, message: String) -> StoreError {
    if is_transient_code(code) {
        return StoreError::Unavailable(format!("{message} (SQLSTATE {code})"));
    }
    match code {
        // cardinality_violation: an upsert met the same key twice.
        "21000" => StoreError::Rejected(message),
        // Data exceptions (a NUL character in text, a value out of range).
        c if c.starts_with("22") => StoreError::Rejected(message),
        _ => StoreError::Other(format!("{message} (SQLSTATE {code})")),
    }
}

/// SQLSTATEs after which the same request may succeed later.
fn is_transient_code(code: &str) -> bool {
    code.starts_with("08")           // connection exception
        || code.starts_with("53")    // insufficient resources
        || code.starts_with("57P")   // admin / crash shutdown, cannot connect now, database dropped
        || code == "57014"           // query canceled (statement_timeout)
        || code == "40001"           // serialization failure
        || code == "40P01"           // deadlock detected
        || code == "55P03"           // lock not available (lock_timeout)
        || code == "25006" // read-only transaction (a standby after failover)
}

/// Whether `e` means the connection it happened on is gone (it was killed,
/// the server restarted): the connection is discarded and the next one is
/// tested before use.
pub(crate) fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            code.starts_with("08") || code.starts_with("57P")
        }
        _ => false,
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

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// Whether `e` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

pub(crate) use crate::rows::corrupt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_sqlstates_are_unavailable() {
        for code in ["08006", "08001", "57P01", "57P02", "57P03", "53300", "40001", "40P01", "57014"] {
            assert!(matches!(classify(code, "x".into()), StoreError::Unavailable(_)), "{code}");
        }
        assert!(matches!(classify("22021", "x".into()), StoreError::Rejected(_)));
        assert!(matches!(classify("42P01", "x".into()), StoreError::Other(_)));
        assert!(matches!(db_err(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(is_connection_lost(&io));
        assert!(matches!(db_err(io), StoreError::Unavailable(_)));
    }
}
