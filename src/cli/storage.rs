//! Storage flags shared by every command that touches storage, and opening
//! the store and the master key they name.

use super::config::FileConfig;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use stead_core::{MasterKey, Store};

#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// Directory holding the embedded SQLite database and, unless
    /// STEAD_MASTER_KEY or --master-key-file is given, the master key
    /// [default: ./stead-data]
    #[arg(long, env = "STEAD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL. `postgres://…` selects PostgreSQL; `sqlite://PATH`
    /// an SQLite file elsewhere than the data directory.
    #[arg(long, env = "STEAD_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// File holding the master key (32 bytes as base64 or hex) that
    /// protects client secrets and signing keys; created if missing. The key
    /// itself can instead be given in STEAD_MASTER_KEY. Default:
    /// DATA_DIR/master.key
    #[arg(long, env = "STEAD_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,

    /// TOML configuration file; flags and STEAD_* variables override it.
    #[arg(long, env = "STEAD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Storage settings after precedence is applied.
#[derive(Debug, Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
}

impl StorageArgs {
    pub fn resolve(&self, file: &FileConfig) -> Storage {
        Storage {
            data_dir: self.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| "stead-data".into()),
            database_url: self.database_url.clone().or_else(|| file.database_url.clone()),
            master_key_file: self.master_key_file.clone().or_else(|| file.master_key_file.clone()),
        }
    }
}

impl Storage {
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let path = match self.database_url.as_deref() {
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("cannot create data directory {}", self.data_dir.display()))?;
                self.data_dir.join("stead.db")
            }
            Some(url) if url.starts_with("sqlite://") || url.starts_with("sqlite:") => {
                PathBuf::from(url.trim_start_matches("sqlite://").trim_start_matches("sqlite:"))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                bail!("PostgreSQL storage is not available in this build of stead; use the embedded SQLite storage")
            }
            Some(_) => bail!("--database-url must start with postgres:// or sqlite://"),
        };
        let store = stead_store::SqliteStore::open(&path)
            .await
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        Ok(Arc::new(store))
    }

    /// STEAD_MASTER_KEY, else the key file (created on first use).
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Ok(text) = std::env::var("STEAD_MASTER_KEY") {
            return MasterKey::parse(&text).context("STEAD_MASTER_KEY");
        }
        let path = self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"));
        Ok(MasterKey::load_or_create(&path)?)
    }
}
