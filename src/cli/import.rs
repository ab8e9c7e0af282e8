//! `stead import FILE`: applies a provisioning file (SPEC §6).

use super::config::FileConfig;
use super::storage::StorageArgs;
use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use stead_core::directory::KeyPolicy;
use stead_core::{DirectoryHandle, SecretHasher};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The provisioning file (TOML); `-` reads standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let file = FileConfig::load(args.storage.config.as_deref())?;
    let storage = args.storage.resolve(&file)?;
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let master = storage.master_key()?;
    let hasher = SecretHasher::new(&master);
    let plan = stead_core::provision::parse(&text, &hasher)?;
    let store = storage.open().await?;
    let report = store.apply_provisioning(&plan).await.context("import refused; nothing was changed")?;
    // New tenants get their signing keys now rather than on the next
    // server start, so that start stays quick (an RSA key takes ~0.1 s).
    // Rotation stays the server's business (no rotation policy here).
    DirectoryHandle::load(store, master, KeyPolicy { rotation_period: None }).await.context(
        "the file was imported, but signing keys could not be created; the server creates them when it starts",
    )?;
    println!(
        "imported {}: {} tenants, {} scopes, {} clients, {} users, {} customers",
        args.file.display(),
        report.tenants,
        report.scopes,
        report.clients,
        report.users,
        report.customers
    );
    Ok(ExitCode::SUCCESS)
}
