//! Upserting a tenant's users, keyed by id; usernames stay unique per
//! tenant case-insensitively.

use super::batch::{values_sql, PARKED_PREFIX, ROWS};
use crate::sqlite::error::{db_err, is_unique_violation};
use sqlx::SqliteConnection;
use std::collections::HashMap;
use stead_core::model::fold_case;
use stead_core::provision::UserPlan;
use stead_core::StoreError;
use stead_proto::TenantId;

/// Upserts `users`; returns how many rows were inserted or changed.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    users: &[UserPlan],
) -> Result<u64, StoreError> {
    let mut state = State { tenant, plan: users, plan_usernames: None, parked: Vec::new() };
    // `enabled` left out keeps the stored value, which needs a statement of
    // its own shape. Each group goes in key order, so rows land next to each
    // other in the table instead of all over it.
    let (with_enabled, without_enabled): (Vec<&UserPlan>, Vec<&UserPlan>) =
        users.iter().partition(|u| u.enabled.is_some());
    let mut changed = 0;
    for (mut group, set_enabled) in [(with_enabled, true), (without_enabled, false)] {
        group.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        for chunk in group.chunks(ROWS) {
            changed += match execute(conn, tenant, chunk, set_enabled).await {
                Ok(n) => n,
                // The failed statement changed nothing; find the entry.
                Err(e) if is_unique_violation(&e) => {
                    let mut n = 0;
                    for user in chunk {
                        n += upsert_one(conn, &mut state, user, set_enabled).await?;
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
    set_enabled: bool,
) -> Result<u64, StoreError> {
    match execute(conn, state.tenant, &[user], set_enabled).await {
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
    execute(conn, state.tenant, &[user], set_enabled).await.map_err(|e| match db_err(e) {
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", state.label(user))),
        other => other,
    })
}

/// One multi-row upsert of `users`.
async fn execute(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    users: &[&UserPlan],
    set_enabled: bool,
) -> Result<u64, sqlx::Error> {
    let (row, enabled_set, enabled_changed) = if set_enabled {
        ("(?, ?, ?, ?, ?, ?)", ", enabled = excluded.enabled", " OR users.enabled IS NOT excluded.enabled")
    } else {
        ("(?, ?, ?, ?, ?, 1)", "", "")
    };
    let sql = values_sql(
        "INSERT INTO users (tenant_id, id, username, username_folded, email, enabled)",
        row,
        users.len(),
        &format!(
            "ON CONFLICT (tenant_id, id) DO UPDATE SET \
                 username = excluded.username, \
                 username_folded = excluded.username_folded, \
                 email = COALESCE(excluded.email, users.email){enabled_set} \
             WHERE users.username IS NOT excluded.username \
                OR users.username_folded IS NOT excluded.username_folded \
                OR users.email IS NOT COALESCE(excluded.email, users.email){enabled_changed}"
        ),
    );
    let folded: Vec<String> = users.iter().map(|u| fold_case(&u.username)).collect();
    let mut query = sqlx::query(&sql);
    for (user, folded) in users.iter().zip(&folded) {
        query =
            query.bind(tenant.as_str()).bind(&user.id).bind(&user.username).bind(folded).bind(user.email.as_deref());
        if set_enabled {
            query = query.bind(user.enabled);
        }
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}
