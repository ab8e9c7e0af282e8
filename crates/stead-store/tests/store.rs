//! The rest of the `Store` contract: change versions, auto-provisioned
//! customers, signing keys, client secrets, the audit trail, revocations,
//! and several stores sharing one file.

mod common;

use common::*;
use std::sync::Arc;
use stead_core::audit::{AuditFilter, AuditRecord, Outcome};
use stead_core::directory::{rotate_key, KeyPolicy};
use stead_core::model::{ClientSecret, Customer};
use stead_core::store::{Revocation, StoredKey};
use stead_core::{DirectoryHandle, MasterKey, SigningAlg, Store, StoreError};
use stead_store::SqliteStore;

fn customer(id: &str, email: &str) -> Customer {
    Customer { id: id.into(), email: email.into(), enabled: true, groups: vec![] }
}

fn key(tenant_id: &str, kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        tenant: tenant(tenant_id),
        kid: kid.into(),
        alg: SigningAlg::RS256,
        sealed_private_key: vec![1, 2, 3, kid.len() as u8],
        created_at,
        retired_at: None,
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

async fn every_write_to_the_directory_bumps_the_change_version(env: Env) {
    let v0 = env.version().await;
    env.import(EXAMPLE).await.unwrap();
    let v1 = env.version().await;
    assert!(v1 > v0);

    // Subjects are not in the directory: a new customer leaves it alone.
    let t = tenant("TMPRODB88619984");
    env.store.create_customer(&t, &customer("c-new", "new@example.com")).await.unwrap();
    assert_eq!(env.version().await, v1);

    assert!(env.store.rotate_signing_key(None, &key("TMPRODB88619984", "k1", 1)).await.unwrap());
    let v3 = env.version().await;
    assert!(v3 > v1);

    env.import(EXAMPLE).await.unwrap();
    assert_eq!(env.version().await, v3);
    env.import(&EXAMPLE.replace("enabled = true\n\n[[tenants.users]]", "enabled = false\n\n[[tenants.users]]"))
        .await
        .unwrap();
    assert!(env.version().await > v3);
}

async fn create_customer_returns_the_one_that_won_the_race(env: Env) {
    env.import("[[tenants]]\nid = \"T\"\nauto_provision_customers = true\n").await.unwrap();
    let t = tenant("T");
    let other = env.second().await;
    let mine = env.store.clone();

    let mut tasks = Vec::new();
    for i in 0..16 {
        let store: Arc<dyn Store> = if i % 2 == 0 { mine.clone() } else { other.clone() };
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

async fn signing_keys_round_trip(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n[[tenants]]\nid = \"B\"\n").await.unwrap();
    assert!(env.store.rotate_signing_key(None, &key("B", "b1", 10)).await.unwrap());
    assert!(env.store.rotate_signing_key(None, &key("A", "a1", 10)).await.unwrap());
    assert!(env.store.rotate_signing_key(Some("a1"), &key("A", "a2", 20)).await.unwrap());
    let loaded = env.store.load_directory().await.unwrap().keys;
    let summary: Vec<_> =
        loaded.iter().map(|k| (k.tenant.as_str(), k.kid.as_str(), k.created_at, k.retired_at)).collect();
    assert_eq!(summary, [("A", "a1", 10, Some(20)), ("A", "a2", 20, None), ("B", "b1", 10, None)]);
    let a2 = loaded.iter().find(|k| k.kid == "a2").unwrap();
    assert_eq!((a2.alg, &a2.sealed_private_key), (SigningAlg::RS256, &vec![1, 2, 3, 2]));

    // A kid in use, a tenant that does not exist.
    assert!(matches!(
        env.store.rotate_signing_key(Some("a2"), &key("A", "a1", 30)).await,
        Err(StoreError::Rejected(_))
    ));
    assert!(matches!(env.store.rotate_signing_key(None, &key("NOPE", "x", 30)).await, Err(StoreError::Rejected(_))));
    // The refused rotation changed nothing.
    assert_eq!(env.store.load_directory().await.unwrap().keys.len(), 3);
    for (alg, at) in [(SigningAlg::ES256, 30), (SigningAlg::EdDSA, 40)] {
        let active = if at == 30 { "b1" } else { "ES256" };
        let new = StoredKey { alg, kid: alg.as_str().into(), ..key("B", "", at) };
        assert!(env.store.rotate_signing_key(Some(active), &new).await.unwrap());
    }
    let loaded = env.store.load_directory().await.unwrap().keys;
    assert_eq!(
        loaded.iter().filter(|k| k.tenant == tenant("B")).map(|k| (k.alg, k.retired_at)).collect::<Vec<_>>(),
        [(SigningAlg::RS256, Some(30)), (SigningAlg::ES256, Some(40)), (SigningAlg::EdDSA, None)]
    );
}

async fn key_rotation_is_a_compare_and_swap(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n").await.unwrap();
    let v0 = env.version().await;
    // The expected active key must match, "none" included.
    assert!(!env.store.rotate_signing_key(Some("ghost"), &key("A", "k0", 1)).await.unwrap());
    assert_eq!(env.version().await, v0, "a lost rotation writes nothing");
    assert!(env.store.rotate_signing_key(None, &key("A", "k1", 1)).await.unwrap());
    assert!(!env.store.rotate_signing_key(None, &key("A", "k0", 2)).await.unwrap());
    assert!(env.version().await > v0);

    // Servers in two processes race to replace k1: exactly one wins.
    let other = env.second().await;
    for round in 0..10 {
        let expected =
            env.store.load_directory().await.unwrap().keys.into_iter().find(|k| k.retired_at.is_none()).unwrap().kid;
        let (x, y) = (key("A", &format!("x{round}"), 10 + round), key("A", &format!("y{round}"), 10 + round));
        let (a, b) = tokio::join!(
            env.store.rotate_signing_key(Some(&expected), &x),
            other.rotate_signing_key(Some(&expected), &y)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "round {round}: exactly one rotation succeeds ({a}, {b})");
        let keys = env.store.load_directory().await.unwrap().keys;
        let active: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.kid.clone()).collect();
        assert_eq!(active, [if a { x.kid } else { y.kid }]);
        assert_eq!(keys.len(), round as usize + 2);
    }
}

async fn prunes_keys_retired_long_enough_ago(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n[[tenants]]\nid = \"B\"\n").await.unwrap();
    assert!(env.store.rotate_signing_key(None, &key("A", "a1", 100)).await.unwrap());
    assert!(env.store.rotate_signing_key(Some("a1"), &key("A", "a2", 200)).await.unwrap());
    assert!(env.store.rotate_signing_key(Some("a2"), &key("A", "a3", 300)).await.unwrap());
    assert!(env.store.rotate_signing_key(None, &key("B", "b1", 100)).await.unwrap());
    let v = env.version().await;

    assert_eq!(env.store.prune_signing_keys(200).await.unwrap(), 0, "retired at 200 is not before 200");
    assert_eq!(env.version().await, v);
    assert_eq!(env.store.prune_signing_keys(201).await.unwrap(), 1);
    assert!(env.version().await > v);
    // Unretired keys stay, however old.
    assert_eq!(env.store.prune_signing_keys(i64::MAX).await.unwrap(), 1);
    let kids: Vec<_> = env.store.load_directory().await.unwrap().keys.into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["a3", "b1"]);
}

