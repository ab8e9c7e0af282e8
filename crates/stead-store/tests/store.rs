//! The rest of the `Store` contract: change versions, auto-provisioned
//! customers, signing keys, and several stores sharing one file.

mod common;

use common::*;
use std::sync::Arc;
use stead_core::model::Customer;
use stead_core::store::StoredKey;
use stead_core::{SigningAlg, Store, StoreError};
use stead_store::SqliteStore;

fn customer(id: &str, email: &str) -> Customer {
    Customer { id: id.into(), email: email.into(), enabled: true }
}

fn key(tenant_id: &str, kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        tenant: tenant(tenant_id),
        kid: kid.into(),
        alg: SigningAlg::RS256,
        sealed_private_key: vec![1, 2, 3, kid.len() as u8],
        created_at,
    }
}

#[tokio::test]
async fn opens_and_reopens_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/stead.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.ping().await.unwrap();
    let v = store.change_version().await.unwrap();
    store.close().await;
    assert!(path.exists());
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(again.change_version().await.unwrap(), v);
    assert!(again.load_directory().await.unwrap().tenants.is_empty());
}

#[tokio::test]
async fn a_path_that_cannot_be_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let e = SqliteStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn every_write_bumps_the_change_version() {
    let env = Env::new().await;
    let v0 = env.version().await;
    env.import(EXAMPLE).await.unwrap();
    let v1 = env.version().await;
    assert!(v1 > v0);

    let t = tenant("TMPRODB88619984");
    env.store.create_customer(&t, &customer("c-new", "new@example.com")).await.unwrap();
    let v2 = env.version().await;
    assert!(v2 > v1);
    // Returning an existing customer writes nothing.
    env.store.create_customer(&t, &customer("c-other", "NEW@example.com")).await.unwrap();
    assert_eq!(env.version().await, v2);

    env.store.insert_signing_key(&key("TMPRODB88619984", "k1", 1)).await.unwrap();
    let v3 = env.version().await;
    assert!(v3 > v2);

    env.import(EXAMPLE).await.unwrap();
    assert_eq!(env.version().await, v3);
    env.import(&EXAMPLE.replace("enabled = true\n\n[[tenants.users]]", "enabled = false\n\n[[tenants.users]]"))
        .await
        .unwrap();
    assert!(env.version().await > v3);
}

