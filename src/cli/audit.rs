//! `stead audit`: query the audit trail as a table or as JSON lines.

use super::config::FileConfig;
use super::storage::StorageArgs;
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stead_core::{AuditFilter, Outcome};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long = "client", value_name = "ID")]
    client: Option<String>,
    /// The subject's stable id (user id or customer id).
    #[arg(long = "subject", value_name = "ID")]
    subject: Option<String>,
    /// From this time on: RFC 3339 (`2026-11-28T10:00:00Z`), Unix seconds,
    /// or a duration ago (`1h`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[arg(long, value_parser = ["issued", "refused"])]
    outcome: Option<String>,
    /// At most this many records.
    #[arg(long)]
    limit: Option<u64>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let storage = args.storage.resolve(&FileConfig::load(args.storage.config.as_deref())?)?;
    let filter = AuditFilter {
        tenant: args.tenant,
        client_id: args.client,
        subject_id: args.subject,
        since_ms: args.since.as_deref().map(parse_time).transpose()?,
        until_ms: args.until.as_deref().map(parse_time).transpose()?,
        outcome: args.outcome.as_deref().and_then(Outcome::parse),
        limit: args.limit,
    };
    let store = storage.open().await?;
    let records = store.query_audit(&filter).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &records {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        }
    } else {
        writeln!(
            out,
            "{:<24} {:<7} {:<16} {:<8} {:<24} {:<16} {:<24} DETAIL",
            "TIME", "OUTCOME", "TENANT", "REALM", "CLIENT", "SUBJECT", "SCOPES"
        )?;
        for r in &records {
            let detail = match r.outcome {
                Outcome::Issued => format!("jti={}", r.jti.as_deref().unwrap_or("")),
                Outcome::Refused => format!("error={}", r.error.as_deref().unwrap_or("")),
            };
            let scopes = r.granted_scope.as_deref().or(r.requested_scope.as_deref()).unwrap_or("-");
            writeln!(
                out,
                "{:<24} {:<7} {:<16} {:<8} {:<24} {:<16} {:<24} {} remote={} request={}",
                format_time(r.time_ms),
                r.outcome.as_str(),
                r.tenant,
                r.realm,
                r.client_id.as_deref().unwrap_or("-"),
                r.subject_id.as_deref().or(r.subject_given.as_deref()).unwrap_or("-"),
                scopes,
                detail,
                r.remote_addr.as_deref().unwrap_or("-"),
                r.request_id,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339, Unix seconds, or a duration before now; as Unix milliseconds.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs * 1000);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64);
    }
    let ago = humantime::parse_duration(text)
        .with_context(|| format!("invalid time {text:?}: use RFC 3339, Unix seconds, or a duration such as 1h"))?;
    Ok(stead_core::now_ms() - ago.as_millis() as i64)
}

fn format_time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t.min(SystemTime::now() + Duration::from_secs(86400 * 365 * 100))).to_string()
}