async fn two_stores_on_one_file_see_each_others_writes(env: Env) {
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
    assert!(server.rotate_signing_key(None, &key("TMPRODB88619984", "k", 1)).await.unwrap());
    assert_eq!(env.store.customer_by_email(&t, "nine@example.com").await.unwrap().unwrap().id, "c-9");
    assert_eq!(env.store.load_directory().await.unwrap().keys.len(), 1);
    assert_eq!(env.version().await, server.change_version().await.unwrap());

    // A disabled client is seen by the other store.
    env.import("[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.clients]]\nid = \"7121f585-e403-4531-9a38-1826ebc7e7d8\"\nenabled = false\n")
        .await
        .unwrap();
    assert!(!server.load_directory().await.unwrap().clients[0].1.enabled);
}

async fn readers_are_not_blocked_by_an_import(env: Env) {
    use stead_core::provision::{ProvisioningPlan, TenantPlan, UserPlan};
    env.import(EXAMPLE).await.unwrap();
    let server = env.second().await;
    let users: Vec<UserPlan> = (0..50_000)
        .map(|i| UserPlan {
            id: format!("u{i}"),
            username: format!("user{i}"),
            email: None,
            enabled: Some(true),
            groups: None,
        })
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

async fn customers_by_id_with_their_groups(env: Env) {
    env.import("[[tenants]]\nid = \"T\"\nauto_provision_customers = true\n").await.unwrap();
    let t = tenant("T");
    let c = Customer { groups: vec!["b".into(), "a".into()], ..customer("c-1", "One@Example.com") };
    assert_eq!(env.store.create_customer(&t, &c).await.unwrap(), c);
    assert_eq!(env.store.customer_by_id(&t, "c-1").await.unwrap(), Some(c.clone()));
    assert_eq!(env.store.customer_by_email(&t, "one@example.com").await.unwrap(), Some(c));
    assert_eq!(env.store.customer_by_id(&t, "C-1").await.unwrap(), None, "ids match exactly");
    assert_eq!(env.store.customer_by_id(&tenant("U"), "c-1").await.unwrap(), None);
}

const CLIENT: &str = "7121f585-e403-4531-9a38-1826ebc7e7d8";
const FIRST: &str = "use-a-long-random-secret-of-32+-characters";

async fn client_secrets_rotate_with_an_overlap_and_old_ones_are_revoked(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    let t = tenant("TMPRODB88619984");
    let now = stead_core::now();
    let secrets = || async {
        let d = env.store.load_directory().await.unwrap();
        d.clients.into_iter().find(|(_, c)| c.id == CLIENT).unwrap().1.secrets
    };
    let h = |s: &str| env.hasher.hash(s);

    // A second secret; the first stays valid for an hour.
    let v = env.version().await;
    env.store.rotate_client_secret(&t, CLIENT, &ClientSecret::new(h("second"), now), now + 3600).await.unwrap();
    assert!(env.version().await > v);
    let s = secrets().await;
    assert_eq!(
        s.iter().map(|s| (s.hash, s.expires_at)).collect::<Vec<_>>(),
        [(h(FIRST), Some(now + 3600)), (h("second"), None)]
    );
    assert_eq!(s[1].created_at, now);
    for secret in [FIRST, "second"] {
        assert!(env.hasher.verify(secret, Some(&s[..]), now), "{secret}");
    }
    assert!(!env.hasher.verify(FIRST, Some(&s[..]), now + 3600));
    assert!(env.hasher.verify("second", Some(&s[..]), now + 3600));

    // A third with a shorter overlap: expiries only ever move closer.
    env.store.rotate_client_secret(&t, CLIENT, &ClientSecret::new(h("third"), now + 1), now + 60).await.unwrap();
    let s = secrets().await;
    assert_eq!(
        s.iter().map(|s| (s.hash, s.expires_at)).collect::<Vec<_>>(),
        [(h(FIRST), Some(now + 60)), (h("second"), Some(now + 60)), (h("third"), None)]
    );
    env.store.rotate_client_secret(&t, CLIENT, &ClientSecret::new(h("fourth"), now + 2), now + 7200).await.unwrap();
    let s = secrets().await;
    assert_eq!(
        s.iter().map(|s| s.expires_at).collect::<Vec<_>>(),
        [Some(now + 60), Some(now + 60), Some(now + 7200), None]
    );

    // Revoking keeps only the newest.
    let v = env.version().await;
    assert_eq!(env.store.revoke_old_client_secrets(&t, CLIENT).await.unwrap(), 3);
    assert!(env.version().await > v);
    assert_eq!(secrets().await.iter().map(|s| s.hash).collect::<Vec<_>>(), [h("fourth")]);
    let v = env.version().await;
    assert_eq!(env.store.revoke_old_client_secrets(&t, CLIENT).await.unwrap(), 0);
    assert_eq!(env.version().await, v, "nothing to revoke, nothing written");

    // No overlap: the old secret goes at once.
    env.store.rotate_client_secret(&t, CLIENT, &ClientSecret::new(h("fifth"), now + 3), now + 3).await.unwrap();
    assert_eq!(secrets().await.iter().map(|s| s.hash).collect::<Vec<_>>(), [h("fifth")]);

    // An overlap that is over already: expired secrets are not loaded.
    env.store.rotate_client_secret(&t, CLIENT, &ClientSecret::new(h("sixth"), now - 100), now - 50).await.unwrap();
    assert_eq!(secrets().await.iter().map(|s| s.hash).collect::<Vec<_>>(), [h("sixth")]);
    // Revoking deletes the expired one, which no longer counted anyway.
    assert_eq!(env.store.revoke_old_client_secrets(&t, CLIENT).await.unwrap(), 1);

    // Unknown clients are refused.
    for (tn, id) in [("TMPRODB88619984", "nope"), ("NOPE", CLIENT)] {
        let e = env.store.rotate_client_secret(&tenant(tn), id, &ClientSecret::new(h("x"), now), now).await;
        assert!(matches!(e, Err(StoreError::Rejected(ref m)) if m.contains(id)), "{e:?}");
        let e = env.store.revoke_old_client_secrets(&tenant(tn), id).await;
        assert!(matches!(e, Err(StoreError::Rejected(_))), "{e:?}");
    }

    // An import's secrets replace them all again, and importing the same
    // file once more changes nothing.
    env.import(EXAMPLE).await.unwrap();
    let s = secrets().await;
    assert_eq!(s.iter().map(|s| (s.hash, s.expires_at)).collect::<Vec<_>>(), [(h(FIRST), None)]);
    let v = env.version().await;
    env.import(EXAMPLE).await.unwrap();
    assert_eq!(env.version().await, v);
}

async fn revoking_old_secrets_keeps_the_newest_of_equals(env: Env) {
    env.import(
        "[[tenants]]\nid = \"T\"\n[[tenants.clients]]\nid = \"c\"\nsecrets = [\"one-one-one-one-one-one-one-one-one\", \"two-two-two-two-two-two-two-two-two\"]\n",
    )
    .await
    .unwrap();
    let t = tenant("T");
    let d = env.store.load_directory().await.unwrap();
    assert_eq!(d.clients[0].1.secrets.len(), 2);
    assert_eq!(env.store.revoke_old_client_secrets(&t, "c").await.unwrap(), 1);
    let d = env.store.load_directory().await.unwrap();
    assert_eq!(
        d.clients[0].1.secrets.iter().map(|s| s.hash).collect::<Vec<_>>(),
        [env.hasher.hash("two-two-two-two-two-two-two-two-two")],
        "the one listed last"
    );
}

fn record(i: i64) -> AuditRecord {
    AuditRecord {
        time_ms: 1_000_000 + i,
        tenant: if i % 2 == 0 { "A" } else { "B" }.into(),
        realm: "user".into(),
        client_id: Some(format!("client-{}", i % 3)),
        subject_id: (i % 5 != 0).then(|| format!("subject-{}", i % 7)),
        subject_given: Some(format!("given-{i}")),
        requested_scope: Some("read write".into()),
        granted_scope: (i % 4 != 0).then(|| "read".into()),
        jti: (i % 4 != 0).then(|| format!("jti-{i}")),
        outcome: if i % 4 == 0 { Outcome::Refused } else { Outcome::Issued },
        error: (i % 4 == 0).then(|| "invalid_scope".into()),
        remote_addr: Some("192.0.2.1".into()),
        request_id: format!("req-{i}"),
    }
}

async fn audit_records_are_appended_queried_and_pruned(env: Env) {
    env.store.append_audit(Vec::new()).await.unwrap();
    let v = env.version().await;
    let records: Vec<AuditRecord> = (0..1000).map(record).collect();
    // Out of order in the batch, oldest first when read.
    let mut shuffled = records.clone();
    shuffled.reverse();
    let started = std::time::Instant::now();
    env.store.append_audit(shuffled.clone()).await.unwrap();
    println!("append_audit: a batch of 1000 records in {:?}", started.elapsed());
    assert_eq!(env.version().await, v, "the audit trail is not in the directory");

    let all = env.store.query_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all, records);

    let store = &env.store;
    let q = |f: AuditFilter| async move { store.query_audit(&f).await.unwrap() };
    let expect = |pred: &dyn Fn(&AuditRecord) -> bool| records.iter().filter(|r| pred(r)).cloned().collect::<Vec<_>>();
    assert_eq!(q(AuditFilter { tenant: Some("A".into()), ..Default::default() }).await, expect(&|r| r.tenant == "A"));
    assert_eq!(
        q(AuditFilter { client_id: Some("client-1".into()), outcome: Some(Outcome::Issued), ..Default::default() })
            .await,
        expect(&|r| r.client_id.as_deref() == Some("client-1") && r.outcome == Outcome::Issued)
    );
    assert_eq!(
        q(AuditFilter { subject_id: Some("subject-3".into()), tenant: Some("B".into()), ..Default::default() }).await,
        expect(&|r| r.subject_id.as_deref() == Some("subject-3") && r.tenant == "B")
    );
    // `since` is inclusive, `until` exclusive.
    let window = q(AuditFilter { since_ms: Some(1_000_100), until_ms: Some(1_000_200), ..Default::default() }).await;
    assert_eq!(window, records[100..200]);
    let limited = q(AuditFilter {
        tenant: Some("B".into()),
        since_ms: Some(1_000_500),
        outcome: Some(Outcome::Refused),
        limit: Some(3),
        ..Default::default()
    })
    .await;
    assert!(limited.is_empty(), "B has odd times, refusals are multiples of 4");
    let limited =
        q(AuditFilter { tenant: Some("A".into()), since_ms: Some(1_000_500), limit: Some(3), ..Default::default() })
            .await;
    assert_eq!(limited.iter().map(|r| r.time_ms).collect::<Vec<_>>(), [1_000_500, 1_000_502, 1_000_504]);
    assert!(q(AuditFilter { tenant: Some("C".into()), ..Default::default() }).await.is_empty());

    // Records with the same time keep their order of commit.
    let mut same = record(5000);
    same.time_ms = 999;
    let mut later = same.clone();
    later.request_id = "second".into();
    env.store.append_audit(vec![same.clone()]).await.unwrap();
    env.store.append_audit(vec![later.clone()]).await.unwrap();
    let first_two = q(AuditFilter { until_ms: Some(1000), ..Default::default() }).await;
    assert_eq!(first_two, [same, later]);

    assert_eq!(env.store.prune_audit(1_000_000).await.unwrap(), 2);
    assert_eq!(env.store.prune_audit(1_000_500).await.unwrap(), 500);
    assert_eq!(env.store.prune_audit(1_000_500).await.unwrap(), 0);
    assert_eq!(env.store.query_audit(&AuditFilter::default()).await.unwrap(), records[500..]);
}

