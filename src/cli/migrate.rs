//! `stead migrate`: brings the database schema up to date and exits. Every
//! command that opens storage migrates too (on PostgreSQL under an advisory
//! lock, so replicas starting together do not race); running this first,
//! e.g. as a deployment step before replicas roll, keeps schema changes out
//! of server start-up.

use super::config::FileConfig;
use super::storage::StorageArgs;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let storage = args.storage.resolve(&FileConfig::load(args.storage.config.as_deref())?)?;
    println!("{}", storage.migrate().await?);
    Ok(ExitCode::SUCCESS)
}
