//! Applying a provisioning plan (SPEC §6) in one write transaction.
//!
//! Every entity is upserted by its key. A field the plan leaves out (`None`)
//! keeps its stored value, or takes its default on a new entity. Each upsert
//! only rewrites a row whose values differ, and counts it; when nothing
//! differs the change version stays put, so importing the same file twice
//! changes nothing at all. A client's secrets given by the plan replace all
//! of its secrets (an overlap left by a rotation included), unless it holds
//! exactly those already, none expiring.
//!
//! Users and customers, which can number millions, are written with
//! multi-row upserts; a batch that breaks a uniqueness rule is redone row by
//! row to name the offending entry.

mod batch;
mod customers;
mod users;

use super::error::db_err;
use super::{json, meta, secrets};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use stead_core::model::Scope;
use stead_core::provision::{ClientPlan, ProvisioningPlan, TenantPlan};
use stead_core::store::ImportReport;
use stead_core::StoreError;

pub(super) async fn apply(pool: &SqlitePool, plan: &ProvisioningPlan) -> Result<ImportReport, StoreError> {
    let started = std::time::Instant::now();
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let result = match apply_in(&mut tx, plan).await {
        Ok((report, changed)) => {
            if changed > 0 {
                meta::bump(&mut tx).await?;
            }
            tx.commit().await.map_err(db_err)?;
            tracing::info!(?report, changed_rows = changed, elapsed = ?started.elapsed(), "provisioning applied");
            Ok(report)
        }
        Err(e) => {
            // Dropping the transaction would roll back too; doing it here
            // releases the write lock before the caller hears of the error.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a refused import failed");
            }
            Err(e)
        }
    };
    // A large import fills the writer's page cache; give the memory back.
    if let Err(e) = sqlx::query("PRAGMA shrink_memory").execute(&mut *conn).await {
        tracing::debug!(error = %e, "shrink_memory failed");
    }
    result
}

/// Applies every tenant; returns the report and how many rows changed.
async fn apply_in(conn: &mut SqliteConnection, plan: &ProvisioningPlan) -> Result<(ImportReport, u64), StoreError> {
    let mut report = ImportReport::default();
    let mut changed = 0;
    let now = stead_core::now();
    for tenant in &plan.tenants {
        changed += upsert_tenant(conn, tenant).await?;
        for scope in &tenant.scopes {
            changed += upsert_scope(conn, tenant, scope).await?;
        }
        for client in &tenant.clients {
            changed += upsert_client(conn, tenant, client, now).await?;
        }
        changed += users::upsert(conn, &tenant.id, &tenant.users).await?;
        changed += customers::upsert(conn, &tenant.id, &tenant.customers).await?;
        report.tenants += 1;
        report.scopes += tenant.scopes.len();
        report.clients += tenant.clients.len();
        report.users += tenant.users.len();
        report.customers += tenant.customers.len();
    }
    Ok((report, changed))
}

async fn upsert_tenant(conn: &mut SqliteConnection, t: &TenantPlan) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "INSERT INTO tenants (id, audience, token_ttl_seconds, signing_alg, auto_provision_customers) \
         VALUES (?1, ?2, ?3, COALESCE(?4, 'ES256'), COALESCE(?5, 0)) \
         ON CONFLICT (id) DO UPDATE SET \
             audience = COALESCE(?2, tenants.audience), \
             token_ttl_seconds = COALESCE(?3, tenants.token_ttl_seconds), \
             signing_alg = COALESCE(?4, tenants.signing_alg), \
             auto_provision_customers = COALESCE(?5, tenants.auto_provision_customers) \
         WHERE tenants.audience IS NOT COALESCE(?2, tenants.audience) \
            OR tenants.token_ttl_seconds IS NOT COALESCE(?3, tenants.token_ttl_seconds) \
            OR tenants.signing_alg IS NOT COALESCE(?4, tenants.signing_alg) \
            OR tenants.auto_provision_customers IS NOT COALESCE(?5, tenants.auto_provision_customers)",
    )
    .bind(t.id.as_str())
    .bind(t.audience.as_deref())
    .bind(t.token_ttl_seconds)
    .bind(t.signing_alg.map(|a| a.as_str()))
    .bind(t.auto_provision_customers)
    .execute(&mut *conn)
    .await
    .map_err(|e| rejected_or(e, || format!("tenant {:?}", t.id.as_str())))?;
    Ok(result.rows_affected())
}

async fn upsert_scope(conn: &mut SqliteConnection, t: &TenantPlan, scope: &Scope) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "INSERT INTO scopes (tenant_id, name, description) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET description = COALESCE(?3, scopes.description) \
         WHERE scopes.description IS NOT COALESCE(?3, scopes.description)",
    )
    .bind(t.id.as_str())
    .bind(&scope.name)
    .bind(scope.description.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(|e| rejected_or(e, || format!("tenant {:?} scope {:?}", t.id.as_str(), scope.name)))?;
    Ok(result.rows_affected())
}