async fn audit_batches_commit_fast(env: Env) {
    let batches = 20;
    let mut total = std::time::Duration::ZERO;
    for b in 0..batches {
        let records: Vec<AuditRecord> = (0..1024).map(|i| record(b * 1024 + i)).collect();
        let started = std::time::Instant::now();
        env.store.append_audit(records.clone()).await.unwrap();
        total += started.elapsed();
    }
    let n = batches as u32 * 1024;
    println!(
        "append_audit: {n} records in {batches} batches of 1024: {:?} per batch, {:.0} records/ms",
        total / batches as u32,
        f64::from(n) / total.as_secs_f64() / 1000.0
    );
    // Single records commit one by one (an idle server).
    let started = std::time::Instant::now();
    for i in 0..100 {
        env.store.append_audit(vec![record(1_000_000 + i)]).await.unwrap();
    }
    println!("append_audit: a single record per commit: {:?}", started.elapsed() / 100);
    let count = env.store.query_audit(&AuditFilter::default()).await.unwrap().len();
    assert_eq!(count, n as usize + 100);
}

/// The group-commit log over a real store: a record is first sealed (its
/// batch handed to storage), then durable, and durable means readable.
async fn the_audit_log_seals_then_commits_every_record(env: Env) {
    let (log, writer) = stead_core::AuditLog::start(env.store.clone());
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(log.submit(record(i)).await.unwrap());
    }
    for mut p in pending {
        p.sealed().await;
        p.durable().await.unwrap();
    }
    let all = env.store.query_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all, (0..200).map(record).collect::<Vec<_>>());

    // A record whose sealing is never awaited is committed all the same.
    log.record(record(200)).await.unwrap();
    assert_eq!(env.store.query_audit(&AuditFilter::default()).await.unwrap().len(), 201);

    // Once the writer is gone, a pending record says so instead of hanging.
    let mut p = log.submit(record(201)).await.unwrap();
    writer.abort();
    let _ = writer.await;
    p.sealed().await;
    assert!(matches!(p.durable().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(log.submit(record(202)).await, Err(StoreError::Unavailable(_))));
}

