//! The race-safe creation of auto-provisioned customers. (Lookups are in
//! `lookup.rs`.)

use super::error::{db_err, is_foreign_key_violation, is_unique_violation};
use super::json;
use super::lookup::CUSTOMER_BY_EMAIL;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use stead_core::model::{fold_case, Customer};
use stead_core::StoreError;
use stead_proto::TenantId;

/// Inserts `customer` unless its email is taken, in which case the
/// customer holding it is returned: two servers provisioning the same email
/// at once end up with one customer. Subjects are not part of the
/// directory, so the change version stays: bumping it would make every
/// server reload on every auto-provisioned customer.
pub(super) async fn create_customer(
    pool: &SqlitePool,
    tenant: &TenantId,
    customer: &Customer,
) -> Result<Customer, StoreError> {
    let email_folded = fold_case(&customer.email);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let inserted = sqlx::query(
        "INSERT INTO customers (tenant_id, email_folded, email, id, enabled, groups) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (tenant_id, email_folded) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(&email_folded)
    .bind(&customer.email)
    .bind(&customer.id)
    .bind(customer.enabled)
    .bind(json::to_json(&customer.groups))
    .execute(&mut *tx)
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
        tx.commit().await.map_err(db_err)?;
        return Ok(customer.clone());
    }
    let existing = customer_in(&mut tx, tenant, &email_folded).await?;
    tx.rollback().await.map_err(db_err)?;
    existing.ok_or_else(|| StoreError::Other("a conflicting customer vanished".into()))
}

async fn customer_in(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    email_folded: &str,
) -> Result<Option<Customer>, StoreError> {
    sqlx::query(CUSTOMER_BY_EMAIL)
        .bind(tenant.as_str())
        .bind(email_folded)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .map(|row| customer(&row))
        .transpose()
}

fn customer(row: &SqliteRow) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: row.try_get("id").map_err(db_err)?,
        email: row.try_get("email").map_err(db_err)?,
        enabled: row.try_get("enabled").map_err(db_err)?,
        groups: json::groups(row, "groups")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::lookup::{CUSTOMER_BY_ID, USER_BY_ID, USER_BY_USERNAME};
    use super::*;
    use crate::SqliteStore;

    /// The token path's lookups each search one index; none scans.
    #[tokio::test]
    async fn every_lookup_is_one_index_search() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in_dir(dir.path()).await.unwrap();
        for sql in [USER_BY_USERNAME, USER_BY_ID, CUSTOMER_BY_EMAIL, CUSTOMER_BY_ID] {
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind("T")
                .bind("x")
                .fetch_all(&store.read)
                .await
                .unwrap();
            assert_eq!(plan.len(), 1, "{sql}: {plan:?}");
            let detail = &plan[0].3;
            assert!(
                detail.starts_with("SEARCH")
                    && (detail.contains("USING PRIMARY KEY")
                        || detail.contains("USING INDEX")
                        || detail.contains("USING COVERING INDEX"))
                    && detail.contains("=? AND"),
                "{sql}: {detail}"
            );
            // The issuing path's username lookup reads no table row.
            if sql == USER_BY_USERNAME {
                assert!(detail.contains("USING COVERING INDEX users_by_username_covering"), "{detail}");
            }
        }
    }
}
