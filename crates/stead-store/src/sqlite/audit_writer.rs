//! The audit trail's writer: one thread with its own SQLite connection.
//!
//! Every issued token waits for its audit record to be committed and
//! synced, so this is on the token path. The thread takes every batch
//! queued while the previous commit was syncing and commits them in one
//! transaction (one fsync), with a cached single-row INSERT per record.
//!
//! Records are committed into `audit_recent`, a table without indexes, and
//! moved into the indexed `audit` table later, when no record has arrived
//! for a few milliseconds. Maintaining the four indexes costs about as much
//! per record as the rest of the commit (measured, BENCHMARKS.md); none of
//! it needs to happen before the token is answered, since the record is
//! already durable and queries read both tables. Under sustained full load
//! the backlog is bounded (`MAX_BACKLOG`): once it is full, each commit
//! also indexes as many records as it adds.
//!
//! The WAL is not checkpointed by SQLite's automatic checkpoint, which
//! would run inside a commit and make the requests of that batch wait for
//! it. A second thread, on its own connection, copies the committed WAL
//! into the database file while the writer goes on committing (a PASSIVE
//! checkpoint does not block writers); that copy takes ~10 ms under load,
//! and on the writer it used to stall every request in flight. Once it is
//! done, the writer checkpoints the short tail committed meanwhile, between
//! two commits, so that the next commit starts the WAL over and the file
//! stays small under sustained load.

use super::cpu_gauge::CpuGauge;
use super::error::sql_err;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use stead_core::audit::AuditRecord;
use stead_core::StoreError;
use tokio::sync::oneshot;

const INSERT: &str = concat!(
    "INSERT INTO audit_recent (",
    audit_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
);
/// The last rowid of the oldest `?1` records in `audit_recent`.
const MOVE_END: &str = "SELECT max(rowid) FROM (SELECT rowid FROM audit_recent ORDER BY rowid LIMIT ?1)";
const MOVE_COPY: &str = concat!(
    "INSERT INTO audit (",
    audit_columns!(),
    ") SELECT ",
    audit_columns!(),
    " FROM audit_recent WHERE rowid <= ?1 ORDER BY rowid"
);
const MOVE_DELETE: &str = "DELETE FROM audit_recent WHERE rowid <= ?1";

/// The writer starts indexing the backlog once no record has arrived for
/// this long: under load the silence never comes and the CPU stays with
/// the requests. (5 ms was too short: with RS256 at 32 connections a
/// commit gathers records for several milliseconds, and indexing in those
/// gaps cost a third of the throughput.)
const INDEX_AFTER_IDLE: Duration = Duration::from_millis(50);
/// Records a commit also indexes when the CPUs are less than `BUSY_ABOVE`
/// busy: ~0.4 ms of work on the benchmark host.
const INDEX_CHUNK_BETWEEN_COMMITS: usize = 16;
/// Indexing runs only while the process uses less than this share of the
/// CPUs it may run on (for anything but indexing): a token costs about
/// twice what indexing its record does, so below half there is room.
#[cfg(not(test))]
const BUSY_ABOVE: f64 = 0.5;
/// Unit tests share one process with other busy tests: they index always.
#[cfg(test)]
const BUSY_ABOVE: f64 = f64::INFINITY;
/// Records indexed per transaction when idle: about a millisecond of work
/// (indexing costs ~20 µs per record on the benchmark host), the longest a
/// record arriving during idle indexing waits for its commit to start.
const INDEX_CHUNK: usize = 64;
/// Most records left unindexed. Unindexed records are found by a scan of
/// `audit_recent` (`stead audit --subject` took 0.4 s with this many);
/// once sustained load has filled it, each commit indexes as many records
/// as it adds. At 18,000 tokens/s this is about a minute of full load;
/// an idle server indexes it in ~20 s.
const MAX_BACKLOG: usize = 1 << 20;
/// The writer frees its page cache after indexing this many records.
const SHRINK_RECORDS: usize = 4096;

