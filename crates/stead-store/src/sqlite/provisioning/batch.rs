//! Multi-row upserts for subjects.

/// Rows per statement: enough to amortise the cost of a statement, far
/// below SQLite's limit of 32766 bound parameters.
pub(super) const ROWS: usize = 256;

/// `{head} VALUES {row}, {row}, … {tail}` with `n` rows.
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
}
