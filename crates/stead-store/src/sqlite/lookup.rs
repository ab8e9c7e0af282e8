//! The token path's subject lookups, on direct SQLite connections run on
//! the calling thread.
//!
//! A lookup is one unique-index probe that takes a few microseconds in a
//! warm page cache. Handing it to a connection thread (as the async pool
//! does) costs several times that in channel messages and context
//! switches, so these lookups call SQLite synchronously instead. That is
//! safe on an async worker: in WAL mode a reader never waits for a writer,
//! so a lookup does not block on another process's import or audit commit.

use super::error::sql_err;
use super::json;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use stead_core::model::{Customer, User};
use stead_core::StoreError;
use stead_proto::TenantId;

pub(super) const USER_BY_USERNAME: &str =
    "SELECT id, username, email, enabled, groups FROM users WHERE tenant_id = ?1 AND username_folded = ?2";
pub(super) const USER_BY_ID: &str =
    "SELECT id, username, email, enabled, groups FROM users WHERE tenant_id = ?1 AND id = ?2";
pub(super) const CUSTOMER_BY_EMAIL: &str =
    "SELECT id, email, enabled, groups FROM customers WHERE tenant_id = ?1 AND email_folded = ?2";
pub(super) const CUSTOMER_BY_ID: &str =
    "SELECT id, email, enabled, groups FROM customers WHERE tenant_id = ?1 AND id = ?2";

/// Read-only connections for lookups. A lookup takes an idle connection
/// (or opens one), uses it without awaiting and puts it back, so the number
/// in use at once is at most the number of threads calling: the runtime's
/// workers.
pub(super) struct SubjectReader {
    path: PathBuf,
    cache_kib: i64,
    idle: Mutex<Vec<Connection>>,
    /// Idle connections kept; more are closed when they come back.
    keep: usize,
}

impl std::fmt::Debug for SubjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectReader").field("path", &self.path).field("keep", &self.keep).finish_non_exhaustive()
    }
}

impl SubjectReader {
    /// Opens the first connection, so a file that cannot be read fails now.
    pub(super) fn open(path: &Path, cache_kib: i64, keep: usize) -> Result<SubjectReader, StoreError> {
        let reader =
            SubjectReader { path: path.to_owned(), cache_kib, idle: Mutex::new(Vec::new()), keep: keep.max(1) };
        let first = reader.connect()?;
        reader.idle_list().push(first);
        Ok(reader)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            // Each connection is used by one thread at a time (see `with`),
            // so SQLite's own per-connection mutex is not needed.
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err)?;
        conn.busy_timeout(super::BUSY_TIMEOUT).map_err(sql_err)?;
        conn.pragma_update(None, "cache_size", -self.cache_kib).map_err(sql_err)?;
        Ok(conn)
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The lock is never held while SQLite runs, so it cannot be poisoned
        // by a failing query; recover the list if it ever is.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `query` on an idle connection.
    fn with<T>(&self, query: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let taken = self.idle_list().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = query(&conn);
        let mut idle = self.idle_list();
        if idle.len() < self.keep {
            idle.push(conn);
        }
        drop(idle);
        result.map_err(sql_err)
    }

    fn one<T>(
        &self,
        sql: &str,
        tenant: &TenantId,
        key: &str,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        self.with(|conn| conn.prepare_cached(sql)?.query_row((tenant.as_str(), key), map).optional())
    }

    pub(super) fn user_by_username(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>, StoreError> {
        self.one(USER_BY_USERNAME, tenant, folded, user)?.transpose()
    }

    pub(super) fn user_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<User>, StoreError> {
        self.one(USER_BY_ID, tenant, id, user)?.transpose()
    }

    pub(super) fn customer_by_email(&self, tenant: &TenantId, folded: &str) -> Result<Option<Customer>, StoreError> {
        self.one(CUSTOMER_BY_EMAIL, tenant, folded, customer)?.transpose()
    }

    pub(super) fn customer_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<Customer>, StoreError> {
        self.one(CUSTOMER_BY_ID, tenant, id, customer)?.transpose()
    }
}

/// A row becomes a user; a group list that is not JSON is reported as
/// corrupt data rather than as a failed query.
fn user(row: &Row<'_>) -> rusqlite::Result<Result<User, StoreError>> {
    let groups: String = row.get(4)?;
    Ok(match json::parse(&groups, "groups") {
        Ok(groups) => {
            Ok(User { id: row.get(0)?, username: row.get(1)?, email: row.get(2)?, enabled: row.get(3)?, groups })
        }
        Err(e) => Err(e),
    })
}

fn customer(row: &Row<'_>) -> rusqlite::Result<Result<Customer, StoreError>> {
    let groups: String = row.get(3)?;
    Ok(match json::parse(&groups, "groups") {
        Ok(groups) => Ok(Customer { id: row.get(0)?, email: row.get(1)?, enabled: row.get(2)?, groups }),
        Err(e) => Err(e),
    })
}
