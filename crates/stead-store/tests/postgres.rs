//! What only PostgreSQL has to show: migrations under the advisory lock
//! when replicas start together, a dead or restarted database, several
//! replicas racing on one key rotation. The behaviour shared with SQLite is
//! tested on both backends in `store.rs` and `provisioning.rs`.
//!
//! Each test makes its own database; without a reachable PostgreSQL the
//! tests say they were skipped (and fail when `CI=true`).

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stead_core::store::StoredKey;
use stead_core::{SigningAlg, Store, StoreError};
use stead_store::postgres::testing::{database_or_skip, TestDatabase};
use stead_store::postgres::MigrationLock;
use stead_store::{PgOptions, PgStore};

async fn db(test: &str) -> Option<TestDatabase> {
    database_or_skip(test).await
}

fn key(tenant_id: &str, kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        tenant: tenant(tenant_id),
        kid: kid.into(),
        alg: SigningAlg::ES256,
        sealed_private_key: vec![7; 8],
        created_at,
        retired_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    let Some(db) = db("replicas_starting_together_migrate_once").await else { return };
    // Eight replicas open the new, empty database at the same moment.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move { PgStore::connect_with(&url, &pg_options()).await }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("every replica starts"));
    }
    for s in &stores {
        assert_eq!(s.change_version().await.unwrap(), 1);
    }
    // `stead migrate` later: nothing left to apply.
    let report = PgStore::migrate(&db.url).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.current, Some(2));
    let runs = db.execute("SELECT 1 FROM _sqlx_migrations").await.unwrap();
    assert_eq!(runs, 2, "each migration recorded once");
    for s in &stores {
        s.close().await;
    }
}

/// Engines without advisory locks (CockroachDB) get a row lock instead;
/// forced here on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_advisory_locks_a_row_lock_keeps_migrations_apart() {
    let Some(db) = db("without_advisory_locks_a_row_lock_keeps_migrations_apart").await else { return };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move { PgStore::migrate_with_lock(&url, MigrationLock::Table).await }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap().expect("every migration run succeeds").applied);
    }
    assert_eq!(applied, [1, 2], "each applied once in all");
    assert_eq!(db.execute("SELECT 1 FROM _sqlx_migrations").await.unwrap(), 2);
    let store = PgStore::connect_with(&db.url, &pg_options()).await.unwrap();
    assert_eq!(store.change_version().await.unwrap(), 1);
}

