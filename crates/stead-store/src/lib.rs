//! Storage backends for stead: implementations of [`stead_core::Store`].
//!
//! [`SqliteStore`] is the embedded database a single binary runs with;
//! [`PgStore`] lets several stateless replicas share one PostgreSQL (or
//! PostgreSQL-compatible) database. Both give the same behaviour; nothing
//! above the `Store` trait knows which one runs.

pub mod postgres;
mod rows;
pub mod sqlite;

pub use postgres::{PgOptions, PgStore};
pub use sqlite::SqliteStore;
