//! The audit trail: every token request, issued or refused, is recorded.
//! An issued token is returned only after its record is committed; records
//! from concurrent requests share one transaction (group commit), so
//! durability costs one commit per batch, not per token.
//!
//! A record is acknowledged twice: once its batch is sealed and handed to
//! storage, and once the batch is committed. The token service signs in
//! between, so the signatures of a batch are computed while its commit
//! syncs rather than before the commit starts.

use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Issued,
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issued" => Some(Outcome::Issued),
            "refused" => Some(Outcome::Refused),
            _ => None,
        }
    }
}

/// One token request as recorded. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub tenant: String,
    /// `user` or `customer`.
    pub realm: String,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    /// The identifier the caller gave: username, user id or email.
    pub subject_given: Option<String>,
    pub requested_scope: Option<String>,
    pub granted_scope: Option<String>,
    pub jti: Option<String>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub remote_addr: Option<String>,
    pub request_id: String,
}

/// Which records `stead audit` asks for; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub outcome: Option<Outcome>,
    pub limit: Option<u64>,
}

/// Records longer than this in a caller-supplied field are cut, so a
/// hostile request cannot bloat the trail.
const MAX_FIELD: usize = 512;

pub fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_FIELD).collect()
}

/// What the writer tells the request that sent a record: first that the
/// record's batch is on its way to storage, then whether it was committed.
struct Acks {
    sealed: oneshot::Sender<()>,
    durable: oneshot::Sender<Result<(), String>>,
}

/// Most records committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Most scheduler rounds a commit waits for ready requests to add records.
const READY_ROUNDS: usize = 4;

/// Handle to the group-commit writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<(AuditRecord, Acks)>,
}

/// A record handed to the writer, not yet known to be committed.
pub struct PendingRecord {
    sealed: oneshot::Receiver<()>,
    durable: oneshot::Receiver<Result<(), String>>,
}

impl PendingRecord {
    /// Resolves once the batch holding the record has been handed to
    /// storage (or the writer has stopped). Work done after this overlaps
    /// the commit and its sync instead of running before them.
    pub async fn sealed(&mut self) {
        let _ = (&mut self.sealed).await;
    }

    /// Resolves once the record is durably committed.
    pub async fn durable(self) -> Result<(), StoreError> {
        match self.durable.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(stopped()),
        }
    }
}

impl AuditLog {
    /// Starts the writer task on `store`.
    pub fn start(store: Arc<dyn Store>) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16 * 1024);
        let task = tokio::spawn(writer(store, rx));
        (AuditLog { tx }, task)
    }

    /// Hands `record` to the writer; the returned value says when it is
    /// on its way to storage and when it is committed.
    pub async fn submit(&self, record: AuditRecord) -> Result<PendingRecord, StoreError> {
        let (sealed, sealed_rx) = oneshot::channel();
        let (durable, durable_rx) = oneshot::channel();
        self.tx.send((record, Acks { sealed, durable })).await.map_err(|_| stopped())?;
        Ok(PendingRecord { sealed: sealed_rx, durable: durable_rx })
    }

    /// Resolves once `record` is durably committed.
    pub async fn record(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.submit(record).await?.durable().await
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the audit writer has stopped".into())
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(AuditRecord, Acks)>) {
    let mut records = Vec::with_capacity(MAX_BATCH);
    let mut acks = Vec::with_capacity(MAX_BATCH);
    let mut durable = Vec::with_capacity(MAX_BATCH);
    // Take whatever is queued after the first record: under load batches
    // grow by themselves; when idle a record commits alone, without delay.
    while let Some((record, ack)) = rx.recv().await {
        records.push(record);
        acks.push(ack);
        drain(&mut rx, &mut records, &mut acks);
        // Before committing, let the requests that are ready to run reach
        // their own record: on a busy core their records join this commit
        // instead of paying for a later one (RS256 under load: a third as
        // many commits, +21 % tokens/s; see BENCHMARKS.md). When no
        // other task is ready, or a round brought nothing, the commit starts
        // at once, so an idle server answers as fast as before.
        for _ in 0..READY_ROUNDS {
            if records.len() >= MAX_BATCH {
                break;
            }
            tokio::task::yield_now().await;
            let before = records.len();
            drain(&mut rx, &mut records, &mut acks);
            if records.len() == before {
                break;
            }
        }
        let count = records.len();
        // The batch is sealed: its requests may go on (sign their tokens)
        // while it commits. They run once this task yields, which it does
        // only after `append_audit` has handed the batch to storage.
        for Acks { sealed, durable: ack } in acks.drain(..) {
            let _ = sealed.send(());
            durable.push(ack);
        }
        let result = store.append_audit(std::mem::take(&mut records)).await.map_err(|e| {
            tracing::error!(error = %e, records = count, "audit records not committed");
            e.to_string()
        });
        for ack in durable.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}

fn drain(rx: &mut mpsc::Receiver<(AuditRecord, Acks)>, records: &mut Vec<AuditRecord>, acks: &mut Vec<Acks>) {
    while records.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok((record, ack)) => {
                records.push(record);
                acks.push(ack);
            }
            Err(_) => break,
        }
    }
}
