//! Multi-row upserts for subjects.

/// Rows per statement: enough to amortise the cost of a statement (and of
/// its trip to sqlx's connection thread), far below SQLite's limit of
/// 32766 bound parameters.
pub(super) const ROWS: usize = 1024;

/// `{head} VALUES {row}, {row}, … {tail}` with `n` rows.
///
/// Parameters must be anonymous (`?`): for a numbered one (`?7`) sqlx asks
/// SQLite its name, a linear search, which makes binding a statement of
/// thousands of parameters quadratic.
pub(super) fn values_sql(head: &str, row: &str, n: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + 8 + n * (row.len() + 2));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// `fold_case(s)`, or `None` when that is `s` itself, as for most usernames
/// and emails: the statement then takes the folded key from `s`
/// (`COALESCE(folded, s)`), which saves copying it.
pub(super) fn folded_unless_same(s: &str) -> Option<String> {
    let same = s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
    (!same).then(|| stead_core::model::fold_case(s))
}

/// The placeholder key parked on a row whose unique value another entry of
/// the same file takes over before the row's own entry gives it a new one
/// (two users swapping usernames, say). Real values never start with a
/// control character: the provisioning file refuses them.
pub(super) const PARKED_PREFIX: &str = "\u{1}";

#[cfg(test)]
mod tests {
    #[test]
    fn builds_values_lists() {
        assert_eq!(
            super::values_sql("INSERT INTO t (a)", "(?)", 3, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a) VALUES (?), (?), (?) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn folds_only_what_needs_it() {
        assert_eq!(super::folded_unless_same("user.1"), None);
        assert_eq!(super::folded_unless_same("User.1").as_deref(), Some("user.1"));
        assert_eq!(super::folded_unless_same("Ünï").as_deref(), Some("ünï"));
    }
}
