//! Keeps the in-memory directory current: a change made by `stead import`
//! or another server is honoured within a second (SPEC §6).

use std::sync::Arc;
use std::time::Duration;
use stead_core::DirectoryHandle;

/// How often storage is asked whether anything changed. A poll is one
/// indexed single-row read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub fn spawn_refresh(directory: Arc<DirectoryHandle>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match directory.refresh_if_changed().await {
                Ok(changed) => {
                    if failing {
                        tracing::info!("storage reachable again");
                        failing = false;
                    }
                    if changed {
                        tracing::info!(version = directory.get().version, "directory reloaded");
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cannot refresh the directory; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    })
}

/// How often expired keys, revocations and audit records are pruned.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Prunes what has expired: retired keys no token needs, revocations of
/// expired tokens, audit records past `audit_retention`.
pub fn spawn_maintenance(
    directory: Arc<DirectoryHandle>,
    store: Arc<dyn stead_core::Store>,
    audit_retention: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = directory.prune().await {
                tracing::warn!(error = %e, "pruning keys and revocations failed");
            }
            if let Some(retention) = audit_retention {
                let before = stead_core::now_ms() - retention.as_millis() as i64;
                match store.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, "pruned audit records past retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning audit records failed"),
                }
            }
        }
    })
}
