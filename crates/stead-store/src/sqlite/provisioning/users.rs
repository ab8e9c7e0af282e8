//! Upserting a tenant's users, keyed by id; usernames stay unique per
//! tenant case-insensitively.

use super::batch::{folded_unless_same, values_sql, PARKED_PREFIX, ROWS};
use crate::sqlite::error::{db_err, is_unique_violation};
use crate::sqlite::json;
use sqlx::SqliteConnection;
use std::collections::HashMap;
use stead_core::model::fold_case;
use stead_core::provision::UserPlan;
use stead_core::StoreError;
use stead_proto::TenantId;

/// Which optional columns an existing row takes from its entry: only those
/// the entry gives, so each combination is a statement of its own shape.
#[derive(Clone, Copy)]
struct Shape {
    set_enabled: bool,
    set_groups: bool,
}

/// Upserts `users`; returns how many rows were inserted or changed.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    users: &[UserPlan],
) -> Result<u64, StoreError> {
    let mut state = State { tenant, plan: users, plan_usernames: None, parked: Vec::new() };
    let mut by_shape: [Vec<&UserPlan>; 4] = Default::default();
    for u in users {
        by_shape[usize::from(u.groups.is_some()) * 2 + usize::from(u.enabled.is_some())].push(u);
    }
    let mut changed = 0;
    for (i, group) in by_shape.iter_mut().enumerate() {
        // In username order, rows land next to each other in the two
        // username indexes instead of all over them.
        group.sort_by_cached_key(|u| fold_case(&u.username));
        let shape = Shape { set_groups: i / 2 == 1, set_enabled: i % 2 == 1 };
        for chunk in group.chunks(ROWS) {
            changed += match execute(conn, tenant, chunk, shape).await {
                Ok(n) => n,
                // The failed statement changed nothing; find the entry.
                Err(e) if is_unique_violation(&e) => {
                    let mut n = 0;
                    for user in chunk {
                        n += upsert_one(conn, &mut state, user, shape).await?;
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

struct State<'a> {
    tenant: &'a TenantId,
    plan: &'a [UserPlan],
    /// Folded usernames of `plan` by user id, built on the first conflict.
    plan_usernames: Option<HashMap<&'a str, String>>,
    /// Users whose username was parked to let another entry take it.
    parked: Vec<String>,
}

impl State<'_> {
    fn label(&self, user: &UserPlan) -> String {
        format!("tenant {:?} user {:?}", self.tenant.as_str(), user.id)
    }

    /// Whether this file gives user `id` a username other than `folded`
    /// (one whose entry has not been applied yet).
    fn renamed_by_plan(&mut self, id: &str, folded: &str) -> bool {
        let plan = self.plan;
        self.plan_usernames
            .get_or_insert_with(|| plan.iter().map(|u| (u.id.as_str(), fold_case(&u.username))).collect())
            .get(id)
            .is_some_and(|planned| planned != folded)
    }

    /// Every parked user must have been given its new username by its own
    /// entry; one still parked means two entries wanted the same username.
    async fn check_parked(&self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        for id in &self.parked {
            let still: Option<String> = sqlx::query_scalar(
                "SELECT username FROM users WHERE tenant_id = ?1 AND id = ?2 AND username_folded = ?3 || id",
            )
            .bind(self.tenant.as_str())
            .bind(id)
            .bind(PARKED_PREFIX)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
            if let Some(username) = still {
                return Err(StoreError::Rejected(format!(
                    "tenant {:?} user {id:?}: username {username:?} is claimed by another user in the file",
                    self.tenant.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// One entry on its own. When its username is held by another user that
/// this file renames further on, the holder's username is parked first.
async fn upsert_one(
    conn: &mut SqliteConnection,
    state: &mut State<'_>,
    user: &UserPlan,
    shape: Shape,
) -> Result<u64, StoreError> {
    match execute(conn, state.tenant, &[user], shape).await {
        Ok(n) => return Ok(n),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(db_err(e)),
    }
    let folded = fold_case(&user.username);
    let holder: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = ?1 AND username_folded = ?2")
            .bind(state.tenant.as_str())
            .bind(&folded)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let Some(holder) = holder.filter(|h| *h != user.id) else {
        return Err(StoreError::Rejected(format!("{}: a uniqueness rule is broken", state.label(user))));
    };
    if !state.renamed_by_plan(&holder, &folded) {
        return Err(StoreError::Rejected(format!(
            "{}: username {:?} is already used by user {holder:?}",
            state.label(user),
            user.username
        )));
    }
    sqlx::query("UPDATE users SET username_folded = ?3 || id WHERE tenant_id = ?1 AND id = ?2")
        .bind(state.tenant.as_str())
        .bind(&holder)
        .bind(PARKED_PREFIX)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    state.parked.push(holder);
    execute(conn, state.tenant, &[user], shape).await.map_err(|e| match db_err(e) {
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", state.label(user))),
        other => other,
    })
}

/// One multi-row upsert of `users`, all of the same shape.
async fn execute(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    users: &[&UserPlan],
    shape: Shape,
) -> Result<u64, sqlx::Error> {
    let mut set = String::from(
        "username = excluded.username, username_folded = excluded.username_folded, \
         email = COALESCE(excluded.email, users.email)",
    );
    let mut differs = String::from(
        "users.username IS NOT excluded.username OR users.username_folded IS NOT excluded.username_folded \
         OR users.email IS NOT COALESCE(excluded.email, users.email)",
    );
    if shape.set_enabled {
        set.push_str(", enabled = excluded.enabled");
        differs.push_str(" OR users.enabled IS NOT excluded.enabled");
    }
    if shape.set_groups {
        set.push_str(", groups = excluded.groups");
        differs.push_str(" OR users.groups IS NOT excluded.groups");
    }
    // The tenant is bound once, not per row; a row's folded username is
    // NULL when it is the username itself (see `folded_unless_same`).
    let row = format!(
        "(?, ?, ?, ?{}{})",
        if shape.set_enabled { ", ?" } else { "" },
        if shape.set_groups { ", ?" } else { "" }
    );
    let head = format!(
        "INSERT INTO users (tenant_id, id, username, username_folded, email, enabled, groups) \
         SELECT ?, column1, column2, COALESCE(column3, column2), column4, {}, {} FROM (",
        if shape.set_enabled { "column5" } else { "1" },
        match (shape.set_groups, shape.set_enabled) {
            (false, _) => "'[]'",
            (true, false) => "column5",
            (true, true) => "column6",
        }
    );
    // `WHERE true` tells SQLite's parser that `ON CONFLICT` is no join's `ON`.
    let sql = values_sql(
        &head,
        &row,
        users.len(),
        &format!(") WHERE true ON CONFLICT (tenant_id, id) DO UPDATE SET {set} WHERE {differs}"),
    );
    let folded: Vec<Option<String>> = users.iter().map(|u| folded_unless_same(&u.username)).collect();
    let groups: Vec<Option<String>> = users.iter().map(|u| u.groups.as_deref().map(json::to_json)).collect();
    let mut query = sqlx::query(&sql).bind(tenant.as_str());
    for ((user, folded), groups) in users.iter().zip(&folded).zip(&groups) {
        query = query.bind(&user.id).bind(&user.username).bind(folded.as_deref()).bind(user.email.as_deref());
        if shape.set_enabled {
            query = query.bind(user.enabled);
        }
        if shape.set_groups {
            query = query.bind(groups.as_deref());
        }
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}