async fn revocations_reach_every_server_once_until_they_expire(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n[[tenants]]\nid = \"B\"\n").await.unwrap();
    let server = env.second().await;
    let now = stead_core::now();
    let v = server.change_version().await.unwrap();
    let start = server.revocations_since(0, now).await.unwrap();
    assert_eq!(start.revoked, []);

    env.store.revoke_token(&tenant("A"), "jti-1", now + 600).await.unwrap();
    assert_eq!(server.change_version().await.unwrap(), v, "a revocation does not reload the directory");
    let first = server.revocations_since(start.up_to, now).await.unwrap();
    assert!(first.up_to > start.up_to);
    assert_eq!(first.revoked, [revocation("A", "jti-1", now + 600)]);
    let nothing_new = server.revocations_since(first.up_to, now).await.unwrap();
    assert_eq!((nothing_new.up_to, nothing_new.revoked), (first.up_to, vec![]));

    env.store.revoke_token(&tenant("B"), "jti-1", now + 600).await.unwrap();
    env.store.revoke_token(&tenant("A"), "old", now - 1).await.unwrap();
    env.store.revoke_token(&tenant("A"), "now", now).await.unwrap();
    let before_again = server.revocations_since(first.up_to, now).await.unwrap();
    env.store.revoke_token(&tenant("A"), "jti-1", now + 600).await.unwrap();
    let again = server.revocations_since(before_again.up_to, now).await.unwrap();
    assert_eq!((again.up_to, again.revoked), (before_again.up_to, vec![]), "revoked twice: nothing new");

    // Read from the point after the first: only what came later, in order,
    // without the tokens expired by now.
    assert_eq!(before_again.revoked, [revocation("B", "jti-1", now + 600)]);
    let all = server.revocations_since(0, now).await.unwrap();
    assert_eq!(all.revoked, [revocation("A", "jti-1", now + 600), revocation("B", "jti-1", now + 600)]);
    assert_eq!(all.up_to, before_again.up_to);

    assert_eq!(env.store.prune_revocations(now).await.unwrap(), 2);
    assert_eq!(server.change_version().await.unwrap(), v, "pruning does not reload the directory");
    assert_eq!(env.store.prune_revocations(now).await.unwrap(), 0);
    assert_eq!(server.revocations_since(0, now).await.unwrap().revoked.len(), 2);
    assert_eq!(env.store.prune_revocations(now + 600).await.unwrap(), 2);
    let pruned = server.revocations_since(0, now).await.unwrap();
    assert_eq!((pruned.up_to, pruned.revoked), (all.up_to, vec![]), "the sequence never goes back");

    let e = env.store.revoke_token(&tenant("NOPE"), "x", now + 600).await;
    assert!(matches!(e, Err(StoreError::Rejected(_))), "{e:?}");
    assert_eq!(server.revocations_since(0, now).await.unwrap().up_to, all.up_to, "a refused revocation takes no point");
}

