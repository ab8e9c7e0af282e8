//! The audit trail: appended in batches (group commit), queried by
//! `stead audit`, pruned by age. Every replica appends to the same table.

use super::error::{corrupt, db_err};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use stead_core::audit::{AuditFilter, AuditRecord, Outcome};
use stead_core::StoreError;

const COLUMNS: &str = "time_ms, tenant, realm, client_id, subject_id, subject_given, requested_scope, \
                       granted_scope, jti, outcome, error, remote_addr, request_id";

/// One statement for a batch of any size: each column is an array, and
/// `UNNEST` turns them back into rows, in order. Outside an explicit
/// transaction the statement is a transaction of its own: committed (and,
/// with PostgreSQL's default `synchronous_commit`, flushed) when it returns,
/// in one round trip.
const APPEND: &str = "INSERT INTO audit (time_ms, tenant, realm, client_id, subject_id, subject_given, \
                          requested_scope, granted_scope, jti, outcome, error, remote_addr, request_id) \
                      SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                          $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
                          $13::text[])";

/// Rows deleted per statement when pruning, so appends are not held up
/// behind one long delete.
const PRUNE_BATCH: i64 = 10_000;

/// Appends `records` in one transaction.
pub(super) async fn append(conn: &mut PgConnection, records: &[AuditRecord]) -> Result<(), sqlx::Error> {
    fn column<'a>(records: &'a [AuditRecord], f: impl Fn(&'a AuditRecord) -> Option<&'a str>) -> Vec<Option<&'a str>> {
        records.iter().map(f).collect()
    }
    let times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
    sqlx::query(APPEND)
        .bind(times)
        .bind(column(records, |r| Some(text(&r.tenant))))
        .bind(column(records, |r| Some(text(&r.realm))))
        .bind(column(records, |r| r.client_id.as_deref().map(text)))
        .bind(column(records, |r| r.subject_id.as_deref().map(text)))
        .bind(column(records, |r| r.subject_given.as_deref().map(text)))
        .bind(column(records, |r| r.requested_scope.as_deref().map(text)))
        .bind(column(records, |r| r.granted_scope.as_deref().map(text)))
        .bind(column(records, |r| r.jti.as_deref().map(text)))
        .bind(column(records, |r| Some(r.outcome.as_str())))
        .bind(column(records, |r| r.error.as_deref().map(text)))
        .bind(column(records, |r| r.remote_addr.as_deref().map(text)))
        .bind(column(records, |r| Some(text(&r.request_id))))
        .execute(conn)
        .await?;
    Ok(())
}

/// PostgreSQL text cannot hold NUL characters; the audit trail keeps what
/// it can rather than lose the record. (Caller-supplied fields are already
/// stripped of control characters by `stead_core::audit::bounded`.)
fn text(s: &str) -> &str {
    match s.find('\0') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Records matching every given condition of `filter`, oldest first.
pub(super) async fn query(conn: &mut PgConnection, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
    let (sql, binds) = query_sql(filter);
    let mut query = sqlx::query(&sql);
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query.fetch_all(conn).await.map_err(db_err)?.iter().map(record).collect()
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

fn query_sql(filter: &AuditFilter) -> (String, Vec<Bind<'_>>) {
    let mut sql = format!("SELECT {COLUMNS} FROM audit");
    let mut binds = Vec::new();
    let mut conditions: Vec<(&str, Bind<'_>)> = Vec::new();
    if let Some(t) = &filter.tenant {
        conditions.push(("tenant =", Bind::Text(t)));
    }
    if let Some(c) = &filter.client_id {
        conditions.push(("client_id =", Bind::Text(c)));
    }
    if let Some(s) = &filter.subject_id {
        conditions.push(("subject_id =", Bind::Text(s)));
    }
    if let Some(since) = filter.since_ms {
        conditions.push(("time_ms >=", Bind::Int(since)));
    }
    if let Some(until) = filter.until_ms {
        conditions.push(("time_ms <", Bind::Int(until)));
    }
    if let Some(outcome) = filter.outcome {
        conditions.push(("outcome =", Bind::Text(outcome.as_str())));
    }
    for (i, (condition, bind)) in conditions.into_iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        sql.push_str(&format!("{condition} ${}", i + 1));
        binds.push(bind);
    }
    sql.push_str(" ORDER BY time_ms, seq");
    if let Some(limit) = filter.limit {
        binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" LIMIT ${}", binds.len()));
    }
    (sql, binds)
}

fn record(row: &PgRow) -> Result<AuditRecord, StoreError> {
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

/// Deletes records older than `before_ms`, a batch per statement.
pub(super) async fn prune(conn: &mut PgConnection, before_ms: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM audit WHERE seq IN \
             (SELECT seq FROM audit WHERE time_ms < $1 ORDER BY time_ms, seq LIMIT $2)",
        )
        .bind(before_ms)
        .bind(PRUNE_BATCH)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_numbered_filters() {
        let f = AuditFilter {
            tenant: Some("T".into()),
            since_ms: Some(5),
            outcome: Some(Outcome::Issued),
            limit: Some(3),
            ..Default::default()
        };
        let (sql, binds) = query_sql(&f);
        assert!(
            sql.ends_with("WHERE tenant = $1 AND time_ms >= $2 AND outcome = $3 ORDER BY time_ms, seq LIMIT $4"),
            "{sql}"
        );
        assert_eq!(binds.len(), 4);
        assert_eq!(text("a\0b"), "a");
    }
}