#[tokio::test]
async fn create_customer_returns_the_one_that_won_the_race() {
    let env = Env::new().await;
    env.import("[[tenants]]\nid = \"T\"\nauto_provision_customers = true\n").await.unwrap();
    let t = tenant("T");
    let other = Arc::new(env.second().await);
    let mine = Arc::new(env.store.clone());

    let mut tasks = Vec::new();
    for i in 0..16 {
        let store: Arc<SqliteStore> = if i % 2 == 0 { mine.clone() } else { other.clone() };
        let t = t.clone();
        let email = if i % 3 == 0 { "Race@Example.com" } else { "race@example.com" };
        tasks.push(tokio::spawn(async move { store.create_customer(&t, &customer(&format!("id-{i}"), email)).await }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    let stored = env.store.customer_by_email(&t, "race@example.com").await.unwrap().unwrap();
    assert!(results.iter().all(|c| *c == stored), "{results:?} vs {stored:?}");

    let m = match env.store.create_customer(&t, &customer(&stored.id, "someone.else@example.com")).await {
        Err(StoreError::Rejected(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.contains("someone.else@example.com"), "{m}");
    assert!(matches!(
        env.store.create_customer(&tenant("NOPE"), &customer("x", "x@example.com")).await,
        Err(StoreError::Rejected(_))
    ));
}

#[tokio::test]
async fn signing_keys_round_trip() {
    let env = Env::new().await;
    env.import("[[tenants]]\nid = \"A\"\n[[tenants]]\nid = \"B\"\n").await.unwrap();
    let keys = [key("B", "b1", 10), key("A", "a2", 20), key("A", "a1", 10)];
    for k in &keys {
        env.store.insert_signing_key(k).await.unwrap();
    }
    let loaded = env.store.load_directory().await.unwrap().keys;
    let summary: Vec<_> = loaded.iter().map(|k| (k.tenant.as_str(), k.kid.as_str(), k.created_at)).collect();
    assert_eq!(summary, [("A", "a1", 10), ("A", "a2", 20), ("B", "b1", 10)]);
    let a2 = loaded.iter().find(|k| k.kid == "a2").unwrap();
    assert_eq!((a2.alg, &a2.sealed_private_key), (SigningAlg::RS256, &vec![1, 2, 3, 2]));

    assert!(matches!(env.store.insert_signing_key(&key("A", "a1", 30)).await, Err(StoreError::Rejected(_))));
    assert!(matches!(env.store.insert_signing_key(&key("NOPE", "x", 30)).await, Err(StoreError::Rejected(_))));
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
        env.store.insert_signing_key(&StoredKey { alg, kid: alg.as_str().into(), ..key("B", "", 5) }).await.unwrap();
    }
    let loaded = env.store.load_directory().await.unwrap().keys;
    assert_eq!(
        loaded.iter().filter(|k| k.tenant == tenant("B")).map(|k| k.alg).collect::<Vec<_>>(),
        [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256]
    );
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_others_writes() {
    let env = Env::new().await;
    let server = env.second().await;
    let polled = server.change_version().await.unwrap();
    server.load_directory().await.unwrap();

    // `stead import` writes through its own store…
    env.import(EXAMPLE).await.unwrap();
    let after = server.change_version().await.unwrap();
    assert_ne!(after, polled, "the server notices the import");
    let d = server.load_directory().await.unwrap();
    assert_eq!(d.clients.len(), 1);
    let t = tenant("TMPRODB88619984");
    assert!(server.user_by_username(&t, "pa").await.unwrap().is_some());

    // …and the server's writes reach the importer.
    server.create_customer(&t, &customer("c-9", "nine@example.com")).await.unwrap();
    server.insert_signing_key(&key("TMPRODB88619984", "k", 1)).await.unwrap();
    assert_eq!(env.store.customer_by_email(&t, "nine@example.com").await.unwrap().unwrap().id, "c-9");
    assert_eq!(env.store.load_directory().await.unwrap().keys.len(), 1);
    assert_eq!(env.version().await, server.change_version().await.unwrap());

    // A disabled client is seen by the other store.
    env.import("[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.clients]]\nid = \"7121f585-e403-4531-9a38-1826ebc7e7d8\"\nenabled = false\n")
        .await
        .unwrap();
    assert!(!server.load_directory().await.unwrap().clients[0].1.enabled);
}

#[tokio::test]
async fn readers_are_not_blocked_by_an_import() {
    use stead_core::provision::{ProvisioningPlan, TenantPlan, UserPlan};
    let env = Env::new().await;
    env.import(EXAMPLE).await.unwrap();
    let server = Arc::new(env.second().await);
    let users: Vec<UserPlan> = (0..50_000)
        .map(|i| UserPlan { id: format!("u{i}"), username: format!("user{i}"), email: None, enabled: Some(true) })
        .collect();
    let plan = ProvisioningPlan {
        tenants: vec![TenantPlan {
            id: tenant("TMPRODB88619984"),
            audience: None,
            token_ttl_seconds: None,
            signing_alg: None,
            auto_provision_customers: None,
            scopes: vec![],
            clients: vec![],
            users,
            customers: vec![],
        }],
    };
    let import = tokio::spawn({
        let store = env.store.clone();
        async move { store.apply_provisioning(&plan).await }
    });
    let t = tenant("TMPRODB88619984");
    while !import.is_finished() {
        assert!(server.user_by_username(&t, "pa").await.unwrap().is_some());
        server.change_version().await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(import.await.unwrap().unwrap().users, 50_000);
    assert_eq!(server.user_by_id(&t, "u49999").await.unwrap().unwrap().username, "user49999");
}
