//! Throwaway PostgreSQL databases for tests: each test creates its own
//! database and drops it afterwards, so concurrent runs never collide. Not
//! part of the supported API.
//!
//! The server is `STEAD_TEST_POSTGRES_URL` (an administrative URL, by
//! default `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be
//! reached, tests are skipped with a plain message, unless `CI=true`: then
//! a missing PostgreSQL is a failure.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use std::str::FromStr;
use std::time::Duration;

/// Names the administrative URL tests connect to.
pub const ADMIN_URL_ENV: &str = "STEAD_TEST_POSTGRES_URL";
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Prefix of every database tests create.
pub const DATABASE_PREFIX: &str = "stead_t_";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Whether a missing PostgreSQL fails the tests (`CI=true`) instead of
/// skipping them.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

async fn admin_connection(url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| format!("invalid {ADMIN_URL_ENV}: {e}"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, options.disable_statement_logging().connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// Whether the test server answers; the error says why not.
pub async fn check_available() -> Result<(), String> {
    let mut conn = admin_connection(&admin_url()).await?;
    conn.execute("SELECT 1").await.map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// A database of its own, dropped (its connections terminated first) when
/// this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    /// `postgres://…/stead_t_…`, for `--database-url`.
    pub url: String,
    admin: String,
}

impl TestDatabase {
    pub async fn create() -> Result<TestDatabase, String> {
        let admin = admin_url();
        let name = format!("{DATABASE_PREFIX}{}", stead_core::model::random_id().replace('-', ""));
        let mut conn = admin_connection(&admin).await?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        let _ = conn.close().await;
        Ok(TestDatabase { url: with_database(&admin, &name), name, admin })
    }

    /// [`create`](Self::create) from synchronous code, inside a runtime or not.
    pub fn create_blocking() -> Result<TestDatabase, String> {
        blocking(Self::create())
    }

    /// Drops the database now, terminating its connections.
    pub async fn drop_now(&self) -> Result<(), String> {
        drop_database(&self.admin, &self.name).await
    }

    /// Runs `sql` on this database, on a connection of its own.
    pub async fn execute(&self, sql: &str) -> Result<u64, String> {
        let mut conn = admin_connection(&self.url).await?;
        let done = conn.execute(sql).await.map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(done.rows_affected())
    }

    /// Terminates every connection to this database but the caller's (as an
    /// administrator or a failover would); returns how many.
    pub async fn terminate_connections(&self) -> Result<u64, String> {
        let mut conn = admin_connection(&self.admin).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(n as u64)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        if let Err(e) = blocking(async move { drop_database(&admin, &name).await }) {
            eprintln!("warning: {e}");
        }
    }
}

async fn drop_database(admin: &str, name: &str) -> Result<(), String> {
    let mut conn = admin_connection(admin).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .map_err(|e| format!("cannot drop database {name}: {e}"))?;
    let _ = conn.close().await;
    Ok(())
}

/// Runs `future` to completion on a runtime of its own, in a thread of its
/// own, so it works from synchronous code and inside a runtime alike.
pub fn blocking<T: Send + 'static>(future: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
    })
    .join()
    .expect("the helper thread panicked")
}

/// A database for the test named `test`, or `None` when PostgreSQL cannot
/// be reached and CI does not require it (the skip is printed).
pub async fn database_or_skip(test: &str) -> Option<TestDatabase> {
    match TestDatabase::create().await {
        Ok(db) => Some(db),
        Err(e) if !required() => {
            // Once per test binary, past the test harness's output capture,
            // so a passing run says it too.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL tests SKIPPED (from {test} on): cannot use {} ({e}); set CI=true to make this a failure",
                    admin_url()
                );
            });
            None
        }
        Err(e) => panic!("{test}: PostgreSQL is required (CI=true) but cannot be used at {}: {e}", admin_url()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_of_a_url() {
        use super::with_database as w;
        assert_eq!(w("postgres://postgres@127.0.0.1:5432/postgres", "x"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(w("postgres://u:p@h/db?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(w("postgres://h:5432", "x"), "postgres://h:5432/x");
    }
}
