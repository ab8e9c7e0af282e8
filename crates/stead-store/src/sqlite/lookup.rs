//! The token path's subject lookups, on direct SQLite connections run on
//! the calling thread.
//!
//! A lookup is one unique-index probe that takes a few microseconds in a
//! warm page cache. Handing it to a connection thread (as the async pool
//! does) costs several times that in channel messages and context
//! switches, so these lookups call SQLite synchronously instead. That is
//! safe on an async worker: in WAL mode a reader never waits for a writer,
//! so a lookup does not block on another process's import or audit commit.
//!
//! Starting and ending a read transaction takes file locks (two `fcntl`
//! calls each way, and a read of the database header), which cost more
//! than the index probe itself. So a connection keeps its read transaction
//! (its snapshot) open across lookups for as long as no other connection
//! or process committed anything: every commit in WAL mode rewrites the
//! wal-index header at the start of the `-shm` file (see SQLite's
//! "WAL-mode file format"), so one `pread` of those 48 bytes tells whether
//! the snapshot is still the newest. A change made by `stead import` is
//! therefore seen by the next lookup, as before. A snapshot is also never
//! kept longer than [`SNAPSHOT_MAX_AGE`], and a sweeper thread ends the
//! snapshots of idle connections, so an idle server never pins an old
//! snapshot (which would keep the WAL from being checkpointed).

use super::error::sql_err;
use super::json;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use stead_core::model::{Customer, User};
use stead_core::StoreError;
use stead_proto::TenantId;

/// `INDEXED BY`: the planner prefers the unique index, which needs a second
/// descent into the table (see migration 0003).
pub(super) const USER_BY_USERNAME: &str = "SELECT id, username, email, enabled, groups FROM users \
     INDEXED BY users_by_username_covering WHERE tenant_id = ?1 AND username_folded = ?2";
pub(super) const USER_BY_ID: &str =
    "SELECT id, username, email, enabled, groups FROM users WHERE tenant_id = ?1 AND id = ?2";
pub(super) const CUSTOMER_BY_EMAIL: &str =
    "SELECT id, email, enabled, groups FROM customers WHERE tenant_id = ?1 AND email_folded = ?2";
pub(super) const CUSTOMER_BY_ID: &str =
    "SELECT id, email, enabled, groups FROM customers WHERE tenant_id = ?1 AND id = ?2";

/// The longest a lookup connection keeps one snapshot even when the
/// database did not change, so that checkpoints are never held back long.
pub(super) const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(100);

/// The first copy of the wal-index header (`WalIndexHdr`, 48 bytes at
/// offset 0 of the `-shm` file). A writer updates it in every commit, and
/// in every WAL restart, before the commit returns.
type WalHeader = [u8; 48];

/// A lookup connection and, while it holds a read transaction (its
/// snapshot), when the transaction began and the wal-index header read just
/// before it.
struct Lookup {
    conn: Connection,
    snapshot_since: Option<Instant>,
    header: Option<WalHeader>,
}

impl Lookup {
    fn new(conn: Connection) -> Lookup {
        Lookup { conn, snapshot_since: None, header: None }
    }

    /// Ends the read transaction, if one is open.
    fn end_snapshot(&mut self) -> rusqlite::Result<()> {
        self.snapshot_since = None;
        self.header = None;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)
    }

    /// Makes sure the connection reads the newest snapshot: keeps the open
    /// one when `header` (read now) equals the one read before it began,
    /// and it is younger than [`SNAPSHOT_MAX_AGE`]; otherwise begins a new
    /// read transaction, whose snapshot the next query takes. Without a
    /// header (no `-shm` file to read) every lookup gets a new snapshot.
    fn fresh_snapshot(&mut self, header: Option<WalHeader>, now: Instant) -> rusqlite::Result<()> {
        let current = match (self.snapshot_since, &self.header, &header) {
            (Some(since), Some(then), Some(now_header)) => {
                then == now_header && now.duration_since(since) < SNAPSHOT_MAX_AGE && !self.conn.is_autocommit()
            }
            _ => false,
        };
        if current {
            return Ok(());
        }
        self.end_snapshot()?;
        if header.is_none() {
            return Ok(());
        }
        self.conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
        self.snapshot_since = Some(now);
        self.header = header;
        Ok(())
    }
}