/// The in-memory directory over a real store: a revocation is read on its
/// own, without a reload; a reload opens only keys it has not opened yet.
async fn a_reload_reuses_opened_keys_and_keeps_revocations(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n[[tenants]]\nid = \"B\"\nsigning_alg = \"RS256\"\n").await.unwrap();
    let master = MasterKey::generate().unwrap();
    let handle = DirectoryHandle::load(env.store.clone(), master.clone(), KeyPolicy::default()).await.unwrap();
    let before = handle.get();
    let (a, b) = (tenant("A"), tenant("B"));
    let now = stead_core::now();

    env.store.revoke_token(&a, "gone", now + 600).await.unwrap();
    assert!(!handle.is_revoked(&a, "gone"), "not read yet");
    assert!(!handle.refresh_if_changed().await.unwrap(), "a revocation reloads nothing");
    assert!(handle.is_revoked(&a, "gone"));
    assert!(!handle.is_revoked(&b, "gone"), "revocations are per tenant");
    assert!(Arc::ptr_eq(&handle.get(), &before));

    env.import("[[tenants]]\nid = \"A\"\n[[tenants.scopes]]\nname = \"s\"\n").await.unwrap();
    assert!(handle.refresh_if_changed().await.unwrap());
    let after = handle.get();
    assert_eq!(after.tenant(&a).unwrap().scopes.len(), 1);
    for t in [&a, &b] {
        let (old, new) = (&before.tenant(t).unwrap().active_key, &after.tenant(t).unwrap().active_key);
        assert!(Arc::ptr_eq(old, new), "{t:?}: the key was opened again");
    }
    assert!(handle.is_revoked(&a, "gone"), "a reload keeps what was revoked");

    // A new key is opened; the replaced one, still published, is reused.
    let old_kid = after.tenant(&a).unwrap().active_key.kid.clone();
    rotate_key(&*env.store, &master, &a, SigningAlg::ES256, Some(&old_kid)).await.unwrap().unwrap();
    assert!(handle.refresh_if_changed().await.unwrap());
    let rotated = handle.get();
    let entry = rotated.tenant(&a).unwrap();
    assert_ne!(entry.active_key.kid, old_kid);
    assert!(Arc::ptr_eq(entry.key(&old_kid).unwrap(), &after.tenant(&a).unwrap().active_key));

    // The sequence goes back (a restore from backup): the server notices
    // at its next refresh and reads on from the restored point, so the
    // points handed out again are read too.
    env.execute("UPDATE meta SET revocation_seq = 0 WHERE id = 1").await;
    handle.refresh_if_changed().await.unwrap();
    env.store.revoke_token(&a, "after-restore", now + 600).await.unwrap();
    handle.refresh_if_changed().await.unwrap();
    assert!(handle.is_revoked(&a, "after-restore"));
    assert!(handle.is_revoked(&a, "gone"), "what was held stays revoked");

    // Another server starting now reads every revocation.
    let other = DirectoryHandle::load(env.second().await, master, KeyPolicy::default()).await.unwrap();
    assert!(other.is_revoked(&a, "gone") && other.is_revoked(&a, "after-restore"));
    assert_eq!(other.revocations_held(), 2);
}

