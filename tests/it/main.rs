//! Integration tests: the real `stead` binary, real SQLite files in temp
//! directories, driven over TCP on 127.0.0.1; all of them again on
//! PostgreSQL (see `postgres.rs`).

mod harness;

mod abuse;
mod cli;
mod governance;
mod hostile;
mod import;
mod lifecycle;
mod metadata;
mod postgres;
mod replicas;
mod sdk;
mod tls;
mod token;
