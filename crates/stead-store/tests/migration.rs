//! A database written by the first schema keeps its data through the
//! governance migration.

mod common;

use common::*;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use stead_core::Store;
use stead_store::SqliteStore;

#[tokio::test]
async fn the_first_schemas_data_survives_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stead.db");

    // Only the first migration, as an older stead applied it.
    let old = dir.path().join("old-migrations");
    std::fs::create_dir(&old).unwrap();
    let first = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite/0001_initial.sql");
    std::fs::copy(first, old.join("0001_initial.sql")).unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(true))
        .await
        .unwrap();
    Migrator::new(old.as_path()).await.unwrap().run(&pool).await.unwrap();
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    for sql in [
        "INSERT INTO tenants (id) VALUES ('T')",
        "INSERT INTO users (tenant_id, id, username, username_folded) VALUES ('T', 'u1', 'Ann', 'ann')",
        "INSERT INTO customers (tenant_id, email_folded, email, id) VALUES ('T', 'c@example.com', 'c@example.com', 'c1')",
        "INSERT INTO signing_keys VALUES ('T', 'old', 'RS256', x'00', 10), ('T', 'new', 'ES256', x'00', 20)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO clients (tenant_id, id, secret_hashes, enabled) VALUES ('T', 'two', ?1, 1), ('T', 'one', ?2, 0)",
    )
    .bind([a, b].concat())
    .bind(c.to_vec())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let before = stead_core::now();
    let store = SqliteStore::open(&path).await.unwrap();
    let d = store.load_directory().await.unwrap();
    let client = |id: &str| d.clients.iter().find(|(_, c)| c.id == id).unwrap().1.clone();
    let two = client("two");
    assert_eq!(two.secrets.iter().map(|s| s.hash).collect::<Vec<_>>(), [a, b]);
    assert!(two.secrets.iter().all(|s| s.expires_at.is_none() && s.created_at >= before - 5));
    assert_eq!((two.subject_groups, two.deny_subject_groups, two.enabled), (None, vec![], true));
    let one = client("one");
    assert_eq!((one.secrets.len(), one.enabled), (1, false));

    // The newest key stays active; the older one is retired now, so it is
    // still published for the whole grace period.
    let keys: Vec<_> = d.keys.iter().map(|k| (k.kid.as_str(), k.retired_at.is_some_and(|r| r >= before - 5))).collect();
    assert_eq!(keys, [("old", true), ("new", false)]);
    assert!(d.keys[1].retired_at.is_none());

    let t = tenant("T");
    assert!(store.user_by_username(&t, "ann").await.unwrap().unwrap().groups.is_empty());
    assert!(store.customer_by_id(&t, "c1").await.unwrap().unwrap().groups.is_empty());
    assert!(store
        .rotate_signing_key(
            Some("new"),
            &stead_core::store::StoredKey {
                tenant: t.clone(),
                kid: "newer".into(),
                alg: stead_core::SigningAlg::ES256,
                sealed_private_key: vec![0],
                created_at: 30,
                retired_at: None,
            }
        )
        .await
        .unwrap());
}
