//! Upserting a tenant's customers, keyed by email (case-insensitively);
//! customer ids stay unique per tenant. A new customer without an id gets a
//! random one; an existing customer keeps its id unless the file gives one.

use super::batch::{folded_unless_same, values_sql, PARKED_PREFIX, ROWS};
use crate::sqlite::error::{db_err, is_unique_violation};
use crate::sqlite::json;
use sqlx::SqliteConnection;
use std::borrow::Cow;
use std::collections::HashMap;
use stead_core::model::{fold_case, random_id};
use stead_core::provision::CustomerPlan;
use stead_core::StoreError;
use stead_proto::TenantId;

/// Which columns an existing row takes from its entry: only those the entry
/// gives, so each combination is a statement of its own shape.
#[derive(Clone, Copy)]
struct Shape {
    set_id: bool,
    set_enabled: bool,
    set_groups: bool,
}

/// Upserts `customers`; returns how many rows were inserted or changed.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    customers: &[CustomerPlan],
) -> Result<u64, StoreError> {
    let mut state = State { tenant, plan: customers, plan_ids: None, parked: Vec::new() };
    let mut by_shape: [Vec<Entry>; 8] = Default::default();
    for c in customers {
        let entry = Entry { folded: folded_unless_same(&c.email), plan: c };
        let shape =
            usize::from(c.groups.is_some()) * 4 + usize::from(c.id.is_some()) * 2 + usize::from(c.enabled.is_some());
        by_shape[shape].push(entry);
    }
    let mut changed = 0;
    for (i, group) in by_shape.iter_mut().enumerate() {
        // In key order, rows land next to each other in the table.
        group.sort_unstable_by(|a, b| a.folded().cmp(b.folded()));
        let shape = Shape { set_groups: i / 4 == 1, set_id: (i / 2) % 2 == 1, set_enabled: i % 2 == 1 };
        for chunk in group.chunks(ROWS) {
            changed += match execute(conn, tenant, chunk, shape).await {
                Ok(n) => n,
                // The failed statement changed nothing; find the entry.
                Err(e) if is_unique_violation(&e) => {
                    let mut n = 0;
                    for entry in chunk {
                        n += upsert_one(conn, &mut state, entry, shape).await?;
                    }
                    n
                }
                Err(e) => return Err(db_err(e)),
            };
        }
    }
    state.check_parked(conn).await?;
    Ok(changed)
}

/// An entry of the file with its key.
struct Entry<'a> {
    /// The folded email, unless that is the email itself.
    folded: Option<String>,
    plan: &'a CustomerPlan,
}

impl Entry<'_> {
    fn folded(&self) -> &str {
        self.folded.as_deref().unwrap_or(&self.plan.email)
    }
}

struct State<'a> {
    tenant: &'a TenantId,
    plan: &'a [CustomerPlan],
    /// The ids the entries give, by folded email, built on the first conflict.
    plan_ids: Option<HashMap<String, &'a str>>,
    /// Folded emails of customers whose id was parked to let another entry take it.
    parked: Vec<String>,
}

