//! Micro-benchmarks of the token path's storage steps on SQLite: subject
//! lookups among a million users and a million customers, audit appends in
//! group-commit batches, and the whole token service (validate → look up →
//! sign → audit) without HTTP.
//!
//! `taskset -c 0 cargo bench -p stead-store --bench store`
//!
//! The million-subject database is built once (a minute or so) and kept in
//! `target/bench-data/store-1m`; delete that directory to rebuild it.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use stead_core::audit::{AuditRecord, Outcome};
use stead_core::directory::KeyPolicy;
use stead_core::model::fold_case;
use stead_core::service::{RequestContext, RequestMeta};
use stead_core::{AuditLog, Credentials, DirectoryHandle, MasterKey, SecretHasher, SecretString, Store, TokenRequest};
use stead_core::{TokenService, UnixTime};
use stead_proto::{RealmPath, TenantId};
use stead_store::SqliteStore;
use tokio::runtime::Runtime;

const N: usize = 1_000_000;
const TENANT: &str = "BENCH_ES256";
const CLIENT: &str = "bench-client-0001";
const SECRET: &str = "bench-secret-7Jq2xVv9LmPz4RtYw8KsNc3HbGfDe1";
const SCOPE: &str = "bench.tokens.read";

/// One core, like the server under `taskset -c 0`.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A bijection of 0..N, so consecutive lookups land far apart in the index.
fn scramble(i: usize) -> usize {
    (i.wrapping_mul(7_368_787)) % N
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data/store-1m")
}

/// The provisioning file of bench/gen_provisioning.py, in the same shape:
/// user i is id 10000000+i, username "user.<i>"; customer i is
/// "customer.<i>@example.com".
fn provisioning_text(users: usize, customers: usize) -> String {
    let mut s = String::with_capacity(users * 90 + customers * 60 + 1024);
    s.push_str(&format!(
        "[[tenants]]\nid = \"{TENANT}\"\naudience = \"https://api.example.com\"\nsigning_alg = \"ES256\"\n\n\
         [[tenants.scopes]]\nname = \"{SCOPE}\"\n\n\
         [[tenants.clients]]\nid = \"{CLIENT}\"\nsecret = \"{SECRET}\"\nrealms = [\"user\", \"customer\"]\n\
         scopes = [\"{SCOPE}\"]\n\n"
    ));
    for i in 0..users {
        s.push_str(&format!(
            "[[tenants.users]]\nid = \"{}\"\nusername = \"user.{i}\"\nemail = \"user.{i}@example.com\"\n\n",
            10_000_000 + i
        ));
    }
    for i in 0..customers {
        s.push_str(&format!("[[tenants.customers]]\nemail = \"customer.{i}@example.com\"\nid = \"c-{i}\"\n\n"));
    }
    s
}

/// The million-subject store and its master key, built on first use.
async fn million(rt_note: &str) -> (Arc<SqliteStore>, MasterKey) {
    let dir = data_dir();
    let done = dir.join("complete");
    let master = MasterKey::load_or_create(&dir.join("master.key")).unwrap();
    let store = SqliteStore::open_in_dir(&dir).await.unwrap();
    if !done.exists() {
        eprintln!("{rt_note}: building {} with {N} users and {N} customers (once)", dir.display());
        let started = Instant::now();
        let hasher = SecretHasher::new(&master);
        let plan = stead_core::provision::parse(&provisioning_text(N, N), &hasher).unwrap();
        store.apply_provisioning(&plan).await.unwrap();
        std::fs::write(&done, b"").unwrap();
        eprintln!("{rt_note}: built in {:?}", started.elapsed());
    }
    (Arc::new(store), master)
}

/// One indexed probe per lookup, keys spread over the whole index.
fn lookups(c: &mut Criterion) {
    let rt = runtime();
    let (store, _) = rt.block_on(million("lookup_1m"));
    let tenant = TenantId::parse(TENANT).unwrap();
    let next = AtomicUsize::new(0);
    let key = || scramble(next.fetch_add(1, Ordering::Relaxed));

    // Warm the page caches: 50k random probes touch nearly every leaf page
    // of each index, so the first benchmark does not pay for a cold cache.
    rt.block_on(async {
        for _ in 0..50_000 {
            let i = key();
            store.user_by_username(&tenant, &format!("user.{i}")).await.unwrap();
            store.user_by_id(&tenant, &(10_000_000 + i).to_string()).await.unwrap();
            store.customer_by_email(&tenant, &format!("customer.{i}@example.com")).await.unwrap();
        }
    });

    let mut g = c.benchmark_group("lookup_1m");
    g.bench_function("user_by_username", |b| {
        b.to_async(&rt).iter(|| {
            let name = fold_case(&format!("User.{}", key()));
            let (store, tenant) = (&store, &tenant);
            async move { assert!(store.user_by_username(tenant, &name).await.unwrap().is_some()) }
        })
    });
    g.bench_function("user_by_id", |b| {
        b.to_async(&rt).iter(|| {
            let id = (10_000_000 + key()).to_string();
            let (store, tenant) = (&store, &tenant);
            async move { assert!(store.user_by_id(tenant, &id).await.unwrap().is_some()) }
        })
    });
    g.bench_function("customer_by_email", |b| {
        b.to_async(&rt).iter(|| {
            let email = fold_case(&format!("Customer.{}@example.com", key()));
            let (store, tenant) = (&store, &tenant);
            async move { assert!(store.customer_by_email(tenant, &email).await.unwrap().is_some()) }
        })
    });
    g.bench_function("user_by_username_miss", |b| {
        b.to_async(&rt).iter(|| {
            let name = format!("nobody.{}", key());
            let (store, tenant) = (&store, &tenant);
            async move { assert!(store.user_by_username(tenant, &name).await.unwrap().is_none()) }
        })
    });
    g.finish();
}

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        time_ms: 1_790_000_000_000 + i as i64,
        tenant: TENANT.into(),
        realm: "user".into(),
        client_id: Some(CLIENT.into()),
        subject_id: Some("10000042".into()),
        subject_given: Some("user.42".into()),
        requested_scope: Some(SCOPE.into()),
        granted_scope: Some(SCOPE.into()),
        jti: Some(format!("jti-{i:016x}")),
        outcome: Outcome::Issued,
        error: None,
        remote_addr: Some("127.0.0.1".into()),
        request_id: format!("bench-{i:x}"),
    }
}

