//! Loading the in-memory directory: tenants, scopes, clients and keys,
//! read in one snapshot so a concurrent import is seen whole or
//! not at all.

use super::error::{corrupt, db_err};
use super::{json, keys, secrets};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use stead_core::model::{Client, RealmSet, Scope, Tenant};
use stead_core::store::DirectoryData;
use stead_core::{SigningAlg, StoreError};
use stead_proto::TenantId;

pub(super) async fn load(pool: &SqlitePool) -> Result<DirectoryData, StoreError> {
    let now = stead_core::now();
    let mut tx = pool.begin().await.map_err(db_err)?;

    let tenants = sqlx::query(
        "SELECT id, audience, token_ttl_seconds, signing_alg, auto_provision_customers FROM tenants ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?
    .iter()
    .map(tenant)
    .collect::<Result<Vec<_>, _>>()?;

    let scopes = sqlx::query("SELECT tenant_id, name, description FROM scopes ORDER BY tenant_id, name")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| {
            Ok((
                tenant_id(row)?,
                Scope {
                    name: row.try_get("name").map_err(db_err)?,
                    description: row.try_get("description").map_err(db_err)?,
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;

    let mut client_scopes: HashMap<(String, String), Vec<String>> = HashMap::new();
    for row in sqlx::query(
        "SELECT tenant_id, client_id, scope_name FROM client_scopes ORDER BY tenant_id, client_id, position",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?
    {
        let key = (row.try_get("tenant_id").map_err(db_err)?, row.try_get("client_id").map_err(db_err)?);
        client_scopes.entry(key).or_default().push(row.try_get("scope_name").map_err(db_err)?);
    }

    let mut client_secrets = secrets::load(&mut tx, now).await?;
    let clients = sqlx::query(
        "SELECT tenant_id, id, name, realm_user, realm_customer, token_ttl_seconds, enabled, \
             subject_groups, deny_subject_groups \
         FROM clients ORDER BY tenant_id, id",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?
    .iter()
    .map(|row| {
        let tenant = tenant_id(row)?;
        let id: String = row.try_get("id").map_err(db_err)?;
        let key = (tenant.as_str().to_owned(), id.clone());
        let scopes = client_scopes.remove(&key).unwrap_or_default();
        let client = Client {
            name: row.try_get("name").map_err(db_err)?,
            secrets: client_secrets.remove(&key).unwrap_or_default(),
            realms: RealmSet {
                user: row.try_get("realm_user").map_err(db_err)?,
                customer: row.try_get("realm_customer").map_err(db_err)?,
            },
            scopes,
            token_ttl_seconds: ttl(row)?,
            enabled: row.try_get("enabled").map_err(db_err)?,
            subject_groups: json::optional_groups(row, "subject_groups")?,
            deny_subject_groups: json::groups(row, "deny_subject_groups")?,
            id,
        };
        Ok((tenant, client))
    })
    .collect::<Result<Vec<_>, StoreError>>()?;

    let keys = keys::load(&mut tx).await?;
    tx.rollback().await.map_err(db_err)?;
    Ok(DirectoryData { tenants, scopes, clients, keys })
}

fn tenant(row: &SqliteRow) -> Result<Tenant, StoreError> {
    let id: String = row.try_get("id").map_err(db_err)?;
    let alg: String = row.try_get("signing_alg").map_err(db_err)?;
    Ok(Tenant {
        signing_alg: SigningAlg::parse(&alg).ok_or_else(|| corrupt(format!("tenant {id:?}: signing_alg {alg:?}")))?,
        audience: row.try_get("audience").map_err(db_err)?,
        token_ttl_seconds: ttl(row)?,
        auto_provision_customers: row.try_get("auto_provision_customers").map_err(db_err)?,
        id: TenantId::parse(&id).ok_or_else(|| corrupt(format!("tenant id {id:?}")))?,
    })
}

fn tenant_id(row: &SqliteRow) -> Result<TenantId, StoreError> {
    let id: String = row.try_get("tenant_id").map_err(db_err)?;
    TenantId::parse(&id).ok_or_else(|| corrupt(format!("tenant id {id:?}")))
}

fn ttl(row: &SqliteRow) -> Result<Option<u32>, StoreError> {
    let ttl: Option<i64> = row.try_get("token_ttl_seconds").map_err(db_err)?;
    ttl.map(|v| u32::try_from(v).map_err(|_| corrupt(format!("token_ttl_seconds {v}")))).transpose()
}
