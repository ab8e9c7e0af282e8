//! Users and customers on the token path: one unique-index probe, one round
//! trip per lookup, and the race-safe creation of auto-provisioned
//! customers.

use super::error::{db_err, is_foreign_key_violation, is_unique_violation};
use super::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use stead_core::model::{fold_case, Customer, User};
use stead_core::StoreError;
use stead_proto::TenantId;

pub(super) const USER_BY_USERNAME: &str = "SELECT id, username, email, enabled, groups::text AS groups FROM users \
                                           WHERE tenant_id = $1 AND username_folded = $2";
pub(super) const USER_BY_ID: &str =
    "SELECT id, username, email, enabled, groups::text AS groups FROM users WHERE tenant_id = $1 AND id = $2";
pub(super) const CUSTOMER_BY_EMAIL: &str =
    "SELECT id, email, enabled, groups::text AS groups FROM customers WHERE tenant_id = $1 AND email_folded = $2";
pub(super) const CUSTOMER_BY_ID: &str =
    "SELECT id, email, enabled, groups::text AS groups FROM customers WHERE tenant_id = $1 AND id = $2";

pub(super) async fn user_by_username(
    conn: &mut PgConnection,
    tenant: &TenantId,
    username_folded: &str,
) -> Result<Option<User>, StoreError> {
    one(conn, USER_BY_USERNAME, tenant, username_folded).await?.map(|row| user(&row)).transpose()
}

pub(super) async fn user_by_id(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<User>, StoreError> {
    one(conn, USER_BY_ID, tenant, id).await?.map(|row| user(&row)).transpose()
}

pub(super) async fn customer_by_email(
    conn: &mut PgConnection,
    tenant: &TenantId,
    email_folded: &str,
) -> Result<Option<Customer>, StoreError> {
    one(conn, CUSTOMER_BY_EMAIL, tenant, email_folded).await?.map(|row| customer(&row)).transpose()
}

pub(super) async fn customer_by_id(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Customer>, StoreError> {
    one(conn, CUSTOMER_BY_ID, tenant, id).await?.map(|row| customer(&row)).transpose()
}

async fn one(
    conn: &mut PgConnection,
    sql: &'static str,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<PgRow>, StoreError> {
    sqlx::query(sql).bind(tenant.as_str()).bind(key).fetch_optional(conn).await.map_err(db_err)
}

/// Inserts `customer` unless its email is taken, in which case the
/// customer holding it is returned: two replicas provisioning the same email
/// at once end up with one customer (the insert waits for a concurrent
/// uncommitted one, then does nothing). Subjects are not part of the
/// directory, so the change version stays.
pub(super) async fn create_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: &Customer,
) -> Result<Customer, StoreError> {
    let email_folded = fold_case(&customer.email);
    let inserted = sqlx::query(
        "INSERT INTO customers (tenant_id, email_folded, email, id, enabled, groups) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb) \
         ON CONFLICT (tenant_id, email_folded) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(&email_folded)
    .bind(&customer.email)
    .bind(&customer.id)
    .bind(customer.enabled)
    .bind(json::to_json(&customer.groups))
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Rejected(format!(
                "tenant {:?} customer {:?}: customer id {:?} is already used by another customer",
                tenant.as_str(),
                customer.email,
                customer.id
            ))
        } else if is_foreign_key_violation(&e) {
            StoreError::Rejected(format!("tenant {:?} does not exist", tenant.as_str()))
        } else {
            db_err(e)
        }
    })?
    .rows_affected();
    if inserted == 1 {
        return Ok(customer.clone());
    }
    // A new statement, a new snapshot: it sees the row that won.
    customer_by_email(conn, tenant, &email_folded)
        .await?
        .ok_or_else(|| StoreError::Other("a conflicting customer vanished".into()))
}

fn user(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id").map_err(db_err)?,
        username: row.try_get("username").map_err(db_err)?,
        email: row.try_get("email").map_err(db_err)?,
        enabled: row.try_get("enabled").map_err(db_err)?,
        groups: json::groups(row, "groups")?,
    })
}

fn customer(row: &PgRow) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: row.try_get("id").map_err(db_err)?,
        email: row.try_get("email").map_err(db_err)?,
        enabled: row.try_get("enabled").map_err(db_err)?,
        groups: json::groups(row, "groups")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::database_or_skip;
    use crate::PgStore;

    /// The token path's lookups each probe one unique index, whatever the
    /// planner's statistics say (a fresh table invites sequential scans,
    /// so they are discouraged to see which index the query can use).
    #[tokio::test]
    async fn every_lookup_is_one_index_search() {
        let Some(db) = database_or_skip("every_lookup_is_one_index_search").await else { return };
        let store = PgStore::connect(&db.url).await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.unwrap();
        for (sql, index) in [
            (USER_BY_USERNAME, "users_by_username"),
            (USER_BY_ID, "users_pkey"),
            (CUSTOMER_BY_EMAIL, "customers_pkey"),
            (CUSTOMER_BY_ID, "customers_by_id"),
        ] {
            let plan: Vec<String> =
                sqlx::query_scalar(&format!("EXPLAIN {sql}")).bind("T").bind("x").fetch_all(&mut *conn).await.unwrap();
            assert!(plan[0].starts_with("Index Scan using") && plan[0].contains(index), "{sql}: {plan:?}");
            assert!(plan.iter().skip(1).all(|l| l.trim_start().starts_with("Index Cond")), "{sql}: {plan:?}");
        }
        drop(conn);
        store.close().await;
    }
}