/// Several servers revoking at once while another reads on from its last
/// point: every revocation is read, none twice is needed, none skipped.
async fn concurrent_revocations_are_all_read_in_order(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n").await.unwrap();
    let now = stead_core::now();
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = env.second().await;
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                store.revoke_token(&tenant("A"), &format!("w{w}-{i}"), now + 600).await.unwrap();
            }
        }));
    }
    let reader = env.second().await;
    let mut seen = std::collections::HashSet::new();
    let mut up_to = 0;
    let mut reads = 0;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let read = reader.revocations_since(up_to, now).await.unwrap();
        assert!(read.up_to >= up_to, "the point went back: {} < {up_to}", read.up_to);
        for r in read.revoked {
            assert!(seen.insert(r.jti.clone()), "{} read twice", r.jti);
        }
        up_to = read.up_to;
        reads += 1;
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), 100, "after {reads} reads");
    assert_eq!(up_to, reader.revocations_since(0, now).await.unwrap().up_to);
}

/// A stead from before the revocation sequence, still running beside newer
/// ones, writes revocations without a point (seq 0): they are read all the
/// same, and revoking the same token again does not hide it.
async fn revocations_of_an_older_stead_are_read(env: Env) {
    env.import("[[tenants]]\nid = \"A\"\n").await.unwrap();
    let now = stead_core::now();
    let exp = now + 600;
    let older = format!("INSERT INTO revocations (tenant_id, jti, expires_at) VALUES ('A', 'old-binary', {exp})");
    assert_eq!(env.execute(&older).await, 1);
    env.execute("UPDATE meta SET change_version = change_version + 1 WHERE id = 1").await;
    let server = env.second().await;
    let first = server.revocations_since(0, now).await.unwrap();
    assert_eq!(first.revoked, [revocation("A", "old-binary", exp)]);
    let later = server.revocations_since(first.up_to, now).await.unwrap();
    assert_eq!(later.revoked, [revocation("A", "old-binary", exp)], "read on every poll while it lasts");
    env.store.revoke_token(&tenant("A"), "old-binary", exp).await.unwrap();
    assert_eq!(server.revocations_since(first.up_to, now).await.unwrap().revoked.len(), 1);
    assert!(server.revocations_since(0, exp).await.unwrap().revoked.is_empty(), "expired: not read");
}

fn revocation(tenant_id: &str, jti: &str, expires_at: i64) -> Revocation {
    Revocation { tenant: tenant(tenant_id), jti: jti.into(), expires_at }
}

on_both_backends!(
    every_write_to_the_directory_bumps_the_change_version,
    create_customer_returns_the_one_that_won_the_race,
    signing_keys_round_trip,
    key_rotation_is_a_compare_and_swap,
    prunes_keys_retired_long_enough_ago,
    two_stores_on_one_file_see_each_others_writes,
    readers_are_not_blocked_by_an_import,
    customers_by_id_with_their_groups,
    client_secrets_rotate_with_an_overlap_and_old_ones_are_revoked,
    revoking_old_secrets_keeps_the_newest_of_equals,
    audit_records_are_appended_queried_and_pruned,
    audit_batches_commit_fast,
    the_audit_log_seals_then_commits_every_record,
    revocations_reach_every_server_once_until_they_expire,
    a_reload_reuses_opened_keys_and_keeps_revocations,
    concurrent_revocations_are_all_read_in_order,
    revocations_of_an_older_stead_are_read,
);
