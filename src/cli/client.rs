//! `stead client rotate-secret` and `stead client revoke-secret`: secret
//! rotation with an overlap during which both secrets work.

use super::config::FileConfig;
use super::storage::StorageArgs;
use anyhow::Context;
use std::process::ExitCode;
use stead_core::{ClientSecret, SecretHasher};
use stead_proto::TenantId;

#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ClientCommand {
    /// Give a client a new secret, printed once; the old one keeps working
    /// for --keep-old-for.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        #[arg(long = "client", value_name = "ID")]
        client: String,
        /// How long the previous secret stays valid (e.g. `24h`, `7d`, `0s`).
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        keep_old_for: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// End the overlap now: every secret of the client but the newest stops
    /// working.
    RevokeSecret {
        #[arg(long)]
        tenant: String,
        #[arg(long = "client", value_name = "ID")]
        client: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

pub async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClientCommand::RotateSecret { tenant, client, keep_old_for, storage } => {
            let keep = humantime::parse_duration(&keep_old_for)
                .with_context(|| format!("invalid --keep-old-for {keep_old_for:?}: use e.g. 24h or 0s"))?;
            let tenant = tenant_id(&tenant)?;
            let storage = storage.resolve(&FileConfig::load(storage.config.as_deref())?)?;
            let hasher = SecretHasher::new(&storage.master_key()?);
            let store = storage.open().await?;
            let secret = stead_core::secret::generate_secret();
            let now = stead_core::now();
            let new = ClientSecret::new(hasher.hash(&secret), now);
            store.rotate_client_secret(&tenant, &client, &new, now + keep.as_secs() as i64).await?;
            println!("{secret}");
            eprintln!(
                "new secret for client {client} of tenant {tenant} printed above; it is not stored and will not be \
                 shown again. The previous secret works for {}.",
                humantime::format_duration(keep)
            );
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::RevokeSecret { tenant, client, storage } => {
            let tenant = tenant_id(&tenant)?;
            let storage = storage.resolve(&FileConfig::load(storage.config.as_deref())?)?;
            let store = storage.open().await?;
            let n = store.revoke_old_client_secrets(&tenant, &client).await?;
            println!("revoked {n} old secret(s) of client {client}; only the newest works now");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn tenant_id(s: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(s).with_context(|| format!("tenant id {s:?} must match [A-Za-z0-9_]{{1,64}}"))
}