impl State<'_> {
    fn label(&self, customer: &CustomerPlan) -> String {
        format!("tenant {:?} customer {:?}", self.tenant.as_str(), customer.email)
    }

    /// Whether this file gives the customer with this folded email an id
    /// other than `id` (in an entry not applied yet).
    fn renamed_by_plan(&mut self, email_folded: &str, id: &str) -> bool {
        let plan = self.plan;
        self.plan_ids
            .get_or_insert_with(|| plan.iter().filter_map(|c| Some((fold_case(&c.email), c.id.as_deref()?))).collect())
            .get(email_folded)
            .is_some_and(|planned| *planned != id)
    }

    /// Every parked customer must have been given its new id by its own entry.
    async fn check_parked(&self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        for email_folded in &self.parked {
            let still: Option<String> = sqlx::query_scalar(
                "SELECT email FROM customers WHERE tenant_id = ?1 AND email_folded = ?2 AND id = ?3 || email_folded",
            )
            .bind(self.tenant.as_str())
            .bind(email_folded)
            .bind(PARKED_PREFIX)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
            if let Some(email) = still {
                return Err(StoreError::Rejected(format!(
                    "tenant {:?} customer {email:?}: its id is claimed by another customer in the file",
                    self.tenant.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// One entry on its own. When the id it gives is held by another customer
/// whose entry in this file gives that customer a new id, the holder's id is
/// parked first.
async fn upsert_one(
    conn: &mut SqliteConnection,
    state: &mut State<'_>,
    entry: &Entry<'_>,
    shape: Shape,
) -> Result<u64, StoreError> {
    let customer = entry.plan;
    let one = std::slice::from_ref(entry);
    match execute(conn, state.tenant, one, shape).await {
        Ok(n) => return Ok(n),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(db_err(e)),
    }
    let Some(id) = customer.id.as_deref() else {
        // A generated id collided: vanishingly unlikely, and a retry fixes it.
        return Err(StoreError::Rejected(format!("{}: a generated id collided; try again", state.label(customer))));
    };
    let holder: Option<(String, String)> =
        sqlx::query_as("SELECT email_folded, email FROM customers WHERE tenant_id = ?1 AND id = ?2")
            .bind(state.tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let Some((holder_folded, holder_email)) = holder.filter(|(f, _)| f != entry.folded()) else {
        return Err(StoreError::Rejected(format!("{}: a uniqueness rule is broken", state.label(customer))));
    };
    if !state.renamed_by_plan(&holder_folded, id) {
        return Err(StoreError::Rejected(format!(
            "{}: customer id {id:?} is already used by customer {holder_email:?}",
            state.label(customer)
        )));
    }
    sqlx::query("UPDATE customers SET id = ?3 || email_folded WHERE tenant_id = ?1 AND email_folded = ?2")
        .bind(state.tenant.as_str())
        .bind(&holder_folded)
        .bind(PARKED_PREFIX)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    state.parked.push(holder_folded);
    execute(conn, state.tenant, one, shape).await.map_err(|e| match db_err(e) {
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", state.label(customer))),
        other => other,
    })
}

/// One multi-row upsert of `customers`, all of the same shape.
async fn execute(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    customers: &[Entry<'_>],
    shape: Shape,
) -> Result<u64, sqlx::Error> {
    let mut set = String::from("email = excluded.email");
    let mut differs = String::from("customers.email IS NOT excluded.email");
    if shape.set_id {
        set.push_str(", id = excluded.id");
        differs.push_str(" OR customers.id IS NOT excluded.id");
    }
    if shape.set_enabled {
        set.push_str(", enabled = excluded.enabled");
        differs.push_str(" OR customers.enabled IS NOT excluded.enabled");
    }
    if shape.set_groups {
        set.push_str(", groups = excluded.groups");
        differs.push_str(" OR customers.groups IS NOT excluded.groups");
    }
    // The tenant is bound once, not per row; a row's folded email is NULL
    // when it is the email itself (see `folded_unless_same`).
    let row =
        format!("(?, ?, ?{}{})", if shape.set_enabled { ", ?" } else { "" }, if shape.set_groups { ", ?" } else { "" });
    let head = format!(
        "INSERT INTO customers (tenant_id, email_folded, email, id, enabled, groups) \
         SELECT ?, COALESCE(column1, column2), column2, column3, {}, {} FROM (",
        if shape.set_enabled { "column4" } else { "1" },
        match (shape.set_groups, shape.set_enabled) {
            (false, _) => "'[]'",
            (true, false) => "column4",
            (true, true) => "column5",
        }
    );
    // `WHERE true` tells SQLite's parser that `ON CONFLICT` is no join's `ON`.
    let sql = values_sql(
        &head,
        &row,
        customers.len(),
        &format!(") WHERE true ON CONFLICT (tenant_id, email_folded) DO UPDATE SET {set} WHERE {differs}"),
    );
    // Entries without an id offer a fresh one, used only if the row is new.
    let ids: Vec<Cow<'_, str>> =
        customers.iter().map(|c| c.plan.id.as_deref().map_or_else(|| Cow::Owned(random_id()), Cow::Borrowed)).collect();
    let groups: Vec<Option<String>> = customers.iter().map(|c| c.plan.groups.as_deref().map(json::to_json)).collect();
    let mut query = sqlx::query(&sql).bind(tenant.as_str());
    for ((entry, id), groups) in customers.iter().zip(&ids).zip(&groups) {
        query = query.bind(entry.folded.as_deref()).bind(&entry.plan.email).bind(id.as_ref());
        if shape.set_enabled {
            query = query.bind(entry.plan.enabled);
        }
        if shape.set_groups {
            query = query.bind(groups.as_deref());
        }
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}
