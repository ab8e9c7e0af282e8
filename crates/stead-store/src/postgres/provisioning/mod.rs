//! Applying a provisioning plan (SPEC §6) in one transaction, with the
//! semantics of the SQLite store (see `sqlite/provisioning`): upserts by
//! key, fields a plan leaves out keep their stored values (`COALESCE`), a
//! row is rewritten and counted only when a value differs, the change
//! version is bumped only when something changed.
//!
//! Imports are serialized by the row lock on `import_lock`, taken first, so
//! two imports from different machines apply one after the other instead of
//! deadlocking halfway.
//!
//! Users and customers go in multi-row upserts, one statement per
//! [`batch::ROWS`] rows (`UNNEST` of one array per column). PostgreSQL
//! aborts a transaction at its first error, so finding the entry that broke
//! a uniqueness rule needs savepoints; those cost subtransactions, which
//! slow every session of the database while a large transaction holds many.
//! So an import first runs without any, and only when a batch meets a
//! uniqueness conflict is it rolled back and applied again carefully: a
//! savepoint per batch, and a batch that fails redone row by row to let
//! users swap usernames and to name the offending entry.

mod batch;
mod customers;
mod users;

use super::error::db_err;
use super::{json, meta, secrets};
use sqlx::{Connection, PgConnection};
use stead_core::model::Scope;
use stead_core::provision::{ClientPlan, ProvisioningPlan, TenantPlan};
use stead_core::store::ImportReport;
use stead_core::StoreError;

/// Why an attempt stopped.
pub(super) enum Abort {
    Store(StoreError),
    /// A uniqueness conflict met without savepoints: start again carefully.
    Conflict,
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Store(e)
    }
}

/// Whether an attempt may recover from a failed statement.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Fast,
    Careful,
}

pub(super) async fn apply(conn: &mut PgConnection, plan: &ProvisioningPlan) -> Result<ImportReport, StoreError> {
    let started = std::time::Instant::now();
    match attempt(conn, plan, Mode::Fast).await {
        Err(Abort::Conflict) => {
            tracing::debug!("a uniqueness conflict in a batch; applying the import again with savepoints");
        }
        Err(Abort::Store(e)) => return Err(e),
        Ok((report, changed)) => {
            tracing::info!(?report, changed_rows = changed, elapsed = ?started.elapsed(), "provisioning applied");
            return Ok(report);
        }
    }
    match attempt(conn, plan, Mode::Careful).await {
        Ok((report, changed)) => {
            tracing::info!(?report, changed_rows = changed, elapsed = ?started.elapsed(), "provisioning applied");
            Ok(report)
        }
        Err(Abort::Store(e)) => Err(e),
        Err(Abort::Conflict) => Err(StoreError::Other("an import conflict was not resolved".into())),
    }
}

/// One transaction: committed when the whole plan applied, else rolled back.
async fn attempt(conn: &mut PgConnection, plan: &ProvisioningPlan, mode: Mode) -> Result<(ImportReport, u64), Abort> {
    let mut tx = conn.begin().await.map_err(db_err)?;
    let result = async {
        sqlx::query("SELECT id FROM import_lock WHERE id = 1 FOR UPDATE").execute(&mut *tx).await.map_err(db_err)?;
        let (report, changed) = apply_in(&mut tx, plan, mode).await?;
        if changed > 0 {
            meta::bump(&mut tx).await?;
        }
        Ok::<_, Abort>((report, changed))
    }
    .await;
    match result {
        Ok(done) => {
            tx.commit().await.map_err(db_err)?;
            Ok(done)
        }
        Err(e) => {
            // Dropping the transaction would roll back too; doing it here
            // releases the locks before the caller hears of the error.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a refused import failed");
            }
            Err(e)
        }
    }
}

/// Applies every tenant; returns the report and how many rows changed.
async fn apply_in(conn: &mut PgConnection, plan: &ProvisioningPlan, mode: Mode) -> Result<(ImportReport, u64), Abort> {
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
        changed += users::upsert(conn, &tenant.id, &tenant.users, mode).await?;
        changed += customers::upsert(conn, &tenant.id, &tenant.customers, mode).await?;
        report.tenants += 1;
        report.scopes += tenant.scopes.len();
        report.clients += tenant.clients.len();
        report.users += tenant.users.len();
        report.customers += tenant.customers.len();
    }
    Ok((report, changed))
}

async fn upsert_tenant(conn: &mut PgConnection, t: &TenantPlan) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "INSERT INTO tenants (id, audience, token_ttl_seconds, signing_alg, auto_provision_customers) \
         VALUES ($1, $2, $3, COALESCE($4, 'ES256'), COALESCE($5, FALSE)) \
         ON CONFLICT (id) DO UPDATE SET \
             audience = COALESCE($2, tenants.audience), \
             token_ttl_seconds = COALESCE($3, tenants.token_ttl_seconds), \
             signing_alg = COALESCE($4, tenants.signing_alg), \
             auto_provision_customers = COALESCE($5, tenants.auto_provision_customers) \
         WHERE tenants.audience IS DISTINCT FROM COALESCE($2, tenants.audience) \
            OR tenants.token_ttl_seconds IS DISTINCT FROM COALESCE($3, tenants.token_ttl_seconds) \
            OR tenants.signing_alg IS DISTINCT FROM COALESCE($4, tenants.signing_alg) \
            OR tenants.auto_provision_customers IS DISTINCT FROM COALESCE($5, tenants.auto_provision_customers)",
    )
    .bind(t.id.as_str())
    .bind(t.audience.as_deref())
    .bind(t.token_ttl_seconds.map(ttl))
    .bind(t.signing_alg.map(|a| a.as_str()))
    .bind(t.auto_provision_customers)
    .execute(&mut *conn)
    .await
    .map_err(|e| rejected_or(e, || format!("tenant {:?}", t.id.as_str())))?;
    Ok(result.rows_affected())
}

