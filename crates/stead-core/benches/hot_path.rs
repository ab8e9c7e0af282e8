//! Micro-benchmarks of the token path's pure steps: signing (bare and as a
//! whole JWS), client authentication, subject-name folding.
//!
//! `cargo bench -p stead-core --bench hot_path` (one core: prefix `taskset -c 0`).
//! `bench/run` reads `sign_raw/*` as each algorithm's bare signing limit.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use stead_core::jwt::sign_claims;
use stead_core::model::fold_case;
use stead_core::{ClientSecret, MasterKey, SecretHasher, SigningAlg, SigningKey};
use stead_proto::{Actor, Claims};

const ALGS: [SigningAlg; 3] = [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256];

/// Claims the size of a real token of the benchmark tenant.
fn claims() -> Claims {
    Claims {
        iss: "http://127.0.0.1:8080/system/auth/BENCH_ES256-U".into(),
        sub: "10000042".into(),
        aud: "https://api.example.com".into(),
        exp: 1_790_003_600,
        iat: 1_790_000_000,
        jti: "Zk3q9V0m1b2x7W4nQp8sLA".into(),
        client_id: "bench-client-0001".into(),
        scope: "bench.tokens.read".into(),
        act: Actor { sub: "bench-client-0001".into() },
        subject_type: "user".into(),
        tenant: "BENCH_ES256".into(),
        preferred_username: Some("user.42".into()),
        email: None,
    }
}

fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::from_pkcs8(alg, &alg.generate_pkcs8().expect("keygen")).expect("key")
}

/// The bare signature over a token-sized message: the ceiling of each
/// algorithm on one core.
fn sign_raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("sign_raw");
    g.throughput(Throughput::Elements(1));
    let claims = claims();
    for alg in ALGS {
        let key = key(alg);
        // The exact signing input of a real token: header.payload.
        let token = sign_claims(&key, &claims);
        let input = token.rsplit_once('.').unwrap().0.to_owned();
        g.bench_function(BenchmarkId::from_parameter(alg.as_str()), |b| {
            b.iter(|| key.sign(black_box(input.as_bytes())))
        });
    }
    g.finish();
}

/// `jwt::sign_claims`: claims → JSON → base64url → signature → compact JWS.
fn sign_jws(c: &mut Criterion) {
    let mut g = c.benchmark_group("sign_claims");
    g.throughput(Throughput::Elements(1));
    let claims = claims();
    for alg in ALGS {
        let key = key(alg);
        g.bench_function(BenchmarkId::from_parameter(alg.as_str()), |b| {
            b.iter(|| sign_claims(black_box(&key), black_box(&claims)))
        });
    }
    g.finish();

    // The parts of sign_claims around the signature.
    let mut g = c.benchmark_group("claims");
    g.bench_function("serialize_json", |b| b.iter(|| serde_json::to_vec(black_box(&claims)).unwrap()));
    g.finish();
}

/// Client authentication: HMAC-SHA-256 under the pepper, constant-time compare.
fn authenticate(c: &mut Criterion) {
    let hasher = SecretHasher::new(&MasterKey::generate().unwrap());
    let secret = "bench-secret-7Jq2xVv9LmPz4RtYw8KsNc3HbGfDe1";
    let stored = [ClientSecret::new(hasher.hash(secret), 0)];
    let mut g = c.benchmark_group("secret_verify");
    g.bench_function("match", |b| b.iter(|| assert!(hasher.verify(black_box(secret), Some(&stored), 1))));
    g.bench_function("unknown_client", |b| b.iter(|| hasher.verify(black_box(secret), None, 1)));
    g.finish();

    let mut g = c.benchmark_group("fold_case");
    g.bench_function("ascii_username", |b| b.iter(|| fold_case(black_box("User.123456"))));
    g.finish();
}

criterion_group!(benches, sign_raw, sign_jws, authenticate);
criterion_main!(benches);
