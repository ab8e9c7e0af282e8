//! The audit trail: queried by `stead audit`, pruned by age. (Appends are
//! in `audit_writer.rs`.)

use super::error::{corrupt, db_err};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use stead_core::audit::{AuditFilter, AuditRecord, Outcome};
use stead_core::StoreError;

const COLUMNS: &str = audit_columns!();

/// Rows deleted per transaction when pruning, so appends are not held up
/// behind one long delete.
const PRUNE_BATCH: i64 = 10_000;

/// Records matching every given condition of `filter`, oldest first.
pub(super) async fn query(pool: &SqlitePool, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
    let (sql, binds) = query_sql(filter);
    let mut query = sqlx::query(&sql);
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query.fetch_all(pool).await.map_err(db_err)?.iter().map(record).collect()
}

#[derive(Clone, Copy)]
enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

/// One SELECT per table, merged in time order. Rows still in
/// `audit_recent` were all committed after every row of `audit`, so among
/// records of the same millisecond `audit`'s come first, then each table's
/// in insertion order.
fn query_sql(filter: &AuditFilter) -> (String, Vec<Bind<'_>>) {
    let mut conditions: Vec<(&str, Bind<'_>)> = Vec::new();
    if let Some(t) = &filter.tenant {
        conditions.push(("tenant = ?", Bind::Text(t)));
    }
    if let Some(c) = &filter.client_id {
        conditions.push(("client_id = ?", Bind::Text(c)));
    }
    if let Some(s) = &filter.subject_id {
        conditions.push(("subject_id = ?", Bind::Text(s)));
    }
    if let Some(since) = filter.since_ms {
        conditions.push(("time_ms >= ?", Bind::Int(since)));
    }
    if let Some(until) = filter.until_ms {
        conditions.push(("time_ms < ?", Bind::Int(until)));
    }
    if let Some(outcome) = filter.outcome {
        conditions.push(("outcome = ?", Bind::Text(outcome.as_str())));
    }
    let mut filter_sql = String::new();
    for (i, (condition, _)) in conditions.iter().enumerate() {
        filter_sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        filter_sql.push_str(condition);
    }
    let mut sql = format!(
        "SELECT {COLUMNS}, 0 AS source, rowid AS position FROM audit{filter_sql} \
         UNION ALL SELECT {COLUMNS}, 1 AS source, rowid AS position FROM audit_recent{filter_sql} \
         ORDER BY time_ms, source, position"
    );
    let mut binds: Vec<Bind<'_>> = conditions.iter().map(|(_, b)| *b).collect();
    binds.extend(conditions.iter().map(|(_, b)| *b));
    if let Some(limit) = filter.limit {
        sql.push_str(" LIMIT ?");
        binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    (sql, binds)
}

fn record(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let outcome: String = row.try_get("outcome").map_err(db_err)?;
    Ok(AuditRecord {
        time_ms: row.try_get("time_ms").map_err(db_err)?,
        tenant: row.try_get("tenant").map_err(db_err)?,
        realm: row.try_get("realm").map_err(db_err)?,
        client_id: row.try_get("client_id").map_err(db_err)?,
        subject_id: row.try_get("subject_id").map_err(db_err)?,
        subject_given: row.try_get("subject_given").map_err(db_err)?,
        requested_scope: row.try_get("requested_scope").map_err(db_err)?,
        granted_scope: row.try_get("granted_scope").map_err(db_err)?,
        jti: row.try_get("jti").map_err(db_err)?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt(format!("audit outcome {outcome:?}")))?,
        error: row.try_get("error").map_err(db_err)?,
        remote_addr: row.try_get("remote_addr").map_err(db_err)?,
        request_id: row.try_get("request_id").map_err(db_err)?,
    })
}

/// Deletes records older than `before_ms`, a batch per transaction: from
/// the unindexed backlog, then from the indexed table (which then also
/// holds any old record the writer moved there meanwhile).
pub(super) async fn prune(pool: &SqlitePool, before_ms: i64) -> Result<u64, StoreError> {
    let mut total = prune_backlog(pool, before_ms).await?;
    loop {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let deleted = sqlx::query(PRUNE_INDEXED)
            .bind(before_ms)
            .bind(PRUNE_BATCH)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        total += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}

const PRUNE_INDEXED: &str = "DELETE FROM audit WHERE rowid IN \
                             (SELECT rowid FROM audit WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)";

/// `audit_recent` has no index on time, so finding its old rows reads the
/// whole backlog (~0.3 s for a full backlog of 2^20 records). That read
/// runs on a snapshot, without the write lock, so token commits go on;
/// only the deletes by rowid take the lock. (Its rows are nearly in time
/// order, but not exactly: a clock step, or a record committed after a
/// later one; so every row is looked at.)
async fn prune_backlog(pool: &SqlitePool, before_ms: i64) -> Result<u64, StoreError> {
    let old: Vec<i64> = sqlx::query_scalar("SELECT rowid FROM audit_recent WHERE time_ms < ?1 ORDER BY rowid")
        .bind(before_ms)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    let mut total = 0;
    for batch in old.chunks(PRUNE_BATCH as usize) {
        let rowids = serde_json::to_string(batch).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        // Rows the writer moved into `audit` since the read are gone from
        // here; the indexed prune that follows finds them there.
        total += sqlx::query("DELETE FROM audit_recent WHERE rowid IN (SELECT value FROM json_each(?1))")
            .bind(rowids)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    fn filter() -> AuditFilter {
        AuditFilter::default()
    }

    /// Each filter a query leads with is served by its index of `audit`, in
    /// time order: at most records of the same millisecond are sorted, not
    /// the whole result. (Only the small unindexed backlog in
    /// `audit_recent` is scanned and sorted; the two are merged.)
    #[tokio::test]
    async fn filtered_queries_use_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        let cases = [
            (AuditFilter { since_ms: Some(1), until_ms: Some(2), ..filter() }, "audit_by_time"),
            (AuditFilter { tenant: Some("T".into()), since_ms: Some(1), ..filter() }, "audit_by_tenant"),
            (AuditFilter { client_id: Some("c".into()), until_ms: Some(1), ..filter() }, "audit_by_client"),
            (AuditFilter { subject_id: Some("s".into()), limit: Some(5), ..filter() }, "audit_by_subject"),
        ];
        for (f, index) in cases {
            let (sql, binds) = query_sql(&f);
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s),
                    Bind::Int(i) => q.bind(i),
                };
            }
            let plan = q.fetch_all(&store.audit_read).await.unwrap();
            let details: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
            let right = details.iter().position(|d| *d == "RIGHT").expect("a merge of two tables");
            let (indexed, backlog) = details.split_at(right);
            assert!(details.contains(&"MERGE (UNION ALL)"), "{sql}: {details:?}");
            assert!(indexed.iter().any(|d| d.contains(&format!("audit USING INDEX {index}"))), "{sql}: {details:?}");
            assert!(!indexed.iter().any(|d| d.contains("TEMP B-TREE FOR ORDER BY")), "{sql}: {details:?}");
            assert!(backlog.iter().any(|d| d.contains("audit_recent")), "{sql}: {details:?}");
        }
    }
}
