//! Group lists, stored as JSON arrays of strings in TEXT columns.

use super::error::{corrupt, db_err};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use stead_core::StoreError;

/// The stored form of a group list. The same list always gives the same
/// text, so an upsert can compare it with `IS NOT`.
pub(super) fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serializes")
}

/// A list column (`NOT NULL`).
pub(super) fn groups(row: &SqliteRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = row.try_get(column).map_err(db_err)?;
    parse(&text, column)
}

/// A list column where `NULL` means "not set".
pub(super) fn optional_groups(row: &SqliteRow, column: &str) -> Result<Option<Vec<String>>, StoreError> {
    let text: Option<String> = row.try_get(column).map_err(db_err)?;
    text.map(|t| parse(&t, column)).transpose()
}

pub(super) fn parse(text: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(format!("{column}: {text:?} is not a list of strings")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        let list = vec!["a".to_string(), "b \"c\"".to_string(), "ü".to_string()];
        assert_eq!(super::parse(&super::to_json(&list), "x").unwrap(), list);
        assert_eq!(super::to_json(&[]), "[]");
        assert!(super::parse("{}", "x").is_err());
    }
}