/// One durable transaction per batch (synchronous = FULL: one fsync each).
fn audit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(SqliteStore::open_in_dir(dir.path())).unwrap();
    let mut g = c.benchmark_group("audit_append");
    for batch in [1usize, 32, 256] {
        let records: Vec<AuditRecord> = (0..batch as u64).map(record).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.to_async(&rt).iter(|| store.append_audit(black_box(records.clone())))
        });
    }
    g.finish();
}

enum Subject {
    Username,
    Userid,
    Email,
}

fn request(subject: &Subject, i: usize) -> (RealmPath, TokenRequest) {
    let (realm, username, userid, email) = match subject {
        Subject::Username => ("U", Some(format!("user.{i}")), None, None),
        Subject::Userid => ("U", None, Some((10_000_000 + i).to_string()), None),
        Subject::Email => ("C", None, None, Some(format!("customer.{i}@example.com"))),
    };
    let request = TokenRequest {
        grant_type: Some("password".into()),
        credentials: Credentials::Body { client_id: CLIENT.into(), secret: Some(SecretString::new(SECRET)) },
        scope: Some(SCOPE.into()),
        subject_username: username,
        subject_userid: userid,
        subject_email: email,
    };
    (RealmPath::parse(&format!("{TENANT}-{realm}")).unwrap(), request)
}

/// `TokenService::token` for 32 concurrent requests on one core, as the
/// server runs it for 32 connections: validate, look up among 1M subjects,
/// sign ES256, and wait for the group-committed audit record.
fn token_service(c: &mut Criterion) {
    const CONCURRENT: usize = 32;
    let rt = runtime();
    let service = rt.block_on(async {
        let (store, master) = million("token_service").await;
        let hasher = SecretHasher::new(&master);
        let store: Arc<dyn Store> = store;
        // Fails here, with the store's own message, when the audit trail cannot be written.
        store.append_audit(vec![record(0)]).await.expect("audit append");
        let directory = Arc::new(DirectoryHandle::load(store.clone(), master, KeyPolicy::default()).await.unwrap());
        // The server's poll (stead_server::spawn_refresh): without it the
        // directory goes stale and the service answers 503.
        let polled = directory.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                let _ = polled.refresh_if_changed().await;
            }
        });
        let (audit, _writer) = AuditLog::start(store.clone());
        Arc::new(TokenService::new(directory, store, hasher, "http://127.0.0.1:8080".into(), audit))
    });
    let next = Arc::new(AtomicUsize::new(0));
    let mut g = c.benchmark_group("token_service");
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    for (name, subject) in
        [("es256_username", Subject::Username), ("es256_userid", Subject::Userid), ("es256_customer", Subject::Email)]
    {
        let subject = Arc::new(subject);
        g.bench_function(BenchmarkId::new("x32", name), |b| {
            b.to_async(&rt).iter(|| {
                let (service, subject, next) = (service.clone(), subject.clone(), next.clone());
                async move {
                    let tasks: Vec<_> = (0..CONCURRENT)
                        .map(|_| {
                            let (service, subject) = (service.clone(), subject.clone());
                            let i = scramble(next.fetch_add(1, Ordering::Relaxed));
                            tokio::spawn(async move {
                                let (realm, req) = request(&subject, i);
                                let now: UnixTime = stead_core::now();
                                let mut ctx = RequestContext::default();
                                let meta =
                                    RequestMeta { remote_addr: Some("127.0.0.1".into()), request_id: "b".into() };
                                service.token(&realm, req, now, &mut ctx, &meta).await.expect("token issued")
                            })
                        })
                        .collect();
                    for t in tasks {
                        black_box(t.await.unwrap());
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookups, audit, token_service);
criterion_main!(benches);