/// Checkpoint once this many records were committed since the last one…
const CHECKPOINT_RECORDS: usize = 4096;
/// …or when the writer has been idle this long with records not yet
/// checkpointed.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);
/// Page cache of the writer, in KiB: enough for the right edges of the
/// table and its indexes. An 8 MiB cache made no measurable difference to
/// the token rate but grew the server's RSS by ~34 MB as the trail grew
/// (76 MB instead of 42 MB with 1M users after load).
const CACHE_KIB: i64 = 2 * 1024;

type Job = (Vec<AuditRecord>, oneshot::Sender<Result<(), StoreError>>);

/// Handle to the writer thread; the thread ends when every handle is gone.
pub(super) struct AuditWriter {
    jobs: mpsc::Sender<Job>,
    flags: Arc<Flags>,
}

/// What the writer thread and its handles share.
#[derive(Default)]
struct Flags {
    /// Whether the writer indexes the backlog when idle. Off until the
    /// server turns it on: a CLI process (`stead audit`, `stead import`)
    /// must not take the write lock from a running server's commits.
    idle_indexing: AtomicBool,
    /// The last commit failed, and no write has succeeded since.
    failing: AtomicBool,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Opens the audit database at `path` (its schema must be migrated) and
    /// starts the writer thread.
    pub(super) fn start(path: &Path) -> Result<AuditWriter, StoreError> {
        Self::start_paced(path, Pacing::default())
    }

