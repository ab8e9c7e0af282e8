//! `stead serve`: open storage, load the directory, listen, and shut down
//! gracefully on SIGTERM or SIGINT.

use super::config::{FileConfig, LogFormat};
use super::storage::StorageArgs;
use super::{demo, logging};
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use stead_core::{DirectoryHandle, SecretHasher, TokenService};
use stead_server::AppState;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "STEAD_LISTEN", value_name = "ADDR")]
    listen: Option<String>,

    /// Public base URL of this server, used in issuers and metadata
    /// [default: http://LISTEN, or http://localhost:PORT on a wildcard address]
    #[arg(long, env = "STEAD_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Log format [default: text]
    #[arg(long, env = "STEAD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `stead=debug` [default: info]
    #[arg(long, env = "STEAD_LOG", value_name = "FILTER")]
    log_level: Option<String>,

    /// Provision the seed document's demo tenant, client, user and customer,
    /// and print ready-to-paste curl commands.
    #[arg(long)]
    demo: bool,

    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = FileConfig::load(args.storage.config.as_deref())?;
    let log_format = args.log_format.or(file.log_format).unwrap_or_default();
    let log_level = args.log_level.clone().or(file.log_level.clone()).unwrap_or_else(|| "info".into());
    logging::init(log_format, &log_level);

    let storage = args.storage.resolve(&file);
    let listen = args.listen.clone().or(file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let public_url = args.public_url.clone().or(file.public_url.clone());

    let master = storage.master_key()?;
    let store = storage.open().await?;
    let hasher = SecretHasher::new(&master);
    let demo_secret = if args.demo { Some(demo::provision(&*store, &hasher, &storage.data_dir).await?) } else { None };

    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let base_url = public_url.map(|u| u.trim_end_matches('/').to_owned()).unwrap_or_else(|| default_base_url(local));

    let directory = Arc::new(DirectoryHandle::load(store.clone(), master).await.context("cannot load the directory")?);
    let service = Arc::new(TokenService::new(directory.clone(), store.clone(), hasher, base_url.clone()));
    let refresher = stead_server::spawn_refresh(directory);

    tracing::info!(listen = %local, base_url = %base_url, "stead listening");
    println!("stead listening on http://{local} (public URL {base_url})");
    if let Some(secret) = &demo_secret {
        demo::print_instructions(&base_url, secret, &storage.data_dir);
    }

    stead_server::serve(listener, AppState { service, store }, shutdown_signal()).await?;
    refresher.abort();
    tracing::info!("stead stopped");
    Ok(ExitCode::SUCCESS)
}

/// SPEC §1: `http://{listen}`, or `http://localhost:{port}` with a warning
/// when listening on a wildcard address.
fn default_base_url(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        tracing::warn!(
            "listening on a wildcard address without --public-url; issuers will use http://localhost:{}",
            local.port()
        );
        format!("http://localhost:{}", local.port())
    } else {
        format!("http://{local}")
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
