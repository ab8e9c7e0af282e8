//! Integration tests: the real `stead` binary, real SQLite files in temp
//! directories, driven over TCP on 127.0.0.1.

mod harness;

mod abuse;
mod cli;
mod governance;
mod hostile;
mod import;
mod lifecycle;
mod metadata;
mod tls;
mod token;
