//! Group lists, stored as JSONB arrays of strings. Written from their JSON
//! text (`$n::jsonb`) and read back as text (`column::text`).

use super::error::{corrupt, db_err};
use sqlx::postgres::PgRow;
use sqlx::Row;
use stead_core::StoreError;

/// The JSON text of a group list.
pub(super) fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serializes")
}

/// A list column (`NOT NULL`), selected as `column::text AS column`.
pub(super) fn groups(row: &PgRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = row.try_get(column).map_err(db_err)?;
    parse(&text, column)
}

/// A list column where `NULL` means "not set".
pub(super) fn optional_groups(row: &PgRow, column: &str) -> Result<Option<Vec<String>>, StoreError> {
    let text: Option<String> = row.try_get(column).map_err(db_err)?;
    text.map(|t| parse(&t, column)).transpose()
}

fn parse(text: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(format!("{column}: {text:?} is not a list of strings")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        let list = vec!["a".to_string(), "b \"c\"".to_string(), "ü".to_string()];
        assert_eq!(super::parse(&super::to_json(&list), "x").unwrap(), list);
        // JSONB's own text form parses the same.
        assert_eq!(super::parse("[\"a\", \"b \\\"c\\\"\", \"ü\"]", "x").unwrap(), list);
        assert!(super::parse("{}", "x").is_err());
    }
}
