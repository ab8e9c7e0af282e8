//! Command-line wiring: each subcommand parses its flags and calls into the
//! library crates. No business logic lives here.

mod audit;
mod client;
mod config;
mod demo;
mod import;
mod keys;
mod logging;
mod migrate;
mod serve;
mod storage;
mod token;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// stead: an OAuth 2.0 authorization server that issues access tokens on
/// behalf of users and customers to server-side applications.
#[derive(Parser, Debug)]
#[command(name = "stead", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the authorization server.
    Serve(serve::ServeArgs),
    /// Apply a provisioning file (TOML) to storage, transactionally.
    Import(import::ImportArgs),
    /// Request a token from stead or any compatible server and print it.
    Token(token::TokenArgs),
    /// Client secrets: rotate with overlap, revoke old ones.
    Client(client::ClientArgs),
    /// Signing keys: rotate a tenant's key.
    Keys(keys::KeysArgs),
    /// Query the audit trail of token requests.
    Audit(audit::AuditArgs),
    /// Bring the database schema up to date and exit.
    Migrate(migrate::MigrateArgs),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Token(args) => token::run(args).await,
            Command::Client(args) => client::run(args).await,
            Command::Keys(args) => keys::run(args).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
        }
    }
}
