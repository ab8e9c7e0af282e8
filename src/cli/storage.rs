//! Storage flags shared by every command that touches storage, and opening
//! the store and the master key they name.

use super::config::FileConfig;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use stead_core::{MasterKey, Store};
use stead_store::{PgOptions, PgStore, SqliteStore};

/// Most PostgreSQL connections per process `--database-pool-size` accepts.
const MAX_POOL_SIZE: u32 = 1000;

#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// Directory holding the embedded SQLite database and, unless
    /// STEAD_MASTER_KEY or --master-key-file is given, the master key
    /// [default: ./stead-data]
    #[arg(long, env = "STEAD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL. `postgres://…` selects PostgreSQL (several replicas
    /// can share it; every one of them, and `stead import`, must use the
    /// same master key); `sqlite://PATH` an SQLite file elsewhere than the
    /// data directory.
    #[arg(long, env = "STEAD_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// PostgreSQL: most connections for the token path and writes, per
    /// process (two more serve change polls and readiness) [default: 10]
    #[arg(long, env = "STEAD_DATABASE_POOL_SIZE", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_POOL_SIZE as i64))]
    pub database_pool_size: Option<u32>,

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
    pub database_pool_size: Option<u32>,
    pub master_key_file: Option<PathBuf>,
}

impl StorageArgs {
    pub fn resolve(&self, file: &FileConfig) -> anyhow::Result<Storage> {
        let database_pool_size = self.database_pool_size.or(file.database_pool_size);
        if let Some(n) = database_pool_size.filter(|n| !(1..=MAX_POOL_SIZE).contains(n)) {
            bail!("database_pool_size {n} in the config file is not between 1 and {MAX_POOL_SIZE}");
        }
        Ok(Storage {
            data_dir: self.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| "stead-data".into()),
            database_url: self.database_url.clone().or_else(|| file.database_url.clone()),
            database_pool_size,
            master_key_file: self.master_key_file.clone().or_else(|| file.master_key_file.clone()),
        })
    }
}

/// Where the database is.
enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Storage {
    fn backend(&self) -> anyhow::Result<Backend> {
        Ok(match self.database_url.as_deref() {
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("cannot create data directory {}", self.data_dir.display()))?;
                Backend::Sqlite(self.data_dir.join(stead_store::sqlite::DB_FILE_NAME))
            }
            Some(url) if url.starts_with("sqlite://") || url.starts_with("sqlite:") => {
                Backend::Sqlite(PathBuf::from(url.trim_start_matches("sqlite://").trim_start_matches("sqlite:")))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Backend::Postgres(url.to_owned())
            }
            Some(_) => bail!("--database-url must start with postgres:// or sqlite://"),
        })
    }

    /// Opens the store, bringing its schema up to date (on PostgreSQL under
    /// an advisory lock, so replicas starting together do not race).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_as(Role::Tool).await
    }

    /// Opens the store for `stead serve`: with SQLite, the server indexes
    /// audit records when idle (no other command does, so that a command run
    /// beside a busy server never competes with its commits).
    pub async fn open_for_serving(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_as(Role::Server).await
    }

    async fn open_as(&self, role: Role) -> anyhow::Result<Arc<dyn Store>> {
        match self.backend()? {
            Backend::Sqlite(path) => {
                let store = SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("cannot open the database {}", path.display()))?;
                if role == Role::Server {
                    store.index_audit_when_idle();
                }
                Ok(Arc::new(store))
            }
            Backend::Postgres(url) => {
                let mut options = PgOptions::default();
                if let Some(n) = self.database_pool_size {
                    options.pool_size = n;
                }
                let store = PgStore::connect_with(&url, &options)
                    .await
                    .with_context(|| format!("cannot open the PostgreSQL database {}", redacted(&url)))?;
                Ok(Arc::new(store))
            }
        }
    }

    /// Brings the schema up to date and says what that took (`stead migrate`).
    pub async fn migrate(&self) -> anyhow::Result<String> {
        match self.backend()? {
            Backend::Sqlite(path) => {
                let store = SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("cannot open the database {}", path.display()))?;
                store.close().await;
                Ok(format!("the SQLite database {} is up to date", path.display()))
            }
            Backend::Postgres(url) => {
                let report = PgStore::migrate(&url)
                    .await
                    .with_context(|| format!("cannot migrate the PostgreSQL database {}", redacted(&url)))?;
                let current = report.current.map_or_else(|| "none".to_owned(), |v| v.to_string());
                Ok(if report.applied.is_empty() {
                    format!("the PostgreSQL database {} is up to date (schema version {current})", redacted(&url))
                } else {
                    format!(
                        "applied migrations {:?} to the PostgreSQL database {}; schema version {current}",
                        report.applied,
                        redacted(&url)
                    )
                })
            }
        }
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

/// A database URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Who opens the store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Tool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_messages_lose_their_password() {
        assert_eq!(super::redacted("postgres://u:secret@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(super::redacted("postgres://h/db"), "postgres://h/db");
    }
}
