//! Configuration: one typed struct per command, filled with explicit
//! precedence defaults ← `--config` file ← `STEAD_*` environment ← flags.
//! clap resolves environment and flags (flags win); the file fills what
//! neither gave.

use anyhow::Context;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `--config` file. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_pool_size: Option<u32>,
    pub master_key_file: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub key_rotation: Option<String>,
    pub audit_retention: Option<String>,
    // Abuse resistance and TLS (`stead serve`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub trust_proxy_headers: Option<bool>,
    pub auth_failure_window: Option<String>,
    pub max_auth_failures_per_source: Option<Limit>,
    pub max_auth_failures_per_client_and_source: Option<Limit>,
    pub max_auth_failures_per_client: Option<Limit>,
    pub max_concurrent_requests: Option<Limit>,
    pub max_requests_per_second: Option<Limit>,
    pub max_connections: Option<Limit>,
    pub header_read_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub idle_timeout: Option<String>,
}

/// A bound in the file: a number, or `"off"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Limit {
    Number(u64),
    Text(String),
}

impl Limit {
    /// As it would be written on the command line.
    pub fn to_text(&self) -> String {
        match self {
            Limit::Number(n) => n.to_string(),
            Limit::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}
