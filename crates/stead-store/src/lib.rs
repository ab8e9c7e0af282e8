//! Storage backends for stead: implementations of [`stead_core::Store`].
//!
//! [`SqliteStore`] is the embedded database a single binary runs with; a
//! PostgreSQL backend can sit beside it in its own module.

pub mod sqlite;

pub use sqlite::SqliteStore;