async fn upsert_scope(conn: &mut PgConnection, t: &TenantPlan, scope: &Scope) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "INSERT INTO scopes (tenant_id, name, description) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET description = COALESCE($3, scopes.description) \
         WHERE scopes.description IS DISTINCT FROM COALESCE($3, scopes.description)",
    )
    .bind(t.id.as_str())
    .bind(&scope.name)
    .bind(scope.description.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(|e| rejected_or(e, || format!("tenant {:?} scope {:?}", t.id.as_str(), scope.name)))?;
    Ok(result.rows_affected())
}

async fn upsert_client(conn: &mut PgConnection, t: &TenantPlan, c: &ClientPlan, now: i64) -> Result<u64, StoreError> {
    let label = || format!("tenant {:?} client {:?}", t.id.as_str(), c.id);
    let exists = sqlx::query("SELECT 1 FROM clients WHERE tenant_id = $1 AND id = $2")
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
        let defined: Vec<String> =
            sqlx::query_scalar("SELECT name FROM scopes WHERE tenant_id = $1 AND name = ANY($2::text[])")
                .bind(t.id.as_str())
                .bind(scopes.as_slice())
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| rejected_or(e, label))?;
        if let Some(scope) = scopes.iter().find(|s| !defined.contains(s)) {
            return Err(StoreError::Rejected(format!(
                "{}: scope {scope:?} is not defined in tenant {:?}",
                label(),
                t.id.as_str()
            )));
        }
    }

    let mut changed = sqlx::query(
        "INSERT INTO clients (tenant_id, id, name, realm_user, realm_customer, token_ttl_seconds, enabled, \
             subject_groups, deny_subject_groups) \
         VALUES ($1, $2, $3, COALESCE($4, FALSE), COALESCE($5, FALSE), $6, COALESCE($7, TRUE), $8::jsonb, \
             COALESCE($9::jsonb, '[]'::jsonb)) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET \
             name = COALESCE($3, clients.name), \
             realm_user = COALESCE($4, clients.realm_user), \
             realm_customer = COALESCE($5, clients.realm_customer), \
             token_ttl_seconds = COALESCE($6, clients.token_ttl_seconds), \
             enabled = COALESCE($7, clients.enabled), \
             subject_groups = COALESCE($8::jsonb, clients.subject_groups), \
             deny_subject_groups = COALESCE($9::jsonb, clients.deny_subject_groups) \
         WHERE clients.name IS DISTINCT FROM COALESCE($3, clients.name) \
            OR clients.realm_user IS DISTINCT FROM COALESCE($4, clients.realm_user) \
            OR clients.realm_customer IS DISTINCT FROM COALESCE($5, clients.realm_customer) \
            OR clients.token_ttl_seconds IS DISTINCT FROM COALESCE($6, clients.token_ttl_seconds) \
            OR clients.enabled IS DISTINCT FROM COALESCE($7, clients.enabled) \
            OR clients.subject_groups IS DISTINCT FROM COALESCE($8::jsonb, clients.subject_groups) \
            OR clients.deny_subject_groups IS DISTINCT FROM COALESCE($9::jsonb, clients.deny_subject_groups)",
    )
    .bind(t.id.as_str())
    .bind(&c.id)
    .bind(c.name.as_deref())
    .bind(c.realms.map(|r| r.user))
    .bind(c.realms.map(|r| r.customer))
    .bind(c.token_ttl_seconds.map(ttl))
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
            "SELECT scope_name FROM client_scopes WHERE tenant_id = $1 AND client_id = $2 ORDER BY position",
        )
        .bind(t.id.as_str())
        .bind(&c.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        if stored != *scopes {
            sqlx::query("DELETE FROM client_scopes WHERE tenant_id = $1 AND client_id = $2")
                .bind(t.id.as_str())
                .bind(&c.id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            let positions: Vec<i32> = (0..scopes.len()).map(|p| p as i32).collect();
            sqlx::query(
                "INSERT INTO client_scopes (tenant_id, client_id, position, scope_name) \
                 SELECT $1, $2, p, s FROM UNNEST($3::int[], $4::text[]) AS u(p, s)",
            )
            .bind(t.id.as_str())
            .bind(&c.id)
            .bind(positions)
            .bind(scopes.as_slice())
            .execute(&mut *conn)
            .await
            .map_err(|e| rejected_or(e, label))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// `token_ttl_seconds` lies in 60..=86400 (checked by the parser).
fn ttl(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A constraint violation becomes `Rejected`, prefixed with the entry it
/// concerns; anything else maps as usual.
fn rejected_or(e: sqlx::Error, label: impl FnOnce() -> String) -> StoreError {
    match db_err(e) {
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", label())),
        other => other,
    }
}
