//! `stead keys rotate`: replace a tenant's signing key now. The old key
//! stays in the JWKS until every token it signed has expired.

use super::config::FileConfig;
use super::storage::StorageArgs;
use anyhow::Context;
use std::process::ExitCode;
use stead_core::directory::rotate_key;

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCommand {
    /// Make a freshly generated key the tenant's signing key.
    Rotate {
        /// The tenant whose key to replace.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let KeysCommand::Rotate { tenant, storage } = args.command;
    let storage = storage.resolve(&FileConfig::load(storage.config.as_deref())?)?;
    let master = storage.master_key()?;
    let store = storage.open().await?;
    // A concurrent rotation by a server makes the compare-and-swap fail;
    // then look again and retry.
    for _ in 0..3 {
        let data = store.load_directory().await?;
        let t =
            data.tenants.iter().find(|t| t.id.as_str() == tenant).with_context(|| format!("no tenant {tenant:?}"))?;
        let active = data
            .keys
            .iter()
            .filter(|k| k.tenant == t.id && k.retired_at.is_none())
            .max_by_key(|k| k.created_at)
            .map(|k| k.kid.clone());
        if let Some(kid) = rotate_key(&*store, &master, &t.id, t.signing_alg, active.as_deref()).await? {
            println!("tenant {tenant}: new {} signing key {kid} is active", t.signing_alg.as_str());
            if let Some(old) = active {
                println!("the previous key {old} stays published until the tokens it signed expire");
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    anyhow::bail!("another process kept rotating the key of tenant {tenant}; try again")
}