#[tokio::test]
async fn migrate_reports_what_it_applied() {
    let Some(db) = db("migrate_reports_what_it_applied").await else { return };
    let first = PgStore::migrate(&db.url).await.unwrap();
    assert_eq!(first.applied, [1, 2]);
    assert_eq!(PgStore::migrate(&db.url).await.unwrap().applied, Vec::<i64>::new());
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_quickly() {
    // Nothing listens on port 1.
    let started = Instant::now();
    let e = PgStore::connect("postgres://postgres@127.0.0.1:1/stead").await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let e = PgStore::connect("postgres://127.0.0.1:notaport/x").await.unwrap_err();
    assert!(matches!(e, StoreError::Other(_)), "{e:?}");
    let e = PgStore::connect("postgres://user:hunter2@127.0.0.1:1/x?sslmode=bogus").await.unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_are_replaced() {
    let Some(env) = Env::postgres("killed_connections_are_replaced").await else { return };
    env.import(EXAMPLE).await.unwrap();
    let db = env.db.as_ref().unwrap();
    let t = tenant("TMPRODB88619984");
    // Fill the pools with connections, then kill them all.
    for _ in 0..3 {
        let (a, b, c) = tokio::join!(
            env.store.user_by_username(&t, "pa"),
            env.store.user_by_id(&t, "1001"),
            env.store.change_version()
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
    }
    let killed = db.terminate_connections().await.unwrap();
    assert!(killed >= 2, "killed {killed}");
    // At most the first operation per pool notices; the ones after it test
    // their connection first and reconnect.
    let mut failures = 0;
    for _ in 0..10 {
        match env.store.user_by_username(&t, "pa").await {
            Ok(u) => assert!(u.is_some()),
            Err(StoreError::Unavailable(_)) => failures += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(failures <= 1, "{failures} lookups failed after the kill");
    let mut failures = 0;
    for _ in 0..5 {
        match env.store.change_version().await {
            Ok(_) => {}
            Err(StoreError::Unavailable(_)) => failures += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(failures <= 1, "{failures} polls failed after the kill");
    env.store.ping().await.unwrap();
    env.import(EXAMPLE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_replicas_rotating_at_once_exactly_one_wins() {
    let Some(env) = Env::postgres("of_many_replicas_rotating_at_once_exactly_one_wins").await else { return };
    env.import("[[tenants]]\nid = \"A\"\n").await.unwrap();
    let mut replicas: Vec<Arc<dyn Store>> = vec![env.store.clone()];
    for _ in 0..4 {
        replicas.push(env.second().await);
    }
    assert!(env.store.rotate_signing_key(None, &key("A", "k0", 1)).await.unwrap());
    let mut expected = "k0".to_string();
    for round in 0..20 {
        let mut tasks = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            let (r, expected) = (r.clone(), expected.clone());
            let new = key("A", &format!("r{round}-{i}"), 10 + round);
            tasks.push(tokio::spawn(
                async move { (new.kid.clone(), r.rotate_signing_key(Some(&expected), &new).await) },
            ));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (kid, won) = t.await.unwrap();
            if won.unwrap() {
                winners.push(kid);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let keys = env.store.load_directory().await.unwrap().keys;
        let active: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.kid.clone()).collect();
        assert_eq!(active, winners);
        expected = winners.pop().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_imports_apply_one_after_the_other() {
    let Some(env) = Env::postgres("concurrent_imports_apply_one_after_the_other").await else { return };
    env.import(EXAMPLE).await.unwrap();
    let other = env.second().await;
    // Two imports touching the same rows in opposite orders would deadlock
    // without the import lock.
    let a: String = (0..500).map(|i| format!("[[tenants.users]]\nid = \"u{i}\"\nusername = \"a{i}\"\n")).collect();
    let b: String =
        (0..500).rev().map(|i| format!("[[tenants.users]]\nid = \"u{i}\"\nusername = \"b{i}\"\n")).collect();
    let head = "[[tenants]]\nid = \"TMPRODB88619984\"\n";
    let (plan_a, plan_b) = (env.plan(&format!("{head}{a}")), env.plan(&format!("{head}{b}")));
    let v = env.version().await;
    let (ra, rb) = tokio::join!(env.store.apply_provisioning(&plan_a), other.apply_provisioning(&plan_b));
    assert_eq!(ra.unwrap().users, 500);
    assert_eq!(rb.unwrap().users, 500);
    assert!(env.version().await >= v + 2);
    let u = env.store.user_by_id(&tenant("TMPRODB88619984"), "u7").await.unwrap().unwrap();
    assert!(u.username == "a7" || u.username == "b7");
    let t = tenant("TMPRODB88619984");
    let prefix = &u.username[..1];
    for i in [0, 250, 499] {
        let user = env.store.user_by_id(&t, &format!("u{i}")).await.unwrap().unwrap();
        assert_eq!(&user.username[..1], prefix, "one import applied whole, then the other");
    }
}

#[tokio::test]
async fn text_postgres_cannot_hold_matches_nothing() {
    let Some(env) = Env::postgres("text_postgres_cannot_hold_matches_nothing").await else { return };
    env.import(EXAMPLE).await.unwrap();
    let t = tenant("TMPRODB88619984");
    assert_eq!(env.store.user_by_username(&t, "p\0a").await.unwrap(), None);
    assert_eq!(env.store.user_by_id(&t, "\0").await.unwrap(), None);
    assert_eq!(env.store.customer_by_email(&t, "a\0@example.com").await.unwrap(), None);
    assert_eq!(env.store.customer_by_id(&t, "\0").await.unwrap(), None);
    // A scope description with a NUL is refused by the parser on every
    // backend, naming the entry, before it could reach PostgreSQL.
    let e = stead_core::provision::parse(
        "[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.scopes]]\nname = \"x\"\ndescription = \"a\\u0000b\"\n",
        &stead_core::SecretHasher::new(&stead_core::MasterKey::generate().unwrap()),
    )
    .unwrap_err();
    assert!(e.0.contains("scope \"x\""), "{e:?}");
}

#[tokio::test]
async fn a_small_pool_under_load_still_answers() {
    let Some(db) = db("a_small_pool_under_load_still_answers").await else { return };
    let store = Arc::new(
        PgStore::connect_with(&db.url, &PgOptions { pool_size: 2, acquire_timeout: Duration::from_secs(5) })
            .await
            .unwrap(),
    );
    let env_hasher = stead_core::SecretHasher::new(&stead_core::MasterKey::generate().unwrap());
    let plan = stead_core::provision::parse(EXAMPLE, &env_hasher).unwrap();
    store.apply_provisioning(&plan).await.unwrap();
    let t = tenant("TMPRODB88619984");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move { store.user_by_username(&t, "pa").await }));
    }
    // The poll has connections of its own.
    let started = Instant::now();
    store.change_version().await.unwrap();
    let poll = started.elapsed();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_some());
    }
    assert!(poll < Duration::from_secs(1), "{poll:?}");
}
