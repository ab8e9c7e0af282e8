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
