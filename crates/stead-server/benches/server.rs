//! Micro-benchmarks of the HTTP side of the token path: parsing the form
//! body and the Basic header, and one token request through the whole axum
//! router (routing, extraction, parsing, the token service with SQLite and
//! audit, JSON response) without sockets.
//!
//! `taskset -c 0 cargo bench -p stead-server --bench server`

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http_body_util::BodyExt;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stead_core::directory::KeyPolicy;
use stead_core::{AuditLog, DirectoryHandle, MasterKey, SecretHasher, Store, TokenService};
use stead_server::fuzzing::{parse_authorization, parse_token_form};
use stead_server::{router, AppState};
use stead_store::SqliteStore;
use tower::ServiceExt;

const CLIENT: &str = "bench-client-0001";
const SECRET: &str = "bench-secret-7Jq2xVv9LmPz4RtYw8KsNc3HbGfDe1";
const SCOPE: &str = "bench.tokens.read";
const USERS: usize = 1000;

fn body(i: usize) -> String {
    format!(
        "grant_type=password&client_id={CLIENT}&client_secret={SECRET}&scope={SCOPE}&subject_username=user.{}",
        i % USERS
    )
}

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let typical = body(42);
    g.throughput(Throughput::Bytes(typical.len() as u64));
    g.bench_function("token_form", |b| b.iter(|| parse_token_form(black_box(typical.as_bytes())).unwrap()));
    let escaped = "grant_type=password&client_id=bench-client-0001&client_secret=a%2Bb%2Fc%3D%3D%25%26x\
                   &scope=bench.tokens.read+other.scope&subject_email=customer.42%40example.com";
    g.throughput(Throughput::Bytes(escaped.len() as u64));
    g.bench_function("token_form_escaped", |b| b.iter(|| parse_token_form(black_box(escaped.as_bytes())).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("parse");
    let basic = {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:{SECRET}"));
        format!("Basic {encoded}")
    };
    g.bench_function("basic_header", |b| b.iter(|| parse_authorization(black_box(basic.as_bytes())).unwrap()));
    g.finish();
}

fn provisioning() -> String {
    let mut s = format!(
        "[[tenants]]\nid = \"BENCH_ES256\"\naudience = \"https://api.example.com\"\nsigning_alg = \"ES256\"\n\n\
         [[tenants.scopes]]\nname = \"{SCOPE}\"\n\n\
         [[tenants.clients]]\nid = \"{CLIENT}\"\nsecret = \"{SECRET}\"\nrealms = [\"user\", \"customer\"]\n\
         scopes = [\"{SCOPE}\"]\n\n"
    );
    for i in 0..USERS {
        s.push_str(&format!("[[tenants.users]]\nid = \"{}\"\nusername = \"user.{i}\"\n\n", 10_000_000 + i));
    }
    s
}

/// 32 concurrent token requests through the router on one core, like 32
/// connections; the difference to wrk's rate is sockets and hyper.
fn router_token(c: &mut Criterion) {
    const CONCURRENT: usize = 32;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(async {
        let master = MasterKey::generate().unwrap();
        let hasher = SecretHasher::new(&master);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_dir(dir.path()).await.unwrap());
        let plan = stead_core::provision::parse(&provisioning(), &hasher).unwrap();
        store.apply_provisioning(&plan).await.unwrap();
        let directory = Arc::new(DirectoryHandle::load(store.clone(), master, KeyPolicy::default()).await.unwrap());
        // Without the poll the directory goes stale and the service answers 503.
        stead_server::spawn_refresh(directory.clone());
        let (audit, _writer) = AuditLog::start(store.clone());
        let service =
            Arc::new(TokenService::new(directory, store.clone(), hasher, "http://127.0.0.1:8080".into(), audit));
        router(AppState { service, store })
    });
    let remote: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    g.bench_function(BenchmarkId::new("token_x32", "es256_username"), |b| {
        b.to_async(&rt).iter(|| {
            let (app, next) = (app.clone(), next.clone());
            async move {
                let tasks: Vec<_> = (0..CONCURRENT)
                    .map(|_| {
                        let app = app.clone();
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let mut req = Request::post("/system/auth/BENCH_ES256-U/oauth2/token")
                                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                                .body(Body::from(body(i)))
                                .unwrap();
                            req.extensions_mut().insert(ConnectInfo(remote));
                            let response = app.oneshot(req).await.unwrap();
                            assert_eq!(response.status(), StatusCode::OK);
                            response.into_body().collect().await.unwrap().to_bytes()
                        })
                    })
                    .collect();
                for t in tasks {
                    black_box(t.await.unwrap());
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parsing, router_token);
criterion_main!(benches);