    fn start_paced(path: &Path, pacing: Pacing) -> Result<AuditWriter, StoreError> {
        let conn = open(path)?;
        let backlog = Backlog::find(&conn)?;
        let background = Background::start(open(path)?)?;
        let (jobs, queue) = mpsc::channel();
        let flags = Arc::new(Flags::default());
        let shared = flags.clone();
        std::thread::Builder::new()
            .name("stead-audit".into())
            .spawn(move || {
                short_slice::request();
                run(conn, backlog, pacing, &shared, queue, background)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the audit writer: {e}")))?;
        Ok(AuditWriter { jobs, flags })
    }

    /// Turns indexing of the backlog when idle on or off (it starts off).
    pub(super) fn index_when_idle(&self, on: bool) {
        self.flags.idle_indexing.store(on, Ordering::Relaxed);
    }

    /// Whether records cannot be written now: the last commit failed, and
    /// neither a later commit nor the writer's probe (after each of its
    /// idle waits, 50–500 ms, while the failure lasts) has written since.
    pub(super) fn is_failing(&self) -> bool {
        self.flags.failing.load(Ordering::Relaxed)
    }

    /// Resolves once `records` are committed and synced.
    pub(super) async fn append(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let stopped = || StoreError::Unavailable("the audit writer has stopped".into());
        let (done, result) = oneshot::channel();
        self.jobs.send((records, done)).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

/// The writer thread asks the scheduler for a short time slice.
///
/// On a busy core its work is short (a commit's inserts, then the
/// `fsync`, then waking the requests) but sits between every batch of
/// tokens and its answer; with the default slice the thread waits for
/// the request threads' slice to end each time it wakes, and the core
/// idles during the sync that follows. Linux's EEVDF scheduler (6.12 and
/// later) lets a thread of the normal class ask for a shorter slice
/// (`sched_attr.sched_runtime`), which lets its wakeups preempt without
/// raising its priority: its share of the CPU stays the same. Elsewhere,
/// or on older kernels, the request is ignored or refused, which changes
/// nothing.
mod short_slice {
    /// 0.1 ms, the shortest slice Linux grants.
    const SLICE_NS: u64 = 100_000;

    #[cfg(target_os = "linux")]
    pub(super) fn request() {
        // SAFETY: both calls take this thread (0) and a plain struct of
        // the size they are told; sched_getattr fills it in.
        let rc = unsafe {
            let mut attr: libc::sched_attr = std::mem::zeroed();
            let size = std::mem::size_of::<libc::sched_attr>() as u32;
            // The thread's own policy and nice value: only the slice changes.
            if libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut libc::sched_attr, size, 0) != 0 {
                -1
            } else {
                attr.size = size;
                attr.sched_runtime = SLICE_NS;
                libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const libc::sched_attr, 0)
            }
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "no short slice for the audit writer");
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn request() {}
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sql_err)?;
    conn.busy_timeout(super::BUSY_TIMEOUT).map_err(sql_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sql_err)?;
    // Each commit is synced before the tokens it records are answered.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql_err)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(sql_err)?;
    conn.pragma_update(None, "journal_size_limit", super::JOURNAL_SIZE_LIMIT).map_err(sql_err)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(sql_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(sql_err)?;
    Ok(conn)
}

/// The checkpointing thread: copies the WAL into the database file when
/// asked, concurrently with the writer's commits.
struct Background {
    wake: mpsc::SyncSender<()>,
    busy: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Background {
    fn start(conn: Connection) -> Result<Background, StoreError> {
        let (wake, asked) = mpsc::sync_channel::<()>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let flag = busy.clone();
        let thread = std::thread::Builder::new()
            .name("stead-audit-ckpt".into())
            .spawn(move || {
                // Ends when the writer (the only sender) is gone.
                while asked.recv().is_ok() {
                    checkpoint(&conn);
                    flag.store(false, Ordering::Release);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the audit checkpointer: {e}")))?;
        Ok(Background { wake, busy, thread })
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Ends the thread once the copy it is making, if any, is done.
    fn finish(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }

    fn ask(&self) {
        self.busy.store(true, Ordering::Release);
        if self.wake.try_send(()).is_err() {
            self.busy.store(false, Ordering::Release);
        }
    }
}

/// When the backlog is indexed.
#[derive(Clone, Copy)]
struct Pacing {
    index_after_idle: Duration,
    max_backlog: usize,
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing { index_after_idle: INDEX_AFTER_IDLE, max_backlog: MAX_BACKLOG }
    }
}

fn run(
    mut conn: Connection,
    mut backlog: Backlog,
    pacing: Pacing,
    flags: &Flags,
    queue: mpsc::Receiver<Job>,
    background: Background,
) {
    let mut wal = WalState { unchecked: 0, tail_pending: false, background };
    let mut cpu = CpuGauge::new(BUSY_ABOVE);
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut waiting = Vec::new();
    // A job that arrived while the backlog was being indexed.
    let mut next: Option<Job> = None;
    loop {
        // While records wait to be indexed, a short silence is enough to
        // start indexing them; otherwise wait for the idle checkpoint.
        let may_index = backlog.records > 0 && flags.idle_indexing.load(Ordering::Relaxed);
        let timeout = if may_index { pacing.index_after_idle } else { CHECKPOINT_IDLE };
        let first = match next.take().map(Ok).unwrap_or_else(|| queue.recv_timeout(timeout)) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Silence: index the backlog for as long as no new record
                // arrives (one waits for a chunk at most).
                if may_index {
                    let mut quiet = Quiet { conn: &mut conn, backlog: &mut backlog, wal: &mut wal, cpu: &mut cpu };
                    next = quiet.index(&queue, INDEX_CHUNK);
                }
                if next.is_none() && backlog.records == 0 {
                    wal.checkpoint_if_idle(&conn);
                }
                if flags.failing.load(Ordering::Relaxed) && next.is_none() {
                    // Nothing to commit: find out whether a write would
                    // succeed now, so that readiness recovers without traffic.
                    let writable = conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok();
                    if !writable && !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    flags.failing.store(!writable, Ordering::Relaxed);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Everything queued during the last commit goes into this one.
        for (batch, done) in std::iter::once(first).chain(std::iter::from_fn(|| queue.try_recv().ok())) {
            records.extend(batch);
            waiting.push(done);
        }
        // Once sustained load has filled the backlog, every commit also
        // indexes as many records as it adds, in the same transaction.
        // Under light or moderate load, when silence may never last long
        // enough, a commit with CPU to spare indexes a small chunk: in the
        // same transaction, so it costs no fsync of its own.
        let index_too = if backlog.records + records.len() > pacing.max_backlog {
            records.len()
        } else if backlog.records > 0 && flags.idle_indexing.load(Ordering::Relaxed) && !cpu.busy() {
            INDEX_CHUNK_BETWEEN_COMMITS
        } else {
            0
        };
        let result = commit(&mut conn, &records, index_too, &mut cpu);
        let (committed, indexed) = match &result {
            Ok(indexed) => (records.len(), *indexed),
            Err(e) => {
                tracing::error!(error = %e, records = records.len(), "audit records not committed");
                (0, 0)
            }
        };
        let result = result.map(|_| ());
        flags.failing.store(result.is_err(), Ordering::Relaxed);
        for done in waiting.drain(..) {
            let _ = done.send(result.clone());
        }
        records.clear();
        backlog.committed(&conn, committed, indexed);
        wal.written(&conn, committed + indexed);
    }
    // Let a background copy finish, so that the last one does not find the
    // WAL busy. The backlog stays for the next start to index: shutting
    // down does not wait for it.
    wal.background.finish();
    if wal.unchecked > 0 {
        checkpoint(&conn);
    }
}

/// The writer's state that indexing between requests touches.
struct Quiet<'a> {
    conn: &'a mut Connection,
    backlog: &'a mut Backlog,
    wal: &'a mut WalState,
    cpu: &'a mut CpuGauge,
}

impl Quiet<'_> {
    /// Indexes the backlog `chunk` records at a time while no job is queued
    /// and the process has CPU to spare. Returns the job that arrived
    /// meanwhile, if one did.
    fn index(&mut self, queue: &mpsc::Receiver<Job>, chunk: usize) -> Option<Job> {
        loop {
            if self.backlog.records == 0 || self.cpu.busy() {
                return None;
            }
            match queue.try_recv() {
                Ok(job) => return Some(job),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => return None,
            }
            let moved = self.cpu.own_during(|| self.backlog.index(self.conn, chunk));
            if moved == 0 {
                return None;
            }
            self.wal.written(self.conn, moved);
        }
    }
}

/// What the writer knows of the WAL and its checkpoints.
struct WalState {
    /// Records written since the WAL was last copied (by either thread).
    unchecked: usize,
    /// A background copy was asked for and its tail is still to be done.
    tail_pending: bool,
    background: Background,
}

impl WalState {
    /// Counts `records` more in the WAL and, between two writes, copies it
    /// into the database file when it has grown.
    fn written(&mut self, conn: &Connection, records: usize) {
        self.unchecked += records;
        if self.background.is_busy() {
            return;
        }
        if self.tail_pending {
            // The background copy is done; what was committed meanwhile is
            // short to copy, and then the WAL can start over.
            self.checkpoint(conn);
        } else if self.unchecked >= CHECKPOINT_RECORDS {
            self.background.ask();
            self.tail_pending = true;
        }
    }

    fn checkpoint_if_idle(&mut self, conn: &Connection) {
        if self.unchecked > 0 && !self.background.is_busy() {
            self.checkpoint(conn);
        }
    }

    fn checkpoint(&mut self, conn: &Connection) {
        checkpoint(conn);
        self.unchecked = 0;
        self.tail_pending = false;
    }
}

/// Records committed into `audit_recent` and not yet moved into the
/// indexed `audit` table.
struct Backlog {
    /// As far as this writer knows: pruning may have removed some.
    records: usize,
    /// Records indexed since the page cache was last emptied.
    since_shrink: usize,
}

impl Backlog {
    /// The backlog left by an earlier run (rowids in `audit_recent` are
    /// consecutive, as records leave it oldest first: no full count needed).
    fn find(conn: &Connection) -> Result<Backlog, StoreError> {
        let span: Option<i64> = conn
            // Two subqueries: SQLite answers a lone min() or max() of the
            // rowid from the ends of the table, but both in one expression
            // by reading all of it (40-130 ms at startup with a backlog).
            .query_row(
                "SELECT (SELECT max(rowid) FROM audit_recent) - (SELECT min(rowid) FROM audit_recent) + 1",
                [],
                |row| row.get(0),
            )
            .map_err(sql_err)?;
        Ok(Backlog { records: span.and_then(|n| usize::try_from(n).ok()).unwrap_or(0), since_shrink: 0 })
    }

    /// Counts a commit of `committed` records that also indexed `indexed`.
    fn committed(&mut self, conn: &Connection, committed: usize, indexed: usize) {
        self.records = (self.records + committed).saturating_sub(indexed);
        self.indexed(conn, indexed);
    }

    /// Counts `indexed` records and, every `SHRINK_RECORDS`, frees the
    /// writer's page cache. Indexing touches index pages all over the
    /// files, and the cache was measured holding them well past its
    /// `cache_size` (23 MB after 80,000 records with 1M subjects, RSS
    /// 94 MB after the benchmark) until `PRAGMA shrink_memory`.
    fn indexed(&mut self, conn: &Connection, indexed: usize) {
        self.since_shrink += indexed;
        if self.since_shrink >= SHRINK_RECORDS {
            if let Err(e) = conn.execute_batch("PRAGMA shrink_memory") {
                tracing::warn!(error = %sql_err(e), "the audit writer's page cache was not freed");
            }
            return_freed_memory();
            self.since_shrink = 0;
        }
    }

    /// Moves the oldest `limit` records (or fewer) into `audit`; returns
    /// how many.
    fn index(&mut self, conn: &mut Connection, limit: usize) -> usize {
        let moved = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err).and_then(|tx| {
            let moved = move_oldest(&tx, limit)?;
            tx.commit().map_err(sql_err)?;
            Ok(moved)
        });
        match moved {
            Ok(moved) => {
                self.records = if moved < limit { 0 } else { self.records.saturating_sub(moved) };
                self.indexed(conn, moved);
                moved
            }
            Err(e) => {
                // The records stay in `audit_recent`, where queries find
                // them; the next move retries.
                tracing::warn!(error = %e, "audit records not moved into the indexed table; retried later");
                0
            }
        }
    }
}

/// Hands the pages that freed heap memory occupies back to the system.
/// SQLite allocates with the C library's malloc, and glibc keeps what this
/// thread freed in the thread's own arena: without this, the pages indexing
/// touched stayed in the server's RSS after `shrink_memory` released them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// Moves the oldest `limit` records (or fewer) from `audit_recent` into
/// `audit` within the transaction open on `tx`; returns how many.
fn move_oldest(tx: &Connection, limit: usize) -> Result<usize, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let end: Option<i64> =
        tx.prepare_cached(MOVE_END).and_then(|mut q| q.query_row([limit], |row| row.get(0))).map_err(sql_err)?;
    let Some(end) = end else {
        return Ok(0);
    };
    let moved = tx.prepare_cached(MOVE_COPY).and_then(|mut q| q.execute([end])).map_err(sql_err)?;
    tx.prepare_cached(MOVE_DELETE).and_then(|mut q| q.execute([end])).map_err(sql_err)?;
    Ok(moved)
}

/// Commits `records` into `audit_recent` and moves the oldest `index_too`
/// records into `audit`, in one synced transaction; returns how many were
/// moved.
fn commit(
    conn: &mut Connection,
    records: &[AuditRecord],
    index_too: usize,
    cpu: &mut CpuGauge,
) -> Result<usize, StoreError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
    {
        let mut insert = tx.prepare_cached(INSERT).map_err(sql_err)?;
        for r in records {
            insert
                .execute((
                    r.time_ms,
                    &r.tenant,
                    &r.realm,
                    &r.client_id,
                    &r.subject_id,
                    &r.subject_given,
                    &r.requested_scope,
                    &r.granted_scope,
                    &r.jti,
                    r.outcome.as_str(),
                    &r.error,
                    &r.remote_addr,
                    &r.request_id,
                ))
                .map_err(sql_err)?;
        }
    }
    // A failed move must not fail the records' own commit: it is undone
    // alone, and the records it would have moved stay in the backlog.
    let moved = if index_too > 0 {
        let savepoint = tx.savepoint().map_err(sql_err)?;
        match cpu.own_during(|| move_oldest(&savepoint, index_too)) {
            Ok(moved) => {
                savepoint.commit().map_err(sql_err)?;
                moved
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit records not moved into the indexed table; retried later");
                0
            }
        }
    } else {
        0
    };
    tx.commit().map_err(sql_err)?;
    Ok(moved)
}

/// Copies the WAL into the database file. PASSIVE: it never waits for
/// readers (`stead audit` queries); what they still use is copied next time.
fn checkpoint(conn: &Connection) {
    let started = Instant::now();
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)))
    {
        Ok((wal_pages, copied)) => {
            tracing::trace!(wal_pages, copied, elapsed = ?started.elapsed(), "audit WAL checkpointed");
        }
        Err(e) => tracing::warn!(error = %sql_err(e), "audit WAL checkpoint failed; retried later"),
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditWriter, Pacing, INDEX_AFTER_IDLE, MAX_BACKLOG};
    use crate::SqliteStore;
    use std::time::Duration;
    use stead_core::audit::{AuditFilter, AuditRecord, Outcome};
    use stead_core::Store;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            time_ms: 1_700_000_000_000 + i as i64,
            tenant: "T".into(),
            realm: "user".into(),
            client_id: Some("app".into()),
            subject_id: Some(format!("{}", 10_000_000 + (i * 7919) % 1_000_000)),
            subject_given: Some(format!("user.{i}")),
            requested_scope: Some("read".into()),
            granted_scope: Some("read".into()),
            jti: Some(format!("jti-{i:032}")),
            outcome: Outcome::Issued,
            error: None,
            remote_addr: Some("127.0.0.1".into()),
            request_id: format!("r-{i}"),
        }
    }

    /// Rows in (`audit`, `audit_recent`), read by a connection of its own.
    fn rows(dir: &std::path::Path) -> (i64, i64) {
        let conn = rusqlite::Connection::open(dir.join("stead-audit.db")).unwrap();
        let count = |table: &str| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        (count("audit"), count("audit_recent"))
    }

    async fn until_indexed(dir: &std::path::Path, total: i64) {
        for _ in 0..500 {
            if rows(dir) == (total, 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("backlog not indexed: (audit, audit_recent) = {:?}", rows(dir));
    }

    /// A migrated audit database in a fresh directory, with no writer.
    async fn migrated() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open_in_dir(dir.path()).await.unwrap().close().await;
        dir
    }

    const NEVER: Duration = Duration::from_secs(3600);

    /// On Linux 6.12 and later the writer thread runs with a 0.1 ms slice.
    #[tokio::test]
    async fn the_writer_thread_runs_with_a_short_slice() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut numbers = release.trim().split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
        if (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) < (6, 12) {
            return; // no custom slices before 6.12: nothing to look at
        }
        let dir = migrated().await;
        let writer = AuditWriter::start(&dir.path().join("stead-audit.db")).unwrap();
        // Once a record is committed, the thread has made its request.
        writer.append(vec![record(0)]).await.unwrap();
        // Other tests run writers too; one of the threads is this one.
        let slices: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let task = task.ok()?.path();
                (std::fs::read_to_string(task.join("comm")).ok()?.trim() == "stead-audit").then_some(())?;
                let sched = std::fs::read_to_string(task.join("sched")).ok()?;
                sched.lines().find(|l| l.starts_with("se.slice")).map(str::to_owned)
            })
            .collect();
        assert!(slices.iter().any(|l| l.ends_with(" 100000")), "{slices:?}");
    }

    /// Records are committed unindexed and, once the writer is idle and
    /// allowed to, moved into the indexed table; a query finds them before,
    /// after and when split between the two tables, in the order they were
    /// committed, even within one millisecond.
    #[tokio::test]
    async fn the_backlog_is_indexed_when_the_writer_is_idle() {
        let dir = migrated().await;
        let writer = AuditWriter::start(&dir.path().join("stead-audit.db")).unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let same_ms = |i: usize| AuditRecord { time_ms: 1_700_000_000_000, ..record(i) };
        let all: Vec<AuditRecord> = (0..1000).map(same_ms).collect();
        for job in all.chunks(100) {
            writer.append(job.to_vec()).await.unwrap();
        }
        assert_eq!(rows(dir.path()), (0, 1000));
        assert_eq!(store.query_audit(&AuditFilter::default()).await.unwrap(), all);

        writer.index_when_idle(true);
        until_indexed(dir.path(), 1000).await;
        writer.index_when_idle(false);
        writer.append((1000..1010).map(same_ms).collect()).await.unwrap();
        assert_eq!(rows(dir.path()), (1000, 10));
        let expected: Vec<AuditRecord> = (0..1010).map(same_ms).collect();
        assert_eq!(store.query_audit(&AuditFilter::default()).await.unwrap(), expected);
        let limited = store.query_audit(&AuditFilter { limit: Some(3), ..AuditFilter::default() }).await.unwrap();
        assert_eq!(limited, expected[..3]);
        let subject = expected[1005].subject_id.clone();
        let by_subject =
            store.query_audit(&AuditFilter { subject_id: subject.clone(), ..AuditFilter::default() }).await.unwrap();
        let want: Vec<AuditRecord> = expected.iter().filter(|r| r.subject_id == subject).cloned().collect();
        assert_eq!(by_subject, want);
    }

    /// A store opened by a command other than the server (`stead audit`,
    /// `stead import`) never indexes: it must not compete with a running
    /// server's commits for the write lock.
    #[tokio::test]
    async fn only_a_writer_told_to_indexes_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        store.append_audit((0..100).map(record).collect()).await.unwrap();
        tokio::time::sleep(INDEX_AFTER_IDLE * 4).await;
        assert_eq!(rows(dir.path()), (0, 100));
        store.index_audit_when_idle();
        until_indexed(dir.path(), 100).await;
    }

    /// Pruning removes old records from both tables and keeps the rest.
    #[tokio::test]
    async fn pruning_reaches_indexed_and_unindexed_records() {
        let dir = migrated().await;
        let writer = AuditWriter::start(&dir.path().join("stead-audit.db")).unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let at = |time_ms: i64, i: usize| AuditRecord { time_ms, ..record(i) };
        writer.append((0..100).map(|i| at(1_000 + i as i64, i)).collect()).await.unwrap();
        writer.index_when_idle(true);
        until_indexed(dir.path(), 100).await;
        writer.index_when_idle(false);
        writer.append((100..150).map(|i| at(1_000 + i as i64, i)).collect()).await.unwrap();
        let recent: Vec<AuditRecord> = (150..200).map(|i| at(5_000 + i as i64, i)).collect();
        writer.append(recent.clone()).await.unwrap();
        assert_eq!(rows(dir.path()), (100, 100));

        assert_eq!(store.prune_audit(2_000).await.unwrap(), 150);
        assert_eq!(rows(dir.path()), (0, 50));
        assert_eq!(store.query_audit(&AuditFilter::default()).await.unwrap(), recent);
        assert_eq!(store.prune_audit(2_000).await.unwrap(), 0);
    }

    /// Under sustained load the backlog never grows past its bound: each
    /// commit then indexes as many records as it adds.
    #[tokio::test]
    async fn a_full_backlog_is_indexed_by_every_commit() {
        let dir = migrated().await;
        let writer = AuditWriter::start_paced(
            &dir.path().join("stead-audit.db"),
            Pacing { index_after_idle: NEVER, max_backlog: 300 },
        )
        .unwrap();
        for job in 0..20 {
            writer.append((job * 50..job * 50 + 50).map(record).collect()).await.unwrap();
            let (indexed, backlog) = rows(dir.path());
            assert_eq!(indexed + backlog, (job as i64 + 1) * 50);
            assert!(backlog <= 300, "backlog of {backlog} after {} records", (job + 1) * 50);
        }
        assert!(rows(dir.path()).0 >= 700, "{:?}", rows(dir.path()));
    }

    /// A backlog left at shutdown is indexed by the next writer.
    #[tokio::test]
    async fn a_backlog_left_at_shutdown_is_indexed_after_a_restart() {
        let dir = migrated().await;
        let path = dir.path().join("stead-audit.db");
        let writer =
            AuditWriter::start_paced(&path, Pacing { index_after_idle: NEVER, max_backlog: MAX_BACKLOG }).unwrap();
        writer.append((0..500).map(record).collect()).await.unwrap();
        drop(writer);
        assert_eq!(rows(dir.path()), (0, 500));
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        store.index_audit_when_idle();
        until_indexed(dir.path(), 500).await;
        let all = store.query_audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(all, (0..500).map(record).collect::<Vec<_>>());
    }

    /// The WAL is checkpointed (in the background, the tail between
    /// commits), so it is reused rather than growing with the trail.
    #[tokio::test]
    async fn the_wal_stays_bounded_as_the_trail_grows() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let batch = super::CHECKPOINT_RECORDS / 2;
        let mut next = 0;
        let mut append = |batches: usize| {
            let jobs: Vec<Vec<AuditRecord>> = (0..batches)
                .map(|_| {
                    let b = (next..next + batch).map(record).collect();
                    next += batch;
                    b
                })
                .collect();
            jobs
        };
        for job in append(60) {
            store.append_audit(job).await.unwrap();
        }
        // Without checkpoints every page would still be in the WAL and the
        // database file would hold only the schema; with them the WAL
        // restarts every few batches and stays the size of one cycle.
        let wal_len = std::fs::metadata(dir.path().join("stead-audit.db-wal")).unwrap().len();
        let db_len = std::fs::metadata(dir.path().join("stead-audit.db")).unwrap().len();
        assert!(db_len > wal_len, "database {db_len} bytes, WAL {wal_len} bytes");
        let all = store.query_audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(all.len(), 60 * batch);
        assert_eq!(all[123], record(123));
    }

    /// A trail that cannot be written makes the store's ping fail (and so
    /// `/readyz`), and readiness comes back without traffic once writes
    /// succeed again.
    #[tokio::test]
    async fn a_trail_that_cannot_be_written_fails_the_ping_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        store.append_audit(vec![record(0)]).await.unwrap();
        store.ping().await.unwrap();
        // Another process holds the write lock past the writer's busy timeout.
        let other = rusqlite::Connection::open(dir.path().join("stead-audit.db")).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert!(store.append_audit(vec![record(1)]).await.is_err());
        assert!(store.ping().await.is_err(), "ping succeeded while the trail is locked");
        other.execute_batch("ROLLBACK").unwrap();
        let started = std::time::Instant::now();
        while store.ping().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "still failing after the lock was released");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.append_audit(vec![record(2)]).await.unwrap();
    }
}
