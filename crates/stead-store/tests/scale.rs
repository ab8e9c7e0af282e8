//! A million users and customers in one tenant, on SQLite and on
//! PostgreSQL. Ignored by default; run with
//! `cargo test -p stead-store --release --test scale -- --ignored --nocapture`.

mod common;

use common::*;
use std::time::{Duration, Instant};
use stead_core::model::fold_case;
use stead_core::provision::{CustomerPlan, ProvisioningPlan, TenantPlan, UserPlan};

const N: usize = 1_000_000;

/// A bijection of 0..N, so keys arrive in no particular order.
fn scramble(i: usize) -> usize {
    (i * 7_368_787) % N
}

fn plan() -> ProvisioningPlan {
    ProvisioningPlan {
        tenants: vec![TenantPlan {
            id: tenant("SCALE"),
            audience: None,
            token_ttl_seconds: None,
            signing_alg: None,
            auto_provision_customers: None,
            scopes: vec![],
            clients: vec![],
            users: (0..N)
                .map(|i| UserPlan {
                    id: format!("{:08}", scramble(i)),
                    username: format!("User.{}", scramble(scramble(i))),
                    email: Some(format!("user.{i}@example.com")),
                    enabled: Some(true),
                    groups: None,
                })
                .collect(),
            customers: (0..N)
                .map(|i| CustomerPlan {
                    email: format!("Customer.{i}@example.com"),
                    id: None,
                    enabled: None,
                    groups: None,
                })
                .collect(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "slow: a million users and a million customers"]
async fn imports_a_million_subjects_and_looks_them_up_fast() {
    at_scale(Env::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "slow: a million users and a million customers"]
async fn imports_a_million_subjects_and_looks_them_up_fast_on_postgres() {
    if let Some(env) = Env::postgres("scale").await {
        at_scale(env).await;
    }
}

async fn at_scale(env: Env) {
    let plan = plan();

    let mut users = plan.clone();
    users.tenants[0].customers.clear();
    let mut customers = plan.clone();
    customers.tenants[0].users.clear();

    let started = Instant::now();
    let report = env.store.apply_provisioning(&users).await.unwrap();
    assert_eq!(report.users, N);
    println!("import of {N} new users: {:?}", started.elapsed());
    let started = Instant::now();
    let report = env.store.apply_provisioning(&customers).await.unwrap();
    assert_eq!(report.customers, N);
    println!("import of {N} new customers: {:?}", started.elapsed());

    let version = env.version().await;
    let started = Instant::now();
    env.store.apply_provisioning(&plan).await.unwrap();
    println!("re-import of both (no change): {:?}", started.elapsed());
    assert_eq!(env.version().await, version);

    for u in &mut users.tenants[0].users {
        u.enabled = Some(false);
    }
    let started = Instant::now();
    env.store.apply_provisioning(&users).await.unwrap();
    println!("disabling every user: {:?}", started.elapsed());
    assert!(env.version().await > version);

    let t = tenant("SCALE");
    let lookups = 20_000;
    let time = |f: Duration| f / lookups;
    let started = Instant::now();
    for i in 0..lookups as usize {
        let n = (i * 7919) % N;
        assert!(env.store.user_by_username(&t, &fold_case(&format!("User.{n}"))).await.unwrap().is_some());
    }
    let by_name = time(started.elapsed());
    let started = Instant::now();
    for i in 0..lookups as usize {
        let n = (i * 7919) % N;
        assert!(env.store.user_by_id(&t, &format!("{n:08}")).await.unwrap().is_some());
    }
    let by_id = time(started.elapsed());
    let started = Instant::now();
    for i in 0..lookups as usize {
        let n = (i * 7919) % N;
        assert!(env.store.customer_by_email(&t, &format!("customer.{n}@example.com")).await.unwrap().is_some());
    }
    let by_email = time(started.elapsed());
    println!("per lookup: by username {by_name:?}, by id {by_id:?}, by email {by_email:?}");
    let size = match (&env.dir, &env.db) {
        (Some(dir), _) => std::fs::metadata(dir.path().join("stead.db")).unwrap().len(),
        (_, Some(db)) => {
            let url = db.url.clone();
            stead_store::postgres::testing::blocking(async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }) as u64
        }
        _ => 0,
    };
    println!("{:?}: database size: {} MiB", env.backend, size / (1 << 20));
}