async fn upsert_client(
    conn: &mut SqliteConnection,
    t: &TenantPlan,
    c: &ClientPlan,
    now: i64,
) -> Result<u64, StoreError> {
    let label = || format!("tenant {:?} client {:?}", t.id.as_str(), c.id);
    let exists = sqlx::query("SELECT 1 FROM clients WHERE tenant_id = ?1 AND id = ?2")
        .bind(t.id.as_str())
        .bind(&c.id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .is_some();
    if !exists && c.secret_hashes.is_none() {
        return Err(StoreError::Rejected(format!("{}: a new client needs a secret", label())));
    }
    if c.secret_hashes.as_ref().is_some_and(|h| h.is_empty()) {
        return Err(StoreError::Rejected(format!("{}: a client needs at least one secret", label())));
    }
    if let Some(scopes) = &c.scopes {
        for scope in scopes {
            let defined = sqlx::query("SELECT 1 FROM scopes WHERE tenant_id = ?1 AND name = ?2")
                .bind(t.id.as_str())
                .bind(scope)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?
                .is_some();
            if !defined {
                return Err(StoreError::Rejected(format!(
                    "{}: scope {scope:?} is not defined in tenant {:?}",
                    label(),
                    t.id.as_str()
                )));
            }
        }
    }

    let mut changed = sqlx::query(
        "INSERT INTO clients (tenant_id, id, name, realm_user, realm_customer, token_ttl_seconds, enabled, \
             subject_groups, deny_subject_groups) \
         VALUES (?1, ?2, ?3, COALESCE(?4, 0), COALESCE(?5, 0), ?6, COALESCE(?7, 1), ?8, COALESCE(?9, '[]')) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET \
             name = COALESCE(?3, clients.name), \
             realm_user = COALESCE(?4, clients.realm_user), \
             realm_customer = COALESCE(?5, clients.realm_customer), \
             token_ttl_seconds = COALESCE(?6, clients.token_ttl_seconds), \
             enabled = COALESCE(?7, clients.enabled), \
             subject_groups = COALESCE(?8, clients.subject_groups), \
             deny_subject_groups = COALESCE(?9, clients.deny_subject_groups) \
         WHERE clients.name IS NOT COALESCE(?3, clients.name) \
            OR clients.realm_user IS NOT COALESCE(?4, clients.realm_user) \
            OR clients.realm_customer IS NOT COALESCE(?5, clients.realm_customer) \
            OR clients.token_ttl_seconds IS NOT COALESCE(?6, clients.token_ttl_seconds) \
            OR clients.enabled IS NOT COALESCE(?7, clients.enabled) \
            OR clients.subject_groups IS NOT COALESCE(?8, clients.subject_groups) \
            OR clients.deny_subject_groups IS NOT COALESCE(?9, clients.deny_subject_groups)",
    )
    .bind(t.id.as_str())
    .bind(&c.id)
    .bind(c.name.as_deref())
    .bind(c.realms.map(|r| r.user))
    .bind(c.realms.map(|r| r.customer))
    .bind(c.token_ttl_seconds)
    .bind(c.enabled)
    .bind(c.subject_groups.as_deref().map(json::to_json))
    .bind(c.deny_subject_groups.as_deref().map(json::to_json))
    .execute(&mut *conn)
    .await
    .map_err(|e| rejected_or(e, label))?
    .rows_affected();

    // The plan's secrets replace all of the client's, overlap included.
    if let Some(hashes) = &c.secret_hashes {
        if secrets::replace(conn, &t.id, &c.id, hashes, now).await? {
            changed += 1;
        }
    }

    if let Some(scopes) = &c.scopes {
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT scope_name FROM client_scopes WHERE tenant_id = ?1 AND client_id = ?2 ORDER BY position",
        )
        .bind(t.id.as_str())
        .bind(&c.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        if stored != *scopes {
            sqlx::query("DELETE FROM client_scopes WHERE tenant_id = ?1 AND client_id = ?2")
                .bind(t.id.as_str())
                .bind(&c.id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            for (position, scope) in scopes.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO client_scopes (tenant_id, client_id, position, scope_name) VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(t.id.as_str())
                .bind(&c.id)
                .bind(position as i64)
                .bind(scope)
                .execute(&mut *conn)
                .await
                .map_err(|e| rejected_or(e, label))?;
            }
            changed += 1;
        }
    }
    Ok(changed)
}

/// A constraint violation becomes `Rejected`, prefixed with the entry it
/// concerns; anything else maps as usual.
fn rejected_or(e: sqlx::Error, label: impl FnOnce() -> String) -> StoreError {
    match db_err(e) {
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", label())),
        other => other,
    }
}