/// Read-only connections for lookups. A lookup takes an idle connection
/// (or opens one), uses it without awaiting and puts it back, so the number
/// in use at once is at most the number of threads calling: the runtime's
/// workers.
pub(super) struct SubjectReader {
    path: PathBuf,
    cache_kib: i64,
    idle: Mutex<Vec<Lookup>>,
    /// The database's `-shm` file, read for the wal-index header.
    shm: Option<File>,
    /// Idle connections kept; more are closed when they come back.
    keep: usize,
}

impl std::fmt::Debug for SubjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectReader").field("path", &self.path).field("keep", &self.keep).finish_non_exhaustive()
    }
}

impl SubjectReader {
    /// Opens the first connection, so a file that cannot be read fails now,
    /// and starts the thread that ends idle connections' snapshots.
    pub(super) fn open(path: &Path, cache_kib: i64, keep: usize) -> Result<Arc<SubjectReader>, StoreError> {
        let mut reader = SubjectReader {
            path: path.to_owned(),
            cache_kib,
            idle: Mutex::new(Vec::new()),
            shm: None,
            keep: keep.max(1),
        };
        let first = reader.connect()?;
        // The first read creates the `-shm` file when no one has yet.
        first.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())).map_err(sql_err)?;
        reader.shm = File::open(shm_path(path)).ok();
        reader.idle_list().push(Lookup::new(first));
        let reader = Arc::new(reader);
        let weak = Arc::downgrade(&reader);
        std::thread::Builder::new()
            .name("stead-lookup-sweep".into())
            .spawn(move || sweep(weak))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the lookup sweeper: {e}")))?;
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

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Lookup>> {
        // The lock is never held while SQLite runs, so it cannot be poisoned
        // by a failing query; recover the list if it ever is.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `query` on an idle connection, in a snapshot no older than
    /// [`SNAPSHOT_MAX_AGE`].
    fn with<T>(&self, query: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let taken = self.idle_list().pop();
        let mut lookup = match taken {
            Some(lookup) => lookup,
            None => Lookup::new(self.connect()?),
        };
        let result = lookup.fresh_snapshot(self.wal_header(), Instant::now()).and_then(|()| query(&lookup.conn));
        // After a failure start over with a new snapshot; a connection whose
        // transaction cannot even be ended is dropped (closing it ends it).
        if result.is_err() && lookup.end_snapshot().is_err() {
            return result.map_err(sql_err);
        }
        let mut idle = self.idle_list();
        if idle.len() < self.keep {
            idle.push(lookup);
        }
        drop(idle);
        result.map_err(sql_err)
    }

    /// The wal-index header as it is now, if it can be read.
    fn wal_header(&self) -> Option<WalHeader> {
        let mut header = [0u8; 48];
        self.shm.as_ref()?.read_exact_at(&mut header, 0).ok()?;
        Some(header)
    }

    /// Ends the snapshots of idle connections that reached the maximum age.
    fn end_stale_snapshots(&self, now: Instant) {
        let mut idle = self.idle_list();
        idle.retain_mut(|lookup| match lookup.snapshot_since {
            Some(since) if now.duration_since(since) >= SNAPSHOT_MAX_AGE => lookup.end_snapshot().is_ok(),
            _ => true,
        });
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

/// SQLite's wal-index file next to the database `path`.
fn shm_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

/// Ends stale snapshots of idle connections until the reader is dropped.
fn sweep(reader: Weak<SubjectReader>) {
    loop {
        std::thread::sleep(SNAPSHOT_MAX_AGE / 2);
        match reader.upgrade() {
            Some(reader) => reader.end_stale_snapshots(Instant::now()),
            None => return,
        }
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
